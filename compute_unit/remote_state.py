"""State reads for Compute Unit workers on another machine than State Storage.

A block's workers read the pre-block state that preloading did not bring through a
``StorageView`` (``storage/ss.py``). Beside the store it opens a RocksDB secondary; on another
node (a Kubernetes worker pod, where only the head pod mounts the volume) it reads through a
``RemoteState``: the ``StateServer`` actor, pinned to the store's node, answers from a view of
its own there. A thin Ray shell over ``StorageView``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import ray
from ray.util.metrics import Counter
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from storage.keys import StateKey
from storage.ss import StorageView

_VIEWS_KEPT = 4  # blocks whose views a server keeps (a block's reads, and the next one's)


@ray.remote(num_cpus=0, max_concurrency=16)
class StateServer:
    """Serves a node's State Storage to workers elsewhere: values as of a block."""

    def __init__(self) -> None:
        self._views: OrderedDict[tuple[str, int], StorageView] = OrderedDict()
        # One read at a time: a view opens its secondary once, and the process's secondaries
        # are kept in one cache (``SecondaryStores``); the reads are point reads.
        self._lock = threading.Lock()
        # How much state crosses the network: an operator's signal that the hints miss.
        self._served = Counter(
            "evmpp_remote_state_reads", "state keys read by Compute Units on other nodes"
        )

    def read(self, path: str, number: int, keys: Sequence[StateKey]) -> list[Any]:
        with self._lock:
            view = self._views.pop((path, number), None) or StorageView(path, number)
            self._views[(path, number)] = view
            while len(self._views) > _VIEWS_KEPT:
                self._views.popitem(last=False)
            values = [view.get(key) for key in keys]
        self._served.inc(len(keys))
        return values


class RemoteState:
    """``FarReads`` over a ``StateServer`` (picklable: it travels inside a ``StorageView``)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    @classmethod
    def on_this_node(cls) -> RemoteState:
        """A server on the calling process's node, the one whose disk holds the store."""
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        return cls(StateServer.options(scheduling_strategy=here).remote())

    def read(self, path: str, number: int, keys: Sequence[StateKey]) -> list[Any]:
        return ray.get(self.server.read.remote(path, number, list(keys)))
