"""``evmpp elastic`` (``make run``): the elastic cluster's whole story on an embedded Ray.

The coordinator actor produces a block every interval on a Compute Unit pool; the HTTP API
serves on a free local port. A load generator submits signed transactions at a rate that
ramps up (4x) and back down; mid-run the NFT's deployer subscribes it to elastic block space
through the API (``POST /v1/ebs/subscriptions``), after which mints run in its EBS on its own
CU while the rest floods the public block space. The report shows each block (transactions
per space, TPS, CUs per pool, the EBS's gas limit and P) with the cluster's events (proposals,
votes, scaling steps, the subscription) where they happened; every block is checked against
sequential py-evm. ``bench/elastic.py`` drives the same story to measure it.
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

from bench.workload.blocks import BlockGenerator, Mix
from bench.workload.genesis import ETHER, Genesis, build_genesis, sign
from coordinator.coordinator import CoordinatorActor, RayBackend
from coordinator.producer import PBS, CoordinatorSettings
from ebs.api import create_app
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
        config = uvicorn.Config(create_app(RayBackend(actor)), port=self.port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

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
    actor = CoordinatorActor.remote(settings, accounts, seed)
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
                raws = [tx.encode() for tx in generator.block(phase.txs)]
                ok, result = ray.get(actor.call.remote("submit_many", raws))
                submitted += result[0] if ok else 0
                interval += 1
                time.sleep(max(0.0, settings.block_interval - (time.monotonic() - started)))
        time.sleep(3 * settings.block_interval)  # the last transactions land
        ray.get(actor.stop.remote())
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
        if event["kind"] != "rejection":
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
