"""Admission: checks each candidate transaction before execution; rejects with a reason.

The rules follow geth's transaction pool (``core/txpool/validation.go``:
``ValidateTransaction``, ``ValidateTransactionWithState``) and its state-transition pre-checks
(``core/state_transition.go`` ``preCheck``/``buyGas``, ``IntrinsicGas``), with geth's error
messages, so that a transaction py-evm would refuse mid-block (a high-s signature, gas under
the intrinsic cost, oversized init code, a blobless blob transaction...) is refused here
instead, naming it, and the rest of the block runs.

* ``decode_raw`` decodes as the fork encodes (legacy RLP list, or a typed envelope the fork
  knows). ``from_network=True`` is the RPC/mempool form: a blob transaction must then carry its
  sidecar (EIP-4844 networking form), which is checked (counts, versioned hashes, KZG proofs)
  and dropped; block bodies (``decode_candidate``) carry none.
* ``check_static`` (``check_tx`` with explicit ``AdmissionRules``) runs the stateless checks in
  geth's order and returns the recovered sender.
* ``check_with_state`` checks nonce, EIP-3607 (sender has no code) and funds.
* ``admit`` runs all of them over a block's candidates in one pass; balances are checked
  against the pre-block state minus the sender's earlier admitted worst-case costs, so every
  admitted transaction is valid whatever else the block does. A block must not contain a
  nonce gap, so a nonce above the sender's next one is refused too.

Pure: no Ray, no I/O besides the state reader passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache

import rlp
from coincurve import PublicKey
from eth.abc import SignedTransactionAPI, VirtualMachineAPI
from eth.constants import EMPTY_SHA3
from eth.vm.forks import (
    BerlinVM,
    CancunVM,
    HomesteadVM,
    IstanbulVM,
    LondonVM,
    PragueVM,
    ShanghaiVM,
    SpuriousDragonVM,
)
from eth.vm.forks.cancun.constants import (
    BLOB_BASE_FEE_UPDATE_FRACTION,
    BLOB_TX_TYPE,
    GAS_PER_BLOB,
    MAX_BLOB_GAS_PER_BLOCK,
    MIN_BLOB_BASE_FEE,
)
from eth_hash.auto import keccak
from eth_utils import ValidationError, to_checksum_address
from rlp.codec import encode_raw  # bytes and lists only: no sedes inference

from compute_unit.executor import BlockEnv
from compute_unit.state import StateReader
from storage.keys import acct_key, code_key

UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_INIT_CODE_SIZE = 49_152  # EIP-3860: 2 * MAX_CODE_SIZE
TX_MAX_SIZE = 4 * 32 * 1024  # geth legacypool txMaxSize (4 slots of 32 KiB)
BLOB_TX_MAX_SIZE = 1024 * 1024  # geth blobpool txMaxSize (the network form, with blobs)
PRAGUE_MAX_BLOBS = 9  # EIP-7691: MAX_BLOB_GAS_PER_BLOCK 1,179,648 / GAS_PER_BLOB
BLOB_SIZE = 4096 * 32
DELEGATION_PREFIX = b"\xef\x01\x00"  # EIP-7702
ACCESS_LIST_TX_TYPE, DYNAMIC_FEE_TX_TYPE, SET_CODE_TX_TYPE = 1, 2, 4
_TYPE_FORK = {ACCESS_LIST_TX_TYPE: "Berlin", DYNAMIC_FEE_TX_TYPE: "London", BLOB_TX_TYPE: "Cancun"}
_TYPE_FORK[SET_CODE_TX_TYPE] = "Prague"

UNPROTECTED = "only replay-protected (EIP-155) transactions allowed over RPC"
INVALID_SIG = "invalid sender: invalid transaction v, r, s values"


class TxRejected(ValidationError):
    """A transaction refused by admission; ``str(err)`` is geth's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


@dataclass(frozen=True)
class AdmissionRules:
    """What a transaction is checked against: the chain, its fork and the block's limits.

    ``base_fee`` is None before London, ``blob_base_fee`` None before Cancun."""

    chain_id: int
    vm_class: type[VirtualMachineAPI]
    gas_limit: int
    base_fee: int | None = None
    blob_base_fee: int | None = None
    allow_unprotected: bool = False
    max_size: int = TX_MAX_SIZE
    max_blob_size: int = BLOB_TX_MAX_SIZE
    min_tip: int = 0

    def _is(self, vm: type[VirtualMachineAPI]) -> bool:
        return issubclass(self.vm_class, vm)

    homestead = property(lambda self: self._is(HomesteadVM))
    eip155 = property(lambda self: self._is(SpuriousDragonVM))
    istanbul = property(lambda self: self._is(IstanbulVM))
    eip2718 = property(lambda self: self._is(BerlinVM))
    eip1559 = property(lambda self: self._is(LondonVM))
    shanghai = property(lambda self: self._is(ShanghaiVM))
    cancun = property(lambda self: self._is(CancunVM))
    prague = property(lambda self: self._is(PragueVM))

    @property
    def tx_types(self) -> frozenset[int]:
        """The EIP-2718 types this fork knows (0 is legacy)."""
        enabled = (
            (ACCESS_LIST_TX_TYPE, self.eip2718),
            (DYNAMIC_FEE_TX_TYPE, self.eip1559),
            (BLOB_TX_TYPE, self.cancun),
            (SET_CODE_TX_TYPE, self.prague),
        )
        return frozenset([0] + [t for t, on in enabled if on])

    @property
    def max_blobs(self) -> int:
        return PRAGUE_MAX_BLOBS if self.prague else MAX_BLOB_GAS_PER_BLOCK // GAS_PER_BLOB

    @classmethod
    def from_env(cls, env: BlockEnv, **overrides: object) -> AdmissionRules:
        """The rules for a transaction in the block ``env`` describes."""
        header = env.header
        base_fee = getattr(header, "base_fee_per_gas", None)
        excess = getattr(header, "excess_blob_gas", None)
        blob_base_fee = None
        if issubclass(env.vm_class, CancunVM):
            blob_base_fee = blob_base_fee_for(excess or 0)
        rules = cls(env.chain_id, env.vm_class, header.gas_limit, base_fee, blob_base_fee)
        return replace(rules, **overrides) if overrides else rules


def rules_for(env: BlockEnv, allow_unprotected: bool = False) -> AdmissionRules:
    return AdmissionRules.from_env(env, allow_unprotected=allow_unprotected)


def blob_base_fee_for(excess_blob_gas: int) -> int:
    """EIP-4844 ``fake_exponential(MIN_BLOB_BASE_FEE, excess, UPDATE_FRACTION)``."""
    i, output, accum = 1, 0, MIN_BLOB_BASE_FEE * BLOB_BASE_FEE_UPDATE_FRACTION
    while accum > 0:
        output += accum
        accum = accum * excess_blob_gas // (BLOB_BASE_FEE_UPDATE_FRACTION * i)
        i += 1
    return output // BLOB_BASE_FEE_UPDATE_FRACTION


# -- decoding ---------------------------------------------------------------------------------
def _type_id(tx: SignedTransactionAPI) -> int:
    return getattr(tx, "type_id", None) or 0


def _malformed(err: Exception) -> TxRejected:
    return TxRejected(f"malformed transaction: {type(err).__name__}: {err}")


def _check_type(rules: AdmissionRules, type_id: int) -> None:
    if type_id in rules.tx_types:
        return
    if type_id in _TYPE_FORK:
        raise TxRejected(
            f"transaction type not supported: type {type_id} rejected, "
            f"pool not yet in {_TYPE_FORK[type_id]}"
        )
    raise TxRejected("transaction type not supported")


def _check_widths(tx: SignedTransactionAPI) -> None:
    """Fields geth's RLP decoding refuses: uint64 nonce and gas, 256-bit value and chain id."""
    if tx.nonce > UINT64_MAX:
        raise TxRejected("malformed transaction: rlp: nonce does not fit in 64 bits")
    if tx.gas > UINT64_MAX:
        raise TxRejected("malformed transaction: rlp: gas does not fit in 64 bits")
    if tx.value > UINT256_MAX:
        raise TxRejected("malformed transaction: rlp: value size exceeds 256 bits")
    if _type_id(tx) and tx.chain_id > UINT256_MAX:
        raise TxRejected("malformed transaction: rlp: chain id size exceeds 256 bits")


def decode_raw(
    rules: AdmissionRules, raw: bytes, *, from_network: bool = False
) -> SignedTransactionAPI:
    """Decode ``raw`` as the fork encodes it; a ``TxRejected`` says why not.

    ``from_network``: the RPC/mempool form (size limit; a blob transaction must carry its
    sidecar, which is verified). The block-body form is returned either way."""
    raw = bytes(raw)
    if not raw:
        raise TxRejected("malformed transaction: empty input")
    type_id = raw[0] if raw[0] <= 0x7F else 0
    if raw[0] < 0xC0 and type_id == 0:
        raise TxRejected(
            f"malformed transaction: not an RLP list nor a typed envelope (0x{raw[0]:02x})"
        )
    _check_type(rules, type_id)
    limit = rules.max_blob_size if type_id == BLOB_TX_TYPE else rules.max_size
    if from_network and len(raw) > limit:
        raise TxRejected(f"oversized data: transaction size {len(raw)}, limit {limit}")
    builder = rules.vm_class.get_transaction_builder()
    sidecar = None
    try:
        if type_id == BLOB_TX_TYPE and from_network:
            items = rlp.decode(raw[1:])
            if isinstance(items, list) and items and isinstance(items[0], list):
                if len(items) != 4 or not all(isinstance(i, list) for i in items[1:]):
                    raise ValueError("blob network form must be [tx, blobs, commitments, proofs]")
                sidecar = items[1:]
                raw = raw[:1] + rlp.encode(items[0])
        tx = builder.decode(raw)
    except TxRejected:
        raise
    except Exception as err:  # rlp and py-evm raise many types for garbage input
        raise _malformed(err) from err
    _check_widths(tx)
    if type_id == BLOB_TX_TYPE and from_network:
        if sidecar is None:
            raise TxRejected("missing sidecar in blob transaction")
        _check_sidecar(rules, tx, *sidecar)
    return tx


def decode_candidate(
    env: BlockEnv, candidate: bytes | SignedTransactionAPI
) -> SignedTransactionAPI:
    """A block-body candidate (no sidecar), decoded if it is bytes."""
    if not isinstance(candidate, bytes | bytearray):
        return candidate
    return decode_raw(rules_for(env), bytes(candidate))


@cache
def _trusted_setup() -> object:
    from ckzg import load_trusted_setup
    from eth.precompiles.point_evaluation import TRUSTED_SETUP_PATH

    return load_trusted_setup(TRUSTED_SETUP_PATH, 0)


def versioned_hash(commitment: bytes) -> bytes:
    return b"\x01" + hashlib.sha256(commitment).digest()[1:]


def _check_sidecar(
    rules: AdmissionRules,
    tx: SignedTransactionAPI,
    blobs: list,
    commitments: list,
    proofs: list,
) -> None:
    """geth ``validateBlobTx``: counts, commitment hashes, then the KZG proofs."""
    hashes = list(tx.blob_versioned_hashes)
    if not hashes:
        raise TxRejected("blobless blob transaction")
    if len(hashes) > rules.max_blobs:
        raise TxRejected(
            f"too many blobs in transaction: have {len(hashes)}, permitted {rules.max_blobs}"
        )
    if len(blobs) != len(hashes):
        raise TxRejected(
            f"invalid number of {len(blobs)} blobs compared to {len(hashes)} blob hashes"
        )
    if len(commitments) != len(hashes):
        raise TxRejected(
            f"invalid number of {len(commitments)} blob commitments compared to "
            f"{len(hashes)} blob hashes"
        )
    for i, (vhash, commitment) in enumerate(zip(hashes, commitments, strict=True)):
        if not isinstance(commitment, bytes) or versioned_hash(commitment) != vhash:
            computed = versioned_hash(commitment if isinstance(commitment, bytes) else b"")
            raise TxRejected(
                f"blob {i}: computed hash 0x{computed.hex()} mismatches transaction one "
                f"0x{bytes(vhash).hex()}"
            )
    if len(proofs) != len(hashes):
        raise TxRejected(f"invalid number of {len(proofs)} blob proofs expected {len(hashes)}")
    try:
        from ckzg import verify_blob_kzg_proof
    except ImportError as err:
        raise TxRejected(
            "KZG verification error: ckzg is not installed, blob proofs cannot be verified"
        ) from err
    for i, (blob, commitment, proof) in enumerate(zip(blobs, commitments, proofs, strict=True)):
        try:
            if not isinstance(blob, bytes) or len(blob) != BLOB_SIZE:
                raise ValueError(f"blob of {len(blob)} bytes, want {BLOB_SIZE}")
            ok = verify_blob_kzg_proof(blob, commitment, proof, _trusted_setup())
        except Exception as err:  # ckzg raises on malformed points
            raise TxRejected(f"KZG verification error: invalid blob proof: {err}") from err
        if not ok:
            raise TxRejected(f"KZG verification error: invalid blob proof: blob {i}")


# -- stateless checks -------------------------------------------------------------------------
def _fee_cap(tx: SignedTransactionAPI) -> int:
    return tx.gas_price if _type_id(tx) in (0, ACCESS_LIST_TX_TYPE) else tx.max_fee_per_gas


def _tip_cap(tx: SignedTransactionAPI) -> int:
    if _type_id(tx) in (0, ACCESS_LIST_TX_TYPE):
        return tx.gas_price
    return tx.max_priority_fee_per_gas


def max_cost(tx: SignedTransactionAPI) -> int:
    """geth ``tx.Cost()``: gas * fee cap + value (+ blob gas * blob fee cap)."""
    blob_cost = 0
    if _type_id(tx) == BLOB_TX_TYPE:
        blob_cost = tx.max_fee_per_blob_gas * GAS_PER_BLOB * len(tx.blob_versioned_hashes)
    return tx.gas * _fee_cap(tx) + tx.value + blob_cost


def intrinsic_gas(rules: AdmissionRules, tx: SignedTransactionAPI) -> int:
    """geth ``core.IntrinsicGas`` under the fork's rules."""
    creation = not tx.to
    gas = 53_000 if creation and rules.homestead else 21_000
    data = bytes(tx.data)
    zeros = data.count(0)
    gas += zeros * 4 + (len(data) - zeros) * (16 if rules.istanbul else 68)
    if creation and rules.shanghai:
        gas += 2 * ((len(data) + 31) // 32)
    if _type_id(tx):
        for entry in tx.access_list:
            gas += 2_400 + 1_900 * len(entry[1])
    if _type_id(tx) == SET_CODE_TX_TYPE:
        gas += 25_000 * len(tx.authorization_list)
    return gas


def floor_data_gas(tx: SignedTransactionAPI) -> int:
    """EIP-7623: 21000 + 10 per token (a zero byte is one token, another byte four)."""
    data = bytes(tx.data)
    zeros = data.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(data) - zeros))


def signing_hash(raw: bytes, chain_id: int | None) -> bytes:
    """The hash a transaction's sender signed, from its encoding: the same fields without
    the signature (typed: ``type ‖ rlp(fields[:-3])``; legacy: ``rlp(fields[:6])``, with
    ``chain_id, 0, 0`` appended under EIP-155). It is what py-evm's
    ``get_message_for_signing`` hashes, without building an unsigned transaction object."""
    if raw[0] <= 0x7F:
        fields = rlp.decode(raw[1:])
        return keccak(raw[:1] + encode_raw(fields[:-3]))
    fields = rlp.decode(raw)
    unsigned = fields[:6]
    if chain_id is not None:
        unsigned += [chain_id.to_bytes((chain_id.bit_length() + 7) // 8, "big"), b"", b""]
    return keccak(encode_raw(unsigned))


def _recover_sender(
    rules: AdmissionRules, tx: SignedTransactionAPI, raw: bytes | None = None
) -> bytes:
    """geth ``types.Sender`` with the fork's signer: v/r/s ranges, chain id, recovery."""
    r, s = tx.r, tx.s
    if _type_id(tx):
        parity = tx.y_parity
        if tx.chain_id != rules.chain_id:
            raise TxRejected(
                "invalid sender: invalid chain id for signer: "
                f"have {tx.chain_id} want {rules.chain_id}"
            )
    else:
        v = tx.v
        if v in (27, 28):
            if not rules.allow_unprotected:
                raise TxRejected(UNPROTECTED)
            parity = v - 27
        elif v >= 35 and rules.eip155:
            chain_id = (v - 35) // 2
            if chain_id != rules.chain_id:
                raise TxRejected(
                    "invalid sender: invalid chain id for signer: "
                    f"have {chain_id} want {rules.chain_id}"
                )
            parity = (v - 35) % 2
        else:
            raise TxRejected(INVALID_SIG)
    if parity not in (0, 1) or not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise TxRejected(INVALID_SIG)
    if rules.homestead and s > SECP256K1_N // 2:  # EIP-2
        raise TxRejected(INVALID_SIG)
    cached = tx.__dict__.get("sender")  # py-evm's cached_property: recovered already
    if cached is not None:
        return cached
    try:
        if raw is None:
            message = keccak(tx.get_message_for_signing())
        else:
            legacy_chain = None if _type_id(tx) or tx.v in (27, 28) else (tx.v - 35) // 2
            message = signing_hash(raw, legacy_chain)
        # libsecp256k1 straight (eth-keys' coincurve backend, without its object layers)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([parity])
        point = PublicKey.from_signature_and_message(signature, message, hasher=None)
    except Exception as err:  # an unrecoverable signature
        raise TxRejected(f"invalid sender: {type(err).__name__}: {err}") from err
    sender = keccak(point.format(compressed=False)[1:])[12:]
    tx.__dict__["sender"] = sender  # recovered once per transaction object (py-evm's cache)
    return sender


class _Address:
    """A sender as geth prints it (EIP-55), formatted only if a message needs it."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __str__(self) -> str:
        return to_checksum_address(self.raw)


def check_tx(rules: AdmissionRules, tx: SignedTransactionAPI, raw: bytes | None = None) -> bytes:
    """The stateless checks of geth's ``ValidateTransaction`` in its order; the sender.

    ``raw``: the transaction's own encoding, if the caller has it (intake): its size and
    signing hash are then read off it instead of re-encoding the transaction."""
    type_id = _type_id(tx)
    _check_type(rules, type_id)
    _check_widths(tx)
    size = len(raw) if raw is not None else len(tx.encode())
    if size > rules.max_size:
        raise TxRejected(f"oversized data: transaction size {size}, limit {rules.max_size}")
    if not tx.to and rules.shanghai and len(tx.data) > MAX_INIT_CODE_SIZE:
        raise TxRejected(
            f"max initcode size exceeded: code size {len(tx.data)}, limit {MAX_INIT_CODE_SIZE}"
        )
    if tx.gas > rules.gas_limit:
        raise TxRejected("exceeds block gas limit")
    fee_cap, tip_cap = _fee_cap(tx), _tip_cap(tx)
    if fee_cap > UINT256_MAX:
        raise TxRejected("max fee per gas higher than 2^256-1")
    if tip_cap > UINT256_MAX:
        raise TxRejected("max priority fee per gas higher than 2^256-1")
    if fee_cap < tip_cap:
        raise TxRejected("max priority fee per gas higher than max fee per gas")
    sender = _recover_sender(rules, tx, raw)
    address = _Address(sender)
    if tx.nonce == UINT64_MAX:  # EIP-2681
        raise TxRejected("nonce has max value")
    if tx.gas * fee_cap > UINT256_MAX:  # geth t8ntool's check; a pool refuses it on funds
        raise TxRejected("gas * maxFeePerGas exceeds 256 bits")
    needed = intrinsic_gas(rules, tx)
    if tx.gas < needed:
        raise TxRejected(f"intrinsic gas too low: gas {tx.gas}, minimum needed {needed}")
    if rules.prague and tx.gas < (floor := floor_data_gas(tx)):
        raise TxRejected(
            f"insufficient gas for floor data gas cost: gas {tx.gas}, minimum needed {floor}"
        )
    if tip_cap < rules.min_tip:
        raise TxRejected(
            f"transaction underpriced: gas tip cap {tip_cap}, minimum needed {rules.min_tip}"
        )
    if rules.base_fee is not None and fee_cap < rules.base_fee:
        raise TxRejected(
            f"max fee per gas less than block base fee: address {address}, "
            f"maxFeePerGas: {fee_cap}, baseFee: {rules.base_fee}"
        )
    if type_id == BLOB_TX_TYPE:
        _check_blob_fields(rules, tx, address)
    if type_id == SET_CODE_TX_TYPE and not tx.authorization_list:
        raise TxRejected("set code tx must have at least one authorization tuple")
    return sender


def _check_blob_fields(rules: AdmissionRules, tx: SignedTransactionAPI, address: object) -> None:
    """The blob rules of geth's ``validateBlobTx`` and ``preCheck`` that need no sidecar."""
    if not tx.to:
        raise TxRejected("blob transaction of type create")
    hashes = tx.blob_versioned_hashes
    if not hashes:
        raise TxRejected("blobless blob transaction")
    if len(hashes) > rules.max_blobs:
        raise TxRejected(
            f"too many blobs in transaction: have {len(hashes)}, permitted {rules.max_blobs}"
        )
    for i, vhash in enumerate(hashes):
        if len(vhash) != 32 or vhash[:1] != b"\x01":
            raise TxRejected(f"blob {i} has invalid hash version")
    blob_fee = rules.blob_base_fee if rules.blob_base_fee is not None else MIN_BLOB_BASE_FEE
    if tx.max_fee_per_blob_gas < blob_fee:
        raise TxRejected(
            f"max fee per blob gas less than block blob gas fee: address {address} "
            f"blobGasFeeCap: {tx.max_fee_per_blob_gas}, blobBaseFee: {blob_fee}"
        )


def check_static(
    env: BlockEnv,
    tx: SignedTransactionAPI,
    *,
    allow_unprotected: bool = False,
    rules: AdmissionRules | None = None,
) -> bytes:
    """Checks needing no state, against the block ``env`` (or ``rules``); the sender."""
    return check_tx(rules or rules_for(env, allow_unprotected), tx)


# -- checks against state ---------------------------------------------------------------------
def check_with_state(
    tx: SignedTransactionAPI,
    sender: bytes,
    nonce: int,
    balance: int,
    pending_cost: int = 0,
    *,
    code_hash: bytes = EMPTY_SHA3,
    code: bytes | None = None,
    allow_gap: bool = False,
    pool: bool = False,
) -> int:
    """geth ``preCheck``/``buyGas`` against the sender's next ``nonce`` and ``balance`` less
    ``pending_cost`` (its earlier admitted transactions); returns the tx's worst-case cost.

    A sender with code is refused (EIP-3607) unless the code is an EIP-7702 delegation
    (pass ``code`` to allow that). ``allow_gap``: a nonce above ``nonce`` is fine (a pool).
    ``pool``: word refusals as geth's txpool does (``ValidateTransactionWithState``, what
    ``eth_sendRawTransaction`` answers) rather than as its state transition does."""
    address = _Address(sender)
    if tx.nonce < nonce:
        if pool:
            raise TxRejected(f"nonce too low: next nonce {nonce}, tx nonce {tx.nonce}")
        raise TxRejected(f"nonce too low: address {address}, tx: {tx.nonce} state: {nonce}")
    if tx.nonce > nonce and not allow_gap:
        raise TxRejected(
            f"nonce too high: address {address}, tx: {tx.nonce} state: {nonce} "
            "(a block must not contain a nonce gap)"
        )
    delegated = code is not None and len(code) == 23 and code.startswith(DELEGATION_PREFIX)
    if code_hash not in (EMPTY_SHA3, b"\x00" * 32) and not delegated:
        raise TxRejected(f"sender not an eoa: address {address}, codehash: 0x{code_hash.hex()}")
    cost = max_cost(tx)
    have = balance - pending_cost
    if cost > have and pool:
        raise TxRejected(
            f"insufficient funds for gas * price + value: balance {have}, tx cost {cost}, "
            f"overshot {cost - have}"
        )
    if cost > have:
        raise TxRejected(
            f"insufficient funds for gas * price + value: address {address} have {have} want {cost}"
        )
    return cost


def admit(
    env: BlockEnv,
    state: StateReader,
    candidates: Sequence[bytes | SignedTransactionAPI],
    allow_unprotected: bool = False,
) -> Admission:
    """Split candidates (block-body encoded or decoded) into admitted ones and rejections."""
    rules = rules_for(env, allow_unprotected)
    result = Admission()
    next_nonce: dict[bytes, int] = {}
    balance: dict[bytes, int] = {}
    spent: dict[bytes, int] = {}
    codes: dict[bytes, tuple[bytes, bytes | None]] = {}
    for index, candidate in enumerate(candidates):
        tx_hash = "?"
        try:
            tx = decode_candidate(env, candidate)
            tx_hash = "0x" + tx.hash.hex()
            sender = check_tx(rules, tx)
            if sender not in next_nonce:
                account = state.get(acct_key(sender))
                next_nonce[sender] = account.nonce if account else 0
                balance[sender] = account.balance if account else 0
                spent[sender] = 0
                code_hash = account.code_hash if account else EMPTY_SHA3
                code = None
                if rules.prague and code_hash != EMPTY_SHA3:
                    code = state.get(code_key(code_hash))
                codes[sender] = (code_hash, code)
            code_hash, code = codes[sender]
            cost = check_with_state(
                tx,
                sender,
                next_nonce[sender],
                balance[sender],
                spent[sender],
                code_hash=code_hash,
                code=code,
            )
        except ValidationError as err:
            result.rejected.append(Rejection(index, tx_hash, str(err)))
            continue
        next_nonce[sender] += 1
        spent[sender] += cost
        result.accepted.append(tx)
    return result
