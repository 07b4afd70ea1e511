"""Scaling the public block space's CU pool: load, proposal, validator vote, step.

After each block the basic pool's load (execution time needed per block interval, in CUs)
feeds the policy (``cluster/autoscaler.py``); a proposal goes to the validators' vote
(``cluster/governance.py``) and, approved, CUs are added or removed. A CU the cluster cannot
place yet leaves the step pending, retried every block. Every step is an event.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict

from cluster.autoscaler import PoolLoad, Proposal, ScalingPolicy, decide
from cluster.governance import Validator, vote
from compute_unit.pool import CuPool
from coordinator.cu_supply import CuSupply
from coordinator.events import EventLog

PBS = "pbs"


class Scaler:
    def __init__(
        self,
        pool: CuPool,
        supply: CuSupply,
        events: EventLog,
        policy: ScalingPolicy,
        validators: Sequence[Validator],
        interval: float,
        seed: int,
    ) -> None:
        self.pool = pool
        self.supply = supply
        self.events = events
        self.policy = policy
        self.validators = list(validators)
        self.interval = interval
        self.rng = random.Random(seed)
        self.load = PoolLoad(len(pool.cus))
        self.pending_cus = 0  # approved but not placed yet

    def after_block(self, number: int, pbs_seconds: float) -> None:
        demand = pbs_seconds * len(self.pool.cus) / self.interval
        self.load.record(demand, self.policy.window)
        if self.pending_cus:
            self._grow(number, self.pending_cus, "retrying a pending scale-up")
        proposal = decide(PBS, self.load, len(self.pool.cus), number, self.policy)
        if proposal is None:
            return
        self.events.add(
            number,
            "proposal",
            f"{proposal.pool}: {proposal.reason}, propose "
            f"{proposal.current} -> {proposal.target} CUs",
            asdict(proposal),
        )
        outcome = vote(
            self.validators,
            self.load.demand,
            proposal.current,
            proposal.scale_up,
            (self.policy.up, self.policy.down),
            self.rng,
        )
        verdict = "approved" if outcome.approved else "rejected"
        self.events.add(
            number,
            "vote",
            f"{verdict}: {outcome.approving_stake} of {outcome.total_stake} stake",
            {"ballots": [asdict(b) for b in outcome.ballots]},
        )
        self.load.restart()
        if outcome.approved:
            self._step(number, proposal)

    def _step(self, number: int, proposal: Proposal) -> None:
        if proposal.scale_up:
            self._grow(number, proposal.target - proposal.current, proposal.reason)
            return
        while len(self.pool.cus) > proposal.target:
            cu = self.pool.cus.pop()
            cu.shutdown()
            self.events.add(
                number, "scale", f"{PBS}: removed {cu.name}", {"cus": len(self.pool.cus)}
            )

    def _grow(self, number: int, count: int, reason: str) -> None:
        previously, self.pending_cus = self.pending_cus, 0
        for placed in range(count):
            cu = self.supply.new()
            if cu is None:
                self.pending_cus = count - placed
                if self.pending_cus == previously:
                    return  # still waiting, already said
                self.events.add(
                    number,
                    "pending",
                    f"{PBS}: {self.pending_cus} CUs not ready yet (the cluster places and "
                    "starts them, or has no room); retried every block",
                )
                return
            self.pool.cus.append(cu)
            self.events.add(
                number, "scale", f"{PBS}: added {cu.name} ({reason})", {"cus": len(self.pool.cus)}
            )

    def load_per_cu(self) -> float:
        return round(self.load.demand / len(self.pool.cus), 4)
