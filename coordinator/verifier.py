"""The verifier: an independent replica that re-executes each committed block sequentially.

A block's life on a node ends at commit; the verifier sees it after that, off the critical
path. It keeps a state of its own (py-evm's trie, from the same genesis), decodes the block as
the chain stored it (header RLP, transaction encodings, the ancestor hashes BLOCKHASH saw),
runs it on plain sequential py-evm, and compares the header's state root, receipts root, gas
used, logs bloom and transactions root with what it computed. It keeps its own stake ledger
(``ebs/stakes.py``) from the blocks it replays, so the stake refunds a block starts with are
the ones it worked out, compared with the ones the block carries. A difference is a bug in the
parallel path; the producer halts on it (``coordinator/producer.py``).

``Verifier`` is the logic; ``VerifierAPI`` is what the producer needs of a running verifier:
``ThreadVerifier`` (in process, a thread: tests) and the Ray actor shell
(``coordinator/verifier_actor.py``: a replica of its own) both satisfy it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import rlp
from eth.abc import BlockHeaderAPI, VirtualMachineAPI
from eth.db.trie import make_trie_root_and_nodes
from eth.vm.forks.prague.blocks import PragueBackwardsHeader

from chain import SystemTransfer
from compute_unit.executor import BlockEnv
from compute_unit.sequential import SequentialChain
from ebs.stakes import StakeLedger
from storage.keys import StateKey


@dataclass(frozen=True)
class CommittedBlock:
    """A committed block as the verifier replays it."""

    number: int
    header: bytes  # RLP
    transactions: tuple[bytes, ...]  # block-body encodings
    prev_hashes: tuple[bytes, ...]  # newest first, at most 256
    transfers: tuple[SystemTransfer, ...] = ()  # the system transfers it starts with


@dataclass(frozen=True)
class Verdict:
    number: int
    matches: bool
    detail: str = ""  # what differed
    elapsed_s: float = 0.0


def decode_header(data: bytes) -> BlockHeaderAPI:
    """A header of any fork from its RLP (the field count says which)."""
    return rlp.decode(data, sedes=PragueBackwardsHeader)


def succeeded(receipt: Any) -> bool:
    """A receipt's status (EIP-658); before Byzantium its state root, counted as success."""
    return receipt.state_root != b""


def _show(transfers: Sequence[SystemTransfer]) -> str:
    shown = [f"{t.amount} to 0x{t.recipient.hex()}" for t in transfers]
    return "[" + ", ".join(shown) + "]"


def bloom_of(receipts: Sequence[Any]) -> int:
    bloom = 0
    for receipt in receipts:
        bloom |= receipt.bloom
    return bloom


class Verifier:
    """Replays committed blocks in order on its own sequential py-evm state."""

    def __init__(
        self,
        genesis: Iterable[tuple[StateKey, Any]],
        chain_id: int,
        vm_at: Callable[[int, int], type[VirtualMachineAPI]],
    ) -> None:
        """``vm_at(number, timestamp)``: the fork's VM class (the chain spec's)."""
        self.chain = SequentialChain(genesis)
        self.chain_id = chain_id
        self.vm_at = vm_at
        self.verified = 0  # the last block checked
        self.ledger = StakeLedger()

    def check(self, block: CommittedBlock) -> Verdict:
        """``verify``, with a block it cannot even replay a mismatch too (never raises)."""
        try:
            return self.verify(block)
        except Exception as err:
            return Verdict(block.number, False, f"{type(err).__name__}: {err}")

    def verify(self, block: CommittedBlock) -> Verdict:
        started = time.perf_counter()
        if block.number != self.verified + 1:
            return Verdict(block.number, False, f"out of order: expected block {self.verified + 1}")
        header = decode_header(block.header)
        vm_class = self.vm_at(header.block_number, header.timestamp)
        due = self.ledger.due()
        env = BlockEnv(vm_class, header, self.chain_id, block.prev_hashes, transfers=due)
        txs = [env.decode(raw) for raw in block.transactions]
        accounts = self.chain.accounts()  # before the block, for its registry transactions
        result = self.chain.execute(env, txs)
        success = [succeeded(receipt) for receipt in result.receipts]
        self.ledger.commit(self.ledger.settle(block.number, txs, success, accounts))
        differences = []
        if tuple(block.transfers) != due:
            differences.append(
                f"system transfers {_show(block.transfers)} != the ledger's {_show(due)}"
            )
        if result.state_root != header.state_root:
            differences.append(
                f"state root 0x{result.state_root.hex()} != header 0x{header.state_root.hex()}"
            )
        receipts_root = make_trie_root_and_nodes(result.receipts)[0]
        if receipts_root != header.receipt_root:
            differences.append(
                f"receipts root 0x{receipts_root.hex()} != header 0x{header.receipt_root.hex()}"
            )
        if result.gas_used != header.gas_used:
            differences.append(f"gas used {result.gas_used} != header {header.gas_used}")
        if bloom_of(result.receipts) != header.bloom:
            differences.append("logs bloom differs")
        if make_trie_root_and_nodes(txs)[0] != header.transaction_root:
            differences.append("transactions root differs")
        self.verified = block.number
        elapsed = time.perf_counter() - started
        return Verdict(block.number, not differences, "; ".join(differences), elapsed)


class VerifierAPI(Protocol):
    """A running verifier: blocks go in, verdicts come out, in block order."""

    def submit(self, block: CommittedBlock) -> None: ...
    def poll(self) -> list[Verdict]: ...
    def lag(self) -> int: ...
    def close(self) -> None: ...


class ThreadVerifier:
    """A ``Verifier`` on a thread of this process (tests; a node without Ray)."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self._inbox: queue.Queue[CommittedBlock | None] = queue.Queue()
        self._verdicts: queue.Queue[Verdict] = queue.Queue()
        self._submitted = 0
        self._done = 0
        self._thread = threading.Thread(target=self._run, name="verifier", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._inbox.get()) is not None:
            self._verdicts.put(self.verifier.check(block))

    def submit(self, block: CommittedBlock) -> None:
        self._submitted += 1
        self._inbox.put(block)

    def poll(self) -> list[Verdict]:
        verdicts = []
        while True:
            try:
                verdicts.append(self._verdicts.get_nowait())
            except queue.Empty:
                break
        self._done += len(verdicts)
        return verdicts

    def lag(self) -> int:
        return self._submitted - self._done

    def wait(self, timeout: float = 60.0) -> None:
        """Until every submitted block is verified (tests)."""
        deadline = time.monotonic() + timeout
        while self._verdicts.qsize() + self._done < self._submitted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"verifier still {self.lag()} blocks behind")
            time.sleep(0.01)

    def close(self) -> None:
        self._inbox.put(None)
        self._thread.join(timeout=60)
