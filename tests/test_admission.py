"""Bad transactions are rejected before execution with a reason naming them; the rest runs."""

from eth.vm.forks.cancun import CancunVM
from support import assert_identical, env_for, generator, inline_chain, small_genesis

from bench.workload.genesis import BASE_FEE, ETHER, GWEI, Wallet, sign


def test_each_bad_transaction_is_rejected_by_name_and_the_block_still_runs():
    genesis = small_genesis()
    good = generator(genesis, "erc20=1", 0.0, seed=2).block(10)
    alice, bob = genesis.wallets[7], genesis.wallets[8]
    nonce = genesis.nonces[alice.address]
    valid = sign(alice, nonce, bob.address, value=1)
    forged = valid.copy(r=valid.r ^ 0xFF)
    gap = sign(alice, nonce + 7, bob.address, value=1)
    broke = sign(Wallet.derive(99, 1), 0, bob.address, value=1)  # never funded
    too_much = sign(bob, genesis.nonces[bob.address], alice.address, value=10**6 * ETHER)
    bad = [forged, gap, broke, too_much, b"\x02garbage"]
    candidates = [*good[:5], *bad, *good[5:]]
    with inline_chain(genesis) as chain:
        report, _, _ = chain.run_block(env_for(1, good), candidates)
    reasons = {r.index: r.reason for r in chain.last_rejections}
    assert sorted(reasons) == [5, 6, 7, 8, 9]
    assert "signature" in reasons[5]
    assert "nonce gap" in reasons[6] and "expects nonce" in reasons[6]
    assert "insufficient balance" in reasons[7]
    assert "insufficient balance" in reasons[8]
    assert "malformed" in reasons[9]
    for rejection in chain.last_rejections:
        assert str(rejection).startswith(f"transaction {rejection.index} (")
    assert report.txs == 10 and report.rejected == 5
    assert_identical(report)


def test_wrong_chain_id_is_named():
    genesis = small_genesis()
    alice, bob = genesis.wallets[3], genesis.wallets[4]
    nonce = genesis.nonces[alice.address]
    unsigned = CancunVM.get_transaction_builder().new_unsigned_dynamic_fee_transaction(
        chain_id=1,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=21_000,
        to=bob.address,
        value=1,
        data=b"",
        access_list=(),
    )
    other_chain = unsigned.as_signed_transaction(alice.key)
    ours = sign(alice, nonce, bob.address, value=1)
    with inline_chain(genesis) as chain:
        report, _, _ = chain.run_block(env_for(1, [ours]), [other_chain, ours])
    assert [r.index for r in chain.last_rejections] == [0]
    assert "wrong chain id 1" in chain.last_rejections[0].reason
    assert report.txs == 1
    assert_identical(report)
