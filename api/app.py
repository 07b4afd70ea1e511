"""The node's FastAPI app: ``create_app(node)`` serves the ``/v1`` REST routes and ``/healthz``
(``api/rest.py``) and Ethereum JSON-RPC on ``POST /``, with OpenAPI docs at ``/docs``. A
``/v1`` body over ``max_body`` (300 KB) is 413; ``POST /`` is exempt from that cap and keeps
the JSON-RPC router's own (5 MB).

``POST /``: Ethereum JSON-RPC over HTTP, as a FastAPI router to mount on the node's app.

``create_rpc_router(node)`` answers JSON-RPC on ``POST /`` (``GET /`` is 405). As geth's HTTP
server: the content type must be JSON (415 otherwise), a body over ``max_body`` (5 MB, geth's
default) is 413; anything else is HTTP 200 with the JSON-RPC answer, errors included (a parse
error is a -32700 answer). The node's calls block, so the dispatch runs in the threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.eth import METHODS
from api.jsonrpc import INVALID_REQUEST, Dispatcher, Method
from api.models import ErrorView
from api.rest import create_rest_router
from coordinator.node_api import EthereumAPI, NodeAPI

MAX_BODY_BYTES = 5 * 1024 * 1024  # geth's httpBodyLimit
REST_MAX_BODY_BYTES = 300 * 1024  # the /v1 routes (a raw transaction is at most 128 KB)
JSON_TYPES = ("application/json", "application/json-rpc", "application/jsonrequest")


def _error(status: int, message: str) -> Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}
    return Response(json.dumps(body), status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it is over ``limit`` bytes (read no further)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_rpc_router(
    node: EthereumAPI,
    max_body: int = MAX_BODY_BYTES,
    methods: Mapping[str, Method] = METHODS,
) -> APIRouter:
    """A router answering Ethereum JSON-RPC on ``POST /`` against ``node``.

    A node in another process that can answer whole bodies (``dispatch``, the Ray shell's:
    ``rpc_handler`` runs there) gets each request or batch in one round trip; otherwise the
    body is dispatched here, a node call per request."""
    handle = getattr(node, "dispatch", None) or Dispatcher(node, methods).handle
    router = APIRouter()

    @router.post("/", summary="Ethereum JSON-RPC 2.0 (single or batch)")
    async def json_rpc(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            return _error(415, "invalid content type, only application/json is supported")
        body = await _read_body(request, max_body)
        if body is None:
            return _error(413, f"content length too large (>{max_body} bytes)")
        answer = await run_in_threadpool(handle, body)
        if answer is None:  # notifications only
            return Response(status_code=200)
        return Response(json.dumps(answer), media_type="application/json")

    return router


def rpc_handler(node: EthereumAPI) -> Callable[[bytes], Any]:
    """A JSON-RPC body handler over ``node``, built where the node lives (the coordinator
    actor is given this function, so no request crosses Ray call by call)."""
    return Dispatcher(node, METHODS).handle


def create_rpc_app(node: EthereumAPI, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """A stand-alone app serving only the JSON-RPC router (tests, a bare RPC endpoint)."""
    app = FastAPI(title="evmpp JSON-RPC")
    app.include_router(create_rpc_router(node, max_body))
    return app


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_body`` bytes (by its
    ``Content-Length``, or counted as it streams in), except on the ``exempt`` paths."""

    def __init__(self, app: ASGIApp, max_body: int, exempt: tuple[str, ...] = ("/",)) -> None:
        self.app = app
        self.max_body = max_body
        self.exempt = exempt

    def _path(self, scope: Scope) -> str:
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._path(scope) in self.exempt:
            await self.app(scope, receive, send)
            return
        detail = f"request over {self.max_body} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            response = Response(
                json.dumps({"detail": detail}), status_code=413, media_type="application/json"
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:  # a body without Content-Length (chunked)
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, limited, send)


def create_app(
    node: NodeAPI,
    max_body: int = REST_MAX_BODY_BYTES,
    rpc_max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The node's app: the ``/v1`` REST routes and ``/healthz`` (bodies up to ``max_body``)
    and JSON-RPC on ``POST /`` (bodies up to ``rpc_max_body``). OpenAPI docs at ``/docs``."""
    app = FastAPI(
        title="evmpp",
        summary="Parallel EVM on Ray with elastic block space",
        responses={413: {"model": ErrorView, "description": "Request too large"}},
    )
    app.add_middleware(BodyLimit, max_body=max_body, exempt=("/",))
    app.include_router(create_rest_router(node))
    app.include_router(create_rpc_router(node, rpc_max_body), tags=["json-rpc"])
    return app
