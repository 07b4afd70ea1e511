"""What the node answers its clients: the ``NodeAPI`` protocol and the data classes it returns.

The HTTP layer (``api/``: Ethereum JSON-RPC on ``POST /`` and the ``/v1`` REST routes) speaks
only this protocol. ``coordinator.node.Node`` implements it in process; the Ray shell
(``coordinator.coordinator.RayNode``) forwards each call to the coordinator actor. Every value
crossing it is a frozen data class of plain ints and bytes (picklable, no py-evm objects), so
the API layer formats JSON without knowing py-evm, and errors are ``NodeError`` values with a
JSON-RPC code and geth's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# JSON-RPC error codes (geth's): -32000 a server error with geth's message, 3 a revert.
SERVER_ERROR = -32000
INVALID_PARAMS = -32602
EXECUTION_REVERTED = 3
LIMIT_EXCEEDED = -32005


class NodeError(Exception):
    """A request the node refuses or cannot answer; ``code`` is its JSON-RPC error code,
    ``status`` the HTTP status of the REST route, ``data`` (hex revert data) optional."""

    def __init__(
        self,
        message: str,
        code: int = SERVER_ERROR,
        data: bytes | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.data = data
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:  # crosses Ray as a value
        return (type(self), (self.message, self.code, self.data, self.status))


BlockTag = Literal["latest", "pending", "earliest", "safe", "finalized"]
BlockRef = int | BlockTag  # a block number or a tag; resolved by the node


@dataclass(frozen=True)
class HeaderView:
    number: int
    hash: bytes
    parent_hash: bytes
    uncles_hash: bytes
    coinbase: bytes
    state_root: bytes
    transactions_root: bytes
    receipts_root: bytes
    logs_bloom: bytes  # 256 bytes
    difficulty: int
    gas_limit: int
    gas_used: int
    timestamp: int
    extra_data: bytes
    mix_hash: bytes
    nonce: bytes  # 8 bytes
    size: int  # bytes of the block's RLP
    base_fee_per_gas: int | None = None
    withdrawals_root: bytes | None = None
    blob_gas_used: int | None = None
    excess_blob_gas: int | None = None
    parent_beacon_block_root: bytes | None = None
    requests_hash: bytes | None = None


@dataclass(frozen=True)
class AccessListEntry:
    address: bytes
    storage_keys: tuple[int, ...]


@dataclass(frozen=True)
class TxView:
    """A transaction, in a block (``block_number`` set) or pending (``None``)."""

    hash: bytes
    type: int
    sender: bytes
    nonce: int
    to: bytes | None
    value: int
    gas: int
    input: bytes
    v: int
    r: int
    s: int
    chain_id: int | None = None
    gas_price: int | None = None  # legacy and 2930; for 1559+ the effective price once mined
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    access_list: tuple[AccessListEntry, ...] | None = None
    max_fee_per_blob_gas: int | None = None
    blob_versioned_hashes: tuple[bytes, ...] | None = None
    y_parity: int | None = None
    block_hash: bytes | None = None
    block_number: int | None = None
    index: int | None = None


@dataclass(frozen=True)
class BlockView:
    header: HeaderView
    transactions: tuple[TxView, ...] | tuple[bytes, ...]  # full, or hashes only
    withdrawals: tuple[Any, ...] = ()


@dataclass(frozen=True)
class LogView:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    log_index: int  # position in the block
    removed: bool = False


@dataclass(frozen=True)
class ReceiptView:
    tx_hash: bytes
    tx_index: int
    block_hash: bytes
    block_number: int
    sender: bytes
    to: bytes | None
    type: int
    status: int  # 1 success, 0 failure
    cumulative_gas_used: int
    gas_used: int
    effective_gas_price: int
    contract_address: bytes | None
    logs: tuple[LogView, ...]
    logs_bloom: bytes
    blob_gas_used: int | None = None
    blob_gas_price: int | None = None


@dataclass(frozen=True)
class AccountView:
    nonce: int
    balance: int
    code: bytes


@dataclass(frozen=True)
class CallRequest:
    """eth_call / eth_estimateGas arguments (geth's TransactionArgs)."""

    sender: bytes | None = None
    to: bytes | None = None
    gas: int | None = None
    gas_price: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    value: int = 0
    data: bytes = b""
    nonce: int | None = None
    access_list: tuple[AccessListEntry, ...] = ()


@dataclass(frozen=True)
class CallResult:
    success: bool
    output: bytes
    gas_used: int
    error: str | None = None  # "execution reverted", out of gas ...


@dataclass(frozen=True)
class LogFilter:
    from_block: BlockRef = "latest"
    to_block: BlockRef = "latest"
    addresses: tuple[bytes, ...] = ()
    topics: tuple[tuple[bytes, ...] | None, ...] = ()  # positional; None = any
    block_hash: bytes | None = None


@dataclass(frozen=True)
class FeeHistoryView:
    oldest_block: int
    base_fee_per_gas: tuple[int, ...]  # one per block, plus the next block's
    gas_used_ratio: tuple[float, ...]
    reward: tuple[tuple[int, ...], ...] | None = None
    base_fee_per_blob_gas: tuple[int, ...] = ()
    blob_gas_used_ratio: tuple[float, ...] = ()


TxState = Literal["pending", "queued", "included", "dropped", "unknown"]


@dataclass(frozen=True)
class TxStatusView:
    hash: bytes
    status: TxState
    block_number: int | None = None
    reason: str | None = None  # why it was dropped


@dataclass(frozen=True)
class NodeInfo:
    client_version: str
    chain_id: int
    network_id: int


class EthereumAPI(Protocol):
    """The Ethereum side of the node (what JSON-RPC needs). Block numbers are resolved by
    the node (``resolve``); a read at a block whose state is no longer kept raises
    ``NodeError``."""

    def info(self) -> NodeInfo: ...
    def resolve(self, ref: BlockRef) -> int: ...
    def head(self) -> int: ...
    def block_by_number(self, number: int, full: bool) -> BlockView | None: ...
    def block_by_hash(self, block_hash: bytes, full: bool) -> BlockView | None: ...
    def account(self, address: bytes, number: int) -> AccountView: ...
    def storage_at(self, address: bytes, slot: int, number: int) -> int: ...
    def pending_nonce(self, address: bytes) -> int: ...
    def call(self, request: CallRequest, number: int) -> CallResult: ...
    def estimate_gas(self, request: CallRequest, number: int) -> int: ...
    def send_raw_transaction(self, raw: bytes) -> bytes: ...
    def transaction(self, tx_hash: bytes) -> TxView | None: ...
    def receipt(self, tx_hash: bytes) -> ReceiptView | None: ...
    def tx_status(self, tx_hash: bytes) -> TxStatusView: ...
    def logs(self, query: LogFilter) -> list[LogView]: ...
    def fee_history(
        self, count: int, newest: int, percentiles: tuple[float, ...] | None
    ) -> FeeHistoryView: ...
    def gas_price(self) -> int: ...
    def max_priority_fee(self) -> int: ...


# -- the /v1 REST side: elastic block space, the cluster, blocks as the producer saw them ---


@dataclass(frozen=True)
class Event:
    block: int
    kind: str  # proposal, vote, scale, pending, subscription, dropped, failure, halt
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    subscriber: bytes
    contracts: tuple[bytes, ...]
    stake: int
    status: str  # pending (not in a block yet), waiting (for a CU), active, cancelled
    requested_block: int | None = None
    active_since: int | None = None
    cu: str | None = None
    gas_limit: int | None = None
    parallelism: float | None = None


@dataclass(frozen=True)
class SubscriptionAccepted:
    id: str
    hash: bytes
    status: str  # pending, cancelling


@dataclass(frozen=True)
class PoolState:
    cus: tuple[str, ...]
    workers: int


@dataclass(frozen=True)
class VerifierState:
    enabled: bool
    verified: int  # the last block the verifier replica checked
    lag: int  # blocks committed and not yet verified
    lag_max: int


@dataclass(frozen=True)
class ClusterState:
    pools: dict[str, PoolState]
    load: dict[str, float]
    pending_cus: int
    recent_votes: tuple[Event, ...]
    verifier: VerifierState
    halted: str | None = None  # why block production stopped, if it did


@dataclass(frozen=True)
class BlockRecord:
    """A block as the producer made it: per block space, with timings."""

    number: int
    hash: bytes
    parent_hash: bytes
    state_root: bytes
    txs: dict[str, int]
    gas_used: dict[str, int]
    gas_limit: dict[str, int]
    exec_ms: dict[str, float]
    reexecutions: int
    dropped: int
    cus: dict[str, int]  # Compute Units per pool while the block ran
    parallelism: dict[str, float]  # each EBS's P for the block (by its CU)
    produced_at: float  # wall-clock seconds
    verified: bool | None = None  # by the verifier replica: None not yet (or no verifier)
    phases_ms: dict[str, float] = field(default_factory=dict)  # select, admit, execute ...


@dataclass(frozen=True)
class Health:
    healthy: bool
    head: int
    reason: str | None = None


class ElasticAPI(Protocol):
    """The ``/v1`` side of the node."""

    def submit(self, raw: bytes) -> bytes: ...
    def subscribe(self, raw: bytes) -> SubscriptionAccepted: ...
    def cancel(self, subscription: str, raw: bytes) -> SubscriptionAccepted: ...
    def subscription(self, subscription: str) -> SubscriptionState | None: ...
    def subscriptions(self) -> list[SubscriptionState]: ...
    def cluster(self) -> ClusterState: ...
    def block_record(self, number: int | None) -> BlockRecord | None: ...
    def events(self, since: int) -> list[Event]: ...
    def tx_status(self, tx_hash: bytes) -> TxStatusView: ...
    def health(self) -> Health: ...


class NodeAPI(EthereumAPI, ElasticAPI, Protocol):
    """Everything the HTTP layer serves."""
