"""The node's HTTP layer over the ``NodeAPI`` protocol: Ethereum JSON-RPC on ``POST /`` and
the ``/v1`` REST routes (elastic block space, the cluster, blocks, events) with ``/healthz``.

``create_app(node)`` serves both on one FastAPI app (docs at ``/docs``). Or mount the parts:
``create_rpc_router(node)`` (an ``EthereumAPI``), ``create_rest_router(node)`` (an
``ElasticAPI``); ``create_rpc_app(node)`` serves JSON-RPC alone. ``models`` holds the REST
schemas, built from the node's data classes; ``hexcodec`` geth's value codecs, ``jsonrpc``
the JSON-RPC 2.0 envelope (batches, notifications, errors), ``eth`` the methods and geth's
JSON shapes. It imports only ``coordinator.node_api`` of the node: no Ray, no py-evm objects.
"""

from api.app import (
    MAX_BODY_BYTES,
    REST_MAX_BODY_BYTES,
    BodyLimit,
    create_app,
    create_rpc_app,
    create_rpc_router,
    rpc_handler,
)
from api.eth import METHODS
from api.jsonrpc import Dispatcher, Method, Param, RpcError
from api.rest import create_rest_router

__all__ = [
    "MAX_BODY_BYTES",
    "METHODS",
    "REST_MAX_BODY_BYTES",
    "BodyLimit",
    "Dispatcher",
    "Method",
    "Param",
    "RpcError",
    "create_app",
    "create_rest_router",
    "create_rpc_app",
    "create_rpc_router",
    "rpc_handler",
]
