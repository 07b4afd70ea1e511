"""Message calls that change nothing: ``eth_call`` and ``eth_estimateGas`` on py-evm.

A call runs as a transaction from its sender (no signature: py-evm's ``SpoofTransaction``
overrides the sender of a throwaway-signed one) on a ``TransactionRunner``'s overlay over the
state of the block asked for; its writes are dropped with the overlay. As geth does for calls,
the nonce is the sender's own and the gas price may be 0: the block env's base fee is set to 0
for the call, so a call pays nothing and needs no balance for gas.

Gas estimation is geth's: the call must succeed at the cap; then, starting from the gas it
used, a binary search finds the least gas limit at which it still succeeds (a transaction may
need more gas than it uses: the 63/64 rule, refunds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from eth.constants import EMPTY_SHA3
from eth.exceptions import Revert
from eth.vm.spoof import SpoofTransaction
from eth_keys import keys
from eth_utils import ValidationError

from compute_unit.executor import BlockEnv, TransactionRunner
from compute_unit.state import StateReader
from storage.keys import acct_key

_CALL_KEY = keys.PrivateKey(b"\x01" * 32)  # signs throwaway call transactions; never funded


@dataclass(frozen=True)
class Message:
    sender: bytes
    to: bytes  # b"" for a creation
    gas: int
    value: int = 0
    data: bytes = b""
    gas_price: int = 0
    access_list: tuple[tuple[bytes, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class CallOutcome:
    success: bool
    output: bytes
    gas_used: int
    error: str | None = None  # None, "execution reverted", or the EVM's error
    invalid: str | None = None  # the call could not even start (e.g. value over balance)


def _call_env(env: BlockEnv) -> BlockEnv:
    if getattr(env.header, "base_fee_per_gas", None) is None:
        return env
    return BlockEnv(
        env.vm_class, env.header.copy(base_fee_per_gas=0), env.chain_id, env.prev_hashes
    )


def _transaction(env: BlockEnv, message: Message, nonce: int) -> SpoofTransaction:
    builder = env.vm_class.get_transaction_builder()
    fields = {
        "nonce": nonce,
        "gas_price": message.gas_price,
        "gas": message.gas,
        "to": message.to,
        "value": message.value,
        "data": message.data,
    }
    if message.access_list and hasattr(builder, "new_unsigned_access_list_transaction"):
        unsigned = builder.new_unsigned_access_list_transaction(
            chain_id=env.chain_id, access_list=message.access_list, **fields
        )
        signed = unsigned.as_signed_transaction(_CALL_KEY)
    else:
        unsigned = builder.create_unsigned_transaction(**fields)
        signed = unsigned.as_signed_transaction(_CALL_KEY, chain_id=env.chain_id)
    return SpoofTransaction(signed, sender=message.sender)


def call(env: BlockEnv, reader: StateReader, message: Message) -> CallOutcome:
    """Run ``message`` on the state ``reader`` holds; nothing is kept."""
    env = _call_env(env)
    account = reader.get(acct_key(message.sender))
    nonce = account.nonce if account else 0
    runner = TransactionRunner(env, reader)
    tx = _transaction(env, message, nonce)
    try:
        computation = runner.state.apply_transaction(tx)
    except ValidationError as err:
        return CallOutcome(False, b"", 0, None, str(err))
    gas_used = env.vm_class.finalize_gas_used(tx, computation)
    if not computation.is_error:
        return CallOutcome(True, computation.output, gas_used)
    error = computation.error
    if isinstance(error, Revert):
        return CallOutcome(False, computation.output, gas_used, "execution reverted")
    return CallOutcome(False, b"", gas_used, _vm_error(error))


def _vm_error(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if type(error).__name__ in text else f"{type(error).__name__}: {text}"


@dataclass(frozen=True)
class Estimate:
    gas: int | None  # None: the call fails even at the cap (``failure`` says how)
    failure: CallOutcome | None = None


def estimate_gas(env: BlockEnv, reader: StateReader, message: Message, cap: int) -> Estimate:
    """The least gas limit (at most ``cap``) at which ``message`` succeeds."""
    at_cap = call(env, reader, _with_gas(message, cap))
    if not at_cap.success:
        return Estimate(None, at_cap)
    if not message.data and message.to and not _has_code(reader, message.to):
        return Estimate(at_cap.gas_used)  # a plain transfer costs what it used (geth too)
    low, high = at_cap.gas_used - 1, cap
    # geth's shortcut: most calls succeed with a little more than they used
    optimistic = min(cap, (at_cap.gas_used + 2300) * 64 // 63)
    if optimistic < high:
        if call(env, reader, _with_gas(message, optimistic)).success:
            high = optimistic
        else:
            low = optimistic
    while high - low > 1 and (high - low) * 1000 > high * 15:  # within 1.5 %, as geth
        middle = (low + high) // 2
        if call(env, reader, _with_gas(message, middle)).success:
            high = middle
        else:
            low = middle
    return Estimate(high)


def _has_code(reader: StateReader, address: bytes) -> bool:
    account = reader.get(acct_key(address))
    return account is not None and account.code_hash != EMPTY_SHA3


def _with_gas(message: Message, gas: int) -> Message:
    return replace(message, gas=gas)
