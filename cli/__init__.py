"""The ``evmpp`` command (top of the product): what an operator runs.

``evmpp serve`` runs a node (``cli/serve.py``), ``evmpp replay`` replays recorded blocks
(``cli/replay.py``). Demos and benchmarks that drive a node with load live in ``bench/``.
"""

from cli.main import build_parser, main

__all__ = ["build_parser", "main"]
