"""Where the recorded mainnet blocks are: ``$EVMPP_MAINNET_BLOCKS``, else
``../shared/mainnet-blocks`` beside the repository (as laid out for development and CI)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def mainnet_blocks_dir() -> Path:
    configured = os.environ.get("EVMPP_MAINNET_BLOCKS")
    path = Path(configured) if configured else REPO.parent / "shared" / "mainnet-blocks"
    if not path.is_dir():
        raise FileNotFoundError(
            f"mainnet blocks not found at {path}; set EVMPP_MAINNET_BLOCKS to their folder"
        )
    return path
