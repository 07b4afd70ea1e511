"""The ``evmpp`` command line: ``serve`` (a node), ``replay`` (recorded blocks), ``blocktest``
(Ethereum's BlockchainTests) and ``ebs``
(subscribe a dApp to elastic block space, cancel, status)."""

from __future__ import annotations

import argparse
import sys

from cli import blocktest, ebs, replay, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evmpp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(commands)
    replay.add_parser(commands)
    blocktest.add_parser(commands)
    ebs.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("workers", "basic_cus", "cu_cores"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            build_parser().error(f"--{name.replace('_', '-')} must be at least 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
