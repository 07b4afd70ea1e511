"""Benchmark: parallel (Compute Unit, 2 workers) vs sequential py-evm on the same block.

Two 2,000-transaction blocks: low contention (ERC20 transfers, uniform accounts) and high
contention (AMM-heavy, Zipf 1.2), each run as ``evmpp run`` runs it: sequential is py-evm to
its persisted state root, parallel is grouping, workers, validation and commit to the state
root. Ray is started and workers are warm before timing. Each case is timed side by side,
``--runs`` times (median reported); every run is checked against the sequential one
(receipts, gas, state root). A third case, ``high_contention_hints``, is the hot block planned
by a hint table warmed on ``--warm-blocks`` other blocks of the mix, the fallback off.
Each case reports ``parallel_vs_one_worker`` (the groups path over the whole block as one group
on one worker), ``serial_share`` (the parallel time spent outside the workers),
``critical_path_bound`` (total gas over the longest chain of actual dependencies) and, with
``--stm``, the same for Block-STM on the same workers (``stm_*``).

``chained``: ``--chain-blocks`` consecutive low-contention blocks on one chain, each block's
stores written behind while the next one runs (``ChainRunner(write_behind=True)``), timed
per block from the first block's start to the last one's write landed, against the same
stack on one worker; ``sync`` is the same with each block's stores written before the next.
Writes ``bench/results/parallel_speedup.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.critical_path import critical_path_bound
from bench.workload.blocks import BlockGenerator, Mix
from bench.workload.genesis import block_env, build_genesis
from cluster.runtime import start_ray
from compute_unit.worker import ComputeUnit
from coordinator.hints import HintTable
from coordinator.pipeline import ChainRunner, ParallelExecutor
from coordinator.planner import HintPlanner

CASES = {
    "low_contention": ("erc20=1", 0.0),
    "high_contention": ("swap=0.6,erc20=0.3,mint=0.1", 1.2),
}
RESULTS = Path(__file__).parent / "results" / "parallel_speedup.json"
HINTS_CASE = "high_contention_hints"  # the hot mix, planned by a warmed hint table


def run_case(
    executor, genesis, mix: str, skew: float, txs: int, runs: int, seed: int, stm=None
) -> dict:
    block = BlockGenerator(genesis, Mix.parse(mix), skew, seed).block(txs)
    env = block_env(1, gas_limit=sum(tx.gas for tx in block))
    items = list(genesis.state.items())
    seq_s, par_s, one_s, stm_s, reexec, stm_reexec, matches = [], [], [], [], [], [], []
    serial, stm_serial, bounds, fallbacks, profiles, stm_profiles = [], [], [], [], [], []
    stm_runs = []
    whole = [list(range(len(block)))]

    def fresh_run(groups=None, runner=executor):
        chain = ChainRunner(items, runner)
        try:
            return chain.import_block(env, block, groups=groups)
        finally:
            chain.close()

    fresh_run()  # warm-up: imports, code caches
    for _ in range(runs):
        report, parallel, sequential = fresh_run()
        one_group, one_parallel, _ = fresh_run(whole)
        bounds.append(critical_path_bound(one_parallel.block.outcomes))
        fallbacks.append(report.fallback)
        if stm is not None:
            stm_report, stm_parallel, _ = fresh_run(runner=stm)
            stm_s.append(stm_parallel.elapsed_s)
            stm_reexec.append(stm_report.reexecutions)
            stm_serial.append(stm_report.serial_share)
            stm_profiles.append(stm_report.profile)
            stm_runs.append(stm_parallel.stm)
            matches.append(stm_report.matches and stm_report.serial_reexecutions == 0)
        seq_s.append(sequential.elapsed_s)
        par_s.append(parallel.elapsed_s)
        one_s.append(one_group.parallel_ms / 1000)
        reexec.append(report.reexecutions)
        serial.append(report.serial_share)
        profiles.append(report.profile)
        matches.append(report.matches and one_group.matches)
    seq_ms, par_ms = statistics.median(seq_s) * 1000, statistics.median(par_s) * 1000
    ratios = [s / p for s, p in zip(seq_s, par_s, strict=True)]
    return {
        "mix": mix,
        "skew": skew,
        "txs": len(block),
        "sequential_ms": round(seq_ms, 1),
        "parallel_ms": round(par_ms, 1),
        "speedup": round(statistics.median(ratios), 3),
        "speedups": [round(r, 3) for r in ratios],
        # the whole block as one group on one worker: the overlay state's own gain over
        # py-evm's trie-backed AccountDB, separated from the gain of running in parallel
        "one_worker_ms": round(statistics.median(one_s) * 1000, 1),
        "parallel_vs_one_worker": round(statistics.median(one_s) / statistics.median(par_s), 3),
        "reexecutions": statistics.median(reexec),
        "reexecutions_per_tx": round(statistics.median(reexec) / len(block), 3),
        "roots_match": all(matches),
        "serial_share": round(statistics.median(serial), 3),
        "profile": profiles[-1],  # the last run's, ms by phase
        "fallback": fallbacks[0],  # why the groups path ran in process, if it did
        # total gas over the longest chain of actual dependencies: no schedule beats it
        "critical_path_bound": bounds[0],
        # Block-STM on the same workers (``--stm``): validation and re-execution there
        **(
            {
                "stm_ms": round(statistics.median(stm_s) * 1000, 1),
                "stm_vs_one_worker": round(statistics.median(one_s) / statistics.median(stm_s), 3),
                "stm_reexecutions_per_tx": round(statistics.median(stm_reexec) / len(block), 3),
                "stm_serial_share": round(statistics.median(stm_serial), 3),
                "stm_profile": stm_profiles[-1],
                # the last run's Block-STM seconds: the coordinator's scheduler, the
                # workers' batches (summed), their time with batches in hand, the catch-up
                "stm_timing": {
                    name: round(getattr(stm_runs[-1], name), 3)
                    for name in ("wall_s", "scheduler_s", "run_s", "workers_busy_s", "catch_up_s")
                },
            }
            if stm_s
            else {}
        ),
    }


def chain_case(
    cu, genesis, mix: str, skew: float, txs: int, blocks: int, runs: int, seed: int, stm=None
) -> dict:
    """Consecutive blocks on one chain: ms per block, written behind and in place, on the
    CU's workers and the whole of each block as one group on one worker."""
    generator = BlockGenerator(genesis, Mix.parse(mix), skew, seed)
    chain_blocks = [generator.block(txs) for _ in range(blocks)]
    envs = [block_env(n, gas_limit=sum(tx.gas for tx in b)) for n, b in enumerate(chain_blocks, 1)]
    items = list(genesis.state.items())
    groups = ParallelExecutor(cu)
    runners = {"parallel": groups, "one_worker": groups, **({"stm": stm} if stm else {})}

    def run_chain(name: str, behind: bool, verify: bool = False) -> tuple[float, str]:
        with ChainRunner(items, runners[name], verify=verify, write_behind=behind) as chain:
            started = time.perf_counter()
            for env, block in zip(envs, chain_blocks, strict=True):
                whole = [list(range(len(block)))] if name == "one_worker" else None
                report, _, _ = chain.import_block(env, block, groups=whole)
                if verify and not report.matches:
                    raise AssertionError(f"{name}: block {report.number} differs from py-evm")
            chain.settle()
            return (time.perf_counter() - started) / blocks, report.state_root

    _, reference = run_chain("parallel", True, verify=True)  # checked against py-evm once
    timed: dict[tuple[str, bool], list[float]] = {}
    roots = {reference}
    for _ in range(runs):
        for behind in (True, False):
            for name in runners:
                per_block, root = run_chain(name, behind)
                timed.setdefault((name, behind), []).append(per_block)
                roots.add(root)

    def ms(name: str, behind: bool) -> float:
        return statistics.median(timed[(name, behind)]) * 1000

    def side(behind: bool) -> dict:
        one = ms("one_worker", behind)
        row = {
            "one_worker_ms_per_block": round(one, 1),
            "parallel_ms_per_block": round(ms("parallel", behind), 1),
            "parallel_vs_one_worker": round(one / ms("parallel", behind), 3),
        }
        if stm:
            row["stm_ms_per_block"] = round(ms("stm", behind), 1)
            row["stm_vs_one_worker"] = round(one / ms("stm", behind), 3)
        return row

    return {
        "mix": mix,
        "skew": skew,
        "txs": txs,
        "blocks": blocks,
        **side(True),
        "sync": side(False),
        "roots_match": len(roots) == 1,
    }


def warmed_table(cu, genesis, mix: str, skew: float, txs: int, blocks: int) -> HintTable:
    """A hint table that has learnt from ``blocks`` other blocks of the mix (other seeds,
    each run from genesis on the workers)."""
    table = HintTable(None)
    executor = ParallelExecutor(cu, HintPlanner(table), policy=None)
    items = list(genesis.state.items())
    for seed in range(1000, 1000 + blocks):
        block = BlockGenerator(genesis, Mix.parse(mix), skew, seed).block(txs)
        with ChainRunner(items, executor, verify=False) as chain:
            chain.import_block(block_env(1, gas_limit=sum(tx.gas for tx in block)), block)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stm", action="store_true", help="time Block-STM side by side too")
    parser.add_argument("--warm-blocks", type=int, default=5, help="hint table warm-up blocks")
    parser.add_argument("--chain-blocks", type=int, default=4, help="blocks in the chained case")
    args = parser.parse_args()

    genesis = build_genesis(args.accounts, seed=args.seed)
    start_ray(num_cpus=args.workers)
    cu = ComputeUnit(args.workers, name="cu-bench")
    executor = ParallelExecutor(cu)
    stm = ParallelExecutor(cu, policy=None, stm=True) if args.stm else None
    result = {
        name: run_case(executor, genesis, mix, skew, args.txs, args.runs, args.seed, stm)
        for name, (mix, skew) in CASES.items()
    }
    mix, skew = CASES["high_contention"]
    table = warmed_table(cu, genesis, mix, skew, args.txs, args.warm_blocks)
    hinted = ParallelExecutor(cu, HintPlanner(table), policy=None)
    hinted_stm = ParallelExecutor(cu, HintPlanner(table), policy=None, stm=True)
    result[HINTS_CASE] = run_case(
        hinted, genesis, mix, skew, args.txs, args.runs, args.seed, hinted_stm if stm else None
    )
    table.close()
    mix, skew = CASES["low_contention"]
    chained = chain_case(
        cu, genesis, mix, skew, args.txs, args.chain_blocks, args.runs, args.seed, stm
    )
    cu.shutdown()
    result["roots_match"] = all(case["roots_match"] for case in result.values())
    result["chained"] = chained
    result["roots_match"] = result["roots_match"] and chained["roots_match"]
    shares = [
        c[k] for c in result.values() if isinstance(c, dict) for k in c if "serial_share" in k
    ]
    result["summary"] = {"serial_share_max": max(shares)}
    result["config"] = {"workers": args.workers, "runs": args.runs, "accounts": args.accounts}

    print(
        f"{'case':<16} {'txs':>5} {'seq ms':>9} {'par ms':>9} {'speedup':>8} "
        f"{'1-worker ms':>11} {'par/1-worker':>12} {'re-exec/tx':>10}"
    )
    for name in [*CASES, HINTS_CASE]:
        c = result[name]
        print(
            f"{name:<16} {c['txs']:>5} {c['sequential_ms']:>9.1f} {c['parallel_ms']:>9.1f} "
            f"{c['speedup']:>7.2f}x {c['one_worker_ms']:>11.1f} "
            f"{c['parallel_vs_one_worker']:>11.2f}x {c['reexecutions_per_tx']:>10.3f}"
        )
    if args.stm:
        for name in [*CASES, HINTS_CASE]:
            c = result[name]
            print(
                f"{name:<16} Block-STM {c['stm_ms']:>9.1f} ms, {c['stm_vs_one_worker']:.2f}x "
                f"one worker, {c['stm_reexecutions_per_tx']:.3f} re-executions/tx"
            )
    print(
        f"chained ({chained['blocks']} blocks, written behind): "
        f"{chained['parallel_ms_per_block']:.1f} ms/block, "
        f"{chained['parallel_vs_one_worker']:.2f}x one worker "
        f"(in place: {chained['sync']['parallel_vs_one_worker']:.2f}x)"
        + (f"; Block-STM {chained['stm_vs_one_worker']:.2f}x" if stm else "")
    )
    print(f"roots match: {result['roots_match']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
