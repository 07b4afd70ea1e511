"""The HTTP API (FastAPI): transactions, EBS subscriptions, the cluster, blocks, events.

``create_app(backend)`` serves a ``Backend``: ``LocalBackend`` wraps a ``BlockProducer`` in
this process (tests); ``coordinator.coordinator.RayBackend`` forwards to the coordinator
actor (``evmpp serve``). Subscriptions and cancellations are signed registry transactions
(``ebs/subscription.py``), checked before they enter the mempool, so a forged or malformed
one is refused at once with a clear status: 400 malformed, 403 not the deployer (or not the
subscriber), 404 unknown subscription, 409 duplicate, 413 request too large, 422 a body that
is not the schema (e.g. bad hex). OpenAPI docs are at ``/docs``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from coordinator.producer import BlockHeaderRecord, BlockProducer, SubmitError
from ebs.models import (
    Accepted,
    ClusterView,
    ErrorView,
    EventView,
    RawTransaction,
    SubscriptionAccepted,
    SubscriptionView,
)
from ebs.subscription import Cancel, Subscribe, subscription_id

MAX_BODY_BYTES = 300 * 1024


class Backend(Protocol):
    def submit(self, raw: bytes) -> str: ...
    def subscribe(self, raw: bytes) -> dict[str, Any]: ...
    def cancel(self, subscription: str, raw: bytes) -> dict[str, Any]: ...
    def subscription(self, subscription: str) -> dict[str, Any] | None: ...
    def subscriptions(self) -> list[dict[str, Any]]: ...
    def cluster(self) -> dict[str, Any]: ...
    def block(self, number: int | None) -> dict[str, Any] | None: ...
    def events(self, since: int) -> list[dict[str, Any]]: ...


class LocalBackend:
    """The API's view of a ``BlockProducer`` in this process."""

    def __init__(self, producer: BlockProducer) -> None:
        self.producer = producer

    def submit(self, raw: bytes) -> str:
        return self.producer.submit(raw)

    def submit_many(self, raws: list[bytes]) -> tuple[int, list[str]]:
        """Many transactions at once (load generators): how many were taken, and why the
        others were not."""
        taken, errors = 0, []
        for raw in raws:
            try:
                self.producer.submit(raw)
                taken += 1
            except SubmitError as err:
                errors.append(str(err))
        return taken, errors

    def _request(self, raw: bytes) -> Any:
        tx = self.producer.decode(raw)
        return tx, self.producer.parse_request(tx)

    def subscribe(self, raw: bytes) -> dict[str, Any]:
        tx, request = self._request(raw)
        if not isinstance(request, Subscribe):
            raise SubmitError("not a subscription: the payload type must be 0x01", 400)
        tx_hash = self.producer.submit(raw)
        return {"id": subscription_id(tx.hash), "hash": tx_hash, "status": "pending"}

    def cancel(self, subscription: str, raw: bytes) -> dict[str, Any]:
        _, request = self._request(raw)
        if not isinstance(request, Cancel) or request.id != subscription:
            raise SubmitError(f"not a cancellation of subscription {subscription}", 400)
        tx_hash = self.producer.submit(raw)
        return {"id": subscription, "hash": tx_hash, "status": "cancelling"}

    def subscription(self, subscription: str) -> dict[str, Any] | None:
        return self.producer.subscription_view(subscription)

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.producer.lock:
            ids = [*self.producer.subscriptions, *self.producer.requested]
        return [view for i in ids if (view := self.producer.subscription_view(i))]

    def cluster(self) -> dict[str, Any]:
        return self.producer.cluster()

    def block(self, number: int | None) -> dict[str, Any] | None:
        headers = self.producer.headers
        if not headers:
            return None
        if number is None:
            return asdict(headers[-1])
        return asdict(headers[number - 1]) if 1 <= number <= len(headers) else None

    def events(self, since: int) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.producer.events if e.block >= since]


def create_app(backend: Backend, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(
        title="evmpp",
        summary="Parallel EVM on Ray with elastic block space",
        responses={400: {"model": ErrorView}, 413: {"model": ErrorView}},
    )

    @app.middleware("http")
    async def limit_size(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return JSONResponse({"detail": f"request over {max_body} bytes"}, status_code=413)
        return await call_next(request)

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except SubmitError as err:
            raise HTTPException(err.status, str(err)) from err

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/transactions", status_code=202, response_model=Accepted)
    def post_transaction(body: RawTransaction) -> Accepted:
        return Accepted(hash=call(backend.submit, body.data()))

    @app.post("/v1/ebs/subscriptions", status_code=202, response_model=SubscriptionAccepted)
    def post_subscription(body: RawTransaction) -> SubscriptionAccepted:
        return SubscriptionAccepted(**call(backend.subscribe, body.data()))

    @app.get("/v1/ebs/subscriptions", response_model=list[SubscriptionView])
    def list_subscriptions() -> list[SubscriptionView]:
        return [SubscriptionView(**view) for view in backend.subscriptions()]

    @app.get("/v1/ebs/subscriptions/{subscription}", response_model=SubscriptionView)
    def get_subscription(subscription: str) -> SubscriptionView:
        view = backend.subscription(subscription)
        if view is None:
            raise HTTPException(404, f"no subscription {subscription}")
        return SubscriptionView(**view)

    @app.delete(
        "/v1/ebs/subscriptions/{subscription}",
        status_code=202,
        response_model=SubscriptionAccepted,
    )
    def delete_subscription(subscription: str, body: RawTransaction) -> SubscriptionAccepted:
        return SubscriptionAccepted(**call(backend.cancel, subscription, body.data()))

    @app.get("/v1/cluster", response_model=ClusterView)
    def get_cluster() -> ClusterView:
        return ClusterView(**backend.cluster())

    @app.get("/v1/blocks/latest", response_model=BlockHeaderRecord)
    def latest_block() -> BlockHeaderRecord:
        return _block(backend.block(None), "no block yet")

    @app.get("/v1/blocks/{number}", response_model=BlockHeaderRecord)
    def get_block(number: int) -> BlockHeaderRecord:
        return _block(backend.block(number), f"no block {number}")

    @app.get("/v1/events", response_model=list[EventView])
    def get_events(since: int = 0) -> list[EventView]:
        return [EventView(**event) for event in backend.events(since)]

    return app


def _block(view: dict[str, Any] | None, missing: str) -> BlockHeaderRecord:
    if view is None:
        raise HTTPException(404, missing)
    return BlockHeaderRecord(**view)
