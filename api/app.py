"""``POST /``: Ethereum JSON-RPC over HTTP, as a FastAPI router to mount on the node's app.

``create_rpc_router(node)`` answers JSON-RPC on ``POST /`` (``GET /`` is 405). As geth's HTTP
server: the content type must be JSON (415 otherwise), a body over ``max_body`` (5 MB, geth's
default) is 413; anything else is HTTP 200 with the JSON-RPC answer, errors included (a parse
error is a -32700 answer). The node's calls block, so the dispatch runs in the threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.eth import METHODS
from api.jsonrpc import INVALID_REQUEST, Dispatcher, Method
from coordinator.node_api import EthereumAPI

MAX_BODY_BYTES = 5 * 1024 * 1024  # geth's httpBodyLimit
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
    """A router answering Ethereum JSON-RPC on ``POST /`` against ``node``."""
    dispatcher = Dispatcher(node, methods)
    router = APIRouter()

    @router.post("/", summary="Ethereum JSON-RPC 2.0 (single or batch)")
    async def json_rpc(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in JSON_TYPES:
            return _error(415, "invalid content type, only application/json is supported")
        body = await _read_body(request, max_body)
        if body is None:
            return _error(413, f"content length too large (>{max_body} bytes)")
        answer = await run_in_threadpool(dispatcher.handle, body)
        if answer is None:  # notifications only
            return Response(status_code=200)
        return Response(json.dumps(answer), media_type="application/json")

    return router


def create_rpc_app(node: EthereumAPI, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """A stand-alone app serving only the JSON-RPC router (tests, a bare RPC endpoint)."""
    app = FastAPI(title="evmpp JSON-RPC")
    app.include_router(create_rpc_router(node, max_body))
    return app
