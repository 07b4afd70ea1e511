"""Every RocksDB store this process holds open, closed in order when the process exits.

RocksDB must be closed before the process exits: a DB still open when the C++ runtime tears
down its static state (RocksDB's background thread pools among it) can crash the process
after all its work is done. Python does not promise to destroy every object before that (the
committer even freezes long-lived objects out of the collector), so stores that were not closed
explicitly are closed here, each through its owner's ``close`` (column-family views first,
then the DB), from an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import Protocol

log = logging.getLogger(__name__)


class Store(Protocol):
    def close(self) -> None: ...


_open: weakref.WeakSet[Store] = weakref.WeakSet()


def opened(store: Store) -> None:
    """``store`` holds a RocksDB open from now on."""
    _open.add(store)


def closed(store: Store) -> None:
    """``store`` has released its RocksDB."""
    _open.discard(store)


def still_open() -> list[Store]:
    return list(_open)


@atexit.register
def close_open_stores() -> None:
    for store in still_open():
        try:
            store.close()
        except Exception as err:  # noqa: BLE001 - exiting anyway; name what did not close
            log.warning("could not close %r at exit: %s", store, err)
