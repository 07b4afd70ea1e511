"""The coordinator as a named Ray actor: block production on a timer, serving the node's API.

``CoordinatorActor`` (named ``evmpp-coordinator``) owns a ``BlockProducer``
(``coordinator/producer.py``) whose Compute Units are Ray placement groups
(``compute_unit/worker.py``) and whose verifier is a replica actor of its own
(``coordinator/verifier_actor.py``); it produces a block every interval on a thread once
started and answers ``NodeAPI`` calls concurrently. A failed block (a lost CU, a storage
error) is an event and is tried again, backing off; only the verifier's mismatch halts.
``RayNode`` is the HTTP layer's handle on it (``api/``): errors come back as values and are
raised again on the caller's side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

from chain import Genesis
from cluster.metrics import ClusterMetrics
from compute_unit.worker import ComputeUnit, placed, request_placement
from coordinator.node import Node
from coordinator.node_api import NodeAPI, NodeError
from coordinator.producer import BlockProducer, CoordinatorSettings
from coordinator.verifier_actor import RayVerifier

ACTOR_NAME = "evmpp-coordinator"


class RayCuFactory:
    """Compute Units on the Ray cluster, placed without stalling block production.

    A CU whose placement group is not placed within ``wait_s`` stays requested (so Ray's
    autoscaler sees the demand and can add a node) and the factory answers None; a later
    call hands out that group's CU once the cluster has placed it. At most ``max_waiting``
    groups wait at a time.
    """

    def __init__(self, wait_s: float = 0.05, max_waiting: int = 4) -> None:
        """``wait_s`` is short: the producer asks after each block while a scale-up is
        pending, and every second waited here was a second the chain stood still."""
        self.wait_s, self.max_waiting = wait_s, max_waiting
        self.waiting: dict[str, tuple[PlacementGroup, int]] = {}

    def __call__(self, name: str, cores: int) -> ComputeUnit | None:
        for waiting_name, (group, size) in list(self.waiting.items()):
            if size == cores and placed(group, 0.0):
                del self.waiting[waiting_name]
                return ComputeUnit(cores, waiting_name, placement=group)
        if len(self.waiting) >= self.max_waiting:
            return None
        group = request_placement(name, cores)
        if placed(group, self.wait_s):
            return ComputeUnit(cores, name, placement=group)
        self.waiting[name] = (group, cores)
        return None

    def close(self) -> None:
        for group, _ in self.waiting.values():
            remove_placement_group(group)
        self.waiting.clear()


def _method_names(protocol: type) -> list[str]:
    names = set()
    for klass in protocol.__mro__:
        if klass.__module__ == "coordinator.node_api":
            names |= {n for n, v in vars(klass).items() if callable(v) and not n.startswith("_")}
    return sorted(names)


NODE_METHODS = _method_names(NodeAPI)


@ray.remote(num_cpus=0, max_concurrency=32)
class CoordinatorActor:
    """The node in the coordinator actor: produces blocks on a thread, answers ``NodeAPI``."""

    def __init__(
        self,
        genesis: Genesis,
        settings: CoordinatorSettings,
        data_dir: str | None = None,
        hints_dir: str | None = None,
        rpc: Callable[[Node], Callable[[bytes], Any]] | None = None,
    ) -> None:
        """``rpc``: makes the JSON-RPC body handler over the node (``api.rpc_handler``;
        given, not imported: the API layer sits above this one)."""
        metrics = ClusterMetrics()
        self.cus = RayCuFactory()
        self.producer = BlockProducer(
            genesis,
            settings,
            self.cus,
            data_dir,
            hints_dir,
            on_block=metrics.on_block,
            make_verifier=RayVerifier,
        )
        self.node = Node(self.producer)
        self._rpc = None if rpc is None else rpc(self.node)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="blocks", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                record = self.producer.produce()
                failures = 0
                if record is not None:
                    record.phases_ms["loop"] = round((time.monotonic() - started) * 1000, 2)
            except Exception as err:  # a CU lost, a storage error: say so, try again
                failures += 1
                number = self.producer.number + 1
                self.producer.events.add(number, "failure", f"block {number} failed: {err!r}")
            interval = self.producer.settings.block_interval
            wait = interval * min(failures + 1, 10) if failures else interval
            self._stop.wait(max(0.0, wait - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def call(self, method: str, *args: Any) -> tuple[bool, Any]:
        """A ``NodeAPI`` call: (True, result) or (False, the NodeError)."""
        if method not in NODE_METHODS:
            return False, NodeError(f"no method {method}", status=404)
        try:
            return True, getattr(self.node, method)(*args)
        except NodeError as err:
            return False, err

    def dispatch(self, body: bytes) -> Any:
        """A whole JSON-RPC body (a request or a batch) answered here: one round trip."""
        if self._rpc is None:
            raise RuntimeError("this coordinator was started without a JSON-RPC handler")
        return self._rpc(body)

    def shutdown(self) -> None:
        self.stop()
        self.producer.close()
        self.cus.close()


class RayNode:
    """``NodeAPI`` forwarding every call to the coordinator actor; with ``rpc`` (the actor
    was given a JSON-RPC handler) whole JSON-RPC bodies go over in one call (``dispatch``)."""

    def __init__(self, actor: Any, rpc: bool = False) -> None:
        self.actor = actor
        if rpc:
            self.dispatch = self._dispatch

    def _dispatch(self, body: bytes) -> Any:
        return ray.get(self.actor.dispatch.remote(body))

    def _call(self, method: str, *args: Any) -> Any:
        ok, result = ray.get(self.actor.call.remote(method, *args))
        if not ok:
            raise result
        return result


def _forwarder(name: str) -> Any:
    def forward(self: RayNode, *args: Any) -> Any:
        return self._call(name, *args)

    forward.__name__ = name
    return forward


for _name in NODE_METHODS:
    setattr(RayNode, _name, _forwarder(_name))
