"""The node's block production in process (no Ray): block spaces, subscriptions, scaling
after a vote, a failed CU; every block checked by the verifier replica."""

import pytest
from support import Cluster, generator, inline_producer, small_genesis, verified

from bench.workload.genesis import ETHER, sign
from coordinator.node_api import NodeError
from coordinator.scaling import PBS
from ebs.subscription import REGISTRY, cancel_data, subscribe_data


def feed(p, txs) -> None:
    for tx in txs:
        p.intake.submit(tx.encode())


def subscription_tx(g, wallet, nonce: int, contracts, stake: int = ETHER):
    return sign(wallet, nonce, REGISTRY, subscribe_data(contracts, stake), stake, 100_000)


def test_a_subscribed_dapp_gets_its_own_space_and_cu():
    g = small_genesis()
    cluster = Cluster()
    p = inline_producer(cluster=cluster)
    gen = generator(g, "erc20=0.6,mint=0.4", 0.5, 3)
    nonce = g.nonces[g.deployer.address]
    feed(p, [subscription_tx(g, g.deployer, nonce, [(g.nft, 3)])])
    feed(p, gen.block(40))
    first = p.produce()
    assert set(first.txs) == {PBS} and first.txs[PBS] == 41 and first.dropped == 0
    assert cluster.made["cu-0"].executed > 0  # the block reached the CU's workers
    [record] = p.book.records.values()
    assert record.status == "active" and record.cu == "cu-1"
    assert record.space.gas_limit == 30_000_000  # P unknown: the worst case
    feed(p, gen.block(60))
    second = p.produce()
    assert second.txs["cu-1"] > 0 and second.gas_used["cu-1"] > 0
    assert any("active from block 2" in e.message for e in p.events)
    assert record.space.parallelism >= 1.0 and len(record.space.history) == 1
    # cancel: the CU is released
    feed(p, [sign(g.deployer, nonce + 1, REGISTRY, cancel_data(record.id), 0, 100_000)])
    p.produce()
    assert record.status == "cancelled" and "cu-1" not in p.pools
    assert cluster.made["cu-1"].closed
    verified(p)
    p.close()


def test_forged_duplicate_and_malformed_requests_are_refused():
    g = small_genesis()
    p = inline_producer()
    with pytest.raises(NodeError, match="not the deployer") as forged:
        wallet = g.wallets[0]
        forged_tx = subscription_tx(g, wallet, g.nonces[wallet.address], [(g.nft, 3)])
        p.intake.submit(forged_tx.encode())
    assert forged.value.status == 403
    with pytest.raises(NodeError, match="malformed") as garbage:
        p.intake.submit(b"\x02\xff\x00")
    assert garbage.value.status == 400
    nonce = g.nonces[g.deployer.address]
    p.intake.submit(subscription_tx(g, g.deployer, nonce, [(g.nft, 3)]).encode())
    p.produce()
    with pytest.raises(NodeError, match="already subscribed") as duplicate:
        p.intake.submit(subscription_tx(g, g.deployer, nonce + 1, [(g.nft, 3)]).encode())
    assert duplicate.value.status == 409
    with pytest.raises(NodeError, match="no subscription"):
        cancel = sign(g.deployer, nonce + 1, REGISTRY, cancel_data("00" * 8), 0, 100_000)
        p.intake.submit(cancel.encode())
    p.close()


def test_load_scales_the_basic_pool_up_after_a_vote_and_back_down():
    g = small_genesis()
    p = inline_producer(block_interval=0.001)  # any block overloads a 1 ms interval
    gen = generator(g, "erc20=1", 0.0, 5)
    for _ in range(4):
        feed(p, gen.block(30))
        p.produce()
    kinds = [e.kind for e in p.events]
    assert "proposal" in kinds and "vote" in kinds and "scale" in kinds
    assert len(p.pools[PBS].cus) > 1
    grown = len(p.pools[PBS].cus)
    p.scaler.interval = 1000.0  # now nearly idle
    for _ in range(4):
        feed(p, gen.block(5))
        p.produce()
    assert len(p.pools[PBS].cus) == 1 < grown  # never below the basic CUs
    assert any("removed" in e.message for e in p.events)
    verified(p)
    p.close()


def test_a_cu_that_cannot_be_placed_leaves_the_step_pending():
    g = small_genesis()
    p = inline_producer(cluster=Cluster(room=2), block_interval=0.001)
    gen = generator(g, "erc20=1", 0.0, 6)
    for _ in range(4):
        feed(p, gen.block(20))
        p.produce()
    assert p.scaler.pending_cus > 0
    assert any(e.kind == "pending" for e in p.events)
    assert len(p.pools[PBS].cus) == 2
    p.close()


def test_a_cu_failing_mid_block_has_its_work_rerun_elsewhere():
    g = small_genesis()
    cluster = Cluster()
    p = inline_producer(cluster=cluster, basic_cus=2)
    gen = generator(g, "transfer=0.5,erc20=0.5", 0.0, 8)
    cluster.made["cu-0"].fail_next = True
    feed(p, gen.block(60))
    record = p.produce()
    assert record.txs[PBS] == 60
    assert any(e.kind == "failure" and "cu-0 failed mid-block" in e.message for e in p.events)
    verified(p)
    p.close()


def test_scarce_ebs_capacity_goes_to_the_highest_stake():
    g = small_genesis()
    p = inline_producer(ebs_slots=1)
    nonce = g.nonces[g.deployer.address]
    feed(p, [subscription_tx(g, g.deployer, nonce, [(g.nft, 3)], ETHER)])
    feed(p, [subscription_tx(g, g.deployer, nonce + 1, [(g.token_a, 0)], 3 * ETHER)])
    p.produce()
    status = {r.contracts[0]: r.status for r in p.book.records.values()}
    assert status == {g.token_a: "active", g.nft: "waiting"}
    p.close()
