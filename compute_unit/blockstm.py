"""Block-STM validation: walk the block in order, re-execute what read stale state.

Workers executed their groups optimistically against the pre-block snapshot. Validation
installs final results one transaction at a time into a versioned store over that snapshot
(each key remembers the transaction that last wrote it). A transaction is valid when every
value it read equals the value the store holds at its position, i.e. it saw exactly what a
sequential run would have shown it; otherwise it is re-executed against the store. Since the
prefix before each position is final, one pass gives the sequential result. Balance credits
(fees, plain transfers' recipients) are folded in as each transaction is installed, and
invalidate only readers that looked at that balance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth.abc import ReceiptAPI, SignedTransactionAPI

from compute_unit.executor import (
    BlockEnv,
    TransactionRunner,
    TxOutcome,
    rebuild_receipt,
    receipt_for,
)
from compute_unit.state import StateReader, WriteLayer, read_holds
from storage.keys import StateKey, describe


class InvalidBlockError(Exception):
    """A transaction that is invalid even against the right state, in a block that must be
    taken as given (an imported block: it is refused)."""

    def __init__(self, index: int, tx_hash: bytes, reason: str) -> None:
        super().__init__(f"transaction {index} (0x{tx_hash.hex()}) is invalid: {reason}")
        self.index = index


@dataclass(frozen=True)
class Conflict:
    """Why a transaction was re-executed: the first stale key and who wrote it."""

    index: int
    key: str
    writer: int | None


@dataclass(frozen=True)
class DroppedTx:
    """A transaction left out of a block being built: invalid against the state its
    position gives it (a nonce or balance another transaction of the block changed)."""

    index: int
    tx_hash: bytes
    reason: str


@dataclass(frozen=True)
class WriteStep:
    """What installing one transaction changed: storage wipes first, then the writes."""

    writes: dict[StateKey, Any]
    wiped: frozenset[bytes]


@dataclass
class ValidatedBlock:
    """The block's final result. ``steps`` (one per transaction) are kept only when receipts
    need the state root after each transaction (``BlockEnv.intermediate_roots``); their
    receipts hold the status until ``with_state_roots`` puts the roots in."""

    receipts: list[ReceiptAPI]
    gas_used: int
    outcomes: list[TxOutcome]
    writes: dict[StateKey, Any]
    wiped: frozenset[bytes]
    conflicts: list[Conflict] = field(default_factory=list)
    steps: list[WriteStep] = field(default_factory=list)
    dropped: list[DroppedTx] = field(default_factory=list)

    @property
    def included(self) -> list[int]:
        """Block positions of the transactions the block keeps, in order."""
        return [outcome.index for outcome in self.outcomes]

    def with_state_roots(self, roots: Sequence[bytes]) -> None:
        """Put each transaction's post-state root into its receipt (pre-Byzantium)."""
        self.receipts = [
            rebuild_receipt(receipt, state_root=root)
            for receipt, root in zip(self.receipts, roots, strict=True)
        ]

    @property
    def reexecutions(self) -> int:
        return len(self.conflicts)


def _first_stale_read(reads: Mapping[StateKey, Any], store: WriteLayer) -> StateKey | None:
    for key, seen in reads.items():
        if not read_holds(seen, store.get(key)):
            return key
    return None


def validate_block(
    env: BlockEnv,
    snapshot: StateReader,
    txs: Sequence[SignedTransactionAPI],
    outcomes: Mapping[int, TxOutcome],
    drop_invalid: bool = False,
) -> ValidatedBlock:
    """Validate optimistic outcomes in block order; re-execute stale or missing ones.

    A transaction invalid at its position fails the block (``InvalidBlockError``), or, with
    ``drop_invalid`` (a block being built), is left out: it wrote nothing, so the rest of the
    block validates against the state without it, as a sequential builder would see it."""
    store = WriteLayer(snapshot)
    runner: TransactionRunner | None = None
    final: list[TxOutcome] = []
    receipts: list[ReceiptAPI] = []
    conflicts: list[Conflict] = []
    steps: list[WriteStep] = []
    dropped: list[DroppedTx] = []
    cumulative_gas = 0
    for index, tx in enumerate(txs):
        outcome = outcomes.get(index)
        stale = None if outcome is None else _first_stale_read(outcome.access.reads, store)
        if outcome is None or stale is not None:
            runner = runner or TransactionRunner(env, store)
            outcome = runner.run(index, tx)
            writer = None if stale is None else store.writer_of(stale)
            conflicts.append(Conflict(index, describe(stale) if stale else "not run", writer))
        if outcome.invalid is not None:
            if not drop_invalid:
                raise InvalidBlockError(index, tx.hash, outcome.invalid)
            dropped.append(DroppedTx(index, tx.hash, outcome.invalid))
            continue
        changed = store.apply(outcome.access, index)
        if env.intermediate_roots:
            steps.append(WriteStep(changed, outcome.access.wiped))
        cumulative_gas += outcome.gas_used
        receipts.append(receipt_for(outcome, cumulative_gas))
        final.append(outcome)
    return ValidatedBlock(
        receipts=receipts,
        gas_used=cumulative_gas,
        outcomes=final,
        writes=store.writes,
        wiped=frozenset(store.wiped),
        conflicts=conflicts,
        steps=steps,
        dropped=dropped,
    )
