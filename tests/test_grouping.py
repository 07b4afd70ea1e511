import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordinator.grouping import group_by_sender


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
