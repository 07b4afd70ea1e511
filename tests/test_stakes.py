"""A cancelled subscription's stake comes back: the stake ledger (pure), the system transfer on
the parallel path against the oracle, and the node returning it at the start of the block
after the cancel, through a restart and a crash mid-commit."""

from dataclasses import replace

import pytest
from support import Cluster, env_for, inline_chain, inline_producer, small_genesis, verified

from bench.workload.genesis import ETHER, sign
from chain import SystemTransfer
from compute_unit.system_ops import SystemTransferError
from ebs.stakes import LedgerError, StakeEntry, StakeLedger
from ebs.subscription import REGISTRY, cancel_data, subscribe_data, subscription_id
from storage.committer import Committer
from storage.keys import acct_key


def subscribe(g, nonce: int, contracts, stake: int = ETHER, value: int | None = None):
    data = subscribe_data(contracts, stake)
    return sign(g.deployer, nonce, REGISTRY, data, stake if value is None else value, 100_000)


def cancel(wallet, nonce: int, sub_id: str, value: int = 0):
    return sign(wallet, nonce, REGISTRY, cancel_data(sub_id), value, 100_000)


def balance(reader, address: bytes) -> int:
    account = reader.get(acct_key(address))
    return account.balance if account else 0


# -- the ledger, pure -------------------------------------------------------------------------
def test_the_ledger_holds_a_stake_until_its_cancel_then_pays_it_once():
    g = small_genesis()
    state = dict(g.state)
    nonce = g.nonces[g.deployer.address]
    ledger = StakeLedger()
    sub = subscribe(g, nonce, [(g.nft, 3)])
    sub_id = subscription_id(sub.hash)
    first = ledger.settle(1, [sub], [True], state)
    assert [s.id for s in first.subscribed] == [sub_id] and not first.refused
    assert ledger.entries == {}  # unchanged until committed
    ledger.commit(first)
    assert ledger.held()[sub_id].amount == ETHER and ledger.due() == ()
    # a cancel by someone else is refused; two cancels in one block pay once
    forged = cancel(g.wallets[0], 0, sub_id)
    mine = cancel(g.deployer, nonce + 1, sub_id)
    again = cancel(g.deployer, nonce + 2, sub_id)
    second = ledger.settle(2, [forged, mine, again], [True] * 3, state)
    assert [c.id for c in second.cancelled] == [sub_id]
    assert [h for h, _ in second.refused] == [forged.hash, again.hash]
    ledger.commit(second)
    assert ledger.held() == {}
    assert ledger.due() == (SystemTransfer(REGISTRY, g.deployer.address, ETHER),)
    third = ledger.settle(3, [], [], state)  # paid at block 3's start
    ledger.commit(third)
    assert ledger.entries == {} and ledger.due() == ()


def test_ether_the_registry_does_not_hold_as_a_stake_goes_back_to_its_sender():
    g = small_genesis()
    nonce = g.nonces[g.deployer.address]
    ledger = StakeLedger()
    wrong_value = subscribe(g, nonce, [(g.nft, 3)], value=2 * ETHER)  # refused: value != stake
    failed = subscribe(g, nonce + 1, [(g.nft, 3)])
    cancel_with_value = cancel(g.wallets[1], 0, "00" * 8, value=5)
    settlement = ledger.settle(
        4, [wrong_value, failed, cancel_with_value], [True, False, True], dict(g.state)
    )
    ledger.commit(settlement)
    assert "must equal the stake" in settlement.refused[0][1]
    assert not settlement.subscribed  # the failed one sent nothing and is not a subscription
    assert sorted(ledger.due(), key=lambda t: t.amount) == [
        SystemTransfer(REGISTRY, g.wallets[1].address, 5),
        SystemTransfer(REGISTRY, g.deployer.address, 2 * ETHER),
    ]


def test_the_ledger_survives_its_records_and_refuses_a_garbled_one():
    entry = StakeEntry(b"\x01" * 20, ETHER, False, (b"\x02" * 20,), 7)
    ledger = StakeLedger.load({b"\x00" * 8: entry.encode()})
    assert ledger.entries == {b"\x00" * 8: entry}
    with pytest.raises(LedgerError, match="does not decode"):
        StakeLedger.load({b"\x00" * 8: b"\xc3\x01\x02\x03"})


# -- the system transfer: parallel path == oracle ---------------------------------------------
def test_a_system_transfer_moves_ether_identically_on_both_paths_and_empties_its_sender():
    g = small_genesis()
    chain = inline_chain(g)
    funder, middle, recipient = g.wallets[0].address, b"\x66" * 20, b"\x77" * 20
    tx = sign(g.wallets[1], g.nonces[g.wallets[1].address], recipient, value=1)
    first = replace(env_for(1, []), transfers=(SystemTransfer(funder, middle, ETHER),))
    report, _, _ = chain.import_block(first, [tx])  # the transfer before the transaction
    assert report.root_match and report.receipts_match, report
    assert balance(chain.snapshot, middle) == ETHER
    second = replace(env_for(2, []), transfers=(SystemTransfer(middle, recipient, ETHER),))
    report, _, _ = chain.import_block(second, [])
    assert report.root_match, report
    assert chain.snapshot.get(acct_key(middle)) is None  # left empty: deleted, on both paths
    assert balance(chain.snapshot, recipient) == ETHER + 1
    too_much = replace(env_for(3, []), transfers=(SystemTransfer(middle, funder, 1),))
    with pytest.raises(SystemTransferError, match="which holds 0"):
        chain.import_block(too_much, [])
    chain.close()


# -- the node ---------------------------------------------------------------------------------
def test_a_cancelled_stake_is_returned_at_the_start_of_the_next_block(tmp_path):
    g = small_genesis()
    cluster = Cluster()
    p = inline_producer(cluster=cluster, data_dir=tmp_path / "chain")
    nonce = g.nonces[g.deployer.address]
    p.intake.submit(subscribe(g, nonce, [(g.nft, 3)], 2 * ETHER).encode())
    p.produce()
    [record] = p.book.records.values()
    assert record.status == "active" and balance(p.state, REGISTRY) == 2 * ETHER
    p.intake.submit(cancel(g.deployer, nonce + 1, record.id).encode())
    cancelled = p.produce()
    before = balance(p.state, g.deployer.address)
    assert record.status == "cancelled" and balance(p.state, REGISTRY) == 2 * ETHER
    assert p.book.due() == (SystemTransfer(REGISTRY, g.deployer.address, 2 * ETHER),)
    refunded = p.produce()
    assert refunded.number == cancelled.number + 1
    assert balance(p.state, g.deployer.address) == before + 2 * ETHER
    assert p.state.get(acct_key(REGISTRY)) is None  # emptied, so deleted (EIP-161)
    assert p.data.block(refunded.number).transfers == (
        SystemTransfer(REGISTRY, g.deployer.address, 2 * ETHER),
    )
    assert p.data.block(cancelled.number).transfers == ()
    assert any(e.kind == "stake" and f"block {refunded.number}" in e.message for e in p.events)
    p.produce()
    assert p.data.block(refunded.number + 1).transfers == ()  # paid once
    verified(p)  # the replica's own ledger gave the same refund, the same roots
    p.close()


def test_a_restart_keeps_the_subscriptions_and_the_refunds_due(tmp_path):
    g = small_genesis()
    nonce = g.nonces[g.deployer.address]
    first = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    first.intake.submit(subscribe(g, nonce, [(g.nft, 3)]).encode())
    first.intake.submit(subscribe(g, nonce + 1, [(g.token_a, 0)], 3 * ETHER).encode())
    first.produce()
    nft_id, token_id = (r.id for r in sorted(first.book.records.values(), key=lambda r: r.stake))
    first.intake.submit(cancel(g.deployer, nonce + 2, nft_id).encode())
    first.produce()
    first.close()
    second = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    assert second.book.records[token_id].status == "active"  # seated again on a new CU
    assert second.book.records[token_id].stake == 3 * ETHER
    assert nft_id not in second.book.records
    assert second.book.due() == (SystemTransfer(REGISTRY, g.deployer.address, ETHER),)
    before = balance(second.state, g.deployer.address)
    second.produce()
    assert balance(second.state, g.deployer.address) == before + ETHER
    assert balance(second.state, REGISTRY) == 3 * ETHER
    second.intake.submit(cancel(g.deployer, nonce + 3, token_id).encode())  # cancel after it
    second.produce()
    second.produce()
    assert second.state.get(acct_key(REGISTRY)) is None
    verified(second)  # a fresh replica replayed from genesis, refunds included
    second.close()


def test_a_crash_mid_commit_of_a_refund_block_rolls_forward_with_its_refund(tmp_path, monkeypatch):
    g = small_genesis()
    nonce = g.nonces[g.deployer.address]
    p = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    p.intake.submit(subscribe(g, nonce, [(g.nft, 3)]).encode())
    p.produce()
    [record] = p.book.records.values()
    p.intake.submit(cancel(g.deployer, nonce + 1, record.id).encode())
    p.produce()
    before = balance(p.state, g.deployer.address)

    def power_cut(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(Committer, "_write", power_cut)
    assert p.produce() is None  # block 3, with the refund, stored; its state not committed
    assert p.data.block(3).transfers
    monkeypatch.undo()
    p.close()
    again = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    assert "re-executed block 3" in again.builder.recovery
    assert balance(again.state, g.deployer.address) == before + ETHER
    assert again.book.due() == ()  # the ledger was stored with block 3: not paid twice
    again.produce()
    assert balance(again.state, g.deployer.address) == before + ETHER
    verified(again)
    again.close()


def test_the_replica_refuses_a_block_paying_a_refund_its_ledger_does_not_owe(tmp_path):
    from bench.workload.genesis import chain_genesis
    from coordinator.verifier import Verifier

    g = small_genesis()
    p = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    p.produce()
    p.produce()
    blocks = list(p.builder.committed_blocks(2))
    spec = chain_genesis(g).spec
    honest = Verifier(g.state.items(), spec.chain_id, spec.vm_class_at)
    assert all(honest.check(block).matches for block in blocks)
    forged = replace(blocks[1], transfers=(SystemTransfer(REGISTRY, b"\x01" * 20, 1),))
    replica = Verifier(g.state.items(), spec.chain_id, spec.vm_class_at)
    assert replica.check(blocks[0]).matches
    verdict = replica.check(forged)
    assert not verdict.matches and "system transfers [1 to 0x0101" in verdict.detail
    p.close()


def test_a_garbled_ledger_record_stops_the_node_naming_it(tmp_path):
    from storage.chaindata import ChainData
    from storage.ss import StorageError

    p = inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
    p.produce()
    p.close()
    bad = StakeEntry(b"\x01" * 20, ETHER, False).encode()  # held, yet under a 32-byte key
    with ChainData(tmp_path / "chain" / "chain") as data:
        data.write_block(
            replace(data.block(1), number=2, hash=b"\x02" * 32), {}, (), {b"\x03" * 32: bad}
        )
    with pytest.raises(StorageError, match="corrupt record registry/0303"):
        inline_producer(cluster=Cluster(), data_dir=tmp_path / "chain")
