"""The elastic cluster end to end: the coordinator actor on a local Ray cluster, the API over
HTTP. A dApp subscribes, its transactions run in its EBS on its own CU, a load ramp scales the
basic pool up after a vote and down after the ramp, a worker killed mid-traffic is replaced,
a forged subscription is refused, and every block equals sequential py-evm."""

import socket
import threading
import time

import httpx
import pytest
import ray
import uvicorn
from support import generator, small_genesis

from api import create_app
from bench.story import Phase, run_story
from bench.workload.genesis import ETHER, chain_genesis, sign
from cli.main import build_parser
from cli.serve import api_server
from cluster.autoscaler import ScalingPolicy
from coordinator.coordinator import CoordinatorActor, RayNode
from coordinator.producer import CoordinatorSettings
from ebs.subscription import REGISTRY, subscribe_data

SETTINGS = CoordinatorSettings(
    block_interval=0.1,
    basic_cus=1,
    cu_cores=1,
    seed=2,
    policy=ScalingPolicy(window=2, max_cus=2),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def api(ray_cluster):
    actor = CoordinatorActor.remote(chain_genesis(small_genesis()), SETTINGS)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(RayNode(actor)), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the API")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield actor, client
    server.should_exit = True
    thread.join()
    ray.get(actor.shutdown.remote())
    ray.kill(actor)


def post(client: httpx.Client, path: str, tx) -> httpx.Response:
    return client.post(path, json={"raw": "0x" + tx.encode().hex()})


def test_subscribe_scale_up_and_down_survive_a_dead_worker(api):
    actor, client = api
    g = small_genesis()
    assert client.get("/healthz").json() == {"status": "ok", "head": 0}
    nonce = g.nonces[g.deployer.address]
    sub = subscribe_data([(g.nft, 3)], ETHER)
    forged = sign(g.wallets[0], g.nonces[g.wallets[0].address], REGISTRY, sub, ETHER, 100_000)
    refused = post(client, "/v1/ebs/subscriptions", forged)
    assert refused.status_code == 403 and "not the deployer" in refused.json()["detail"]
    assert client.post("/v1/transactions", json={"raw": "0xzz"}).status_code == 422
    huge = client.post("/v1/transactions", content=b"{" + b" " * 400_000 + b"}")
    assert huge.status_code == 413
    assert client.get("/v1/ebs/subscriptions/0011223344556677").status_code == 404

    accepted = post(
        client, "/v1/ebs/subscriptions", sign(g.deployer, nonce, REGISTRY, sub, ETHER, 100_000)
    )
    assert accepted.status_code == 202, accepted.text
    sub_id = accepted.json()["id"]
    assert client.get(f"/v1/ebs/subscriptions/{sub_id}").json()["status"] == "pending"
    ray.get(actor.start.remote())
    view = wait_for(
        lambda: (
            (v := client.get(f"/v1/ebs/subscriptions/{sub_id}").json())["status"] == "active" and v
        ),
        what="the subscription",
    )
    dapp_cu = view["cu"]

    gen = generator(g, "erc20=0.8,mint=0.2", 0.3, 17)

    def events() -> list[dict]:
        return client.get("/v1/events").json()

    killed = False
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "scale" and "added" in e["message"] for e in events()):
        assert time.monotonic() < deadline, "no scale-up"
        for tx in gen.block(60):  # the ramp
            assert post(client, "/v1/transactions", tx).status_code == 202
        if not killed:
            ray.kill(ray.get_actor("cu-0/w0"))  # a worker dies with traffic in flight
            killed = True
    wait_for(
        lambda: any(e["kind"] == "scale" and "removed" in e["message"] for e in events()),
        timeout=120,
        what="the scale-down after the ramp",
    )
    log = events()
    kinds = [e["kind"] for e in log]
    assert kinds.index("proposal") < kinds.index("vote") < kinds.index("scale")
    votes = [e for e in log if e["kind"] == "vote"]
    assert votes[0]["message"].startswith("approved") and len(votes[0]["data"]["ballots"]) == 4
    assert any("died mid-block" in e["message"] for e in log if e["kind"] == "failure")

    ray.get(actor.stop.remote())
    wait_for(lambda: client.get("/v1/cluster").json()["verifier"]["lag"] == 0, what="verifier")
    latest = client.get("/v1/blocks/latest").json()["number"]
    blocks = [client.get(f"/v1/blocks/{n}").json() for n in range(1, latest + 1)]
    assert all(b["verified"] for b in blocks), "a block differs from sequential py-evm"
    assert any(b["txs"].get(dapp_cu, 0) > 0 for b in blocks), "no transaction in the EBS"
    assert all(b["parent_hash"] == a["hash"] for a, b in zip(blocks, blocks[1:], strict=False))
    cluster = client.get("/v1/cluster").json()
    assert dapp_cu in cluster["pools"] and cluster["pools"]["pbs"]["cus"]
    final = client.get(f"/v1/ebs/subscriptions/{sub_id}").json()
    assert final["gas_limit"] > 0 and final["parallelism"] >= 1.0


def test_the_story_subscribes_mid_run_and_every_block_verifies(ray_cluster, capsys):
    settings = CoordinatorSettings(
        block_interval=0.1, cu_cores=1, policy=ScalingPolicy(window=2, max_cus=2)
    )
    # the dApp's CU is made off the chain's path (its actors take a second or two to start)
    result = run_story(settings, 80, 4, ramp=(Phase(30, 20), Phase(4, 5)), subscribe_after=1)
    assert result.blocks and all(b["verified"] for b in result.blocks)
    assert result.subscription["status"] == "active"
    assert any(b["txs"].get(result.subscription["cu"], 0) for b in result.blocks)
    printed = capsys.readouterr().out
    assert "every block equals sequential py-evm: yes" in printed


def test_serve_reads_the_charts_settings_and_answers(ray_cluster, tmp_path):
    config = tmp_path / "evmpp.yaml"
    config.write_text(
        "block_interval: 0.2\npbs_gas_limit: 20000000\nbasic_cus: 1\ncu_cores: 1\n"
        "ebs_slots: 1\nvalidators: 3\nseed: 3\ngenesis: dev\n"
        "policy: {up: 1.5, down: 0.2, target: 0.75, window: 2, max_cus: 2}\n"
    )
    port = free_port()
    args = build_parser().parse_args(
        [
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "chain"),
            "--hints",
            str(tmp_path / "hints"),
        ]
    )
    server, actor = api_server(args)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 30, "evmpp serve")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/healthz").json()["status"] == "ok"
            latest = wait_for(
                lambda: (r := client.get("/v1/blocks/latest")).status_code == 200 and r.json(),
                what="a block",
            )
            assert latest["gas_limit"]["pbs"] == 20_000_000
            assert client.get("/docs").status_code == 200
    finally:
        server.should_exit = True
        thread.join()
        ray.get(actor.shutdown.remote())
        ray.kill(actor)
    assert (tmp_path / "chain" / "ss").is_dir() and (tmp_path / "hints").is_dir()
