"""The block env: everything besides state that a block's transactions execute against.

Built once per block, before execution, from the fork schedule (``chain.spec``), the block's
header and its ancestors' hashes (and, on the node's own chain, the stake refunds due); every
compute unit and the sequential oracle run the block's transactions against the same
``BlockEnv``. ``next_base_fee`` gives the EIP-1559 base fee a new block's header must carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth.abc import BlockHeaderAPI, SignedTransactionAPI, VirtualMachineAPI, WithdrawalAPI
from eth.vm.forks.byzantium import ByzantiumVM
from eth.vm.forks.london.constants import INITIAL_BASE_FEE
from eth.vm.forks.london.headers import calculate_expected_base_fee_per_gas

BLOCKHASH_WINDOW = 256
"""BLOCKHASH sees this many ancestors; older ones read as zero."""


@dataclass(frozen=True)
class SystemTransfer:
    """Ether the chain itself moves at the start of a block, outside any transaction.

    The node's own chain uses it to return elastic block space stakes (``ebs/stakes.py``):
    unlike an EIP-4895 withdrawal, which mints, it moves ether already held by ``sender``.
    """

    sender: bytes
    recipient: bytes
    amount: int  # wei


@dataclass(frozen=True)
class BlockEnv:
    """Everything besides state that a block's transactions execute against."""

    vm_class: type[VirtualMachineAPI]
    header: BlockHeaderAPI
    chain_id: int
    prev_hashes: tuple[bytes, ...] = ()
    uncles: tuple[BlockHeaderAPI, ...] = ()  # their rewards (``compute_unit/system_ops.py``)
    withdrawals: tuple[WithdrawalAPI, ...] = ()  # EIP-4895, applied after the transactions
    transfers: tuple[SystemTransfer, ...] = ()  # applied before the first transaction

    @property
    def intermediate_roots(self) -> bool:
        """Before Byzantium a receipt holds the state root after its transaction (EIP-658)."""
        return not issubclass(self.vm_class, ByzantiumVM)

    def decode(self, raw: bytes) -> SignedTransactionAPI:
        """Decode a transaction as this block's fork encodes it (legacy RLP or typed)."""
        return self.vm_class.get_transaction_builder().decode(raw)


def next_base_fee(parent_header: BlockHeaderAPI) -> int:
    """The base fee (EIP-1559) of the block after ``parent_header``.

    A pre-London parent makes the child London's fork block, whose base fee is the initial
    1 gwei (``INITIAL_BASE_FEE``); otherwise the parent's base fee moves by at most 1/8 toward
    its gas target (half its gas limit).
    """
    if not hasattr(parent_header, "base_fee_per_gas"):
        return INITIAL_BASE_FEE
    return calculate_expected_base_fee_per_gas(parent_header)
