"""The HTTP API over an in-process coordinator: subscription lifecycle with clear statuses,
and the mempool's order (nonce chains, highest tip first, replacements, stale nonces)."""

import dataclasses

import pytest
from fastapi.testclient import TestClient
from support import InlineComputeUnit, small_genesis

from bench.workload.genesis import BASE_FEE, ETHER, GWEI, sign
from coordinator.mempool import Mempool, MempoolError
from coordinator.producer import BlockProducer, CoordinatorSettings
from ebs.api import LocalBackend, create_app
from ebs.subscription import REGISTRY, cancel_data, subscribe_data


@pytest.fixture
def api():
    cus = iter(range(100))

    def make_cu(name, cores):
        next(cus)
        return InlineComputeUnit(cores, name)

    settings = dataclasses.replace(CoordinatorSettings(), seed=1)
    producer = BlockProducer(small_genesis().state.items(), settings, make_cu)
    with TestClient(create_app(LocalBackend(producer))) as client:
        yield producer, client
    producer.close()


def raw(tx) -> dict:
    return {"raw": "0x" + tx.encode().hex()}


def test_subscription_lifecycle_over_http(api):
    producer, client = api
    g = small_genesis()
    nonce = g.nonces[g.deployer.address]
    subscribe = sign(
        g.deployer, nonce, REGISTRY, subscribe_data([(g.nft, 3)], ETHER), ETHER, 100_000
    )
    response = client.post("/v1/ebs/subscriptions", json=raw(subscribe))
    assert response.status_code == 202
    sub_id = response.json()["id"]
    again = sign(
        g.deployer, nonce + 1, REGISTRY, subscribe_data([(g.nft, 3)], ETHER), ETHER, 100_000
    )
    assert client.post("/v1/ebs/subscriptions", json=raw(again)).status_code == 409
    plain = sign(g.wallets[0], 0, g.wallets[1].address, value=1)
    assert client.post("/v1/ebs/subscriptions", json=raw(plain)).status_code == 400
    producer.produce()
    view = client.get(f"/v1/ebs/subscriptions/{sub_id}").json()
    assert view["status"] == "active" and view["gas_limit"] == 30_000_000
    assert [s["id"] for s in client.get("/v1/ebs/subscriptions").json()] == [sub_id]

    cancel = sign(g.deployer, nonce + 1, REGISTRY, cancel_data(sub_id), 0, 100_000)
    other = sign(g.wallets[0], 0, REGISTRY, cancel_data(sub_id), 0, 100_000)
    assert (
        client.request("DELETE", f"/v1/ebs/subscriptions/{sub_id}", json=raw(other)).status_code
        == 403
    )
    assert client.request("DELETE", "/v1/ebs/subscriptions/00", json=raw(cancel)).status_code == 400
    assert (
        client.request("DELETE", f"/v1/ebs/subscriptions/{sub_id}", json=raw(cancel)).status_code
        == 202
    )
    producer.produce()
    assert client.get(f"/v1/ebs/subscriptions/{sub_id}").json()["status"] == "cancelled"
    assert client.get("/v1/blocks/2").json()["verified"]
    assert client.get("/v1/blocks/9").status_code == 404
    assert any(e["kind"] == "subscription" for e in client.get("/v1/events").json())
    assert "pbs" in client.get("/v1/cluster").json()["pools"]
    assert "/v1/ebs/subscriptions" in client.get("/openapi.json").json()["paths"]


def test_the_mempool_orders_by_nonce_and_tip():
    g = small_genesis()
    a, b = g.wallets[0], g.wallets[1]
    pool = Mempool(BASE_FEE)

    def tx(wallet, nonce, tip, value=1):
        return sign(wallet, nonce, g.wallets[5].address, value=value, tip=tip)

    for t, sender in [(tx(a, 1, 9 * GWEI), a), (tx(a, 0, GWEI), a), (tx(b, 0, 5 * GWEI), b)]:
        pool.add(t, sender.address)
    with pytest.raises(MempoolError, match="higher tip"):
        pool.add(tx(b, 0, 5 * GWEI, value=2), b.address)
    pool.add(tx(b, 0, 6 * GWEI), b.address)  # a replacement paying more
    with pytest.raises(MempoolError, match="already pending"):
        pool.add(tx(b, 0, 6 * GWEI), b.address)
    taken = pool.take(10**9, lambda t: True, {a.address: 0, b.address: 0}.__getitem__)
    assert [(t.nonce, t.max_priority_fee_per_gas) for t in taken] == [
        (0, 6 * GWEI),
        (0, GWEI),
        (1, 9 * GWEI),
    ]
    assert len(pool) == 0
    pool.add(tx(a, 0, GWEI), a.address)
    pool.add(tx(a, 3, GWEI), a.address)
    assert pool.take(10**9, lambda t: True, {a.address: 2}.__getitem__) == []  # 0 stale, 3 gap
    assert len(pool) == 1
