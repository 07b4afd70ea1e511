"""State Storage: what was written is what is read, across blocks, wipes, deletions and
reopening (read-only and as a secondary); a wrong layout or a corrupt record is named."""

import os
import subprocess
import sys
import threading

import pytest
import rlp
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth_hash.auto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import random_state_blocks

from compute_unit.state import DictSnapshot
from storage.keys import (
    AccountFields,
    acct_key,
    code_key,
    decode_account,
    encode_account,
    int_bytes,
    slot_key,
)
from storage.ss import (
    WAL_BUFFERS,
    CommitMark,
    SecondaryStores,
    StateStorage,
    StorageError,
    StorageView,
    decode_slim,
    full_record,
    slim_record,
    sweep_dead_secondaries,
)
from storage.writeset import WriteSetError, decode_writeset, encode_writeset, merge_written_keys

ADDRESSES = [bytes([i]) * 20 for i in range(1, 7)]
SLOTS = [0, 1, 2**255, 2**256 - 1]

account = st.builds(
    AccountFields,
    nonce=st.integers(0, 3),
    balance=st.integers(0, 2**70),
    code_hash=st.sampled_from([EMPTY_SHA3, b"\x11" * 32]),
)
writes = st.dictionaries(
    st.one_of(
        st.builds(acct_key, st.sampled_from(ADDRESSES)),
        st.builds(slot_key, st.sampled_from(ADDRESSES), st.sampled_from(SLOTS)),
    ),
    st.none(),
    max_size=12,
).flatmap(
    lambda keys: st.fixed_dictionaries(
        {
            key: (st.one_of(st.none(), account) if key[0] == "acct" else st.integers(0, 2**256 - 1))
            for key in keys
        }
    )
)
block = st.tuples(writes, st.frozensets(st.sampled_from(ADDRESSES), max_size=2))


def records(writes, roots=None):
    """Account records as SC hands them to SS (storage root given or blank)."""
    roots = roots or {}
    return {
        key[1]: None
        if fields is None
        else encode_account(
            fields.nonce, fields.balance, roots.get(key[1], BLANK_ROOT_HASH), fields.code_hash
        )
        for key, fields in writes.items()
        if key[0] == "acct"
    }


def all_keys():
    return [acct_key(a) for a in ADDRESSES] + [slot_key(a, s) for a in ADDRESSES for s in SLOTS]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(block, min_size=1, max_size=6))
def test_reads_return_exactly_what_was_written(tmp_path_factory, blocks):
    path = tmp_path_factory.mktemp("ss")
    ss = StateStorage(path)
    model = DictSnapshot()
    try:
        for number, (block_writes, wiped) in enumerate(blocks, start=1):
            wiped = {a for a in wiped if (acct_key(a) not in block_writes)}
            ss.write_block(
                CommitMark(number, b"\x01" * 32), block_writes, wiped, records(block_writes)
            )
            model.apply(block_writes, wiped)
            expected = [model.get(key) for key in all_keys()]
            assert ss.get_many(all_keys()) == expected
            assert [ss.get(key) for key in all_keys()] == expected
            batched = ss.stored_slots([*ADDRESSES, b"\x77" * 20])  # (one never stored)
            assert batched[b"\x77" * 20] == []
            for address in ADDRESSES:
                assert batched[address] == ss.stored_slots([address])[address]
                assert batched[address] == [  # in slot order, as stored
                    (s.to_bytes(32, "big"), int_bytes(model.get(slot_key(address, s))))
                    for s in sorted(SLOTS)
                    if model.get(slot_key(address, s))
                ]
            hashed = [keccak(address) for address in ADDRESSES] + [b"\x77" * 32]
            assert ss.records_by_hash(hashed) == [ss.record_by_hash(h) for h in hashed]
            assert ss.records_by_hash(hashed)[-1] is None
            record = decode_writeset(ss.writeset(number))
            assert record.previous == (number - 1 if number > 1 else None)
            assert record.state_root == b"\x01" * 32
            decoded = record.keys  # (the keys, not the values)
            assert decoded.accounts == {k[1] for k in block_writes if k[0] == "acct"}
            assert decoded.slots == {(k[1], k[2]) for k in block_writes if k[0] == "slot"}
            assert decoded.wiped == frozenset(wiped)
        assert ss.last_committed() == CommitMark(len(blocks), b"\x01" * 32)
    finally:
        ss.close()


def test_sequences_follow_creation_order_and_records_read_back_whole(tmp_path):
    ss = StateStorage(tmp_path / "ss")
    a, b = ADDRESSES[:2]
    first = {acct_key(b): AccountFields(1)}
    ss.write_block(CommitMark(1, b"\0" * 32), first, (), records(first))
    second = {acct_key(a): AccountFields(2), slot_key(a, 1): 5}
    ss.write_block(CommitMark(2, b"\0" * 32), second, (), records(second, {a: b"\x07" * 32}))
    assert ss.sequence_of(b) == (0).to_bytes(5, "big")
    assert ss.sequence_of(a) == (1).to_bytes(5, "big")
    assert ss.account_record(a).storage_root == b"\x07" * 32
    ss.write_block(CommitMark(3, b"\0" * 32), {}, {a}, {})  # wiped
    assert ss.get(slot_key(a, 1)) is None and ss.get(acct_key(a)) == AccountFields(2)
    ss.close()


def test_code_and_reopening_read_only_and_as_secondary(tmp_path):
    path = tmp_path / "ss"
    ss = StateStorage(path)
    ss.write_block(CommitMark(1, b"\x05" * 32), {code_key(b"\x22" * 32): b"\x60\x00"}, (), {})
    secondary = StateStorage(path, secondary=tmp_path / "secondary")
    nine = {acct_key(ADDRESSES[0]): AccountFields(9)}
    ss.write_block(CommitMark(2, b"\x06" * 32), nine, (), records(nine))
    ss.flush()
    secondary.catch_up()
    assert secondary.get(acct_key(ADDRESSES[0])) == AccountFields(9)
    assert secondary.last_committed() == CommitMark(2, b"\x06" * 32)
    with pytest.raises(StorageError, match="read-only"):
        secondary.write_block(CommitMark(3, b"\0" * 32), {}, (), {})
    secondary.close()
    ss.close()
    reader = StateStorage(path, read_only=True)
    assert reader.get(code_key(b"\x22" * 32)) == b"\x60\x00"
    reader.close()


def test_validators_can_turn_write_sets_off(tmp_path):
    ss = StateStorage(tmp_path / "ss", keep_writesets=False)
    one = {acct_key(ADDRESSES[0]): AccountFields(1)}
    ss.write_block(CommitMark(1, b"\0" * 32), one, (), records(one))
    assert ss.writeset(1) is None
    ss.close()


def test_write_sets_are_kept_for_a_window_of_blocks(tmp_path):
    ss = StateStorage(tmp_path / "ss", writeset_window=3)
    for number in range(1, 8):
        block = {acct_key(ADDRESSES[0]): AccountFields(number)}
        ss.write_block(CommitMark(number, b"\0" * 32), block, (), records(block))
    assert [n for n in range(8) if ss.writeset(n) is not None] == [5, 6, 7]
    assert decode_writeset(ss.writeset(7)).keys.accounts == {ADDRESSES[0]}
    ss.close()
    with pytest.raises(ValueError, match="at least the last block"):
        StateStorage(tmp_path / "ss", writeset_window=0)


def test_a_deleted_account_leaves_no_index_entry(tmp_path):
    ss = StateStorage(tmp_path / "ss")
    a, b = ADDRESSES[:2]
    made = {acct_key(a): AccountFields(1), slot_key(a, 1): 5, acct_key(b): AccountFields(1)}
    made[slot_key(b, 2)] = 6
    ss.write_block(CommitMark(1, b"\0" * 32), made, (), records(made))
    gone = {acct_key(a): None, acct_key(b): None}
    deleted = {a: None, b: None}
    ss.write_block(CommitMark(2, b"\0" * 32), gone, {a}, deleted)  # a wiped, b not
    assert ss.sequence_of(a) is None and ss.get(slot_key(a, 1)) is None
    assert ss.sequence_of(b) is not None and ss.get(slot_key(b, 2)) == 6  # still has a slot
    assert list(ss._cf["contract"].keys()) == [ss.sequence_of(b) + (2).to_bytes(32, "big")]
    ss.write_block(CommitMark(3, b"\0" * 32), {acct_key(b): None, slot_key(b, 2): 0}, (), {b: None})
    assert ss.sequence_of(b) is None and list(ss._cf["index"].keys()) == []
    reborn = {acct_key(a): AccountFields(3)}
    ss.write_block(CommitMark(4, b"\0" * 32), reborn, (), records(reborn))
    assert ss.get(acct_key(a)) == AccountFields(3) and ss.get(slot_key(a, 1)) is None
    ss.close()


def test_a_secondary_never_reads_a_value_its_primary_flushed_over(tmp_path):
    """RocksDB's secondary kept replayed memtables over newer flushed SST files (a stale
    read with an up-to-date commit mark); a catch-up that sees new files reopens it."""
    path = tmp_path / "ss"
    ss = StateStorage(path)
    one = {acct_key(ADDRESSES[0]): AccountFields(1)}
    ss.write_block(CommitMark(1, b"\0" * 32), one, (), records(one))
    secondary = StateStorage(path, secondary=tmp_path / "secondary")
    assert secondary.get(acct_key(ADDRESSES[0])) == AccountFields(1)
    two = {acct_key(ADDRESSES[0]): AccountFields(2)}
    ss.write_block(CommitMark(2, b"\0" * 32), two, (), records(two))
    ss.flush()
    ss.write_block(CommitMark(3, b"\0" * 32), {}, (), {})
    secondary.catch_up()
    assert secondary.last_committed().number == 3
    assert secondary.get(acct_key(ADDRESSES[0])) == AccountFields(2)
    secondary.close()
    ss.close()


def test_a_secondary_reopened_under_readers_on_other_threads_keeps_serving_them(tmp_path):
    """In-process Compute Units share one secondary per path across threads: a catch-up
    that reopens it must not pull the instance from under a reader."""
    path, address = tmp_path / "ss", ADDRESSES[0]
    ss = StateStorage(path)
    one = {acct_key(address): AccountFields(1)}
    ss.write_block(CommitMark(1, b"\0" * 32), one, (), records(one))
    secondary = StateStorage(path, secondary=tmp_path / "secondary")
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                secondary.get_many([acct_key(address), slot_key(address, 1)])
            except Exception as err:  # noqa: BLE001 - collected, asserted below
                errors.append(repr(err))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for number in range(2, 30):
            block = {acct_key(address): AccountFields(number)}
            ss.write_block(CommitMark(number, b"\0" * 32), block, (), records(block))
            if number % 3 == 0:
                ss.flush()  # new SST files: the next catch-up reopens
            secondary.catch_up()
            assert secondary.get(acct_key(address)) == AccountFields(number)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    secondary.close()
    ss.close()


def test_a_store_of_another_layout_is_refused(tmp_path):
    ss = StateStorage(tmp_path / "ss")
    ss._cf["meta"][b"layout"] = (99).to_bytes(4, "big")
    ss.close()
    with pytest.raises(StorageError, match="meta/layout is version 99"):
        StateStorage(tmp_path / "ss")


def test_a_corrupt_account_record_is_named(tmp_path):
    ss = StateStorage(tmp_path / "ss")
    one = {acct_key(ADDRESSES[0]): AccountFields(1)}
    ss.write_block(CommitMark(1, b"\0" * 32), one, (), records(one))
    seq = ss.sequence_of(ADDRESSES[0])
    stored = ss._cf["account"][seq]
    for garbled in (b"\xff\x01garbage", stored[:-1], stored + b"\x80", b"\xc3\x01\x80\x81"):
        ss._cf["account"][seq] = garbled
        for read in (
            lambda: ss.get(acct_key(ADDRESSES[0])),
            lambda: ss.record_by_hash(keccak(ADDRESSES[0])),
            lambda: ss.records_by_hash([keccak(ADDRESSES[0])]),
        ):
            with pytest.raises(StorageError, match="account/0000000000: corrupt record"):
                read()
    ss.close()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**256 - 1),
    st.sampled_from([BLANK_ROOT_HASH, b"\x07" * 32]),
    st.sampled_from([EMPTY_SHA3, b"\x09" * 32]),
)
def test_slim_records_stand_for_the_full_ones(nonce, balance, root, code):
    """geth's slim encoding: each empty storage root or code hash stored as one byte, and
    the full record (the trie leaf SC hashes) given back byte for byte; every cut or
    extended slim record refused."""
    record = encode_account(nonce, balance, root, code)
    slim = slim_record(record)
    assert len(slim) <= len(record) - 32 * ((root == BLANK_ROOT_HASH) + (code == EMPTY_SHA3))
    assert rlp.decode(slim) == [int_bytes(nonce), int_bytes(balance)] + [
        b"" if root == BLANK_ROOT_HASH else root,
        b"" if code == EMPTY_SHA3 else code,
    ]
    assert full_record(slim) == record
    assert decode_slim(slim) == decode_account(record)
    for cut in range(len(slim)):
        with pytest.raises(ValueError, match="not a slim account record"):
            full_record(slim[:cut])
    with pytest.raises(ValueError, match="not a slim account record"):
        full_record(slim + b"\x80")


@pytest.mark.parametrize(
    "stored",
    [
        b"\xf9" + encode_account(1, 5, b"\x11" * 32, b"\x22" * 32)[1:],  # another list header
        b"\x00" + encode_account(1, 5, b"\x11" * 32, b"\x22" * 32)[1:],  # no list header
        bytes.fromhex("f80401058080"),  # a long header for a short list
        bytes.fromhex("c58101058080"),  # a one-byte nonce under 0x80 as a string
        bytes.fromhex("c400058080"),  # a zero byte for nonce 0
        bytes.fromhex("e401a00001") + bytes(30) + b"\x80\x80",  # a balance with a leading zero
        bytes.fromhex("c401a18080"),  # a balance of 33 bytes
    ],
)
def test_a_slim_record_not_canonical_is_refused(stored):
    """Bytes that would come back as a record hashing right, or as a record that is not one
    (SC does not check what it reads in a replay), are refused as corrupt."""
    with pytest.raises(ValueError, match="not a slim account record"):
        full_record(stored)


def test_views_keep_two_stores_open_and_clean_up_the_rest(tmp_path):
    paths = []
    for name in "abc":
        ss = StateStorage(tmp_path / name)
        ss.write_block(CommitMark(1, b"\0" * 32), {code_key(b"\x22" * 32): b"\x01"}, (), {})
        ss.close()
        paths.append(tmp_path / name)
    seen = []
    for path in paths:
        view = StorageView(path, 1)
        assert view.get(code_key(b"\x22" * 32)) == b"\x01"
        seen.append(StorageView.opened.stores[str(path)].secondary)
    assert str(paths[0]) not in StorageView.opened.stores and not seen[0].exists()
    assert all(str(p) in StorageView.opened.stores for p in paths[1:]) and seen[2].exists()
    StorageView.opened.close_all()
    assert not StorageView.opened.stores and not any(s.exists() for s in seen)


def test_scratch_directories_of_dead_processes_are_swept(tmp_path):
    prefix = SecondaryStores.PREFIX
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = tmp_path / f"{prefix}{int(dead.stdout)}-abc"
    mine = tmp_path / f"{prefix}{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for d in (left, mine, other):
        d.mkdir()
    assert sweep_dead_secondaries(tmp_path, prefix) == [left]
    assert not left.exists() and mine.exists() and other.exists()


_SERVED: dict[str, StateStorage] = {}  # the "node" of the store: what _FarReads answer from
_FAR_CALLS: list = []


class _FarReads:
    """Stands for the StateServer on the store's node (picklable, as a RemoteState is)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, path, number, keys):
        _FAR_CALLS.append((path, number, list(keys)))
        return [_SERVED[self.name].get(key) for key in keys]


def test_a_view_elsewhere_reads_through_its_far_reads(tmp_path):
    """On a machine where the path is not this store (a worker pod: an empty mount point, or
    another DB there), the view never opens the path; it reads through ``far``, and says so
    clearly when it has none."""
    key = code_key(b"\x22" * 32)
    ss = StateStorage(tmp_path / "ss")
    ss.write_block(CommitMark(1, b"\0" * 32), {key: b"\x01"}, (), {})
    _SERVED["ss"] = ss
    far = _FarReads("ss")
    here = StorageView(tmp_path / "ss", 1, far)
    assert here.is_local() and here.get(key) == b"\x01" and _FAR_CALLS == []

    elsewhere = tmp_path / "worker-pod" / "ss"  # what a pickled view sees on another node
    import pickle

    moved = pickle.loads(pickle.dumps(StorageView(tmp_path / "ss", 1, far)))
    moved.path = str(elsewhere)
    assert not moved.is_local()
    assert moved.get(key) == b"\x01" and moved.get(key) == b"\x01"  # memoized: one read
    assert [(str(elsewhere), 1, [key])] == _FAR_CALLS
    assert not elsewhere.exists()  # it made no store of its own there

    other = StateStorage(tmp_path / "other")  # a different DB at the view's path
    other.close()
    impostor = StorageView(tmp_path / "ss", 1, far, identity="not-this-one")
    impostor.path = str(tmp_path / "other")
    assert not impostor.is_local()
    lost = StorageView(tmp_path / "ss", 1, identity="x")
    with pytest.raises(StorageError, match="not on this machine"):
        lost.get(key)
    ss.close()
    StorageView.opened.close_all()


@pytest.mark.parametrize("seed", range(6))
def test_merged_written_keys_with_the_later_values_leave_the_state_the_blocks_leave(seed):
    """Recovery replays the blocks since SC's checkpoint as one: the keys they wrote
    (``merge_written_keys``), with State Storage's values after them, wipes first."""
    blocks = random_state_blocks(seed, 8)
    in_turn = DictSnapshot()
    for writes, wiped in blocks[:2]:  # (the checkpoint's state)
        in_turn.apply(writes, wiped)
    at_once = DictSnapshot()
    at_once.apply(dict(in_turn.data), ())
    for writes, wiped in blocks[2:]:
        in_turn.apply(writes, wiped)
    merged = merge_written_keys(
        decode_writeset(encode_writeset(None, b"\0" * 32, writes, wiped)).keys
        for writes, wiped in blocks[2:]
    )
    at_once.apply(*merged.replayed(lambda keys: [in_turn.get(key) for key in keys]))
    assert at_once.data == in_turn.data
    if seed == 0:  # (the case that matters: a slot written, then wiped, then not rewritten)
        assert any(wiped for _, wiped in blocks[3:])


@pytest.mark.parametrize(
    "data",
    [
        b"\x83abc",
        rlp.encode([b"", b"\0" * 32, [], [[ADDRESSES[0], b"\x02", []]]]),  # (a bad flag)
        rlp.encode([b"\0" * 7, b"\0" * 32, [], []]),  # (a previous block of 7 bytes)
        rlp.encode([b"", b"\0" * 31, [], []]),
        rlp.encode([b"", b"\0" * 32, b"", []]),
        rlp.encode([b"", b"\0" * 32, [], [[ADDRESSES[0], b"", b"\x05"]]]),
    ],
    ids=["not-rlp", "account-flag", "previous", "root", "wiped", "slots"],
)
def test_a_corrupt_write_set_record_is_named(data):
    with pytest.raises(WriteSetError, match="not a write set record"):
        decode_writeset(data)


def test_the_write_ahead_log_stays_bounded_though_a_family_is_written_little(tmp_path):
    """``meta`` is rewritten a few keys a block and never fills its write buffer: RocksDB
    kept every log since the store opened, waiting for it to flush. Capped, the logs stay
    within a few write buffers however many blocks are written."""
    buffer = 64 << 10
    ss = StateStorage(tmp_path / "ss", write_buffer_bytes=buffer)
    written = 0
    for number in range(1, 301):
        writes = {
            slot_key(bytes([i % 256, i // 256]) * 10, number): number for i in range(40)
        }  # (~3 KB of slots a block: the contract family flushes, meta does not)
        ss.write_block(CommitMark(number, b"\x01" * 32), writes, (), {})
        written += len(writes)
    logs = sum(f.stat().st_size for f in (tmp_path / "ss").glob("*.log"))
    ss.close()
    assert written == 12_000
    assert logs <= (WAL_BUFFERS + 2) * buffer, f"{logs} bytes of write-ahead log"
