"""The in-memory MPT gives py-trie's roots and proofs for any inserts, updates and deletes,
including keys that share long prefixes or are prefixes of each other."""

from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from storage.mpt import Trie

# few distinct bytes so keys share long prefixes; short keys so some are prefixes of others
keys = st.binary(min_size=0, max_size=5).map(lambda b: bytes(x % 3 for x in b))
values = st.one_of(st.just(b""), st.binary(min_size=1, max_size=40))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(keys, values), max_size=12), min_size=1, max_size=5))
def test_roots_and_proofs_match_py_trie(batches):
    ours, theirs, model = Trie(), HexaryTrie({}), {}
    for batch in batches:
        for key, value in batch:
            ours.put(key, value)
            if value:
                theirs[key] = model[key] = value
            elif key in model:
                del theirs[key], model[key]
        assert ours.root_hash == theirs.root_hash
        for key, _ in batch:
            assert ours.get(key) == model.get(key)
            if key in model:  # py-trie cannot read absent keys that end inside an extension
                proof = ours.proof(key)
                assert HexaryTrie.get_from_proof(ours.root_hash, key, proof) == model[key]


# keys of one length (as state tries have), every nibble 0 or 1: 64 keys, branches at each
# depth, so batches split, fill and collapse them
fixed_keys = st.binary(min_size=3, max_size=3).map(lambda b: bytes(x & 0x11 for x in b))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(fixed_keys, st.binary(min_size=1, max_size=40), max_size=20),
    st.lists(st.dictionaries(fixed_keys, values, max_size=12), max_size=4),
)
def test_build_and_put_many_match_py_trie(initial, batches):
    """A trie built in one pass, then updated a batch at a time (inserts, updates, deletes,
    branches collapsing), has py-trie's root after each batch."""
    ours, theirs = Trie.build(initial.items()), HexaryTrie({})
    for key, value in initial.items():
        theirs[key] = value
    assert ours.root_hash == theirs.root_hash
    for batch in batches:
        ours.put_many((key, value, None) for key, value in batch.items())
        for key, value in batch.items():
            if value:
                theirs[key] = value
            elif theirs.exists(key):
                del theirs[key]
        assert ours.root_hash == theirs.root_hash
        for key, value in batch.items():
            assert ours.get(key) == (value or None)
