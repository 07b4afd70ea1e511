"""When Compute Unit pools grow or shrink: the stepwise scaling policy (pure logic).

A pool's *demand* in a block is the execution time it needed divided by the block interval:
Compute Units' worth of work (1.0 = one CU busy the whole interval). Its load is the demand
averaged over a window of blocks, against its capacity (CU count):

- load over ``up`` (125%) of capacity: propose growing to ``ceil(demand / target)`` CUs, so
  load falls to about ``target`` (75%);
- load under ``down`` (25%): propose shrinking the same way, never below the pool's minimum
  (the basic CUs; a dedicated EBS pool keeps its one CU while subscribed).

Hysteresis: the window restarts after every scaling step (or rejected proposal), so a pool
is judged again only on a full window measured at its new size; between the thresholds
nothing happens. A proposal still needs the validators' vote (``cluster/governance.py``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScalingPolicy:
    up: float = 1.25
    down: float = 0.25
    target: float = 0.75
    window: int = 3  # blocks averaged before judging
    max_cus: int = 16


@dataclass(frozen=True)
class Proposal:
    pool: str
    block: int
    current: int
    target: int
    load: float  # averaged demand / capacity
    reason: str

    @property
    def scale_up(self) -> bool:
        return self.target > self.current


@dataclass
class PoolLoad:
    """A pool's recent demand (CUs' worth of work per block interval)."""

    minimum: int
    demands: deque[float] = field(default_factory=deque)

    def record(self, demand: float, window: int) -> None:
        self.demands.append(demand)
        while len(self.demands) > window:
            self.demands.popleft()

    @property
    def demand(self) -> float:
        return sum(self.demands) / len(self.demands) if self.demands else 0.0

    def restart(self) -> None:
        self.demands.clear()


def decide(
    pool: str, load: PoolLoad, cus: int, block: int, policy: ScalingPolicy
) -> Proposal | None:
    """A proposal for the pool, once a full window says it is over- or under-loaded."""
    if len(load.demands) < policy.window or cus < 1:
        return None
    demand = load.demand
    share = demand / cus
    wanted = min(policy.max_cus, max(load.minimum, math.ceil(demand / policy.target)))
    if share > policy.up and wanted > cus:
        reason = f"load {share:.0%} of {cus} CU over {policy.up:.0%}"
    elif share < policy.down and wanted < cus:
        reason = f"load {share:.0%} of {cus} CU under {policy.down:.0%}"
    else:
        return None
    return Proposal(pool, block, cus, wanted, round(share, 4), reason)
