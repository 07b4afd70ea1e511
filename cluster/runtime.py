"""Starts an embedded local Ray cluster, or joins an existing one by address."""

from __future__ import annotations

import logging
import os

import ray


def start_ray(
    num_cpus: int | None = None, address: str | None = None, dashboard: bool = False
) -> None:
    """Start (or join) Ray once per process; quiet, with no usage-stats prompt; the
    dashboard (port 8265) only when asked for."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    cpus = max(num_cpus or 0, os.cpu_count() or 1)
    ray.init(
        num_cpus=cpus,
        include_dashboard=dashboard,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
