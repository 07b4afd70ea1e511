"""Block production: the node's units, put together, one block every interval.

A block's life on the running node: intake (``coordinator/intake.py``: admission, the pool)
holds transactions until the builder (``coordinator/builder.py``) fills the public block space
(PBS) and one elastic block space per active subscription from the pool, runs the block once
through the parallel pipeline, drops what is invalid and commits the rest. Then the block's
registry transactions take effect (``coordinator/subscriptions.py``), each EBS adapts, the
basic pool's load feeds scaling by vote (``coordinator/scaling.py``), and the verifier
replica (``coordinator/verifier.py``) gets the committed block to re-execute sequentially,
off this path. Production stops only when the verifier reports a mismatch: a bug, never a
user's transaction.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chain import Genesis
from cluster.autoscaler import ScalingPolicy
from cluster.governance import Validator, default_validators
from compute_unit.pool import CuPool
from compute_unit.state import StateReader
from coordinator.builder import BlockBuilder, BuiltBlock, CommitInterrupted, Space
from coordinator.cu_supply import CuFactory, CuSupply
from coordinator.events import EventLog
from coordinator.hints import HintTable
from coordinator.intake import Intake
from coordinator.locks import FairRLock
from coordinator.node_api import BlockRecord, VerifierState
from coordinator.pipeline import ChainRunner
from coordinator.planner import HintPlanner
from coordinator.scaling import PBS, Scaler
from coordinator.spaces import SpacesExecutor
from coordinator.subscriptions import SubscriptionBook
from coordinator.txpool import PoolConfig, TxPool
from coordinator.verifier import Verdict, VerifierAPI
from ebs.stakes import LedgerError, StakeLedger
from storage.chaindata import ChainData
from storage.keys import acct_key, genesis_state
from storage.ss import FarReads, StorageError

RECORDS_KEPT = 100_000  # /v1/blocks records in memory (the chain data keeps every block)
VerifierFactory = Callable[[list, int, Callable[[int, int], Any]], VerifierAPI]


@dataclass(frozen=True)
class CoordinatorSettings:
    block_interval: float = 1.0
    pbs_gas_limit: int | None = None  # None: the genesis gas limit
    basic_cus: int = 1
    cu_cores: int = 2
    ebs_slots: int = 4  # dedicated CUs the cluster gives subscriptions at most
    validators: int = 4
    verify: bool = True  # run the verifier replica
    verifier_max_lag: int = 64  # blocks behind before /healthz says unhealthy
    startup_timeout: float = 600.0  # seconds to wait for the basic CUs to be placed
    seed: int = 0
    allow_unprotected: bool = False  # geth's --rpc.allow-unprotected-txs
    coinbase: bytes = b"\x00" * 20
    history_blocks: int = 128  # state kept readable at past blocks
    pool: PoolConfig = field(default_factory=PoolConfig)
    policy: ScalingPolicy = field(default_factory=ScalingPolicy)


class _LatestState:
    """The pool's view of accounts: the latest committed state."""

    def __init__(self, chain: ChainRunner) -> None:
        self.chain = chain

    def _account(self, address: bytes) -> Any:
        return self.chain.snapshot.get(acct_key(address))

    def nonce(self, address: bytes) -> int:
        account = self._account(address)
        return account.nonce if account else 0

    def balance(self, address: bytes) -> int:
        account = self._account(address)
        return account.balance if account else 0


def _ledger(data: ChainData) -> StakeLedger:
    """The stake ledger as of the chain data's head; a record that does not decode is a
    ``StorageError`` naming the store and the key (the node does not start on it)."""
    try:
        return StakeLedger.load(data.registry_records())
    except LedgerError as err:
        raise StorageError(f"{data.path}: corrupt record {err}") from err


class BlockProducer:
    def __init__(
        self,
        genesis: Genesis,
        settings: CoordinatorSettings,
        make_cu: CuFactory,
        data_dir: str | Path | None = None,
        hints_dir: str | Path | None = None,
        validators: Sequence[Validator] | None = None,
        on_block: Callable[[BlockProducer, BlockRecord], None] | None = None,
        make_verifier: VerifierFactory | None = None,
        clock: Callable[[], float] = time.time,
        far_state: FarReads | None = None,
    ) -> None:
        """``far_state``: State Storage reads for Compute Units on other machines than
        ``data_dir`` (``compute_unit/remote_state.py``); None when they all share its disk."""
        self.genesis = genesis
        self.settings = settings
        self.on_block = on_block
        self.lock = FairRLock()  # intake, block building and the API share it
        self.events = EventLog()
        self.records: deque[BlockRecord] = deque(maxlen=RECORDS_KEPT)
        self.halted: str | None = None
        self.verifier: VerifierAPI | None = None
        try:
            self.pbs_gas_limit = settings.pbs_gas_limit or genesis.gas_limit
            self.supply = CuSupply(make_cu, settings.cu_cores)
            basic = [
                self.supply.wait_for(settings.startup_timeout) for _ in range(settings.basic_cus)
            ]
            self.pools: dict[str, CuPool] = {PBS: CuPool(PBS, basic, self._failure)}
            self.scaler = Scaler(
                self.pools[PBS],
                self.supply,
                self.events,
                settings.policy,
                validators or default_validators(settings.validators),
                settings.block_interval,
                settings.seed,
            )
            self.table = HintTable(hints_dir)
            self.executor = SpacesExecutor(self.pools, HintPlanner(self.table))
            state = genesis_state(genesis.alloc)
            self.chain = ChainRunner(
                state,
                self.executor,
                data_dir,
                preload=True,
                verify=False,
                keep_prior=True,
                far_state=far_state,
            )
            self.data = ChainData(self.chain.committer.data_dir / "chain", settings.history_blocks)
            self.book = SubscriptionBook(
                self.pools,
                self.supply,
                self.events,
                settings.ebs_slots,
                self.pbs_gas_limit,
                self._failure,
                _ledger(self.data),
            )
            self.pool = TxPool(settings.pool, _LatestState(self.chain))
            self.builder = BlockBuilder(
                genesis,
                self.chain,
                self.executor,
                self.data,
                self.pool,
                settings.coinbase,
                clock,
                settings.allow_unprotected,
                self.lock,
                self.book,
            )
            self.events.add(self.number, "start", f"chain: {self.builder.recovery}")
            self.book.resume(self.number)
            self.intake = Intake(
                self.pool,
                self.book,
                lambda: self.builder.next_env(self.gas_cap()),
                lambda: self.chain.snapshot,
                self.lock,
                settings.allow_unprotected,
                self.builder.record_evicted,
                lambda: (self.number, self.builder.ancestors[0], self.gas_cap()),
                self.space_gas_limit,
            )
            self._verdicts_lock = threading.Lock()
            self.verified = 0
            self.lag_max = 0
            if settings.verify and make_verifier is not None:
                self.verifier = make_verifier(
                    state, genesis.spec.chain_id, genesis.spec.vm_class_at
                )
                for block in self.builder.committed_blocks(self.number):  # a replica catching up
                    self.verifier.submit(block)
        except BaseException:  # a store that would not open, no CU in time: let go of
            self.close()  # what was opened (CUs, threads, RocksDB) before saying so
            raise

    @property
    def number(self) -> int:
        return self.builder.head.block_number

    @property
    def state(self) -> StateReader:
        return self.chain.snapshot

    def gas_cap(self) -> int:
        with self.lock:  # API threads ask while blocks change the subscriptions
            return self.pbs_gas_limit + self.book.gas_limits()

    def space_gas_limit(self, to: bytes | None) -> int:
        """The gas limit of the block space a transaction to ``to`` goes to."""
        with self.lock:
            for record in self.book.active():
                if to in record.contracts:
                    return record.space.gas_limit
            return self.pbs_gas_limit

    # -- blocks -----------------------------------------------------------------------------
    def produce(self) -> BlockRecord | None:
        """Build, run and commit the next block (possibly empty); None once halted."""
        started = time.perf_counter()
        self.check_verifier()
        if self.halted is not None:
            return None
        with self.lock:
            spaces = self._spaces()
        restarts = self.executor.restarts
        waited = time.perf_counter() - started
        try:
            built = self.builder.build(spaces)
        except CommitInterrupted as err:
            self.halted = str(err)
            self.events.add(err.number, "halt", f"halted: {self.halted}")
            return None
        finished = time.perf_counter()
        number = built.header.block_number
        if self.executor.restarts > restarts:
            self.events.add(
                number,
                "failure",
                f"{self.executor.restarts - restarts} worker(s) died mid-block; each was "
                "replaced in its CU and its groups re-ran there",
            )
        if self.verifier is not None:  # committed: the replica gets it first, whatever follows
            with self._verdicts_lock:
                self.verifier.submit(built.sealed.committed)
        for dropped in built.dropped:
            self.events.add(number, "dropped", f"0x{dropped.hash.hex()}: {dropped.reason}")
        with self.lock:
            try:
                for dropped in built.dropped:
                    self.book.forget(dropped.hash)
                if built.settlement is not None:
                    self.book.apply(built.settlement)
                self.book.adapt(number, built.gas_by_space, built.times)
                self.scaler.after_block(number, built.times.get(PBS, 0.0))
            except Exception as err:  # the block stands; what follows it is retried next block
                self.events.add(number, "failure", f"after block {number}: {err!r}")
            built.phases_ms["before"] = round(waited * 1000, 2)
            built.phases_ms["after"] = round((time.perf_counter() - finished) * 1000, 2)
            record = self._record(built)
            self.records.append(record)
        self.check_verifier()
        if self.on_block is not None:
            self.on_block(self, record)
        return record

    def _spaces(self) -> list[Space]:
        active = self.book.active()
        dedicated = {c for s in active for c in s.contracts}
        spaces = [Space(PBS, self.pbs_gas_limit, lambda tx: tx.to not in dedicated)]
        for record in active:
            contracts = set(record.contracts)
            spaces.append(
                Space(record.cu, record.space.gas_limit, lambda tx, c=contracts: tx.to in c)
            )
        return spaces

    def _record(self, built: BuiltBlock) -> BlockRecord:
        active = self.book.active()
        limits = {PBS: self.pbs_gas_limit} | {s.cu: s.space.gas_limit for s in active}
        header = built.header
        return BlockRecord(
            number=header.block_number,
            hash=header.hash,
            parent_hash=header.parent_hash,
            state_root=header.state_root,
            txs=built.txs_by_space,
            gas_used=built.gas_by_space,
            gas_limit=limits,
            exec_ms={name: round(t * 1000, 2) for name, t in built.times.items()},
            reexecutions=built.report.reexecutions,
            dropped=len(built.dropped),
            cus={name: len(pool.cus) for name, pool in self.pools.items()},
            parallelism={s.cu: round(s.space.parallelism, 4) for s in active},
            produced_at=time.time(),
            phases_ms=built.phases_ms,
        )

    # -- the verifier -----------------------------------------------------------------------
    def check_verifier(self) -> list[Verdict]:
        """Collect the verifier's verdicts; halt production on a mismatch."""
        if self.verifier is None:
            return []
        with self._verdicts_lock:  # the producer and API threads both ask
            return self._collect()

    def _collect(self) -> list[Verdict]:
        verdicts = self.verifier.poll()
        for verdict in verdicts:
            if verdict.matches:
                self.verified = max(self.verified, verdict.number)
                continue
            if self.halted is None:
                self.halted = (
                    f"block {verdict.number} differs from sequential py-evm: {verdict.detail}"
                )
                self.events.add(verdict.number, "halt", f"halted: {self.halted}")
        self.lag_max = max(self.lag_max, self.verifier.lag())
        return verdicts

    def verifier_state(self) -> VerifierState:
        if self.verifier is None:
            return VerifierState(False, 0, 0, 0)
        self.check_verifier()
        return VerifierState(True, self.verified, self.verifier.lag(), self.lag_max)

    def record(self, number: int | None) -> BlockRecord | None:
        records = self.records
        if not records:
            return None
        record = records[-1] if number is None else None
        if number is not None:
            offset = number - records[0].number
            record = records[offset] if 0 <= offset < len(records) else None
        if record is None or self.verifier is None:
            return record
        return replace(record, verified=record.number <= self.verified or None)

    # -- reporting --------------------------------------------------------------------------
    def _failure(self, message: str) -> None:
        self.events.add(self.number + 1, "failure", message)

    def close(self) -> None:
        """Everything the producer opened (also after a failed start: what it got to)."""
        if self.verifier is not None:
            self.verifier.close()
        for pool in getattr(self, "pools", {}).values():
            for cu in pool.cus:
                cu.shutdown()
            pool.close()
        for part in ("executor", "data", "chain", "table"):
            if hasattr(self, part):
                getattr(self, part).close()
