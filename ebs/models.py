"""Request and response schemas of the HTTP API (``ebs/api.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

MAX_RAW_HEX = 2 * 128 * 1024  # a raw transaction of at most 128 KB


class RawTransaction(BaseModel):
    """A signed transaction, hex-encoded (``0x`` optional)."""

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
        return body

    def data(self) -> bytes:
        return bytes.fromhex(self.raw)


class Accepted(BaseModel):
    hash: str
    status: str = "pending"


class SubscriptionView(BaseModel):
    id: str
    subscriber: str
    contracts: list[str]
    stake: str
    status: str  # pending (not in a block yet), waiting (for a CU), active, cancelled
    requested_block: int | None = None
    active_since: int | None = None
    cu: str | None = None
    gas_limit: int | None = None
    parallelism: float | None = None


class SubscriptionAccepted(BaseModel):
    id: str
    hash: str
    status: str


class EventView(BaseModel):
    block: int
    kind: str
    message: str
    data: dict[str, Any]


class ClusterView(BaseModel):
    pools: dict[str, dict[str, Any]]
    load: dict[str, float]
    pending_cus: int
    recent_votes: list[dict[str, Any]]


class ErrorView(BaseModel):
    detail: str
