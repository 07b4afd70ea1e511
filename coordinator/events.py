"""The node's event log: what happened to the cluster, block by block.

Every proposal, vote, scaling step, subscription change, dropped transaction and failure is an
``Event`` with the block it belongs to; the REST API serves them (``/v1/events``) and the
elastic story prints them where they happened.
"""

from __future__ import annotations

import threading
from typing import Any

from coordinator.node_api import Event

MAX_EVENTS = 100_000  # the oldest are forgotten past this; the chain data keeps what matters


class EventLog:
    def __init__(self, limit: int = MAX_EVENTS) -> None:
        self.limit = limit
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def add(self, block: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._events.append(Event(block, kind, message, data or {}))
            if len(self._events) > self.limit:
                del self._events[: len(self._events) - self.limit]

    def since(self, block: int) -> list[Event]:
        with self._lock:
            return [event for event in self._events if event.block >= block]

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [event for event in self._events if event.kind == kind]

    def __iter__(self):  # noqa: ANN204  (a snapshot, safe while blocks are produced)
        with self._lock:
            return iter(list(self._events))

    def __len__(self) -> int:
        return len(self._events)
