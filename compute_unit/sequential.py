"""The correctness oracle: plain sequential py-evm over the same pre-state.

``SequentialChain`` keeps its own state in py-evm's trie and runs each block with
``vm.apply_all_transactions`` exactly as py-evm does, with the block's system operations
(the DAO drain, EIP-4788's beacon root, system transfers, withdrawals, rewards) made through
py-evm's own state API around it, giving the receipts, gas and state root every parallel
result is checked against.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from eth.abc import ReceiptAPI, SignedTransactionAPI
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.vm.chain_context import ChainContext
from eth.vm.forks.homestead import HomesteadVM
from eth.vm.forks.homestead.headers import dao_drain_list, dao_refund_contract
from eth_utils import decode_hex

from compute_unit.executor import BlockEnv
from storage.keys import ACCT, AccountFields, StateKey, StateReader
from storage.reference_trie import load_state


@dataclass(frozen=True)
class SequentialResult:
    receipts: tuple[ReceiptAPI, ...]
    gas_used: int
    state_root: bytes
    elapsed_s: float


def _oracle_vm_class(vm_class: type) -> type:
    """The fork's VM, taking its ancestor hashes from the block env instead of a chain DB."""
    return type(
        f"Oracle{vm_class.__name__}",
        (vm_class,),
        {"previous_hashes": property(lambda vm: vm.env_prev_hashes)},
    )


def _dao_fork(vm: Any, header: Any) -> None:
    """The DAO fork's drain, as py-evm makes it when it configures the fork block's header."""
    if not getattr(vm, "support_dao_fork", False) or not isinstance(vm, HomesteadVM):
        return
    if vm.get_dao_fork_block_number() != header.block_number:
        return
    for hex_account in dao_drain_list:
        address = decode_hex(hex_account)
        vm.state.delta_balance(dao_refund_contract, vm.state.get_balance(address))
        vm.state.set_balance(address, 0)


def _transfers(vm: Any, env: BlockEnv) -> None:
    """The block's system transfers (``chain.SystemTransfer``); a sender left empty is
    deleted, as EIP-161 deletes a touched empty account."""
    for transfer in env.transfers:
        if vm.state.get_balance(transfer.sender) < transfer.amount:
            raise ValueError(
                f"system transfer of {transfer.amount} wei from 0x{transfer.sender.hex()}, "
                f"which holds {vm.state.get_balance(transfer.sender)}"
            )
        vm.state.delta_balance(transfer.sender, -transfer.amount)
        vm.state.delta_balance(transfer.recipient, transfer.amount)
    for sender in dict.fromkeys(t.sender for t in env.transfers):
        if vm.state.account_is_empty(sender):
            vm.state.delete_account(sender)


class SequentialChain:
    """A chain state advanced block by block by plain py-evm."""

    def __init__(self, genesis: Iterable[tuple[StateKey, Any]]) -> None:
        self.db = AtomicDB()
        self.state_root = load_state(AccountDB(self.db), genesis)
        self._vm_classes: dict[type, type] = {}

    def accounts(self) -> StateReader:
        """The accounts of the state as it is now (``acct_key`` reads only), for a registry
        transaction's checks (``ebs/subscription.py``)."""
        return _AccountReader(AccountDB(self.db, self.state_root))

    def execute(self, env: BlockEnv, txs: Sequence[SignedTransactionAPI]) -> SequentialResult:
        vm_class = self._vm_classes.setdefault(env.vm_class, _oracle_vm_class(env.vm_class))
        header = env.header.copy(state_root=self.state_root, gas_used=0)
        vm = vm_class(header, ChainDB(self.db), ChainContext(env.chain_id), None)
        vm.env_prev_hashes = env.prev_hashes
        started = time.perf_counter()
        block = SimpleNamespace(header=header, uncles=env.uncles, number=header.block_number)
        _dao_fork(vm, header)
        vm.block_preprocessing(block)  # EIP-4788 from Cancun
        _transfers(vm, env)
        result_header, receipts, _ = vm.apply_all_transactions(txs, header)
        if env.withdrawals:
            vm.apply_all_withdrawals(env.withdrawals)
        if header.block_number > 0:
            vm._assign_block_rewards(block)
        vm.state.persist()
        elapsed = time.perf_counter() - started
        self.state_root = vm.state.state_root
        return SequentialResult(receipts, result_header.gas_used, self.state_root, elapsed)


class _AccountReader:
    """Account fields from py-evm's account DB at one state root."""

    def __init__(self, db: AccountDB) -> None:
        self.db = db

    def get(self, key: StateKey) -> AccountFields | None:
        if key[0] != ACCT:
            raise KeyError(f"only accounts are read here, not {key[0]}")
        address = key[1]
        if not self.db.account_exists(address):
            return None
        return AccountFields(
            self.db.get_nonce(address), self.db.get_balance(address), self.db.get_code_hash(address)
        )
