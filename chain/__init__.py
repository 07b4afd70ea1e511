"""What a chain is (layer 0): chain id and fork schedule, genesis, the dev chain, block env.

A block's life starts here: a named chain or a genesis file gives the spec, which picks the
block's rules (py-evm VM class) by height and time and checks that a recorded header fits them;
the genesis gives block 0 and the pre-state, the block env carries what execution needs
besides state. This package imports only py-evm, eth-*, rlp and eth-account.
"""

from chain.dev import (
    DEV_BALANCE,
    DEV_CHAIN_ID,
    DEV_MNEMONIC,
    DEV_SPEC,
    DevAccount,
    dev_accounts,
    dev_genesis,
    format_dev_accounts,
)
from chain.env import BlockEnv, SystemTransfer, next_base_fee
from chain.fork_fit import ForkMismatch, HeaderShape, fork_for_header, fork_name
from chain.genesis import (
    Genesis,
    GenesisAccount,
    GenesisError,
    genesis_header,
    load_genesis,
    parse_genesis,
)
from chain.networks import (
    FIXTURE_NETWORKS,
    HOLESKY,
    KNOWN_CHAINS,
    MAINNET,
    PUBLIC_CHAINS,
    SEPOLIA,
    chain_spec,
    known_chain_names,
)
from chain.spec import ChainSpec, ChainSpecError

__all__ = [
    "DEV_BALANCE",
    "DEV_CHAIN_ID",
    "DEV_MNEMONIC",
    "DEV_SPEC",
    "FIXTURE_NETWORKS",
    "HOLESKY",
    "KNOWN_CHAINS",
    "MAINNET",
    "PUBLIC_CHAINS",
    "SEPOLIA",
    "BlockEnv",
    "ChainSpec",
    "ChainSpecError",
    "DevAccount",
    "ForkMismatch",
    "Genesis",
    "GenesisAccount",
    "GenesisError",
    "HeaderShape",
    "SystemTransfer",
    "chain_spec",
    "dev_accounts",
    "dev_genesis",
    "fork_for_header",
    "fork_name",
    "format_dev_accounts",
    "genesis_header",
    "known_chain_names",
    "load_genesis",
    "next_base_fee",
    "parse_genesis",
]
