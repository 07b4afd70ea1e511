"""K-Persist pages: what a trie takes as one entry is counted as it would be encoded; a delta
of a node applied to its old encoding gives the new one, and a garbled delta is refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.codec import encode_raw

from storage.mpt import Trie
from storage.pages import (
    BRANCH_DIFF,
    HASH_ONLY,
    Entry,
    apply_diff,
    diff_nodes,
    entry_parts,
    unpaged_size,
)

NO_CUT = 10**6  # levels: an entry at the root whose every node is inline

keys = st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=3))
values = st.one_of(
    st.integers(0, 127).map(lambda n: bytes([n])),  # (one byte under 0x80: RLP keeps it bare)
    st.binary(min_size=1, max_size=80),  # (past 55 bytes: a longer RLP header)
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=40))
def test_unpaged_size_is_the_length_of_the_entry_encoded_with_no_cut(items):
    """Keys of mixed lengths give branches with values, extensions and short leaves; many
    items, sizes past 55 bytes (a long RLP list)."""
    by_length: dict[int, dict[bytes, bytes]] = {}
    for key, value in items.items():
        by_length.setdefault(len(key), {})[key] = value
    for same_length in by_length.values():  # (a trie's keys are of one length)
        trie = Trie.build(same_length.items())
        raw = entry_parts(Entry(b"", trie.root), NO_CUT)[0]
        assert unpaged_size(trie.root) == len(encode_raw(raw))


updates = st.dictionaries(
    st.binary(min_size=32, max_size=32), st.one_of(st.none(), st.binary(min_size=1, max_size=80))
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(min_size=32, max_size=32), values, min_size=1), updates)
def test_a_delta_of_a_node_applied_to_its_old_encoding_gives_the_new_one(items, changes):
    """Branches that change some children (a bitmap of them), hashed leaves whose hash alone
    changes, leaves and children added or removed; cut at 2 nibbles, leaves by hash."""
    new_items = {**items, **changes}
    new_items = {key: value for key, value in new_items.items() if value is not None}
    if not new_items:
        return
    old_raw = entry_parts(Entry(b"", Trie.build(items.items()).root), 2, hashed=True)[0]
    new_raw = entry_parts(Entry(b"", Trie.build(new_items.items()).root), 2, hashed=True)[0]
    diff = diff_nodes(new_raw, old_raw)
    assert apply_diff(diff, old_raw) == new_raw
    assert len(encode_raw(diff)) <= len(encode_raw(new_raw)) + 8  # (never much over full)


def test_a_branch_delta_whose_bitmap_miscounts_its_children_is_refused():
    old = [b"B", b"", [b""] * 16]
    new = [b"B", b"", [b"\x01" * 32] + [b""] * 15]
    diff = diff_nodes(new, old)
    assert diff == [BRANCH_DIFF, b"", b"\x80\x00", b"\x01" * 32]
    with pytest.raises(ValueError, match="bitmap"):
        apply_diff([BRANCH_DIFF, b"", b"\xc0\x00", b"\x01" * 32], old)
    with pytest.raises(ValueError, match="lacks"):
        apply_diff(diff, [b"H", b"\x00", b"\x02" * 32, []])
    with pytest.raises(ValueError, match="lacks"):
        apply_diff(HASH_ONLY + b"\x03" * 32, old)
