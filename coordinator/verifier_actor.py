"""The verifier as a Ray actor: a validator replica with a state of its own.

``VerifierActor`` wraps a ``Verifier`` (``coordinator/verifier.py``); ``RayVerifier`` is the
producer's handle (``VerifierAPI``): ``submit`` sends a committed block and returns at once
(the actor runs its calls one at a time, in the order sent), ``poll`` collects the verdicts
that are ready without waiting, ``lag`` is how many blocks are sent and not yet verified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ray
from eth.abc import VirtualMachineAPI
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from coordinator.verifier import CommittedBlock, Verdict, Verifier
from storage.keys import StateKey


@ray.remote(num_cpus=0, max_restarts=0)
class VerifierActor:
    def __init__(
        self,
        genesis: list[tuple[StateKey, Any]],
        chain_id: int,
        vm_at: Callable[[int, int], type[VirtualMachineAPI]],
    ) -> None:
        self.verifier = Verifier(genesis, chain_id, vm_at)

    def verify(self, block: CommittedBlock) -> Verdict:
        return self.verifier.check(block)


class RayVerifier:
    """``VerifierAPI`` over a ``VerifierActor``."""

    def __init__(
        self,
        genesis: Iterable[tuple[StateKey, Any]],
        chain_id: int,
        vm_at: Callable[[int, int], type[VirtualMachineAPI]],
    ) -> None:
        # Beside the coordinator (the head pod, whose CPUs are budgeted for it), not on a
        # worker whose CPUs are the Compute Units'.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.actor = VerifierActor.options(scheduling_strategy=here).remote(
            list(genesis), chain_id, vm_at
        )
        self._outstanding: list[ray.ObjectRef] = []

    def submit(self, block: CommittedBlock) -> None:
        self._outstanding.append(self.actor.verify.remote(block))

    def poll(self) -> list[Verdict]:
        if not self._outstanding:
            return []
        ready, _ = ray.wait(self._outstanding, num_returns=len(self._outstanding), timeout=0)
        if not ready:
            return []
        done = set(ready)
        self._outstanding = [ref for ref in self._outstanding if ref not in done]
        try:
            verdicts = ray.get(ready)
        except ray.exceptions.RayActorError as err:
            return [Verdict(-1, False, f"the verifier actor died: {err}")]
        return sorted(verdicts, key=lambda verdict: verdict.number)

    def lag(self) -> int:
        return len(self._outstanding)

    def close(self) -> None:
        ray.kill(self.actor)
