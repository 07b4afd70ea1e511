"""The ``/v1`` REST routes (transactions, EBS subscriptions, the cluster, blocks, events) and
``/healthz``, as a FastAPI router over the ``ElasticAPI`` protocol.

Subscriptions and cancellations are signed registry transactions, checked by the node
before they enter the mempool, so a forged or malformed one is refused at once: the node
raises ``NodeError`` and its ``status`` is the HTTP status (400 malformed, 403 not the
deployer or not the subscriber, 404 unknown subscription, 409 duplicate). A body that is not
the schema (bad hex, a malformed hash) is 422; ``api.app.create_app`` adds 413 for a body
over its limit. The node's calls block, so the routes are plain ``def`` (the threadpool).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse

from api.models import (
    Accepted,
    BlockRecordView,
    ClusterView,
    ErrorView,
    EventView,
    HealthView,
    RawTransaction,
    SubscriptionAccepted,
    SubscriptionView,
    TxStatusResponse,
)
from coordinator.node_api import ElasticAPI, NodeError

T = TypeVar("T")

TX_HASH_PATTERN = r"^(0[xX])?[0-9a-fA-F]{64}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorView} for status in (400, 403, 404, 409)
}


def _call(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a ``NodeError`` as the HTTP error of its status."""
    try:
        return fn(*args)
    except NodeError as err:
        raise HTTPException(err.status, err.message) from err


def create_rest_router(node: ElasticAPI) -> APIRouter:
    """The ``/v1`` routes and ``/healthz`` against ``node``."""
    router = APIRouter()

    @router.get(
        "/healthz",
        response_model=HealthView,
        response_model_exclude_none=True,
        responses={503: {"model": HealthView, "description": "Not serving"}},
        tags=["node"],
    )
    def healthz() -> Any:
        """200 ``{"status": "ok", "head": N}``; 503 with the reason (production halted, the
        verifier too far behind)."""
        health = _call(node.health)
        view = HealthView.from_state(health)
        if health.healthy:
            return view
        return JSONResponse(view.model_dump(exclude_none=True), status_code=503)

    @router.post(
        "/v1/transactions",
        status_code=202,
        response_model=Accepted,
        responses=ERRORS,
        tags=["transactions"],
    )
    def post_transaction(body: RawTransaction) -> Accepted:
        return Accepted.of(_call(node.submit, body.data()))

    @router.get(
        "/v1/transactions/{tx_hash}",
        response_model=TxStatusResponse,
        tags=["transactions"],
    )
    def get_transaction(
        tx_hash: Annotated[str, Path(pattern=TX_HASH_PATTERN, description="32-byte hash")],
    ) -> TxStatusResponse:
        """Where a transaction is: pending, queued (nonce gap), included (with its block),
        dropped (with the reason) or unknown (200 too: the node never saw it or forgot it)."""
        digits = tx_hash[2:] if tx_hash[:2] in ("0x", "0X") else tx_hash
        return TxStatusResponse.from_state(_call(node.tx_status, bytes.fromhex(digits)))

    @router.post(
        "/v1/ebs/subscriptions",
        status_code=202,
        response_model=SubscriptionAccepted,
        responses=ERRORS,
        tags=["ebs"],
    )
    def post_subscription(body: RawTransaction) -> SubscriptionAccepted:
        return SubscriptionAccepted.from_state(_call(node.subscribe, body.data()))

    @router.get("/v1/ebs/subscriptions", response_model=list[SubscriptionView], tags=["ebs"])
    def list_subscriptions() -> list[SubscriptionView]:
        return [SubscriptionView.from_state(s) for s in _call(node.subscriptions)]

    @router.get(
        "/v1/ebs/subscriptions/{subscription}",
        response_model=SubscriptionView,
        responses=ERRORS,
        tags=["ebs"],
    )
    def get_subscription(subscription: str) -> SubscriptionView:
        state = _call(node.subscription, subscription)
        if state is None:
            raise HTTPException(404, f"no subscription {subscription}")
        return SubscriptionView.from_state(state)

    @router.delete(
        "/v1/ebs/subscriptions/{subscription}",
        status_code=202,
        response_model=SubscriptionAccepted,
        responses=ERRORS,
        tags=["ebs"],
    )
    def delete_subscription(subscription: str, body: RawTransaction) -> SubscriptionAccepted:
        return SubscriptionAccepted.from_state(_call(node.cancel, subscription, body.data()))

    @router.get("/v1/cluster", response_model=ClusterView, tags=["cluster"])
    def get_cluster() -> ClusterView:
        return ClusterView.from_state(_call(node.cluster))

    @router.get(
        "/v1/blocks/latest", response_model=BlockRecordView, responses=ERRORS, tags=["blocks"]
    )
    def latest_block() -> BlockRecordView:
        return _block(_call(node.block_record, None), "no block yet")

    @router.get(
        "/v1/blocks/{number}", response_model=BlockRecordView, responses=ERRORS, tags=["blocks"]
    )
    def get_block(number: int) -> BlockRecordView:
        return _block(_call(node.block_record, number), f"no block {number}")

    @router.get("/v1/events", response_model=list[EventView], tags=["cluster"])
    def get_events(since: int = 0) -> list[EventView]:
        return [EventView.from_state(e) for e in _call(node.events, since)]

    return router


def _block(record: Any, missing: str) -> BlockRecordView:
    if record is None:
        raise HTTPException(404, missing)
    return BlockRecordView.from_state(record)
