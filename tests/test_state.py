"""The overlay account DB records what a transaction reads and writes, and journals it."""

import pytest
from eth.constants import EMPTY_SHA3
from eth.vm.interrupt import MissingBytecode

from compute_unit.state import DictSnapshot, OverlayAccountDB, WriteLayer
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
    db = OverlayAccountDB(snapshot)
    db.coinbase = COINBASE
    return db


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


def test_discard_undoes_writes_warmth_and_fee_credit():
    db = make_db()
    db.set_storage(TOKEN, 1, 5)
    checkpoint = db.record()
    db.set_storage(TOKEN, 1, 6)
    db.mark_address_warm(BOB)
    db.credit_coinbase(9)
    inner = db.record()
    db.set_code(BOB, b"\x60\x00")
    db.commit(inner)
    db.discard(checkpoint)
    assert db.get_storage(TOKEN, 1) == 5
    assert not db.is_address_warm(BOB)
    assert db.get_code_hash(BOB) == EMPTY_SHA3
    access = db.finish_transaction()
    assert access.coinbase_delta == 0
    assert access.writes == {slot_key(TOKEN, 1): 5}


def test_fee_credit_is_a_delta_not_a_read():
    db = make_db()
    db.credit_coinbase(5)
    assert db.account_exists(COINBASE) and not db.account_is_empty(COINBASE)
    access = db.finish_transaction()
    assert access.reads == {}
    assert access.coinbase_delta == 5
    layer = WriteLayer(DictSnapshot({acct_key(COINBASE): AccountFields(balance=7)}))
    layer.apply(access, tx_index=0)
    assert layer.get(acct_key(COINBASE)).balance == 12


def test_reading_the_fee_recipient_sees_base_plus_own_credit():
    db = make_db()
    db.credit_coinbase(5)
    assert db.get_balance(COINBASE) == 12
    access = db.finish_transaction()
    assert access.reads == {acct_key(COINBASE): AccountFields(balance=7)}


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
