"""No user transaction halts the chain: refused at submit with geth's message over JSON-RPC,
and, put straight into a block past intake, dropped from it with its reason while the rest of
the block is included, production goes on and the verifier replica agrees (in process)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from functools import cache

import pytest
import rlp
from eth.vm.forks import CancunVM, PragueVM
from eth_utils import to_checksum_address
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import dynamic_tx, inline_producer, small_genesis, verified

import coordinator.builder as builder_module
from api.app import create_app
from bench.workload.genesis import BASE_FEE, CHAIN_ID, ETHER, GWEI, Wallet, chain_genesis, sign
from chain.genesis import GenesisAccount
from coordinator.admission import Admission, versioned_hash
from coordinator.node import Node

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CANCUN = CancunVM.get_transaction_builder()
PRAGUE = PragueVM.get_transaction_builder()
CODE_OWNER = Wallet.derive(4242, 0)  # funded in the genesis below, with code at its address
UNFUNDED = Wallet.derive(99, 1)
TO = b"\x11" * 20


@pytest.fixture
def node():
    base = chain_genesis(small_genesis())
    alloc = {**base.alloc, CODE_OWNER.address: GenesisAccount(ETHER, 0, b"\x60\x00\x60\x00")}
    producer = inline_producer(dataclasses.replace(base, alloc=alloc))
    yield Node(producer)
    producer.close()


def dynamic(wallet, nonce, **fields):
    return dynamic_tx(wallet, nonce, TO, **fields)


def blob(wallet, nonce, hashes):
    unsigned = CANCUN.new_unsigned_blob_transaction(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=21_000,
        to=TO,
        value=0,
        data=b"",
        access_list=(),
        max_fee_per_blob_gas=10,
        blob_versioned_hashes=hashes,
    )
    return unsigned.as_signed_transaction(wallet.key)


def legacy(wallet, nonce, chain_id=None):
    unsigned = CANCUN.create_unsigned_transaction(
        nonce=nonce, gas_price=2 * BASE_FEE, gas=21_000, to=TO, value=0, data=b""
    )
    return unsigned.as_signed_transaction(wallet.key, chain_id=chain_id)


def set_code(wallet, nonce):
    unsigned = PRAGUE.new_unsigned_set_code_transaction(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=100_000,
        to=TO,
        value=0,
        data=b"",
        access_list=(),
        authorization_list=[],
    )
    return unsigned.as_signed_transaction(wallet.key)


def network_form(tx):
    """A blob transaction as RPC carries it: [tx, blobs, commitments, proofs] (none here)."""
    body = tx.encode()
    return body[:1] + rlp.encode([rlp.decode(body[1:]), [], [], []])


def bad_transactions(producer):
    """name -> (tx, sender, raw for RPC, geth's message, how it reaches a block): each from
    its own sender. ``pool``: ``pool.add`` takes it; ``select``: the pool refuses it (or
    never selects it), so the block gets it from a patched ``pool.select``."""
    g = small_genesis()
    w = g.wallets
    nonce = {wallet.address: g.nonces[wallet.address] for wallet in w}
    env = producer.builder.next_env(producer.gas_cap())
    base_fee = env.header.base_fee_per_gas
    valid = sign(w[10], nonce[w[10].address], w[11].address, value=1)
    access = ((b"\x22" * 20, (1, 2)),)
    need = 21_000 + 4 + 2 * 16 + 2_400 + 2 * 1_900
    oversized = dynamic(w[20], nonce[w[20].address], gas=3_000_000, data=b"\x01" * 140_000)
    cases = {
        "high-s": (
            valid.copy(s=SECP256K1_N - valid.s, y_parity=1 - valid.y_parity),
            w[10],
            None,
            "invalid sender: invalid transaction v, r, s values",
            "pool",
        ),
        "gas under intrinsic": (
            sign(w[12], nonce[w[12].address], w[11].address, gas=20_000),
            w[12],
            None,
            "intrinsic gas too low: gas 20000, minimum needed 21000",
            "pool",
        ),
        "init code over EIP-3860": (
            sign(w[13], nonce[w[13].address], b"", data=b"\x01" * 50_000, gas=2_000_000),
            w[13],
            None,
            "max initcode size exceeded: code size 50000, limit 49152",
            "pool",
        ),
        "blobless blob": (
            blob(w[14], nonce[w[14].address], []),
            w[14],
            "network",
            "blobless blob transaction",
            "pool",
        ),
        "tip above fee cap": (
            dynamic(
                w[15],
                nonce[w[15].address],
                max_priority_fee_per_gas=3 * GWEI,
                max_fee_per_gas=2 * GWEI,
            ),
            w[15],
            None,
            "max priority fee per gas higher than max fee per gas",
            "pool",
        ),
        "legacy without chain id": (
            legacy(w[16], nonce[w[16].address]),
            w[16],
            None,
            "only replay-protected (EIP-155) transactions allowed over RPC",
            "pool",
        ),
        "legacy wrong chain id": (
            legacy(w[17], nonce[w[17].address], chain_id=5),
            w[17],
            None,
            f"invalid sender: invalid chain id for signer: have 5 want {CHAIN_ID}",
            "pool",
        ),
        "typed wrong chain id": (
            dynamic(w[18], nonce[w[18].address], chain_id=CHAIN_ID + 1),
            w[18],
            None,
            f"invalid sender: invalid chain id for signer: have {CHAIN_ID + 1} want {CHAIN_ID}",
            "pool",
        ),
        "oversized": (
            oversized,
            w[20],
            None,
            f"oversized data: transaction size {len(oversized.encode())}, limit {128 * 1024}",
            "pool",
        ),
        "unsupported type": (
            set_code(w[21], nonce[w[21].address]),
            w[21],
            None,
            "transaction type not supported: type 4 rejected, pool not yet in Prague",
            "pool",
        ),
        "intrinsic gas with data and access list": (
            dynamic(
                w[22], nonce[w[22].address], gas=need - 1, data=b"\x00\x01\x02", access_list=access
            ),
            w[22],
            None,
            f"intrinsic gas too low: gas {need - 1}, minimum needed {need}",
            "pool",
        ),
        "fee cap under base fee": (
            dynamic(w[23], nonce[w[23].address], max_priority_fee_per_gas=0, max_fee_per_gas=1),
            w[23],
            None,
            "max fee per gas less than block base fee: address "
            f"{to_checksum_address(w[23].address)}, maxFeePerGas: 1, baseFee: {base_fee}",
            "select",  # the pool keeps it but never selects it under the base fee
        ),
        "nonce too low": (
            dynamic(w[24], 0),
            w[24],
            None,
            f"nonce too low: address {to_checksum_address(w[24].address)}, "
            f"tx: 0 state: {nonce[w[24].address]}",
            "select",  # the pool refuses it
        ),
        "insufficient funds": (
            dynamic(UNFUNDED, 0, value=1),
            UNFUNDED,
            None,
            "insufficient funds for gas * price + value: address "
            f"{to_checksum_address(UNFUNDED.address)} have 0 "
            f"want {21_000 * (2 * BASE_FEE + GWEI) + 1}",
            "select",  # the pool refuses it
        ),
        "sender with code": (
            dynamic(CODE_OWNER, 0),
            CODE_OWNER,
            None,
            f"sender not an eoa: address {to_checksum_address(CODE_OWNER.address)}, codehash: "
            f"0x{producer.state.get(('acct', CODE_OWNER.address)).code_hash.hex()}",
            "pool",
        ),
        "gas over the block gas limit": (
            dynamic(w[25], nonce[w[25].address], gas=30_000_001),
            w[25],
            None,
            "exceeds block gas limit",
            "select",  # the pool keeps it but no space has the gas to select it
        ),
    }
    return {
        name: (tx, wallet.address, network_form(tx) if raw == "network" else tx.encode(), m, how)
        for name, (tx, wallet, raw, m, how) in cases.items()
    }


def rpc(client, method, *params):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    response = client.post("/", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def good_txs(first_wallet: int, count: int, nonce_offset: int = 0):
    g = small_genesis()
    return [
        sign(w, g.nonces[w.address] + nonce_offset, g.wallets[0].address, value=1)
        for w in g.wallets[first_wallet : first_wallet + count]
    ]


def pool_message(name: str, tx, sender: bytes, message: str, producer) -> str:
    """At submit, geth words a stale nonce and missing funds as its txpool does
    (``ValidateTransactionWithState``), in a block as its state transition does."""
    account = producer.state.get(("acct", sender))
    if name == "nonce too low":
        return f"nonce too low: next nonce {account.nonce}, tx nonce {tx.nonce}"
    if name == "insufficient funds":
        balance = account.balance if account else 0
        cost = tx.gas * tx.max_fee_per_gas + tx.value
        return (
            f"insufficient funds for gas * price + value: balance {balance}, tx cost {cost}, "
            f"overshot {cost - balance}"
        )
    return message


def test_each_bad_transaction_is_refused_at_submit_with_geths_message(node):
    producer = node.producer
    client = TestClient(create_app(node))
    for name, (tx, sender, raw, message, _) in bad_transactions(producer).items():
        message = pool_message(name, tx, sender, message, producer)
        before = producer.pool.counts()
        answer = rpc(client, "eth_sendRawTransaction", "0x" + raw.hex())
        assert answer.get("error") == {"code": -32000, "message": message}, name
        assert producer.pool.counts() == before and tx.hash not in producer.pool, name
        assert node.tx_status(tx.hash).status == "unknown", name
        rest = client.get(f"/v1/transactions/0x{tx.hash.hex()}")
        assert rest.status_code == 200 and rest.json()["status"] == "unknown", name
    assert len(producer.pool) == 0
    assert producer.produce().dropped == 0
    verified(producer)


def test_each_bad_transaction_put_in_a_block_is_dropped_with_its_reason(node, monkeypatch):
    producer = node.producer
    client = TestClient(create_app(node))
    bad = bad_transactions(producer)
    base_fee = producer.builder.next_env(producer.gas_cap()).header.base_fee_per_gas
    extra = []
    for tx, sender, _, _, how in bad.values():
        if how == "pool":
            producer.pool.add(tx, sender, base_fee)
        else:
            extra.append(tx)
    good = good_txs(40, 10)
    for tx in good:
        producer.intake.submit(tx.encode())
    select = producer.pool.select
    calls = []

    def select_with_extra(*args, **kwargs):
        taken = select(*args, **kwargs)
        calls.append(len(taken))
        return taken + extra if len(calls) == 1 else taken

    monkeypatch.setattr(producer.pool, "select", select_with_extra)
    record = producer.produce()
    monkeypatch.undo()
    assert record.dropped == len(bad)
    assert record.txs == {"pbs": len(good)}
    for name, (tx, _, _, message, _) in bad.items():
        status = node.tx_status(tx.hash)
        assert (status.status, status.reason, status.block_number) == ("dropped", message, 1), name
        rest = client.get(f"/v1/transactions/0x{tx.hash.hex()}").json()
        assert rest["status"] == "dropped" and rest["reason"] == message, name
        assert tx.hash not in producer.pool
    for tx in good:
        assert node.tx_status(tx.hash).status == "included"
    # production goes on: the next blocks still produce, every one as sequential py-evm has it
    for tx in good_txs(40, 10, nonce_offset=1):
        producer.intake.submit(tx.encode())
    assert producer.produce().txs == {"pbs": 10}
    assert producer.produce() is not None
    assert producer.halted is None
    verified(producer)


# -- state-dependent drops: invalid at its position because of an earlier transaction -----------
def _inject(monkeypatch, producer, txs, bypass_admission: bool):
    """The next block's candidates are ``txs``, as given (nothing from the pool)."""
    calls = []

    def select(*args, **kwargs):
        calls.append(1)
        return list(txs) if len(calls) == 1 else []

    monkeypatch.setattr(producer.pool, "select", select)
    if bypass_admission:
        monkeypatch.setattr(builder_module, "admit", lambda env, state, c, *a: Admission(list(c)))


@pytest.mark.parametrize("bypass_admission", [False, True], ids=["admit", "executor"])
def test_a_transaction_invalid_after_an_earlier_one_of_the_block_is_dropped(
    node, monkeypatch, bypass_admission
):
    g = small_genesis()
    producer = node.producer
    a, b, c, d = g.wallets[50:54]
    na, nc = g.nonces[a.address], g.nonces[c.address]
    balance_c = producer.state.get(("acct", c.address)).balance
    fee = 21_000 * (2 * BASE_FEE + GWEI)
    first = sign(a, na, d.address, value=1)
    same_nonce = sign(a, na, d.address, value=2)  # the pool would have refused it
    drain = sign(c, nc, d.address, value=balance_c - fee)
    broke = sign(c, nc + 1, d.address, value=1)
    fine = sign(b, g.nonces[b.address], d.address, value=3)
    block = [first, drain, same_nonce, fine, broke]
    _inject(monkeypatch, producer, block, bypass_admission)
    record = producer.produce()
    monkeypatch.undo()
    assert record.txs == {"pbs": 3} and record.dropped == 2
    for tx in (first, drain, fine):
        assert node.tx_status(tx.hash).status == "included"
    reasons = {tx.hash: node.tx_status(tx.hash).reason for tx in (same_nonce, broke)}
    assert all(node.tx_status(h).status == "dropped" for h in reasons)
    if bypass_admission:  # py-evm's own refusal at its position
        assert reasons[same_nonce.hash] == (
            f"Invalid transaction nonce: Expected {na + 1}, but got {na}"
        )
        assert "cannot afford txn gas" in reasons[broke.hash]
    else:
        assert reasons[same_nonce.hash] == (
            f"nonce too low: address {to_checksum_address(a.address)}, tx: {na} state: {na + 1}"
        )
        assert reasons[broke.hash].startswith(
            f"insufficient funds for gas * price + value: address {to_checksum_address(c.address)}"
        )
    assert producer.produce() is not None
    verified(producer)


def test_a_transaction_made_valid_by_an_earlier_one_is_kept_when_admission_is_bypassed(
    node, monkeypatch
):
    """Against the pre-block state the second transaction cannot pay (its sender is funded by
    the first): executed optimistically it is invalid, at its position it is valid."""
    g = small_genesis()
    producer = node.producer
    a = g.wallets[60]
    stranger = Wallet.derive(99, 7)
    fund = sign(a, g.nonces[a.address], stranger.address, value=ETHER)
    spend = sign(stranger, 0, a.address, value=1)
    _inject(monkeypatch, producer, [fund, spend], bypass_admission=True)
    record = producer.produce()
    monkeypatch.undo()
    assert record.dropped == 0 and record.txs == {"pbs": 2}
    assert node.tx_status(spend.hash).status == "included"
    verified(producer)


def test_an_accepted_transaction_replaced_in_the_pool_is_dropped_with_the_reason(node):
    """Found by the fuzz: a transaction replaced by one paying more was "unknown"."""
    g = small_genesis()
    wallet = g.wallets[61]
    nonce = g.nonces[wallet.address]
    first = sign(wallet, nonce, g.wallets[0].address, value=1, tip=GWEI)
    better = sign(wallet, nonce, g.wallets[0].address, value=1, tip=2 * GWEI)
    client = TestClient(create_app(node))
    for tx in (first, better):
        assert "result" in rpc(client, "eth_sendRawTransaction", "0x" + tx.encode().hex())
    replaced = ("dropped", "replaced by a transaction paying more")
    assert (node.tx_status(first.hash).status, node.tx_status(first.hash).reason) == replaced
    node.producer.produce()
    assert node.tx_status(better.hash).status == "included"
    rest = client.get(f"/v1/transactions/0x{first.hash.hex()}").json()
    assert (rest["status"], rest["reason"]) == replaced
    verified(node.producer)


# -- fuzz ----------------------------------------------------------------------------------------
# A fuzzed transaction is a plausible one (fields in sane ranges, signed by a funded wallet,
# nonces around the sender's next one, so that many are accepted, some replace others, some
# wait in the queue) with up to three fields made wild: huge or zero numbers, contract
# creation, data over 128 KB, bad chain ids, bad signatures, garbled bytes.
WALLETS = small_genesis().wallets[70:80]

sane = st.fixed_dictionaries(
    {
        "type": st.sampled_from([0, 1, 2, 3]),
        "wallet": st.integers(0, len(WALLETS) - 1),
        "ahead": st.integers(-1, 3),  # relative to the sender's pending nonce
        "gas": st.integers(21_000, 300_000),
        "fee": st.integers(BASE_FEE, 4 * GWEI),  # the base fee only falls on these blocks
        "tip_percent": st.integers(0, 100),
        "to": st.binary(min_size=20, max_size=20),
        "value": st.integers(0, 10**15),
        "data": st.binary(max_size=64),
        "access": st.lists(
            st.tuples(
                st.binary(min_size=20, max_size=20),
                st.lists(st.integers(0, 2**256 - 1), max_size=2),
            ),
            max_size=2,
        ),
        "blobs": st.integers(1, 3),
        "blob_fee": st.integers(1, 100),
        "chain_id": st.just(CHAIN_ID),
        "signature": st.just("ok"),
        "bytes": st.just("raw"),
        "cut": st.integers(0, 300),
    }
)
wild = {
    "type": st.integers(4, 0x7F),
    "ahead": st.integers(-3, 80),
    "nonce": st.integers(0, 2**64 + 1),
    "gas": st.one_of(st.integers(0, 21_000), st.integers(30_000_000, 2**64)),
    "fee": st.one_of(st.integers(0, BASE_FEE), st.integers(0, 2**256 + 1)),
    "tip": st.integers(0, 2**256),
    "to": st.just(b""),
    "value": st.one_of(st.integers(10**24, 2**256), st.just(2**256)),
    "data": st.integers(0, 140_000).map(lambda n: b"\x01" * n),
    "hashes": st.lists(st.binary(min_size=32, max_size=32), max_size=7),
    "blob_fee": st.integers(0, 1),
    "chain_id": st.sampled_from([None, 1, CHAIN_ID + 1]),
    "signature": st.sampled_from(["high-s", "garble-r", "garble-v", "zero"]),
    "bytes": st.sampled_from(["truncate", "append", "flip", "no-sidecar"]),
}
fields_strategy = st.tuples(
    sane,
    st.lists(st.sampled_from(sorted(wild)), max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({name: wild[name] for name in names})
    ),
).map(lambda pair: {**pair[0], **pair[1]})


@cache
def _blob():
    """One valid blob with its commitment and proof (for well-formed blob transactions)."""
    import ckzg
    from eth.precompiles.point_evaluation import TRUSTED_SETUP_PATH

    setup = ckzg.load_trusted_setup(TRUSTED_SETUP_PATH, 0)
    blob = b"".join((i % 251).to_bytes(32, "big") for i in range(4096))
    commitment = ckzg.blob_to_kzg_commitment(blob, setup)
    return blob, commitment, ckzg.compute_blob_kzg_proof(blob, commitment, setup)


def _fuzz_tx(f, nonce):
    wallet = WALLETS[f["wallet"]]
    chain_id = f["chain_id"] if f["chain_id"] is not None else CHAIN_ID
    common = dict(nonce=nonce, gas=f["gas"], to=f["to"], value=f["value"], data=f["data"])
    tip = f.get("tip", f["fee"] * f["tip_percent"] // 100)
    access = tuple((a, tuple(k)) for a, k in f["access"])
    kind = f["type"]
    if kind == 0:
        unsigned = CANCUN.create_unsigned_transaction(gas_price=f["fee"], **common)
        return unsigned.as_signed_transaction(wallet.key, chain_id=f["chain_id"])
    if kind == 1:
        unsigned = CANCUN.new_unsigned_access_list_transaction(
            chain_id=chain_id, gas_price=f["fee"], access_list=access, **common
        )
        return unsigned.as_signed_transaction(wallet.key)
    fees = dict(max_fee_per_gas=f["fee"], max_priority_fee_per_gas=tip)
    if kind == 3:
        hashes = f.get("hashes", [versioned_hash(_blob()[1])] * f["blobs"])
        unsigned = CANCUN.new_unsigned_blob_transaction(
            chain_id=chain_id,
            access_list=access,
            max_fee_per_blob_gas=f["blob_fee"],
            blob_versioned_hashes=hashes,
            **fees,
            **common,
        )
        return unsigned.as_signed_transaction(wallet.key)
    unsigned = CANCUN.new_unsigned_dynamic_fee_transaction(
        chain_id=chain_id, access_list=access, **fees, **common
    )
    tx = unsigned.as_signed_transaction(wallet.key)
    if kind != 2:  # an unknown type: the dynamic-fee payload under another type byte
        return bytes([kind]) + tx.encode()[1:]
    return tx


def fuzz_raw(f, pending_nonce: int) -> bytes:
    nonce = f.get("nonce", max(0, pending_nonce + f["ahead"]))
    try:
        tx = _fuzz_tx(f, nonce)
    except Exception:  # py-evm refuses some field values outright: garbage bytes instead
        return bytes([f["type"] % 0x80]) + f["data"][: f["cut"]]
    if isinstance(tx, bytes):
        return tx
    typed = f["type"] != 0
    if f["signature"] == "high-s":
        parity = {"y_parity": 1 - tx.y_parity} if typed else {"v": tx.v ^ 1}
        tx = tx.copy(s=SECP256K1_N - tx.s, **parity)
    elif f["signature"] == "garble-r":
        tx = tx.copy(r=tx.r ^ 0xFF)
    elif f["signature"] == "garble-v":
        tx = tx.copy(**({"y_parity": 2} if typed else {"v": tx.v + 2}))
    elif f["signature"] == "zero":
        tx = tx.copy(r=0, s=0)
    raw = tx.encode()
    if f["type"] == 3 and f["bytes"] != "no-sidecar":
        blob, commitment, proof = _blob()
        k = len(tx.blob_versioned_hashes)
        raw = raw[:1] + rlp.encode([rlp.decode(raw[1:]), [blob] * k, [commitment] * k, [proof] * k])
    if f["bytes"] == "truncate":
        raw = raw[: max(1, len(raw) - 1 - f["cut"])]
    elif f["bytes"] == "append":
        raw = raw + bytes(f["cut"] % 7 + 1)
    elif f["bytes"] == "flip":
        i = f["cut"] % len(raw)
        raw = raw[:i] + bytes([raw[i] ^ 0x5A]) + raw[i + 1 :]
    return raw


class Fuzzer:
    """One node over a whole hypothesis run; what it accepted is tracked to the end."""

    def __init__(self) -> None:
        self.producer = inline_producer()
        self.node = Node(self.producer)
        self.client = TestClient(create_app(self.node))
        self.accepted: set[bytes] = set()
        self.answers: Counter[str] = Counter()

    def post(self, raw: bytes, route: str) -> None:
        if route == "rpc":
            body = {"jsonrpc": "2.0", "id": 7, "method": "eth_sendRawTransaction"}
            response = self.client.post("/", json={**body, "params": ["0x" + raw.hex()]})
            assert response.status_code == 200, response.text
            answer = response.json()
            if "error" in answer:
                assert answer["error"]["code"] == -32000, answer  # never -32603
                self.answers[answer["error"]["message"][:30]] += 1
            else:
                self.accepted.add(bytes.fromhex(answer["result"][2:]))
                self.answers["accepted"] += 1
        else:
            response = self.client.post("/v1/transactions", json={"raw": "0x" + raw.hex()})
            assert response.status_code < 500, response.text
            if response.status_code == 202:
                self.accepted.add(bytes.fromhex(response.json()["hash"][2:]))
                self.answers["accepted"] += 1
            else:
                assert response.status_code in (400, 403, 409, 413, 422), response.text

    def pending_nonce(self, wallet: Wallet) -> int:
        with self.producer.lock:
            return self.producer.pool.pending_nonce(wallet.address)

    def valid(self, index: int) -> bytes:
        wallet = small_genesis().wallets[index]
        to = small_genesis().wallets[0].address
        return sign(wallet, self.pending_nonce(wallet), to, value=1).encode()

    def produce(self) -> None:
        assert self.producer.produce() is not None
        assert self.producer.halted is None, self.producer.halted
        self.check_statuses()

    def check_statuses(self) -> None:
        for tx_hash in self.accepted:
            status = self.node.tx_status(tx_hash)
            assert status.status in ("included", "pending", "queued", "dropped"), status
            if status.status == "dropped":
                assert status.reason

    def close(self) -> None:
        try:
            self.produce()
            verified(self.producer)
        finally:
            self.producer.close()


step = st.one_of(
    st.tuples(st.just("tx"), fields_strategy, st.sampled_from(["rpc", "rest"])),
    st.tuples(st.just("tx"), fields_strategy, st.sampled_from(["rpc", "rest"])),
    st.tuples(st.just("garbage"), st.binary(max_size=200), st.sampled_from(["rpc", "rest"])),
    st.tuples(st.just("valid"), st.integers(0, 59), st.sampled_from(["rpc", "rest"])),
    st.tuples(st.just("produce"), st.none(), st.none()),
)


def _run(fuzzer: Fuzzer, steps) -> None:
    for kind, arg, route in steps:
        if kind == "produce":
            fuzzer.produce()
        elif kind == "valid":
            fuzzer.post(fuzzer.valid(arg), route)
        elif kind == "garbage":
            fuzzer.post(arg or b"\x00", route)
        else:
            fuzzer.post(fuzz_raw(arg, fuzzer.pending_nonce(WALLETS[arg["wallet"]])), route)
    fuzzer.produce()


def _fuzz(max_examples: int) -> Fuzzer:
    fuzzer = Fuzzer()

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(st.lists(step, min_size=1, max_size=12))
    def run(steps) -> None:
        _run(fuzzer, steps)

    try:
        run()
    finally:
        fuzzer.close()
    assert fuzzer.producer.number > 0 and fuzzer.answers["accepted"] > 0
    return fuzzer


def test_fuzzed_raw_transactions_never_halt_the_chain():
    _fuzz(60)


@pytest.mark.slow
def test_fuzzed_raw_transactions_never_halt_the_chain_long():
    _fuzz(600)
