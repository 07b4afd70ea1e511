"""The JSON-RPC layer (``api/``) against a fake node: geth's envelope, codecs and shapes."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import create_rpc_app, create_rpc_router
from api import hexcodec as hx
from coordinator.node_api import (
    EXECUTION_REVERTED,
    AccessListEntry,
    AccountView,
    BlockView,
    CallRequest,
    CallResult,
    FeeHistoryView,
    HeaderView,
    LogFilter,
    LogView,
    NodeError,
    NodeInfo,
    ReceiptView,
    TxStatusView,
    TxView,
)

CHAIN_ID = 1337


def h32(n: int) -> bytes:
    return n.to_bytes(32, "big")


def addr(n: int) -> bytes:
    return bytes([n]) * 20


ALICE, BOB, TOKEN, MINER = addr(0xA1), addr(0xB2), addr(0xC3), addr(0xD4)
BLOCK0_HASH, BLOCK1_HASH = h32(0xB0), h32(0xB1)
TX0_HASH, TX2_HASH, PENDING_HASH = h32(0x70), h32(0x72), h32(0x7F)
TOPIC_A, TOPIC_B = h32(0xAA), h32(0xBB)
REVERT_DATA = (
    bytes.fromhex("08c379a0") + h32(32) + h32(4) + b"nope".ljust(32, b"\0")
)  # Error("nope")


@dataclass(frozen=True)
class Withdrawal:
    index: int
    validator_index: int
    address: bytes
    amount: int


def header(number: int, block_hash: bytes, parent: bytes, **extra: Any) -> HeaderView:
    return HeaderView(
        number=number,
        hash=block_hash,
        parent_hash=parent,
        uncles_hash=bytes.fromhex(
            "1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347"
        ),
        coinbase=MINER,
        state_root=h32(0x51 + number),
        transactions_root=h32(0x61 + number),
        receipts_root=h32(0x81 + number),
        logs_bloom=bytes(256),
        difficulty=0,
        gas_limit=30_000_000,
        gas_used=0,
        timestamp=1_700_000_000 + 12 * number,
        extra_data=b"evmpp",
        mix_hash=h32(0x99),
        nonce=bytes(8),
        size=600 + number,
        base_fee_per_gas=1_000_000_000,
        **extra,
    )


TX0 = TxView(
    hash=TX0_HASH,
    type=0,
    sender=ALICE,
    nonce=0,
    to=BOB,
    value=10**18,
    gas=21_000,
    input=b"",
    v=CHAIN_ID * 2 + 35,
    r=0x1234,
    s=0x5678,
    chain_id=CHAIN_ID,
    gas_price=2_000_000_000,
    block_hash=BLOCK1_HASH,
    block_number=1,
    index=0,
)
TX2 = TxView(
    hash=TX2_HASH,
    type=2,
    sender=ALICE,
    nonce=1,
    to=TOKEN,
    value=0,
    gas=100_000,
    input=bytes.fromhex("a9059cbb"),
    v=1,
    r=0x9ABC,
    s=0xDEF0,
    chain_id=CHAIN_ID,
    gas_price=1_500_000_000,
    max_fee_per_gas=3_000_000_000,
    max_priority_fee_per_gas=500_000_000,
    access_list=(AccessListEntry(TOKEN, (0, 1)),),
    y_parity=1,
    block_hash=BLOCK1_HASH,
    block_number=1,
    index=1,
)
PENDING = replace(
    TX2, hash=PENDING_HASH, nonce=2, gas_price=None, block_hash=None, block_number=None, index=None
)
LOGS = (
    LogView(TOKEN, (TOPIC_A, TOPIC_B), h32(5), 1, BLOCK1_HASH, TX2_HASH, 1, 0),
    LogView(TOKEN, (TOPIC_A,), b"", 1, BLOCK1_HASH, TX2_HASH, 1, 1),
)
RECEIPT = ReceiptView(
    tx_hash=TX2_HASH,
    tx_index=1,
    block_hash=BLOCK1_HASH,
    block_number=1,
    sender=ALICE,
    to=TOKEN,
    type=2,
    status=1,
    cumulative_gas_used=71_000,
    gas_used=50_000,
    effective_gas_price=1_500_000_000,
    contract_address=None,
    logs=LOGS,
    logs_bloom=bytes(256),
)
HEADERS = [
    header(0, BLOCK0_HASH, h32(0)),
    header(
        1,
        BLOCK1_HASH,
        BLOCK0_HASH,
        withdrawals_root=h32(0x77),
        blob_gas_used=0,
        excess_blob_gas=0,
        parent_beacon_block_root=h32(0x88),
    ),
]
TXS: list[tuple[TxView, ...]] = [(), (TX0, TX2)]
WITHDRAWALS: list[tuple[Any, ...]] = [(), (Withdrawal(7, 42, BOB, 32 * 10**9),)]


class FakeNode:
    """Canned views for ``EthereumAPI``: blocks 0 and 1, two transactions, one receipt."""

    def __init__(self) -> None:
        self.queries: list[LogFilter] = []
        self.calls: list[tuple[CallRequest, int]] = []
        self.boom = False

    def info(self) -> NodeInfo:
        return NodeInfo("evmpp/v0.1.0/python", CHAIN_ID, CHAIN_ID)

    def resolve(self, ref: Any) -> int:
        if ref == "earliest":
            return 0
        if isinstance(ref, str):
            return 1
        if ref > 1:
            raise NodeError("header not found")
        return ref

    def head(self) -> int:
        return 1

    def _block(self, number: int, full: bool) -> BlockView:
        txs = TXS[number] if full else tuple(tx.hash for tx in TXS[number])
        return BlockView(HEADERS[number], txs, WITHDRAWALS[number])

    def block_by_number(self, number: int, full: bool) -> BlockView | None:
        return self._block(number, full) if 0 <= number <= 1 else None

    def block_by_hash(self, block_hash: bytes, full: bool) -> BlockView | None:
        for h in HEADERS:
            if h.hash == block_hash:
                return self._block(h.number, full)
        return None

    def account(self, address: bytes, number: int) -> AccountView:
        if address == ALICE:
            return AccountView(nonce=2 * number, balance=5 * 10**18 - number, code=b"")
        if address == TOKEN:
            return AccountView(nonce=1, balance=0, code=bytes.fromhex("6080604052"))
        return AccountView(0, 0, b"")

    def storage_at(self, address: bytes, slot: int, number: int) -> int:
        return slot * 1000 + number

    def pending_nonce(self, address: bytes) -> int:
        return 3

    def call(self, request: CallRequest, number: int) -> CallResult:
        self.calls.append((request, number))
        if request.data.startswith(b"\xde\xad"):
            return CallResult(False, REVERT_DATA, 30_000, "execution reverted")
        if request.data == b"\xff":
            return CallResult(False, b"", 100_000, "out of gas")
        return CallResult(True, h32(42), 21_000)

    def estimate_gas(self, request: CallRequest, number: int) -> int:
        self.calls.append((request, number))
        if request.data.startswith(b"\xde\xad"):
            raise NodeError("execution reverted: nope", EXECUTION_REVERTED, REVERT_DATA)
        return 21_000 + 16 * len(request.data)

    def send_raw_transaction(self, raw: bytes) -> bytes:
        if raw == b"\x02\x01":
            return PENDING_HASH
        raise NodeError("nonce too low: next nonce 3, tx nonce 0")

    def transaction(self, tx_hash: bytes) -> TxView | None:
        return {TX0_HASH: TX0, TX2_HASH: TX2, PENDING_HASH: PENDING}.get(tx_hash)

    def receipt(self, tx_hash: bytes) -> ReceiptView | None:
        return RECEIPT if tx_hash == TX2_HASH else None

    def tx_status(self, tx_hash: bytes) -> TxStatusView:
        return TxStatusView(tx_hash, "unknown")

    def logs(self, query: LogFilter) -> list[LogView]:
        self.queries.append(query)
        return list(LOGS)

    def fee_history(
        self, count: int, newest: int, percentiles: tuple[float, ...] | None
    ) -> FeeHistoryView:
        count = min(count, newest + 1)
        return FeeHistoryView(
            oldest_block=newest - count + 1,
            base_fee_per_gas=(1_000_000_000,) * (count + 1),
            gas_used_ratio=(0.5,) * count,
            reward=None if percentiles is None else ((100,) * len(percentiles),) * count,
        )

    def gas_price(self) -> int:
        if self.boom:
            raise RuntimeError("disk on fire")
        return 2_000_000_000

    def max_priority_fee(self) -> int:
        return 1_000_000_000


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@pytest.fixture
def client(node: FakeNode) -> TestClient:
    return TestClient(create_rpc_app(node, max_body=64 * 1024))


def post(client: TestClient, body: Any) -> Any:
    response = client.post("/", json=body)
    assert response.status_code == 200
    return response.json()


def rpc(client: TestClient, method: str, *params: Any) -> Any:
    answer = post(client, {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
    assert answer["jsonrpc"] == "2.0" and answer["id"] == 7
    assert "error" not in answer, answer
    return answer["result"]


def rpc_error(client: TestClient, method: str, *params: Any) -> dict[str, Any]:
    answer = post(client, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert "result" not in answer, answer
    return answer["error"]


def hexs(raw: bytes) -> str:
    return "0x" + raw.hex()


# --- codecs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x", 'hex string "0x"'),
        ("0x01", "hex number with leading zero digits"),
        ("12", "hex string without 0x prefix"),
        ("0xzz", "invalid hex string"),
        ("", "empty hex string"),
        ("0x1" + "0" * 16, "hex number > 64 bits"),
    ],
)
def test_quantity_refusals(text: str, message: str) -> None:
    with pytest.raises(hx.HexError, match=message):
        hx.quantity(text)


def test_codecs() -> None:
    assert hx.quantity("0x0") == 0 and hx.quantity("0xFF") == 255
    assert hx.data("0x") == b"" and hx.data("0x0aBC") == b"\x0a\xbc"
    with pytest.raises(hx.HexError, match="odd length"):
        hx.data("0xabc")
    assert hx.address("0x" + "Ab" * 20) == b"\xab" * 20  # any case, no checksum check
    with pytest.raises(hx.HexError, match="length 38, want 40"):
        hx.address("0x" + "ab" * 19)
    assert hx.block_ref("safe") == "safe" and hx.block_ref("0x10") == 16
    assert hx.block_ref({"blockNumber": "0x1"}) == 1
    ref = hx.block_ref({"blockHash": hexs(BLOCK1_HASH), "requireCanonical": True})
    assert ref == hx.BlockHashRef(BLOCK1_HASH, True)
    with pytest.raises(hx.HexError, match="cannot specify both"):
        hx.block_ref({"blockNumber": "0x1", "blockHash": hexs(BLOCK1_HASH)})
    assert hx.storage_slot("0x0") == 0 and hx.storage_slot("0x001") == 1
    assert hx.hex_or_decimal(5) == 5 and hx.hex_or_decimal("0x5") == 5
    assert hx.hex_or_decimal("5") == 5
    assert hx.enc_quantity(0) == "0x0" and hx.enc_data(b"") == "0x"


# --- simple methods ------------------------------------------------------------------------


def test_info_methods(client: TestClient) -> None:
    assert rpc(client, "web3_clientVersion") == "evmpp/v0.1.0/python"
    assert rpc(client, "net_version") == "1337"
    assert rpc(client, "net_listening") is True
    assert rpc(client, "eth_chainId") == "0x539"
    assert rpc(client, "eth_syncing") is False
    assert rpc(client, "eth_accounts") == []
    assert rpc(client, "eth_blockNumber") == "0x1"
    assert rpc(client, "eth_gasPrice") == hex(2_000_000_000)
    assert rpc(client, "eth_maxPriorityFeePerGas") == hex(1_000_000_000)


def test_state_reads(client: TestClient) -> None:
    alice = hexs(ALICE)
    assert rpc(client, "eth_getBalance", alice, "latest") == hex(5 * 10**18 - 1)
    assert rpc(client, "eth_getBalance", alice, "0x0") == hex(5 * 10**18)
    assert rpc(client, "eth_getBalance", alice, {"blockNumber": "0x0"}) == hex(5 * 10**18)
    by_hash = {"blockHash": hexs(BLOCK0_HASH), "requireCanonical": True}
    assert rpc(client, "eth_getBalance", alice, by_hash) == hex(5 * 10**18)
    assert rpc(client, "eth_getBalance", alice, hexs(BLOCK0_HASH)) == hex(5 * 10**18)
    assert rpc(client, "eth_getTransactionCount", alice, "latest") == "0x2"
    assert rpc(client, "eth_getTransactionCount", alice, "pending") == "0x3"
    assert rpc(client, "eth_getCode", hexs(TOKEN), "latest") == "0x6080604052"
    assert rpc(client, "eth_getCode", hexs(BOB), "latest") == "0x"
    assert rpc(client, "eth_getStorageAt", hexs(TOKEN), "0x2", "latest") == hexs(h32(2001))
    error = rpc_error(client, "eth_getBalance", alice, {"blockHash": hexs(h32(1))})
    assert error == {"code": -32000, "message": "header for hash not found"}
    error = rpc_error(client, "eth_getBalance", alice, "0x9")
    assert error == {"code": -32000, "message": "header not found"}


def test_call_and_estimate(client: TestClient, node: FakeNode) -> None:
    args = {
        "from": hexs(ALICE),
        "to": hexs(TOKEN),
        "gas": "0x5208",
        "maxFeePerGas": "0x10",
        "value": "0x1",
        "input": "0x1234",
        "accessList": [{"address": hexs(TOKEN), "storageKeys": [hexs(h32(1))]}],
    }
    assert rpc(client, "eth_call", args) == hexs(h32(42))  # block defaults to latest
    request, number = node.calls[-1]
    assert number == 1
    assert request == CallRequest(
        sender=ALICE,
        to=TOKEN,
        gas=21_000,
        max_fee_per_gas=16,
        value=1,
        data=b"\x12\x34",
        access_list=(AccessListEntry(TOKEN, (1,)),),
    )
    assert rpc(client, "eth_call", {"to": hexs(TOKEN), "data": "0x12"}, "0x0") == hexs(h32(42))
    assert node.calls[-1] == (CallRequest(to=TOKEN, data=b"\x12"), 0)
    assert rpc(client, "eth_estimateGas", {"to": hexs(TOKEN), "data": "0x12"}) == hex(21_016)
    assert rpc(client, "eth_estimateGas", {"to": hexs(TOKEN)}, "pending") == hex(21_000)


def test_call_errors(client: TestClient) -> None:
    error = rpc_error(client, "eth_call", {"to": hexs(TOKEN), "data": "0xdead"}, "latest")
    assert error == {"code": 3, "message": "execution reverted: nope", "data": hexs(REVERT_DATA)}
    error = rpc_error(client, "eth_estimateGas", {"to": hexs(TOKEN), "data": "0xdead"})
    assert error == {"code": 3, "message": "execution reverted: nope", "data": hexs(REVERT_DATA)}
    error = rpc_error(client, "eth_call", {"to": hexs(TOKEN), "data": "0xff"})
    assert error == {"code": -32000, "message": "out of gas"}
    error = rpc_error(client, "eth_call", {"data": "0x12", "input": "0x13"})
    assert error["code"] == -32602 and 'both "data" and "input" are set' in error["message"]
    error = rpc_error(client, "eth_call", {"gasPrice": "0x1", "maxFeePerGas": "0x1"})
    assert error["code"] == -32602 and "both gasPrice and" in error["message"]
    error = rpc_error(client, "eth_call", {"to": "0x1234"})
    assert error == {
        "code": -32602,
        "message": "invalid argument 0: to: hex string has length 4, want 40 for common.Address",
    }


def test_fee_history(client: TestClient) -> None:
    result = rpc(client, "eth_feeHistory", "0x2", "latest", [25, 75])
    assert result == {
        "oldestBlock": "0x0",
        "reward": [["0x64", "0x64"], ["0x64", "0x64"]],
        "baseFeePerGas": [hex(10**9)] * 3,
        "gasUsedRatio": [0.5, 0.5],
    }
    assert rpc(client, "eth_feeHistory", 1, "0x1")["oldestBlock"] == "0x1"
    assert "reward" not in rpc(client, "eth_feeHistory", "1", "latest")
    assert rpc(client, "eth_feeHistory", 0, "latest") == {"oldestBlock": "0x0", "gasUsedRatio": []}
    error = rpc_error(client, "eth_feeHistory", 2, "latest", [50, 10])
    assert error == {"code": -32000, "message": "invalid reward percentile: 10.000000"}


def test_send_raw_transaction(client: TestClient) -> None:
    assert rpc(client, "eth_sendRawTransaction", "0x0201") == hexs(PENDING_HASH)
    error = rpc_error(client, "eth_sendRawTransaction", "0x0200")
    assert error == {"code": -32000, "message": "nonce too low: next nonce 3, tx nonce 0"}


# --- shapes --------------------------------------------------------------------------------

LEGACY_JSON = {
    "blockHash": hexs(BLOCK1_HASH),
    "blockNumber": "0x1",
    "from": hexs(ALICE),
    "gas": "0x5208",
    "gasPrice": hex(2_000_000_000),
    "hash": hexs(TX0_HASH),
    "input": "0x",
    "nonce": "0x0",
    "to": hexs(BOB),
    "transactionIndex": "0x0",
    "value": hex(10**18),
    "type": "0x0",
    "chainId": "0x539",
    "v": hex(CHAIN_ID * 2 + 35),
    "r": "0x1234",
    "s": "0x5678",
}
DYNAMIC_JSON = {
    "blockHash": hexs(BLOCK1_HASH),
    "blockNumber": "0x1",
    "from": hexs(ALICE),
    "gas": hex(100_000),
    "gasPrice": hex(1_500_000_000),
    "maxFeePerGas": hex(3_000_000_000),
    "maxPriorityFeePerGas": hex(500_000_000),
    "hash": hexs(TX2_HASH),
    "input": "0xa9059cbb",
    "nonce": "0x1",
    "to": hexs(TOKEN),
    "transactionIndex": "0x1",
    "value": "0x0",
    "type": "0x2",
    "accessList": [{"address": hexs(TOKEN), "storageKeys": [hexs(h32(0)), hexs(h32(1))]}],
    "chainId": "0x539",
    "v": "0x1",
    "r": "0x9abc",
    "s": "0xdef0",
    "yParity": "0x1",
}


def test_transactions(client: TestClient) -> None:
    assert rpc(client, "eth_getTransactionByHash", hexs(TX0_HASH)) == LEGACY_JSON
    assert rpc(client, "eth_getTransactionByHash", hexs(TX2_HASH)) == DYNAMIC_JSON
    pending = rpc(client, "eth_getTransactionByHash", hexs(PENDING_HASH))
    assert pending["blockHash"] is None and pending["blockNumber"] is None
    assert pending["transactionIndex"] is None and pending["gasPrice"] == hex(3_000_000_000)
    assert rpc(client, "eth_getTransactionByHash", hexs(h32(1))) is None
    by_number = rpc(client, "eth_getTransactionByBlockNumberAndIndex", "0x1", "0x1")
    assert by_number == DYNAMIC_JSON
    assert rpc(client, "eth_getTransactionByBlockNumberAndIndex", "latest", "0x0") == LEGACY_JSON
    assert rpc(client, "eth_getTransactionByBlockNumberAndIndex", "0x1", "0x2") is None
    assert rpc(client, "eth_getTransactionByBlockNumberAndIndex", "0x5", "0x0") is None
    by_hash = rpc(client, "eth_getTransactionByBlockHashAndIndex", hexs(BLOCK1_HASH), "0x0")
    assert by_hash == LEGACY_JSON
    assert rpc(client, "eth_getTransactionByBlockHashAndIndex", hexs(h32(3)), "0x0") is None


LOG0_JSON = {
    "address": hexs(TOKEN),
    "topics": [hexs(TOPIC_A), hexs(TOPIC_B)],
    "data": hexs(h32(5)),
    "blockNumber": "0x1",
    "transactionHash": hexs(TX2_HASH),
    "transactionIndex": "0x1",
    "blockHash": hexs(BLOCK1_HASH),
    "logIndex": "0x0",
    "removed": False,
}


def test_receipt(client: TestClient) -> None:
    receipt = rpc(client, "eth_getTransactionReceipt", hexs(TX2_HASH))
    assert receipt == {
        "blockHash": hexs(BLOCK1_HASH),
        "blockNumber": "0x1",
        "transactionHash": hexs(TX2_HASH),
        "transactionIndex": "0x1",
        "from": hexs(ALICE),
        "to": hexs(TOKEN),
        "gasUsed": hex(50_000),
        "cumulativeGasUsed": hex(71_000),
        "contractAddress": None,
        "logs": [
            LOG0_JSON,
            {**LOG0_JSON, "topics": [hexs(TOPIC_A)], "data": "0x", "logIndex": "0x1"},
        ],
        "logsBloom": hexs(bytes(256)),
        "type": "0x2",
        "effectiveGasPrice": hex(1_500_000_000),
        "status": "0x1",
    }
    assert rpc(client, "eth_getTransactionReceipt", hexs(PENDING_HASH)) is None


def test_blocks(client: TestClient) -> None:
    block = rpc(client, "eth_getBlockByNumber", "latest", False)
    assert block == {
        "number": "0x1",
        "hash": hexs(BLOCK1_HASH),
        "parentHash": hexs(BLOCK0_HASH),
        "nonce": "0x0000000000000000",
        "mixHash": hexs(h32(0x99)),
        "sha3Uncles": "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347",
        "logsBloom": hexs(bytes(256)),
        "stateRoot": hexs(h32(0x52)),
        "miner": hexs(MINER),
        "difficulty": "0x0",
        "extraData": hexs(b"evmpp"),
        "gasLimit": hex(30_000_000),
        "gasUsed": "0x0",
        "timestamp": hex(1_700_000_012),
        "transactionsRoot": hexs(h32(0x62)),
        "receiptsRoot": hexs(h32(0x82)),
        "baseFeePerGas": hex(10**9),
        "withdrawalsRoot": hexs(h32(0x77)),
        "blobGasUsed": "0x0",
        "excessBlobGas": "0x0",
        "parentBeaconBlockRoot": hexs(h32(0x88)),
        "size": hex(601),
        "transactions": [hexs(TX0_HASH), hexs(TX2_HASH)],
        "uncles": [],
        "withdrawals": [
            {
                "index": "0x7",
                "validatorIndex": "0x2a",
                "address": hexs(BOB),
                "amount": hex(32 * 10**9),
            }
        ],
    }
    full = rpc(client, "eth_getBlockByHash", hexs(BLOCK1_HASH), True)
    assert full == {**block, "transactions": [LEGACY_JSON, DYNAMIC_JSON]}
    genesis = rpc(client, "eth_getBlockByNumber", "earliest", True)
    assert genesis["number"] == "0x0" and genesis["transactions"] == []
    assert "withdrawals" not in genesis and "withdrawalsRoot" not in genesis
    assert rpc(client, "eth_getBlockByNumber", "0x2", False) is None
    assert rpc(client, "eth_getBlockByHash", hexs(h32(5)), False) is None
    assert rpc(client, "eth_getBlockTransactionCountByNumber", "0x1") == "0x2"
    assert rpc(client, "eth_getBlockTransactionCountByNumber", "0x0") == "0x0"
    assert rpc(client, "eth_getBlockTransactionCountByNumber", "0x7") is None
    assert rpc(client, "eth_getBlockTransactionCountByHash", hexs(BLOCK1_HASH)) == "0x2"
    assert rpc(client, "eth_getBlockTransactionCountByHash", hexs(h32(5))) is None


def test_get_logs(client: TestClient, node: FakeNode) -> None:
    result = rpc(
        client,
        "eth_getLogs",
        {
            "fromBlock": "0x0",
            "toBlock": "latest",
            "address": hexs(TOKEN),
            "topics": [hexs(TOPIC_A), None, [hexs(TOPIC_A), hexs(TOPIC_B)], [hexs(TOPIC_A), None]],
        },
    )
    assert result[0] == LOG0_JSON and len(result) == 2
    assert node.queries[-1] == LogFilter(
        from_block=0,
        to_block="latest",
        addresses=(TOKEN,),
        topics=((TOPIC_A,), None, (TOPIC_A, TOPIC_B), None),
    )
    rpc(
        client, "eth_getLogs", {"blockHash": hexs(BLOCK1_HASH), "address": [hexs(TOKEN), hexs(BOB)]}
    )
    assert node.queries[-1] == LogFilter(addresses=(TOKEN, BOB), block_hash=BLOCK1_HASH)
    rpc(client, "eth_getLogs", {})
    assert node.queries[-1] == LogFilter()
    error = rpc_error(client, "eth_getLogs", {"blockHash": hexs(BLOCK1_HASH), "fromBlock": "0x0"})
    assert error["code"] == -32602 and "cannot specify both BlockHash" in error["message"]
    error = rpc_error(client, "eth_getLogs", {"topics": [None] * 5})
    assert error == {"code": -32602, "message": "invalid argument 0: exceed max topics"}
    error = rpc_error(client, "eth_getLogs", {"address": ["0x12"]})
    assert error["code"] == -32602


# --- the envelope --------------------------------------------------------------------------


def test_batch(client: TestClient) -> None:
    answer = post(
        client,
        [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "method": "eth_chainId"},  # a notification: no answer
            {"jsonrpc": "2.0", "id": "two", "method": "eth_nope"},
            42,
            {"jsonrpc": "1.0", "id": 3, "method": "eth_chainId"},
            {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": ["0x01"]},
            {"jsonrpc": "2.0", "id": None, "method": "eth_blockNumber", "params": []},
        ],
    )
    assert answer == [
        {"jsonrpc": "2.0", "id": 1, "result": "0x539"},
        {
            "jsonrpc": "2.0",
            "id": "two",
            "error": {
                "code": -32601,
                "message": "the method eth_nope does not exist/is not available",
            },
        },
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}},
        {"jsonrpc": "2.0", "id": 3, "error": {"code": -32600, "message": "invalid request"}},
        {
            "jsonrpc": "2.0",
            "id": 4,
            "error": {
                "code": -32602,
                "message": "invalid argument 0: "
                "hex string has length 2, want 40 for common.Address",
            },
        },
        {"jsonrpc": "2.0", "id": None, "result": "0x1"},
    ]


def test_batch_limits(client: TestClient) -> None:
    assert post(client, []) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "empty batch"},
    }
    call = {"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"}
    answer = post(client, [call] * 1000)
    assert len(answer) == 1000 and all(a["result"] == "0x539" for a in answer)
    assert post(client, [call] * 1001) == [
        {"jsonrpc": "2.0", "id": 9, "error": {"code": -32600, "message": "batch too large"}}
    ]


def test_notifications_only(client: TestClient) -> None:
    for body in ({"jsonrpc": "2.0", "method": "eth_chainId"}, [{"jsonrpc": "2.0", "method": "x"}]):
        response = client.post("/", json=body)
        assert response.status_code == 200 and response.content == b""


def test_parse_and_request_errors(client: TestClient) -> None:
    for raw in (b"{", b"", b'{"jsonrpc": "2.0", "id": 1, "method": NaN}'):
        response = client.post("/", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 200
        assert response.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32700, "message": "parse error"},
        }
    invalid = {"code": -32600, "message": "invalid request"}
    assert post(client, "hello")["error"] == invalid
    assert post(client, {"jsonrpc": "2.0", "id": 1})["error"] == invalid
    assert post(client, {"id": 1, "method": "eth_chainId"})["error"] == invalid
    assert post(client, {"jsonrpc": "2.0", "id": [1], "method": "eth_chainId"})["error"] == invalid


def test_invalid_params(client: TestClient) -> None:
    alice = hexs(ALICE)
    assert rpc_error(client, "eth_getBalance", alice, "0x01") == {
        "code": -32602,
        "message": "invalid argument 1: hex number with leading zero digits",
    }
    assert rpc_error(client, "eth_getBalance", alice) == {
        "code": -32602,
        "message": "missing value for required argument 1",
    }
    assert rpc_error(client, "eth_blockNumber", 1) == {
        "code": -32602,
        "message": "too many arguments, want at most 0",
    }
    assert rpc_error(client, "eth_getBlockByNumber", "0x", False)["message"] == (
        'invalid argument 0: hex string "0x"'
    )
    assert rpc_error(client, "eth_getBlockByNumber", "0x1")["code"] == -32602
    assert rpc_error(client, "eth_getBlockByNumber", "0x1", "yes")["code"] == -32602
    assert rpc_error(client, "eth_getTransactionByHash", "0x12")["code"] == -32602
    assert rpc_error(client, "eth_getStorageAt", alice, "0x" + "1" * 66, "latest")["code"] == -32602
    answer = post(client, {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {"a": 1}})
    assert answer["error"] == {"code": -32602, "message": "non-array args"}


def test_unexpected_exception(client: TestClient, node: FakeNode) -> None:
    node.boom = True
    assert rpc_error(client, "eth_gasPrice") == {
        "code": -32603,
        "message": "internal error: RuntimeError",
    }
    assert rpc(client, "eth_chainId") == "0x539"  # the server carries on


def test_http_edges(client: TestClient) -> None:
    response = client.post(
        "/", content=b"x" * (64 * 1024 + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    response = client.post("/", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 415
    response = client.post(
        "/", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.json()["result"] == "0x539"
    assert client.get("/").status_code == 405


def test_mount_on_existing_app(node: FakeNode) -> None:
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(create_rpc_router(node))
    client = TestClient(app)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert rpc(client, "eth_blockNumber") == "0x1"


# --- web3.py over HTTP ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url() -> Any:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_rpc_app(FakeNode()), port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


def test_web3(server_url: str) -> None:
    from web3 import Web3
    from web3.exceptions import ContractLogicError, Web3RPCError

    w3 = Web3(Web3.HTTPProvider(server_url))
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.eth.block_number == 1
    block = w3.eth.get_block("latest")
    assert block["number"] == 1 and block["hash"] == BLOCK1_HASH
    assert block["transactions"] == [TX0_HASH, TX2_HASH]
    assert block["withdrawals"][0]["amount"] == 32 * 10**9
    full = w3.eth.get_block(BLOCK1_HASH, full_transactions=True)
    assert full["transactions"][1]["maxFeePerGas"] == 3_000_000_000
    alice = Web3.to_checksum_address(ALICE)
    assert w3.eth.get_balance(alice) == 5 * 10**18 - 1
    assert w3.eth.get_transaction_count(alice, "pending") == 3
    tx = w3.eth.get_transaction(TX2_HASH)
    assert tx["from"] == alice and tx["type"] == 2 and tx["blockNumber"] == 1
    legacy = w3.eth.get_transaction(TX0_HASH)
    assert legacy["gasPrice"] == 2_000_000_000 and legacy["to"] == Web3.to_checksum_address(BOB)
    receipt = w3.eth.get_transaction_receipt(TX2_HASH)
    assert receipt["status"] == 1 and receipt["logs"][0]["topics"] == [TOPIC_A, TOPIC_B]
    token = Web3.to_checksum_address(TOKEN)
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": token})
    assert logs[1]["logIndex"] == 1 and logs[0]["data"] == h32(5)
    history = w3.eth.fee_history(2, "latest", [50])
    assert history["oldestBlock"] == 0 and history["reward"] == [[100], [100]]
    assert w3.eth.estimate_gas({"from": alice, "to": token, "data": "0x1234"}) == 21_032
    assert w3.eth.call({"to": token, "data": "0x1234"}) == h32(42)
    assert w3.eth.get_code(token) == bytes.fromhex("6080604052")
    with pytest.raises(ContractLogicError, match="execution reverted: nope"):
        w3.eth.call({"to": token, "data": "0xdead"})
    with pytest.raises(Web3RPCError, match="nonce too low: next nonce 3, tx nonce 0"):
        w3.eth.send_raw_transaction(b"\x02\x00")
    assert w3.eth.send_raw_transaction(b"\x02\x01") == PENDING_HASH
