"""The multi-version store of Block-STM: every transaction's latest writes, by state key and
block position (pevm's ``mv_memory.rs``, Gelashvili et al. 2022).

While a block executes, each state key maps to the entries the block's transactions wrote
to it, by position: a value, a balance ``Credit`` (the lazy, commutative credits of
``compute_unit/state.py``: fees, plain transfers' recipients), or ``ESTIMATE`` (the writer was
aborted and runs again: a reader waits for it rather than read a value about to change).
Wiping an address's storage (a self-destruct, a contract created over old storage) is an
entry on ``(WIPE, address)``. A read at position ``j`` sees the latest entry below ``j``,
credits summed on top of the write or stored value under them; the pre-block state is below
everything.

The coordinator keeps one (the scheduler's, ``compute_unit/scheduler.py``) and logs every
change; each worker keeps a replica brought up to date from that log with each task, so a
worker reads what the block's other transactions wrote without a round trip per read.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from compute_unit.state import TxAccess
from storage.keys import EMPTY_ACCOUNT, SLOT, StateKey, StateReader, acct_key

WIPE = "wipe"


class _Estimate:
    def __repr__(self) -> str:
        return "ESTIMATE"

    def __reduce__(self) -> str:
        return "ESTIMATE"  # one object across pickling (the module attribute)


ESTIMATE = _Estimate()


@dataclass(frozen=True)
class Credit:
    """A balance addition by one transaction to an account it did not otherwise write."""

    amount: int


class Blocked(BaseException):  # noqa: N818 (a control-flow signal, not an error)
    """A read met an ``ESTIMATE``: the reader waits for transaction ``blocking``.

    A ``BaseException``: py-evm catches ``Exception`` in places (each EIP-7702 authorization),
    and a swallowed read would leave an outcome that reads nothing and is never invalid."""

    def __init__(self, blocking: int) -> None:
        super().__init__(f"waits for transaction {blocking}")
        self.blocking = blocking


def entries_of(access: TxAccess) -> dict[StateKey, Any]:
    """A transaction's writes as multi-version entries: credits folded into the accounts it
    wrote, kept apart as ``Credit`` for the others; each wipe an entry of its own."""
    entries: dict[StateKey, Any] = {(WIPE, address): True for address in access.wiped}
    entries.update(access.writes)
    for address, amount in access.credits.items():
        key = acct_key(address)
        if key in access.writes:
            account = access.writes[key] or EMPTY_ACCOUNT
            entries[key] = account._replace(balance=account.balance + amount)
        else:
            entries[key] = Credit(amount)
    return entries


class MVMemory:
    """Entries by key and position over the pre-block state."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self._data: dict[StateKey, dict[int, Any]] = {}
        self._positions: dict[StateKey, list[int]] = {}
        self.written: dict[int, frozenset[StateKey]] = {}  # each transaction's keys

    # -- writes ------------------------------------------------------------------------------
    def record(self, index: int, entries: Mapping[StateKey, Any]) -> bool:
        """Install transaction ``index``'s entries (replacing its previous ones); whether it
        wrote a key its previous incarnation did not (readers above may now be stale)."""
        previous = self.written.get(index, frozenset())
        for key in previous - entries.keys():
            self._remove(key, index)
        for key, value in entries.items():
            self._put(key, index, value)
        self.written[index] = frozenset(entries)
        return bool(entries.keys() - previous)

    def estimate(self, index: int) -> None:
        """Transaction ``index`` was aborted: its entries become ``ESTIMATE``."""
        for key in self.written.get(index, ()):
            self._data[key][index] = ESTIMATE

    def entry(self, key: StateKey, index: int) -> Any:
        """Transaction ``index``'s own entry for ``key`` (None: it has none)."""
        return self._data.get(key, {}).get(index)

    def _put(self, key: StateKey, index: int, value: Any) -> None:
        versions = self._data.setdefault(key, {})
        if index not in versions:
            insort(self._positions.setdefault(key, []), index)
        versions[index] = value

    def _remove(self, key: StateKey, index: int) -> None:
        del self._data[key][index]
        positions = self._positions[key]
        positions.pop(bisect_left(positions, index))

    # -- reads -------------------------------------------------------------------------------
    def _below(self, key: StateKey, position: int) -> Iterator[tuple[int, Any]]:
        """``key``'s entries below ``position``, latest first."""
        positions = self._positions.get(key)
        if not positions:
            return
        versions = self._data[key]
        for at in range(bisect_left(positions, position) - 1, -1, -1):
            index = positions[at]
            yield index, versions[index]

    def read(self, key: StateKey, position: int) -> Any:
        """The value transaction ``position`` sees for ``key``; ``Blocked`` on an estimate."""
        credit = 0
        value: Any = None
        written_at = -1
        found = False
        for index, entry in self._below(key, position):
            if entry is ESTIMATE:
                raise Blocked(index)
            if isinstance(entry, Credit):
                credit += entry.amount
                continue
            value, written_at, found = entry, index, True
            break
        if key[0] == SLOT:
            for index, entry in self._below((WIPE, key[1]), position):
                if index <= written_at:  # a transaction's writes come after its own wipe
                    break
                if entry is ESTIMATE:
                    raise Blocked(index)
                # wiped after the slot's last write: 0 over an in-block write, absent over the
                # stored value (as ``WriteLayer`` reads it: the final pass compares)
                value, found = (0 if written_at >= 0 else None), True
                break
        if not found:
            value = self.base.get(key)
        if credit:
            account = value or EMPTY_ACCOUNT
            value = account._replace(balance=account.balance + credit)
        return value

    def latest_writer(self, key: StateKey, position: int) -> int | None:
        """The highest transaction below ``position`` with an entry ``key``'s value comes
        from (a slot's address wipes included); None: the pre-block state."""
        writers = [next(self._below(key, position), (None,))[0]]
        if key[0] == SLOT:
            writers.append(next(self._below((WIPE, key[1]), position), (None,))[0])
        return max((w for w in writers if w is not None), default=None)

    def next_overwrite(self, key: StateKey, index: int, upto: int | None = None) -> int | None:
        """The lowest transaction above ``index`` whose entry for ``key`` replaces the value
        below it: readers above that one do not see ``index``'s entry. A ``Credit`` adds to
        the value below and an ``ESTIMATE`` may become one, so neither hides it. Looked for
        up to ``upto`` only (None past it)."""
        positions = self._positions.get(key)
        if not positions:
            return None
        versions = self._data[key]
        for at in range(bisect_left(positions, index + 1), len(positions)):
            position = positions[at]
            if upto is not None and position > upto:
                return None
            entry = versions[position]
            if entry is not ESTIMATE and not isinstance(entry, Credit):
                return position
        return None


class MVReader:
    """``MVMemory`` as a ``StateReader`` for the transaction at ``position`` (set before each
    transaction runs: the py-evm state reads through it)."""

    def __init__(self, memory: MVMemory, position: int = 0) -> None:
        self.memory = memory
        self.position = position
        self.blocked: int | None = None  # a ``Blocked`` raised for this position, if any

    def at(self, position: int) -> None:
        self.position, self.blocked = position, None

    def get(self, key: StateKey) -> Any:
        try:
            return self.memory.read(key, self.position)
        except Blocked as blocked:
            self.blocked = blocked.blocking  # seen even if something catches it above
            raise
