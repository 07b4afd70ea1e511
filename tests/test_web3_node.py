"""web3.py against a real ``evmpp serve --dev`` over HTTP.

One node (``python -m cli.main serve --dev``, its own embedded Ray) runs in a subprocess for
the whole module; the tests drive it only as a wallet or a dapp would: signed raw
transactions, receipts, blocks, calls, logs, fee history; then a restart on the same
``--data-dir`` must answer the same. The tests share what they sent through ``SEEN``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import rlp
import vyper
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound

ROOT = Path(__file__).resolve().parents[1]
MNEMONIC = "test test test test test test test test test test test junk"
FIRST = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEV_BALANCE = 10_000 * 10**18
CHAIN_ID = 1337
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
START_TIMEOUT = 120.0

Account.enable_unaudited_hdwallet_features()
DEV = [Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]

COUNTER = """
# pragma version ^0.4.0

event Set:
    who: indexed(address)
    v: uint256

x: public(uint256)

@deploy
def __init__(x0: uint256):
    self.x = x0

@external
def set(v: uint256):
    self.x = v
    log Set(who=msg.sender, v=v)

@external
def fail(v: uint256):
    assert v == 0, "v must be zero"
    self.x = v
"""

SEEN: dict[str, Any] = {}
"""What the tests sent and saw, for the later ones (the restart) to check again."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProcess:
    """``python -m cli.main serve --dev`` in its own session (its Ray goes with the group)."""

    def __init__(self, data_dir: Path, port: int, log_dir: Path) -> None:
        self.data_dir, self.port, self.log_dir = data_dir, port, log_dir
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.stderr_path = self.log_dir / f"node-{self.starts}.err"
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-m", "cli.main", "serve", "--dev", "--port", str(self.port)]
        argv += ["--interval", "0.2", "--cpus", "4", "--data-dir", str(self.data_dir)]
        with open(self.stderr_path, "wb") as err, open(self.log_dir / "node.out", "ab") as out:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the node exited ({self.proc.returncode}):\n{self.stderr()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"the node did not answer /healthz in {START_TIMEOUT} s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-20_000:]

    def stop(self) -> int | None:
        """SIGINT to the node, then SIGTERM (SIGKILL) to what is left of its group."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        code = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=60)
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    os.killpg(proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.2)
        if code is None:
            code = proc.wait(timeout=10)
        return code


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("web3node")
    process = NodeProcess(base / "data", free_port(), base)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def w3(node):
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))


def rpc(node: NodeProcess, method: str, *params: Any) -> dict[str, Any]:
    """The raw JSON-RPC answer (result or error)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    return httpx.post(node.url, json=body, timeout=30).json()


def wait_blocks(w3: Web3, count: int = 1, timeout: float = 30.0) -> int:
    start = w3.eth.block_number
    deadline = time.monotonic() + timeout
    while (number := w3.eth.block_number) < start + count:
        assert time.monotonic() < deadline, f"no block past {number} in {timeout} s"
        time.sleep(0.1)
    return number


def fees(w3: Web3) -> dict[str, int]:
    tip = w3.eth.max_priority_fee
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}


def transfer(w3: Web3, account: Any, to: str, value: int, **extra: Any) -> dict[str, Any]:
    tx = {
        "type": 2,
        "chainId": CHAIN_ID,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "to": to,
        "value": value,
        "gas": 21_000,
        **fees(w3),
        **extra,
    }
    return tx


def send(w3: Web3, account: Any, tx: dict[str, Any]) -> Any:
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    assert tx_hash == signed.hash
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)


def sign_typed(type_id: int, fields: list[Any], key: bytes) -> tuple[bytes, list[Any]]:
    """A typed transaction signed with eth_keys: ``type || rlp(fields + [y, r, s])``."""
    digest = keccak(bytes([type_id]) + rlp.encode(fields))
    signature = keys.PrivateKey(key).sign_msg_hash(digest)
    signed = [*fields, signature.v, signature.r, signature.s]
    return bytes([type_id]) + rlp.encode(signed), signed


def dynamic_fields(w3: Web3, account: Any, **over: Any) -> list[Any]:
    f = fees(w3)
    nonce = over.get("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    to = over.get("to", bytes.fromhex(DEV[9].address[2:]))
    return [
        CHAIN_ID,
        nonce,
        over.get("tip", f["maxPriorityFeePerGas"]),
        over.get("fee_cap", f["maxFeePerGas"]),
        over.get("gas", 21_000),
        to,
        over.get("value", 1),
        over.get("data", b""),
        [],
    ]


def sent_before(w3: Web3, account: Any) -> int:
    """``account``'s next nonce, after mining a transfer of its own if it has sent none."""
    if w3.eth.get_transaction_count(account.address) == 0:
        assert send(w3, account, transfer(w3, account, DEV[9].address, 1))["status"] == 1
    return w3.eth.get_transaction_count(account.address)


# --- 1. connect ----------------------------------------------------------------------------


def test_connect(w3, node):
    assert w3.is_connected()
    assert w3.eth.chain_id == CHAIN_ID
    assert w3.client_version.startswith("evmpp/")
    first = w3.eth.block_number
    assert wait_blocks(w3, 2) >= first + 2


# --- 2. dev accounts -----------------------------------------------------------------------


def test_dev_accounts_funded_and_printed(w3, node):
    assert DEV[0].address == FIRST
    for account in DEV:
        assert w3.eth.get_balance(account.address, block_identifier=0) == DEV_BALANCE
    assert w3.eth.accounts == []
    printed = node.stderr()
    assert "Available Accounts" in printed and "Private Keys" in printed
    for i, account in enumerate(DEV):
        assert f"({i}) {account.address} (10000.000000000000000000 ETH)" in printed
        assert f"({i}) 0x{bytes(account.key).hex()}" in printed
    assert MNEMONIC in printed


# --- 3. a transfer -------------------------------------------------------------------------


def test_transfer(w3):
    sender = DEV[0]
    recipient = Account.create().address
    value = 12345 * 10**12
    tx = transfer(w3, sender, recipient, value)
    receipt = send(w3, sender, tx)
    assert receipt["status"] == 1
    assert receipt["gasUsed"] == 21_000
    assert receipt["from"] == sender.address and receipt["to"] == recipient
    assert receipt["contractAddress"] is None
    n = receipt["blockNumber"]
    price = receipt["effectiveGasPrice"]
    block = w3.eth.get_block(n, full_transactions=True)
    assert price == block["baseFeePerGas"] + tx["maxPriorityFeePerGas"]
    assert price <= tx["maxFeePerGas"]

    cost = value + 21_000 * price
    assert w3.eth.get_balance(sender.address, n) == w3.eth.get_balance(sender.address, n - 1) - cost
    assert w3.eth.get_balance(recipient, n - 1) == 0
    assert w3.eth.get_balance(recipient, n) == value
    assert w3.eth.get_balance(recipient) == value
    assert w3.eth.get_transaction_count(sender.address, n) == tx["nonce"] + 1

    got = w3.eth.get_transaction(receipt["transactionHash"])
    assert got["hash"] == receipt["transactionHash"]
    assert got["from"] == sender.address and got["to"] == recipient
    assert got["value"] == value and got["nonce"] == tx["nonce"] and got["gas"] == 21_000
    assert got["type"] == 2 and got["chainId"] == CHAIN_ID
    assert got["maxFeePerGas"] == tx["maxFeePerGas"]
    assert got["maxPriorityFeePerGas"] == tx["maxPriorityFeePerGas"]
    assert got["blockNumber"] == n and got["blockHash"] == receipt["blockHash"]
    assert got["transactionIndex"] == receipt["transactionIndex"]
    assert got["gasPrice"] == price

    assert block["hash"] == receipt["blockHash"]
    hashes = [t["hash"] for t in block["transactions"]]
    assert receipt["transactionHash"] in hashes
    assert block["transactions"][receipt["transactionIndex"]]["from"] == sender.address
    assert len(block["transactionsRoot"]) == 32 and len(block["receiptsRoot"]) == 32
    assert block["gasUsed"] >= 21_000
    assert w3.eth.get_block(block["hash"])["number"] == n

    head = w3.eth.block_number
    low = max(0, min(n, head) - 10)
    previous = w3.eth.get_block(low)
    for number in range(low + 1, head + 1):
        current = w3.eth.get_block(number)
        assert current["parentHash"] == previous["hash"], number
        assert current["number"] == number
        previous = current
    assert w3.eth.get_block(1)["parentHash"] == w3.eth.get_block(0)["hash"]
    SEEN["transfer"] = {
        "receipt": receipt,
        "tx": got,
        "sender": sender.address,
        "recipient": recipient,
        "value": value,
    }


# --- 4. a Vyper contract -------------------------------------------------------------------


@pytest.fixture(scope="module")
def counter_code():
    out = vyper.compile_code(COUNTER, output_formats=["bytecode", "abi"])
    return out["abi"], out["bytecode"]


def build_and_send(w3: Web3, account: Any, function: Any, gas: int | None = None) -> Any:
    tx_fields = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": CHAIN_ID,
        **fees(w3),
    }
    if gas is not None:
        tx_fields["gas"] = gas
    tx = function.build_transaction(tx_fields)
    return tx, send(w3, account, tx)


def test_vyper_contract(w3, counter_code):
    abi, bytecode = counter_code
    deployer = DEV[1]
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    deploy_tx, receipt = build_and_send(w3, deployer, factory.constructor(7))
    assert receipt["status"] == 1
    address = receipt["contractAddress"]
    assert address is not None
    assert address == to_checksum_address(
        keccak(rlp.encode([bytes.fromhex(deployer.address[2:]), deploy_tx["nonce"]]))[12:]
    )
    assert deploy_tx["gas"] >= receipt["gasUsed"] > 53_000
    contract = w3.eth.contract(address=address, abi=abi)
    assert contract.functions.x().call() == 7
    code = w3.eth.get_code(address)
    assert len(code) > 0
    assert w3.eth.get_code(address, receipt["blockNumber"] - 1) == b""

    estimate = contract.functions.set(42).estimate_gas({"from": deployer.address})
    assert 21_000 < estimate < 100_000
    set_tx, set_receipt = build_and_send(w3, deployer, contract.functions.set(42), gas=estimate)
    assert set_tx["gas"] == estimate
    assert set_receipt["status"] == 1
    assert set_receipt["gasUsed"] <= estimate
    assert contract.functions.x().call() == 42
    assert contract.functions.x().call(block_identifier=set_receipt["blockNumber"] - 1) == 7
    assert w3.eth.get_storage_at(address, 0) == (42).to_bytes(32, "big")
    assert w3.eth.get_storage_at(address, 0, set_receipt["blockNumber"] - 1) == (7).to_bytes(
        32, "big"
    )

    [event] = contract.events.Set().process_receipt(set_receipt)
    assert event["args"]["who"] == deployer.address and event["args"]["v"] == 42
    events = contract.events.Set().get_logs(from_block=receipt["blockNumber"])
    assert [(e["transactionHash"], e["args"]["v"]) for e in events] == [
        (set_receipt["transactionHash"], 42)
    ]
    topic0 = keccak(text="Set(address,uint256)")
    who = b"\x00" * 12 + bytes.fromhex(deployer.address[2:])
    logs = w3.eth.get_logs(
        {
            "address": address,
            "topics": [topic0, who],
            "fromBlock": receipt["blockNumber"],
            "toBlock": "latest",
        }
    )
    assert len(logs) == 1
    [entry] = logs
    assert entry["transactionHash"] == set_receipt["transactionHash"]
    assert entry["blockHash"] == set_receipt["blockHash"]
    assert entry["data"] == (42).to_bytes(32, "big")
    assert entry["logIndex"] == set_receipt["logs"][0]["logIndex"]
    other = b"\x00" * 12 + bytes.fromhex(DEV[2].address[2:])
    assert w3.eth.get_logs({"address": address, "topics": [topic0, other], "fromBlock": 0}) == []

    with pytest.raises(ContractLogicError, match="v must be zero"):
        contract.functions.fail(1).call({"from": deployer.address})
    assert contract.functions.fail(0).call({"from": deployer.address}) == []
    nonce_before = w3.eth.get_transaction_count(deployer.address)
    _, failed = build_and_send(w3, deployer, contract.functions.fail(1), gas=100_000)
    assert failed["status"] == 0
    assert 21_000 < failed["gasUsed"] < 100_000
    assert failed["logs"] == []
    assert w3.eth.get_transaction_count(deployer.address) == nonce_before + 1
    assert contract.functions.x().call() == 42

    SEEN["contract"] = {
        "address": address,
        "abi": abi,
        "receipts": [receipt, set_receipt, failed],
        "deployer": deployer.address,
    }


def test_fee_history_follows_eip1559(w3):
    wait_blocks(w3, 1)
    history = w3.eth.fee_history(4, "latest", [25, 75])
    newest = history["oldestBlock"] + 3
    assert newest <= w3.eth.block_number
    assert len(history["baseFeePerGas"]) == 5
    assert len(history["gasUsedRatio"]) == 4
    assert len(history["reward"]) == 4 and all(len(r) == 2 for r in history["reward"])
    for i in range(4):
        block = w3.eth.get_block(history["oldestBlock"] + i)
        base = block["baseFeePerGas"]
        assert history["baseFeePerGas"][i] == base
        assert history["gasUsedRatio"][i] == pytest.approx(block["gasUsed"] / block["gasLimit"])
        target = block["gasLimit"] // 2
        if block["gasUsed"] < target:
            expected = base - base * (target - block["gasUsed"]) // target // 8
            assert base - base // 8 <= expected <= base
        elif block["gasUsed"] > target:
            expected = base + max(1, base * (block["gasUsed"] - target) // target // 8)
        else:
            expected = base
        assert history["baseFeePerGas"][i + 1] == expected, i
    # the whole chain so far: each base fee from its parent's
    head = w3.eth.block_number
    parent = w3.eth.get_block(max(0, head - 20))
    for number in range(parent["number"] + 1, head + 1):
        block = w3.eth.get_block(number)
        if parent["gasUsed"] < parent["gasLimit"] // 2:
            assert parent["baseFeePerGas"] * 7 // 8 <= block["baseFeePerGas"]
            assert block["baseFeePerGas"] <= parent["baseFeePerGas"]
        parent = block


# --- 5. admission over RPC -----------------------------------------------------------------


def test_admission_refusals(w3, node):
    key = DEV[3]
    nonce = w3.eth.get_transaction_count(key.address, "pending")
    assert nonce == w3.eth.get_transaction_count(key.address)
    balance = w3.eth.get_balance(key.address)
    cases: list[tuple[str, bytes, tuple[str, ...]]] = []

    # a high-s signature of a valid transaction
    fields = dynamic_fields(w3, key)
    good, signed = sign_typed(2, fields, bytes(key.key))
    y, r, s = signed[-3:]
    high = bytes([2]) + rlp.encode([*fields, 1 - y, r, SECP256K1_N - s])
    cases.append(("high s", high, ("invalid sender: invalid transaction v, r, s values",)))

    raw, _ = sign_typed(2, dynamic_fields(w3, key, gas=20_000), bytes(key.key))
    cases.append(("gas 20,000", raw, ("intrinsic gas too low: gas 20000, minimum needed 21000",)))

    initcode = b"\x60" * 50_000
    raw, _ = sign_typed(
        2, dynamic_fields(w3, key, gas=5_000_000, to=b"", data=initcode), bytes(key.key)
    )
    cases.append(("init code", raw, ("max initcode size exceeded: code size 50000, limit 49152",)))

    blob_fields = [*dynamic_fields(w3, key)[:9], 10**9, []]
    raw, _ = sign_typed(3, blob_fields, bytes(key.key))
    cases.append(
        (
            "blob, no hashes",
            raw,
            ("missing sidecar in blob transaction", "blobless blob transaction"),
        )
    )
    blob_hash = b"\x01" + b"\x00" * 31
    raw, _ = sign_typed(3, [*dynamic_fields(w3, key)[:9], 10**9, [blob_hash]], bytes(key.key))
    cases.append(("blob, no sidecar", raw, ("missing sidecar in blob transaction",)))

    f = fees(w3)
    raw, _ = sign_typed(
        2,
        dynamic_fields(w3, key, tip=f["maxFeePerGas"] + 1, fee_cap=f["maxFeePerGas"]),
        bytes(key.key),
    )
    cases.append(("tip above cap", raw, ("max priority fee per gas higher than max fee per gas",)))

    legacy = {
        "nonce": nonce,
        "gasPrice": f["maxFeePerGas"],
        "gas": 21_000,
        "to": DEV[9].address,
        "value": 1,
    }
    raw = key.sign_transaction(legacy).raw_transaction
    assert rlp.decode(raw)[6] in (b"\x1b", b"\x1c")  # v 27/28: no chain id
    cases.append(
        ("no chain id", raw, ("only replay-protected (EIP-155) transactions allowed over RPC",))
    )

    # a used nonce
    used = DEV[0]
    used_nonce = sent_before(w3, used)
    raw, _ = sign_typed(2, dynamic_fields(w3, used, nonce=used_nonce - 1), bytes(used.key))
    # the wording after the colon: test_admission_messages_are_the_pools
    cases.append(("used nonce", raw, ("nonce too low: ",)))

    poor = Account.create()
    raw, _ = sign_typed(2, dynamic_fields(w3, poor, nonce=0), bytes(poor.key))
    cases.append(("no funds", raw, ("insufficient funds for gas * price + value: ",)))

    refused = []
    for name, raw, messages in cases:
        answer = rpc(node, "eth_sendRawTransaction", "0x" + raw.hex())
        assert "error" in answer, (name, answer)
        message = answer["error"]["message"]
        assert any(message.startswith(m) for m in messages), (name, message)
        assert isinstance(answer["error"]["code"], int)
        refused.append(keccak(raw))

    wait_blocks(w3, 3)
    for tx_hash in refused:
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(tx_hash)
        assert rpc(node, "eth_getTransactionReceipt", "0x" + tx_hash.hex())["result"] is None
    assert w3.eth.get_transaction_count(key.address, "pending") == nonce
    assert w3.eth.get_transaction_count(key.address) == nonce
    assert w3.eth.get_balance(key.address) == balance
    assert w3.eth.get_transaction_count(poor.address) == 0

    # the chain goes on, and a good transaction (the high-s one's original) is mined
    tx_hash = w3.eth.send_raw_transaction(good)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.1)
    assert receipt["status"] == 1
    assert w3.eth.get_transaction_count(key.address) == nonce + 1


def test_admission_messages_are_the_pools(w3, node):
    used = DEV[0]
    next_nonce = sent_before(w3, used)
    raw, _ = sign_typed(2, dynamic_fields(w3, used, nonce=next_nonce - 1), bytes(used.key))
    answer = rpc(node, "eth_sendRawTransaction", "0x" + raw.hex())
    stale = answer["error"]["message"]
    poor = Account.create()
    fields = dynamic_fields(w3, poor, nonce=0, value=5)
    raw, _ = sign_typed(2, fields, bytes(poor.key))
    cost = fields[4] * fields[3] + 5
    answer = rpc(node, "eth_sendRawTransaction", "0x" + raw.hex())
    poor_message = answer["error"]["message"]
    assert stale == f"nonce too low: next nonce {next_nonce}, tx nonce {next_nonce - 1}"
    assert poor_message == (
        f"insufficient funds for gas * price + value: balance 0, tx cost {cost}, overshot {cost}"
    )


# --- 6. restart ----------------------------------------------------------------------------


def test_restart_answers_the_same(w3, node):
    assert "transfer" in SEEN and "contract" in SEEN, "run with the tests before"
    contract_info = SEEN["contract"]
    transfer_info = SEEN["transfer"]
    receipts = [transfer_info["receipt"], *contract_info["receipts"]]
    before = wait_blocks(w3, 1)
    hashes = {n: w3.eth.get_block(n)["hash"] for n in range(max(0, before - 5), before + 1)}
    for r in receipts:
        hashes[r["blockNumber"]] = r["blockHash"]
    accounts = [transfer_info["sender"], transfer_info["recipient"], contract_info["deployer"]]
    balances_at = {a: w3.eth.get_balance(a, before) for a in accounts}
    tx_before = w3.eth.get_transaction(transfer_info["tx"]["hash"])

    assert node.stop() == 0, node.stderr()
    assert "Traceback" not in node.stderr()
    node.start()

    after = w3.eth.block_number
    assert after >= before
    for number, block_hash in hashes.items():
        assert w3.eth.get_block(number)["hash"] == block_hash, number
    for r in receipts:
        again = w3.eth.get_transaction_receipt(r["transactionHash"])
        for field in ("status", "blockHash", "blockNumber", "gasUsed", "logs", "contractAddress"):
            assert again[field] == r[field], field
    assert w3.eth.get_transaction(transfer_info["tx"]["hash"]) == tx_before
    for a in accounts:
        assert w3.eth.get_balance(a, before) == balances_at[a]
    assert w3.eth.get_balance(transfer_info["recipient"]) == transfer_info["value"]
    contract = w3.eth.contract(address=contract_info["address"], abi=contract_info["abi"])
    assert contract.functions.x().call() == 42
    [_, set_receipt, _] = contract_info["receipts"]
    events = contract.events.Set().get_logs(from_block=set_receipt["blockNumber"])
    assert [e["transactionHash"] for e in events] == [set_receipt["transactionHash"]]

    stored = {n: w3.eth.get_block(n)["hash"] for n in range(before, w3.eth.block_number + 1)}
    wait_blocks(w3, 2)
    head = w3.eth.block_number
    for number in range(before + 1, head + 1):
        block = w3.eth.get_block(number)
        parent = stored.get(number - 1) or w3.eth.get_block(number - 1)["hash"]
        assert block["parentHash"] == parent, number
        stored[number] = block["hash"]

    # and it takes transactions again
    receipt = send(w3, DEV[4], transfer(w3, DEV[4], DEV[5].address, 1))
    assert receipt["status"] == 1 and receipt["blockNumber"] > before
