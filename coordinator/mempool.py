"""The coordinator's mempool: pending transactions, taken into blocks by nonce and fee.

Each sender's transactions wait in nonce order; a block takes, among the senders whose next
transaction is executable (its nonce is the sender's next one in the state) and wanted by
the block space being filled, the highest effective tip first, until the space's gas is
used. A transaction replacing a pending one (same sender and nonce) must pay a higher tip.
Transactions whose nonce the state has passed are dropped.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from eth.abc import SignedTransactionAPI


class MempoolError(ValueError):
    """A transaction the mempool refuses (full, known, underpriced replacement)."""


def effective_tip(tx: SignedTransactionAPI, base_fee: int) -> int:
    cap = getattr(tx, "max_fee_per_gas", None) or tx.gas_price
    tip = getattr(tx, "max_priority_fee_per_gas", None)
    return cap - base_fee if tip is None else min(tip, cap - base_fee)


@dataclass
class Pending:
    tx: SignedTransactionAPI
    sender: bytes
    arrival: int


class Mempool:
    def __init__(self, base_fee: int, max_txs: int = 200_000) -> None:
        self.base_fee = base_fee
        self.max_txs = max_txs
        self._by_sender: dict[bytes, dict[int, Pending]] = {}
        self._hashes: set[bytes] = set()
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, tx: SignedTransactionAPI, sender: bytes) -> None:
        if tx.hash in self._hashes:
            raise MempoolError(f"transaction 0x{tx.hash.hex()} is already pending")
        queue = self._by_sender.setdefault(sender, {})
        old = queue.get(tx.nonce)
        if old is not None:
            if effective_tip(tx, self.base_fee) <= effective_tip(old.tx, self.base_fee):
                raise MempoolError(
                    f"a transaction with nonce {tx.nonce} from 0x{sender.hex()} is pending; "
                    "a replacement must pay a higher tip"
                )
            self._hashes.discard(old.tx.hash)
        elif len(self._hashes) >= self.max_txs:
            raise MempoolError(f"the mempool is full ({self.max_txs} transactions)")
        queue[tx.nonce] = Pending(tx, sender, next(self._arrivals))
        self._hashes.add(tx.hash)

    def take(
        self,
        gas_limit: int,
        wanted: Callable[[SignedTransactionAPI], bool],
        nonce_of: Callable[[bytes], int],
    ) -> list[SignedTransactionAPI]:
        """Remove and return the transactions for one block space, in inclusion order."""
        heap: list[tuple[int, int, bytes, int]] = []
        for sender in list(self._by_sender):
            self._drop_stale(sender, nonce_of(sender))
            self._push(heap, sender, nonce_of(sender), wanted)
        taken: list[SignedTransactionAPI] = []
        gas = 0
        while heap:
            _, _, sender, nonce = heapq.heappop(heap)
            pending = self._by_sender[sender][nonce]
            if gas + pending.tx.gas > gas_limit:
                continue  # this sender waits for the next block
            gas += pending.tx.gas
            taken.append(pending.tx)
            del self._by_sender[sender][nonce]
            self._hashes.discard(pending.tx.hash)
            self._push(heap, sender, nonce + 1, wanted)
        for sender in [s for s, queue in self._by_sender.items() if not queue]:
            del self._by_sender[sender]
        return taken

    def _push(self, heap: list, sender: bytes, nonce: int, wanted: Callable) -> None:
        pending = self._by_sender.get(sender, {}).get(nonce)
        if pending is not None and wanted(pending.tx):
            tip = effective_tip(pending.tx, self.base_fee)
            heapq.heappush(heap, (-tip, pending.arrival, sender, nonce))

    def _drop_stale(self, sender: bytes, next_nonce: int) -> None:
        queue = self._by_sender[sender]
        for nonce in [n for n in queue if n < next_nonce]:
            self._hashes.discard(queue.pop(nonce).tx.hash)
