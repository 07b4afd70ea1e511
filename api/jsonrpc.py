"""The JSON-RPC 2.0 envelope: requests, batches, notifications and errors, as geth answers.

``Dispatcher.handle(body)`` takes the raw request body and returns the JSON value to send
back (an object, a list for a batch) or ``None`` when nothing is due (notifications only).
Methods are ``Method`` entries: a handler ``fn(node, *args)`` and the positional parameters'
decoders; trailing optional parameters take their default when absent or ``null``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from api.hexcodec import HexError
from coordinator.node_api import NodeError

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_BATCH = 1000  # geth's BatchRequestLimit

_MISSING = object()


class RpcError(Exception):
    """An error answer: ``code``, geth's ``message`` and optional ``data`` (JSON value)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


@dataclass(frozen=True)
class Param:
    name: str
    decode: Callable[[Any], Any]
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Method:
    handler: Callable[..., Any]  # handler(node, *decoded_args)
    params: tuple[Param, ...] = ()

    def decode(self, raw: Any) -> list[Any]:
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise invalid_params("non-array args")
        if len(raw) > len(self.params):
            raise invalid_params(f"too many arguments, want at most {len(self.params)}")
        args = []
        for i, param in enumerate(self.params):
            value = raw[i] if i < len(raw) else None
            if value is None:
                if param.required:
                    raise invalid_params(f"missing value for required argument {i}")
                args.append(param.default)
                continue
            try:
                args.append(param.decode(value))
            except (HexError, ValueError, TypeError, KeyError) as err:
                raise invalid_params(f"invalid argument {i}: {err}") from err
        return args


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def _response(ident: Any, *, result: Any = _MISSING, error: RpcError | None = None) -> dict:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident}
    if error is not None:
        message["error"] = error.json()
    else:
        message["result"] = result
    return message


def node_error(err: NodeError) -> RpcError:
    data = None if err.data is None else "0x" + bytes(err.data).hex()
    return RpcError(err.code, err.message, data)


class Dispatcher:
    """Answers JSON-RPC bodies against ``node`` with the ``methods`` table."""

    def __init__(self, node: Any, methods: Mapping[str, Method]) -> None:
        self.node = node
        self.methods = methods

    def handle(self, body: bytes) -> Any | None:
        try:
            message = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError):
            return _response(None, error=RpcError(PARSE_ERROR, "parse error"))
        if isinstance(message, list):
            return self.handle_batch(message)
        return self.handle_one(message)

    def handle_batch(self, batch: list[Any]) -> Any | None:
        if not batch:
            return _response(None, error=RpcError(INVALID_REQUEST, "empty batch"))
        if len(batch) > MAX_BATCH:
            ident = next(
                (m["id"] for m in batch if isinstance(m, dict) and "id" in m and "method" in m),
                None,
            )
            return [_response(ident, error=RpcError(INVALID_REQUEST, "batch too large"))]
        answers = [answer for m in batch if (answer := self.handle_one(m)) is not None]
        return answers or None

    def handle_one(self, message: Any) -> dict[str, Any] | None:
        if not isinstance(message, dict):
            return _response(None, error=RpcError(INVALID_REQUEST, "invalid request"))
        ident = message.get("id")
        bad_id = isinstance(ident, bool) or not isinstance(ident, str | int | float)
        if ident is not None and bad_id:
            return _response(None, error=RpcError(INVALID_REQUEST, "invalid request"))
        method = message.get("method")
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str) or not method:
            return _response(ident, error=RpcError(INVALID_REQUEST, "invalid request"))
        notification = "id" not in message
        try:
            result = self.call(method, message.get("params"))
        except RpcError as err:
            return None if notification else _response(ident, error=err)
        return None if notification else _response(ident, result=result)

    def call(self, name: str, params: Any) -> Any:
        method = self.methods.get(name)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"the method {name} does not exist/is not available")
        args = method.decode(params)
        try:
            return method.handler(self.node, *args)
        except RpcError:
            raise
        except NodeError as err:
            raise node_error(err) from err
        except Exception as err:
            log.exception("JSON-RPC %s failed", name)
            raise RpcError(INTERNAL_ERROR, f"internal error: {type(err).__name__}") from err
