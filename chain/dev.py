"""The dev chain: the chain every Ethereum tool knows (anvil, hardhat, geth ``--dev``).

Used when a node starts with ``--dev``: its genesis funds the accounts of the standard test
mnemonic, so wallets, scripts and tests that assume ``0xf39F…2266`` and its well-known key
work unchanged; ``format_dev_accounts`` is what the node prints at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from eth_account import Account
from eth_utils import to_checksum_address

from chain.genesis import ZERO_ADDRESS, Genesis, GenesisAccount
from chain.spec import ChainSpec

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_DERIVATION_PATH = "m/44'/60'/0'/0/"
"""BIP-44 path prefix of the dev accounts; account ``i`` is at ``m/44'/60'/0'/0/i``."""
DEV_CHAIN_ID = 1337
DEV_GAS_LIMIT = 30_000_000
DEV_BASE_FEE = 10**9
DEV_BALANCE = 10_000 * 10**18
DEV_TIMESTAMP = 1_704_067_200
"""The dev genesis timestamp, fixed so its hash is too: 2024-01-01T00:00:00Z."""

DEV_SPEC = ChainSpec.london_from_genesis(
    DEV_CHAIN_ID,
    arrow_glacier_block=0,
    gray_glacier_block=0,
    terminal_total_difficulty=0,
    shanghai_time=0,
    cancun_time=0,
)
"""Every fork up to Cancun active from block 0, merged from the start."""


@dataclass(frozen=True)
class DevAccount:
    """A dev account: its 20-byte address and 32-byte private key."""

    address: bytes
    private_key: bytes


def dev_accounts(count: int = 10, mnemonic: str = DEV_MNEMONIC) -> list[DevAccount]:
    """The first ``count`` accounts of ``mnemonic`` on the BIP-44 Ethereum path."""
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    return [_derive(mnemonic, index) for index in range(count)]


@cache
def _derive(mnemonic: str, index: int) -> DevAccount:
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(mnemonic, account_path=f"{DEV_DERIVATION_PATH}{index}")
    return DevAccount(bytes.fromhex(account.address[2:]), bytes(account.key))


def dev_genesis(
    accounts: int = 10,
    balance: int = DEV_BALANCE,
    extra_alloc: Mapping[bytes, GenesisAccount] | None = None,
) -> Genesis:
    """The dev chain's genesis: ``accounts`` dev accounts with ``balance`` wei each, plus
    ``extra_alloc`` (which wins on a shared address); chain id 1337, Cancun from block 0."""
    alloc: dict[bytes, GenesisAccount] = {
        account.address: GenesisAccount(balance=balance) for account in dev_accounts(accounts)
    }
    alloc.update(extra_alloc or {})
    return Genesis(
        spec=DEV_SPEC,
        alloc=alloc,
        gas_limit=DEV_GAS_LIMIT,
        difficulty=0,
        timestamp=DEV_TIMESTAMP,
        coinbase=ZERO_ADDRESS,
        base_fee_per_gas=DEV_BASE_FEE,
        excess_blob_gas=0,
        blob_gas_used=0,
    )


def format_dev_accounts(
    accounts: Sequence[DevAccount],
    balance: int = DEV_BALANCE,
    mnemonic: str | None = DEV_MNEMONIC,
) -> str:
    """The start-up listing of the dev accounts, laid out as anvil prints it."""
    whole, fraction = divmod(balance, 10**18)
    lines = ["", "Available Accounts", "==================", ""]
    for index, account in enumerate(accounts):
        address = to_checksum_address(account.address)
        lines.append(f"({index}) {address} ({whole}.{fraction:018d} ETH)")
    lines += ["", "Private Keys", "==================", ""]
    for index, account in enumerate(accounts):
        lines.append(f"({index}) 0x{account.private_key.hex()}")
    if mnemonic is not None:
        lines += [
            "",
            "Wallet",
            "==================",
            f"Mnemonic:          {mnemonic}",
            f"Derivation path:   {DEV_DERIVATION_PATH}",
        ]
    return "\n".join(lines) + "\n"
