"""The node's HTTP layer: Ethereum JSON-RPC on ``POST /`` over the ``EthereumAPI`` protocol.

Mount it on a FastAPI app with ``app.include_router(create_rpc_router(node))``, or serve
``create_rpc_app(node)`` alone. ``hexcodec`` holds geth's value codecs, ``jsonrpc`` the
JSON-RPC 2.0 envelope (batches, notifications, errors), ``eth`` the methods and geth's JSON
shapes. It imports only ``coordinator.node_api`` of the node: no Ray, no py-evm objects.
"""

from api.app import MAX_BODY_BYTES, create_rpc_app, create_rpc_router
from api.eth import METHODS
from api.jsonrpc import Dispatcher, Method, Param, RpcError

__all__ = [
    "MAX_BODY_BYTES",
    "METHODS",
    "Dispatcher",
    "Method",
    "Param",
    "RpcError",
    "create_rpc_app",
    "create_rpc_router",
]
