"""py-evm objects to the node's views (``coordinator/node_api.py``): what a client reads.

Headers, transactions and receipts as the chain stored them (``storage/chaindata.py``) are
decoded with their fork's classes and turned into plain data classes with geth's fields:
a transaction's position, a receipt's effective gas price, contract address and logs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from eth.abc import BlockHeaderAPI, ReceiptAPI, SignedTransactionAPI, VirtualMachineAPI

from coordinator.assembly import blob_gas, effective_gas_price
from coordinator.node_api import (
    AccessListEntry,
    HeaderView,
    LogView,
    ReceiptView,
    TxView,
)
from coordinator.verifier import decode_header
from storage.chaindata import StoredBlock, StoredLog


def _rlp_length(payload: int) -> int:
    """Bytes of an RLP item (string or list) whose payload is ``payload`` bytes long (a
    one-byte string under 0x80 is its own encoding; that never happens here)."""
    if payload < 56:
        return 1 + payload
    return 1 + (payload.bit_length() + 7) // 8 + payload


class DecodedBlock:
    """A stored block with its fork's classes, each transaction and receipt decoded once, when
    first asked for (the node keeps recent ones: receipt queries come in bursts per block).
    Decoding twice under a race gives equal objects, so no lock is needed."""

    def __init__(
        self, block: StoredBlock, vm_at: Callable[[int, int], type[VirtualMachineAPI]]
    ) -> None:
        self.block = block
        self.header = decode_header(block.header)
        self.vm_class = vm_at(self.header.block_number, self.header.timestamp)
        self._txs: list[SignedTransactionAPI | None] = [None] * len(block.transactions)
        self._receipts: list[ReceiptAPI | None] = [None] * len(block.receipts)

    def tx(self, index: int) -> SignedTransactionAPI:
        tx = self._txs[index]
        if tx is None:
            builder = self.vm_class.get_transaction_builder()
            tx = self._txs[index] = builder.decode(self.block.transactions[index])
        return tx

    def txs(self) -> list[SignedTransactionAPI]:
        return [self.tx(index) for index in range(len(self._txs))]

    def receipt(self, index: int) -> ReceiptAPI:
        receipt = self._receipts[index]
        if receipt is None:
            builder = self.vm_class.get_receipt_builder()
            receipt = self._receipts[index] = builder.decode(self.block.receipts[index])
        return receipt

    @cached_property
    def size(self) -> int:
        """Bytes of the block's RLP (header, transactions, no uncles, no withdrawals), from
        the stored encodings: a legacy transaction is an RLP list already, a typed one a
        byte string in the body."""
        txs = sum(
            len(raw) if raw[0] >= 0xC0 else _rlp_length(len(raw)) for raw in self.block.transactions
        )
        payload = len(self.block.header) + _rlp_length(txs) + 2  # two empty lists
        return _rlp_length(payload)


def header_view(header: BlockHeaderAPI, size: int) -> HeaderView:
    return HeaderView(
        number=header.block_number,
        hash=header.hash,
        parent_hash=header.parent_hash,
        uncles_hash=header.uncles_hash,
        coinbase=header.coinbase,
        state_root=header.state_root,
        transactions_root=header.transaction_root,
        receipts_root=header.receipt_root,
        logs_bloom=header.bloom.to_bytes(256, "big"),
        difficulty=header.difficulty,
        gas_limit=header.gas_limit,
        gas_used=header.gas_used,
        timestamp=header.timestamp,
        extra_data=header.extra_data,
        mix_hash=header.mix_hash,
        nonce=header.nonce,
        size=size,
        base_fee_per_gas=getattr(header, "base_fee_per_gas", None),
        withdrawals_root=getattr(header, "withdrawals_root", None),
        blob_gas_used=getattr(header, "blob_gas_used", None),
        excess_blob_gas=getattr(header, "excess_blob_gas", None),
        parent_beacon_block_root=getattr(header, "parent_beacon_block_root", None),
        requests_hash=getattr(header, "requests_hash", None),
    )


def tx_view(
    tx: SignedTransactionAPI,
    sender: bytes,
    block: StoredBlock | None = None,
    index: int | None = None,
) -> TxView:
    """A transaction, mined (``block`` and ``index``) or pending."""
    type_id = getattr(tx, "type_id", None) or 0
    fee_cap = getattr(tx, "max_fee_per_gas", None) if type_id >= 2 else None
    access_list = None
    if type_id >= 1:
        access_list = tuple(
            AccessListEntry(address, tuple(slots)) for address, slots in tx.access_list
        )
    if fee_cap is None:
        gas_price = tx.gas_price
    elif block is not None:
        gas_price = effective_gas_price(tx, block.base_fee)
    else:
        gas_price = fee_cap  # geth shows the fee cap for a pending dynamic-fee transaction
    v = tx.y_parity if type_id >= 1 else tx.v
    return TxView(
        hash=tx.hash,
        type=type_id,
        sender=sender,
        nonce=tx.nonce,
        to=tx.to or None,
        value=tx.value,
        gas=tx.gas,
        input=tx.data,
        v=v,
        r=tx.r,
        s=tx.s,
        chain_id=tx.chain_id,
        gas_price=gas_price,
        max_fee_per_gas=fee_cap,
        max_priority_fee_per_gas=tx.max_priority_fee_per_gas if fee_cap is not None else None,
        access_list=access_list,
        max_fee_per_blob_gas=getattr(tx, "max_fee_per_blob_gas", None) if type_id == 3 else None,
        blob_versioned_hashes=tuple(tx.blob_versioned_hashes) if type_id == 3 else None,
        y_parity=tx.y_parity if type_id >= 1 else None,
        block_hash=None if block is None else block.hash,
        block_number=None if block is None else block.number,
        index=index,
    )


def log_view(block: StoredBlock, log: StoredLog) -> LogView:
    return LogView(
        address=log.address,
        topics=log.topics,
        data=log.data,
        block_number=block.number,
        block_hash=block.hash,
        tx_hash=log.tx_hash,
        tx_index=log.tx_index,
        log_index=log.log_index,
    )


def receipt_view(decoded: DecodedBlock, index: int, blob_base_fee: int | None) -> ReceiptView:
    block, tx, receipt = decoded.block, decoded.tx(index), decoded.receipt(index)
    logs = tuple(log_view(block, log) for log in block.logs if log.tx_index == index)
    status = 1 if receipt.state_root == b"\x01" else 0
    blob = blob_gas(tx)
    return ReceiptView(
        tx_hash=tx.hash,
        tx_index=index,
        block_hash=block.hash,
        block_number=block.number,
        sender=block.senders[index],
        to=tx.to or None,
        type=getattr(tx, "type_id", None) or 0,
        status=status,
        cumulative_gas_used=receipt.gas_used,
        gas_used=block.gas_used_per_tx[index],
        effective_gas_price=effective_gas_price(tx, block.base_fee),
        contract_address=block.contract_addresses[index],
        logs=logs,
        logs_bloom=receipt.bloom.to_bytes(256, "big"),
        blob_gas_used=blob or None,
        blob_gas_price=blob_base_fee if blob else None,
    )
