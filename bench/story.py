"""``make run`` (``python -m bench.story``): the elastic cluster's whole story on an embedded Ray.

A node (the coordinator actor, as ``evmpp serve`` runs it) starts from a genesis holding the
workload's contracts and serves JSON-RPC and the REST API on a free local port. A load
generator sends signed transactions over JSON-RPC (``eth_sendRawTransaction``, in batches) at a
rate that ramps up (4x) and back down; mid-run the NFT's deployer subscribes it to elastic
block space over the REST API (``POST /v1/ebs/subscriptions``), after which mints run in its
EBS on its own CU while the rest floods the public block space. The report shows each block
(transactions per space, TPS, CUs per pool, the EBS's gas limit and P) with the cluster's
events (proposals, votes, scaling steps, the subscription) where they happened; the node's
verifier replica re-executes every block on sequential py-evm. ``bench/elastic.py`` drives the
same story to measure it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import ray
import uvicorn

from api import create_app, rpc_handler
from bench.workload.blocks import BlockGenerator, Mix
from bench.workload.genesis import ETHER, Genesis, build_genesis, chain_genesis, sign
from coordinator.coordinator import CoordinatorActor, RayNode
from coordinator.producer import CoordinatorSettings
from coordinator.scaling import PBS
from ebs.subscription import REGISTRY, subscribe_data

STORY_MIX = Mix({"erc20": 0.6, "transfer": 0.2, "mint": 0.2})


@dataclass(frozen=True)
class Phase:
    intervals: int  # how many block intervals it lasts
    txs: int  # transactions submitted per interval


RAMP = (Phase(5, 30), Phase(5, 60), Phase(15, 120), Phase(5, 60), Phase(40, 5))


@dataclass
class StoryResult:
    blocks: list[dict[str, Any]]
    events: list[dict[str, Any]]
    subscription: dict[str, Any] | None
    submitted: int


class ApiServer:
    """The HTTP API on a free local port, in a thread."""

    def __init__(self, actor: Any) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        app = create_app(RayNode(actor, rpc=True))
        config = uvicorn.Config(app, port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def send_raw(self, raws: Sequence[bytes]) -> int:
        """Send transactions over JSON-RPC in batches; how many the node took."""
        taken = 0
        for start in range(0, len(raws), 500):
            batch = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "eth_sendRawTransaction",
                    "params": ["0x" + raw.hex()],
                }
                for i, raw in enumerate(raws[start : start + 500])
            ]
            answers = self.client.post("/", json=batch).json()
            taken += sum(1 for answer in answers if "result" in answer)
        return taken

    def wait_scale_down(self, timeout: float) -> None:
        """The quiet tail: empty blocks until the validators vote the grown pool down (a
        block's fixed costs keep a pool of several CUs over 25% until blocks are empty)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            scale = [e for e in self.client.get("/v1/events").json() if e["kind"] == "scale"]
            grown = any("added" in e["message"] for e in scale)
            if not grown or any("removed" in e["message"] for e in scale):
                return
            time.sleep(0.5)

    def serve_ebs_until_used(
        self, generator: BlockGenerator, interval: float, timeout: float
    ) -> int:
        """After the ramp, until a block has carried a transaction in the subscribed EBS:
        its CU's actors start off the chain's path, and on a slow or crowded machine the
        ramp can end before they serve. Keeps a light load (mints among it) coming meanwhile;
        how many transactions the node took. Gives up after ``timeout`` (the caller's
        assertions then say what was missing)."""
        deadline = time.monotonic() + timeout
        seen = 0  # blocks already looked at
        submitted = 0
        while time.monotonic() < deadline:
            latest = self.client.get("/v1/blocks/latest")
            last = latest.json()["number"] if latest.status_code == 200 else 0
            # read after the head: a block that used the CU was made after it was active
            subs = self.client.get("/v1/ebs/subscriptions").json()
            cu = subs[0]["cu"] if subs and subs[0]["status"] == "active" else None
            for number in range(seen + 1, last + 1):
                block = self.client.get(f"/v1/blocks/{number}").json()
                if cu is not None and block["txs"].get(cu, 0):
                    return submitted
                seen = number
            submitted += self.send_raw([tx.encode() for tx in generator.block(5)])
            time.sleep(interval)
        return submitted

    def wait_verified(self, timeout: float = 120.0) -> None:
        """Until the verifier replica has checked every block committed so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            verifier = self.client.get("/v1/cluster").json()["verifier"]
            if not verifier["enabled"] or verifier["lag"] == 0:
                return
            time.sleep(0.2)

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join()


def subscription_raw(genesis: Genesis) -> str:
    """The deployer subscribing the NFT contract (its 4th deployment) with a 1 ETH stake."""
    nonce = genesis.nonces[genesis.deployer.address]
    data = subscribe_data([(genesis.nft, 3)], ETHER)
    return "0x" + sign(genesis.deployer, nonce, REGISTRY, data, ETHER, 100_000).encode().hex()


def run_story(
    settings: CoordinatorSettings,
    accounts: int,
    seed: int,
    ramp: Sequence[Phase] = RAMP,
    subscribe_after: int | None = 3,
    show: bool = True,
) -> StoryResult:
    """Run the story on the started Ray; ``subscribe_after`` intervals in, the dApp
    subscribes (None: never)."""
    genesis = build_genesis(accounts, seed=seed)
    actor = CoordinatorActor.remote(chain_genesis(genesis), settings, rpc=rpc_handler)
    api = ApiServer(actor)
    generator = BlockGenerator(genesis, STORY_MIX, 0.8, seed)
    submitted = 0
    try:
        ray.get(actor.start.remote())
        interval = 0
        for phase in ramp:
            for _ in range(phase.intervals):
                started = time.monotonic()
                if interval == subscribe_after:
                    response = api.client.post(
                        "/v1/ebs/subscriptions", json={"raw": subscription_raw(genesis)}
                    )
                    response.raise_for_status()
                submitted += api.send_raw([tx.encode() for tx in generator.block(phase.txs)])
                interval += 1
                time.sleep(max(0.0, settings.block_interval - (time.monotonic() - started)))
        time.sleep(3 * settings.block_interval)  # the last transactions land
        if subscribe_after is not None:
            submitted += api.serve_ebs_until_used(generator, settings.block_interval, 60.0)
        api.wait_scale_down(60 * settings.block_interval + 10)
        ray.get(actor.stop.remote())
        api.wait_verified()
        client = api.client
        latest = client.get("/v1/blocks/latest").json()["number"]
        blocks = [client.get(f"/v1/blocks/{n}").json() for n in range(1, latest + 1)]
        events = client.get("/v1/events").json()
        subs = client.get("/v1/ebs/subscriptions").json()
    finally:
        api.close()
        ray.get(actor.shutdown.remote())
        ray.kill(actor)
    result = StoryResult(blocks, events, subs[0] if subs else None, submitted)
    if show:
        print_story(result)
    return result


def print_story(result: StoryResult) -> None:
    by_block: dict[int, list[dict]] = {}
    for event in result.events:
        if event["kind"] != "dropped":
            by_block.setdefault(event["block"], []).append(event)
    print(
        f"{'block':>5} {'pbs txs':>7} {'ebs txs':>7} {'tps':>6} {'pbs CUs':>7} "
        f"{'pbs ms':>7} {'ebs ms':>7} {'ebs gas limit':>13} {'P':>5} {'ok':>3}"
    )
    previous = None
    for block in result.blocks:
        ebs = [name for name in block["txs"] if name != PBS]
        ebs_txs = sum(block["txs"][name] for name in ebs)
        elapsed = block["produced_at"] - previous if previous else None
        previous = block["produced_at"]
        txs = sum(block["txs"].values())
        tps = f"{txs / elapsed:6.0f}" if elapsed else "     -"
        limit = f"{block['gas_limit'][ebs[0]]:>13,}" if ebs else f"{'-':>13}"
        p = f"{block['parallelism'][ebs[0]]:5.2f}" if ebs else f"{'-':>5}"
        ebs_ms = f"{block['exec_ms'].get(ebs[0], 0):7.0f}" if ebs else f"{'-':>7}"
        print(
            f"{block['number']:>5} {block['txs'].get(PBS, 0):>7} {ebs_txs:>7} {tps} "
            f"{block['cus'].get(PBS, 0):>7} {block['exec_ms'].get(PBS, 0):7.0f} {ebs_ms} "
            f"{limit} {p} {'ok' if block['verified'] else 'DIFF':>3}"
        )
        for event in by_block.get(block["number"], []):
            print(f"      {event['kind']}: {event['message']}")
    scale = [e for e in result.events if e["kind"] == "scale"]
    verified = all(b["verified"] for b in result.blocks)
    print(
        f"\n{len(result.blocks)} blocks, {result.submitted} transactions submitted, "
        f"{len(scale)} scaling steps; every block equals sequential py-evm: "
        f"{'yes' if verified else 'NO'}"
    )
    sub = result.subscription
    if sub and sub["gas_limit"] is not None:
        print(
            f"EBS {sub['id']} ({sub['status']} on {sub['cu']}): gas limit "
            f"{sub['gas_limit']:,}, P {sub['parallelism']}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    from cluster.autoscaler import ScalingPolicy
    from cluster.runtime import start_ray

    p = argparse.ArgumentParser(prog="python -m bench.story", description=__doc__)
    p.add_argument("--interval", type=float, default=0.1, help="block interval in seconds")
    p.add_argument("--cu-cores", type=int, default=2, help="workers per Compute Unit")
    p.add_argument("--max-cus", type=int, default=4, help="most CUs the basic pool may have")
    p.add_argument("--cpus", type=int, default=16, help="logical CPUs of the embedded Ray")
    p.add_argument("--accounts", type=int, default=500, help="funded genesis accounts")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.add_argument("--json", default="", help="write blocks, events and subscription here")
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard (:8265)")
    p.add_argument("--stretch", type=int, default=1, help="make each ramp phase N times longer")
    args = p.parse_args(argv)
    start_ray(num_cpus=args.cpus, address=args.address, dashboard=args.dashboard)
    settings = CoordinatorSettings(
        block_interval=args.interval,
        cu_cores=args.cu_cores,
        policy=ScalingPolicy(max_cus=args.max_cus),
    )
    ramp = [Phase(phase.intervals * args.stretch, phase.txs) for phase in RAMP]
    result = run_story(settings, args.accounts, args.seed, ramp)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result.__dict__, indent=2))
    return 0 if all(block["verified"] for block in result.blocks) else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
