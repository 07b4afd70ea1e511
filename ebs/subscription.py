"""The subscription transaction: how a dApp asks for (and gives up) elastic block space.

A subscription is an ordinary signed transaction to the reserved address ``REGISTRY``
(``0x…e85b``, no code: on the EVM it is a plain value transfer, so sequential execution of
the block gives the same state root). Its calldata is a typed payload:

- ``0x01 ‖ RLP([[contract, deploy_nonce], ...], stake)``: subscribe. The transaction's value
  must equal the stake (it is locked at the registry address) and be at least the minimum.
  Each named contract must be one its signer deployed: ``contract ==
  keccak(rlp([signer, deploy_nonce]))[12:]`` (the CREATE address rule, so no index is
  needed to check it; CREATE2 deployments are not supported) and must hold code.
- ``0x02 ‖ RLP([subscription_id])``: cancel, signed by the subscriber.

A subscription's id is the first 8 bytes of its transaction hash, in hex. It becomes active
in the block that includes it (or waits for a Compute Unit, ``ebs/space.py``'s auction) and
ends in the block that includes its cancellation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import rlp
from eth._utils.address import generate_contract_address
from eth.abc import SignedTransactionAPI
from eth.constants import EMPTY_SHA3
from rlp.codec import encode_raw
from rlp.exceptions import DecodingError

from storage.keys import StateReader, acct_key, int_bytes

REGISTRY = bytes.fromhex("000000000000000000000000000000000000e85b")
SUBSCRIBE, CANCEL = 0x01, 0x02
MIN_STAKE = 10**18
MAX_CONTRACTS = 16


class SubscriptionError(ValueError):
    """A subscription or cancellation that is malformed or not allowed."""


@dataclass(frozen=True)
class Subscribe:
    id: str
    subscriber: bytes
    contracts: tuple[bytes, ...]
    stake: int


@dataclass(frozen=True)
class Cancel:
    id: str  # the subscription cancelled
    subscriber: bytes


def subscription_id(tx_hash: bytes) -> str:
    return tx_hash[:8].hex()


def subscribe_data(contracts: Sequence[tuple[bytes, int]], stake: int) -> bytes:
    """Calldata subscribing to the contracts (address, the signer's nonce that deployed it)."""
    items = [[address, int_bytes(nonce)] for address, nonce in contracts]
    return bytes([SUBSCRIBE]) + encode_raw([items, int_bytes(stake)])


def cancel_data(subscription: str) -> bytes:
    return bytes([CANCEL]) + encode_raw([bytes.fromhex(subscription)])


def is_registry_call(tx: SignedTransactionAPI) -> bool:
    return tx.to == REGISTRY


def parse(tx: SignedTransactionAPI, state: StateReader) -> Subscribe | Cancel:
    """The request a registry transaction makes, checked against the pre-block state."""
    if not is_registry_call(tx):
        raise SubscriptionError("not a registry transaction")
    data = bytes(tx.data)
    if not data:
        raise SubscriptionError("empty payload: expected 0x01 (subscribe) or 0x02 (cancel)")
    try:
        payload = rlp.decode(data[1:])
    except DecodingError as err:
        raise SubscriptionError(f"payload is not RLP: {err}") from err
    if data[0] == CANCEL:
        if (
            not isinstance(payload, list)
            or len(payload) != 1
            or not isinstance(payload[0], bytes)
            or len(payload[0]) != 8
        ):
            raise SubscriptionError("cancel payload must be [8-byte subscription id]")
        return Cancel(payload[0].hex(), tx.sender)
    if data[0] != SUBSCRIBE:
        raise SubscriptionError(f"unknown payload type 0x{data[0]:02x}")
    return _subscribe(tx, payload, state)


def _subscribe(tx: SignedTransactionAPI, payload: object, state: StateReader) -> Subscribe:
    if not isinstance(payload, list) or len(payload) != 2 or not isinstance(payload[0], list):
        raise SubscriptionError("subscribe payload must be [[[contract, nonce], ...], stake]")
    items, stake_raw = payload
    if not items or len(items) > MAX_CONTRACTS:
        raise SubscriptionError(f"name 1 to {MAX_CONTRACTS} contracts")
    stake = int.from_bytes(stake_raw, "big") if isinstance(stake_raw, bytes) else -1
    if stake < MIN_STAKE:
        raise SubscriptionError(f"stake {stake} is under the minimum {MIN_STAKE}")
    if tx.value != stake:
        raise SubscriptionError(f"the transaction's value {tx.value} must equal the stake {stake}")
    contracts = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2 or len(item[0]) != 20:
            raise SubscriptionError("each contract must be [20-byte address, deploy nonce]")
        address, nonce = item[0], int.from_bytes(item[1], "big")
        if generate_contract_address(tx.sender, nonce) != address:
            raise SubscriptionError(
                f"subscriber 0x{tx.sender.hex()} is not the deployer of 0x{address.hex()}"
            )
        account = state.get(acct_key(address))
        if account is None or account.code_hash == EMPTY_SHA3:
            raise SubscriptionError(f"0x{address.hex()} holds no contract")
        contracts.append(address)
    if len(set(contracts)) != len(contracts):
        raise SubscriptionError("a contract is named twice")
    return Subscribe(subscription_id(tx.hash), tx.sender, tuple(contracts), stake)
