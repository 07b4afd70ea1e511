"""Benchmark: the node end to end, as a dApp's load reaches it over JSON-RPC.

``evmpp serve`` runs as its own process on a genesis holding the workload's ERC20 token (a geth
``genesis.json``, ``bench/workload/genesis.py`` ``chain_genesis``), first without its verifier
replica (``--no-verifier``: an operator whose replica runs on other hardware), then with it.
Each run sends ``--txs`` pre-signed ERC20 transfers from ``--senders`` senders in JSON-RPC
batches (``eth_sendRawTransaction``), then follows new blocks (``eth_getBlockByNumber``) and
fetches each included transaction's receipt once, until every transaction is in: TPS is the
transactions over the time from the first send to the last receipt, latency each
transaction's send-to-receipt time (p50, p99).

The baseline is sequential py-evm executing the same transactions in the same blocks: after the
node stops, every block it produced is read from its chain data and replayed on plain py-evm
(``coordinator/verifier.py``), which checks state root, receipts root, gas and bloom against
the header (``verified_blocks``); ``tps_sequential`` is the transactions over py-evm's
execution time of those blocks alone (no RPC, no pool, no commit), so the ratio is the node's
whole path against bare sequential execution.

Each configuration runs ``--repeat`` times (3), off and on side by side each time; the summary
holds medians. Writes ``bench/results/node.json``: per-run rows and ``summary.tps``,
``summary.tps_sequential``, ``summary.tps_ratio``, ``summary.tps_ratio_verified``,
``summary.latency_p50_s``, ``summary.latency_p99_s``, ``summary.blocks``,
``summary.verified_blocks``, ``summary.verifier_lag_max``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.workload.contracts import compiled
from bench.workload.genesis import build_genesis, chain_genesis, sign
from chain import load_genesis
from coordinator.verifier import CommittedBlock, Verifier
from storage.chaindata import ChainData
from storage.keys import genesis_state

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "node.json"
BATCH = 200


@dataclass
class RunResult:
    verifier: bool
    txs: int
    tps: float
    latency_p50_s: float
    latency_p99_s: float
    wall_s: float
    blocks: int  # blocks holding the load
    verifier_lag_max: int
    refused: int
    send_s: float  # first send to the last send answered: intake, under the block load
    phases_ms_per_tx: dict[str, float]  # the producer's own profile (phases_ms), per tx
    execute_ms_per_block: float  # the execute phase of the full blocks (plan to validate)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rpc_batch(client: httpx.Client, method: str, params: list[list]) -> list[dict]:
    if not params:
        return []
    body = [
        {"jsonrpc": "2.0", "id": i, "method": method, "params": p} for i, p in enumerate(params)
    ]
    response = client.post("/", json=body)
    if response.status_code != 200 or not isinstance(answers := response.json(), list):
        raise RuntimeError(f"{method}: HTTP {response.status_code}: {response.text[:2000]}")
    return sorted(answers, key=lambda answer: answer["id"])


class NodeProcess:
    """``evmpp serve`` in a process (and its embedded Ray) of its own."""

    def __init__(self, genesis: Path, data_dir: Path, args: argparse.Namespace, verify: bool):
        self.port = free_port()
        command = [
            sys.executable, "-m", "cli.main", "serve",
            "--genesis", str(genesis),
            "--port", str(self.port),
            "--interval", str(args.interval),
            "--cu-cores", str(args.cu_cores),
            "--cpus", str(args.cpus),
            "--data-dir", str(data_dir),
        ]  # fmt: skip
        if not verify:
            command.append("--no-verifier")
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the process)
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"evmpp serve exited:\n{self.log.read().decode()[-4000:]}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("evmpp serve did not become healthy in 300 s")
            time.sleep(0.5)

    def stop(self) -> None:
        self.client.close()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def signed_load(args: argparse.Namespace):
    """The genesis (token holders) and the signed transfers, senders interleaved.

    Recipients are fresh addresses (as payments to many customers): transactions of different
    senders touch different balances, so they do not conflict; one sender's do (its balance,
    its nonce). ``--recipients senders`` pays the senders themselves instead: the transfers
    then form one conflict graph over all 200 accounts (the contended variant)."""
    genesis = build_genesis(args.senders, seed=args.seed)
    token = compiled("token")
    rng = random.Random(args.seed)
    per_sender = -(-args.txs // args.senders)
    raws = []
    for round_ in range(per_sender):
        for wallet in genesis.wallets:
            if len(raws) == args.txs:
                break
            if getattr(args, "recipients", "fresh") == "senders":
                to = rng.choice(genesis.wallets).address
            else:
                to = rng.randbytes(20)
            data = token.calldata("transfer", to, 1 + rng.randrange(1000))
            nonce = genesis.nonces.get(wallet.address, 0) + round_
            raws.append(sign(wallet, nonce, genesis.token_a, data, gas=80_000).encode())
    return genesis, raws


def run_load(
    node: NodeProcess, raws: list[bytes]
) -> tuple[dict[str, float], dict[str, float], int]:
    """Send everything, then follow the chain; send and inclusion times by hash.

    As a wallet waiting on many transactions does (ethers' block-based waiting), the client
    watches new blocks rather than polling every receipt: each new block's transaction hashes
    mark those transactions included, and their receipts are fetched once, in one batch, to
    check each is really there."""
    sent: dict[str, float] = {}
    refused = 0
    head = int(rpc_batch(node.client, "eth_blockNumber", [[]])[0]["result"], 16)
    for start in range(0, len(raws), BATCH):
        chunk = raws[start : start + BATCH]
        now = time.monotonic()
        params = [["0x" + raw.hex()] for raw in chunk]
        for answer in rpc_batch(node.client, "eth_sendRawTransaction", params):
            if "result" in answer:
                sent[answer["result"]] = now
            else:
                refused += 1
    received: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while len(received) < len(sent) and time.monotonic() < deadline:
        latest = int(rpc_batch(node.client, "eth_blockNumber", [[]])[0]["result"], 16)
        for number in range(head + 1, latest + 1):
            block = rpc_batch(node.client, "eth_getBlockByNumber", [[hex(number), False]])[0]
            now = time.monotonic()
            hashes = [h for h in block["result"]["transactions"] if h in sent]
            receipts = rpc_batch(node.client, "eth_getTransactionReceipt", [[h] for h in hashes])
            for tx_hash, answer in zip(hashes, receipts, strict=True):
                if answer.get("result", {}).get("status") == "0x1":
                    received[tx_hash] = now
        head = latest
        time.sleep(0.05)
    return sent, received, refused


def one_run(genesis_path: Path, raws: list[bytes], args: argparse.Namespace, verify: bool):
    data_dir = Path(tempfile.mkdtemp(prefix="evmpp-node-bench-"))
    node = NodeProcess(genesis_path, data_dir, args, verify)
    try:
        head_before = int(rpc_batch(node.client, "eth_blockNumber", [[]])[0]["result"], 16)
        sent, received, refused = run_load(node, raws)
        lag_max = 0
        if verify:
            verifier = node.client.get("/v1/cluster").json()["verifier"]
            lag_max = verifier["lag_max"]
        head = int(rpc_batch(node.client, "eth_blockNumber", [[]])[0]["result"], 16)
        records = [
            node.client.get(f"/v1/blocks/{n}").json() for n in range(head_before + 1, head + 1)
        ]
    finally:
        node.stop()
    phases: dict[str, float] = {}
    for record in records:
        for phase, ms in record["phases_ms"].items():
            phases[phase] = phases.get(phase, 0.0) + ms
    loaded = [r for r in records if sum(r["txs"].values()) >= max(1, len(raws) // 20)]
    if len(received) < len(sent):
        raise RuntimeError(f"only {len(received)} of {len(sent)} receipts arrived")
    first, last = min(sent.values()), max(received.values())
    latencies = sorted(received[h] - sent[h] for h in received)
    result = RunResult(
        verifier=verify,
        txs=len(received),
        tps=round(len(received) / (last - first), 1),
        latency_p50_s=round(statistics.median(latencies), 3),
        latency_p99_s=round(latencies[int(0.99 * (len(latencies) - 1))], 3),
        wall_s=round(last - first, 2),
        blocks=head - head_before,
        verifier_lag_max=lag_max,
        refused=refused,
        send_s=round(max(sent.values()) - first, 2),
        phases_ms_per_tx={k: round(v / max(1, len(received)), 4) for k, v in phases.items()},
        execute_ms_per_block=round(
            statistics.median(r["phases_ms"]["execute"] for r in loaded) if loaded else 0.0, 1
        ),
    )
    return result, data_dir


def replay_sequentially(genesis_path: Path, data_dir: Path) -> tuple[int, int, int, float]:
    """Every block of the run on plain sequential py-evm: (blocks, verified, txs, seconds)."""
    genesis = load_genesis(genesis_path)
    verifier = Verifier(
        genesis_state(genesis.alloc), genesis.spec.chain_id, genesis.spec.vm_class_at
    )
    blocks = verified = txs = 0
    seconds = 0.0
    with ChainData(data_dir / "chain") as data:
        hashes = [data.block(0).hash]
        for number in range(1, (data.head() or 0) + 1):
            block = data.block(number)
            ancestors = tuple(reversed(hashes[-256:]))
            verdict = verifier.verify(
                CommittedBlock(number, block.header, block.transactions, ancestors)
            )
            hashes.append(block.hash)
            blocks += 1
            verified += verdict.matches
            if not verdict.matches:
                print(f"  block {number} differs: {verdict.detail}", file=sys.stderr)
            if block.transactions:
                txs += len(block.transactions)
                seconds += verdict.elapsed_s
    return blocks, verified, txs, seconds


def measured_run(
    genesis_path: Path, raws: list[bytes], args: argparse.Namespace, verify: bool, repeat: int
) -> dict:
    """One run of the node, then its blocks replayed on sequential py-evm; its row."""
    result, data_dir = one_run(genesis_path, raws, args, verify)
    blocks, verified, txs, seconds = replay_sequentially(genesis_path, data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    row = asdict(result) | {
        "run": repeat,
        "chain_blocks": blocks,
        "verified_blocks": verified,
        "tps_sequential": round(txs / seconds, 1) if seconds else 0.0,
        "sequential_s": round(seconds, 3),
    }
    row["tps_ratio"] = round(row["tps"] / row["tps_sequential"], 3) if seconds else 0.0
    serial = {k: v for k, v in row["phases_ms_per_tx"].items() if k not in ("execute", "loop")}
    print(
        f"    send {row['send_s']:.2f} s ({row['send_s'] * 1000 / row['txs']:.3f} ms/tx); "
        f"execute {row['execute_ms_per_block']:.0f} ms per full block; per tx, ms: "
        + ", ".join(f"{k} {v:.3f}" for k, v in row["phases_ms_per_tx"].items())
        + f"; serial outside execute {sum(serial.values()):.3f} ms/tx"
    )
    print(
        f"run {repeat} verifier {'on ' if verify else 'off'}: {row['tps']:7.1f} tps, "
        f"sequential py-evm {row['tps_sequential']:7.1f} tps on the same blocks -> "
        f"{row['tps_ratio']:.2f}x; latency p50 {row['latency_p50_s']:.2f} s p99 "
        f"{row['latency_p99_s']:.2f} s; {row['blocks']} blocks, {verified}/{blocks} verified; "
        f"lag max {row['verifier_lag_max']}",
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=5000)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.25, help="block interval, seconds")
    parser.add_argument("--gas-limit", type=int, default=60_000_000, help="genesis gas limit")
    parser.add_argument("--cu-cores", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=4, help="logical CPUs of the node's Ray")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--recipients",
        choices=("fresh", "senders"),
        default="fresh",
        help="pay fresh addresses (no conflicts across senders) or the senders themselves",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians reported")
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args(argv)
    genesis, raws = signed_load(args)
    folder = Path(tempfile.mkdtemp(prefix="evmpp-node-genesis-"))
    genesis_path = folder / "genesis.json"
    genesis_path.write_text(json.dumps(chain_genesis(genesis, args.gas_limit).to_geth_json()))
    print(f"{len(raws)} signed ERC20 transfers from {args.senders} senders", file=sys.stderr)
    rows = []
    for repeat in range(args.repeat):  # off and on side by side, each time
        for verify in (False, True):
            rows.append(measured_run(genesis_path, raws, args, verify, repeat))
    plain = [row for row in rows if not row["verifier"]]
    checked = [row for row in rows if row["verifier"]]

    def median(runs: list[dict], field: str) -> float:
        return round(statistics.median(row[field] for row in runs), 3)

    summary = {
        "tps": median(plain, "tps"),
        "tps_sequential": median(plain, "tps_sequential"),
        "tps_ratio": median(plain, "tps_ratio"),
        "tps_ratio_verified": median(checked, "tps_ratio"),
        "tps_verified": median(checked, "tps"),
        "latency_p50_s": median(plain, "latency_p50_s"),
        "latency_p99_s": median(plain, "latency_p99_s"),
        "blocks": sum(row["chain_blocks"] for row in rows),
        "verified_blocks": sum(row["verified_blocks"] for row in rows),
        "verifier_lag_max": max(row["verifier_lag_max"] for row in checked),
        "send_ms_per_tx": round(
            statistics.median(row["send_s"] * 1000 / row["txs"] for row in plain), 3
        ),
        "execute_ms_per_block": median(plain, "execute_ms_per_block"),
        "phases_ms_per_tx": {
            phase: round(
                statistics.median(row["phases_ms_per_tx"].get(phase, 0) for row in plain), 4
            )
            for phase in plain[0]["phases_ms_per_tx"]
        },
        "runs": args.repeat,
        "settings": vars(args),
    }
    print(
        f"median of {args.repeat}: {summary['tps']:.0f} tps against sequential py-evm's "
        f"{summary['tps_sequential']:.0f} on the same blocks: {summary['tps_ratio']:.2f}x "
        f"(verifier on: {summary['tps_ratio_verified']:.2f}x, lag at most "
        f"{summary['verifier_lag_max']} blocks); {summary['verified_blocks']} of "
        f"{summary['blocks']} blocks replayed equal"
    )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    ok = all(row["verified_blocks"] == row["chain_blocks"] for row in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
