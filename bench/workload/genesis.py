"""Genesis for the synthetic chain: funded wallets, deployed contracts, token balances.

Contracts are deployed and funded by real transactions (deploy, batch mint, approvals, initial
liquidity) executed on py-evm, so the genesis state is exactly what the EVM produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth._utils.address import generate_contract_address
from eth.abc import SignedTransactionAPI
from eth.vm.forks.cancun import CancunVM
from eth.vm.forks.cancun.blocks import CancunBlockHeader
from eth_hash.auto import keccak
from eth_keys import keys

from bench.workload.contracts import compiled
from chain import DEV_SPEC, GenesisAccount
from chain import Genesis as ChainGenesis
from compute_unit.executor import BlockEnv, run_group
from compute_unit.state import DictSnapshot, WriteLayer
from storage.keys import AccountFields, acct_key

CHAIN_ID = 1337
GWEI = 10**9
BASE_FEE = GWEI
ETHER = 10**18
MAX_UINT = 2**256 - 1
COINBASE = b"\xfe" * 20
MINT_BATCH = 500


@dataclass(frozen=True)
class Wallet:
    key: keys.PrivateKey
    address: bytes

    @classmethod
    def derive(cls, seed: int, index: int) -> Wallet:
        secret = keccak(f"evmpp-wallet-{seed}-{index}".encode())
        key = keys.PrivateKey(secret)
        return cls(key, key.public_key.to_canonical_address())


def block_env(number: int, gas_limit: int, coinbase: bytes = COINBASE) -> BlockEnv:
    """A Cancun header for the synthetic chain (fixed base fee, 12 s slots)."""
    header = CancunBlockHeader(
        difficulty=0,
        block_number=number,
        gas_limit=gas_limit,
        timestamp=1_700_000_000 + 12 * number,
        coinbase=coinbase,
        base_fee_per_gas=BASE_FEE,
        mix_hash=keccak(b"prevrandao" + number.to_bytes(8, "big")),
    )
    prev_hashes = tuple(keccak(n.to_bytes(8, "big")) for n in range(number - 1, -1, -1))[:256]
    return BlockEnv(CancunVM, header, CHAIN_ID, prev_hashes)


def sign(
    wallet: Wallet,
    nonce: int,
    to: bytes,
    data: bytes = b"",
    value: int = 0,
    gas: int = 21_000,
    tip: int = GWEI,
) -> SignedTransactionAPI:
    """A signed EIP-1559 transaction on the synthetic chain."""
    builder = CancunVM.get_transaction_builder()
    unsigned = builder.new_unsigned_dynamic_fee_transaction(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=2 * BASE_FEE + tip,
        gas=gas,
        to=to,
        value=value,
        data=data,
        access_list=(),
    )
    return unsigned.as_signed_transaction(wallet.key)


@dataclass
class Genesis:
    """The state after setup, with the wallets and contract addresses blocks are built from."""

    state: dict[Any, Any]
    wallets: list[Wallet]
    deployer: Wallet
    token_a: bytes
    token_b: bytes
    pair: bytes
    nft: bytes
    nonces: dict[bytes, int] = field(default_factory=dict)


class _SetupRunner:
    """Executes setup transactions one block at a time, in process, failing loudly."""

    def __init__(self, state: DictSnapshot) -> None:
        self.state = state
        self.number = 0
        self.nonces: dict[bytes, int] = {}

    def tx(self, wallet: Wallet, to: bytes, data: bytes, gas: int) -> SignedTransactionAPI:
        nonce = self.nonces.get(wallet.address, 0)
        self.nonces[wallet.address] = nonce + 1
        return sign(wallet, nonce, to, data, gas=gas)

    def run(self, txs: list[SignedTransactionAPI]) -> None:
        env = block_env(self.number, gas_limit=sum(tx.gas for tx in txs))
        layer = WriteLayer(self.state)
        for outcome in run_group(env, layer, list(enumerate(txs))):
            if not outcome.success:
                raise RuntimeError(f"genesis setup transaction {outcome.index} failed")
        self.state.apply(layer.writes, layer.wiped)
        self.number += 1


def build_genesis(accounts: int, seed: int = 0, liquidity: int = 10**6 * ETHER) -> Genesis:
    """Fund ``accounts`` wallets, deploy two tokens, their pair and an NFT, mint and approve."""
    wallets = [Wallet.derive(seed, i) for i in range(accounts)]
    deployer = Wallet.derive(seed, -1)
    funded = {acct_key(w.address): AccountFields(balance=1000 * ETHER) for w in wallets}
    funded[acct_key(deployer.address)] = AccountFields(balance=10**6 * ETHER)
    setup = _SetupRunner(DictSnapshot(funded))
    token, pair, nft = compiled("token"), compiled("pair"), compiled("nft")
    address = [generate_contract_address(deployer.address, n) for n in range(4)]
    token_a, token_b, pair_address, nft_address = address
    setup.run(
        [
            setup.tx(deployer, b"", token.deploy_data("Token A", "TKA"), 2_000_000),
            setup.tx(deployer, b"", token.deploy_data("Token B", "TKB"), 2_000_000),
            setup.tx(deployer, b"", pair.deploy_data(token_a, token_b), 3_000_000),
            setup.tx(deployer, b"", nft.deploy_data("Workload NFT", 10**9), 2_000_000),
        ]
    )
    holders = [w.address for w in wallets] + [deployer.address]
    minting = []
    for tok in (token_a, token_b):
        for start in range(0, len(holders), MINT_BATCH):
            batch = holders[start : start + MINT_BATCH]
            data = token.calldata("mint_batch", batch, liquidity)
            minting.append(setup.tx(deployer, tok, data, 60_000 + 30_000 * len(batch)))
    setup.run(minting)
    approve = token.calldata("approve", pair_address, MAX_UINT)
    approvals = [
        setup.tx(w, tok, approve, 60_000)
        for w in [deployer, *wallets]
        for tok in (token_a, token_b)
    ]
    setup.run(approvals)
    seed_pool = pair.calldata("add_liquidity", liquidity // 2, liquidity // 2)
    setup.run([setup.tx(deployer, pair_address, seed_pool, 300_000)])
    return Genesis(
        state=setup.state.data,
        wallets=wallets,
        deployer=deployer,
        token_a=token_a,
        token_b=token_b,
        pair=pair_address,
        nft=nft_address,
        nonces=dict(setup.nonces),
    )


def chain_genesis(genesis: Genesis, gas_limit: int = 30_000_000) -> ChainGenesis:
    """The workload's state as a geth-format genesis of a Cancun chain (chain id 1337, base
    fee 1 gwei): what ``evmpp serve --genesis`` reads (``ChainGenesis.to_geth_json``)."""
    accounts: dict[bytes, dict[str, Any]] = {}
    codes = {key[1]: value for key, value in genesis.state.items() if key[0] == "code"}
    for key, value in genesis.state.items():
        if key[0] == "acct" and value is not None:
            account = accounts.setdefault(key[1], {"storage": {}})
            account.update(nonce=value.nonce, balance=value.balance)
            account["code"] = codes.get(value.code_hash, b"")
        elif key[0] == "slot" and value:
            accounts.setdefault(key[1], {"storage": {}})["storage"][key[2]] = value
    alloc = {
        address: GenesisAccount(
            fields.get("balance", 0),
            fields.get("nonce", 0),
            fields.get("code", b""),
            fields["storage"],
        )
        for address, fields in accounts.items()
    }
    return ChainGenesis(
        spec=DEV_SPEC,
        alloc=alloc,
        gas_limit=gas_limit,
        timestamp=1_700_000_000,
        base_fee_per_gas=BASE_FEE,
    )
