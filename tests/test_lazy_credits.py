"""Lazy balance credits on real execution: payments to one address do not conflict, while a
transaction that looks at a credited balance is re-executed and sees the right value."""

from eth_hash.auto import keccak
from support import InlineComputeUnit, assert_identical, env_for, small_genesis

from bench.workload.genesis import Genesis, sign
from coordinator.pipeline import ChainRunner, ParallelExecutor
from storage.keys import AccountFields, acct_key, code_key, slot_key

HOT = b"\x42" * 20  # an address many transactions pay
BALANCE_PROBE = b"\x51" * 20  # stores BALANCE(HOT) in slot 0
CODEHASH_PROBE = b"\x52" * 20  # stores EXTCODEHASH(HOT) in slot 0


def probe(opcode: int) -> bytes:
    """PUSH20 HOT; <opcode>; PUSH1 0; SSTORE; STOP."""
    return b"\x73" + HOT + bytes([opcode]) + b"\x60\x00\x55\x00"


def with_probes(genesis: Genesis) -> dict:
    state = dict(genesis.state)
    state[acct_key(HOT)] = AccountFields(nonce=1, balance=10**18)
    for address, opcode in ((BALANCE_PROBE, 0x31), (CODEHASH_PROBE, 0x3F)):
        code = probe(opcode)
        state[code_key(keccak(code))] = code
        state[acct_key(address)] = AccountFields(code_hash=keccak(code))
    return state


def run(txs, groups):
    """The block's report and result, and its chain (open: the caller closes it)."""
    chain = ChainRunner(with_probes(small_genesis()).items(), ParallelExecutor(InlineComputeUnit()))
    report, parallel, _ = chain.run_block(env_for(1, txs), txs, groups=groups)
    assert_identical(report)
    return report, parallel, chain


def test_many_payments_to_one_address_run_in_parallel_without_conflict():
    genesis = small_genesis()
    payers = genesis.wallets[:20]
    txs = [
        sign(w, genesis.nonces.get(w.address, 0), HOT, value=1000 + i) for i, w in enumerate(payers)
    ]
    report, parallel, chain = run(txs, groups=[list(range(0, 20, 2)), list(range(1, 20, 2))])
    assert report.reexecutions == 0
    with chain:
        balance = chain.snapshot.get(acct_key(HOT)).balance
    assert balance == 10**18 + sum(1000 + i for i in range(20))


def pay_then_probe(probe_address: bytes):
    """Alice pays HOT 777 wei; Bob, in another group, calls a probe that looks at HOT."""
    genesis = small_genesis()
    alice, bob = genesis.wallets[0], genesis.wallets[1]
    pay = sign(alice, genesis.nonces.get(alice.address, 0), HOT, value=777)
    look = sign(bob, genesis.nonces.get(bob.address, 0), probe_address, gas=60_000)
    return run([pay, look], groups=[[0], [1]])


def test_reading_a_credited_balance_is_reexecuted_and_sees_the_credit():
    _, parallel, chain = pay_then_probe(BALANCE_PROBE)
    assert [c.index for c in parallel.block.conflicts] == [1]
    with chain:
        assert chain.snapshot.get(slot_key(BALANCE_PROBE, 0)) == 10**18 + 777


def test_reading_only_the_code_hash_of_a_credited_account_is_not_a_conflict():
    report, _, chain = pay_then_probe(CODEHASH_PROBE)
    assert report.reexecutions == 0
    with chain:
        seen = chain.snapshot.get(slot_key(CODEHASH_PROBE, 0))
    assert seen == int.from_bytes(keccak(b""), "big")
