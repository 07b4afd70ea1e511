"""The transaction pool (coordinator/txpool.py): geth legacypool behaviour, on real signed txs."""

from __future__ import annotations

from types import SimpleNamespace

import eth_keys
import pytest
from eth.vm.forks.cancun import CancunVM
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.txpool import (
    ACCOUNT_QUEUE_LIMIT,
    EXPIRED,
    NO_FUNDS,
    PENDING_LIMIT,
    QUEUE_LIMIT,
    REPLACED,
    STALE_NONCE,
    UNDERPRICED,
    Evicted,
    PoolConfig,
    PoolError,
    TxPool,
    tx_cost,
)

BUILDER = CancunVM.get_transaction_builder()
KEYS = [eth_keys.keys.PrivateKey(bytes([i + 1]) * 32) for i in range(8)]
ADDRS = [k.public_key.to_canonical_address() for k in KEYS]
A, B, C, D, E = ADDRS[:5]
RICH = 10**30
BASE_FEE = 1
_signed: dict[tuple, object] = {}


def tx(sender: int, nonce: int, fee: int = 10, tip: int | None = None, gas=21000, value=0):
    """A signed EIP-1559 transfer from ADDRS[sender] (tip defaults to the fee cap)."""
    tip = fee if tip is None else tip
    key = (sender, nonce, fee, tip, gas, value)
    if key not in _signed:
        _signed[key] = BUILDER.new_unsigned_dynamic_fee_transaction(
            chain_id=1337,
            nonce=nonce,
            max_priority_fee_per_gas=tip,
            max_fee_per_gas=fee,
            gas=gas,
            to=b"\x11" * 20,
            value=value,
            data=b"",
            access_list=(),
        ).as_signed_transaction(KEYS[sender])
    return _signed[key]


def legacy_tx(sender: int, nonce: int, gas_price: int):
    key = ("legacy", sender, nonce, gas_price)
    if key not in _signed:
        _signed[key] = BUILDER.create_unsigned_transaction(
            nonce=nonce, gas_price=gas_price, gas=21000, to=b"\x11" * 20, value=0, data=b""
        ).as_signed_transaction(KEYS[sender], chain_id=1337)
    return _signed[key]


class State:
    def __init__(self) -> None:
        self.nonces: dict[bytes, int] = {}
        self.balances: dict[bytes, int] = {}

    def nonce(self, address: bytes) -> int:
        return self.nonces.get(address, 0)

    def balance(self, address: bytes) -> int:
        return self.balances.get(address, RICH)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(config: PoolConfig | None = None, clock=None) -> tuple[TxPool, State]:
    state = State()
    kwargs = {} if clock is None else {"clock": clock}
    return TxPool(config or PoolConfig(), state, **kwargs), state


def add(pool: TxPool, t, base_fee: int = BASE_FEE):
    return pool.add(t, t.sender, base_fee)


def nonces(txs) -> list[int]:
    return [t.nonce for t in txs]


def test_default_config_is_geths():
    c = PoolConfig()
    assert (c.price_bump, c.account_slots, c.global_slots) == (10, 16, 5120)
    assert (c.account_queue, c.global_queue, c.lifetime_s) == (64, 1024, 3 * 3600)


def test_default_caps_one_account():
    pool, _ = make()
    for n in range(20):
        add(pool, tx(0, n))
    assert pool.counts() == (20, 0)  # far under global_slots: nothing trimmed
    for n in range(21, 21 + 64):
        add(pool, tx(0, n))
    assert pool.counts() == (20, 64)
    with pytest.raises(PoolError, match="^account limit exceeded"):
        add(pool, tx(0, 85))
    add(pool, tx(0, 20))  # fills the gap: everything is executable
    assert pool.counts() == (85, 0)
    assert pool.pending_nonce(A) == 85


def test_pending_queued_and_promotion():
    pool, state = make()
    assert pool.pending_nonce(A) == 0
    t0, t2, t3 = tx(0, 0), tx(0, 2), tx(0, 3)
    add(pool, t0)
    add(pool, t2)
    add(pool, t3)
    assert pool.status(t0.hash) == "pending"
    assert pool.status(t2.hash) == pool.status(t3.hash) == "queued"
    assert pool.counts() == (1, 2) and len(pool) == 3
    assert pool.pending_nonce(A) == 1
    add(pool, tx(0, 1))
    assert pool.counts() == (4, 0)
    assert pool.pending_nonce(A) == 4
    assert nonces(pool.content(A)[0]) == [0, 1, 2, 3]
    assert pool.get(t2.hash) is t2 and pool.get(b"\x00" * 32) is None
    assert pool.status(b"\x00" * 32) is None
    assert pool.senders() == [A]
    state.nonces[B] = 7
    add(pool, tx(1, 7))
    assert pool.pending_nonce(B) == 8 and pool.status(tx(1, 7).hash) == "pending"


def test_nonce_too_low_and_already_known():
    pool, state = make()
    state.nonces[A] = 5
    with pytest.raises(PoolError) as err:
        add(pool, tx(0, 3))
    assert str(err.value) == f"nonce too low: address {to_checksum_address(A)}, tx: 3 state: 5"
    add(pool, tx(0, 5))
    with pytest.raises(PoolError, match="^already known$"):
        add(pool, tx(0, 5))


@pytest.mark.parametrize("queued", [False, True])
def test_replacement_needs_both_fee_cap_and_tip_bumped(queued):
    pool, _ = make()
    n = 1 if queued else 0
    old = tx(0, n, fee=100, tip=10)
    add(pool, old)
    for fee, tip in [(109, 11), (110, 10), (100, 20), (200, 10)]:
        with pytest.raises(PoolError, match="^replacement transaction underpriced$"):
            add(pool, tx(0, n, fee=fee, tip=tip))
    new = tx(0, n, fee=110, tip=11)
    add(pool, new)
    assert pool.get(old.hash) is None and pool.get(new.hash) is new
    assert pool.status(new.hash) == ("queued" if queued else "pending")
    assert pool.take_evicted() == [Evicted(old.hash, REPLACED)]
    assert len(pool) == 1


def test_insufficient_funds_single_and_cumulative():
    pool, state = make()
    cost = 21000 * 10
    state.balances[A] = cost * 3 // 2
    with pytest.raises(PoolError) as err:
        add(pool, tx(0, 0, value=cost))
    have = cost * 3 // 2
    assert str(err.value) == (  # geth's txpool wording
        f"insufficient funds for gas * price + value: balance {have}, tx cost {2 * cost}, "
        f"overshot {2 * cost - have}"
    )
    add(pool, tx(0, 1))  # queued, costs count too
    with pytest.raises(PoolError) as err:
        add(pool, tx(0, 2))
    assert str(err.value) == (
        f"insufficient funds for gas * price + value: balance {have}, queued cost {cost}, "
        f"tx cost {cost}, overshot {2 * cost - have}"
    )
    # nonce 0 comes before nonce 1: its check counts no lower nonce, nor the tx it replaces
    add(pool, tx(0, 0))
    add(pool, tx(0, 0, fee=12, tip=12))
    assert pool.counts() == (2, 0)


def test_account_queue_cap():
    pool, _ = make(PoolConfig(account_queue=2))
    add(pool, tx(0, 2))
    add(pool, tx(0, 3))
    with pytest.raises(PoolError, match="^account limit exceeded"):
        add(pool, tx(0, 4))
    # a lower nonce still gets in, as in geth; the highest queued one goes
    add(pool, tx(0, 1))
    assert nonces(pool.content(A)[1]) == [1, 2]
    assert pool.take_evicted() == [Evicted(tx(0, 3).hash, ACCOUNT_QUEUE_LIMIT)]
    add(pool, tx(0, 0))
    assert pool.counts() == (3, 0)


def test_global_pending_trims_big_accounts_only():
    pool, _ = make(PoolConfig(account_slots=2, global_slots=6, global_queue=10))
    for n in range(6):
        add(pool, tx(0, n))
    for sender in (1, 2):
        for n in range(2):
            add(pool, tx(sender, n))
    assert pool.counts() == (6, 0)
    assert nonces(pool.content(A)[0]) == [0, 1]
    assert nonces(pool.content(B)[0]) == [0, 1] and nonces(pool.content(C)[0]) == [0, 1]
    assert pool.take_evicted() == [Evicted(tx(0, n).hash, PENDING_LIMIT) for n in (5, 4, 3, 2)]
    assert pool.pending_nonce(A) == 2


def test_global_queue_drops_longest_idle_sender():
    clock = Clock()
    pool, _ = make(PoolConfig(global_queue=3), clock)
    add(pool, tx(0, 1))
    add(pool, tx(0, 2))
    clock.now = 10
    add(pool, tx(1, 1))
    add(pool, tx(1, 2))
    assert pool.counts() == (0, 3)
    assert pool.take_evicted() == [Evicted(tx(0, 2).hash, QUEUE_LIMIT)]
    assert nonces(pool.content(A)[1]) == [1] and nonces(pool.content(B)[1]) == [1, 2]


def test_full_pool_underpriced_and_eviction():
    pool, _ = make(PoolConfig(global_slots=2, global_queue=1))
    cheap, mid, dear = tx(0, 0, fee=10), tx(1, 0, fee=20), tx(2, 0, fee=30)
    for t in (cheap, mid, dear):
        add(pool, t)
    for fee in (5, 10):  # not better than the cheapest
        with pytest.raises(PoolError, match="^transaction underpriced$"):
            add(pool, tx(3, 0, fee=fee))
    with pytest.raises(PoolError, match="^future transaction tries to replace pending$"):
        add(pool, tx(3, 5, fee=50))  # a gapped tx may not push out an executable one
    assert len(pool) == 3 and pool.take_evicted() == []
    better = tx(3, 0, fee=40)
    add(pool, better)
    assert pool.get(cheap.hash) is None and pool.status(better.hash) == "pending"
    assert pool.take_evicted() == [Evicted(cheap.hash, UNDERPRICED)]
    assert len(pool) == 3
    # the effective tip at the base fee decides, not the fee cap
    with pytest.raises(PoolError, match="^transaction underpriced$"):
        add(pool, tx(0, 0, fee=1000, tip=15))  # 15 < mid's 19
    add(pool, tx(0, 0, fee=1000, tip=25))
    assert pool.take_evicted() == [Evicted(mid.hash, UNDERPRICED)]


def test_full_pool_evicting_a_pending_tx_demotes_its_successors():
    pool, _ = make(PoolConfig(global_slots=2, global_queue=1))
    add(pool, tx(0, 0, fee=10))
    add(pool, tx(0, 1, fee=30))
    add(pool, tx(1, 0, fee=30))
    add(pool, tx(2, 0, fee=20))
    assert pool.take_evicted() == [Evicted(tx(0, 0, fee=10).hash, UNDERPRICED)]
    assert pool.status(tx(0, 1, fee=30).hash) == "queued"
    assert pool.pending_nonce(A) == 0


def test_select_price_order_and_nonce_order():
    pool, _ = make()
    a0, a1 = tx(0, 0, fee=100, tip=5), tx(0, 1, fee=100, tip=50)
    b0, c0 = tx(1, 0, fee=100, tip=30), tx(2, 0, fee=100, tip=20)
    for t in (a1, a0, b0, c0):
        add(pool, t)
    assert pool.select(10**7, BASE_FEE, lambda t: True) == [b0, c0, a0, a1]
    assert len(pool) == 4  # select takes nothing out
    # the effective tip counts: fee cap 100 at base fee 90 leaves 10 for everyone
    assert pool.select(10**7, 90, lambda t: True)[:1] == [b0]
    assert pool.select(10**7, BASE_FEE, lambda t: t is not b0) == [c0, a0, a1]


def test_select_mixes_legacy_and_typed():
    pool, _ = make()
    lt, dt = legacy_tx(0, 0, gas_price=20), tx(1, 0, fee=30, tip=10)
    add(pool, lt)
    add(pool, dt)
    assert pool.select(10**7, 5, lambda t: True) == [lt, dt]  # 15 > 10


def test_select_respects_gas_limit():
    pool, _ = make()
    a0, a1 = tx(0, 0, tip=30, fee=30, gas=30000), tx(0, 1, tip=30, fee=30, gas=30000)
    b0 = tx(1, 0, tip=10, fee=10)
    for t in (a0, a1, b0):
        add(pool, t)
    assert pool.select(55000, BASE_FEE, lambda t: True) == [a0, b0]
    assert pool.select(20000, BASE_FEE, lambda t: True) == []


def test_select_start_continues_across_spaces():
    pool, _ = make()
    a = [tx(0, n, fee=10) for n in range(4)]
    b = [tx(1, n, fee=20) for n in range(2)]
    for t in a + b:
        add(pool, t)
    start: dict[bytes, int] = {}
    first = pool.select(3 * 21000, BASE_FEE, lambda t: True, start)
    assert first == [b[0], b[1], a[0]]
    assert start == {B: 2, A: 1}
    second = pool.select(10**7, BASE_FEE, lambda t: True, start)
    assert second == a[1:]
    assert start == {B: 2, A: 4}
    assert pool.select(10**7, BASE_FEE, lambda t: True, start) == []


def test_select_skips_fee_cap_under_base_fee():
    pool, _ = make()
    low, later = tx(0, 0, fee=5), tx(0, 1, fee=100)
    ok, ok_low = tx(1, 0, fee=20), tx(1, 1, fee=5)
    for t in (low, later, ok, ok_low):
        add(pool, t)
    assert pool.select(10**7, 10, lambda t: True) == [ok]  # A waits; B stops at its 2nd


def test_reset_removes_included_and_stale():
    pool, state = make()
    a = [tx(0, n) for n in range(3)]
    b0 = tx(1, 0)
    for t in (*a, b0):
        add(pool, t)
    state.nonces[A] = 2
    state.nonces[B] = 1  # another tx of B's took nonce 0
    pool.reset([a[0].hash, a[1].hash, b"\x99" * 32], [])
    assert pool.get(a[0].hash) is None and pool.get(b0.hash) is None
    assert pool.status(a[2].hash) == "pending" and pool.counts() == (1, 0)
    assert pool.take_evicted() == [Evicted(b0.hash, STALE_NONCE)]
    assert pool.senders() == [A]
    assert pool.pending_nonce(A) == 3 and pool.pending_nonce(B) == 1


def test_reset_promotes_queued():
    pool, state = make()
    add(pool, tx(0, 0))
    add(pool, tx(0, 2))
    add(pool, tx(0, 3))
    state.nonces[A] = 2
    pool.reset([tx(0, 0).hash], [])
    assert pool.counts() == (2, 0) and pool.pending_nonce(A) == 4
    assert pool.take_evicted() == []


def test_reset_dropped_reason_and_demotion():
    pool, _ = make()
    t0, t1 = tx(0, 0), tx(0, 1)
    add(pool, t0)
    add(pool, t1)
    pool.reset([], [(t0.hash, "execution failed")])
    assert pool.take_evicted() == [Evicted(t0.hash, "execution failed")]
    assert pool.status(t1.hash) == "queued" and pool.pending_nonce(A) == 0


def test_reset_drops_unaffordable_and_demotes_the_rest():
    pool, state = make()
    t0, t1, t2 = tx(0, 0), tx(0, 1, value=10**6), tx(0, 2)
    for t in (t0, t1, t2):
        add(pool, t)
    state.balances[A] = 21000 * 10 * 2
    pool.reset([], [])
    assert pool.take_evicted() == [Evicted(t1.hash, NO_FUNDS)]
    assert pool.status(t0.hash) == "pending" and pool.status(t2.hash) == "queued"


def test_reset_expires_old_queued():
    clock = Clock()
    pool, _ = make(PoolConfig(lifetime_s=100), clock)
    add(pool, tx(0, 0))
    add(pool, tx(0, 5))
    clock.now = 50
    pool.reset([], [])
    assert len(pool) == 2
    clock.now = 101
    pool.reset([], [])
    assert pool.take_evicted() == [Evicted(tx(0, 5).hash, EXPIRED)]
    assert pool.counts() == (1, 0)


def test_blob_cost():
    blob = SimpleNamespace(
        gas=21000,
        max_fee_per_gas=10,
        max_priority_fee_per_gas=1,
        value=5,
        max_fee_per_blob_gas=3,
        blob_versioned_hashes=(b"\x01" * 32, b"\x01" * 32),
    )
    assert tx_cost(blob) == 21000 * 10 + 5 + 2 * 131072 * 3
    assert tx_cost(tx(0, 0, value=7)) == 21000 * 10 + 7


# ---- random sequences keep the invariants ----

SMALL = PoolConfig(account_slots=2, global_slots=5, account_queue=2, global_queue=3)
FEES = (10, 12, 20)
KNOWN = (
    "already known",
    "nonce too low",
    "replacement transaction underpriced",
    "transaction underpriced",
    "txpool is full",
    "insufficient funds",
    "account limit exceeded",
    "future transaction tries to replace pending",
)

add_op = st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 7), st.sampled_from(FEES))
next_op = st.tuples(st.just("next"), st.integers(0, 3), st.sampled_from(FEES))
ops = st.lists(
    st.one_of(
        add_op,
        add_op,
        next_op,
        next_op,
        st.tuples(st.just("block"), st.integers(0, 4), st.sampled_from((1, 11, 15))),
        st.tuples(st.just("drop"), st.integers(0, 3)),
        st.tuples(st.just("balance"), st.integers(0, 3), st.sampled_from((0, 3, 10**9))),
    ),
    min_size=15,
    max_size=60,
)


def check(pool: TxPool, state: State, cfg: PoolConfig) -> None:
    seen: set[bytes] = set()
    pending_total = queued_total = 0
    lengths = []
    for sender in pool.senders():
        pending, queued = pool.content(sender)
        assert pending or queued
        start = state.nonce(sender)
        assert nonces(pending) == list(range(start, start + len(pending)))
        assert all(t.nonce > start + len(pending) for t in queued)  # else promotable
        assert len(set(nonces(queued))) == len(queued) <= cfg.account_queue
        for t in pending:
            assert pool.status(t.hash) == "pending"
        for t in queued:
            assert pool.status(t.hash) == "queued"
        hashes = {t.hash for t in pending + queued}
        assert not hashes & seen
        seen |= hashes
        pending_total += len(pending)
        queued_total += len(queued)
        lengths.append(len(pending))
    assert pool.counts() == (pending_total, queued_total)
    assert len(pool) == len(seen) <= cfg.global_slots + cfg.global_queue
    assert queued_total <= cfg.global_queue
    assert pending_total <= cfg.global_slots or all(n <= cfg.account_slots for n in lengths)
    selected = pool.select(10**9, BASE_FEE, lambda t: True)
    assert len({t.hash for t in selected}) == len(selected) == pending_total
    by_sender: dict[bytes, list[int]] = {}
    for t in selected:
        by_sender.setdefault(t.sender, []).append(t.nonce)
    for sender, got in by_sender.items():
        assert got == list(range(state.nonce(sender), state.nonce(sender) + len(got)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_sequences_keep_invariants(sequence):
    pool, state = make(SMALL)
    for op in sequence:
        if op[0] in ("add", "next"):
            if op[0] == "add":
                _, sender, nonce, fee = op
            else:
                _, sender, fee = op
                nonce = pool.pending_nonce(ADDRS[sender])
            t = tx(sender, nonce, fee=fee)
            try:
                entry = add(pool, t)
            except PoolError as err:
                assert str(err).startswith(KNOWN), str(err)
            else:
                assert entry.hash == t.hash and pool.get(t.hash) is t
        elif op[0] == "block":
            _, count, base_fee = op
            block = pool.select(count * 21000, base_fee, lambda t: True)
            for t in block:
                state.nonces[t.sender] = t.nonce + 1
                state.balances[t.sender] = state.balance(t.sender) - tx_cost(t)
            pool.reset([t.hash for t in block], [])
        elif op[0] == "drop":
            pending = pool.content(ADDRS[op[1]])[0]
            pool.reset([], [(pending[0].hash, "failed")] if pending else [])
        else:
            state.balances[ADDRS[op[1]]] = op[2] * 21000 * 10
            pool.reset([], [])
        check(pool, state, SMALL)
