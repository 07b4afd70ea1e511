import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.grouping import (
    FallbackPolicy,
    conflict_components,
    group_by_sender,
    largest_share,
    pack_components,
    sequential_reason,
)
from coordinator.learner import Prediction


@given(st.lists(st.integers(0, 12), max_size=80), st.integers(1, 6))
def test_sender_groups_partition_the_block_and_keep_senders_together(sender_ids, n):
    senders = [bytes([s]) * 20 for s in sender_ids]
    groups = group_by_sender(senders, n)
    assert sorted(i for g in groups for i in g) == list(range(len(senders)))
    assert len(groups) <= n
    home = {}
    for g, group in enumerate(groups):
        assert group == sorted(group)
        for i in group:
            assert home.setdefault(senders[i], g) == g


def test_groups_are_balanced_by_count():
    senders = [bytes([i]) * 20 for i in range(10)]
    assert sorted(len(g) for g in group_by_sender(senders, 2)) == [5, 5]


def test_zero_groups_is_an_error():
    with pytest.raises(ValueError, match="at least 1"):
        group_by_sender([b"\x01" * 20], 0)


def test_groups_are_balanced_by_weight():
    senders = [bytes([i]) * 20 for i in range(5)]
    groups = group_by_sender(senders, 2, weights=[90, 10, 10, 10, 10])
    assert sorted(groups) == [[0], [1, 2, 3, 4]]


def test_a_small_block_runs_sequentially():
    policy = FallbackPolicy(min_gas=100_000, min_gain=1.15)
    reason = sequential_reason([[0], [1]], [21_000, 21_000], policy)
    assert reason is not None and "under 100,000" in reason


def test_one_dominant_chain_runs_sequentially_and_a_balanced_block_does_not():
    policy = FallbackPolicy(min_gas=0, min_gain=1.15)
    chain = sequential_reason([[0, 1, 2], [3]], [500, 500, 500, 50], policy)
    assert chain is not None and "97%" in chain
    assert sequential_reason([[0, 1], [2, 3]], [500, 500, 500, 50], policy) is None


ADDRS = [bytes([a]) * 20 for a in range(4)]
state_key = st.one_of(
    st.builds(lambda a: ("acct", a), st.sampled_from(ADDRS)),
    st.builds(lambda a, s: ("slot", a, s), st.sampled_from(ADDRS), st.integers(0, 3)),
)
prediction = st.builds(
    Prediction,
    reads=st.sets(state_key, max_size=3),
    writes=st.sets(state_key, max_size=2),
    wildcard=st.one_of(st.none(), st.sampled_from(ADDRS)),
)


def conflict(a: Prediction, b: Prediction) -> bool:
    if a.writes & (b.reads | b.writes) or b.writes & a.reads:
        return True
    for x, y in ((a, b), (b, a)):
        if x.wildcard is not None and (
            x.wildcard == y.wildcard or any(k[1] == x.wildcard for k in y.reads | y.writes)
        ):
            return True
    return False


@given(st.lists(prediction, max_size=25), st.integers(1, 4))
def test_grouping_never_splits_a_predicted_conflict(predictions, n):
    components = conflict_components(predictions)
    assert sorted(i for c in components for i in c) == list(range(len(predictions)))
    groups = pack_components(components, n, [1] * len(predictions))
    home = {i: g for g, group in enumerate(groups) for i in group}
    for group in groups:
        assert group == sorted(group)
    for i, a in enumerate(predictions):
        for j in range(i + 1, len(predictions)):
            if conflict(a, predictions[j]):
                assert home[i] == home[j], f"transactions {i} and {j} conflict"


def test_reads_alone_and_ignored_keys_do_not_conflict():
    coinbase = ("acct", b"\xfe" * 20)
    shared = ("slot", ADDRS[0], 1)
    predictions = [
        Prediction(reads={shared}, writes={("acct", ADDRS[1]), coinbase}),
        Prediction(reads={shared}, writes={("acct", ADDRS[2]), coinbase}),
    ]
    assert len(conflict_components(predictions, ignore={coinbase})) == 2
    assert len(conflict_components(predictions)) == 1
    assert largest_share([[0], [1]], [3, 1]) == 0.75
