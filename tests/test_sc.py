"""State Commitment: paged, versioned tries whose roots equal py-evm's / py-trie's after
every block, with proofs at earlier blocks, pages forced to split and merge, reopening."""

import random
import re
from collections import Counter
from dataclasses import replace

import pytest
import rlp
from eth.constants import EMPTY_SHA3
from eth.rlp.accounts import Account
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import random_state_blocks
from trie import HexaryTrie

import storage.sc
from storage.committer import Committer
from storage.keys import AccountFields, acct_key, decode_account, encode_account, slot_key
from storage.mpt import Branch, Extension, Leaf, Stub
from storage.pages import (
    PACK_DEPTH,
    Page,
    PageRef,
    decode_pack,
    decode_page,
    describe_key,
    encode_entry,
    encode_pack,
    encode_page,
    pack_key,
    page_key,
    unpack,
    unseal,
)
from storage.reference_trie import TrieCommitter
from storage.sc import StateCommitment
from storage.ss import StorageError

ADDRESSES = [keccak(bytes([i]))[:20] for i in range(40)]

account = st.builds(
    AccountFields,
    nonce=st.integers(0, 5),
    balance=st.integers(0, 2**80),
    code_hash=st.just(EMPTY_SHA3),
)
slot_write = st.tuples(st.sampled_from(ADDRESSES[:8]), st.integers(0, 30), st.integers(0, 3))
block = st.tuples(
    st.dictionaries(st.sampled_from(ADDRESSES), st.one_of(st.none(), account), max_size=15),
    st.lists(slot_write, max_size=25),
    st.frozensets(st.sampled_from(ADDRESSES[:8]), max_size=1),
)


def to_writes(accounts, slots, existing):
    writes = {acct_key(a): f for a, f in accounts.items()}
    for address, slot, value in slots:
        if writes.get(acct_key(address), existing.get(address)) is not None:
            writes[slot_key(address, slot)] = value
    return writes


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(block, min_size=1, max_size=6), st.sampled_from([(1, 200), (2, 600), (2, 4096)]))
def test_roots_equal_py_trie_after_every_block_and_old_proofs_verify(
    tmp_path_factory, blocks, layout
):
    levels, target = layout
    path = tmp_path_factory.mktemp("sc")
    sc = StateCommitment(path, levels=levels, page_target=target)
    reference = TrieCommitter([])
    existing: dict[bytes, AccountFields | None] = {}
    roots = {}
    for number, (accounts, slots, wiped) in enumerate(blocks, start=1):
        writes = to_writes(accounts, slots, existing)
        wiped = {a for a in wiped if existing.get(a) is not None and acct_key(a) not in writes}
        for key, value in writes.items():
            if key[0] == "acct":
                existing[key[1]] = value
        root = sc.commit(number, writes, wiped)
        expected = reference.commit(writes, wiped, lambda h: b"")
        assert root == expected
        roots[number] = root
    sc.close()

    reopened = StateCommitment(path, levels=levels, page_target=target)
    assert reopened.root == roots[len(blocks)]
    for number, root in roots.items():
        assert reopened.root_at(number) == root
        trie_at = reopened.at(number)
        for address in ADDRESSES:  # every page is loaded, so each is checked against its hash
            proof = reopened.account_proof(number, address)
            value = HexaryTrie.get_from_proof(root, keccak(address), proof)
            assert (value or None) == trie_at.get(keccak(address))
    for address in ADDRESSES[:8]:
        storage = reopened.storage_trie(address)
        for slot in range(31):
            storage.get(keccak(slot.to_bytes(32, "big")))
    reopened.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(block, min_size=1, max_size=6),
    st.sampled_from([(1, 200), (2, 600), (2, 4096)]),
    st.integers(1, 6),
)
def test_with_state_storage_small_storage_is_rebuilt_and_roots_still_equal_py_trie(
    tmp_path_factory, blocks, layout, reopen_after
):
    """SC beside SS (as the committer runs them): small storage tries are not stored in SC but
    rebuilt from SS's slots, across reopens; a deleted account's storage is wiped with it, as
    the executor's write sets do."""
    levels, target = layout
    path = tmp_path_factory.mktemp("data")
    committer = Committer(path, levels=levels, page_target=target)
    reference = TrieCommitter([])
    existing: dict[bytes, AccountFields | None] = {}
    slots: dict[bytes, dict[int, int]] = {}
    genesis = ({a: AccountFields(1) for a in ADDRESSES[:8]}, [(a, 1, 1) for a in ADDRESSES[:8]], ())
    for number, (accounts, slot_writes, wiped) in enumerate([genesis, *blocks], start=1):
        writes = to_writes(accounts, slot_writes, existing)
        deleted = {a for a, fields in accounts.items() if fields is None}
        wiped = {a for a in wiped if existing.get(a) is not None} | deleted
        for address in wiped:
            slots.pop(address, None)
        for key, value in writes.items():
            if key[0] == "acct":
                existing[key[1]] = value
            elif key[1] not in deleted:
                slots.setdefault(key[1], {})[key[2]] = value
        root = committer.commit(number, writes, wiped)
        assert root == reference.commit(writes, wiped, lambda h: b"")
        if number == reopen_after:
            committer.close()
            committer = Committer(path, levels=levels, page_target=target)
    sc = committer.sc
    for address, values in slots.items():
        if existing.get(address) is None:
            continue
        leaf = HexaryTrie.get_from_proof(
            sc.root, keccak(address), sc.account_proof(number, address)
        )
        storage_root = rlp.decode(leaf, sedes=Account).storage_root
        for slot, value in values.items():
            hashed = keccak(slot.to_bytes(32, "big"))
            found = HexaryTrie.get_from_proof(
                storage_root, hashed, sc.storage_proof(number, address, slot)
            )
            assert (rlp.decode(found, sedes=rlp.sedes.big_endian_int) if found else 0) == value
    committer.close()


def test_storage_proofs_at_an_old_block_verify(tmp_path):
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=300)
    address = ADDRESSES[0]
    for number in (1, 2, 3):
        writes = {acct_key(address): AccountFields(nonce=number)}
        writes.update({slot_key(address, s): s * number for s in range(1, 40)})
        sc.commit(number, writes, ())
    old_root = sc.root_at(1)
    account_proof = sc.account_proof(1, address)
    leaf = HexaryTrie.get_from_proof(old_root, keccak(address), account_proof)
    storage_root = rlp.decode(leaf, sedes=Account).storage_root
    proof = sc.storage_proof(1, address, 7)
    value = HexaryTrie.get_from_proof(storage_root, keccak((7).to_bytes(32, "big")), proof)
    assert rlp.decode(value, sedes=rlp.sedes.big_endian_int) == 7
    sc.close()


def committed(tmp_path, blocks=3, **options):
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=300, **options)
    for number in range(1, blocks + 1):
        writes = {acct_key(a): AccountFields(nonce=number) for a in ADDRESSES[: 10 * number]}
        writes.update({slot_key(ADDRESSES[0], s): s + number for s in range(20)})
        sc.commit(number, writes, ())
    return sc


def reopen_and_read(tmp_path):
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=300)
    try:
        for address in ADDRESSES:
            sc.accounts.get(keccak(address))
        sc.storage_trie(ADDRESSES[0]).get(keccak((3).to_bytes(32, "big")))
        return sc.root
    finally:
        sc.close()


def garble_an_account(data: bytes) -> bytes:
    """Flip one bit of the first account record in the page (its balance)."""
    at = data.index(b"\xf8\x44") + 5
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def damage(tmp_path, change):
    """Apply ``change(data)`` to one page of the latest block holding an account; its key."""
    sc = committed(tmp_path)
    latest = [k for k in sc._pages.keys() if int.from_bytes(k[:8], "big") == 3]  # noqa: SIM118
    key = next(k for k in sorted(latest, reverse=True) if b"\xf8\x44" in sc._pages[k])
    new = change(sc._pages[key])
    if new is None:
        del sc._pages[key]
    else:
        sc._pages[key] = new
    sc.close()
    return key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data[: len(data) // 2], "does not match the digest|checksum mismatch"),
        (lambda data: None, "(page|pack) is missing"),
        (garble_an_account, "does not match the digest|checksum mismatch"),
    ],
    ids=["truncated", "missing", "garbled"],
)
def test_a_damaged_page_is_an_error_naming_it_never_a_wrong_root(tmp_path, change, message):
    key = damage(tmp_path, change)  # a page, or a pack of delta pages (sealed)
    named = describe_key(key).replace("(", "\\(").replace(")", "\\)")
    with pytest.raises(StorageError, match=f"{named}.*({message})|({message}).*{named}"):
        reopen_and_read(tmp_path)


def test_a_corrupted_child_reference_is_refused(tmp_path):
    """A page rewritten well formed but with one child page reference changed (its entry
    count: node hashes do not cover references, the page's digest in its parent does)."""
    sc = committed(tmp_path)
    ref = sc._root_record(3)[1]
    key, page = ref.key(0), sc._page(0, ref)  # (maybe a delta page: rewritten full here)
    entry = next(e for e in page.entries if e.refs)
    entry.refs[0] = replace(entry.refs[0], count=entry.refs[0].count + 1)
    entry.encoded = None
    data = encode_page(page.depth, [encode_entry(e) for e in page.entries])
    if ref.pack:  # in the pack, in its place
        stored = ref.stored_key(0)
        items = [
            (int.from_bytes(d, "big"), int.from_bytes(n, "big"), old)
            for d, n, old in rlp.decode(unseal(sc._pages[stored], "pack"))
        ]
        sc._pages[stored] = encode_pack(
            [(d, n, data if (d, n) == (0, ref.seq) else old) for d, n, old in items]
        )
    else:
        sc._pages[key] = data
    sc.close()
    named = describe_key(key).replace("(", "\\(").replace(")", "\\)")
    with pytest.raises(StorageError, match=f"{named}: the page does not match the digest"):
        reopen_and_read(tmp_path)


def test_a_store_of_another_layout_is_refused(tmp_path):
    sc = committed(tmp_path, blocks=1)
    sc._meta[b"layout"] = (6).to_bytes(4, "big")
    sc.close()
    with pytest.raises(StorageError, match="meta/layout is version 6"):
        StateCommitment(tmp_path / "sc")


def test_pruning_keeps_the_last_versions_only(tmp_path):
    sc = committed(tmp_path, blocks=6, keep_versions=2)
    assert sc.root_at(6) == sc.root and sc.root_at(5)
    for address in ADDRESSES[:5]:
        HexaryTrie.get_from_proof(sc.root_at(5), keccak(address), sc.account_proof(5, address))
    with pytest.raises(StorageError, match="no root kept for block 4"):
        sc.root_at(4)
    assert len(list(sc._pages.keys())) < committed_pages(tmp_path)
    sc.close()


def committed_pages(tmp_path) -> int:
    unpruned = committed(tmp_path / "unpruned", blocks=6)
    count = len(list(unpruned._pages.keys()))
    unpruned.close()
    return count


def test_pages_split_when_growing_and_merge_when_shrinking(tmp_path):
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=1000)
    reference = TrieCommitter([])
    grow = {acct_key(a): AccountFields(nonce=1) for a in ADDRESSES}
    assert sc.commit(1, grow, ()) == reference.commit(grow, (), lambda h: b"")
    assert sc.splits > 0
    shrink = {acct_key(a): None for a in ADDRESSES[4:]}
    assert sc.commit(2, shrink, ()) == reference.commit(shrink, (), lambda h: b"")
    assert sc.merges > 0
    regrow = {acct_key(a): AccountFields(nonce=2) for a in ADDRESSES[10:30]}
    assert sc.commit(3, regrow, ()) == reference.commit(regrow, (), lambda h: b"")
    sc.close()


def test_small_storage_lives_in_state_storage_alone_and_moves_to_pages_as_it_grows(tmp_path):
    committer = Committer(tmp_path / "data", levels=2, page_target=4096)
    reference = TrieCommitter([])
    grown, kept = ADDRESSES[:2]
    small = {acct_key(a): AccountFields(1) for a in (grown, kept)}
    small.update({slot_key(grown, 1): 0xDEADBEEFCAFE, slot_key(kept, 2): 0xFEEDFACE0B0E})
    big = {slot_key(grown, s): s + 1 for s in range(200)}
    for number, writes in ((1, small), (2, big)):
        root = committer.commit(number, writes, ())
        assert root == reference.commit(writes, (), lambda h: b"")
        sub = committer.sc.accounts.leaf(keccak(grown)).sub
        assert sub is None if number == 1 else isinstance(sub, PageRef)
        assert committer.sc.accounts.leaf(keccak(kept)).sub is None
    sc_records = b"".join(committer.sc._pages.values())
    assert b"\xfe\xed\xfa\xce\x0b\x0e" not in sc_records  # the small trie's value: SS's alone
    assert b"\xfe\xed\xfa\xce\x0b\x0e" in b"".join(committer.ss._cf["contract"].values())
    committer.close()
    reopened = Committer(tmp_path / "data", levels=2, page_target=4096)
    sc = reopened.sc
    for number, address, slot, value in (
        (2, grown, 150, 151),  # paged
        (2, kept, 2, 0xFEEDFACE0B0E),  # rebuilt from State Storage
        (1, kept, 2, 0xFEEDFACE0B0E),  # an older block: its storage has not changed since
    ):
        leaf = HexaryTrie.get_from_proof(
            sc.root_at(number), keccak(address), sc.account_proof(number, address)
        )
        storage_root = rlp.decode(leaf, sedes=Account).storage_root
        proof = sc.storage_proof(number, address, slot)
        found = HexaryTrie.get_from_proof(storage_root, keccak(slot.to_bytes(32, "big")), proof)
        assert rlp.decode(found, sedes=rlp.sedes.big_endian_int) == value
    with pytest.raises(StorageError, match="keeps only the latest records"):
        sc.storage_proof(1, grown, 1)  # its account (storage root) has changed since
    reopened.close()


def test_account_leaves_keep_only_hashes_and_a_record_that_does_not_match_is_an_error(tmp_path):
    committer = Committer(tmp_path / "data")
    reference = TrieCommitter([])
    accounts = {
        acct_key(a): AccountFields(i + 1, 0xC0FFEE0000 + i) for i, a in enumerate(ADDRESSES)
    }
    changed = {acct_key(a): AccountFields(9, 0xBEEF00 + i) for i, a in enumerate(ADDRESSES[:5])}
    for number, writes in ((1, accounts), (2, changed)):
        assert committer.commit(number, writes, ()) == reference.commit(writes, (), lambda h: b"")
    records = list(committer.ss._cf["account"].values())
    assert len(records) == len(ADDRESSES)
    sc_bytes = b"".join(committer.sc._pages.values())
    assert not [record for record in records if record in sc_bytes]  # SS's alone
    committer.close()
    reopened = Committer(tmp_path / "data")  # leaves read from pages: hashes only
    sc = reopened.sc
    for number, address in ((2, ADDRESSES[0]), (2, ADDRESSES[7]), (1, ADDRESSES[7])):
        leaf = HexaryTrie.get_from_proof(
            sc.root_at(number), keccak(address), sc.account_proof(number, address)
        )  # (block 1: an account unchanged since)
        assert rlp.decode(leaf, sedes=Account).nonce == (9 if address == ADDRESSES[0] else 8)
    with pytest.raises(StorageError, match="keeps only the latest records"):
        sc.account_proof(1, ADDRESSES[0])  # changed in block 2
    victim = ADDRESSES[3]
    seq = reopened.ss.sequence_of(victim)
    record = reopened.ss.account_record(victim)
    reopened.ss._cf["account"][seq] = encode_account(
        record.nonce, record.balance + 1, record.storage_root, record.code_hash
    )
    root = sc.root
    with pytest.raises(StorageError, match=f"record of account leaf 0x{keccak(victim).hex()}"):
        reopened.commit(3, {slot_key(victim, 1): 5}, ())  # needs its record: a slot changed
    assert sc.root == root
    reopened.close()


@pytest.mark.parametrize(
    "stored",
    [
        "deadbeefcaff",  # another value
        "00deadbeefcafe",  # the same number with a leading zero: hashed as stored, refused
    ],
)
def test_slots_that_do_not_hash_to_the_storage_root_are_an_error_not_a_wrong_root(tmp_path, stored):
    committer = Committer(tmp_path / "data")
    address = ADDRESSES[0]
    writes = {acct_key(address): AccountFields(1), slot_key(address, 1): 0xDEADBEEFCAFE}
    committer.commit(1, writes, ())
    contract = committer.ss._cf["contract"]
    key = next(iter(contract.keys()))
    contract[key] = bytes.fromhex(stored)  # what the trie will be rebuilt from
    with pytest.raises(StorageError, match=f"slots State Storage holds for 0x{address.hex()}"):
        committer.commit(2, {slot_key(address, 2): 7}, ())
    committer.close()


def reachable_pages(sc: StateCommitment, number: int) -> set[bytes]:
    """Keys of every page the root of block ``number`` reaches (storage pages included)."""
    found: set[bytes] = set()

    visited: set[bytes] = set()  # the page versions (not the records that hold them) read

    def stored(depth: int, seq: int, version: int, pack: int) -> Page:  # from disk, not cache
        key = pack_key(version, pack - 1) if pack else page_key(version, depth, seq)
        if key in sc._volatile:  # (a top page held in memory)
            return sc._volatile[key]
        data = sc._pages[key]  # KeyError: a reachable page (or a version a delta needs) is gone
        if pack:
            data = unpack(decode_pack(data, key), key, depth, seq)
        return decode_page(data, key, seq, lambda v, _, p: stored(depth, seq, v, p))

    def visit(depth: int, ref: PageRef) -> None:
        if ref.key(depth) in visited:
            return
        visited.add(ref.key(depth))
        page = stored(depth, ref.seq, ref.version, ref.pack)
        if ref.key(depth) not in sc._volatile:  # (one held in memory is not on disk)
            found.update(page.chain)  # a delta page and every version below it
        for entry in page.entries:
            for child in entry.refs:
                visit(depth + 1, child)
            for leaf in _leaves(entry.node):
                if isinstance(leaf.sub, PageRef):
                    visit(0, leaf.sub)

    _, root_ref, _ = sc._root_record(number)
    if root_ref is not None:
        visit(0, root_ref)
    return found


@settings(
    max_examples=16, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 10_000),
    st.sampled_from([(2, 1), (3, 1), (5, 1), (3, 2), (5, 2), (5, 3)]),
    st.sampled_from([(1, 200), (1, 600), (2, 600)]),
    st.integers(1, 12),
)
def test_pruning_leaves_exactly_the_pages_the_kept_versions_reach(
    tmp_path_factory, seed, window, layout, reopen_at
):
    """After every block (random writes, deletions, wipes; pages split and merged; the store
    reopened once, its tries dropped and reloaded), the pages stored are exactly those the
    kept roots reach: nothing kept that no kept version reads, nothing read that is gone.
    With checkpoints apart, the kept versions read are the checkpoints in the window and the
    last block (its top pages held in memory); the others' roots are kept, not their pages."""
    path = tmp_path_factory.mktemp("sc") / "sc"
    keep, every = window
    levels, target = layout
    options = {
        "levels": levels,
        "page_target": target,
        "keep_versions": keep,
        "checkpoint_every": every,
        "top_depths": 1,
        "max_loaded": 40,
    }
    sc = StateCommitment(path, **options)
    reference = TrieCommitter([])
    try:
        for number, (writes, wiped) in enumerate(random_state_blocks(seed, 12), start=1):
            if number == reopen_at:
                sc.checkpoint_now()  # (as the committer's close does)
                sc.close()
                sc = StateCommitment(path, **options)
            assert sc.commit(number, writes, wiped) == reference.commit(
                writes, wiped, lambda h: b""
            )
            kept = reachable_pages(sc, number)
            for version in range(max(1, number - keep + 1), number):
                assert sc.root_at(version)
                if not sc._root_record(version)[2]:  # (a checkpoint: its proofs readable)
                    kept |= reachable_pages(sc, version)
            assert set(sc._pages.keys()) == kept, f"block {number}"
    finally:
        sc.close()


def test_bounded_caches_give_the_same_roots(tmp_path):
    """A page cache of 4 pages, and tries dropped once they have loaded 10 entries: every
    root still the reference's, and the bounds hold after every write."""
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=600, cache_pages=4, max_loaded=10)
    reference = TrieCommitter([])
    dropped = 0
    for number, (writes, wiped) in enumerate(random_state_blocks(13, 10), start=1):
        before = sc.accounts
        assert sc.commit(number, writes, wiped) == reference.commit(writes, wiped, lambda h: b"")
        dropped += sc.accounts is not before
        assert len(sc._cache) <= 4 and sc.loaded <= 10
    assert dropped  # the bound was reached and the tries reloaded from pages
    sc.close()


def test_after_reopening_a_block_loads_only_the_subtrees_on_its_paths(tmp_path):
    """Reopened, the tries are stubs over the pages: a block rewriting a page keeps the
    entries it did not change as stored, unloaded (loading each to find it unchanged cost
    a second a block at 100,000 accounts, for as long as stubs were left); the roots stay
    the reference's, through later blocks and another reopening."""
    blocks = random_state_blocks(5, 12, accounts=240)
    reference = TrieCommitter([])
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=600)
    for number, (writes, wiped) in enumerate(blocks[:6], start=1):
        assert sc.commit(number, writes, wiped) == reference.commit(writes, wiped, lambda h: b"")
    sc.close()
    address = min(_addresses(blocks[0][0]))  # (a set's order varies with the hash seed)
    one = {acct_key(address): AccountFields(nonce=99)}
    for number, (writes, wiped) in enumerate([(one, set()), *blocks[6:]], start=7):
        if number == 10:
            sc.close()
        if number in (7, 10):
            sc = StateCommitment(tmp_path / "sc", levels=1, page_target=600)
        root = sc.commit(number, writes, wiped)
        assert root == reference.commit(writes, wiped, lambda h: b"")
        if number == 7:  # one account: its path's nodes loaded, not its pages' other entries
            loaded = sc.loaded  # (the nodes on its path, read by the walk to its leaf and
            # again by the update: the trie keeps neither, stubs are loaded per walk)
            assert loaded <= 2 * len(sc.account_proof(number, address))
    sc.close()


def _nodes_reachable(node) -> int:
    """Nodes in memory under ``node`` (stubs not followed: they are not loaded)."""
    count, stack, seen = 0, [node], set()
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, Stub) or id(node) in seen:
            continue
        seen.add(id(node))
        count += 1
        if isinstance(node, Branch):
            stack.extend(node.children)
        elif isinstance(node, Extension):
            stack.append(node.child)
    return count


def test_tries_dropped_at_max_loaded_free_their_nodes(tmp_path):
    """After the tries are dropped at ``max_loaded``, the root loaded again holds only what
    was changed since the last checkpoint (the top pages held in memory), not every path
    loaded before: pages the writer built hold the tries' own nodes, so the page cache is
    dropped with them (kept, the next load brought the whole trie back)."""
    addresses = [keccak(i.to_bytes(4, "big"))[:20] for i in range(1000)]
    options = {"levels": 1, "page_target": 600, "checkpoint_every": 4, "max_loaded": 50}
    reference = TrieCommitter([])
    sc = StateCommitment(tmp_path / "sc", **options)
    blocks = [{acct_key(a): AccountFields(nonce=1) for a in addresses}]
    rng = random.Random(3)
    blocks += [
        {acct_key(a): AccountFields(nonce=n) for a in rng.sample(addresses, 10)}
        for n in range(2, 62)
    ]
    drops = 0
    for number, writes in enumerate(blocks, start=1):
        before = sc.accounts
        assert sc.commit(number, writes, ()) == reference.commit(writes, set(), lambda h: b"")
        drops += sc.accounts is not before
        if number == 1:
            sc.close()
            sc = StateCommitment(tmp_path / "sc", **options)
    root = sc.accounts.root
    reachable = _nodes_reachable(sc._load(root) if isinstance(root, Stub) else root)
    assert drops > 10
    assert reachable < 4 * 10 * 8  # (4 blocks of 10 paths, ~8 nodes each)
    sc.close()


def test_tries_dropped_between_checkpoints_then_checkpointed_go_on(tmp_path):
    """The tries dropped after a block whose root page is held in memory, then a checkpoint
    (a clean close's): the unloaded root is located afresh, on disk (it named the version
    held in memory, which the checkpoint replaced), and the chain goes on, reopened too."""
    blocks = random_state_blocks(1, 4)
    reference = TrieCommitter([])
    roots = [reference.commit(writes, wiped, lambda h: b"") for writes, wiped in blocks]
    options = {"levels": 1, "page_target": 600, "checkpoint_every": 3, "top_depths": 1}
    sc = StateCommitment(tmp_path / "sc", max_loaded=1, cache_pages=1, **options)
    for number, (writes, wiped) in enumerate(blocks[:2], start=1):
        assert sc.commit(number, writes, wiped) == roots[number - 1]
    sc.checkpoint_now()  # (block 2's root page was held in memory)
    assert sc.root == roots[1]
    assert sc.commit(3, *blocks[2]) == roots[2]
    sc.checkpoint_now()  # (as the committer's close does)
    sc.close()
    sc = StateCommitment(tmp_path / "sc", **options)
    assert sc.root == roots[2] and sc.commit(4, *blocks[3]) == roots[3]
    sc.close()


def test_pruning_follows_block_numbers_that_jump(tmp_path):
    """A chain's genesis is block 0 and its next block may be 19,932,703 (a mainnet replay):
    pruning walks the records there are, not every number in between."""
    sc = StateCommitment(tmp_path / "sc", keep_versions=2)
    for number in (0, 10**12, 10**12 + 1, 10**12 + 2):
        sc.commit(number, {acct_key(ADDRESSES[0]): AccountFields(nonce=number % 7 + 1)}, ())
    roots = [k for k in sc._meta.keys() if k.startswith(b"root/")]  # noqa: SIM118
    assert [int.from_bytes(k[5:], "big") for k in roots] == [10**12 + 1, 10**12 + 2]
    assert set(sc._pages.keys()) == reachable_pages(sc, 10**12 + 1) | reachable_pages(
        sc, 10**12 + 2
    )
    sc.close()


def stored_deltas(sc: StateCommitment) -> list[bytes]:
    """Keys of the packs, which hold the delta pages (and nothing else)."""
    return [key for key in sc._pages.keys() if key[8] == PACK_DEPTH]  # noqa: SIM118


def test_delta_pages_are_written_and_read_back_cold(tmp_path):
    """Pages changed in a few entries are stored as deltas; reopened with nothing cached,
    every version reads (through its chains of deltas) the same values as a store of full
    pages only, which wrote more."""
    blocks = list(random_state_blocks(7, 20))
    addresses = {address for writes, _ in blocks for address in _addresses(writes)}
    stores = {}
    for name, max_deltas in (("deltas", 8), ("full", 0)):
        sc = StateCommitment(
            tmp_path / name, levels=1, page_target=600, keep_versions=None, max_deltas=max_deltas
        )
        reference = TrieCommitter([])
        for number, (writes, wiped) in enumerate(blocks, start=1):
            assert sc.commit(number, writes, wiped) == reference.commit(
                writes, wiped, lambda h: b""
            )
        stores[name] = (sc.bytes_written, bool(stored_deltas(sc)))
        sc.close()
    (delta_bytes, has_deltas), (full_bytes, full_has_deltas) = stores["deltas"], stores["full"]
    assert has_deltas and not full_has_deltas
    assert delta_bytes < full_bytes
    cold, full = (
        StateCommitment(tmp_path / name, levels=1, page_target=600, keep_versions=None)
        for name in ("deltas", "full")
    )
    try:
        for number in range(1, len(blocks) + 1):
            ours, theirs = cold.at(number), full.at(number)
            assert ours.root_hash == theirs.root_hash
            for address in addresses:
                key = keccak(address)
                assert ours.get(key) == theirs.get(key)
                assert ours.proof(key) == theirs.proof(key)
    finally:
        cold.close()
        full.close()


def test_a_cold_read_decodes_each_pack_once_and_pruning_drops_it(tmp_path, monkeypatch):
    """Delta chains read cold take their versions from many packs, each serving several
    pages: each pack is read and decoded once (``cache_packs``), not once per page. A pack
    pruning deletes leaves the cache too."""
    blocks = list(random_state_blocks(7, 24))
    addresses = {address for writes, _ in blocks for address in _addresses(writes)}
    options = {"levels": 1, "page_target": 600, "keep_versions": 4}
    sc = StateCommitment(tmp_path / "sc", **options)
    for number, (writes, wiped) in enumerate(blocks[:20], start=1):
        sc.commit(number, writes, wiped)
    sc.close()
    decoded, served = Counter(), Counter()
    original_decode, original_unpack = storage.sc.decode_pack, storage.sc.unpack

    def counted_decode(data: bytes, key: bytes):
        decoded[key] += 1
        return original_decode(data, key)

    def counted_unpack(items, key: bytes, depth: int, seq: int) -> bytes:
        served[key] += 1
        return original_unpack(items, key, depth, seq)

    monkeypatch.setattr(storage.sc, "decode_pack", counted_decode)
    monkeypatch.setattr(storage.sc, "unpack", counted_unpack)
    sc = StateCommitment(tmp_path / "sc", **options)
    try:
        for number in range(17, 21):  # (the versions kept)
            for address in addresses:
                sc.at(number).get(keccak(address))
        assert decoded and set(decoded.values()) == {1}
        assert max(served.values()) > 1  # (a pack that served several page versions)
        cached = set(sc._packs)
        for number, (writes, wiped) in enumerate(blocks[20:], start=21):
            sc.commit(number, writes, wiped)
        on_disk = set(stored_deltas(sc))
        assert cached - on_disk  # (pruning deleted packs that were cached ...)
        assert set(sc._packs) <= on_disk  # (... and none is served from memory)
    finally:
        sc.close()


def test_a_delta_page_whose_previous_version_is_gone_is_an_error_naming_it(tmp_path):
    blocks = list(random_state_blocks(7, 12))
    addresses = {address for writes, _ in blocks for address in _addresses(writes)}
    options = {"levels": 1, "page_target": 600, "keep_versions": None}

    def read_every_version(sc: StateCommitment) -> None:
        for number in range(1, len(blocks) + 1):
            for address in addresses:
                sc.at(number).get(keccak(address))

    sc = StateCommitment(tmp_path / "sc", **options)
    for number, (writes, wiped) in enumerate(blocks, start=1):
        sc.commit(number, writes, wiped)
    sc.close()
    sc = StateCommitment(tmp_path / "sc", **options)
    read_every_version(sc)  # cold: each page cached was read from its chain of versions
    chain = max((p.chain for p in sc._cache.values() if len(p.chain) >= 2), key=lambda c: c[0])
    gone = chain[1]  # the version the latest delta applies to (full, or in a pack)
    del sc._pages[gone]
    sc.close()
    sc = StateCommitment(tmp_path / "sc", **options)
    named = describe_key(gone).replace("(", "\\(").replace(")", "\\)")
    try:
        with pytest.raises(StorageError, match=f"{named}: (page|pack) is missing"):
            read_every_version(sc)
    finally:
        sc.close()


def read_through_the_store(sc: StateCommitment, number: int) -> set[bytes]:
    """Read every page version block ``number``'s root reaches the way the store does (each
    checked against its digest); their keys."""
    seen: set[bytes] = set()

    def visit(depth: int, ref: PageRef) -> None:
        if ref.key(depth) in seen:
            return
        seen.add(ref.key(depth))
        for entry in sc._page(depth, ref).entries:
            for child in entry.refs:
                visit(depth + 1, child)
            for leaf in _leaves(entry.node):
                if isinstance(leaf.sub, PageRef):
                    visit(0, leaf.sub)

    visit(0, sc._root_record(number)[1])
    return seen


def test_the_page_cache_keeps_live_versions_not_superseded_ones(tmp_path):
    """A block replaces the versions it rewrites in the cache, and the versions a delta is
    read over are not cached: after many blocks the cache holds only pages the latest root
    reaches (else, at 100,000 accounts, superseded versions evicted the live ones and every
    commit read chains of deltas from disk: 0.4 s a block grew to 2.3 s in 40 blocks)."""
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=600, keep_versions=4)
    for number, (writes, wiped) in enumerate(random_state_blocks(11, 30), start=1):
        sc.commit(number, writes, wiped)
    cached = set(sc._cache)
    assert cached and cached <= read_through_the_store(sc, 30)
    sc.close()
    sc = StateCommitment(tmp_path / "sc", levels=1, page_target=600, keep_versions=4)
    live = read_through_the_store(sc, 30)  # cold: through the chains of deltas
    assert set(sc._cache) == live
    sc.close()


def test_packs_hold_the_delta_pages_and_a_damaged_one_is_an_error_naming_it(tmp_path):
    options = {"levels": 1, "page_target": 600, "keep_versions": None}
    blocks = list(random_state_blocks(7, 12))
    sc = StateCommitment(tmp_path / "sc", **options)
    for number, (writes, wiped) in enumerate(blocks, start=1):
        sc.commit(number, writes, wiped)
    last = len(blocks)
    packs = sorted(set(stored_deltas(sc)) & reachable_pages(sc, last))
    assert packs, "no delta page reached from the last root"
    # fewer records than delta pages: deltas share packs
    deltas = sum(len(rlp.decode(unseal(sc._pages[k], "pack"))) for k in stored_deltas(sc))
    assert len(stored_deltas(sc)) < deltas
    key = packs[-1]
    original = sc._pages[key]
    items = rlp.decode(unseal(original, "pack"))
    depth, seq = (int.from_bytes(field, "big") for field in items[0][:2])
    garbled = [[items[0][0], items[0][1], items[0][2][:-1] + bytes([items[0][2][-1] ^ 1])]]
    damaged = {
        "truncated": (original[: len(original) // 2], f"{describe_key(key)}: checksum mismatch"),
        "missing": (None, f"{describe_key(key)}: pack is missing"),
        "item": (  # the pack well formed, one delta page in it changed
            encode_pack(
                [(int.from_bytes(d, "big"), int.from_bytes(n, "big"), b) for d, n, b in garbled]
                + [(int.from_bytes(d, "big"), int.from_bytes(n, "big"), b) for d, n, b in items[1:]]
            ),
            f"{describe_key(page_key(int.from_bytes(key[:8], 'big'), depth, seq))}: "
            "the page does not match the digest",
        ),
    }
    sc.close()
    for data, message in damaged.values():
        sc = StateCommitment(tmp_path / "sc", **options)
        if data is None:
            del sc._pages[key]
        else:
            sc._pages[key] = data
        sc.close()
        sc = StateCommitment(tmp_path / "sc", **options)
        try:
            with pytest.raises(StorageError, match=re.escape(message)):
                read_through_the_store(sc, last)
            sc._pages[key] = original  # put back: the store reads again
        finally:
            sc.close()
        sc = StateCommitment(tmp_path / "sc", **options)
        assert read_through_the_store(sc, last)
        sc.close()


def _leaves(node):
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, Extension):
        yield from _leaves(node.child)
    elif isinstance(node, Branch):
        for child in node.children:
            if child is not None:
                yield from _leaves(child)


def _addresses(writes) -> set[bytes]:
    return {key[1] for key in writes}


def test_top_pages_held_in_memory_between_checkpoints_and_written_at_one(tmp_path):
    """With a checkpoint every 4 blocks, blocks 2 and 3 write no top page (the last one's
    read from memory while open, block 2's gone once block 3 replaced its pages: an error
    naming it); a clean close checkpoints the last block; afterwards an in-memory block's
    root is an error naming it, checkpoints still read."""
    committer = Committer(tmp_path / "data", levels=1, page_target=512, checkpoint_every=4)
    reference = TrieCommitter([])
    roots = {}
    for number, (writes, wiped) in enumerate(random_state_blocks(3, 3), start=1):
        roots[number] = committer.commit(number, writes, wiped)
        assert roots[number] == reference.commit(writes, wiped, lambda h: b"")
        root_page = committer.sc._root_ref.key(0)
        assert (committer.sc._pages.get(root_page) is not None) == (number == 1)  # on disk
        assert (root_page in committer.sc._volatile) == (number > 1)  # or held in memory
    sc = committer.sc
    blocks = random_state_blocks(3, 3)
    address = next(k[1] for k, v in blocks[1][0].items() if k[0] == "acct" and v is not None)
    assert sc.checkpoint == 1
    HexaryTrie.get_from_proof(roots[3], keccak(address), sc.account_proof(3, address))
    HexaryTrie.get_from_proof(roots[1], keccak(address), sc.account_proof(1, address))
    with pytest.raises(StorageError, match="block 2: its top pages were held in memory only"):
        sc.at(2)
    committer.close()  # checkpoints block 3
    reopened = Committer(tmp_path / "data", levels=1, page_target=512, checkpoint_every=4)
    assert reopened.recovery == "consistent" and reopened.sc.checkpoint == 3
    assert reopened.state_root == roots[3]
    assert reopened.sc.root_at(2) == roots[2]
    with pytest.raises(StorageError, match="block 2: its top pages were held in memory only"):
        reopened.sc.at(2)
    reopened.sc.at(1)
    reopened.close()


def test_unloaded_subtrees_follow_their_page_when_it_is_rewritten(tmp_path):
    """After a reopen the tries are stubs. A block that changes one account rewrites its
    page; the stubs of that page's other entries, still unloaded, must name the new
    version: once pruning has deleted the old one, every account still reads (pages
    rewritten in full, not as deltas over the old version, and a page cache too small to
    hide a stub that names a deleted version)."""
    options = {"levels": 1, "page_target": 600, "keep_versions": 2, "cache_pages": 2}
    options["max_deltas"] = 0
    addresses = [keccak(i.to_bytes(4, "big"))[:20] for i in range(300)]
    sc = StateCommitment(tmp_path / "sc", **options)
    sc.commit(1, {acct_key(a): AccountFields(1, i) for i, a in enumerate(addresses)}, ())
    sc.close()
    sc = StateCommitment(tmp_path / "sc", **options)
    sc.commit(2, {acct_key(addresses[0]): AccountFields(2, 0)}, ())
    for number in range(3, 7):  # (another account: its pages only, and the top ones)
        sc.commit(number, {acct_key(addresses[1]): AccountFields(number, 1)}, ())
    for i, address in enumerate(addresses[2:], start=2):
        assert decode_account(sc.accounts.get(keccak(address))).balance == i
    sc.close()
