"""The coordinator's transaction pool, after geth's ``core/txpool/legacypool``.

Pure logic: no Ray, no I/O, no locking (the node holds a lock around every call).

Each sender's transactions live in one of two lists:

* ``pending``: executable now, the contiguous nonces starting at the sender's state nonce;
* ``queued``: waiting for a nonce gap to fill (promoted to pending when it does).

Limits are geth's: a sender keeps at most ``account_queue`` queued transactions; when the
pool holds more than ``global_slots`` pending transactions, the senders with more than
``account_slots`` pending are trimmed (highest nonces first, equalising the biggest
offenders) but every sender keeps ``account_slots``; when more than ``global_queue`` are
queued, the senders heard from longest ago lose theirs. When the whole pool is full
(``global_slots + global_queue``) a new transaction gets in only by paying more than the
cheapest one in the pool, which is evicted.

Everything removed for another reason than inclusion in a block is reported as an
``Evicted(hash, reason)`` by ``take_evicted`` so the node can answer for it.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from eth.abc import SignedTransactionAPI
from eth_utils import to_checksum_address

GAS_PER_BLOB = 131072
TX_GAS = 21000  # no transaction needs less: a space with less gas left is full

# Reasons recorded with evicted transactions.
REPLACED = "replaced by a transaction paying more"
UNDERPRICED = "evicted: the pool is full and a transaction paying more arrived"
PENDING_LIMIT = "evicted: too many pending transactions (global_slots)"
QUEUE_LIMIT = "evicted: too many queued transactions (global_queue)"
ACCOUNT_QUEUE_LIMIT = "evicted: too many queued transactions from this account (account_queue)"
STALE_NONCE = "nonce too low"
NO_FUNDS = "insufficient funds for gas * price + value"
EXPIRED = "evicted: queued longer than the pool lifetime"


class PoolError(ValueError):
    """A transaction the pool refuses; the message is geth's."""


class AccountState(Protocol):
    """The latest committed state, as the pool reads it."""

    def nonce(self, address: bytes) -> int: ...

    def balance(self, address: bytes) -> int: ...


@dataclass(frozen=True)
class PoolConfig:
    price_bump: int = 10  # % a replacement must raise both fee cap and tip by
    account_slots: int = 16  # pending slots guaranteed per account
    global_slots: int = 4096 + 1024  # pending slots in all
    account_queue: int = 64  # queued slots per account
    global_queue: int = 1024  # queued slots in all
    lifetime_s: float = 3 * 3600  # queued transactions older than this go on reset


@dataclass(frozen=True)
class Evicted:
    hash: bytes
    reason: str


def _field(tx: SignedTransactionAPI, name: str) -> object:
    try:
        return getattr(tx, name)
    except (AttributeError, NotImplementedError):
        return None


def fee_cap(tx: SignedTransactionAPI) -> int:
    cap = _field(tx, "max_fee_per_gas")
    return tx.gas_price if cap is None else cap


def tip_cap(tx: SignedTransactionAPI) -> int:
    tip = _field(tx, "max_priority_fee_per_gas")
    return fee_cap(tx) if tip is None else tip


def effective_tip(tx: SignedTransactionAPI, base_fee: int) -> int:
    """min(tip, fee cap - base fee); negative when the fee cap is under the base fee."""
    cap = fee_cap(tx)
    return min(tip_cap(tx), cap - base_fee)


def tx_cost(tx: SignedTransactionAPI) -> int:
    """The most the transaction can take from its sender: gas * fee cap + value + blob gas."""
    cost = tx.gas * fee_cap(tx) + tx.value
    hashes = _field(tx, "blob_versioned_hashes")
    if hashes:
        cost += GAS_PER_BLOB * len(hashes) * (_field(tx, "max_fee_per_blob_gas") or 0)
    return cost


@dataclass(eq=False)
class PoolEntry:
    tx: SignedTransactionAPI
    sender: bytes
    hash: bytes
    nonce: int
    gas: int
    fee_cap: int
    tip: int
    cost: int
    seq: int  # arrival order: ties in price go to the first seen

    def price_key(self, base_fee: int) -> tuple[int, int, int]:
        """geth's priced-list order: effective tip, then fee cap, then tip."""
        return (min(self.tip, self.fee_cap - base_fee), self.fee_cap, self.tip)


@dataclass(eq=False)
class _Account:
    pending: dict[int, PoolEntry] = field(default_factory=dict)
    lo: int = 0  # lowest pending nonce (meaningful when pending is not empty)
    queued: dict[int, PoolEntry] = field(default_factory=dict)
    total_cost: int = 0  # of pending and queued
    beat: tuple[float, int] | None = None  # last activity, while something is queued

    @property
    def hi(self) -> int:
        return self.lo + len(self.pending) - 1

    def top_nonce(self) -> int:
        top = self.hi if self.pending else -1
        return max(top, max(self.queued)) if self.queued else top

    def cost_below(self, nonce: int) -> int:
        if nonce > self.top_nonce():
            return self.total_cost
        return sum(
            e.cost
            for entries in (self.pending, self.queued)
            for n, e in entries.items()
            if n < nonce
        )


class TxPool:
    def __init__(
        self,
        config: PoolConfig,
        state: AccountState,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.state = state
        self._clock = clock
        self._all: dict[bytes, PoolEntry] = {}
        self._accounts: dict[bytes, _Account] = {}
        self._pending_count = 0
        self._queued_count = 0
        self._seq = itertools.count()
        self._heap: list[tuple[tuple[int, int, int], int, bytes]] = []  # cheapest first, lazy
        self._heap_base_fee = 0
        self._evicted: list[Evicted] = []

    # ---- queries ----

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._all

    def get(self, tx_hash: bytes) -> SignedTransactionAPI | None:
        entry = self._all.get(tx_hash)
        return None if entry is None else entry.tx

    def status(self, tx_hash: bytes) -> str | None:
        entry = self._all.get(tx_hash)
        if entry is None:
            return None
        acct = self._accounts[entry.sender]
        return "pending" if acct.pending.get(entry.nonce) is entry else "queued"

    def pending_nonce(self, address: bytes) -> int:
        """The nonce the sender's next transaction should take (eth_getTransactionCount pending)."""
        nonce = self.state.nonce(address)
        acct = self._accounts.get(address)
        if acct is not None and acct.pending and acct.lo <= nonce:
            return max(nonce, acct.hi + 1)
        return nonce

    def counts(self) -> tuple[int, int]:
        return self._pending_count, self._queued_count

    def senders(self) -> list[bytes]:
        return list(self._accounts)

    def content(
        self, address: bytes
    ) -> tuple[list[SignedTransactionAPI], list[SignedTransactionAPI]]:
        """The sender's (pending, queued) transactions, each in nonce order."""
        acct = self._accounts.get(address)
        if acct is None:
            return [], []
        return (
            [acct.pending[n].tx for n in sorted(acct.pending)],
            [acct.queued[n].tx for n in sorted(acct.queued)],
        )

    def take_evicted(self) -> list[Evicted]:
        evicted, self._evicted = self._evicted, []
        return evicted

    # ---- adding ----

    def add(self, tx: SignedTransactionAPI, sender: bytes, base_fee: int) -> PoolEntry:
        tx_hash = tx.hash
        if tx_hash in self._all:
            raise PoolError("already known")
        self._set_base_fee(base_fee)
        entry = PoolEntry(
            tx=tx,
            sender=sender,
            hash=tx_hash,
            nonce=tx.nonce,
            gas=tx.gas,
            fee_cap=fee_cap(tx),
            tip=tip_cap(tx),
            cost=tx_cost(tx),
            seq=next(self._seq),
        )
        nonce = entry.nonce
        state_nonce = self.state.nonce(sender)
        if nonce < state_nonce:
            raise PoolError(
                f"nonce too low: address {to_checksum_address(sender)}, "
                f"tx: {nonce} state: {state_nonce}"
            )
        balance = self.state.balance(sender)
        acct = self._accounts.get(sender)
        queued = acct.cost_below(nonce) if acct is not None else 0
        if balance < entry.cost:  # geth's messages (txpool ValidateTransactionWithState)
            raise PoolError(
                f"{NO_FUNDS}: balance {balance}, tx cost {entry.cost}, "
                f"overshot {entry.cost - balance}"
            )
        if balance < entry.cost + queued:
            raise PoolError(
                f"{NO_FUNDS}: balance {balance}, queued cost {queued}, tx cost {entry.cost}, "
                f"overshot {entry.cost + queued - balance}"
            )
        old = None
        if acct is not None:
            old = acct.pending.get(nonce) or acct.queued.get(nonce)
        if old is not None:
            bump = 100 + self.config.price_bump
            if (
                entry.fee_cap <= old.fee_cap
                or entry.tip <= old.tip
                or entry.fee_cap < old.fee_cap * bump // 100
                or entry.tip < old.tip * bump // 100
            ):
                raise PoolError("replacement transaction underpriced")
        else:
            next_nonce = acct.hi + 1 if acct is not None and acct.pending else state_nonce
            if acct is not None and nonce > next_nonce:
                queued = acct.queued
                limit = self.config.account_queue
                if len(queued) >= limit and nonce > max(queued):
                    raise PoolError(
                        f"account limit exceeded: {len(queued)} queued txs, limit {limit}"
                    )
            if len(self._all) + 1 > self.config.global_slots + self.config.global_queue:
                self._make_room(entry, self._is_gapped(sender, nonce, next_nonce))
        self._insert(entry, old, state_nonce)
        self._cap_queue(sender)
        self._truncate_pending()
        self._truncate_queue()
        if tx_hash not in self._all:  # the caps took it right away: refuse it instead
            reason = next(e.reason for e in self._evicted if e.hash == tx_hash)
            self._evicted = [e for e in self._evicted if e.hash != tx_hash]
            if reason == ACCOUNT_QUEUE_LIMIT:
                raise PoolError(f"account limit exceeded: limit {self.config.account_queue}")
            raise PoolError("txpool is full")
        return entry

    def _is_gapped(self, sender: bytes, nonce: int, next_nonce: int) -> bool:
        """Whether the transaction would stay queued even with the queue filling the gap."""
        if nonce <= next_nonce:
            return False
        acct = self._accounts.get(sender)
        if acct is None or nonce - next_nonce > len(acct.queued):
            return True
        return any(n not in acct.queued for n in range(next_nonce, nonce))

    def _make_room(self, entry: PoolEntry, gapped: bool) -> None:
        """The pool is full: evict the cheapest transaction if the new one pays more."""
        overflow = len(self._all) + 1 - (self.config.global_slots + self.config.global_queue)
        cheapest = self._peek_cheapest()
        if cheapest is None:
            raise PoolError("txpool is full")
        base_fee = self._heap_base_fee
        if cheapest.price_key(base_fee) >= entry.price_key(base_fee):
            raise PoolError("transaction underpriced")
        drops: list[PoolEntry] = []
        while len(drops) < overflow:
            item = self._pop_cheapest()
            if item is None:
                break
            drops.append(item)
        if len(drops) < overflow:
            self._repush(drops)
            raise PoolError("txpool is full")
        if gapped and any(
            self._accounts[d.sender].pending.get(d.nonce) is d for d in drops
        ):  # a future transaction never churns out executable ones
            self._repush(drops)
            raise PoolError("future transaction tries to replace pending")
        for drop in drops:
            self._remove(drop, UNDERPRICED, demote=True)
            self._cap_queue(drop.sender)

    def _insert(self, entry: PoolEntry, old: PoolEntry | None, state_nonce: int) -> None:
        sender, nonce = entry.sender, entry.nonce
        acct = self._accounts.setdefault(sender, _Account())
        now = self._beat()
        self._all[entry.hash] = entry
        self._push_price(entry)
        acct.total_cost += entry.cost
        if old is not None:
            lists = acct.pending if acct.pending.get(nonce) is old else acct.queued
            lists[nonce] = entry
            del self._all[old.hash]
            acct.total_cost -= old.cost
            self._evicted.append(Evicted(old.hash, REPLACED))
            if lists is acct.pending and acct.queued:
                acct.beat = now
            return
        next_nonce = acct.hi + 1 if acct.pending else state_nonce
        if nonce == next_nonce:
            if not acct.pending:
                acct.lo = nonce
            acct.pending[nonce] = entry
            self._pending_count += 1
            self._promote(acct, now)
        else:
            acct.queued[nonce] = entry
            self._queued_count += 1
            if acct.beat is None:
                acct.beat = now

    def _promote(self, acct: _Account, now: tuple[float, int]) -> None:
        """Move the queued transactions that continue the pending run to pending."""
        moved = False
        while acct.queued and (acct.hi + 1) in acct.queued:
            nxt = acct.hi + 1
            acct.pending[nxt] = acct.queued.pop(nxt)
            self._pending_count += 1
            self._queued_count -= 1
            moved = True
        if not acct.queued:
            acct.beat = None
        elif moved:
            acct.beat = now

    # ---- removing ----

    def _remove(self, entry: PoolEntry, reason: str | None, demote: bool) -> None:
        """Drop one transaction; a pending one's successors go back to the queue if demote."""
        acct = self._accounts[entry.sender]
        del self._all[entry.hash]
        acct.total_cost -= entry.cost
        nonce = entry.nonce
        if acct.pending.get(nonce) is entry:
            lo, hi = acct.lo, acct.hi
            del acct.pending[nonce]
            self._pending_count -= 1
            if nonce == lo:
                acct.lo = lo + 1  # the rest stays contiguous, unless demote asks otherwise
            if nonce != lo or demote:
                # geth's strict list: what followed the removed nonce goes back to the queue
                for n in range(nonce + 1, hi + 1):
                    acct.queued[n] = acct.pending.pop(n)
                    self._pending_count -= 1
                    self._queued_count += 1
                if acct.queued and acct.beat is None:
                    acct.beat = self._beat()
        else:
            del acct.queued[nonce]
            self._queued_count -= 1
        if not acct.queued:
            acct.beat = None
        if not acct.pending and not acct.queued:
            del self._accounts[entry.sender]
        if reason is not None:
            self._evicted.append(Evicted(entry.hash, reason))

    def _cap_queue(self, sender: bytes) -> None:
        acct = self._accounts.get(sender)
        while acct is not None and len(acct.queued) > self.config.account_queue:
            self._remove(acct.queued[max(acct.queued)], ACCOUNT_QUEUE_LIMIT, demote=False)
            acct = self._accounts.get(sender)

    def _truncate_pending(self) -> None:
        """geth's truncatePending: trim the biggest pending lists, none below account_slots."""
        slots, limit = self.config.account_slots, self.config.global_slots
        if self._pending_count <= limit:
            return
        spammers = sorted(
            (
                (len(a.pending), addr)
                for addr, a in self._accounts.items()
                if len(a.pending) > slots
            ),
            reverse=True,
        )
        offenders: list[bytes] = []
        for _, addr in spammers:
            if self._pending_count <= limit:
                break
            offenders.append(addr)
            if len(offenders) > 1:
                threshold = len(self._accounts[addr].pending)
                while (
                    self._pending_count > limit
                    and len(self._accounts[offenders[-2]].pending) > threshold
                ):
                    for offender in offenders[:-1]:
                        self._drop_highest_pending(offender)
        while (
            offenders
            and self._pending_count > limit
            and len(self._accounts[offenders[-1]].pending) > slots
        ):
            for offender in offenders:
                self._drop_highest_pending(offender)

    def _drop_highest_pending(self, sender: bytes) -> None:
        acct = self._accounts[sender]
        self._remove(acct.pending[acct.hi], PENDING_LIMIT, demote=False)

    def _truncate_queue(self) -> None:
        """geth's truncateQueue: drop queued transactions of the longest-idle senders first."""
        drop = self._queued_count - self.config.global_queue
        if drop <= 0:
            return
        idle = sorted((a.beat or (0.0, 0), addr) for addr, a in self._accounts.items() if a.queued)
        for _, addr in idle:
            if drop <= 0:
                break
            queued = self._accounts[addr].queued
            for nonce in sorted(queued, reverse=True)[:drop]:
                self._remove(queued[nonce], QUEUE_LIMIT, demote=False)
                drop -= 1

    # ---- after a block ----

    def reset(self, included: Iterable[bytes], dropped: Iterable[tuple[bytes, str]]) -> None:
        """Bring the pool in line with a newly committed block and the state after it."""
        for tx_hash in included:
            entry = self._all.get(tx_hash)
            if entry is not None:
                self._remove(entry, None, demote=False)
        for tx_hash, reason in dropped:
            entry = self._all.get(tx_hash)
            if entry is not None:
                self._remove(entry, reason, demote=False)
        now = self._beat()
        for addr in list(self._accounts):
            self._revalidate(addr, now)
        self._truncate_pending()
        self._truncate_queue()
        if len(self._heap) > 2 * len(self._all) + 64:
            self._rebuild_heap()

    def _revalidate(self, addr: bytes, now: tuple[float, int]) -> None:
        acct = self._accounts[addr]
        nonce, balance = self.state.nonce(addr), self.state.balance(addr)
        for entry in [*acct.pending.values(), *acct.queued.values()]:
            if entry.nonce < nonce:
                self._remove(entry, STALE_NONCE, demote=False)
            elif entry.cost > balance:
                self._remove(entry, NO_FUNDS, demote=False)
        acct = self._accounts.get(addr)
        if acct is None:
            return
        entries = {**acct.pending, **acct.queued}
        end = nonce
        while end in entries:
            end += 1
        before = len(acct.pending)
        acct.pending = {n: entries.pop(n) for n in range(nonce, end)}
        acct.lo = nonce
        acct.queued = entries
        self._pending_count += len(acct.pending) - before
        self._queued_count -= len(acct.pending) - before
        if not acct.queued:
            acct.beat = None
        elif acct.beat is None or len(acct.pending) > before:
            acct.beat = now
        self._cap_queue(addr)
        acct = self._accounts.get(addr)
        if acct is not None and acct.queued and now[0] - acct.beat[0] > self.config.lifetime_s:
            for entry in list(acct.queued.values()):
                self._remove(entry, EXPIRED, demote=False)

    # ---- block building ----

    def select(
        self,
        gas_limit: int,
        base_fee: int,
        wanted: Callable[[SignedTransactionAPI], bool],
        start: dict[bytes, int] | None = None,
    ) -> list[SignedTransactionAPI]:
        """Pending transactions for one block space, in inclusion order; nothing is removed.

        Highest effective tip first across senders, nonce order within one. A sender stops at
        its first transaction whose fee cap is under base_fee, that is not wanted or that does
        not fit the gas left. ``start`` maps sender -> next nonce (already taken by earlier
        spaces of the same block) and is updated with what this space takes.
        """
        heads: list[tuple[int, int, bytes, int]] = []

        def push(entry: PoolEntry | None) -> None:
            if entry is not None and entry.fee_cap >= base_fee and wanted(entry.tx):
                tip = min(entry.tip, entry.fee_cap - base_fee)
                heapq.heappush(heads, (-tip, entry.seq, entry.sender, entry.nonce))

        for addr, acct in self._accounts.items():
            if acct.pending:
                first = acct.lo if start is None else start.get(addr, acct.lo)
                push(acct.pending.get(first))
        taken: list[SignedTransactionAPI] = []
        gas_left = gas_limit
        while heads and gas_left >= TX_GAS:
            _, _, addr, nonce = heapq.heappop(heads)
            pending = self._accounts[addr].pending
            entry = pending[nonce]
            if entry.gas > gas_left:
                continue  # this sender waits for another space
            taken.append(entry.tx)
            gas_left -= entry.gas
            if start is not None:
                start[addr] = nonce + 1
            push(pending.get(nonce + 1))
        return taken

    # ---- price heap ----

    def _beat(self) -> tuple[float, int]:
        return (self._clock(), next(self._seq))

    def _set_base_fee(self, base_fee: int) -> None:
        if base_fee != self._heap_base_fee:
            self._heap_base_fee = base_fee
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        base_fee = self._heap_base_fee
        self._heap = [(e.price_key(base_fee), e.seq, h) for h, e in self._all.items()]
        heapq.heapify(self._heap)

    def _push_price(self, entry: PoolEntry) -> None:
        key = entry.price_key(self._heap_base_fee)
        heapq.heappush(self._heap, (key, entry.seq, entry.hash))

    def _live(self, item: tuple[tuple[int, int, int], int, bytes]) -> PoolEntry | None:
        entry = self._all.get(item[2])
        return entry if entry is not None and entry.seq == item[1] else None

    def _peek_cheapest(self) -> PoolEntry | None:
        while self._heap:
            entry = self._live(self._heap[0])
            if entry is not None:
                return entry
            heapq.heappop(self._heap)
        return None

    def _pop_cheapest(self) -> PoolEntry | None:
        while self._heap:
            entry = self._live(heapq.heappop(self._heap))
            if entry is not None:
                return entry
        return None

    def _repush(self, entries: list[PoolEntry]) -> None:
        for entry in entries:
            self._push_price(entry)
