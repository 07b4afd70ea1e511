"""A pool of Compute Units that executes as one: the public block space's basic CUs (grown
and shrunk by the autoscaler), or an elastic space's dedicated CU.

A block's groups are dealt to the pool's CUs in proportion to their workers and run
concurrently (one thread per CU; each CU's call is a Ray round trip per worker). A CU whose
call fails outright (its actors gone) has its groups re-run on another CU of the pool, or in
this process when it was the only one; the pool reports it through ``on_event``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome, decode_known, run_group
from compute_unit.groups import Group, assign_groups
from compute_unit.state import StateReader, WriteLayer


class CuPool:
    """Compute Units executing a block's groups together (``ComputeUnitAPI``)."""

    def __init__(self, name: str, cus: Sequence[Any], on_event: Callable[[str], None]) -> None:
        self.name = name
        self.cus = list(cus)
        self.on_event = on_event
        self._threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"pool-{name}")

    @property
    def size(self) -> int:
        return sum(cu.size for cu in self.cus)

    @property
    def restarts(self) -> int:
        return sum(cu.restarts for cu in self.cus)

    def execute(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        groups: Sequence[Group],
        raw_txs: Sequence[bytes],
        crash: CrashPlan | None = None,
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> dict[int, TxOutcome]:
        shares = self._shares(groups)
        futures = {
            self._threads.submit(
                cu.execute, env, snapshot, share, raw_txs, crash, senders, preimages
            ): (cu, share)
            for cu, share in zip(self.cus, shares, strict=True)
            if share
        }
        outcomes: dict[int, TxOutcome] = {}
        for future, (cu, share) in futures.items():
            try:
                outcomes.update(future.result())
            except Exception as err:  # the CU is gone: its work runs elsewhere
                outcomes.update(
                    self._rerun(env, snapshot, share, raw_txs, cu, err, senders, preimages)
                )
        return outcomes

    def _shares(self, groups: Sequence[Group]) -> list[list[Group]]:
        """Groups dealt to CUs (largest first), weighted by each CU's workers."""
        slots = assign_groups(groups, self.size)
        shares: list[list[Group]] = []
        start = 0
        for cu in self.cus:
            shares.append([g for share in slots[start : start + cu.size] for g in share])
            start += cu.size
        return shares

    def _rerun(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        share: list[Group],
        raw_txs: Sequence[bytes],
        failed: Any,
        err: Exception,
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> dict[int, TxOutcome]:
        others = [cu for cu in self.cus if cu is not failed]
        where = others[0].name if others else "the coordinator"
        self.on_event(
            f"{getattr(failed, 'name', 'a CU')} failed mid-block ({type(err).__name__}); "
            f"its {len(share)} groups re-run on {where}"
        )
        if others:
            return others[0].execute(env, snapshot, share, raw_txs, None, senders, preimages)
        outcomes: dict[int, TxOutcome] = {}
        for group in share:
            txs = [
                (i, decode_known(env, raw_txs[i], senders[i] if senders else None)) for i in group
            ]
            layer = WriteLayer(snapshot)
            outcomes.update((o.index, o) for o in run_group(env, layer, txs, preimages))
        return outcomes

    def close(self) -> None:
        self._threads.shutdown()
