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
