"""Block assembly: the header a block is executed under, and the real Ethereum block after.

Before execution, ``next_env`` makes the block's header from its parent with the fork's own
rules (py-evm's ``create_header_from_parent``: number, parent hash, EIP-1559 base fee, blob
gas excess), the node's coinbase, timestamp and gas limit. After execution ``seal`` fills in
what execution decided (state root, transactions root, receipts root, logs bloom, gas used,
blob gas used), which gives the block its hash, and packs what the chain stores
(``storage.chaindata.StoredBlock``) and what the verifier replays (``CommittedBlock``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from eth._utils.address import generate_contract_address
from eth.abc import BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI, VirtualMachineAPI
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE, GAS_PER_BLOB
from eth_hash.auto import keccak

from compute_unit.executor import BlockEnv
from coordinator.verifier import CommittedBlock, bloom_of
from storage.chaindata import StoredBlock, StoredLog
from storage.mpt import ordered_root

MAX_ANCESTORS = 256  # BLOCKHASH reaches this far back


def next_env(
    vm_class: type[VirtualMachineAPI],
    parent: BlockHeaderAPI,
    chain_id: int,
    ancestors: Sequence[bytes],
    timestamp: int,
    gas_limit: int,
    coinbase: bytes,
    extra_data: bytes = b"",
) -> BlockEnv:
    """The env of the block after ``parent``; ``ancestors`` are hashes, newest first,
    the parent's first."""
    fields = {
        "timestamp": max(timestamp, parent.timestamp + 1),
        "gas_limit": gas_limit,
        "coinbase": coinbase,
        "extra_data": extra_data,
        # no beacon chain here: PREVRANDAO is derived from the parent, deterministic
        "mix_hash": keccak(b"evmpp-prevrandao" + parent.hash),
    }
    header = vm_class.create_header_from_parent(parent, **fields)
    return BlockEnv(vm_class, header, chain_id, tuple(ancestors[:MAX_ANCESTORS]))


def effective_gas_price(tx: SignedTransactionAPI, base_fee: int | None) -> int:
    fee_cap = getattr(tx, "max_fee_per_gas", None)
    if fee_cap is None or base_fee is None:
        return tx.gas_price
    return min(fee_cap, base_fee + tx.max_priority_fee_per_gas)


def blob_gas(tx: SignedTransactionAPI) -> int:
    if getattr(tx, "type_id", None) != BLOB_TX_TYPE:
        return 0
    return GAS_PER_BLOB * len(tx.blob_versioned_hashes)


@dataclass(frozen=True)
class SealedBlock:
    header: BlockHeaderAPI
    stored: StoredBlock
    committed: CommittedBlock


def seal(
    env: BlockEnv,
    txs: Sequence[SignedTransactionAPI],
    receipts: Sequence[ReceiptAPI],
    state_root: bytes,
) -> SealedBlock:
    """The block of ``txs`` (the ones it kept, in order) with their receipts."""
    header = env.header
    base_fee = getattr(header, "base_fee_per_gas", None)
    gas_used = receipts[-1].gas_used if receipts else 0
    encoded_txs = tuple(tx.encode() for tx in txs)
    encoded_receipts = tuple(receipt.encode() for receipt in receipts)
    changes = {
        "state_root": state_root,
        "transaction_root": ordered_root(encoded_txs),
        "receipt_root": ordered_root(encoded_receipts),
        "bloom": bloom_of(receipts),
        "gas_used": gas_used,
    }
    if hasattr(header, "blob_gas_used"):
        changes["blob_gas_used"] = sum(blob_gas(tx) for tx in txs)
    header = header.copy(**changes)
    block_hash = header.hash
    logs: list[StoredLog] = []
    previous_gas = 0
    per_tx_gas, tips, created = [], [], []
    for index, (tx, receipt) in enumerate(zip(txs, receipts, strict=True)):
        per_tx_gas.append(receipt.gas_used - previous_gas)
        previous_gas = receipt.gas_used
        price = effective_gas_price(tx, base_fee)
        tips.append(price - (base_fee or 0))
        created.append(generate_contract_address(tx.sender, tx.nonce) if not tx.to else None)
        for log in receipt.logs:
            topics = tuple(topic.to_bytes(32, "big") for topic in log.topics)
            logs.append(StoredLog(log.address, topics, log.data, index, len(logs), tx.hash))
    stored = StoredBlock(
        number=header.block_number,
        hash=block_hash,
        header=rlp.encode(header),
        transactions=encoded_txs,
        senders=tuple(tx.sender for tx in txs),
        receipts=encoded_receipts,
        logs=tuple(logs),
        bloom=header.bloom.to_bytes(256, "big"),
        tx_hashes=tuple(tx.hash for tx in txs),
        gas_used=gas_used,
        base_fee=base_fee,
        timestamp=header.timestamp,
        effective_tips=tuple(tips),
        contract_addresses=tuple(created),
        gas_used_per_tx=tuple(per_tx_gas),
        transfers=env.transfers,
    )
    committed = CommittedBlock(
        header.block_number, stored.header, stored.transactions, env.prev_hashes, env.transfers
    )
    return SealedBlock(header, stored, committed)
