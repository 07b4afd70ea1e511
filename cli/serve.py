"""``evmpp serve``: a node on Ray, its JSON-RPC and REST API on one HTTP port.

The chain is ``--dev`` (chain id 1337, the standard test mnemonic's accounts, printed with
their keys as anvil does) or ``--genesis FILE`` (geth's genesis.json format). Ray is started
embedded, or joined (``--address``); the coordinator actor produces blocks, the verifier
replica checks them (``--no-verifier`` when the replica runs elsewhere). ``--data-dir`` keeps
the chain: a restart on it resumes from the last committed block.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from chain import (
    Genesis,
    GenesisError,
    dev_accounts,
    dev_genesis,
    format_dev_accounts,
    load_genesis,
)
from cluster.autoscaler import ScalingPolicy
from cluster.runtime import start_ray
from coordinator.producer import CoordinatorSettings

DEV = "dev"


def settings_from_file(path: Path) -> tuple[CoordinatorSettings, str]:
    """Coordinator settings and the chain (``dev`` or a genesis path) from a YAML file (the
    Helm chart's ConfigMap): the ``CoordinatorSettings`` fields, ``policy`` the
    ``ScalingPolicy`` ones."""
    data = yaml.safe_load(path.read_text()) or {}
    try:
        chain = str(data.pop("genesis", DEV))
        policy = ScalingPolicy(**data.pop("policy", {}))
        return CoordinatorSettings(**data, policy=policy), chain
    except TypeError as err:
        raise SystemExit(f"error: {path}: {err}") from err


def chain_of(source: str) -> Genesis:
    if source == DEV:
        return dev_genesis()
    try:
        return load_genesis(source)
    except (OSError, GenesisError, ValueError) as err:
        raise SystemExit(f"error: genesis {source}: {err}") from err


def node_settings(args: argparse.Namespace) -> tuple[CoordinatorSettings, str]:
    if args.config:
        settings, source = settings_from_file(Path(args.config))
    else:
        source = DEV
        settings = CoordinatorSettings(
            block_interval=args.interval,
            pbs_gas_limit=args.pbs_gas_limit,
            basic_cus=args.basic_cus,
            cu_cores=args.cu_cores,
            seed=args.seed,
        )
    if args.genesis:
        source = args.genesis
    overrides: dict[str, Any] = {}
    if args.no_verifier:
        overrides["verify"] = False
    if args.allow_unprotected_txs:
        overrides["allow_unprotected"] = True
    if args.history_blocks is not None:
        overrides["history_blocks"] = args.history_blocks
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)
    return settings, source


def api_server(args: argparse.Namespace) -> tuple[Any, Any]:
    """The uvicorn server of ``evmpp serve`` (not started) and the coordinator actor, which
    is producing blocks already."""
    import ray
    import uvicorn
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from api import create_app, rpc_handler
    from coordinator.coordinator import ACTOR_NAME, CoordinatorActor, RayNode

    settings, source = node_settings(args)
    genesis = chain_of(source)
    if source == DEV:
        print(format_dev_accounts(dev_accounts()), file=sys.stderr)
    start_ray(num_cpus=args.cpus, address=args.address)
    # The coordinator runs on this process's node, where --data-dir is: a node that joins a
    # cluster (a Kubernetes head pod) has the chain's volume, the other nodes do not.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = CoordinatorActor.options(
        name=ACTOR_NAME, get_if_exists=True, scheduling_strategy=here
    ).remote(genesis, settings, args.data_dir or None, args.hints or None, rpc_handler)
    ray.get(actor.start.remote())
    app = create_app(RayNode(actor, rpc=True))
    # A bounded graceful shutdown: SIGTERM must leave time to close the chain's stores
    # within the pod's termination grace period.
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=10
    )
    return _QuietServer(config), actor


def _quiet_server_class() -> type:
    import contextlib

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn's server, returning after its graceful shutdown on SIGINT or SIGTERM
        (uvicorn raises the signal again inside its loop, which cancels the app's lifespan
        with a traceback), so ``serve`` can shut the node down in order."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return QuietServer


def _QuietServer(config: Any) -> Any:  # noqa: N802  (a class, made where uvicorn is imported)
    return _quiet_server_class()(config)


def serve(args: argparse.Namespace) -> int:
    import ray

    server, actor = api_server(args)
    print(
        f"evmpp: JSON-RPC on http://{args.host}:{args.port} (POST /), REST under /v1, "
        "docs at /docs",
        file=sys.stderr,
    )
    try:
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C: uvicorn forced its exit
        pass
    finally:  # stop producing and close the chain's stores before Ray goes away
        ray.get(actor.shutdown.remote(), timeout=60)
    return 0


def add_parser(commands: Any) -> None:
    p = commands.add_parser("serve", help="run a node: JSON-RPC and the REST API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8545)
    chain = p.add_mutually_exclusive_group()
    chain.add_argument(
        "--dev", action="store_true", help="the dev chain: id 1337, 10 funded test accounts"
    )
    chain.add_argument("--genesis", default="", help="a geth-format genesis.json")
    p.add_argument("--address", default=None, help="join this Ray cluster instead")
    p.add_argument("--cpus", type=int, default=16, help="logical CPUs of an embedded Ray")
    p.add_argument("--interval", type=float, default=1.0, help="block interval in seconds")
    p.add_argument("--pbs-gas-limit", type=int, default=None, help="default: the genesis gas limit")
    p.add_argument("--basic-cus", type=int, default=1)
    p.add_argument("--cu-cores", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", default="", help="keep the chain here (resumed on restart)")
    p.add_argument("--hints", default="", help="keep the hint table here")
    p.add_argument("--config", default="", help="settings file (YAML); overrides the above")
    p.add_argument(
        "--no-verifier",
        action="store_true",
        help="run no verifier replica (one runs on other hardware)",
    )
    p.add_argument(
        "--history-blocks",
        type=int,
        default=None,
        help="keep state readable at this many past blocks (default 128, as geth)",
    )
    p.add_argument(
        "--allow-unprotected-txs",
        action="store_true",
        help="accept transactions without EIP-155 replay protection (geth's flag)",
    )
    p.set_defaults(func=serve)
