"""Runs transactions on py-evm over an ``OverlayAccountDB``: one transaction, or one group.

A group runs in block order over a ``WriteLayer`` of its own, so each transaction sees the
writes of the group's earlier transactions and nothing else; every transaction comes back as a
``TxOutcome`` (receipt fields plus its read/write set) for the validator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth.abc import (
    ReceiptAPI,
    SignedTransactionAPI,
    StateAPI,
)
from eth.vm.chain_context import ChainContext
from eth.vm.forks.byzantium.constants import (
    EIP658_TRANSACTION_STATUS_CODE_FAILURE as EIP658_FAILURE,
)
from eth.vm.forks.byzantium.constants import (
    EIP658_TRANSACTION_STATUS_CODE_SUCCESS as EIP658_SUCCESS,
)
from eth_utils import ValidationError

from chain import BlockEnv
from compute_unit.preimages import recording_computation_class
from compute_unit.state import OverlayAccountDB, StateReader, TxAccess, WriteLayer


@dataclass(frozen=True)
class CrashPlan:
    """Fault injection: the worker given transaction ``index`` dies just before running it."""

    index: int


@dataclass(frozen=True)
class TxOutcome:
    """One executed transaction: its receipt and the access that produced it.

    The receipt is made where the transaction ran (its log bloom costs a hash per topic) with
    the cumulative gas left at 0; ``receipt_for`` puts the block position's value in.
    """

    index: int
    success: bool
    gas_used: int
    receipt: ReceiptAPI | None
    access: TxAccess
    invalid: str | None = None


@cache
def _overlay_state_class(state_class: type[StateAPI]) -> type[StateAPI]:
    """The fork's state class on an ``OverlayAccountDB``, making balance credits lazy and
    recording Keccak preimages (``compute_unit/preimages.py``)."""

    def delta_balance(self: StateAPI, address: bytes, delta: int) -> None:
        if delta > 0:
            self._account_db.credit(address, delta)
        else:
            self.set_balance(address, self.get_balance(address) + delta)

    return type(
        f"Overlay{state_class.__name__}",
        (state_class,),
        {
            "account_db_class": OverlayAccountDB,
            "delta_balance": delta_balance,
            "computation_class": recording_computation_class(state_class.computation_class),
        },
    )


class TransactionRunner:
    """A py-evm state for one block over a reader; runs transactions one by one."""

    def __init__(self, env: BlockEnv, reader: StateReader, preimages: bool = True) -> None:
        """``preimages``: record the Keccak preimages of each transaction (the learner's)."""
        self.env = env
        context = env.vm_class.create_execution_context(
            env.header, env.prev_hashes, ChainContext(env.chain_id)
        )
        state_class = _overlay_state_class(env.vm_class.get_state_class())
        self.state: StateAPI = state_class(reader, context, env.header.state_root)
        self.account_db: OverlayAccountDB = self.state._account_db
        self.account_db.record_preimages = preimages
        self.account_db.finish_transaction()  # drop what building the state looked at

    def run(self, index: int, tx: SignedTransactionAPI) -> TxOutcome:
        try:
            computation = self.state.apply_transaction(tx)
        except ValidationError as err:
            access = self.account_db.finish_transaction()
            empty = TxAccess(reads=access.reads, writes={})
            return TxOutcome(index, False, 0, None, empty, invalid=str(err))
        gas_used = self.env.vm_class.finalize_gas_used(tx, computation)
        success = not computation.is_error
        status = EIP658_SUCCESS if success else EIP658_FAILURE
        receipt = tx.make_receipt(status, 0, computation.get_log_entries())
        access = self.account_db.finish_transaction()
        return TxOutcome(index, success, gas_used, receipt, access)


def decode_known(env: BlockEnv, raw: bytes, sender: bytes | None) -> SignedTransactionAPI:
    """A block's transaction decoded where it runs, with the sender the coordinator already
    recovered and checked set on it (py-evm's cached ``sender``): recovering it again costs
    more than decoding."""
    tx = env.decode(raw)
    if sender is not None:
        tx.__dict__["sender"] = sender
    return tx


def known_senders(txs: Sequence[SignedTransactionAPI]) -> list[bytes] | None:
    """Each transaction's recovered sender, if every one has been recovered already."""
    senders = [tx.__dict__.get("sender") for tx in txs]
    return None if None in senders else senders


def run_group(
    env: BlockEnv,
    layer: WriteLayer,
    indexed_txs: Sequence[tuple[int, SignedTransactionAPI]],
    preimages: bool = True,
) -> list[TxOutcome]:
    """Run one group in order on ``layer``, each transaction seeing the earlier writes.

    The layer keeps the group's combined write set for the caller.
    """
    runner = TransactionRunner(env, layer, preimages)
    outcomes = []
    for index, tx in indexed_txs:
        outcome = runner.run(index, tx)
        layer.apply(outcome.access, index)
        outcomes.append(outcome)
    return outcomes


def receipt_for(outcome: TxOutcome, cumulative_gas: int) -> ReceiptAPI:
    """The block receipt of an executed transaction at a position with this cumulative gas.

    Before Byzantium the status field is the intermediate state root, put in at commit
    (``ValidatedBlock.with_state_roots``).
    """
    if outcome.receipt is None:
        raise ValueError(f"transaction {outcome.index} was invalid and has no receipt")
    return rebuild_receipt(outcome.receipt, gas_used=cumulative_gas)


def rebuild_receipt(receipt: ReceiptAPI, **changes: Any) -> ReceiptAPI:
    """The receipt with some fields replaced, its logs and bloom shared, not copied.

    ``ReceiptAPI.copy`` deep-copies every unchanged field: for a receipt with 10,000 logs
    that is 75 ms, here a few microseconds. Typed receipts (EIP-2718) wrap a legacy one.
    """
    inner = getattr(receipt, "_inner", None)
    if inner is not None:
        return type(receipt)(receipt.type_id, rebuild_receipt(inner, **changes))
    fields = {
        "state_root": receipt.state_root,
        "gas_used": receipt.gas_used,
        "bloom": receipt.bloom,
        "logs": receipt.logs,
    }
    return type(receipt)(**{**fields, **changes})
