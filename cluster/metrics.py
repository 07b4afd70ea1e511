"""Ray metrics of the elastic cluster, for the Ray dashboard's metrics views.

Gauges ``evmpp_cu_count{pool}``, ``evmpp_load{pool}``, ``evmpp_tps``,
``evmpp_ebs_gas_limit{dapp}``, ``evmpp_ebs_parallelism{dapp}``, ``evmpp_verifier_lag`` and
counters
``evmpp_blocks``, ``evmpp_reexecutions``, ``evmpp_scale_events{pool}``, set by the coordinator
actor after each block (Ray exports them to Prometheus; Grafana's Ray dashboards show them).
"""

from __future__ import annotations

import time
from typing import Any

from ray.util.metrics import Counter, Gauge


class ClusterMetrics:
    def __init__(self) -> None:
        self.cus = Gauge("evmpp_cu_count", "Compute Units per pool", tag_keys=("pool",))
        self.load = Gauge("evmpp_load", "pool load (demand / capacity)", tag_keys=("pool",))
        self.tps = Gauge("evmpp_tps", "transactions per second over the last block")
        self.gas_limit = Gauge("evmpp_ebs_gas_limit", "EBS gas limit", tag_keys=("dapp",))
        self.parallelism = Gauge("evmpp_ebs_parallelism", "EBS parallelism P", tag_keys=("dapp",))
        self.blocks = Counter("evmpp_blocks", "blocks committed")
        self.reexecutions = Counter("evmpp_reexecutions", "transactions re-executed")
        self.scale_events = Counter(
            "evmpp_scale_events", "CUs added or removed", tag_keys=("pool",)
        )
        self.verifier_lag = Gauge(
            "evmpp_verifier_lag", "blocks committed and not yet verified by the replica"
        )
        self._last = time.monotonic()
        self._events_seen = 0

    def on_block(self, producer: Any, record: Any) -> None:
        """After each block: ``producer`` is the ``BlockProducer``, ``record`` its
        ``BlockRecord`` (duck-typed: this layer does not import the coordinator)."""
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 1e-6), now
        self.blocks.inc()
        if record.reexecutions:
            self.reexecutions.inc(record.reexecutions)
        self.tps.set(sum(record.txs.values()) / elapsed)
        for pool, cus in record.cus.items():
            self.cus.set(cus, tags={"pool": pool})
        self.load.set(producer.scaler.load_per_cu(), tags={"pool": "pbs"})
        for subscription in producer.book.active():
            self.gas_limit.set(subscription.space.gas_limit, tags={"dapp": subscription.id})
            self.parallelism.set(subscription.space.parallelism, tags={"dapp": subscription.id})
        verifier = producer.verifier_state()
        self.verifier_lag.set(verifier.lag)
        events = list(producer.events)
        for event in events[self._events_seen :]:
            if event.kind == "scale":
                self.scale_events.inc(tags={"pool": event.message.split(":")[0]})
        self._events_seen = len(events)
