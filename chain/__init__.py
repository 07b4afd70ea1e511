"""What a chain is (layer 0): chain id and fork schedule, genesis, the dev chain, block env.

A block's life starts here: the spec picks the block's rules (py-evm VM class) by height and
time, the genesis gives block 0 and the pre-state, the block env carries what execution needs
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
from chain.env import BlockEnv, next_base_fee
from chain.genesis import (
    Genesis,
    GenesisAccount,
    GenesisError,
    genesis_header,
    load_genesis,
    parse_genesis,
)
from chain.spec import ChainSpec, ChainSpecError

__all__ = [
    "DEV_BALANCE",
    "DEV_CHAIN_ID",
    "DEV_MNEMONIC",
    "DEV_SPEC",
    "BlockEnv",
    "ChainSpec",
    "ChainSpecError",
    "DevAccount",
    "Genesis",
    "GenesisAccount",
    "GenesisError",
    "dev_accounts",
    "dev_genesis",
    "format_dev_accounts",
    "genesis_header",
    "load_genesis",
    "next_base_fee",
    "parse_genesis",
]
