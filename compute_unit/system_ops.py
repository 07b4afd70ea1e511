"""System operations: the state changes a block makes besides its transactions, as write sets.

Applied before the first transaction:

- the DAO fork's irregular state change (Homestead with the DAO fork, at its block): every
  account of py-evm's drain list moves its balance to the refund contract;
- EIP-4788 (Cancun on): the parent beacon block root is stored in the beacon roots contract,
  ``timestamp % 8191 -> timestamp`` and ``+ 8191 -> root``, if the contract is deployed.
- system transfers (the node's own chain: elastic block space stakes returned,
  ``ebs/stakes.py``): each moves ``amount`` wei from its sender to its recipient; a sender left
  empty is deleted (EIP-161), as py-evm's state does for the oracle.

Applied after the last transaction:

- EIP-4895 withdrawals (Shanghai on): ``amount`` gwei credited to each address, accounts
  left empty deleted;
- block and uncle rewards before the merge (the fork's ``get_block_reward`` plus
  ``get_nephew_reward`` per uncle to the coinbase, ``get_uncle_reward`` to each uncle's).

Each operation is one function of the block env and a reader of the state before it, giving a
``SystemWrites``; ``pre_block`` / ``post_block`` chain them. The parallel path applies the
writes around the validated block (``coordinator/pipeline.py``); the oracle does the same
operations through py-evm's own state API (``compute_unit/sequential.py``), so the two are
checked against each other. EIP-2935 (Prague's block hashes) is not applied: no fixture here
runs Prague.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth.vm.forks import CancunVM, ParisVM
from eth.vm.forks.cancun.constants import (
    BEACON_ROOTS_ADDRESS,
    BEACON_ROOTS_CONTRACT_CODE,
    HISTORY_BUFFER_LENGTH,
)
from eth.vm.forks.homestead import HomesteadVM
from eth.vm.forks.homestead.headers import dao_drain_list, dao_refund_contract
from eth_hash.auto import keccak
from eth_utils import decode_hex

from chain import BlockEnv
from storage.keys import (
    EMPTY_ACCOUNT,
    SLOT,
    AccountFields,
    StateKey,
    StateReader,
    acct_key,
    slot_key,
)

BEACON_ROOTS_CODE_HASH = keccak(BEACON_ROOTS_CONTRACT_CODE)
DAO_DRAIN = tuple(decode_hex(address) for address in dao_drain_list)
DAO_REFUND = bytes(dao_refund_contract)
GWEI = 10**9


@dataclass
class SystemWrites:
    """A write set: storage of ``wiped`` addresses cleared first, then ``writes``."""

    writes: dict[StateKey, Any] = field(default_factory=dict)
    wiped: set[bytes] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.writes or self.wiped)

    def then(self, later: SystemWrites) -> SystemWrites:
        """This write set followed by ``later``'s, as one."""
        writes = {
            key: value
            for key, value in self.writes.items()
            if not (key[0] == SLOT and key[1] in later.wiped)
        }
        writes.update(later.writes)
        return SystemWrites(writes, self.wiped | later.wiped)


class _Layered:
    """A reader with a write set on top."""

    def __init__(self, base: StateReader, top: SystemWrites) -> None:
        self.base = base
        self.top = top

    def get(self, key: StateKey) -> Any:
        if key in self.top.writes:
            return self.top.writes[key]
        if key[0] == SLOT and key[1] in self.top.wiped:
            return None
        return self.base.get(key)


class OverlayReader:
    """A picklable reader: ``values`` (key to value) over ``base`` (no wipes)."""

    def __init__(self, values: Mapping[StateKey, Any], base: StateReader) -> None:
        self.values = dict(values)
        self.base = base

    def get(self, key: StateKey) -> Any:
        if key in self.values:
            return self.values[key]
        return self.base.get(key)


def _account(reader: StateReader, address: bytes) -> AccountFields:
    return reader.get(acct_key(address)) or EMPTY_ACCOUNT


def _credit(writes: dict[StateKey, Any], reader: StateReader, address: bytes, wei: int) -> None:
    """Add ``wei`` to an account, created if absent (py-evm's ``delta_balance``)."""
    key = acct_key(address)
    account = (writes[key] if key in writes else reader.get(key)) or EMPTY_ACCOUNT
    writes[key] = account._replace(balance=account.balance + wei)


def dao_fork_writes(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """The DAO fork block's drain (py-evm: ``configure_homestead_header``)."""
    vm = env.vm_class
    if not (issubclass(vm, HomesteadVM) and getattr(vm, "support_dao_fork", False)):
        return SystemWrites()
    if vm._dao_fork_block_number != env.header.block_number:
        return SystemWrites()
    writes: dict[StateKey, Any] = {}
    for address in DAO_DRAIN:
        balance = _account(_Layered(reader, SystemWrites(writes)), address).balance
        _credit(writes, reader, DAO_REFUND, balance)
        key = acct_key(address)
        account = (writes[key] if key in writes else reader.get(key)) or EMPTY_ACCOUNT
        writes[key] = account._replace(balance=0)  # created if absent, as py-evm does
    return SystemWrites(writes)


def beacon_root_writes(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """EIP-4788: the parent beacon block root into the beacon roots contract's ring buffer."""
    if not issubclass(env.vm_class, CancunVM):
        return SystemWrites()
    account = reader.get(acct_key(BEACON_ROOTS_ADDRESS))
    if account is None or account.code_hash != BEACON_ROOTS_CODE_HASH:
        return SystemWrites()
    header = env.header
    slot = header.timestamp % HISTORY_BUFFER_LENGTH
    root = int.from_bytes(header.parent_beacon_block_root, "big")
    address = bytes(BEACON_ROOTS_ADDRESS)
    return SystemWrites(
        {
            slot_key(address, slot): header.timestamp,
            slot_key(address, slot + HISTORY_BUFFER_LENGTH): root,
        }
    )


class SystemTransferError(ValueError):
    """A system transfer whose sender does not hold its amount: the block is invalid."""


def transfer_writes(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """The block's system transfers, in order; a sender left empty is deleted."""
    if not env.transfers:
        return SystemWrites()
    writes: dict[StateKey, Any] = {}
    for transfer in env.transfers:
        sender = _account(_Layered(reader, SystemWrites(writes)), transfer.sender)
        if sender.balance < transfer.amount:
            raise SystemTransferError(
                f"system transfer of {transfer.amount} wei from 0x{transfer.sender.hex()}, "
                f"which holds {sender.balance}"
            )
        writes[acct_key(transfer.sender)] = sender._replace(
            balance=sender.balance - transfer.amount
        )
        _credit(writes, reader, transfer.recipient, transfer.amount)
    return _delete_empty(writes, [t.sender for t in env.transfers])


def _delete_empty(writes: dict[StateKey, Any], touched: list[bytes]) -> SystemWrites:
    """``writes`` with the touched accounts they leave empty deleted (EIP-161)."""
    wiped = set()
    for address in dict.fromkeys(touched):
        account = writes[acct_key(address)]
        if account is not None and account.is_empty:
            writes[acct_key(address)] = None
            wiped.add(address)
    return SystemWrites(writes, wiped)


def withdrawal_writes(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """EIP-4895: each withdrawal's gwei credited; touched accounts left empty are deleted."""
    if not env.withdrawals:
        return SystemWrites()
    writes: dict[StateKey, Any] = {}
    for withdrawal in env.withdrawals:
        _credit(writes, reader, bytes(withdrawal.address), withdrawal.amount * GWEI)
    return _delete_empty(writes, [bytes(w.address) for w in env.withdrawals])


def reward_writes(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """Block, nephew and uncle rewards (proof of work only; py-evm ``_assign_block_rewards``)."""
    vm = env.vm_class
    if issubclass(vm, ParisVM) or env.header.block_number == 0:
        return SystemWrites()
    writes: dict[StateKey, Any] = {}
    reward = vm.get_block_reward() + len(env.uncles) * vm.get_nephew_reward()
    _credit(writes, reader, bytes(env.header.coinbase), reward)
    for uncle in env.uncles:
        uncle_reward = vm.get_uncle_reward(env.header.block_number, uncle)
        _credit(writes, reader, bytes(uncle.coinbase), uncle_reward)
    return SystemWrites(writes)


Operation = Callable[[BlockEnv, StateReader], SystemWrites]
PRE_BLOCK: tuple[Operation, ...] = (dao_fork_writes, beacon_root_writes, transfer_writes)
POST_BLOCK: tuple[Operation, ...] = (withdrawal_writes, reward_writes)


def _chain(operations: tuple[Operation, ...], env: BlockEnv, reader: StateReader) -> SystemWrites:
    total = SystemWrites()
    for operation in operations:
        total = total.then(operation(env, _Layered(reader, total)))
    return total


def pre_block(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """What the block changes before its first transaction, over the pre-block state."""
    return _chain(PRE_BLOCK, env, reader)


def post_block(env: BlockEnv, reader: StateReader) -> SystemWrites:
    """What the block changes after its last transaction, over the state the transactions
    left."""
    return _chain(POST_BLOCK, env, reader)


def after(
    base: StateReader, writes: Mapping[StateKey, Any], wiped: frozenset[bytes] | set[bytes]
) -> StateReader:
    """``base`` with a block's write set applied (wipes first), for reading only."""
    return _Layered(base, SystemWrites(dict(writes), set(wiped)))
