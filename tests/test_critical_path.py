"""The critical path bound of a block (``bench/critical_path.py``), from hand-made outcomes."""

from bench.critical_path import critical_path_bound, dependency_chain_gas
from compute_unit.executor import TxOutcome
from compute_unit.state import BlindAccount, TxAccess
from storage.keys import AccountFields, acct_key, slot_key

A, B, C = b"\xaa" * 20, b"\xbb" * 20, b"\xcc" * 20


def outcome(index, gas, reads=None, writes=None, credits=None, wiped=frozenset()):
    access = TxAccess(reads or {}, writes or {}, wiped, credits or {})
    return TxOutcome(index, True, gas, None, access)


def test_independent_transactions_bound_by_their_count_and_a_chain_by_one():
    free = [outcome(i, 100, {acct_key(bytes([i]) * 20): None}) for i in range(4)]
    assert critical_path_bound(free) == 4.0
    chain = [outcome(i, 100, {slot_key(A, 0): i}, {slot_key(A, 0): i + 1}) for i in range(4)]
    assert dependency_chain_gas(chain) == (400, 400) and critical_path_bound(chain) == 1.0


def test_credits_do_not_chain_blind_readers_but_do_chain_balance_readers():
    paid = outcome(0, 100, credits={A: 5})
    blind = outcome(1, 100, {acct_key(A): BlindAccount(0, b"")})
    looks = outcome(2, 100, {acct_key(A): AccountFields(0, 5)})
    assert dependency_chain_gas([paid, blind, looks]) == (300, 200)


def test_a_wipe_chains_later_readers_of_the_address_slots():
    wipe = outcome(0, 100, wiped=frozenset({B}))
    reader = outcome(1, 50, {slot_key(B, 7): None})
    other = outcome(2, 70, {slot_key(C, 7): None})
    assert dependency_chain_gas([wipe, reader, other]) == (220, 150)
