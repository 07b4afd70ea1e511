"""Named chains: the fork schedules a node or a replay is started with, by name or by file.

Consulted once, before the first block is read: ``evmpp replay --chain NAME|FILE`` (and a
``chain.json`` beside a block folder) resolve here to the ``ChainSpec`` whose ``vm_class_at``
then picks every block's rules.

Two kinds of names:

- public networks, as geth's ``params/config.go`` states them: ``mainnet``, ``sepolia``,
  ``holesky`` (lower case, as geth's ``--mainnet`` / ``--sepolia`` / ``--holesky`` flags);
- the Ethereum Foundation fixture networks, as the ``network`` field of a BlockchainTests
  file spells them (``Cancun``, ``BerlinToLondonAt5``, ...), with chain id 1 as the fixtures
  use. Their schedules follow geth's ``tests/init.go``, which defines them.

Anything else is read as the path of a geth ``genesis.json`` (its ``config``) or of a bare
geth ``config`` object. A name that is neither raises ``ChainSpecError`` listing the names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

from chain.spec import ChainSpec, ChainSpecError

MAINNET = ChainSpec(
    chain_id=1,
    homestead_block=1_150_000,
    dao_fork_block=1_920_000,
    dao_fork_support=True,
    eip150_block=2_463_000,
    eip155_block=2_675_000,
    eip158_block=2_675_000,
    byzantium_block=4_370_000,
    constantinople_block=7_280_000,
    petersburg_block=7_280_000,
    istanbul_block=9_069_000,
    muir_glacier_block=9_200_000,
    berlin_block=12_244_000,
    london_block=12_965_000,
    arrow_glacier_block=13_773_000,
    gray_glacier_block=15_050_000,
    terminal_total_difficulty=58_750_000_000_000_000_000_000,
    shanghai_time=1_681_338_455,
    cancun_time=1_710_338_135,
    prague_time=1_746_612_311,
)
"""Ethereum mainnet. The merge came by total difficulty (block 15,537,394), which the
config does not state; a caller without total difficulty reads it off the header."""

SEPOLIA = ChainSpec.london_from_genesis(
    11_155_111,
    terminal_total_difficulty=17_000_000_000_000_000,
    merge_netsplit_block=1_735_371,
    shanghai_time=1_677_557_088,
    cancun_time=1_706_655_072,
    prague_time=1_741_159_776,
)
"""Sepolia: London from genesis, merged by total difficulty (block 1,450,409), netsplit
block 1,735,371."""

HOLESKY = ChainSpec.london_from_genesis(
    17_000,
    muir_glacier_block=None,  # geth's config names none (no difficulty bomb to defuse)
    terminal_total_difficulty=0,
    shanghai_time=1_696_000_704,
    cancun_time=1_707_305_664,
    prague_time=1_740_434_112,
)
"""Holesky: proof-of-stake from genesis."""

PUBLIC_CHAINS: dict[str, ChainSpec] = {"mainnet": MAINNET, "sepolia": SEPOLIA, "holesky": HOLESKY}

FIXTURE_CHAIN_ID = 1


def _fixture_networks() -> dict[str, ChainSpec]:
    """geth's ``tests/init.go`` ``Forks``: each network adds its fork to the one before."""
    s = ChainSpec(chain_id=FIXTURE_CHAIN_ID)
    nets: dict[str, ChainSpec] = {"Frontier": s}
    nets["FrontierToHomesteadAt5"] = replace(s, homestead_block=5)
    s = nets["Homestead"] = replace(s, homestead_block=0)
    nets["HomesteadToDaoAt5"] = replace(s, dao_fork_block=5, dao_fork_support=True)
    nets["HomesteadToEIP150At5"] = replace(s, eip150_block=5)
    s = nets["EIP150"] = replace(s, eip150_block=0)
    s = nets["EIP158"] = replace(s, eip155_block=0, eip158_block=0)
    nets["EIP158ToByzantiumAt5"] = replace(s, byzantium_block=5)
    s = nets["Byzantium"] = replace(s, byzantium_block=0)
    nets["ByzantiumToConstantinopleFixAt5"] = replace(s, constantinople_block=5, petersburg_block=5)
    # Constantinople as first specified (EIP-1283 still in): geth keeps Petersburg out of
    # reach, since a config without petersburgBlock would follow Constantinople's.
    nets["Constantinople"] = replace(s, constantinople_block=0, petersburg_block=10_000_000)
    s = nets["ConstantinopleFix"] = replace(s, constantinople_block=0, petersburg_block=0)
    s = nets["Istanbul"] = replace(s, istanbul_block=0)
    s = replace(s, muir_glacier_block=0)
    s = nets["Berlin"] = replace(s, berlin_block=0)
    nets["BerlinToLondonAt5"] = replace(s, london_block=5)
    s = nets["London"] = replace(s, london_block=0)
    s = replace(s, arrow_glacier_block=0, gray_glacier_block=0)
    # The merge when the total difficulty reaches 0xC0000 (block 6 in every such fixture)
    nets["ArrowGlacierToParisAtDiffC0000"] = replace(s, terminal_total_difficulty=0xC0000)
    s = nets["Paris"] = nets["Merge"] = replace(s, terminal_total_difficulty=0)
    nets["ParisToShanghaiAtTime15k"] = replace(s, shanghai_time=15_000)
    s = nets["Shanghai"] = replace(s, shanghai_time=0)
    nets["ShanghaiToCancunAtTime15k"] = replace(s, cancun_time=15_000)
    s = nets["Cancun"] = replace(s, cancun_time=0)
    nets["CancunToPragueAtTime15k"] = replace(s, prague_time=15_000)
    nets["Prague"] = replace(s, prague_time=0)
    return nets


FIXTURE_NETWORKS: dict[str, ChainSpec] = _fixture_networks()

KNOWN_CHAINS: dict[str, ChainSpec] = {**PUBLIC_CHAINS, **FIXTURE_NETWORKS}


def known_chain_names() -> list[str]:
    """Every built-in name: the public networks first, then the fixture networks."""
    return list(KNOWN_CHAINS)


def chain_spec(name_or_path: str | PathLike[str]) -> ChainSpec:
    """The spec named ``name_or_path`` (see the module doc), or read from that JSON file.

    Raises ``ChainSpecError`` for a name that is neither known nor an existing file (listing
    the known names), for a file that is not JSON, and for a malformed config (naming the
    field, as ``ChainSpec.from_geth_config`` does).
    """
    name = str(name_or_path)
    if name in KNOWN_CHAINS:
        return KNOWN_CHAINS[name]
    path = Path(name)
    if not path.is_file():
        raise ChainSpecError(
            f"chain {name!r}: not a known chain nor a file; known chains: "
            + ", ".join(known_chain_names())
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ChainSpecError(f"chain {name!r}: cannot read it: {err}") from err
    except json.JSONDecodeError as err:
        raise ChainSpecError(f"chain {name!r}: not valid JSON: {err}") from err
    return spec_from_json(data, source=name)


def spec_from_json(data: Any, source: str = "chain") -> ChainSpec:
    """The spec of decoded JSON: a geth genesis (with ``config``), a bare geth config (with
    ``chainId``), or ``{"chain": NAME}`` naming a built-in chain."""
    if not isinstance(data, Mapping):
        raise ChainSpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if "chain" in data:
        named = data["chain"]
        if not isinstance(named, str) or named not in KNOWN_CHAINS:
            raise ChainSpecError(
                f"{source}: chain {named!r} is not a known chain; known chains: "
                + ", ".join(known_chain_names())
            )
        return KNOWN_CHAINS[named]
    config = data.get("config", data)
    try:
        return ChainSpec.from_geth_config(config)
    except ChainSpecError as err:
        raise ChainSpecError(f"{source}: {err}") from err
