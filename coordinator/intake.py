"""Intake: a raw transaction from a client to the pool, or a JSON-RPC error and nothing kept.

The first step of a transaction's life on the node. As geth's txpool does, the raw bytes are
decoded in their network form (a blob transaction must carry its sidecar), checked on their
own against the next block's rules (``coordinator/admission.py``: type, size, init code, gas,
fees, signature, chain id, intrinsic gas) and against the latest state with what the sender
already has pooled (nonce too low, funds for all of it), then given to the pool
(``coordinator/txpool.py``: pending or queued, replacement, caps). A registry transaction (an
EBS subscription or cancellation) is checked as a request too. Whatever is refused raises
``NodeError`` with geth's message and leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable

from eth.abc import SignedTransactionAPI
from eth.constants import EMPTY_SHA3
from eth_utils import ValidationError

from chain import BlockEnv
from compute_unit.state import StateReader
from coordinator.admission import AdmissionRules, check_tx, check_with_state, decode_raw
from coordinator.locks import FairRLock
from coordinator.node_api import NodeError
from coordinator.subscriptions import SubscriptionBook
from coordinator.txpool import PoolError, TxPool
from ebs.subscription import is_registry_call
from storage.keys import acct_key


class Intake:
    def __init__(
        self,
        pool: TxPool,
        book: SubscriptionBook,
        next_env: Callable[[], BlockEnv],
        state: Callable[[], StateReader],
        lock: FairRLock,
        allow_unprotected: bool = False,
        record_evicted: Callable[[], None] | None = None,
        head_key: Callable[[], object] = lambda: None,
        space_gas_limit: Callable[[bytes | None], int] | None = None,
    ) -> None:
        """``next_env``: the env of the block being filled next (its rules apply);
        ``state``: the latest committed state; ``lock``: the node's, shared with block
        building (the pool and the subscriptions change under it); ``record_evicted``:
        called after each addition to record what the pool evicted for it (a replaced
        transaction, one pushed out by the caps), so the node can answer for it;
        ``head_key``: what the next block's rules depend on (the head, the gas cap): the
        rules are made again only when it changes; ``space_gas_limit``: the gas limit of the
        block space a transaction to an address goes to (a transaction over it would wait in
        the pool for ever: geth's "exceeds block gas limit")."""
        self.head_key = head_key
        self.space_gas_limit = space_gas_limit
        self._rules: tuple[object, AdmissionRules] | None = None
        self.pool = pool
        self.book = book
        self.next_env = next_env
        self.state = state
        self.lock = lock
        self.allow_unprotected = allow_unprotected
        self.record_evicted = record_evicted

    def rules(self) -> AdmissionRules:
        """The next block's rules (base fee, gas limit, fork), made once per head: making
        them builds a header from the parent, which costs more than checking a
        transaction."""
        key = self.head_key()
        cached = self._rules
        if cached is not None and key is not None and cached[0] == key:
            return cached[1]
        rules = AdmissionRules.from_env(self.next_env(), allow_unprotected=self.allow_unprotected)
        self._rules = (key, rules)
        return rules

    def decode(self, raw: bytes) -> SignedTransactionAPI:
        try:
            return decode_raw(self.rules(), raw, from_network=True)
        except ValidationError as err:
            raise NodeError(str(err)) from err

    def submit(self, raw: bytes) -> SignedTransactionAPI:
        """Admit ``raw`` into the pool; the transaction (as a block will hold it)."""
        rules = self.rules()
        try:
            tx = decode_raw(rules, raw, from_network=True)
            body = raw if raw[:1] != b"\x03" else None  # a blob tx arrives with its sidecar
            sender = check_tx(rules, tx, body)
        except ValidationError as err:
            raise NodeError(str(err)) from err
        state = self.state()
        with self.lock:
            if self.space_gas_limit is not None and tx.gas > self.space_gas_limit(tx.to or None):
                raise NodeError("exceeds block gas limit")
            if tx.hash in self.pool:
                raise NodeError("already known")
            account = state.get(acct_key(sender))
            try:
                check_with_state(
                    tx,
                    sender,
                    account.nonce if account else 0,
                    account.balance if account else 0,
                    code_hash=account.code_hash if account else EMPTY_SHA3,
                    allow_gap=True,
                    pool=True,
                )
            except ValidationError as err:
                raise NodeError(str(err)) from err
            if is_registry_call(tx):
                self.book.check(tx, state)
            try:
                self.pool.add(tx, sender, rules.base_fee or 0)
            except PoolError as err:
                raise NodeError(str(err)) from err
            finally:  # a refused one can have evicted others too (the caps)
                if self.record_evicted is not None:
                    self.record_evicted()
        return tx
