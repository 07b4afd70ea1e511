"""Parallel == sequential (receipts, gas, state root) for every mix, skew and grouping.

Runs on an in-process CU (InlineComputeUnit), the small-block fallback off, by both paths:
``groups`` (optimistic group execution, then validation and re-execution in block order) and
``stm`` (Block-STM on the CU's worker slots: validation and re-execution there). Every block
is asserted to have reached the workers. ``test_compute_unit.py`` and ``test_stm.py`` cover
the Ray shells.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    assert_identical,
    assert_reached_workers,
    env_for,
    generator,
    inline_chain,
    small_genesis,
)

from bench.workload.genesis import sign

MIXES = {
    "erc20": "erc20=1",
    "transfers": "transfer=1",
    "default": "transfer=0.2,erc20=0.5,swap=0.2,mint=0.1",
    "amm-heavy": "swap=0.7,erc20=0.2,mint=0.1",
    "creates-and-reverts": "erc20=0.4,deploy=0.2,revert=0.2,transfer=0.2",
}
PATHS = ["groups", "stm"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("skew", [0.0, 1.2])
def test_parallel_matches_sequential(mix, skew, path):
    genesis = small_genesis()
    gen = generator(genesis, MIXES[mix], skew, seed=11)
    with inline_chain(genesis, path=path, seed=skew > 0 and 5 or None) as chain:
        for number in (1, 2):
            txs = gen.block(60)
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            assert_reached_workers(chain, report)
            assert report.txs == 60 and report.rejected == 0


@pytest.mark.parametrize("path", PATHS)
def test_reverts_and_creations_really_happen(path):
    genesis = small_genesis()
    txs = generator(genesis, MIXES["creates-and-reverts"], 0.5, 5).block(60)
    with inline_chain(genesis, path=path) as chain:
        report, parallel, _ = chain.run_block(env_for(1, txs), txs)
    assert_identical(report)
    assert_reached_workers(chain, report)
    statuses = [r.state_root for r in parallel.block.receipts]
    assert b"" in statuses and b"\x01" in statuses
    assert any(tx.to == b"" for tx in txs)


@pytest.mark.parametrize("path", PATHS)
def test_nonce_chain_of_one_sender(path):
    """One sender's chain is one group (one lane): it runs in order, nothing re-executes."""
    genesis = small_genesis()
    wallet, other = genesis.wallets[0], genesis.wallets[1]
    first = genesis.nonces[wallet.address]
    txs = [sign(wallet, first + n, other.address, value=10**9) for n in range(12)]
    with inline_chain(genesis, path=path) as chain:
        report, _, _ = chain.run_block(env_for(1, txs), txs)
    assert_identical(report)
    assert_reached_workers(chain, report)
    assert report.txs == 12 and report.reexecutions == 0


@pytest.mark.parametrize("grouping", ["one-per-tx", "interleaved", "none-run"])
def test_bad_groupings_stay_identical_with_more_reexecutions(grouping):
    genesis = small_genesis()
    gen = generator(genesis, MIXES["amm-heavy"], 1.2, seed=4)
    txs = gen.block(50)
    with inline_chain(genesis) as chain:
        reference, _, _ = chain.run_block(env_for(1, txs), txs)
    if grouping == "one-per-tx":
        groups = [[i] for i in range(len(txs))]
    elif grouping == "interleaved":  # conflicting neighbours (and nonce chains) split apart
        groups = [list(range(0, len(txs), 2)), list(range(1, len(txs), 2))]
    else:
        groups = []
    with inline_chain(genesis, path="groups") as chain:
        report, _, _ = chain.run_block(env_for(1, txs), txs, groups=groups)
        if groups:  # with none, every transaction runs in the final pass
            assert_reached_workers(chain, report)
    assert_identical(report)
    assert report.reexecutions >= reference.reexecutions
    if grouping == "none-run":
        assert report.reexecutions == len(txs)
    # the same groups as Block-STM's lanes: a wrong plan costs aborts, never the result
    with inline_chain(genesis, path="stm", seed=3) as chain:
        report, _, _ = chain.run_block(env_for(1, txs), txs, groups=groups)
        assert_reached_workers(chain, report)
    assert_identical(report)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shares=st.lists(st.integers(0, 4), min_size=6, max_size=6).filter(any),
    skew=st.floats(0.0, 2.0),
    seed=st.integers(0, 10**6),
    count=st.integers(1, 40),
    workers=st.integers(1, 4),
    path=st.sampled_from(PATHS),
)
def test_random_blocks(shares, skew, seed, count, workers, path):
    kinds = ("transfer", "erc20", "swap", "mint", "deploy", "revert")
    mix = ",".join(f"{k}={s}" for k, s in zip(kinds, shares, strict=True) if s)
    genesis = small_genesis()
    gen = generator(genesis, mix, skew, seed)
    with inline_chain(genesis, size=workers, path=path, seed=seed) as chain:
        for number in (1, 2):
            txs = gen.block(count)
            report, _, _ = chain.run_block(env_for(number, txs), txs)
            assert_identical(report)
            assert_reached_workers(chain, report)
