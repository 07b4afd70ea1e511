"""K-Persist pages: what a trie takes as one entry is counted as it would be encoded."""

from hypothesis import given, settings
from hypothesis import strategies as st
from rlp.codec import encode_raw

from storage.mpt import Trie
from storage.pages import Entry, entry_parts, unpaged_size

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
