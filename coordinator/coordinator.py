"""The coordinator as a named Ray actor: block production on a timer, serving the API.

``CoordinatorActor`` (named ``evmpp-coordinator``) builds the genesis, owns a
``BlockProducer`` (``coordinator/producer.py``) whose Compute Units are Ray placement groups
(``compute_unit/worker.py``), produces a block every interval on a thread once started, and
answers the API's calls concurrently. ``RayBackend`` is the API's handle on it
(``ebs/api.py``): errors come back as values and are raised again on the caller's side.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group

from bench.workload.genesis import build_genesis
from cluster.metrics import ClusterMetrics
from compute_unit.worker import ComputeUnit, placed, request_placement
from coordinator.producer import BlockProducer, CoordinatorSettings, SubmitError
from ebs.api import LocalBackend

ACTOR_NAME = "evmpp-coordinator"


class RayCuFactory:
    """Compute Units on the Ray cluster, placed without stalling block production.

    A CU whose placement group is not placed within ``wait_s`` stays requested (so Ray's
    autoscaler sees the demand and can add a node) and the factory answers None; a later
    call hands out that group's CU once the cluster has placed it. At most ``max_waiting``
    groups wait at a time.
    """

    def __init__(self, wait_s: float = 1.0, max_waiting: int = 4) -> None:
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


@ray.remote(num_cpus=0, max_concurrency=16)
class CoordinatorActor:
    def __init__(
        self,
        settings: CoordinatorSettings,
        accounts: int,
        seed: int,
        data_dir: str | None = None,
        hints_dir: str | None = None,
    ) -> None:
        genesis = build_genesis(accounts, seed=seed)
        metrics = ClusterMetrics()
        self.cus = RayCuFactory()
        self.producer = BlockProducer(
            genesis.state.items(),
            settings,
            self.cus,
            data_dir,
            hints_dir,
            on_block=metrics.on_block,
        )
        self.backend = LocalBackend(self.producer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.halted: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="blocks", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                header = self.producer.produce()
            except Exception as err:  # stop producing; the event log says why
                self.halted = f"block {self.producer.number + 1} failed: {err!r}"
                self.producer._event(self.producer.number + 1, "failure", f"halted: {self.halted}")
                return
            if self.producer.settings.verify and not header.verified:
                self.halted = f"block {header.number} differs from sequential py-evm"
                self.producer._event(header.number, "failure", f"halted: {self.halted}")
                return
            interval = self.producer.settings.block_interval
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def call(self, method: str, *args: Any) -> tuple[bool, Any]:
        """An API call: (True, result) or (False, (status, message))."""
        try:
            return True, getattr(self.backend, method)(*args)
        except SubmitError as err:
            return False, (err.status, str(err))

    def shutdown(self) -> None:
        self.stop()
        self.producer.close()
        self.cus.close()


class RayBackend:
    """``ebs.api.Backend`` forwarding to the coordinator actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def _call(self, method: str, *args: Any) -> Any:
        ok, result = ray.get(self.actor.call.remote(method, *args))
        if not ok:
            status, message = result
            raise SubmitError(message, status)
        return result

    def submit(self, raw: bytes) -> str:
        return self._call("submit", raw)

    def subscribe(self, raw: bytes) -> dict[str, Any]:
        return self._call("subscribe", raw)

    def cancel(self, subscription: str, raw: bytes) -> dict[str, Any]:
        return self._call("cancel", subscription, raw)

    def subscription(self, subscription: str) -> dict[str, Any] | None:
        return self._call("subscription", subscription)

    def subscriptions(self) -> list[dict[str, Any]]:
        return self._call("subscriptions")

    def cluster(self) -> dict[str, Any]:
        return self._call("cluster")

    def block(self, number: int | None) -> dict[str, Any] | None:
        return self._call("block", number)

    def events(self, since: int) -> list[dict[str, Any]]:
        return self._call("events", since)
