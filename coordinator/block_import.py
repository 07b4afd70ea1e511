"""Imports a recorded block folder: header, transactions, pre-state, ancestor hashes.

A folder holds ``block.json`` (``eth_getBlockByNumber(n, true)``), ``pre_state.json`` (every
account the block touches, before the block) and optionally ``block_hashes.json`` (ancestor
hashes for BLOCKHASH); ``../shared/mainnet-blocks/README.md`` documents the format. The folder
becomes what the pipeline runs: a ``BlockEnv`` for the fork the chain's spec puts that block
in, the signed transactions of every type, and the pre-state as state-key items.

The chain is the caller's (``evmpp replay --chain``, mainnet by default) unless a
``chain.json`` says otherwise: one inside the block folder, else one in the directory holding
it (one file for a whole recorded chain). The nearest wins over the caller's, since the file
travels with the blocks it describes. It holds a geth genesis or ``config`` object, or
``{"chain": NAME}`` naming a built-in chain (``chain/networks.py``).

The import is checked, not trusted: the header must fit its fork (``chain/fork_fit.py``) and
rebuild to the block's hash, each rebuilt transaction to its hash, and each contract's code to
its code hash, so execution runs on exactly the recorded block under its own fork's rules.
Anything missing or malformed raises ``BlockFolderError`` naming the file and the field; a
header that does not fit raises ``HeaderForkError`` ("block N (hash …) does not fit Fork: …").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from eth.abc import SignedTransactionAPI, VirtualMachineAPI
from eth_hash.auto import keccak
from eth_utils import to_canonical_address
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from chain.fork_fit import FORK_FIELDS, ForkMismatch, HeaderShape, fork_for_header, fork_name
from chain.networks import MAINNET, spec_from_json
from chain.spec import ChainSpec, ChainSpecError
from compute_unit.executor import BlockEnv
from storage.keys import EMPTY_ACCOUNT, AccountFields, StateKey, acct_key, code_key, slot_key

MAX_ANCESTORS = 256  # BLOCKHASH reaches this far back


class BlockFolderError(ValueError):
    """A block folder that cannot be imported; the message names the file and the field."""

    def __init__(self, path: Path, field: str, problem: str) -> None:
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")
        self.path = path
        self.field = field


class HeaderForkError(BlockFolderError):
    """A recorded header that does not fit the fork its number and time fall in."""

    def __init__(self, path: Path, block: BlockJson, fork: str, problem: str) -> None:
        super().__init__(
            path,
            "",
            f"block {block.number} (hash 0x{block.hash.hex()}) does not fit {fork}: " + problem,
        )
        self.fork = fork


def _hex_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a quantity, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return int(value, 16) if len(value) > 2 else 0
    raise ValueError(f"expected a 0x-prefixed hex quantity, got {value!r}")


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        return bytes.fromhex(value[2:])
    raise ValueError(f"expected 0x-prefixed hex data, got {str(value)[:40]!r}")


def _fixed_bytes(size: int) -> Callable[[Any], bytes]:
    def parse(value: Any) -> bytes:
        data = _hex_bytes(value)
        if len(data) != size:
            raise ValueError(f"expected {size} bytes, got {len(data)}")
        return data

    return parse


Quantity = Annotated[int, BeforeValidator(_hex_int)]
Data = Annotated[bytes, BeforeValidator(_hex_bytes)]
Address = Annotated[bytes, BeforeValidator(_fixed_bytes(20))]
Hash32 = Annotated[bytes, BeforeValidator(_fixed_bytes(32))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AccessListEntry(_Model):
    address: Address
    storageKeys: list[Quantity] = []


class AuthorizationEntry(_Model):
    chainId: Quantity
    address: Address
    nonce: Quantity
    yParity: Quantity
    r: Quantity
    s: Quantity


class TransactionJson(_Model):
    hash: Hash32
    type: Quantity = 0
    nonce: Quantity
    to: Address | None = None
    value: Quantity
    gas: Quantity
    input: Data
    r: Quantity
    s: Quantity
    v: Quantity | None = None
    yParity: Quantity | None = None
    chainId: Quantity | None = None
    gasPrice: Quantity | None = None
    maxFeePerGas: Quantity | None = None
    maxPriorityFeePerGas: Quantity | None = None
    maxFeePerBlobGas: Quantity | None = None
    accessList: list[AccessListEntry] = []
    blobVersionedHashes: list[Hash32] = []
    authorizationList: list[AuthorizationEntry] = []


class BlockJson(_Model):
    hash: Hash32
    number: Quantity
    parentHash: Hash32
    sha3Uncles: Hash32
    miner: Address
    stateRoot: Hash32
    transactionsRoot: Hash32
    receiptsRoot: Hash32
    logsBloom: Data
    difficulty: Quantity
    gasLimit: Quantity
    gasUsed: Quantity
    timestamp: Quantity
    extraData: Data
    mixHash: Hash32
    nonce: Data
    baseFeePerGas: Quantity | None = None
    withdrawalsRoot: Hash32 | None = None
    blobGasUsed: Quantity | None = None
    excessBlobGas: Quantity | None = None
    parentBeaconBlockRoot: Hash32 | None = None
    requestsHash: Hash32 | None = None
    transactions: list[TransactionJson]


class BasicJson(_Model):
    balance: Quantity
    nonce: Quantity


class CodeJson(_Model):
    bytecode: Data
    original_len: int = Field(ge=0)


class AccountJson(_Model):
    basic: BasicJson
    code: CodeJson | None = None
    code_hash: Hash32 | None = None
    storage: dict[str, Quantity] = {}


PreStateJson = dict[str, AccountJson]

# JSON-RPC header field -> py-evm header field; a fork's header class takes the ones it has.
HEADER_FIELDS = {
    "parentHash": "parent_hash",
    "sha3Uncles": "uncles_hash",
    "miner": "coinbase",
    "stateRoot": "state_root",
    "transactionsRoot": "transaction_root",
    "receiptsRoot": "receipt_root",
    "logsBloom": "bloom",
    "difficulty": "difficulty",
    "number": "block_number",
    "gasLimit": "gas_limit",
    "gasUsed": "gas_used",
    "timestamp": "timestamp",
    "extraData": "extra_data",
    "mixHash": "mix_hash",
    "nonce": "nonce",
    "baseFeePerGas": "base_fee_per_gas",
    "withdrawalsRoot": "withdrawals_root",
    "blobGasUsed": "blob_gas_used",
    "excessBlobGas": "excess_blob_gas",
    "parentBeaconBlockRoot": "parent_beacon_block_root",
    "requestsHash": "requests_hash",
}


@dataclass(frozen=True)
class ExpectedHeader:
    """The recorded header values execution is checked against."""

    gas_used: int
    bloom: int
    receipts_root: bytes


@dataclass(frozen=True)
class ImportedBlock:
    """A block folder ready to run: environment, transactions, pre-state, expectations."""

    path: Path
    env: BlockEnv
    transactions: list[SignedTransactionAPI]
    pre_state: list[tuple[StateKey, Any]]
    expected: ExpectedHeader

    @property
    def number(self) -> int:
        return self.env.header.block_number

    @property
    def fork(self) -> str:
        return fork_name(self.env.vm_class)

    @property
    def receipts_root_checkable(self) -> bool:
        """Receipts carry a status, not a state root, from Byzantium on (EIP-658)."""
        return not self.env.intermediate_roots


CHAIN_FILE = "chain.json"


def folder_chain_spec(folder: Path, default: ChainSpec = MAINNET) -> ChainSpec:
    """The chain of a block folder: its own ``chain.json``, else its parent's, else
    ``default`` (see the module docstring)."""
    for path in (folder / CHAIN_FILE, folder.parent / CHAIN_FILE):
        if path.is_file():
            try:
                return spec_from_json(_read_json(path), source=str(path))
            except ChainSpecError as err:
                raise BlockFolderError(path, "", str(err).removeprefix(f"{path}: ")) from err
    return default


def _fork_of(path: Path, spec: ChainSpec, block: BlockJson) -> type[VirtualMachineAPI]:
    shape = HeaderShape(
        number=block.number,
        timestamp=block.timestamp,
        difficulty=block.difficulty,
        extra_data=block.extraData,
        present=frozenset(name for name in FORK_FIELDS if getattr(block, name) is not None),
    )
    try:
        return fork_for_header(spec, shape)
    except ForkMismatch as err:
        raise HeaderForkError(path, block, err.fork, err.problem) from err


def _read_json(path: Path, required: bool = True) -> Any:
    if not path.exists():
        if required:
            raise BlockFolderError(path, "", "file is missing")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BlockFolderError(path, f"line {err.lineno}", f"not valid JSON: {err.msg}") from err


def _parse(path: Path, model: Any, data: Any) -> Any:
    """Validate JSON against a model; the first error names its field path."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise BlockFolderError(path, field, first["msg"] + more) from None


def _build_header(path: Path, vm_class: type[VirtualMachineAPI], block: BlockJson) -> Any:
    header_class = vm_class.get_block_class()._meta.fields[0][1]
    wanted = {name for name, _ in header_class._meta.fields}
    values: dict[str, Any] = {}
    for json_name, field in HEADER_FIELDS.items():
        if field not in wanted:
            continue
        value = getattr(block, json_name)
        if value is None:
            raise BlockFolderError(path, json_name, f"required by the {fork_name(vm_class)} header")
        values[field] = int.from_bytes(value, "big") if field == "bloom" else value
    header = header_class(**values)
    if header.hash != block.hash:
        raise HeaderForkError(
            path,
            block,
            fork_name(vm_class),
            f"the header rebuilt from its fields hashes to 0x{header.hash.hex()}: a header "
            "field is wrong, or the block is on another chain (--chain, chain.json)",
        )
    return header


def _access_list(tx: TransactionJson) -> list[tuple[bytes, list[int]]]:
    return [(entry.address, list(entry.storageKeys)) for entry in tx.accessList]


def _y_parity(tx: TransactionJson) -> int:
    if tx.yParity is not None:
        return tx.yParity
    if tx.v is None:
        raise ValueError("typed transaction without yParity or v")
    return tx.v


def _build_transaction(builder: Any, tx: TransactionJson) -> SignedTransactionAPI:
    to = tx.to or b""
    common = {"nonce": tx.nonce, "gas": tx.gas, "to": to, "value": tx.value, "data": tx.input}
    if tx.type == 0:
        if tx.v is None or tx.gasPrice is None:
            raise ValueError("legacy transaction needs v and gasPrice")
        return builder.new_transaction(gas_price=tx.gasPrice, v=tx.v, r=tx.r, s=tx.s, **common)
    signature = {"y_parity": _y_parity(tx), "r": tx.r, "s": tx.s}
    typed = {"chain_id": tx.chainId, "access_list": _access_list(tx), **common, **signature}
    if tx.type == 1:
        return builder.new_access_list_transaction(gas_price=tx.gasPrice, **typed)
    fees = {
        "max_fee_per_gas": tx.maxFeePerGas,
        "max_priority_fee_per_gas": tx.maxPriorityFeePerGas,
    }
    if tx.type == 2:
        return builder.new_dynamic_fee_transaction(**fees, **typed)
    if tx.type == 3:
        return builder.new_blob_transaction(
            max_fee_per_blob_gas=tx.maxFeePerBlobGas,
            blob_versioned_hashes=list(tx.blobVersionedHashes),
            **fees,
            **typed,
        )
    if tx.type == 4:
        authorizations = [
            {
                "chain_id": a.chainId,
                "address": a.address,
                "nonce": a.nonce,
                "y_parity": a.yParity,
                "r": a.r,
                "s": a.s,
            }
            for a in tx.authorizationList
        ]
        return builder.new_set_code_transaction(authorization_list=authorizations, **fees, **typed)
    raise ValueError(f"unknown transaction type 0x{tx.type:x}")


def _build_transactions(
    path: Path, vm_class: type[VirtualMachineAPI], block: BlockJson
) -> list[SignedTransactionAPI]:
    builder = vm_class.get_transaction_builder()
    built = []
    for index, tx_json in enumerate(block.transactions):
        field = f"transactions.{index}"
        try:
            tx = _build_transaction(builder, tx_json)
        except (AttributeError, TypeError) as err:
            problem = f"type 0x{tx_json.type:x} is not valid in {fork_name(vm_class)}: {err}"
            raise BlockFolderError(path, field, problem) from err
        except ValueError as err:
            raise BlockFolderError(path, field, str(err)) from err
        if tx.hash != tx_json.hash:
            raise BlockFolderError(
                path,
                f"{field}.hash",
                f"the transaction rebuilt from its fields hashes to 0x{tx.hash.hex()}, "
                f"not 0x{tx_json.hash.hex()}",
            )
        built.append(tx)
    return built


def _pre_state_items(path: Path, accounts: PreStateJson) -> list[tuple[StateKey, Any]]:
    items: list[tuple[StateKey, Any]] = []
    for address_hex, account in accounts.items():
        try:
            address = to_canonical_address(address_hex)
        except ValueError as err:
            raise BlockFolderError(path, address_hex, "not a 20-byte hex address") from err
        code_hash = EMPTY_ACCOUNT.code_hash
        if account.code is not None:
            code = account.code.bytecode[: account.code.original_len]
            if len(code) != account.code.original_len:
                problem = f"{len(account.code.bytecode)} bytes of bytecode, fewer than it says"
                raise BlockFolderError(path, f"{address_hex}.code.original_len", problem)
            code_hash = keccak(code)
            if account.code_hash is not None and account.code_hash != code_hash:
                problem = f"the code hashes to 0x{code_hash.hex()}"
                raise BlockFolderError(path, f"{address_hex}.code_hash", problem)
            items.append((code_key(code_hash), code))
        elif account.code_hash not in (None, code_hash):
            raise BlockFolderError(path, f"{address_hex}.code", "missing for a code hash")
        fields = AccountFields(account.basic.nonce, account.basic.balance, code_hash)
        items.append((acct_key(address), fields))
        for slot_hex, value in account.storage.items():
            try:
                slot = _hex_int(slot_hex)
            except ValueError as err:
                raise BlockFolderError(path, f"{address_hex}.storage", str(err)) from err
            if value:
                items.append((slot_key(address, slot), value))
    return items


def _ancestor_hashes(path: Path, block: BlockJson, recorded: Any) -> tuple[bytes, ...]:
    """Hashes of blocks n-1, n-2, ... as py-evm's execution context wants them.

    The parent's comes from the header; older ones from ``block_hashes.json`` where recorded.
    A gap (never recorded, so never read by the block) is left as the empty hash.
    """
    by_number = {block.number - 1: block.parentHash}
    parsed = _parse(path, dict[str, Hash32], recorded or {})
    for number_text, block_hash in parsed.items():
        if not number_text.isdigit():
            raise BlockFolderError(path, number_text, "expected a decimal block number")
        by_number[int(number_text)] = block_hash
    depths = [block.number - 1 - n for n in by_number if 0 <= block.number - 1 - n < MAX_ANCESTORS]
    hashes = [b""] * (max(depths) + 1)
    for depth in depths:
        hashes[depth] = by_number[block.number - 1 - depth]
    return tuple(hashes)


def load_block_folder(folder: str | Path, spec: ChainSpec = MAINNET) -> ImportedBlock:
    """Read, check and rebuild one block folder of chain ``spec`` (which the folder's
    ``chain.json`` overrides; see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BlockFolderError(folder, "", "not a directory")
    spec = folder_chain_spec(folder, spec)
    block_path = folder / "block.json"
    block: BlockJson = _parse(block_path, BlockJson, _read_json(block_path))
    vm_class = _fork_of(block_path, spec, block)
    header = _build_header(block_path, vm_class, block)
    transactions = _build_transactions(block_path, vm_class, block)
    hashes_path = folder / "block_hashes.json"
    prev_hashes = _ancestor_hashes(hashes_path, block, _read_json(hashes_path, required=False))
    state_path = folder / "pre_state.json"
    accounts = _parse(state_path, PreStateJson, _read_json(state_path))
    env = BlockEnv(vm_class, header, spec.chain_id, prev_hashes)
    expected = ExpectedHeader(block.gasUsed, header.bloom, block.receiptsRoot)
    return ImportedBlock(
        folder, env, transactions, _pre_state_items(state_path, accounts), expected
    )
