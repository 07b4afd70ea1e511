"""``evmpp ebs subscribe | cancel | status`` (``cli/ebs.py``) against a real node over HTTP.

One node for the module: the dev chain's producer in process (in-process CUs, a verifier
thread) making a block every 0.1 s on a thread, its API (``api.create_app`` over
``coordinator.node.Node``) served by uvicorn on a free port. A dev account deploys two
contracts (after a transfer, so their deploy nonces are 1 and 2, which the command must find);
the commands then run as an operator runs them, ``cli.main.main([...])``, and every bad input
or refusal must be one ``error: ...`` line and exit 1.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from eth_account import Account
from eth_utils import to_checksum_address
from support import inline_producer

from api import create_app
from bench.workload.contracts import compiled
from chain import dev_accounts, dev_genesis
from cli.ebs import CliError, parse_stake
from cli.main import main
from coordinator.node import Node

ETHER = 10**18
OWNER, OTHER = dev_accounts(2)
OWNER_KEY, OTHER_KEY = "0x" + OWNER.private_key.hex(), "0x" + OTHER.private_key.hex()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rpc(url: str, method: str, *params):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    answer = httpx.post(url, json=body, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


def send(url: str, key: bytes, nonce: int, **fields) -> str:
    tx = dict(
        type=2, chainId=1337, nonce=nonce, maxFeePerGas=10 * 10**9, maxPriorityFeePerGas=10**9
    )
    signed = Account.sign_transaction({**tx, "value": 0, **fields}, key)
    return rpc(url, "eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())


@pytest.fixture(scope="module")
def node():
    """The node's URL and the two contracts OWNER deployed (at its nonces 1 and 2)."""
    producer = inline_producer(dev_genesis())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Node(producer)), host="127.0.0.1", port=port, log_level="error")
    )
    stop = threading.Event()

    def blocks() -> None:
        while not stop.is_set():
            producer.produce()
            stop.wait(0.1)

    threads = [threading.Thread(target=t, daemon=True) for t in (server.run, blocks)]
    for thread in threads:
        thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: server.started, what="the API")
        init = compiled("nft").deploy_data("Elastic", 1000)
        hashes = [send(url, OWNER.private_key, 0, to=OTHER.address, value=ETHER, gas=21_000)]
        hashes += [send(url, OWNER.private_key, n, data=init, gas=2_000_000) for n in (1, 2)]
        receipts = [
            wait_for(lambda h=h: rpc(url, "eth_getTransactionReceipt", h), what="a receipt")
            for h in hashes
        ]
        assert all(r["status"] == "0x1" for r in receipts)
        yield url, [receipts[1]["contractAddress"], receipts[2]["contractAddress"]]
    finally:
        stop.set()
        server.should_exit = True
        for thread in threads:
            thread.join(timeout=30)
        producer.close()


def evmpp(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The whole of stderr: a single ``error: ...`` line, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_subscribe_until_active_then_status_then_cancel(node, capsys):
    url, (nft_a, nft_b) = node
    argv = ["ebs", "subscribe", "--rpc", url, "--key", OWNER_KEY, "--stake", "1.5ether"]
    code, out, err = evmpp(capsys, *argv, "--contract", nft_a, "--contract", nft_b, "--wait")
    assert code == 0, err
    first = out.splitlines()[0].split()
    assert first[0] == "subscription" and first[2:4] == ["pending:", "tx"], out
    sub_id, tx_hash = first[1], first[4]
    assert f"{to_checksum_address(nft_a)} (nonce 1)" in out and "(nonce 2)" in out
    assert f"subscription {sub_id} active from block" in out and "stake 1.5 ether" in out
    included = httpx.get(f"{url}/v1/transactions/{tx_hash}").json()
    assert included["status"] == "included"

    code, out, err = evmpp(capsys, "ebs", "status", "--rpc", url, sub_id, "--json")
    view = json.loads(out)
    assert code == 0 and view["status"] == "active" and view["stake"] == str(15 * ETHER // 10)
    assert view["subscriber"] == "0x" + OWNER.address.hex()
    assert sorted(view["contracts"]) == sorted(c.lower() for c in (nft_a, nft_b))
    code, out, _ = evmpp(capsys, "ebs", "status", "--rpc", url, sub_id)
    assert code == 0 and out.startswith(f"subscription {sub_id}\n") and "active" in out
    assert f"cu                  {view['cu']}" in out
    code, out, _ = evmpp(capsys, "ebs", "status", "--rpc", url)  # every subscription
    assert code == 0 and f"subscription {sub_id}" in out

    # the node refuses, with its status and message: the contract is subscribed already
    code, _, err = evmpp(capsys, *argv, "--contract", nft_a)
    assert code == 1
    assert one_error_line(err) == (
        "error: the node refused the subscription (HTTP 409): "
        f"contracts already subscribed (subscription {sub_id})"
    )
    # only the subscriber may cancel
    code, _, err = evmpp(capsys, "ebs", "cancel", "--rpc", url, "--key", OTHER_KEY, sub_id)
    assert code == 1 and one_error_line(err) == (
        "error: the node refused the cancellation (HTTP 403): "
        "only the subscriber may cancel its subscription"
    )

    cancel = ["ebs", "cancel", "--rpc", url, "--key", OWNER_KEY, sub_id, "--wait", "--json"]
    code, out, err = evmpp(capsys, *cancel)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["id"] == sub_id and answer["status"] == "cancelling"
    assert answer["subscription"]["status"] == "cancelled" and answer["subscription"]["cu"] is None
    code, out, _ = evmpp(capsys, "ebs", "status", "--rpc", url, sub_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "cancelled"
    code, _, err = evmpp(capsys, "ebs", "cancel", "--rpc", url, "--key", OWNER_KEY, sub_id)
    assert code == 1 and "(HTTP 404): no subscription" in one_error_line(err)


def test_a_key_that_did_not_deploy_the_contract_is_refused(node, capsys):
    url, (nft_a, _) = node
    argv = ["ebs", "subscribe", "--rpc", url, "--key", OTHER_KEY, "--contract", nft_a]
    code, _, err = evmpp(capsys, *argv, "--stake", str(ETHER))
    assert code == 1
    assert one_error_line(err) == (
        f"error: {to_checksum_address(OTHER.address)} did not deploy "
        f"{to_checksum_address(nft_a)}: it has sent no transaction yet"
    )
    # the deployer names an address none of its CREATEs made (here: no contract at all)
    argv = ["ebs", "subscribe", "--rpc", url, "--key", OWNER_KEY, "--contract", "0x" + "11" * 20]
    code, _, err = evmpp(capsys, *argv, "--stake", "1ether")
    assert code == 1 and one_error_line(err).startswith(
        f"error: {to_checksum_address(OWNER.address)} did not deploy "
        f"{to_checksum_address('0x' + '11' * 20)}: none of its nonces 0 to "
    )


def test_an_unknown_subscription_is_a_404(node, capsys):
    url, _ = node
    code, _, err = evmpp(capsys, "ebs", "status", "--rpc", url, "0011223344556677")
    assert code == 1 and one_error_line(err) == (
        "error: the node refused the status query (HTTP 404): no subscription 0011223344556677"
    )
    code, _, err = evmpp(
        capsys, "ebs", "cancel", "--rpc", url, "--key", OWNER_KEY, "0x0011223344556677"
    )
    assert code == 1 and one_error_line(err) == (
        "error: the node refused the cancellation (HTTP 404): "
        "no subscription 0011223344556677 to cancel"
    )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--key", "0x1234"], "bad key: expected a secp256k1 private key, 32 bytes in hex"),
        (["--key", "zz" * 32], "bad key"),
        (["--key", "0x" + "00" * 32], "bad key"),
        (["--contract", "0x1234"], "bad address '0x1234': expected 0x and 40 hex digits"),
        (["--contract", "0x" + "aB" * 20], "its EIP-55 checksum is wrong"),
        (["--stake", "0.5ether"], "stake 500000000000000000 wei is under the minimum"),
        (["--stake", "1.5"], "bad stake '1.5'"),
        (["--stake", "lots"], "bad stake 'lots'"),
        (["--rpc", "localhost:8545"], "bad --rpc URL 'localhost:8545': expected http://host:port"),
    ],
)
def test_bad_input_is_one_error_line(capsys, flags, message):
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    args = {"--rpc": "http://127.0.0.1:9", "--key": OWNER_KEY, "--stake": "1ether"}
    args["--contract"] = "0x" + "11" * 20
    args.update(given)
    argv = [part for pair in args.items() for part in pair]
    code, out, err = evmpp(capsys, "ebs", "subscribe", *argv)
    assert code == 1 and not out and message in one_error_line(err)


def test_a_bad_id_and_a_missing_key_are_one_error_line(capsys, monkeypatch):
    code, _, err = evmpp(capsys, "ebs", "status", "--rpc", "http://127.0.0.1:9", "xyz")
    assert code == 1 and "bad subscription id 'xyz'" in one_error_line(err)
    monkeypatch.delenv("EVMPP_KEY", raising=False)
    code, _, err = evmpp(capsys, "ebs", "cancel", "--rpc", "http://127.0.0.1:9", "00" * 8)
    assert code == 1 and "no key: pass --key HEXKEY or set EVMPP_KEY" in one_error_line(err)


def test_an_unreachable_node_is_one_error_line(capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, _, err = evmpp(capsys, "ebs", "status", "--rpc", url, "00" * 8)
    assert code == 1 and one_error_line(err).startswith(f"error: cannot reach the node at {url}")
    argv = ["ebs", "subscribe", "--rpc", url, "--key", OWNER_KEY, "--contract", "0x" + "11" * 20]
    code, _, err = evmpp(capsys, *argv, "--stake", "2ether")
    assert code == 1 and one_error_line(err).startswith(f"error: cannot reach the node at {url}")


@pytest.mark.parametrize(
    "text, wei",
    [
        ("1000000000000000000", ETHER),
        ("1_000_000_000_000_000_000", ETHER),
        ("1.5ether", 15 * ETHER // 10),
        ("2 ETH", 2 * ETHER),
        ("1500000000gwei", 15 * ETHER // 10),
        ("1000000000000000001wei", ETHER + 1),
    ],
)
def test_stakes_in_wei_or_ether(text, wei):
    assert parse_stake(text) == wei


@pytest.mark.parametrize("text", ["1.5", "1e-30ether", "ether", "", "-2ether", "nanether"])
def test_bad_stakes(text):
    with pytest.raises(CliError, match="bad stake|under the minimum"):
        parse_stake(text)
