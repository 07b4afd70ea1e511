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

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

from chain import Genesis
from cluster.metrics import ClusterMetrics
from compute_unit.remote_state import RemoteState
from compute_unit.worker import ComputeUnit, CuUnavailable, placed, request_placement
from coordinator.node import Node
from coordinator.node_api import NodeAPI, NodeError
from coordinator.producer import BlockProducer, CoordinatorSettings
from coordinator.verifier_actor import RayVerifier

ACTOR_NAME = "evmpp-coordinator"


class RayCuFactory:
    """Compute Units on the Ray cluster, made without stalling block production.

    A CU is asked for (its placement group requested) and made on a thread of its own:
    placed by the cluster (a group that does not fit stays requested, so Ray's autoscaler
    sees the demand and can add a node), then its worker actors started. Until it is ready
    the factory answers None; the next call after that hands it out. Waiting here instead
    stopped the chain: a second per pending scale-up per block, a second and a half to start
    a CU's actors. At most ``max_waiting`` CUs are in the making at a time.
    """

    def __init__(self, max_waiting: int = 4) -> None:
        self.max_waiting = max_waiting
        self._threads = ThreadPoolExecutor(max_workers=max_waiting, thread_name_prefix="cu-make")
        self._making: dict[str, tuple[PlacementGroup, int, Future[ComputeUnit]]] = {}
        self._closed = threading.Event()

    @property
    def waiting(self) -> list[str]:
        """The CUs asked for and not handed out yet."""
        return list(self._making)

    def _make(self, name: str, cores: int, group: PlacementGroup) -> ComputeUnit:
        while not placed(group, 1.0):
            if self._closed.is_set():
                raise CuUnavailable(f"{name}: the factory closed before it was placed")
        return ComputeUnit(cores, name, placement=group)  # returns once its actors run

    def __call__(self, name: str, cores: int) -> ComputeUnit | None:
        for making, (group, size, future) in list(self._making.items()):
            if size != cores or not future.done():
                continue
            del self._making[making]
            try:
                return future.result()
            except Exception:  # the group was removed or the actors failed: ask again
                remove_placement_group(group)
        in_flight = any(size == cores for _, size, _ in self._making.values())
        if in_flight or len(self._making) >= self.max_waiting:
            return None  # one CU of a size in the making at a time: callers ask every block
        group = request_placement(name, cores)
        future = self._threads.submit(self._make, name, cores, group)
        self._making[name] = (group, cores, future)
        return None

    def close(self) -> None:
        self._closed.set()
        for group, _, future in self._making.values():
            if future.done() and future.exception() is None:
                future.result().shutdown()
            else:
                remove_placement_group(group)
        self._making.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)


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
            # CUs on other nodes (Kubernetes worker pods) do not see data_dir's volume
            far_state=RemoteState.on_this_node(),
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
        except Exception as err:  # a bug: said as an internal error, the node goes on
            logging.getLogger(__name__).exception("%s failed", method)
            return False, NodeError(f"internal error: {type(err).__name__}", -32603, status=500)

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
