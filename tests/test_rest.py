"""The ``/v1`` REST routes and ``/healthz`` (``api/rest.py``) on the combined app
(``api.create_app``) against a fake node: shapes, ``NodeError`` statuses, body limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_rpc import CHAIN_ID
from test_rpc import FakeNode as EthereumFake

from api import create_app, create_rpc_app
from api.models import MAX_RAW_BYTES
from coordinator.node_api import (
    BlockRecord,
    ClusterState,
    Event,
    Health,
    NodeError,
    PoolState,
    SubscriptionAccepted,
    SubscriptionState,
    TxStatusView,
    VerifierState,
)

ALICE, TOKEN, DEX = b"\xa1" * 20, b"\xc3" * 20, b"\xd5" * 20
TX_HASH, SUB_TX_HASH, CANCEL_TX_HASH = b"\x70" * 32, b"\x71" * 32, b"\x72" * 32
QUEUED, INCLUDED, DROPPED, UNKNOWN = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32
SUB_ID = "ab" * 16
STAKE = 12 * 10**24  # past 2**53: shown as a decimal string

SUBSCRIPTION = SubscriptionState(
    id=SUB_ID,
    subscriber=ALICE,
    contracts=(TOKEN, DEX),
    stake=STAKE,
    status="active",
    requested_block=3,
    active_since=4,
    cu="cu-ebs-0",
    gas_limit=15_000_000,
    parallelism=3.5,
)
WAITING = SubscriptionState(
    id="cd" * 16, subscriber=ALICE, contracts=(TOKEN,), stake=1, status="waiting"
)
VOTE = Event(7, "vote", "cu-1 votes up", {"cu": "cu-1", "voter": ALICE, "loads": (0.5, 0.9)})
SCALE = Event(8, "scale", "pbs 2 -> 3", {"pool": "pbs", "cus": 3})
RECORD = BlockRecord(
    number=9,
    hash=b"\xb9" * 32,
    parent_hash=b"\xb8" * 32,
    state_root=b"\x59" * 32,
    txs={"pbs": 10, SUB_ID: 4},
    gas_used={"pbs": 210_000, SUB_ID: 84_000},
    gas_limit={"pbs": 15_000_000, SUB_ID: 15_000_000},
    exec_ms={"pbs": 12.5, SUB_ID: 3.25},
    reexecutions=2,
    dropped=1,
    cus={"pbs": 2, SUB_ID: 1},
    parallelism={SUB_ID: 3.5},
    produced_at=1_700_000_000.5,
    verified=True,
    phases_ms={"select": 0.5, "execute": 12.5, "commit": 3.0},
)


class FakeNode(EthereumFake):
    """Both protocols: ``test_rpc``'s canned Ethereum side and a small ``/v1`` side that
    refuses the way the node does (``NodeError`` with the route's status)."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[bytes] = []
        self.health_state = Health(True, 9)
        self.records: dict[int, BlockRecord] = {9: RECORD}

    # -- ElasticAPI -----------------------------------------------------------------------

    def submit(self, raw: bytes) -> bytes:
        if raw == b"\xff":
            raise NodeError("transaction type not supported", status=400)
        if raw == b"\xee":
            raise NodeError("already known", status=409)
        self.submitted.append(raw)
        return TX_HASH

    def subscribe(self, raw: bytes) -> SubscriptionAccepted:
        if raw == b"\x03":
            raise NodeError("only the contracts' deployer may subscribe", status=403)
        if raw == b"\x09":
            raise NodeError(f"subscription {SUB_ID} already exists", status=409)
        if raw != b"\x01":
            raise NodeError("not a subscription: the payload type must be 0x01", status=400)
        return SubscriptionAccepted(SUB_ID, SUB_TX_HASH, "pending")

    def cancel(self, subscription: str, raw: bytes) -> SubscriptionAccepted:
        if subscription not in (SUB_ID, WAITING.id):
            raise NodeError(f"no subscription {subscription}", status=404)
        if raw == b"\x03":
            raise NodeError("only the subscriber may cancel", status=403)
        return SubscriptionAccepted(subscription, CANCEL_TX_HASH, "cancelling")

    def subscription(self, subscription: str) -> SubscriptionState | None:
        return {SUB_ID: SUBSCRIPTION, WAITING.id: WAITING}.get(subscription)

    def subscriptions(self) -> list[SubscriptionState]:
        return [SUBSCRIPTION, WAITING]

    def cluster(self) -> ClusterState:
        return ClusterState(
            pools={"pbs": PoolState(("cu-0", "cu-1"), 8), SUB_ID: PoolState(("cu-ebs-0",), 4)},
            load={"pbs": 0.75},
            pending_cus=1,
            recent_votes=(VOTE,),
            verifier=VerifierState(enabled=True, verified=8, lag=1, lag_max=16),
            halted=None,
        )

    def block_record(self, number: int | None) -> BlockRecord | None:
        if number is None:
            return self.records[max(self.records)] if self.records else None
        return self.records.get(number)

    def events(self, since: int) -> list[Event]:
        return [e for e in (VOTE, SCALE) if e.block >= since]

    def tx_status(self, tx_hash: bytes) -> TxStatusView:
        views = {
            TX_HASH: TxStatusView(TX_HASH, "pending"),
            QUEUED: TxStatusView(QUEUED, "queued"),
            INCLUDED: TxStatusView(INCLUDED, "included", block_number=9),
            DROPPED: TxStatusView(DROPPED, "dropped", reason="nonce too low"),
        }
        return views.get(tx_hash, TxStatusView(tx_hash, "unknown"))

    def health(self) -> Health:
        return self.health_state


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def client(node: FakeNode) -> TestClient:
    return TestClient(create_app(node))


def hexs(raw: bytes) -> str:
    return "0x" + raw.hex()


def raw(data: bytes) -> dict[str, str]:
    return {"raw": hexs(data)}


# --- transactions --------------------------------------------------------------------------


def test_post_transaction(client: TestClient, node: FakeNode) -> None:
    response = client.post("/v1/transactions", json={"raw": "0x02f801"})
    assert response.status_code == 202
    assert response.json() == {"hash": hexs(TX_HASH), "status": "pending"}
    assert client.post("/v1/transactions", json={"raw": "02F802"}).status_code == 202  # no 0x
    assert node.submitted == [b"\x02\xf8\x01", b"\x02\xf8\x02"]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [(b"\xff", 400, "transaction type not supported"), (b"\xee", 409, "already known")],
)
def test_post_transaction_refused(
    client: TestClient, data: bytes, status: int, message: str
) -> None:
    response = client.post("/v1/transactions", json=raw(data))
    assert response.status_code == status
    assert response.json() == {"detail": message}


@pytest.mark.parametrize(
    "body",
    [{"raw": "0xzz"}, {"raw": "0xabc"}, {"raw": "0x"}, {"raw": ""}, {}, {"raw": 5}],
)
def test_bad_raw_is_422(client: TestClient, node: FakeNode, body: dict[str, Any]) -> None:
    assert client.post("/v1/transactions", json=body).status_code == 422
    assert client.post("/v1/ebs/subscriptions", json=body).status_code == 422
    assert client.request("DELETE", f"/v1/ebs/subscriptions/{SUB_ID}", json=body).status_code == 422
    assert node.submitted == []


def test_raw_cap(client: TestClient, node: FakeNode) -> None:
    at_cap = {"raw": "0x" + "01" * MAX_RAW_BYTES}
    assert client.post("/v1/transactions", json=at_cap).status_code == 202
    over = {"raw": "0x" + "01" * (MAX_RAW_BYTES + 1)}
    assert client.post("/v1/transactions", json=over).status_code == 422


def test_oversized_v1_body_is_413(client: TestClient, node: FakeNode) -> None:
    body = json.dumps({"raw": "0x" + "01" * (160 * 1024)})  # 320 KB > 300 KB
    response = client.post(
        "/v1/transactions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": f"request over {300 * 1024} bytes"}
    assert node.submitted == []


def test_chunked_v1_body_over_the_limit_is_413(node: FakeNode) -> None:
    client = TestClient(create_app(node, max_body=1024))

    def chunks() -> Any:  # no Content-Length: counted as it streams
        yield b'{"raw": "0x'
        for _ in range(8):
            yield b"01" * 128
        yield b'"}'

    response = client.post(
        "/v1/transactions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert node.submitted == []


@pytest.mark.parametrize(
    ("tx_hash", "expected"),
    [
        (TX_HASH, {"status": "pending", "block_number": None, "reason": None}),
        (QUEUED, {"status": "queued", "block_number": None, "reason": None}),
        (INCLUDED, {"status": "included", "block_number": 9, "reason": None}),
        (DROPPED, {"status": "dropped", "block_number": None, "reason": "nonce too low"}),
        (UNKNOWN, {"status": "unknown", "block_number": None, "reason": None}),
    ],
)
def test_transaction_status(client: TestClient, tx_hash: bytes, expected: dict[str, Any]) -> None:
    response = client.get(f"/v1/transactions/{hexs(tx_hash)}")
    assert response.status_code == 200
    assert response.json() == {"hash": hexs(tx_hash), **expected}


def test_transaction_status_hash_forms(client: TestClient) -> None:
    assert client.get(f"/v1/transactions/{INCLUDED.hex()}").json()["status"] == "included"
    assert client.get(f"/v1/transactions/0X{INCLUDED.hex().upper()}").json()["block_number"] == 9
    for bad in ("0x1234", "0x" + "zz" * 32, "0x" + "00" * 33, "pending"):
        assert client.get(f"/v1/transactions/{bad}").status_code == 422, bad


# --- subscriptions -------------------------------------------------------------------------


def test_subscribe(client: TestClient) -> None:
    response = client.post("/v1/ebs/subscriptions", json=raw(b"\x01"))
    assert response.status_code == 202
    assert response.json() == {"id": SUB_ID, "hash": hexs(SUB_TX_HASH), "status": "pending"}


@pytest.mark.parametrize(("data", "status"), [(b"\x02", 400), (b"\x03", 403), (b"\x09", 409)])
def test_subscribe_refused(client: TestClient, data: bytes, status: int) -> None:
    response = client.post("/v1/ebs/subscriptions", json=raw(data))
    assert response.status_code == status
    assert set(response.json()) == {"detail"} and response.json()["detail"]


def test_subscription_views(client: TestClient) -> None:
    view = client.get(f"/v1/ebs/subscriptions/{SUB_ID}").json()
    assert view == {
        "id": SUB_ID,
        "subscriber": hexs(ALICE),
        "contracts": [hexs(TOKEN), hexs(DEX)],
        "stake": str(STAKE),
        "status": "active",
        "requested_block": 3,
        "active_since": 4,
        "cu": "cu-ebs-0",
        "gas_limit": 15_000_000,
        "parallelism": 3.5,
    }
    listed = client.get("/v1/ebs/subscriptions").json()
    assert listed[0] == view
    assert listed[1] == {
        "id": WAITING.id,
        "subscriber": hexs(ALICE),
        "contracts": [hexs(TOKEN)],
        "stake": "1",
        "status": "waiting",
        "requested_block": None,
        "active_since": None,
        "cu": None,
        "gas_limit": None,
        "parallelism": None,
    }
    missing = client.get("/v1/ebs/subscriptions/00")
    assert missing.status_code == 404 and missing.json() == {"detail": "no subscription 00"}


def test_cancel(client: TestClient) -> None:
    path = f"/v1/ebs/subscriptions/{SUB_ID}"
    response = client.request("DELETE", path, json=raw(b"\x02"))
    assert response.status_code == 202
    assert response.json() == {"id": SUB_ID, "hash": hexs(CANCEL_TX_HASH), "status": "cancelling"}
    forbidden = client.request("DELETE", path, json=raw(b"\x03"))
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "only the subscriber may cancel"}
    unknown = client.request("DELETE", "/v1/ebs/subscriptions/00", json=raw(b"\x02"))
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no subscription 00"}


# --- cluster, blocks, events ---------------------------------------------------------------


def test_cluster(client: TestClient) -> None:
    assert client.get("/v1/cluster").json() == {
        "pools": {
            "pbs": {"cus": ["cu-0", "cu-1"], "workers": 8},
            SUB_ID: {"cus": ["cu-ebs-0"], "workers": 4},
        },
        "load": {"pbs": 0.75},
        "pending_cus": 1,
        "recent_votes": [
            {
                "block": 7,
                "kind": "vote",
                "message": "cu-1 votes up",
                "data": {"cu": "cu-1", "voter": hexs(ALICE), "loads": [0.5, 0.9]},
            }
        ],
        "verifier": {"enabled": True, "verified": 8, "lag": 1, "lag_max": 16},
        "halted": None,
    }


def test_cluster_halted(client: TestClient, node: FakeNode, monkeypatch: Any) -> None:
    halted = ClusterState(
        {}, {}, 0, (), VerifierState(False, 0, 0, 0), halted="state root mismatch"
    )
    monkeypatch.setattr(node, "cluster", lambda: halted)
    view = client.get("/v1/cluster").json()
    assert view["halted"] == "state root mismatch"
    assert view["verifier"] == {"enabled": False, "verified": 0, "lag": 0, "lag_max": 0}


RECORD_JSON = {
    "number": 9,
    "hash": hexs(b"\xb9" * 32),
    "parent_hash": hexs(b"\xb8" * 32),
    "state_root": hexs(b"\x59" * 32),
    "txs": {"pbs": 10, SUB_ID: 4},
    "gas_used": {"pbs": 210_000, SUB_ID: 84_000},
    "gas_limit": {"pbs": 15_000_000, SUB_ID: 15_000_000},
    "exec_ms": {"pbs": 12.5, SUB_ID: 3.25},
    "reexecutions": 2,
    "dropped": 1,
    "cus": {"pbs": 2, SUB_ID: 1},
    "parallelism": {SUB_ID: 3.5},
    "produced_at": 1_700_000_000.5,
    "verified": True,
    "phases_ms": {"select": 0.5, "execute": 12.5, "commit": 3.0},
}


def test_blocks(client: TestClient, node: FakeNode) -> None:
    assert client.get("/v1/blocks/latest").json() == RECORD_JSON
    assert client.get("/v1/blocks/9").json() == RECORD_JSON
    missing = client.get("/v1/blocks/10")
    assert missing.status_code == 404 and missing.json() == {"detail": "no block 10"}
    assert client.get("/v1/blocks/nine").status_code == 422
    node.records.clear()
    empty = client.get("/v1/blocks/latest")
    assert empty.status_code == 404 and empty.json() == {"detail": "no block yet"}


def test_events(client: TestClient) -> None:
    events = client.get("/v1/events").json()
    assert [e["kind"] for e in events] == ["vote", "scale"]
    assert events[1] == {
        "block": 8,
        "kind": "scale",
        "message": "pbs 2 -> 3",
        "data": {"pool": "pbs", "cus": 3},
    }
    assert [e["block"] for e in client.get("/v1/events", params={"since": 8}).json()] == [8]
    assert client.get("/v1/events", params={"since": 100}).json() == []
    assert client.get("/v1/events", params={"since": "x"}).status_code == 422


def test_node_error_on_a_read(client: TestClient, node: FakeNode, monkeypatch: Any) -> None:
    def gone(number: int | None) -> BlockRecord | None:
        raise NodeError("block 1 was pruned", status=404)

    monkeypatch.setattr(node, "block_record", gone)
    response = client.get("/v1/blocks/1")
    assert response.status_code == 404 and response.json() == {"detail": "block 1 was pruned"}


# --- health --------------------------------------------------------------------------------


def test_healthz(client: TestClient, node: FakeNode) -> None:
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json() == {"status": "ok", "head": 9}
    node.health_state = Health(False, 9, "block production halted: state root mismatch")
    halted = client.get("/healthz")
    assert halted.status_code == 503
    assert halted.json() == {
        "status": "unavailable",
        "head": 9,
        "reason": "block production halted: state root mismatch",
    }
    node.health_state = Health(False, 40, "verifier 20 blocks behind (max 16)")
    behind = client.get("/healthz")
    assert behind.status_code == 503 and behind.json()["reason"].startswith("verifier")


# --- the combined app ----------------------------------------------------------------------


def test_json_rpc_on_the_combined_app(client: TestClient) -> None:
    answer = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).json()
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": hex(CHAIN_ID)}
    assert client.get("/").status_code == 405


def test_json_rpc_body_over_the_rest_cap(client: TestClient) -> None:
    """A full batch (geth's limit, 1000 calls) with long ids: over 300 KB, under 5 MB."""
    pad = "x" * 320
    batch = [{"jsonrpc": "2.0", "id": f"{pad}{i}", "method": "eth_chainId"} for i in range(1000)]
    body = json.dumps(batch)
    assert len(body) > 300 * 1024
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    answers = response.json()
    assert len(answers) == 1000
    assert answers[-1] == {"jsonrpc": "2.0", "id": f"{pad}999", "result": hex(CHAIN_ID)}


def test_json_rpc_keeps_its_own_cap(node: FakeNode) -> None:
    client = TestClient(create_app(node, rpc_max_body=64 * 1024))
    body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": ["x" * 70_000]}
    )
    response = client.post("/", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "content length too large" in response.json()["error"]["message"]


def test_rpc_app_alone_still_works(node: FakeNode) -> None:
    client = TestClient(create_rpc_app(node))
    answer = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).json()
    assert answer["result"] == hex(CHAIN_ID)
    assert client.get("/v1/cluster").status_code == 404


def test_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/",
        "/healthz",
        "/v1/transactions",
        "/v1/transactions/{tx_hash}",
        "/v1/ebs/subscriptions",
        "/v1/ebs/subscriptions/{subscription}",
        "/v1/cluster",
        "/v1/blocks/latest",
        "/v1/blocks/{number}",
        "/v1/events",
    ):
        assert path in paths, path
    assert client.get("/docs").status_code == 200
