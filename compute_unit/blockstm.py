"""Block-STM validation: walk the block in order, re-execute what read stale state.

Workers executed their groups optimistically against the pre-block snapshot. Validation
installs final results one transaction at a time into a versioned store over that snapshot
(each key remembers the transaction that last wrote it). A transaction is valid when every
value it read equals the value the store holds at its position, i.e. it saw exactly what a
sequential run would have shown it; otherwise it is re-executed against the store. Since the
prefix before each position is final, one pass gives the sequential result. Fee credits are
deltas folded in as each transaction is installed, so they never invalidate a reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth.abc import ReceiptAPI, SignedTransactionAPI

from compute_unit.executor import BlockEnv, TransactionRunner, TxOutcome, receipt_for
from compute_unit.state import StateReader, WriteLayer
from storage.keys import StateKey, describe


class InvalidBlockError(Exception):
    """A transaction that is invalid even against the right state (admission missed it)."""

    def __init__(self, index: int, tx_hash: bytes, reason: str) -> None:
        super().__init__(f"transaction {index} (0x{tx_hash.hex()}) is invalid: {reason}")
        self.index = index


@dataclass(frozen=True)
class Conflict:
    """Why a transaction was re-executed: the first stale key and who wrote it."""

    index: int
    key: str
    writer: int | None


@dataclass
class ValidatedBlock:
    receipts: list[ReceiptAPI]
    gas_used: int
    outcomes: list[TxOutcome]
    writes: dict[StateKey, Any]
    wiped: frozenset[bytes]
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def reexecutions(self) -> int:
        return len(self.conflicts)


def _first_stale_read(reads: Mapping[StateKey, Any], store: WriteLayer) -> StateKey | None:
    for key, seen in reads.items():
        if store.get(key) != seen:
            return key
    return None


def validate_block(
    env: BlockEnv,
    snapshot: StateReader,
    txs: Sequence[SignedTransactionAPI],
    outcomes: Mapping[int, TxOutcome],
) -> ValidatedBlock:
    """Validate optimistic outcomes in block order; re-execute stale or missing ones."""
    store = WriteLayer(snapshot)
    runner: TransactionRunner | None = None
    final: list[TxOutcome] = []
    receipts: list[ReceiptAPI] = []
    conflicts: list[Conflict] = []
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
            raise InvalidBlockError(index, tx.hash, outcome.invalid)
        store.apply(outcome.access, index)
        cumulative_gas += outcome.gas_used
        receipts.append(receipt_for(tx, outcome, cumulative_gas))
        final.append(outcome)
    return ValidatedBlock(
        receipts=receipts,
        gas_used=cumulative_gas,
        outcomes=final,
        writes=store.writes,
        wiped=frozenset(store.wiped),
        conflicts=conflicts,
    )
