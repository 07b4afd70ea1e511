"""Benchmark: elastic Compute Units and elastic block space under a 4x traffic ramp.

The ``evmpp elastic`` story (``cluster/story.py``) twice on the same seed: with autoscaling
(the basic pool may grow to ``--max-cus`` CUs after a vote) and with a fixed pool of one CU.
Reported per run: blocks whose execution overran the block interval (a block's execution is
its slowest space, all spaces running at once), and the EBS dApp's block execution time
(p50, p99) while the public block space is flooded. Writes ``bench/results/elastic.json``
with ``summary.ebs_p99_over_p50``, ``summary.overruns_autoscale``, ``summary.overruns_fixed``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.story import RAMP, StoryResult, run_story
from cluster.autoscaler import ScalingPolicy
from cluster.runtime import start_ray
from coordinator.producer import CoordinatorSettings
from coordinator.scaling import PBS

RESULTS = Path(__file__).parent / "results" / "elastic.json"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def measure(result: StoryResult, interval_ms: float) -> dict:
    blocks = [b for b in result.blocks if b["txs"]]
    execution = [max(b["exec_ms"].values(), default=0.0) for b in blocks]
    ebs = [
        ms for b in blocks for name, ms in b["exec_ms"].items() if name != PBS and b["txs"][name]
    ]
    flooded = [b for b in blocks if b["txs"].get(PBS, 0) >= 100]
    ebs_flooded = [ms for b in flooded for n, ms in b["exec_ms"].items() if n != PBS]
    return {
        "blocks": len(result.blocks),
        "overruns": sum(ms > interval_ms for ms in execution),
        "max_pbs_cus": max((b["cus"].get(PBS, 0) for b in blocks), default=0),
        "pbs_ms_p50": round(percentile([b["exec_ms"].get(PBS, 0.0) for b in blocks], 0.5), 1),
        "pbs_ms_p99": round(percentile([b["exec_ms"].get(PBS, 0.0) for b in blocks], 0.99), 1),
        "ebs_ms_p50": round(percentile(ebs, 0.5), 1),
        "ebs_ms_p99": round(percentile(ebs, 0.99), 1),
        "ebs_ms_p50_flooded": round(percentile(ebs_flooded, 0.5), 1),
        "ebs_ms_p99_flooded": round(percentile(ebs_flooded, 0.99), 1),
        "scale_steps": sum(e["kind"] == "scale" for e in result.events),
        "verified": all(b["verified"] for b in result.blocks),
        "submitted": result.submitted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--cu-cores", type=int, default=2)
    parser.add_argument("--max-cus", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    start_ray(num_cpus=16)
    runs = {}
    for name, max_cus in (("autoscale", args.max_cus), ("fixed", 1)):
        settings = CoordinatorSettings(
            block_interval=args.interval,
            cu_cores=args.cu_cores,
            policy=ScalingPolicy(max_cus=max_cus),
        )
        result = run_story(settings, args.accounts, args.seed, show=False)
        runs[name] = measure(result, args.interval * 1000)
    print(
        f"{'run':<10} {'blocks':>6} {'overruns':>8} {'max CUs':>7} {'pbs p50':>8} "
        f"{'pbs p99':>8} {'ebs p50':>8} {'ebs p99':>8} {'flooded p50/p99':>16}"
    )
    for name, r in runs.items():
        print(
            f"{name:<10} {r['blocks']:>6} {r['overruns']:>8} {r['max_pbs_cus']:>7} "
            f"{r['pbs_ms_p50']:>8} {r['pbs_ms_p99']:>8} {r['ebs_ms_p50']:>8} "
            f"{r['ebs_ms_p99']:>8} {r['ebs_ms_p50_flooded']:>7}/{r['ebs_ms_p99_flooded']:<8}"
        )
    auto = runs["autoscale"]
    summary = {
        "ebs_p99_over_p50": round(auto["ebs_ms_p99"] / auto["ebs_ms_p50"], 3)
        if auto["ebs_ms_p50"]
        else None,
        "overruns_autoscale": auto["overruns"],
        "overruns_fixed": runs["fixed"]["overruns"],
        "all_verified": all(r["verified"] for r in runs.values()),
        "ramp": [[phase.intervals, phase.txs] for phase in RAMP],
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
