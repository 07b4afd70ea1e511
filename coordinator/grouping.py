"""Splits a block's transactions into groups for the Compute Unit's workers, and decides
when a block is better run sequentially.

With hints, ``conflict_components`` builds the predicted conflict graph (two transactions
conflict when one writes a key the other reads or writes; a transaction that may touch
anything of a contract conflicts with every transaction touching that contract) and returns
its connected components, each in block order. Without hints (the foundation's policy),
transactions of one sender share a component, since each depends on the previous one's
nonce. Components are then packed, heaviest first by predicted gas, into the least loaded
of ``n_groups`` groups; a component heavier than a fair share cannot be balanced and is
reported. Each group lists block indices in block order.

``sequential_reason`` says when the plan cannot pay for its dispatch: a block so small that
the round trip to the workers costs more than it saves, or one whose largest group carries
nearly all predicted gas (one long dependency chain).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from compute_unit.groups import Group
from storage.keys import CODE, StateKey


def group_by_sender(
    senders: Sequence[bytes], n_groups: int, weights: Sequence[int] | None = None
) -> list[Group]:
    """Indices grouped so one sender's transactions stay together, balanced by weight."""
    if n_groups < 1:
        raise ValueError(f"n_groups must be at least 1, got {n_groups}")
    return pack_components(sender_components(senders), n_groups, weights)


def sender_components(senders: Sequence[bytes]) -> list[list[int]]:
    """Block indices by sender (each in block order), senders in order of first appearance."""
    by_sender: dict[bytes, list[int]] = {}
    for index, sender in enumerate(senders):
        by_sender.setdefault(sender, []).append(index)
    return list(by_sender.values())


class KeyAccess(Protocol):
    """A transaction's predicted access (``coordinator.learner.Prediction``)."""

    reads: set[StateKey]
    writes: set[StateKey]
    wildcard: bytes | None


def conflict_components(
    predictions: Sequence[KeyAccess], ignore: Iterable[StateKey] = ()
) -> list[list[int]]:
    """Connected components of the predicted conflict graph, each in block order.

    ``ignore``: keys that conflict with nothing (the fee recipient's balance is credited
    commutatively).
    """
    parent = list(range(len(predictions)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    ignored = set(ignore)
    wild = {p.wildcard for p in predictions if p.wildcard is not None}
    accessors: dict[Any, list[int]] = {}
    written: set[Any] = set()
    for index, prediction in enumerate(predictions):
        keys = (prediction.reads | prediction.writes) - ignored
        written.update(prediction.writes - ignored)
        touched = {key[1] for key in keys if key[0] != CODE} & wild
        if prediction.wildcard is not None:
            written.add(("any", prediction.wildcard))
            touched.add(prediction.wildcard)
        for key in itertools.chain(keys, (("any", address) for address in touched)):
            accessors.setdefault(key, []).append(index)
    for key, indices in accessors.items():
        if key in written:
            root = find(indices[0])
            for other in indices[1:]:
                parent[find(other)] = root
    components: dict[int, list[int]] = {}
    for index in range(len(predictions)):
        components.setdefault(find(index), []).append(index)
    return list(components.values())


def largest_share(components: Sequence[Sequence[int]], weights: Sequence[int]) -> float:
    """The heaviest component's share of the block's predicted gas."""
    total = sum(weights)
    heaviest = max((sum(weights[i] for i in c) for c in components), default=0)
    return heaviest / total if total else 0.0


def pack_components(
    components: list[list[int]], n_groups: int, weights: Sequence[int] | None = None
) -> list[Group]:
    """Greedy heaviest-first packing of index lists into ``n_groups`` sorted groups.

    A component weighs the sum of its members' ``weights`` (one each when not given).
    """

    def weight(component: list[int]) -> int:
        return len(component) if weights is None else sum(weights[i] for i in component)

    groups: list[list[int]] = [[] for _ in range(n_groups)]
    load = [(0, g) for g in range(n_groups)]
    for component in sorted(components, key=lambda c: (-weight(c), c[0])):
        size, g = heapq.heappop(load)
        groups[g].extend(component)
        heapq.heappush(load, (size + weight(component), g))
    return [sorted(group) for group in groups if group]


@dataclass(frozen=True)
class FallbackPolicy:
    """When a block runs sequentially in process instead of on the workers.

    ``min_gas``: predicted gas under which dispatch costs more than parallelism saves;
    ``min_gain``: the least predicted gain (total gas / largest group's gas) worth dispatch.
    The default ``min_gas`` is measured: on the mainnet blocks, 2 workers, blocks whose gas
    limits add up to under ~5M (about 60 ms of execution) ran faster in process, since the
    object-store round trip, outcome transfer and serial validation eat the gain.
    """

    min_gas: int = 5_000_000
    min_gain: float = 1.15


def sequential_reason(
    groups: Sequence[Group], weights: Sequence[int], policy: FallbackPolicy
) -> str | None:
    """Why this plan should run sequentially, or None when running it in parallel pays."""
    total = sum(weights)
    if total < policy.min_gas:
        return f"predicted gas {total:,} under {policy.min_gas:,}: dispatch costs more"
    largest = max((sum(weights[i] for i in group) for group in groups), default=0)
    if largest and total / largest < policy.min_gain:
        return f"one group carries {largest / total:.0%} of predicted gas: a dependency chain"
    return None
