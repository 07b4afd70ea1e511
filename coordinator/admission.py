"""Admission: checks each candidate transaction before execution; rejects with a reason.

Malformed encodings, bad signatures, a wrong chain id, a fee cap under the base fee, gas over
the block limit, a nonce that is not the sender's next one, or a balance that cannot cover the
worst-case cost are rejected here, naming the transaction, and the rest of the block runs.
Balances are checked against the pre-block state minus the sender's earlier admitted costs,
so every admitted transaction is valid whatever else the block does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from eth.abc import SignedTransactionAPI
from eth.vm.forks.cancun.constants import BLOB_TX_TYPE, GAS_PER_BLOB
from eth_utils import ValidationError

from compute_unit.executor import BlockEnv
from compute_unit.state import StateReader
from storage.keys import acct_key


@dataclass(frozen=True)
class Rejection:
    index: int
    tx_hash: str
    reason: str

    def __str__(self) -> str:
        return f"transaction {self.index} ({self.tx_hash}) rejected: {self.reason}"


@dataclass
class Admission:
    accepted: list[SignedTransactionAPI] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def _max_cost(tx: SignedTransactionAPI) -> int:
    fee_cap = getattr(tx, "max_fee_per_gas", None) or tx.gas_price
    blob_cost = 0
    if getattr(tx, "type_id", None) == BLOB_TX_TYPE:
        blob_cost = tx.max_fee_per_blob_gas * GAS_PER_BLOB * len(tx.blob_versioned_hashes)
    return tx.gas * fee_cap + tx.value + blob_cost


def decode_candidate(
    env: BlockEnv, candidate: bytes | SignedTransactionAPI
) -> SignedTransactionAPI:
    if not isinstance(candidate, bytes | bytearray):
        return candidate
    try:
        return env.decode(bytes(candidate))
    except Exception as err:  # rlp and py-evm raise many types for garbage input
        raise ValidationError(f"malformed transaction: {type(err).__name__}: {err}") from err


def check_static(env: BlockEnv, tx: SignedTransactionAPI) -> bytes:
    """Checks needing no state; returns the recovered sender."""
    try:
        tx.validate()
        tx.check_signature_validity()
        sender = tx.sender
    except ValidationError as err:
        raise ValidationError(f"bad signature or fields: {err}") from err
    except Exception as err:  # key recovery raises BadSignature and friends
        raise ValidationError(f"bad signature: {type(err).__name__}: {err}") from err
    if tx.chain_id is not None and tx.chain_id != env.chain_id:
        raise ValidationError(f"wrong chain id {tx.chain_id}, this chain is {env.chain_id}")
    base_fee = getattr(env.header, "base_fee_per_gas", None)
    fee_cap = getattr(tx, "max_fee_per_gas", None) or tx.gas_price
    if base_fee is not None and fee_cap < base_fee:
        raise ValidationError(f"fee cap {fee_cap} below the block's base fee {base_fee}")
    if tx.gas > env.header.gas_limit:
        raise ValidationError(f"gas {tx.gas} over the block gas limit {env.header.gas_limit}")
    return sender


def admit(
    env: BlockEnv,
    state: StateReader,
    candidates: Sequence[bytes | SignedTransactionAPI],
) -> Admission:
    """Split candidates (encoded or decoded) into admitted transactions and rejections."""
    result = Admission()
    next_nonce: dict[bytes, int] = {}
    spendable: dict[bytes, int] = {}
    for index, candidate in enumerate(candidates):
        tx_hash = "?"
        try:
            tx = decode_candidate(env, candidate)
            tx_hash = "0x" + tx.hash.hex()
            sender = check_static(env, tx)
            if sender not in next_nonce:
                account = state.get(acct_key(sender))
                next_nonce[sender] = account.nonce if account else 0
                spendable[sender] = account.balance if account else 0
            if tx.nonce != next_nonce[sender]:
                kind = "nonce too low" if tx.nonce < next_nonce[sender] else "nonce gap"
                raise ValidationError(
                    f"{kind}: sender 0x{sender.hex()} expects nonce {next_nonce[sender]}, "
                    f"got {tx.nonce}"
                )
            cost = _max_cost(tx)
            if cost > spendable[sender]:
                raise ValidationError(
                    f"insufficient balance: sender 0x{sender.hex()} can spend "
                    f"{spendable[sender]} wei, the transaction may cost {cost}"
                )
        except ValidationError as err:
            result.rejected.append(Rejection(index, tx_hash, str(err)))
            continue
        next_nonce[sender] += 1
        spendable[sender] -= cost
        result.accepted.append(tx)
    return result
