"""Elastic block space: each subscribed dApp's gas limit and parallelism (litepaper §5.4).

A block has the public block space (PBS, gas limit ``g_pbs``) and one elastic block space per
active subscription, run on the dApp's own Compute Unit alongside the PBS. Time and gas
convert at one CPU second = 10,000,000 gas:

- ``t_pbs = F(g_pbs)``: the time a block's PBS may take (its gas at one core);
- ``g_ebs = G(t_pbs × P)``: the gas the EBS gets, so that with parallelism ``P`` on its CU it
  finishes in about the same time; an EBS starts with ``P = 1`` (no parallelism known: the
  worst case, ``g_ebs = g_pbs``);
- after each block, from its used gas ``g_used`` and measured execution time ``t_ebs``:
  ``U = g_used / g_ebs``, ``I = (t_pbs − t_ebs) / t_pbs × U``, ``P_new = P_old × (1 + I)``,
  clamped to ``[1, cores of its CU]``: an EBS that ran faster than the PBS budget while in
  use gets more gas, one that overran gets less.

Admission when EBS capacity is scarce (fewer free Compute Units than subscriptions waiting):
a sealed-bid auction, highest stake first (ties: earlier request first); the rest wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAS_PER_CPU_SECOND = 10_000_000


def cpu_seconds(gas: int) -> float:
    """F: the CPU time a gas amount stands for."""
    return gas / GAS_PER_CPU_SECOND


def gas_for(seconds: float) -> int:
    """G: the gas a CPU time stands for."""
    return int(seconds * GAS_PER_CPU_SECOND)


def ebs_gas_limit(pbs_gas_limit: int, parallelism: float) -> int:
    """``g_ebs = G(F(g_pbs) × P)``."""
    return gas_for(cpu_seconds(pbs_gas_limit) * parallelism)


def next_parallelism(
    parallelism: float, gas_used: int, gas_limit: int, t_pbs: float, t_ebs: float, cores: int
) -> float:
    """``P × (1 + I)`` with ``I = (t_pbs − t_ebs) / t_pbs × g_used / g_ebs``, in [1, cores]."""
    utilisation = gas_used / gas_limit if gas_limit else 0.0
    increase = (t_pbs - t_ebs) / t_pbs * utilisation
    return min(float(cores), max(1.0, parallelism * (1 + increase)))


@dataclass
class ElasticSpace:
    """One subscription's block space: its contracts, its CU's cores, its P and gas limit."""

    subscription: str
    contracts: frozenset[bytes]
    cores: int
    parallelism: float = 1.0
    gas_limit: int = 0
    history: list[tuple[int, int, int, float, float]] = field(default_factory=list)

    def open(self, pbs_gas_limit: int) -> None:
        """The gas limit for the next block."""
        self.gas_limit = ebs_gas_limit(pbs_gas_limit, self.parallelism)

    def after_block(self, number: int, gas_used: int, t_ebs: float, pbs_gas_limit: int) -> None:
        """Adapt P to the block just run; record (block, limit, used, t_ebs, P)."""
        t_pbs = cpu_seconds(pbs_gas_limit)
        self.history.append((number, self.gas_limit, gas_used, t_ebs, self.parallelism))
        self.parallelism = next_parallelism(
            self.parallelism, gas_used, self.gas_limit, t_pbs, t_ebs, self.cores
        )
        self.open(pbs_gas_limit)


@dataclass(frozen=True)
class Bid:
    """A subscription waiting for a Compute Unit: its stake, and its place in line."""

    subscription: str
    stake: int
    order: int


def auction(bids: list[Bid], free: int) -> tuple[list[Bid], list[Bid]]:
    """Sealed-bid admission: the ``free`` highest stakes win (earlier first on ties)."""
    ranked = sorted(bids, key=lambda bid: (-bid.stake, bid.order))
    return ranked[: max(free, 0)], ranked[max(free, 0) :]
