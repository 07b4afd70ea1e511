import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.grouping import FallbackPolicy, group_by_sender, sequential_reason


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
