"""Splits a block's transactions into groups for the Compute Unit's workers.

Foundation policy (the hint table replaces it): transactions of one sender always share a
group, since each depends on the previous one's nonce; sender components are then packed,
largest first, into the least loaded of ``n_groups`` groups. Each group lists block indices in
block order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

Group = list[int]


def group_by_sender(senders: Sequence[bytes], n_groups: int) -> list[Group]:
    """Indices grouped so one sender's transactions stay together, balanced by count."""
    if n_groups < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    by_sender: dict[bytes, list[int]] = {}
    for index, sender in enumerate(senders):
        by_sender.setdefault(sender, []).append(index)
    return pack_components(list(by_sender.values()), n_groups)


def pack_components(components: list[list[int]], n_groups: int) -> list[Group]:
    """Greedy longest-first packing of index lists into ``n_groups`` sorted groups."""
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    load = [(0, g) for g in range(n_groups)]
    for component in sorted(components, key=lambda c: (-len(c), c[0])):
        size, g = heapq.heappop(load)
        groups[g].extend(component)
        heapq.heappush(load, (size + len(component), g))
    return [sorted(group) for group in groups if group]
