"""The ``evmpp`` command (top of the product): what an operator runs.

``evmpp serve`` runs a node (``cli/serve.py``), ``evmpp replay`` replays recorded blocks
(``cli/replay.py``), ``evmpp ebs`` subscribes a dApp to elastic block space, cancels and shows
subscriptions, a client of a running node over HTTP (``cli/ebs.py``).
Demos and benchmarks that drive a node with load live in ``bench/``.
"""

from cli.main import build_parser, main

__all__ = ["build_parser", "main"]
