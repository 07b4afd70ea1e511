"""Test helpers: a Compute Unit that runs groups in process, and a shared small genesis."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from bench.workload.blocks import BlockGenerator, Mix
from bench.workload.genesis import Genesis, block_env, build_genesis
from compute_unit.executor import BlockEnv, CrashPlan, TxOutcome, decode_known, run_group
from compute_unit.state import StateReader, WriteLayer
from coordinator.grouping import Group
from coordinator.pipeline import BlockReport, ChainRunner, ParallelExecutor


class InlineComputeUnit:
    """Same contract as ``ComputeUnit`` but runs each group in this process (no Ray).

    ``fail_next``: the next ``execute`` raises, as a CU whose actors are gone."""

    def __init__(self, size: int = 2, name: str = "cu-inline") -> None:
        self.size = size
        self.name = name
        self.restarts = 0
        self.fail_next = False
        self.closed = False
        self.executed = 0  # groups (Block-STM: transactions) run here: it reached this CU
        self.stm_seed: int | None = None
        self.checked = 0  # ``executed`` when a test last asserted work reached this CU

    def shutdown(self) -> None:
        self.closed = True

    def execute(
        self,
        env: BlockEnv,
        snapshot: StateReader,
        groups: Sequence[Group],
        raw_txs: Sequence[bytes],
        crash: CrashPlan | None = None,
        senders: Sequence[bytes] | None = None,
        preimages: bool = True,
    ) -> dict[int, TxOutcome]:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError(f"{self.name} is gone")
        outcomes: dict[int, TxOutcome] = {}
        self.executed += len(groups)
        for group in groups:
            txs = [(i, decode_known(env, raw_txs[i], senders and senders[i])) for i in group]
            layer = WriteLayer(snapshot)
            outcomes.update((o.index, o) for o in run_group(env, layer, txs, preimages))
        return outcomes

    def execute_stm(
        self, env, snapshot, raw_txs, senders=None, groups=None, crash=None, preimages=True
    ):
        """Block-STM on in-process workers (``stm_seed``: their order of completion)."""
        from compute_unit.stm import InlineWorkers, run_block_stm

        workers = InlineWorkers(self.size, self.stm_seed)
        run = run_block_stm(env, snapshot, raw_txs, workers, senders, groups, crash, preimages)
        self.executed += workers.ran
        return run


@cache
def small_genesis(accounts: int = 120, seed: int = 3) -> Genesis:
    return build_genesis(accounts, seed=seed)


def inline_chain(
    genesis: Genesis, size: int = 2, path: str | None = None, seed: int | None = None
) -> ChainRunner:
    """A chain on an in-process CU. ``path``: None keeps the default fallback (small blocks
    run in this process); ``"groups"`` or ``"stm"`` switch it off, so every block reaches the
    CU's workers by that path (``seed``: Block-STM's order of completion)."""
    cu = InlineComputeUnit(size)
    cu.stm_seed = seed
    if path is None:
        return ChainRunner(genesis.state.items(), ParallelExecutor(cu))
    if path not in ("groups", "stm"):
        raise ValueError(f"unknown execution path {path!r}")
    executor = ParallelExecutor(cu, policy=None, stm=path == "stm")
    return ChainRunner(genesis.state.items(), executor)


def assert_reached_workers(chain: ChainRunner, report: BlockReport) -> None:
    """The block ran on the CU's workers and through parallel validation, not in process."""
    assert report.fallback is None, f"block {report.number} fell back: {report.fallback}"
    cu = chain.executor.cu
    ran, cu.checked = cu.executed - cu.checked, cu.executed  # this block's work on the CU
    assert ran > 0 or not report.txs, f"block {report.number} never reached the CU"
    if chain.executor.stm:  # validated on the workers' path: the final pass redoes nothing
        assert report.stm_aborts is not None and report.serial_reexecutions == 0


def env_for(number: int, txs: Sequence) -> BlockEnv:
    return block_env(number, gas_limit=max(30_000_000, sum(tx.gas for tx in txs)))


def generator(genesis: Genesis, mix: str, skew: float, seed: int) -> BlockGenerator:
    return BlockGenerator(genesis, Mix.parse(mix), skew, seed)


def assert_identical(report: BlockReport) -> None:
    assert report.receipts_match, f"block {report.number}: receipts differ"
    assert report.gas_match, f"block {report.number}: gas differs"
    assert report.root_match, f"block {report.number}: state root differs"


def paged_storage_blocks() -> list[tuple[dict, set]]:
    """Four blocks around a contract whose storage is paged (60 slots: more than a small
    storage trie holds), its slots changed by each block after the first."""
    from eth_hash.auto import keccak

    from storage.keys import AccountFields, acct_key, slot_key

    contract, other = keccak(b"contract")[:20], keccak(b"other")[:20]
    first = {acct_key(contract): AccountFields(1, 1), acct_key(other): AccountFields(0, 5)}
    first |= {slot_key(contract, i): i + 1 for i in range(60)}
    second = {acct_key(contract): AccountFields(1, 1), slot_key(contract, 3): 777}
    second[slot_key(contract, 70)] = 1
    third = {acct_key(contract): AccountFields(2, 1), slot_key(contract, 5): 0}
    third[acct_key(other)] = AccountFields(1, 4)
    fourth = {acct_key(contract): AccountFields(2, 1), slot_key(contract, 9): 99}
    return [(first, set()), (second, set()), (third, set()), (fourth, set())]


def random_state_blocks(seed: int, count: int, accounts: int = 60) -> list[tuple[dict, set]]:
    """Deterministic blocks of account/slot writes, deletions and wipes over a small key space."""
    import random

    from eth_hash.auto import keccak

    from storage.keys import AccountFields, acct_key, slot_key

    rng = random.Random(seed)
    addresses = [keccak(i.to_bytes(4, "big"))[:20] for i in range(accounts)]
    alive: set[bytes] = set()
    blocks = []
    for _ in range(count):
        writes: dict = {}
        for address in rng.sample(addresses, accounts // 3):
            if address in alive and rng.random() < 0.1:
                writes[acct_key(address)] = None
                alive.discard(address)
                continue
            writes[acct_key(address)] = AccountFields(rng.randrange(9), rng.randrange(10**20))
            alive.add(address)
            for _ in range(rng.randrange(6)):
                writes[slot_key(address, rng.randrange(50))] = rng.choice(
                    [0, rng.randrange(10**30)]
                )
        wiped = {a for a in sorted(alive) if rng.random() < 0.03 and acct_key(a) not in writes}
        deleted = {k[1] for k, v in writes.items() if k[0] == "acct" and v is None}
        blocks.append((writes, wiped | deleted))
    return blocks


class Cluster:
    """CUs made in process; ``room`` limits how many can be placed."""

    def __init__(self, room: int = 100) -> None:
        self.room = room
        self.made: dict[str, InlineComputeUnit] = {}

    def __call__(self, name: str, cores: int):
        if len(self.made) >= self.room:
            return None
        self.made[name] = InlineComputeUnit(cores, name)
        return self.made[name]


def thread_verifier(state, chain_id, vm_at):
    from coordinator.verifier import ThreadVerifier, Verifier

    return ThreadVerifier(Verifier(state, chain_id, vm_at))


def inline_producer(genesis=None, cluster=None, data_dir=None, **settings):
    """A ``BlockProducer`` on in-process CUs with a verifier thread; the workload's small
    genesis by default (``genesis``: a ``chain.Genesis``)."""
    import dataclasses

    from bench.workload.genesis import chain_genesis
    from coordinator.producer import BlockProducer, CoordinatorSettings

    base = CoordinatorSettings(block_interval=1.0, validators=4, seed=1)
    return BlockProducer(
        genesis or chain_genesis(small_genesis()),
        dataclasses.replace(base, **settings),
        cluster or Cluster(),
        data_dir,
        make_verifier=thread_verifier,
    )


def verified(producer) -> None:
    """Wait for the verifier replica to check every block so far; each must match."""
    producer.verifier.wait()
    producer.check_verifier()
    assert producer.halted is None, producer.halted
    assert producer.verified == producer.number


def dynamic_tx(wallet, nonce=0, to=b"\x11" * 20, **fields):
    """A signed EIP-1559 transfer on the workload's chain; ``fields`` override any field."""
    from eth.vm.forks import CancunVM

    from bench.workload.genesis import BASE_FEE, CHAIN_ID, GWEI

    values = dict(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=21_000,
        to=to,
        value=0,
        data=b"",
        access_list=(),
    )
    values.update(fields)
    builder = CancunVM.get_transaction_builder()
    return builder.new_unsigned_dynamic_fee_transaction(**values).as_signed_transaction(wallet.key)
