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


def lanes_of(groups: Sequence[Group], n_workers: int, count: int) -> list[int]:
    """Each of ``count`` positions' worker, as ``assign_groups`` deals their groups (Block-STM
    lanes: a worker takes its own lane's ready transactions first)."""
    lanes = [0] * count
    for slot, share in enumerate(assign_groups(groups, n_workers)):
        for group in share:
            for index in group:
                lanes[index] = slot
    return lanes


def predecessors(groups: Sequence[Group], count: int) -> list[int | None]:
    """Each position's predecessor in its group (None: first in its group, or in none)."""
    before: list[int | None] = [None] * count
    for group in groups:
        for earlier, later in zip(group, group[1:], strict=False):
            before[later] = earlier
    return before
