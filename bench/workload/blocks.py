"""Seeded block generator: a mix of transaction kinds over Zipf-distributed accounts.

``skew`` is the Zipf exponent over wallets (0 = uniform, ~1.2 = a few hot accounts), so
contention is a dial. Every transaction is a real signed EIP-1559 transaction with the
sender's next nonce, so one sender's transactions in a block form a nonce chain.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from eth.abc import SignedTransactionAPI

from bench.workload.contracts import compiled
from bench.workload.genesis import ETHER, GWEI, Genesis, Wallet, sign

KINDS = ("transfer", "erc20", "swap", "mint", "deploy", "revert")
GAS = {
    "transfer": 21_000,
    "erc20": 80_000,
    "swap": 200_000,
    "mint": 150_000,
    "deploy": 1_500_000,
    "revert": 80_000,
}


@dataclass(frozen=True)
class Mix:
    """Shares of each transaction kind; they are normalised, so only ratios matter."""

    shares: Mapping[str, float]

    @classmethod
    def parse(cls, text: str) -> Mix:
        """Parse ``transfer=0.2,erc20=0.5,swap=0.2,mint=0.1``."""
        shares: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            kind, sep, value = part.partition("=")
            if not sep or kind not in KINDS:
                raise ValueError(f"bad mix entry {part!r}: expected KIND=SHARE, KIND in {KINDS}")
            shares[kind] = float(value)
            if shares[kind] < 0:
                raise ValueError(f"bad mix entry {part!r}: shares cannot be negative")
        if not shares or sum(shares.values()) <= 0:
            raise ValueError(f"mix {text!r} has no positive share")
        return cls(shares)


DEFAULT_MIX = Mix({"transfer": 0.2, "erc20": 0.5, "swap": 0.2, "mint": 0.1})


class BlockGenerator:
    """Draws blocks from one genesis; remembers nonces so consecutive blocks chain."""

    def __init__(self, genesis: Genesis, mix: Mix, skew: float, seed: int) -> None:
        self.genesis = genesis
        self.mix = mix
        self.rng = random.Random(seed)
        self.nonces = dict(genesis.nonces)
        weights = [1.0 / (rank + 1) ** skew for rank in range(len(genesis.wallets))]
        order = list(genesis.wallets)
        self.rng.shuffle(order)
        self._wallets = order
        self._cum = list(itertools.accumulate(weights))
        self._kinds = list(mix.shares)
        self._kind_cum = list(itertools.accumulate(mix.shares[k] for k in self._kinds))
        self._token = compiled("token")
        self._pair = compiled("pair")
        self._nft = compiled("nft")

    def _wallet(self) -> Wallet:
        return self.rng.choices(self._wallets, cum_weights=self._cum)[0]

    def _next_nonce(self, wallet: Wallet) -> int:
        nonce = self.nonces.get(wallet.address, 0)
        self.nonces[wallet.address] = nonce + 1
        return nonce

    def transaction(self, kind: str) -> SignedTransactionAPI:
        g, rng = self.genesis, self.rng
        sender = self._wallet()
        to, value, data = self._wallet().address, 0, b""
        if kind == "transfer":
            value = rng.randint(1, 10**6) * GWEI
        elif kind == "erc20":
            data = self._token.calldata("transfer", to, rng.randint(1, 10**4) * ETHER)
            to = rng.choice((g.token_a, g.token_b))
        elif kind == "swap":
            token_in = rng.choice((g.token_a, g.token_b))
            data = self._pair.calldata("swap", token_in, rng.randint(1, 100) * ETHER, 0)
            to = g.pair
        elif kind == "mint":
            data, to = self._nft.calldata("mint"), g.nft
        elif kind == "deploy":
            data, to = self._token.deploy_data("Fresh", "NEW"), b""
        elif kind == "revert":
            data = self._token.calldata("transfer", to, 10**40)
            to = g.token_a
        else:
            raise ValueError(f"unknown transaction kind {kind!r}")
        tip = GWEI + rng.randint(0, GWEI)
        return sign(sender, self._next_nonce(sender), to, data, value, GAS[kind], tip)

    def block(self, n_txs: int) -> list[SignedTransactionAPI]:
        kinds = self.rng.choices(self._kinds, cum_weights=self._kind_cum, k=n_txs)
        return [self.transaction(kind) for kind in kinds]
