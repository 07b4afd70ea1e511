"""Request and response schemas of the ``/v1`` REST routes (``api/rest.py``).

Each response model is built from the node's frozen data classes (``coordinator.node_api``)
by its ``from_state(...)`` classmethod: bytes become ``0x``-hex strings, a stake (wei) a
decimal string (JSON numbers lose precision past 2**53), tuples lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from coordinator.node_api import (
    BlockRecord,
    ClusterState,
    Event,
    Health,
    NodeError,
    PoolState,
    SubscriptionState,
    TxState,
    TxStatusView,
    VerifierState,
)
from coordinator.node_api import SubscriptionAccepted as SubscriptionAcceptedState

MAX_RAW_BYTES = 128 * 1024  # a raw transaction of at most 128 KB
MAX_RAW_HEX = 2 * MAX_RAW_BYTES


def hex0x(raw: bytes) -> str:
    return "0x" + raw.hex()


def jsonable(value: Any) -> Any:
    """An event's free-form ``data`` as JSON: bytes as 0x-hex, tuples and sets as lists."""
    if isinstance(value, bytes | bytearray | memoryview):
        return hex0x(bytes(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


# --- requests ------------------------------------------------------------------------------


class RawTransaction(BaseModel):
    """A signed transaction, hex-encoded (``0x`` optional), at most 128 KB."""

    raw: str = Field(max_length=MAX_RAW_HEX + 2, examples=["0x02f8..."])

    @field_validator("raw")
    @classmethod
    def _hex(cls, value: str) -> str:
        body = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            bytes.fromhex(body)
        except ValueError as err:
            raise ValueError("raw must be the transaction's bytes in hex") from err
        if not body:
            raise ValueError("raw is empty")
        if len(body) > MAX_RAW_HEX:
            raise ValueError(f"raw is over {MAX_RAW_BYTES} bytes")
        return body

    def data(self) -> bytes:
        return bytes.fromhex(self.raw)


# --- responses -----------------------------------------------------------------------------


class Accepted(BaseModel):
    hash: str
    status: str = "pending"

    @classmethod
    def of(cls, tx_hash: bytes, status: str = "pending") -> Accepted:
        return cls(hash=hex0x(tx_hash), status=status)


class SubscriptionView(BaseModel):
    id: str
    subscriber: str
    contracts: list[str]
    stake: str  # wei, decimal
    status: str  # pending (not in a block yet), waiting (for a CU), active, cancelled
    requested_block: int | None = None
    active_since: int | None = None
    cu: str | None = None
    gas_limit: int | None = None
    parallelism: float | None = None

    @classmethod
    def from_state(cls, state: SubscriptionState) -> SubscriptionView:
        return cls(
            id=state.id,
            subscriber=hex0x(state.subscriber),
            contracts=[hex0x(c) for c in state.contracts],
            stake=str(state.stake),
            status=state.status,
            requested_block=state.requested_block,
            active_since=state.active_since,
            cu=state.cu,
            gas_limit=state.gas_limit,
            parallelism=state.parallelism,
        )


class SubscriptionAccepted(BaseModel):
    id: str
    hash: str
    status: str  # pending, cancelling

    @classmethod
    def from_state(cls, state: SubscriptionAcceptedState) -> SubscriptionAccepted:
        return cls(id=state.id, hash=hex0x(state.hash), status=state.status)


class EventView(BaseModel):
    block: int
    kind: str  # proposal, vote, scale, pending, subscription, dropped, failure, halt
    message: str
    data: dict[str, Any]

    @classmethod
    def from_state(cls, event: Event) -> EventView:
        return cls(
            block=event.block, kind=event.kind, message=event.message, data=jsonable(event.data)
        )


class PoolView(BaseModel):
    cus: list[str]
    workers: int

    @classmethod
    def from_state(cls, pool: PoolState) -> PoolView:
        return cls(cus=list(pool.cus), workers=pool.workers)


class VerifierView(BaseModel):
    enabled: bool
    verified: int  # the last block the verifier replica checked
    lag: int  # blocks committed and not yet verified
    lag_max: int

    @classmethod
    def from_state(cls, verifier: VerifierState) -> VerifierView:
        return cls(
            enabled=verifier.enabled,
            verified=verifier.verified,
            lag=verifier.lag,
            lag_max=verifier.lag_max,
        )


class ClusterView(BaseModel):
    pools: dict[str, PoolView]
    load: dict[str, float]
    pending_cus: int
    recent_votes: list[EventView]
    verifier: VerifierView
    halted: str | None = None  # why block production stopped, if it did

    @classmethod
    def from_state(cls, state: ClusterState) -> ClusterView:
        return cls(
            pools={name: PoolView.from_state(pool) for name, pool in state.pools.items()},
            load=dict(state.load),
            pending_cus=state.pending_cus,
            recent_votes=[EventView.from_state(e) for e in state.recent_votes],
            verifier=VerifierView.from_state(state.verifier),
            halted=state.halted,
        )


class BlockRecordView(BaseModel):
    """A block as the producer made it: per block space, with timings."""

    number: int
    hash: str
    parent_hash: str
    state_root: str
    txs: dict[str, int]
    gas_used: dict[str, int]
    gas_limit: dict[str, int]
    exec_ms: dict[str, float]
    reexecutions: int
    dropped: int
    cus: dict[str, int]
    parallelism: dict[str, float]
    produced_at: float
    verified: bool | None = None  # by the verifier replica: None not yet (or no verifier)
    phases_ms: dict[str, float] = {}  # where the block's time went: select, admit, execute...

    @classmethod
    def from_state(cls, record: BlockRecord) -> BlockRecordView:
        return cls(
            number=record.number,
            hash=hex0x(record.hash),
            parent_hash=hex0x(record.parent_hash),
            state_root=hex0x(record.state_root),
            txs=dict(record.txs),
            gas_used=dict(record.gas_used),
            gas_limit=dict(record.gas_limit),
            exec_ms=dict(record.exec_ms),
            reexecutions=record.reexecutions,
            dropped=record.dropped,
            cus=dict(record.cus),
            parallelism=dict(record.parallelism),
            produced_at=record.produced_at,
            verified=record.verified,
            phases_ms=dict(record.phases_ms),
        )


class TxStatusResponse(BaseModel):
    hash: str
    status: TxState  # pending, queued (nonce gap), included, dropped, unknown
    block_number: int | None = None  # when included
    reason: str | None = None  # why it was dropped

    @classmethod
    def from_state(cls, view: TxStatusView) -> TxStatusResponse:
        return cls(
            hash=hex0x(view.hash),
            status=view.status,
            block_number=view.block_number,
            reason=view.reason,
        )


class HealthView(BaseModel):
    status: Literal["ok", "unavailable"]
    head: int
    reason: str | None = None  # why not healthy (production halted, verifier behind)

    @classmethod
    def from_state(cls, health: Health) -> HealthView:
        return cls(
            status="ok" if health.healthy else "unavailable",
            head=health.head,
            reason=None if health.healthy else (health.reason or "unhealthy"),
        )


class ErrorView(BaseModel):
    detail: str

    @classmethod
    def of(cls, err: NodeError) -> ErrorView:
        return cls(detail=err.message)
