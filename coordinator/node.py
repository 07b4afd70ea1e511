"""The node as its clients see it: ``NodeAPI`` over the producer, the chain data and the state.

Reads answer from what is committed: blocks, receipts, logs and the transaction index from the
chain data (``storage/chaindata.py``), pending transactions from the pool, state at a block
from State Storage with the chain data's history of the blocks since (the last
``history_blocks`` stay readable, as geth keeps 128). Calls and gas estimates run on py-evm
over that state (``compute_unit/calls.py``); writes go through intake. Every method is safe
to call from many threads while blocks are produced.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from eth.abc import SignedTransactionAPI

from chain import BlockEnv, next_base_fee
from compute_unit.calls import Message, call, estimate_gas
from coordinator.admission import blob_base_fee_for
from coordinator.node_api import (
    EXECUTION_REVERTED,
    LIMIT_EXCEEDED,
    AccountView,
    BlockRecord,
    BlockRef,
    BlockView,
    CallRequest,
    CallResult,
    ClusterState,
    Event,
    FeeHistoryView,
    Health,
    LogFilter,
    LogView,
    NodeError,
    NodeInfo,
    PoolState,
    ReceiptView,
    SubscriptionAccepted,
    SubscriptionState,
    TxStatusView,
    TxView,
)
from coordinator.producer import BlockProducer
from coordinator.scaling import PBS
from coordinator.views import DecodedBlock, header_view, log_view, receipt_view, tx_view
from ebs.subscription import Cancel, Subscribe, subscription_id
from storage.chaindata import HistoryUnavailable, LogQuery, RangeTooLarge, StoredBlock
from storage.keys import StateKey, acct_key, code_key, slot_key

CLIENT_VERSION = "evmpp/v0.1.0/python"
RPC_GAS_CAP = 50_000_000  # geth's --rpc.gascap
FEE_HISTORY_MAX = 1024
TIP_BLOCKS, TIP_PERCENTILE = 20, 60  # geth's gas price oracle
DEFAULT_TIP = 10**9  # suggested when recent blocks hold no transactions
MAX_BLOB_GAS = 786_432
BLOCK_CACHE = 256


class _StateAt:
    """The state at the end of a block: State Storage, rewound by the chain data's history."""

    def __init__(self, node: Node, number: int) -> None:
        self.node, self.number = node, number

    def get(self, key: StateKey) -> Any:
        return self.node.value_at(key, self.number)


class Node:
    """``NodeAPI`` in process."""

    def __init__(self, producer: BlockProducer) -> None:
        self.producer = producer
        self.data = producer.data
        self.chain_id = producer.genesis.spec.chain_id
        # committed blocks never change: decoded once, kept for the queries that follow
        # (receipt polling asks for the same few blocks over and over)
        self._block = lru_cache(maxsize=BLOCK_CACHE)(self._decode)

    # -- chain ------------------------------------------------------------------------------
    def info(self) -> NodeInfo:
        return NodeInfo(CLIENT_VERSION, self.chain_id, self.chain_id)

    def head(self) -> int:
        return self.producer.number

    def resolve(self, ref: BlockRef) -> int:
        head = self.head()
        if ref == "earliest":
            return 0
        if isinstance(ref, str):  # latest, pending, safe, finalized: one node, instant finality
            return head
        if ref > head:
            raise NodeError("header not found")
        return ref

    def _stored(self, number: int) -> DecodedBlock | None:
        return self._block(number) if 0 <= number <= self.head() else None

    def _decode(self, number: int) -> DecodedBlock:
        return DecodedBlock(self.data.block(number), self.producer.builder.vm_at)

    def block_by_number(self, number: int, full: bool) -> BlockView | None:
        decoded = self._stored(number)
        if decoded is None:
            return None
        block, header = decoded.block, header_view(decoded.header, decoded.size)
        if full:
            txs = decoded.txs()
            return BlockView(
                header, tuple(tx_view(tx, block.senders[i], block, i) for i, tx in enumerate(txs))
            )
        return BlockView(header, tuple(block.tx_hashes))

    def block_by_hash(self, block_hash: bytes, full: bool) -> BlockView | None:
        number = self.data.number_of(block_hash)
        return None if number is None else self.block_by_number(number, full)

    # -- state ------------------------------------------------------------------------------
    def value_at(self, key: StateKey, number: int) -> Any:
        try:
            return self.data.value_at(key, number, self.producer.chain.committer.ss.get)
        except HistoryUnavailable as err:
            raise NodeError(str(err)) from err

    def account(self, address: bytes, number: int) -> AccountView:
        fields = self.value_at(acct_key(address), number)
        if fields is None:
            return AccountView(0, 0, b"")
        code = self.value_at(code_key(fields.code_hash), number) or b""
        return AccountView(fields.nonce, fields.balance, code)

    def storage_at(self, address: bytes, slot: int, number: int) -> int:
        return self.value_at(slot_key(address, slot), number) or 0

    def pending_nonce(self, address: bytes) -> int:
        with self.producer.lock:
            return self.producer.pool.pending_nonce(address)

    def _call_env(self, number: int) -> BlockEnv:
        decoded = self._stored(number)
        if decoded is None:
            raise NodeError("header not found")
        block, header = decoded.block, decoded.header
        recent = tuple(self.producer.builder.ancestors)  # newest first, the head's first
        if recent and recent[0] == block.hash:
            ancestors = list(recent[1:])
        else:
            ancestors = [self.data.hash_of(n) for n in range(number - 1, max(-1, number - 257), -1)]
        return BlockEnv(decoded.vm_class, header, self.chain_id, tuple(ancestors))

    def _message(self, request: CallRequest, gas: int) -> Message:
        access = tuple((entry.address, entry.storage_keys) for entry in request.access_list)
        price = request.gas_price or request.max_fee_per_gas or 0
        return Message(
            request.sender or b"\x00" * 20,
            request.to or b"",
            gas,
            request.value,
            request.data,
            price,
            access,
        )

    def _gas_cap(self, request: CallRequest, env: BlockEnv) -> int:
        return request.gas or min(RPC_GAS_CAP, max(env.header.gas_limit, 21_000))

    def call(self, request: CallRequest, number: int) -> CallResult:
        env = self._call_env(number)
        outcome = call(
            env, _StateAt(self, number), self._message(request, self._gas_cap(request, env))
        )
        if outcome.invalid is not None:
            raise NodeError(outcome.invalid)
        return CallResult(outcome.success, outcome.output, outcome.gas_used, outcome.error)

    def estimate_gas(self, request: CallRequest, number: int) -> int:
        env = self._call_env(number)
        cap = self._gas_cap(request, env)
        price = request.gas_price or request.max_fee_per_gas or 0
        capped = False
        if price:  # as geth: no more gas than the sender can pay for at that price
            sender = request.sender or b"\x00" * 20
            available = self.account(sender, number).balance - request.value
            if available < 0:
                raise NodeError("insufficient funds for transfer")
            capped = available // price < cap
            cap = min(cap, available // price)
        estimate = estimate_gas(env, _StateAt(self, number), self._message(request, cap), cap)
        if estimate.gas is not None:
            return estimate.gas
        failure = estimate.failure
        if failure.invalid is not None and not capped:
            raise NodeError(failure.invalid)
        if failure.error == "execution reverted":
            raise NodeError("execution reverted", EXECUTION_REVERTED, failure.output)
        raise NodeError(f"gas required exceeds allowance ({cap})")

    # -- transactions -----------------------------------------------------------------------
    def send_raw_transaction(self, raw: bytes) -> bytes:
        return self.producer.intake.submit(raw).hash

    def _located(self, tx_hash: bytes) -> tuple[DecodedBlock, int] | None:
        location = self.data.tx_location(tx_hash)
        if location is None or location[0] > self.head():
            return None
        return self._block(location[0]), location[1]

    def transaction(self, tx_hash: bytes) -> TxView | None:
        located = self._located(tx_hash)
        if located is not None:
            decoded, index = located
            block = decoded.block
            return tx_view(decoded.tx(index), block.senders[index], block, index)
        with self.producer.lock:
            tx = self.producer.pool.get(tx_hash)
        if tx is None and self._located(tx_hash) is not None:  # included meanwhile
            return self.transaction(tx_hash)
        return None if tx is None else tx_view(tx, tx.sender)

    def receipt(self, tx_hash: bytes) -> ReceiptView | None:
        located = self._located(tx_hash)
        if located is None:
            return None
        decoded, index = located
        excess = getattr(decoded.header, "excess_blob_gas", None)
        blob_fee = None if excess is None else blob_base_fee_for(excess)
        return receipt_view(decoded, index, blob_fee)

    def tx_status(self, tx_hash: bytes) -> TxStatusView:
        located = self._located(tx_hash)
        if located is not None:
            return TxStatusView(tx_hash, "included", located[0].block.number)
        with self.producer.lock:
            status = self.producer.pool.status(tx_hash)
        if status is not None:
            return TxStatusView(tx_hash, status)
        located = self._located(tx_hash)  # included meanwhile (the pool let go of it)
        if located is not None:
            return TxStatusView(tx_hash, "included", located[0].block.number)
        dropped = self.data.dropped(tx_hash)
        if dropped is not None:
            return TxStatusView(tx_hash, "dropped", dropped.block_number, dropped.reason)
        return TxStatusView(tx_hash, "unknown")

    def logs(self, query: LogFilter) -> list[LogView]:
        if query.block_hash is not None:
            number = self.data.number_of(query.block_hash)
            if number is None:
                raise NodeError("unknown block")
            low = high = number
        else:
            low, high = self.resolve(query.from_block), self.resolve(query.to_block)
        topics = tuple(None if t is None else frozenset(t) for t in query.topics)
        search = LogQuery(low, high, frozenset(query.addresses), topics)
        try:
            found = self.data.logs(search)
        except RangeTooLarge as err:
            raise NodeError(str(err), LIMIT_EXCEEDED) from err
        blocks: dict[int, StoredBlock] = {}
        views = []
        for item in found:
            if item.block_number not in blocks:
                blocks[item.block_number] = self._block(item.block_number).block
            views.append(log_view(blocks[item.block_number], item.log))
        return views

    # -- fees -------------------------------------------------------------------------------
    def fee_history(
        self, count: int, newest: int, percentiles: tuple[float, ...] | None
    ) -> FeeHistoryView:
        count = max(1, min(count, FEE_HISTORY_MAX, newest + 1))
        oldest = newest - count + 1
        base_fees, ratios, rewards, blob_fees, blob_ratios = [], [], [], [], []
        header = None
        for number in range(oldest, newest + 1):
            decoded = self._block(number)
            block, header = decoded.block, decoded.header
            base_fees.append(getattr(header, "base_fee_per_gas", None) or 0)
            ratios.append(header.gas_used / header.gas_limit if header.gas_limit else 0.0)
            excess = getattr(header, "excess_blob_gas", None)
            blob_fees.append(0 if excess is None else blob_base_fee_for(excess))
            blob_ratios.append((getattr(header, "blob_gas_used", 0) or 0) / MAX_BLOB_GAS)
            if percentiles is not None:
                rewards.append(_rewards(block, percentiles))
        base_fees.append(next_base_fee(header) if hasattr(header, "base_fee_per_gas") else 0)
        blob_fees.append(blob_fees[-1])
        return FeeHistoryView(
            oldest,
            tuple(base_fees),
            tuple(ratios),
            None if percentiles is None else tuple(rewards),
            tuple(blob_fees),
            tuple(blob_ratios),
        )

    def max_priority_fee(self) -> int:
        head = self.head()
        tips = []
        for number in range(max(1, head - TIP_BLOCKS + 1), head + 1):
            tips.extend(self._block(number).block.effective_tips)
        if not tips:
            return DEFAULT_TIP
        tips.sort()
        return tips[(len(tips) - 1) * TIP_PERCENTILE // 100]

    def gas_price(self) -> int:
        header = self._block(self.head()).header
        base = next_base_fee(header) if hasattr(header, "base_fee_per_gas") else 0
        return base + self.max_priority_fee()

    # -- the /v1 side -----------------------------------------------------------------------
    def submit(self, raw: bytes) -> bytes:
        return self.send_raw_transaction(raw)

    def _request(self, raw: bytes) -> tuple[SignedTransactionAPI, Subscribe | Cancel]:
        tx = self.producer.intake.decode(raw)
        return tx, self.producer.book.parse_request(tx, self.producer.state)

    def subscribe(self, raw: bytes) -> SubscriptionAccepted:
        tx, request = self._request(raw)
        if not isinstance(request, Subscribe):
            raise NodeError("not a subscription: the payload type must be 0x01")
        tx_hash = self.submit(raw)
        return SubscriptionAccepted(subscription_id(tx.hash), tx_hash, "pending")

    def cancel(self, subscription: str, raw: bytes) -> SubscriptionAccepted:
        _, request = self._request(raw)
        if not isinstance(request, Cancel) or request.id != subscription:
            raise NodeError(f"not a cancellation of subscription {subscription}")
        return SubscriptionAccepted(subscription, self.submit(raw), "cancelling")

    def subscription(self, subscription: str) -> SubscriptionState | None:
        with self.producer.lock:
            return self.producer.book.state(subscription)

    def subscriptions(self) -> list[SubscriptionState]:
        with self.producer.lock:
            return self.producer.book.states()

    def cluster(self) -> ClusterState:
        producer = self.producer
        with producer.lock:
            pools = {
                name: PoolState(tuple(cu.name for cu in pool.cus), pool.size)
                for name, pool in producer.pools.items()
            }
            votes = tuple(producer.events.of_kind("vote")[-5:])
            return ClusterState(
                pools,
                {PBS: producer.scaler.load_per_cu()},
                producer.scaler.pending_cus,
                votes,
                producer.verifier_state(),
                producer.halted,
            )

    def block_record(self, number: int | None) -> BlockRecord | None:
        return self.producer.record(number)

    def events(self, since: int) -> list[Event]:
        return self.producer.events.since(since)

    def health(self) -> Health:
        producer = self.producer
        # verifier_state() collects the replica's verdicts (under the producer's lock)
        if producer.halted is not None:
            return Health(False, self.head(), f"block production halted: {producer.halted}")
        lag = producer.verifier_state().lag
        if lag > producer.settings.verifier_max_lag:
            return Health(False, self.head(), f"the verifier is {lag} blocks behind")
        return Health(True, self.head())


def _rewards(block: StoredBlock, percentiles: tuple[float, ...]) -> tuple[int, ...]:
    """geth's fee history rewards: the tip at each gas-weighted percentile of the block."""
    if not block.effective_tips:
        return tuple(0 for _ in percentiles)
    ordered = sorted(zip(block.effective_tips, block.gas_used_per_tx, strict=True))
    rewards, index, cumulative = [], 0, ordered[0][1]
    for percentile in percentiles:
        threshold = block.gas_used * percentile / 100
        while cumulative < threshold and index < len(ordered) - 1:
            index += 1
            cumulative += ordered[index][1]
        rewards.append(ordered[index][0])
    return tuple(rewards)
