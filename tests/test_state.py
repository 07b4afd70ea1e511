"""The overlay account DB records what a transaction reads and writes, and journals it."""

import pytest
from eth.constants import EMPTY_SHA3
from eth.vm.interrupt import MissingBytecode

from compute_unit.state import (
    BlindAccount,
    DictSnapshot,
    OverlayAccountDB,
    WriteLayer,
    read_holds,
)
from storage.keys import AccountFields, acct_key, code_key, slot_key

ALICE, BOB, COINBASE, TOKEN = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20, b"\x70" * 20


def make_db() -> OverlayAccountDB:
    snapshot = DictSnapshot(
        {
            acct_key(ALICE): AccountFields(nonce=3, balance=100),
            acct_key(COINBASE): AccountFields(balance=7),
            slot_key(TOKEN, 1): 11,
            slot_key(TOKEN, 2): 22,
        }
    )
    return OverlayAccountDB(snapshot)


def test_reads_record_first_value_below_and_writes_final_values():
    db = make_db()
    assert db.get_balance(ALICE) == 100
    db.set_balance(ALICE, 60)
    assert db.get_balance(ALICE) == 60
    assert db.get_storage(TOKEN, 1) == 11
    db.set_storage(TOKEN, 1, 12)
    assert db.get_storage(TOKEN, 1, from_journal=False) == 11
    assert not db.account_exists(BOB)
    access = db.finish_transaction()
    assert access.reads == {
        acct_key(ALICE): AccountFields(3, 100),
        slot_key(TOKEN, 1): 11,
        acct_key(BOB): None,
    }
    assert access.writes == {acct_key(ALICE): AccountFields(3, 60), slot_key(TOKEN, 1): 12}


def test_writes_that_change_nothing_are_dropped():
    db = make_db()
    db.touch_account(ALICE)
    db.set_storage(TOKEN, 2, db.get_storage(TOKEN, 2))
    assert db.finish_transaction().writes == {}


def test_discard_undoes_writes_warmth_and_credits():
    db = make_db()
    db.set_storage(TOKEN, 1, 5)
    checkpoint = db.record()
    db.set_storage(TOKEN, 1, 6)
    db.mark_address_warm(BOB)
    db.credit(COINBASE, 9)
    inner = db.record()
    db.set_code(BOB, b"\x60\x00")
    db.commit(inner)
    db.discard(checkpoint)
    assert db.get_storage(TOKEN, 1) == 5
    assert not db.is_address_warm(BOB)
    assert db.get_code_hash(BOB) == EMPTY_SHA3
    access = db.finish_transaction()
    assert access.credits == {}
    assert access.writes == {slot_key(TOKEN, 1): 5}


def test_a_credit_is_a_delta_not_a_read():
    db = make_db()
    db.credit(COINBASE, 5)
    db.credit(BOB, 3)
    assert db.account_exists(BOB) and not db.account_is_empty(BOB)
    access = db.finish_transaction()
    assert access.reads == {}
    assert access.credits == {COINBASE: 5, BOB: 3}
    layer = WriteLayer(DictSnapshot({acct_key(COINBASE): AccountFields(balance=7)}))
    assert layer.apply(access, tx_index=0) == {
        acct_key(COINBASE): AccountFields(balance=12),
        acct_key(BOB): AccountFields(balance=3),
    }
    assert layer.writer_of(acct_key(BOB)) == 0


def test_reading_a_credited_balance_folds_the_credit_in():
    db = make_db()
    db.credit(COINBASE, 5)
    assert db.get_balance(COINBASE) == 12
    db.credit(COINBASE, 1)  # the balance was seen: later credits are plain writes
    access = db.finish_transaction()
    assert access.reads == {acct_key(COINBASE): AccountFields(balance=7)}
    assert access.writes == {acct_key(COINBASE): AccountFields(balance=13)}
    assert access.credits == {}


def test_writing_a_credited_account_folds_the_credit_in():
    db = make_db()
    db.credit(ALICE, 5)
    db.increment_nonce(ALICE)
    access = db.finish_transaction()
    assert access.writes == {acct_key(ALICE): AccountFields(nonce=4, balance=105)}
    assert access.credits == {}


def test_a_reverted_frame_takes_its_credit_back_but_not_its_reads():
    db = make_db()
    db.credit(BOB, 2)
    checkpoint = db.record()
    db.credit(BOB, 5)
    assert db.get_balance(ALICE) == 100
    db.discard(checkpoint)
    access = db.finish_transaction()
    assert access.credits == {BOB: 2}
    assert access.reads == {acct_key(ALICE): AccountFields(3, 100)}


def test_nonce_and_code_reads_are_blind_to_the_balance():
    db = make_db()
    assert db.get_nonce(ALICE) == 3
    assert not db.account_is_empty(ALICE)  # it has a nonce: no need to look at the balance
    assert db.account_is_empty(BOB)
    access = db.finish_transaction()
    seen = access.reads[acct_key(ALICE)]
    assert seen == BlindAccount(3, EMPTY_SHA3)
    assert read_holds(seen, AccountFields(nonce=3, balance=1))
    assert not read_holds(seen, AccountFields(nonce=4, balance=100))
    assert not read_holds(seen, None)
    assert access.reads[acct_key(BOB)] is None
    assert not read_holds(None, AccountFields(balance=1))


def test_emptiness_of_a_nonce_less_account_looks_at_its_balance():
    db = make_db()
    assert not db.account_is_empty(COINBASE)
    assert db.finish_transaction().reads == {acct_key(COINBASE): AccountFields(balance=7)}


def test_wiped_storage_reads_zero_and_is_applied_before_writes():
    db = make_db()
    db.set_storage(TOKEN, 1, 99)
    db.delete_storage(TOKEN)
    assert db.get_storage(TOKEN, 1) == 0
    assert db.get_storage(TOKEN, 2) == 0
    db.set_storage(TOKEN, 2, 5)
    access = db.finish_transaction()
    assert access.wiped == {TOKEN}
    snapshot = DictSnapshot({slot_key(TOKEN, 1): 11, slot_key(TOKEN, 3): 33})
    snapshot.apply(access.writes, access.wiped)
    assert snapshot.data == {slot_key(TOKEN, 2): 5}


def test_code_roundtrip_and_missing_code_is_an_error():
    db = make_db()
    db.set_code(BOB, b"\x60\x01")
    assert db.get_code(BOB) == b"\x60\x01"
    access = db.finish_transaction()
    code_hash = access.writes[acct_key(BOB)].code_hash
    assert access.writes[code_key(code_hash)] == b"\x60\x01"
    orphan = DictSnapshot({acct_key(BOB): AccountFields(code_hash=code_hash)})
    with pytest.raises(MissingBytecode):
        OverlayAccountDB(orphan).get_code(BOB)
