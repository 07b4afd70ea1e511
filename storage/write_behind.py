"""The block whose write is still in flight, and the state as the next block must read it.

With write-behind commits (``Committer.commit(..., background=True)``) block N's state root
is known once SC has merkelized it in memory; its State Storage batch and State Commitment
pages are then written on a thread of their own while block N + 1 runs (the litepaper's
asynchronous persistence). Until that write lands, State Storage still holds block N - 1:
block N + 1 reads N's write set from memory, through ``BehindReader``, and the store below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.keys import SLOT, StateKey


def stored_after(
    key: StateKey, writes: Mapping[StateKey, Any], wiped: Iterable[bytes]
) -> tuple[bool, Any]:
    """Whether a block's write set decides ``key``, and its value in State Storage once the
    block is written: a slot written 0 or wiped reads ``None``, as an absent slot does."""
    if key in writes:
        value = writes[key]
        return True, None if key[0] == SLOT and not value else value
    if key[0] == SLOT and key[1] in wiped:
        return True, None
    return False, None


@dataclass(frozen=True)
class InFlight:
    """A committed block (its root known) whose stores are still being written."""

    number: int
    state_root: bytes
    writes: Mapping[StateKey, Any]
    wiped: frozenset[bytes]


class BehindReader:
    """A state reader: ``in_flight``'s write set over ``base`` (the stores as last written).

    Reads as State Storage will once the write lands: a slot written 0 or wiped reads
    ``None``, as an absent slot does. Picklable when ``base`` is (a worker's ``StorageView``);
    ``get_many`` when ``base`` has it (State Storage itself)."""

    def __init__(self, in_flight: InFlight, base: Any) -> None:
        self.in_flight = in_flight
        self.base = base

    def _value(self, key: StateKey) -> tuple[bool, Any]:
        return stored_after(key, self.in_flight.writes, self.in_flight.wiped)

    def get(self, key: StateKey) -> Any:
        decided, value = self._value(key)
        return value if decided else self.base.get(key)

    def get_many(self, keys: Sequence[StateKey]) -> list[Any]:
        values: list[Any] = [None] * len(keys)
        below: list[int] = []
        for at, key in enumerate(keys):
            decided, values[at] = self._value(key)
            if not decided:
                below.append(at)
        if below:
            for at, value in zip(below, self.base.get_many([keys[i] for i in below]), strict=True):
                values[at] = value
        return values
