"""Block building: from the pool to a committed, stored Ethereum block, executed once.

The next block's env comes from the head's header (``coordinator/assembly.py``). Each block
space (the public one, then each subscribed dApp's) takes executable transactions from the
pool by price and nonce, up to its gas limit (``TxPool.select``). Admission checks them again
against the block (``coordinator/admission.py``); what it refuses is dropped with its reason.
The rest runs through the pipeline (``ChainRunner.import_block``: plan, preload, the CU pools,
Block-STM validation), where a transaction invalid at its position (a nonce or balance the
block changed) is dropped too, never failing the block. Once the state root is known the
block is sealed and written to the chain data (with the stake ledger's changes, when the
builder keeps a ``Registry``), then the state is committed: after a crash between the two,
``recover`` re-executes the stored block on the state before it. A block starts with the
stake refunds the ledger has due (``ebs/stakes.py``), carried in its env and stored with it.

Nothing here runs the block a second time: the verifier replica does, off this path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from eth.abc import BlockHeaderAPI, SignedTransactionAPI

from chain import BlockEnv, Genesis, SystemTransfer, genesis_header
from compute_unit.blockstm import ValidatedBlock
from compute_unit.executor import TxOutcome
from compute_unit.state import StateReader
from coordinator.admission import admit
from coordinator.assembly import MAX_ANCESTORS, SealedBlock, next_env, seal
from coordinator.locks import FairRLock
from coordinator.pipeline import BlockReport, ChainRunner
from coordinator.spaces import SpacesExecutor
from coordinator.txpool import TxPool
from coordinator.verifier import CommittedBlock, decode_header
from ebs.stakes import Settlement
from storage.chaindata import ChainData, DroppedTx, StoredBlock
from storage.ss import StorageError


class CommitInterrupted(RuntimeError):
    """A block's commit failed part way: this process cannot go on from its memory; a
    restart on the data dir recovers (the stored block is re-executed, or the stores
    rolled forward to each other)."""

    def __init__(self, number: int, cause: Exception) -> None:
        super().__init__(
            f"the commit of block {number} failed ({cause!r}); restart the node on its data "
            "dir: it recovers from what was stored"
        )
        self.number = number


class Registry(Protocol):
    """The stake ledger as block building needs it (``SubscriptionBook`` is one)."""

    def due(self) -> tuple[SystemTransfer, ...]: ...
    def settle(
        self,
        number: int,
        txs: Sequence[SignedTransactionAPI],
        outcomes: Sequence[TxOutcome],
        state_before: StateReader,
    ) -> Settlement: ...
    def commit(self, settlement: Settlement) -> None: ...


@dataclass(frozen=True)
class Space:
    """A block space being filled: its pool's name, its gas, which transactions it takes."""

    name: str
    gas_limit: int
    wanted: Callable[[SignedTransactionAPI], bool]


@dataclass
class BuiltBlock:
    header: BlockHeaderAPI
    txs: list[SignedTransactionAPI]  # the block's, in order
    outcomes: list[TxOutcome]  # theirs
    dropped: list[DroppedTx]
    txs_by_space: dict[str, int]
    gas_by_space: dict[str, int]
    times: dict[str, float]  # execution seconds per space
    report: BlockReport
    sealed: SealedBlock
    state_before: StateReader
    phases_ms: dict[str, float]  # where the block's time went, in order
    settlement: Settlement | None = None  # what its registry transactions did


class _Phases:
    """Milliseconds per phase of a block, lap by lap."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round((now - self._last) * 1000, 2)
        self._last = now


class BlockBuilder:
    def __init__(
        self,
        genesis: Genesis,
        chain: ChainRunner,
        executor: SpacesExecutor,
        data: ChainData,
        pool: TxPool,
        coinbase: bytes,
        clock: Callable[[], float] = time.time,
        allow_unprotected: bool = False,
        lock: FairRLock | None = None,
        registry: Registry | None = None,
    ) -> None:
        """``lock``: held while the pool is read and reset (intake adds to it meanwhile);
        ``registry``: the stake ledger (None: a chain without elastic block space)."""
        self.genesis = genesis
        self.lock = lock or FairRLock()
        self.chain_id = genesis.spec.chain_id
        self.chain = chain
        self.executor = executor
        self.data = data
        self.pool = pool
        self.coinbase = coinbase
        self.clock = clock
        self.allow_unprotected = allow_unprotected
        self.registry = registry
        self.ancestors: deque[bytes] = deque(maxlen=MAX_ANCESTORS)  # newest first
        self.head: BlockHeaderAPI
        self.recovery = self._recover()

    # -- start ------------------------------------------------------------------------------
    def _recover(self) -> str:
        """Bring the chain data and the state to the same block; what was done."""
        state_at = self.chain.committer.mark.number
        head = self.data.head()
        if head is None:
            if state_at != 0:
                raise StorageError(f"state at block {state_at} but no chain data")
            header = genesis_header(self.genesis, self.chain.committer.state_root)
            self.data.write_block(_empty_block(header), {}, ())
            head, done = 0, "new chain"
        elif head == state_at + 1:
            done = f"re-executed block {head} (stored, state not yet committed)"
        elif head == state_at:
            done = f"resumed at block {head}"
        else:
            raise StorageError(
                f"chain data at block {head}, state at block {state_at}: too far apart"
            )
        first = max(0, head - MAX_ANCESTORS + 1)
        for number in range(first, head + 1):
            self.ancestors.appendleft(self.data.block(number).hash)
        self.head = decode_header(self.data.block(head).header)
        if head == state_at + 1:
            self._roll_forward(self.data.block(head))
        return done

    def _roll_forward(self, block: StoredBlock) -> None:
        header = decode_header(block.header)
        env = BlockEnv(
            self.vm_at(header.block_number, header.timestamp),
            header,
            self.chain_id,
            tuple(self.ancestors)[1:],
            transfers=block.transfers,
        )
        txs = [env.decode(raw) for raw in block.transactions]
        self.executor.assignment = {name: [] for name in self.executor.pools}
        self.executor.assignment[next(iter(self.executor.pools))] = list(range(len(txs)))
        self.executor.drop_invalid = False
        try:
            _, parallel, _ = self.chain.import_block(env, txs)
        finally:
            self.executor.drop_invalid = True
        if parallel.state_root != header.state_root:
            raise StorageError(
                f"re-executing stored block {block.number} gave state root "
                f"0x{parallel.state_root.hex()}, its header says 0x{header.state_root.hex()}"
            )

    def committed_blocks(self, last: int) -> Iterator[CommittedBlock]:
        """Blocks 1 to ``last`` as the verifier replays them (a replica catching up)."""
        hashes: deque[bytes] = deque([self.data.hash_of(0)], maxlen=MAX_ANCESTORS)
        for number in range(1, last + 1):
            block = self.data.block(number)
            yield CommittedBlock(
                number, block.header, block.transactions, tuple(hashes), block.transfers
            )
            hashes.appendleft(block.hash)

    def vm_at(self, number: int, timestamp: int) -> Any:
        return self.genesis.spec.vm_class_at(number, timestamp)

    # -- blocks -----------------------------------------------------------------------------
    def next_env(self, gas_limit: int | None = None) -> BlockEnv:
        """The env of the block after the head (now's timestamp), with the stake refunds due."""
        timestamp = int(self.clock())
        number = self.head.block_number + 1
        env = next_env(
            self.vm_at(number, max(timestamp, self.head.timestamp + 1)),
            self.head,
            self.chain_id,
            tuple(self.ancestors),
            timestamp,
            gas_limit or self.head.gas_limit,
            self.coinbase,
        )
        if self.registry is None:
            return env
        with self.lock:  # the ledger changes as a block is stored
            return replace(env, transfers=self.registry.due())

    def build(self, spaces: Sequence[Space]) -> BuiltBlock:
        clock = _Phases()
        env = self.next_env(sum(space.gas_limit for space in spaces))
        number = env.header.block_number
        base_fee = getattr(env.header, "base_fee_per_gas", None) or 0
        taken: dict[bytes, int] = {}
        with self.lock:
            selected = {
                space.name: self.pool.select(space.gas_limit, base_fee, space.wanted, taken)
                for space in spaces
            }
        candidates = [tx for txs in selected.values() for tx in txs]
        clock.lap("select")
        state_before = self.chain.snapshot
        admission = admit(env, state_before, candidates, self.allow_unprotected)
        clock.lap("admit")
        dropped = [
            DroppedTx(candidates[r.index].hash, r.reason, number) for r in admission.rejected
        ]
        accepted = admission.accepted
        position = {tx.hash: i for i, tx in enumerate(accepted)}
        assignment = {
            name: [position[tx.hash] for tx in txs if tx.hash in position]
            for name, txs in selected.items()
        }
        self.executor.assignment = assignment
        stored: list[SealedBlock] = []
        settled: list[Settlement] = []

        def store(env: BlockEnv, block: ValidatedBlock, prior: Any, root: bytes) -> None:
            clock.lap("execute")  # plan, preload, run, validate, merkelize
            kept = [accepted[i] for i in block.included]
            sealed = seal(env, kept, block.receipts, root)
            records = None
            if self.registry is not None:
                settled.append(self.registry.settle(number, kept, block.outcomes, state_before))
                records = settled[0].records()
            clock.lap("seal")
            self.data.write_block(sealed.stored, prior or {}, block.wiped, records)
            if settled:
                with self.lock:
                    self.registry.commit(settled[0])
            stored.append(sealed)
            clock.lap("store")

        self.chain.before_write = store
        try:
            report, parallel, _ = self.chain.import_block(env, accepted)
        except Exception as err:
            if self.chain.committing:  # the trie in memory, or the stores, are mid-commit
                raise CommitInterrupted(number, err) from err
            raise  # nothing committed: the block can be built again
        finally:
            self.chain.before_write = None
        clock.lap("commit")
        block = parallel.block
        dropped += [DroppedTx(d.tx_hash, d.reason, number) for d in block.dropped]
        sealed = stored[0]
        kept = [accepted[i] for i in block.included]
        if dropped:
            self.data.record_dropped(dropped)
        with self.lock:
            self.pool.reset([tx.hash for tx in kept], [(d.hash, d.reason) for d in dropped])
            self.record_evicted({d.hash for d in dropped})
            self.head = sealed.header
            self.ancestors.appendleft(sealed.header.hash)
        clock.lap("reset")
        space_of = {i: name for name, indices in assignment.items() for i in indices}
        txs_by_space = dict.fromkeys(assignment, 0)
        gas_by_space = dict.fromkeys(assignment, 0)
        for outcome in block.outcomes:
            txs_by_space[space_of[outcome.index]] += 1
            gas_by_space[space_of[outcome.index]] += outcome.gas_used
        return BuiltBlock(
            header=sealed.header,
            txs=kept,
            outcomes=list(block.outcomes),
            dropped=dropped,
            txs_by_space=txs_by_space,
            gas_by_space=gas_by_space,
            times=dict(self.executor.times),
            report=report,
            sealed=sealed,
            state_before=state_before,
            phases_ms=clock.laps,
            settlement=settled[0] if settled else None,
        )

    def record_evicted(self, recorded: set[bytes] | frozenset[bytes] = frozenset()) -> None:
        """Record what the pool evicted (replaced, stale, unfunded, over its caps, expired)
        as dropped with the pool's reason and no block, but those in ``recorded``."""
        with self.lock:
            evicted = [e for e in self.pool.take_evicted() if e.hash not in recorded]
            if evicted:
                self.data.record_dropped(DroppedTx(e.hash, e.reason, None) for e in evicted)


def _empty_block(header: BlockHeaderAPI) -> StoredBlock:
    import rlp

    return StoredBlock(
        number=header.block_number,
        hash=header.hash,
        header=rlp.encode(header),
        transactions=(),
        senders=(),
        receipts=(),
        logs=(),
        bloom=header.bloom.to_bytes(256, "big"),
        tx_hashes=(),
        gas_used=header.gas_used,
        base_fee=getattr(header, "base_fee_per_gas", None),
        timestamp=header.timestamp,
        effective_tips=(),
        contract_addresses=(),
        gas_used_per_tx=(),
    )
