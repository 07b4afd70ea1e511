"""Simulated validator vote on a scaling proposal.

Each validator has a stake and measures the pool's load itself, with its own noise (a
relative Gaussian error: validators see different machines). It approves a scale-up when the
load it measures is over the up threshold of the proposal's current capacity, a scale-down
when under the down threshold. The proposal passes when the approving validators hold more
than 2/3 of the total stake (stake, not head count).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

SUPERMAJORITY = 2 / 3


@dataclass(frozen=True)
class Validator:
    name: str
    stake: int
    noise: float = 0.05  # standard deviation of its relative load-measurement error


@dataclass(frozen=True)
class Ballot:
    validator: str
    stake: int
    measured: float  # the load it measured, in Compute Units
    approve: bool


@dataclass(frozen=True)
class Outcome:
    approved: bool
    approving_stake: int
    total_stake: int
    ballots: tuple[Ballot, ...]


def default_validators(count: int = 4) -> list[Validator]:
    """A small validator set with unequal stakes."""
    return [Validator(f"validator-{i}", stake=100 * (i + 1)) for i in range(count)]


def tally(ballots: Sequence[Ballot]) -> Outcome:
    total = sum(ballot.stake for ballot in ballots)
    approving = sum(ballot.stake for ballot in ballots if ballot.approve)
    return Outcome(approving * 3 > total * 2, approving, total, tuple(ballots))


def vote(
    validators: Sequence[Validator],
    demand: float,
    capacity: int,
    scale_up: bool,
    thresholds: tuple[float, float],
    rng: random.Random,
) -> Outcome:
    """Each validator measures ``demand`` (CUs' worth of work per interval) with its noise and
    checks it against ``capacity`` CUs: up over ``thresholds[0]``, down under ``thresholds[1]``."""
    up, down = thresholds
    ballots = []
    for validator in validators:
        measured = max(0.0, demand * (1 + rng.gauss(0.0, validator.noise)))
        share = measured / capacity
        approve = share > up if scale_up else share < down
        ballots.append(Ballot(validator.name, validator.stake, round(measured, 4), approve))
    return tally(ballots)
