"""Groups: how a block's transactions are dealt to a Compute Unit's workers.

A group is a list of block positions run in order on one worker (the planner in
``coordinator/`` decides them); ``assign_groups`` deals groups to workers, largest first onto
the least loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

Group = list[int]


def assign_groups(groups: Sequence[Group], n_workers: int) -> list[list[Group]]:
    """Deal groups to workers, largest first onto the least loaded worker."""
    shares: list[list[Group]] = [[] for _ in range(n_workers)]
    loads = [0] * n_workers
    for group in sorted(groups, key=len, reverse=True):
        target = loads.index(min(loads))
        shares[target].append(group)
        loads[target] += len(group)
    return shares
