"""Chain data: blocks, the transaction index, logs, dropped records and state history read
back as written, across reopening; log filters match geth's rules; history answers like a
model of the state over time, or says why it cannot; corrupt records are named."""

import tempfile

import pytest
from eth.constants import EMPTY_SHA3
from eth_bloom import BloomFilter
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import open_stores
from storage.chaindata import (
    COLUMN_FAMILIES,
    ChainData,
    DroppedTx,
    FoundLog,
    HistoryUnavailable,
    LogQuery,
    RangeTooLarge,
    StoredBlock,
    StoredLog,
    seal,
)
from storage.keys import AccountFields, acct_key, code_key, slot_key
from storage.ss import StorageError, open_rocksdb

A, B, C = (bytes([i]) * 20 for i in (0xA, 0xB, 0xC))
T1, T2, T3 = (keccak(name) for name in (b"Transfer", b"Approval", b"Other"))


def tx_hash(number, index):
    return keccak(b"tx %d %d" % (number, index))


def make_block(number, logs_per_tx=(), base_fee=7):
    """Block ``number`` with one transaction per entry of ``logs_per_tx``, each a list of
    (address, topics) logs."""
    txs = tuple(b"\x02tx-%d-%d" % (number, i) for i in range(len(logs_per_tx)))
    hashes = tuple(tx_hash(number, i) for i in range(len(txs)))
    logs, bloom = [], BloomFilter()
    for tx_index, tx_logs in enumerate(logs_per_tx):
        for address, topics in tx_logs:
            logs.append(
                StoredLog(
                    address,
                    tuple(topics),
                    b"data %d" % len(logs),
                    tx_index,
                    len(logs),
                    hashes[tx_index],
                )
            )
            bloom.extend([address, *topics])
    return StoredBlock(
        number=number,
        hash=keccak(b"block %d" % number),
        header=b"\xf9header %d" % number,
        transactions=txs,
        senders=tuple(bytes([i + 1]) * 20 for i in range(len(txs))),
        receipts=tuple(b"\x02receipt %d" % i for i in range(len(txs))),
        logs=tuple(logs),
        bloom=int(bloom).to_bytes(256, "big"),
        tx_hashes=hashes,
        gas_used=21_000 * len(txs),
        base_fee=base_fee,
        timestamp=1_700_000_000 + 12 * number,
        effective_tips=tuple(range(len(txs))),
        contract_addresses=tuple(C if i == 0 else None for i in range(len(txs))),
        gas_used_per_tx=(21_000,) * len(txs),
    )


LOGS = {  # block -> logs per tx
    0: [],
    1: [[(A, [T1, T2]), (B, [T1])], []],
    2: [[(B, [T2, T1, T3])]],
    3: [[(A, [])], [(C, [T3, T1])]],
    4: [[(A, [T1, T3])]],
}


def write_chain(chain, numbers):
    for number in numbers:
        chain.write_block(make_block(number, LOGS.get(number, [])), {}, ())


@pytest.fixture
def chain(tmp_path):
    with ChainData(tmp_path / "chain") as store:
        write_chain(store, range(5))
        yield store


def test_blocks_and_indexes_read_back_after_reopen(tmp_path):
    path = tmp_path / "chain"
    with ChainData(path) as chain:
        assert chain.head() is None and chain.block(0) is None
        write_chain(chain, range(5))
        genesis = make_block(0, [], base_fee=None)
    with ChainData(path) as chain:
        assert chain.head() == 4
        for number in range(5):
            expected = make_block(number, LOGS[number])
            assert chain.block(number) == expected
            assert chain.number_of(expected.hash) == number
            for index, hashed in enumerate(expected.tx_hashes):
                assert chain.tx_location(hashed) == (number, index)
        assert chain.block(5) is None and chain.block(-1) is None
        assert chain.number_of(b"\0" * 32) is None and chain.tx_location(b"\0" * 32) is None
        assert chain.block(1).contract_addresses == (C, None)
    with ChainData(tmp_path / "other") as chain:  # a pre-London block: no base fee
        chain.write_block(genesis, {}, ())
        assert chain.block(0).base_fee is None
    assert not [s for s in open_stores.still_open() if isinstance(s, ChainData)]


def test_blocks_are_written_in_order(tmp_path):
    with ChainData(tmp_path / "chain") as chain:
        with pytest.raises(StorageError, match="next block is 0"):
            chain.write_block(make_block(1), {}, ())
        chain.write_block(make_block(0), {}, ())
        for wrong in (0, 2):
            with pytest.raises(StorageError, match="out of order: the next block is 1"):
                chain.write_block(make_block(wrong), {}, ())
        assert chain.head() == 0


def test_close_is_idempotent(tmp_path):
    chain = ChainData(tmp_path / "chain")
    assert chain in open_stores.still_open()
    chain.close()
    chain.close()
    assert chain not in open_stores.still_open()


def found(chain, query, **caps):
    return [(f.block_number, f.log.log_index) for f in chain.logs(query, **caps)]


def test_logs_by_address_topics_and_range(chain):
    everything = found(chain, LogQuery(0, 100))
    assert everything == [(1, 0), (1, 1), (2, 0), (3, 0), (3, 1), (4, 0)]
    assert found(chain, LogQuery(0, 4, frozenset({A}))) == [(1, 0), (3, 0), (4, 0)]
    assert found(chain, LogQuery(0, 4, frozenset({A, C}))) == [(1, 0), (3, 0), (3, 1), (4, 0)]
    assert found(chain, LogQuery(2, 3)) == [(2, 0), (3, 0), (3, 1)]
    assert found(chain, LogQuery(3, 2)) == []
    # first topic T1
    assert found(chain, LogQuery(0, 4, topics=(frozenset({T1}),))) == [(1, 0), (1, 1), (4, 0)]
    # any first topic, second T1: logs need two topics at least
    assert found(chain, LogQuery(0, 4, topics=(None, frozenset({T1})))) == [(2, 0), (3, 1)]
    # OR at a position, AND across positions
    query = LogQuery(0, 4, topics=(frozenset({T1, T3}), frozenset({T3, T2})))
    assert found(chain, query) == [(1, 0), (4, 0)]
    # an empty set is a wildcard, as in geth; positions beyond a log's topics do not match
    assert found(chain, LogQuery(0, 4, frozenset({A}), (frozenset(),))) == [(1, 0), (4, 0)]
    assert found(chain, LogQuery(0, 4, topics=(None, None, None))) == [(2, 0)]
    assert found(chain, LogQuery(0, 4, frozenset({B}), (frozenset({T3}),))) == []
    first = chain.logs(LogQuery(1, 1, frozenset({B})))
    block = make_block(1, LOGS[1])
    assert first == [FoundLog(1, block.hash, block.logs[1])]


def test_logs_skip_blocks_by_bloom(chain, monkeypatch):
    reads = []
    original = chain._read

    def counting(family, key, decode):
        reads.append(family)
        return original(family, key, decode)

    monkeypatch.setattr(chain, "_read", counting)
    assert found(chain, LogQuery(0, 4, frozenset({C}))) == [(3, 1)]
    assert reads.count("logs") == 1


def test_logs_caps(chain):
    with pytest.raises(RangeTooLarge, match="query exceeds max block range 3"):
        chain.logs(LogQuery(0, 3), max_blocks=3)
    assert len(chain.logs(LogQuery(1, 3), max_blocks=3)) == 5
    assert len(chain.logs(LogQuery(2, 10**9), max_blocks=3)) == 4  # clamped to the head
    with pytest.raises(RangeTooLarge, match="more than 5 results"):
        chain.logs(LogQuery(0, 4), max_logs=5)
    assert len(chain.logs(LogQuery(0, 4), max_logs=6)) == 6


def test_dropped_records(tmp_path):
    path = tmp_path / "chain"
    late = tx_hash(1, 0)
    with ChainData(path) as chain:
        chain.write_block(make_block(0), {}, ())
        chain.record_dropped(
            [DroppedTx(b"\x01" * 32, "nonce too low", 0), DroppedTx(late, "out of gas", None)]
        )
        assert chain.dropped(late) == DroppedTx(late, "out of gas", None)
    with ChainData(path) as chain:
        assert chain.dropped(b"\x01" * 32) == DroppedTx(b"\x01" * 32, "nonce too low", 0)
        assert chain.dropped(b"\x02" * 32) is None
        chain.write_block(make_block(1, LOGS[1]), {}, ())  # includes ``late`` after all
        assert chain.tx_location(late) == (1, 0)
        assert chain.dropped(late) is None


# -- state history -------------------------------------------------------------------------
ADDRESSES = [A, B, C]
KEYS = (
    [acct_key(a) for a in ADDRESSES]
    + [slot_key(a, s) for a in ADDRESSES for s in (0, 1, 2**256 - 1)]
    + [code_key(EMPTY_SHA3), code_key(b"\x11" * 32)]
)


def values_for(key):
    if key[0] == "acct":
        return st.one_of(
            st.none(),
            st.builds(
                AccountFields,
                st.integers(0, 3),
                st.integers(0, 2**80),
                st.sampled_from([EMPTY_SHA3, b"\x11" * 32]),
            ),
        )
    if key[0] == "slot":
        return st.one_of(st.none(), st.integers(0, 2**256 - 1))
    return st.one_of(st.none(), st.binary(max_size=8))


block_writes = st.lists(st.sampled_from(KEYS), unique=True, max_size=6).flatmap(
    lambda keys: st.fixed_dictionaries({key: values_for(key) for key in keys})
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(block_writes, min_size=1, max_size=10),
    st.integers(1, 4),
    st.integers(0, 9),
)
def test_value_at_matches_a_model_of_the_state(blocks, window, reopen_at):
    state: dict = {}
    snapshots = []  # state at the end of each block
    with tempfile.TemporaryDirectory() as path:
        chain = ChainData(path, history_blocks=window, history_cache=2)
        try:
            for number, writes in enumerate(blocks):
                prior = {key: state.get(key) for key in writes}
                chain.write_block(make_block(number), prior, ())
                state.update(writes)
                snapshots.append(dict(state))
                if number == reopen_at:
                    chain.close()
                    chain = ChainData(path, history_blocks=window, history_cache=2)
            head = len(blocks) - 1
            assert chain.oldest_state() == max(head - window, 0)
            for number in range(head + 1):
                for key in KEYS:
                    if number < head - window:
                        with pytest.raises(HistoryUnavailable, match="no longer kept"):
                            chain.value_at(key, number, state.get)
                    else:
                        assert chain.value_at(key, number, state.get) == snapshots[number].get(key)
        finally:
            chain.close()


def kept_history(chain):
    return [int.from_bytes(key, "big") for key, _ in chain._cf["history"].items()]


def test_window_expiry_and_pruning(tmp_path):
    with ChainData(tmp_path / "chain", history_blocks=3) as chain:
        current = {}
        for number in range(8):
            prior = {slot_key(A, 0): current.get(slot_key(A, 0))}
            chain.write_block(make_block(number), prior, ())
            current[slot_key(A, 0)] = number + 100
        assert chain.value_at(slot_key(A, 0), 4, current.get) == 104
        assert chain.value_at(slot_key(A, 0), 7, current.get) == 107
        with pytest.raises(HistoryUnavailable, match="state at block 3 is no longer kept"):
            chain.value_at(slot_key(A, 0), 3, current.get)
        with pytest.raises(StorageError, match="block 8 is not stored"):
            chain.value_at(slot_key(A, 0), 8, current.get)
        assert kept_history(chain) == [5, 6, 7]
    with ChainData(tmp_path / "chain", history_blocks=1) as chain:  # a smaller window
        chain.write_block(make_block(8), {slot_key(A, 0): 107}, ())
        assert kept_history(chain) == [8]
        assert chain.oldest_state() == 7
    with ChainData(tmp_path / "chain", history_blocks=5) as chain:  # a larger one fills up
        assert chain.oldest_state() == 7
        chain.write_block(make_block(9), {}, ())
        assert chain.oldest_state() == 7
        assert chain.value_at(slot_key(A, 0), 7, current.get) == 107


def test_wiped_storage_is_not_guessed(tmp_path):
    with ChainData(tmp_path / "chain") as chain:
        current = {slot_key(A, 1): 5, slot_key(A, 2): 6}
        chain.write_block(make_block(0), {slot_key(A, 1): None, slot_key(A, 2): None}, ())
        # block 1 wipes A's storage and writes slot 2 again
        chain.write_block(make_block(1), {slot_key(A, 2): 6, acct_key(A): None}, [A])
        current = {slot_key(A, 2): 9}
        with pytest.raises(HistoryUnavailable, match=r"block 1 wiped the account's storage"):
            chain.value_at(slot_key(A, 1), 0, current.get)
        assert chain.value_at(slot_key(A, 2), 0, current.get) == 6  # written: prior known
        assert chain.value_at(acct_key(A), 0, current.get) is None
        assert chain.value_at(slot_key(B, 1), 0, current.get) is None
        assert chain.value_at(slot_key(A, 1), 1, current.get) is None


# -- corruption ----------------------------------------------------------------------------
def overwrite(path, family, key, value):
    db = open_rocksdb(path, COLUMN_FAMILIES)
    column = db.get_column_family(family)
    column[key] = value
    column.close()
    db.close()


@pytest.mark.parametrize(
    "family, key, garble, call",
    [
        ("history", 3, lambda v: v[:-1], lambda c: c.value_at(acct_key(A), 2, {}.get)),
        (
            "history",
            3,
            lambda v: seal(b"\xc2\x80\x80"),
            lambda c: c.value_at(acct_key(A), 2, {}.get),
        ),
        ("headers", 2, lambda v: v[:4] + b"x" + v[5:], lambda c: c.block(2)),
        ("bodies", 2, lambda v: seal(b"\xc1\x80"), lambda c: c.block(2)),
        ("logs", 3, lambda v: v + b"\0", lambda c: c.logs(LogQuery(0, 4))),
        (
            "txindex",
            tx_hash(2, 0),
            lambda v: seal(b"short"),
            lambda c: c.tx_location(tx_hash(2, 0)),
        ),
        ("hashes", keccak(b"block 2"), lambda v: b"", lambda c: c.number_of(keccak(b"block 2"))),
    ],
)
def test_garbled_record_is_a_storage_error(tmp_path, family, key, garble, call):
    path = tmp_path / "chain"
    with ChainData(path) as chain:
        write_chain(chain, range(5))
        chain.write_block(make_block(5), {acct_key(A): AccountFields(1, 2)}, ())
    raw_key = key.to_bytes(8, "big") if isinstance(key, int) else key
    db = open_rocksdb(path, COLUMN_FAMILIES)
    column = db.get_column_family(family)
    original = column[raw_key]
    column.close()
    db.close()
    overwrite(path, family, raw_key, garble(original))
    with ChainData(path) as chain, pytest.raises(StorageError, match=f"{family}/") as err:
        call(chain)
    assert "corrupt record" in str(err.value)


def test_garbled_head_refuses_to_open(tmp_path):
    path = tmp_path / "chain"
    with ChainData(path) as chain:
        write_chain(chain, range(2))
    overwrite(path, "meta", b"head", b"\0\0\0\0" + (1).to_bytes(8, "big"))
    with pytest.raises(StorageError, match="meta/head: corrupt record"):
        ChainData(path)
    assert not [s for s in open_stores.still_open() if isinstance(s, ChainData)]
