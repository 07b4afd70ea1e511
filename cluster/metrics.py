"""Ray metrics of the elastic cluster, for the Ray dashboard's metrics views.

Gauges ``evmpp_cu_count{pool}``, ``evmpp_load{pool}``, ``evmpp_tps``,
``evmpp_ebs_gas_limit{dapp}``, ``evmpp_ebs_parallelism{dapp}`` and counters
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
        self._last = time.monotonic()
        self._events_seen = 0

    def on_block(self, producer: Any, header: Any) -> None:
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 1e-6), now
        self.blocks.inc()
        if header.reexecutions:
            self.reexecutions.inc(header.reexecutions)
        self.tps.set(sum(header.txs.values()) / elapsed)
        cluster = producer.cluster()
        for pool, info in cluster["pools"].items():
            self.cus.set(len(info["cus"]), tags={"pool": pool})
        for pool, load in cluster["load"].items():
            self.load.set(load, tags={"pool": pool})
        for record in producer.subscriptions.values():
            if record.space is not None and record.status == "active":
                self.gas_limit.set(record.space.gas_limit, tags={"dapp": record.id})
                self.parallelism.set(record.space.parallelism, tags={"dapp": record.id})
        for event in producer.events[self._events_seen :]:
            if event.kind == "scale":
                self.scale_events.inc(tags={"pool": event.message.split(":")[0]})
        self._events_seen = len(producer.events)
