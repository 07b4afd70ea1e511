"""System operations (``compute_unit/system_ops.py``): each write set on its own, then on the
parallel path and the oracle alike, against Ethereum's fixtures where the header's state root
checks them."""

from pathlib import Path

from eth.rlp.headers import BlockHeader
from eth.vm.forks import CancunVM, FrontierVM, ShanghaiVM
from eth.vm.forks.cancun.constants import BEACON_ROOTS_ADDRESS, BEACON_ROOTS_CONTRACT_CODE
from eth.vm.forks.shanghai.withdrawals import Withdrawal
from eth_hash.auto import keccak
from support import InlineComputeUnit

from bench.workload.genesis import block_env
from chain import BlockEnv, ChainSpec
from compute_unit import system_ops
from compute_unit.state import DictSnapshot
from coordinator.blocktest import FixtureRunner
from coordinator.pipeline import ChainRunner, ParallelExecutor
from storage.keys import AccountFields, acct_key, code_key, slot_key

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "ethereum-tests" / "BlockchainTests"
BEACON = bytes(BEACON_ROOTS_ADDRESS)
ETH = 10**18


def beacon_genesis():
    code_hash = keccak(BEACON_ROOTS_CONTRACT_CODE)
    return [
        (acct_key(BEACON), AccountFields(1, 0, code_hash)),
        (code_key(code_hash), BEACON_ROOTS_CONTRACT_CODE),
    ]


def run_fixture(relative: str):
    results = FixtureRunner(InlineComputeUnit(2)).run_file(FIXTURES / relative)
    assert results and all(r.status == "passed" for r in results), [
        (r.name, r.reason) for r in results
    ]
    return results


def test_beacon_root_is_stored_in_the_ring_buffer():
    root = b"\xab" * 32
    env = block_env(1, 30_000_000)
    env = BlockEnv(CancunVM, env.header.copy(parent_beacon_block_root=root), env.chain_id)
    writes = system_ops.pre_block(env, DictSnapshot(dict(beacon_genesis())))
    slot = env.header.timestamp % 8191
    assert writes.writes == {
        slot_key(BEACON, slot): env.header.timestamp,
        slot_key(BEACON, slot + 8191): int.from_bytes(root, "big"),
    }
    assert not system_ops.pre_block(env, DictSnapshot())  # not deployed: nothing
    shanghai = BlockEnv(ShanghaiVM, env.header, env.chain_id)
    assert not system_ops.pre_block(shanghai, DictSnapshot(dict(beacon_genesis())))


def test_beacon_root_write_on_both_paths():
    root = keccak(b"beacon")
    base = block_env(1, 30_000_000)
    env = BlockEnv(CancunVM, base.header.copy(parent_beacon_block_root=root), base.chain_id)
    with ChainRunner(beacon_genesis(), ParallelExecutor(InlineComputeUnit(2))) as chain:
        report, parallel, sequential = chain.import_block(env, [])
        assert report.root_match and parallel.state_root == sequential.state_root
        slot = env.header.timestamp % 8191 + 8191
        assert chain.committer.ss.get(slot_key(BEACON, slot)) == int.from_bytes(root, "big")


def test_beacon_root_fixtures_check_the_state_root(monkeypatch):
    """Every Cancun block writes the beacon root; the header's state root says it is right,
    and a parallel path without the write fails it."""
    fixture = "ValidBlocks/bcEIP4844-blobtransactions/blockWithAllTransactionTypes.json"
    run_fixture(fixture)
    monkeypatch.setattr(system_ops, "PRE_BLOCK", (system_ops.dao_fork_writes,))
    (result,) = FixtureRunner(InlineComputeUnit(2)).run_file(FIXTURES / fixture)
    assert result.status == "failed" and "parallel state root differs" in result.reason


def test_withdrawals_credit_gwei_and_delete_empty_accounts():
    rich, absent = b"\x01" * 20, b"\x02" * 20
    env = BlockEnv(
        ShanghaiVM,
        block_env(1, 30_000_000).header,
        1,
        withdrawals=(Withdrawal(0, 0, rich, 5), Withdrawal(1, 1, absent, 0)),
    )
    state = DictSnapshot({acct_key(rich): AccountFields(0, 7)})
    writes = system_ops.post_block(env, state)
    credited = AccountFields(0, 7 + 5 * 10**9)
    assert writes.writes == {acct_key(rich): credited, acct_key(absent): None}
    assert writes.wiped == {absent}


def test_withdrawals_block():
    run_fixture("ValidBlocks/bcExample/shanghaiExample.json")
    run_fixture("InvalidBlocks/bc4895-withdrawals/amountIs0TouchAccountAndTransaction.json")


def test_block_reward_with_uncles():
    coinbase, uncle_a, uncle_b = b"\x0c" * 20, b"\x0a" * 20, b"\x0b" * 20
    header = BlockHeader(difficulty=1, block_number=10, gas_limit=5000, coinbase=coinbase)
    uncles = (
        BlockHeader(difficulty=1, block_number=9, gas_limit=5000, coinbase=uncle_a),
        BlockHeader(difficulty=1, block_number=8, gas_limit=5000, coinbase=uncle_b),
    )
    env = BlockEnv(FrontierVM, header, 1, uncles=uncles)
    writes = system_ops.post_block(env, DictSnapshot({acct_key(coinbase): AccountFields(0, 1)}))
    assert writes.writes == {
        acct_key(coinbase): AccountFields(0, 1 + 5 * ETH + 2 * 5 * ETH // 32),
        acct_key(uncle_a): AccountFields(0, 5 * ETH * 7 // 8),
        acct_key(uncle_b): AccountFields(0, 5 * ETH * 6 // 8),
    }
    run_fixture("TransitionTests/bcFrontierToHomestead/UnclePopulation.json")
    run_fixture("TransitionTests/bcBerlinToLondon/londonUncles.json")


def test_the_dao_block_drains_to_the_refund_contract():
    spec = ChainSpec.from_geth_config(
        {"chainId": 1, "homesteadBlock": 0, "daoForkBlock": 5, "daoForkSupport": True}
    )
    drained = system_ops.DAO_DRAIN[0]
    state = DictSnapshot({acct_key(drained): AccountFields(0, 3 * ETH)})
    header = BlockHeader(difficulty=1, block_number=5, gas_limit=5000)
    writes = system_ops.pre_block(BlockEnv(spec.vm_class_at(5, 0), header, 1), state)
    assert writes.writes[acct_key(drained)] == AccountFields(0, 0)
    assert writes.writes[acct_key(system_ops.DAO_REFUND)] == AccountFields(0, 3 * ETH)
    assert len(writes.writes) == len(system_ops.DAO_DRAIN) + 1  # absent accounts are made
    before = BlockHeader(difficulty=1, block_number=4, gas_limit=5000)
    assert not system_ops.pre_block(BlockEnv(spec.vm_class_at(4, 0), before, 1), state)


def test_dao_fork_fixtures():
    for name in (
        "DaoTransactions_EmptyTransactionAndForkBlocksAhead",
        "DaoTransactions_UncleExtradata",
        "DaoTransactions_XBlockm1",
    ):
        run_fixture(f"TransitionTests/bcHomesteadToDao/{name}.json")
