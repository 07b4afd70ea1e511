"""``evmpp ebs``: an operator's commands for elastic block space: ``subscribe``, ``cancel``,
``status``.

Its place: the ``cli`` layer, a client of a running node over HTTP only, as a wallet is:
JSON-RPC (``POST /``) for the chain id, nonce, fees and gas, the REST routes of
``api/rest.py`` (``/v1/ebs/subscriptions``) for the rest. It builds the registry
transactions of ``ebs/subscription.py`` itself: ``subscribe`` finds each contract's deploy
nonce (the CREATE rule, ``keccak(rlp([signer, nonce]))[12:]``, over the signer's nonces so
far), signs an EIP-1559 transaction (legacy on a chain without a base fee) with eth-account
and posts it; ``cancel`` does the same with the cancel payload. The standard library's
urllib speaks HTTP, so the product needs no HTTP client of its own.

Anything wrong (a bad key, address or stake, a node that cannot be reached, a refusal, with
its HTTP status and the node's message) is one ``error: ...`` line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlparse

from eth._utils.address import generate_contract_address
from eth_account import Account
from eth_utils import is_checksum_address, to_checksum_address

from ebs.subscription import MAX_CONTRACTS, MIN_STAKE, REGISTRY, cancel_data, subscribe_data

DEFAULT_RPC = "http://127.0.0.1:8545"
KEY_ENV = "EVMPP_KEY"
HTTP_TIMEOUT = 30.0
POLL_SECONDS = 0.5
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
UNITS = {"wei": 0, "gwei": 9, "eth": 18, "ether": 18}
ID_DIGITS = 16  # a subscription id: the first 8 bytes of its transaction hash


class CliError(Exception):
    """What went wrong, said in one line (``error: ...``)."""


# --- input ---------------------------------------------------------------------------------


def parse_key(text: str | None) -> Any:
    """The eth-account account of a hex private key (``0x`` optional)."""
    if not text:
        raise CliError(f"no key: pass --key HEXKEY or set {KEY_ENV}")
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        secret = int(digits, 16) if len(digits) == 64 else -1
    except ValueError:
        secret = -1
    if not 0 < secret < SECP256K1_N:
        raise CliError("bad key: expected a secp256k1 private key, 32 bytes in hex")
    return Account.from_key(bytes.fromhex(digits))


def parse_address(text: str) -> bytes:
    """A 20-byte address from ``0x`` hex; mixed case must be a valid EIP-55 checksum."""
    digits = text[2:] if text[:2] in ("0x", "0X") else ""
    try:
        raw = bytes.fromhex(digits) if len(digits) == 40 else b""
    except ValueError:
        raw = b""
    if not raw:
        raise CliError(f"bad address {text!r}: expected 0x and 40 hex digits")
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(text):
        raise CliError(f"bad address {text}: its EIP-55 checksum is wrong")
    return raw


def parse_stake(text: str) -> int:
    """Wei from ``1000000000000000000``, ``1.5ether``, ``2 eth`` or ``1500000000gwei``."""
    clean = text.strip().lower().replace("_", "")
    unit = next((u for u in sorted(UNITS, key=len, reverse=True) if clean.endswith(u)), "wei")
    number = clean[: len(clean) - len(unit)].strip() if clean.endswith(unit) else clean
    try:
        wei = Decimal(number).scaleb(UNITS[unit]) if number else None
    except InvalidOperation:
        wei = None
    if wei is None or not wei.is_finite() or wei != wei.to_integral_value():
        raise CliError(f"bad stake {text!r}: expected wei (an integer) or a value like 1.5ether")
    if wei < MIN_STAKE:
        raise CliError(f"stake {int(wei)} wei is under the minimum {MIN_STAKE} wei (1 ether)")
    return int(wei)


def parse_id(text: str) -> str:
    digits = (text[2:] if text[:2] in ("0x", "0X") else text).lower()
    if len(digits) != ID_DIGITS or any(c not in "0123456789abcdef" for c in digits):
        raise CliError(f"bad subscription id {text!r}: expected {ID_DIGITS} hex digits")
    return digits


def ether(wei: int) -> str:
    """Wei as ether, as short as it is exact: ``1.5 ether``."""
    text = format(Decimal(wei).scaleb(-18).normalize(), "f")
    return f"{text} ether"


# --- the node over HTTP ---------------------------------------------------------------------


class NodeClient:
    """A node's JSON-RPC (``POST /``) and REST (``/v1``) at one base URL."""

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"bad --rpc URL {url!r}: expected http://host:port")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._id = 0

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.status, _json(answer.read(), self.url + path)
        except urllib.error.HTTPError as err:
            with err:
                return err.code, _json(err.read(), self.url + path, strict=False)
        except urllib.error.URLError as err:
            raise CliError(f"cannot reach the node at {self.url}: {err.reason}") from None
        except TimeoutError:
            raise CliError(f"the node at {self.url} did not answer in {self.timeout:g} s") from None
        except OSError as err:  # a reset connection, a closed socket
            raise CliError(f"cannot reach the node at {self.url}: {err}") from None
        except http.client.HTTPException:
            raise CliError(f"{self.url} does not answer HTTP (is it an evmpp node?)") from None

    def rpc(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        status, answer = self.send("POST", "/", body)
        if status != 200 or not isinstance(answer, dict):
            raise CliError(f"{method}: the node answered HTTP {status}: {_detail(answer)}")
        if "error" in answer:
            error = answer["error"] or {}
            raise CliError(f"{method}: {error.get('message', error)}")
        return answer.get("result")

    def rest(self, method: str, path: str, body: Any = None, doing: str = "") -> Any:
        """The JSON of a 2xx answer; any other status is the node's refusal, as an error."""
        status, answer = self.send(method, path, body)
        if 200 <= status < 300:
            return answer
        what = f"the node refused {doing}" if doing else f"{method} {path}"
        raise CliError(f"{what} (HTTP {status}): {_detail(answer)}")


def _json(raw: bytes, where: str, strict: bool = True) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        if strict:
            raise CliError(f"{where} did not answer JSON (is it an evmpp node?)") from None
        text = " ".join(raw.decode(errors="replace").split())  # one line
        return "an HTML page (is it an evmpp node?)" if text.startswith("<") else text[:200]


def _detail(answer: Any) -> str:
    """The message of an error answer: FastAPI's ``detail`` (a string, or 422's list)."""
    detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else "no reason given"


def _quantity(value: Any, what: str) -> int:
    try:
        return int(value, 16)
    except (TypeError, ValueError):
        raise CliError(f"the node's {what} is not a quantity: {value!r}") from None


# --- building and signing --------------------------------------------------------------------


def deploy_nonce(signer: bytes, contract: bytes, nonces: int) -> int | None:
    """The nonce of ``signer`` whose CREATE made ``contract``, among ``0..nonces-1``."""
    for nonce in range(nonces):
        if generate_contract_address(signer, nonce) == contract:
            return nonce
    return None


def registry_tx(node: NodeClient, account: Any, data: bytes, value: int) -> tuple[bytes, str]:
    """A signed transaction to the registry: its raw bytes and hash (0x-hex).

    The registry holds no code, so the transaction is a value transfer with calldata and its
    gas the intrinsic gas, which ``eth_estimateGas`` gives exactly; the fee cap is twice the
    latest base fee plus the suggested tip, as wallets do."""
    chain_id = _quantity(node.rpc("eth_chainId"), "chain id")
    nonce = _quantity(node.rpc("eth_getTransactionCount", account.address, "pending"), "nonce")
    latest = node.rpc("eth_getBlockByNumber", "latest", False) or {}
    fields: dict[str, Any] = {
        "chainId": chain_id,
        "nonce": nonce,
        "to": to_checksum_address(REGISTRY),
        "value": value,
        "data": "0x" + data.hex(),
    }
    if latest.get("baseFeePerGas") is not None:
        tip = _quantity(node.rpc("eth_maxPriorityFeePerGas"), "priority fee")
        base = _quantity(latest["baseFeePerGas"], "base fee")
        fees = {"type": 2, "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}
    else:  # a chain before London: a legacy, EIP-155 transaction
        fees = {"gasPrice": _quantity(node.rpc("eth_gasPrice"), "gas price")}
    estimate = {"from": account.address, "to": fields["to"], "value": hex(value)}
    estimate.update(data=fields["data"], **{k: hex(v) for k, v in fees.items() if k != "type"})
    gas = _quantity(node.rpc("eth_estimateGas", estimate, "latest"), "gas estimate")
    signed = Account.sign_transaction({**fields, **fees, "gas": gas}, account.key)
    return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


def subscription_contracts(
    node: NodeClient, signer: bytes, contracts: Sequence[bytes]
) -> list[tuple[bytes, int]]:
    """Each contract with the signer's nonce that deployed it; an error names the first that
    it did not deploy, or that holds no code."""
    if len(set(contracts)) != len(contracts):
        raise CliError("a contract is named twice")
    if len(contracts) > MAX_CONTRACTS:
        raise CliError(f"name at most {MAX_CONTRACTS} contracts")
    count = _quantity(
        node.rpc("eth_getTransactionCount", to_checksum_address(signer), "pending"), "nonce"
    )
    found = []
    for contract in contracts:
        name = to_checksum_address(contract)
        nonce = deploy_nonce(signer, contract, count)
        if nonce is None:
            why = (
                f"none of its nonces 0 to {count - 1} gives that address by CREATE "
                "(CREATE2 deployments cannot subscribe)"
                if count
                else "it has sent no transaction yet"
            )
            raise CliError(f"{to_checksum_address(signer)} did not deploy {name}: {why}")
        if node.rpc("eth_getCode", name, "latest") in (None, "0x", "0x0"):
            raise CliError(f"{name} holds no code (its deployment failed, or is not in a block)")
        found.append((contract, nonce))
    return found


# --- the commands ----------------------------------------------------------------------------


def _subscription(node: NodeClient, sub_id: str) -> dict[str, Any]:
    return node.rest("GET", f"/v1/ebs/subscriptions/{quote(sub_id)}", doing="the status query")


def _wait(node: NodeClient, sub_id: str, tx_hash: str, until: str, timeout: float) -> dict:
    """Poll the subscription until its status is ``until``. An error if it is gone (its
    transaction dropped, or refused in its block), if its transaction was dropped or was
    included without the effect (a refusal in the block), if it ends first, or at the
    timeout."""
    deadline = time.monotonic() + timeout
    told, included_polls = "", 0
    while True:
        status, view = node.send("GET", f"/v1/ebs/subscriptions/{quote(sub_id)}")
        tx = node.rest("GET", f"/v1/transactions/{tx_hash}") or {}
        where = f"its transaction {tx_hash} is {tx.get('status', 'unknown')}"
        where += f": {tx['reason']}" if tx.get("reason") else ""
        if status == 404:
            raise CliError(f"subscription {sub_id} is gone; {where} (GET /v1/events says more)")
        if status != 200 or not isinstance(view, dict):
            raise CliError(f"the node refused the status query (HTTP {status}): {_detail(view)}")
        state = view.get("status")
        if state == until:
            return view
        if state == "cancelled":
            raise CliError(f"subscription {sub_id} was cancelled")
        if tx.get("status") == "dropped":
            raise CliError(f"subscription {sub_id} is {state}; {where}")
        # included: the block's effect is there by the next poll, unless it was refused
        included_polls = included_polls + 1 if tx.get("status") == "included" else 0
        if included_polls > 2 and state != "waiting":
            raise CliError(
                f"subscription {sub_id} is still {state}, though {where} in block "
                f"{tx.get('block_number')} (refused there: GET /v1/events says why)"
            )
        if state == "waiting" and told != state:
            told = state
            print(f"subscription {sub_id} is in a block, waiting for a CU", file=sys.stderr)
        if time.monotonic() >= deadline:
            raise CliError(f"subscription {sub_id} is still {state} after {timeout:g} s")
        time.sleep(POLL_SECONDS)


def subscribe(args: argparse.Namespace) -> int:
    account = parse_key(args.key)
    contracts = [parse_address(text) for text in args.contract]
    stake = parse_stake(args.stake)
    node = NodeClient(args.rpc)
    signer = bytes.fromhex(account.address[2:])
    named = subscription_contracts(node, signer, contracts)
    raw, tx_hash = registry_tx(node, account, subscribe_data(named, stake), stake)
    accepted = node.rest(
        "POST", "/v1/ebs/subscriptions", {"raw": "0x" + raw.hex()}, doing="the subscription"
    )
    if not isinstance(accepted, dict) or "id" not in accepted:
        raise CliError(f"the node's answer has no subscription id: {accepted!r}")
    sub_id, tx_hash = accepted["id"], accepted.get("hash", tx_hash)
    if not args.json:
        nonces = ", ".join(f"{to_checksum_address(c)} (nonce {n})" for c, n in named)
        print(f"subscription {sub_id} {accepted.get('status', 'pending')}: tx {tx_hash}")
        print(f"  stake {ether(stake)}, contracts {nonces}")
    view = None
    if args.wait:
        view = _wait(node, sub_id, tx_hash, "active", args.timeout)
        if not args.json:
            print(
                f"subscription {sub_id} active from block {view.get('active_since')} on "
                f"{view.get('cu')}, gas limit {view.get('gas_limit')}"
            )
    if args.json:
        print(json.dumps({**accepted, "subscription": view} if view else accepted, indent=2))
    return 0


def cancel(args: argparse.Namespace) -> int:
    account = parse_key(args.key)
    sub_id = parse_id(args.id)
    node = NodeClient(args.rpc)
    raw, tx_hash = registry_tx(node, account, cancel_data(sub_id), 0)
    accepted = node.rest(
        "DELETE",
        f"/v1/ebs/subscriptions/{sub_id}",
        {"raw": "0x" + raw.hex()},
        doing="the cancellation",
    )
    tx_hash = accepted.get("hash", tx_hash) if isinstance(accepted, dict) else tx_hash
    if not args.json:
        print(f"subscription {sub_id} cancelling: tx {tx_hash}")
    view = None
    if args.wait:
        view = _wait(node, sub_id, tx_hash, "cancelled", args.timeout)
        if not args.json:
            print(
                f"subscription {sub_id} cancelled: its CU is released, its stake returned at "
                "the start of the next block"
            )
    if args.json:
        print(json.dumps({**accepted, "subscription": view} if view else accepted, indent=2))
    return 0


FIELDS = (
    ("status", "status"),
    ("subscriber", "subscriber"),
    ("contracts", "contracts"),
    ("stake", "stake"),
    ("requested_block", "requested in block"),
    ("active_since", "active since block"),
    ("cu", "cu"),
    ("gas_limit", "gas limit"),
    ("parallelism", "parallelism"),
)


def format_subscription(view: dict[str, Any]) -> str:
    lines = [f"subscription {view.get('id')}"]
    for key, title in FIELDS:
        value = view.get(key)
        if value is None:
            continue
        if key == "contracts":
            value = ", ".join(to_checksum_address(c) for c in value)
        elif key == "subscriber":
            value = to_checksum_address(value)
        elif key == "stake":
            value = f"{value} wei ({ether(int(value))})"
        lines.append(f"  {title:<19} {value}")
    return "\n".join(lines)


def status(args: argparse.Namespace) -> int:
    node = NodeClient(args.rpc)
    if args.id is None:
        views = node.rest("GET", "/v1/ebs/subscriptions", doing="the status query") or []
    else:
        views = [_subscription(node, parse_id(args.id))]
    if args.json:
        print(json.dumps(views if args.id is None else views[0], indent=2))
    elif not views:
        print("no subscriptions")
    else:
        print("\n".join(format_subscription(view) for view in views))
    return 0


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CliError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130

    return run


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "ebs", help="elastic block space: subscribe a dApp, cancel, see a subscription"
    )
    sub = p.add_subparsers(dest="ebs_command", required=True)

    def node_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--rpc", default=DEFAULT_RPC, help=f"the node's HTTP URL (default {DEFAULT_RPC})"
        )
        q.add_argument("--json", action="store_true", help="print the node's JSON answer")

    def signer_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--key",
            default=os.environ.get(KEY_ENV),
            help=f"the signer's private key, hex (default: ${KEY_ENV})",
        )
        q.add_argument("--wait", action="store_true", help="return once it has taken effect")
        q.add_argument("--timeout", type=float, default=120.0, help="of --wait, in seconds")

    s = sub.add_parser(
        "subscribe",
        help="subscribe contracts the key's account deployed",
        description="Sign and submit a subscription: the registry transaction naming each "
        "contract with the signer's nonce that deployed it, its value the stake.",
    )
    node_args(s)
    signer_args(s)
    s.add_argument(
        "--contract",
        action="append",
        required=True,
        metavar="ADDR",
        help="a contract the key's account deployed (CREATE); repeat for more",
    )
    s.add_argument(
        "--stake",
        required=True,
        metavar="WEI_OR_ETHER",
        help="wei, or a value like 1.5ether (at least 1 ether); locked at the registry",
    )
    s.set_defaults(func=_run(subscribe))

    c = sub.add_parser("cancel", help="cancel a subscription (signed by its subscriber)")
    node_args(c)
    signer_args(c)
    c.add_argument("id", help="the subscription id (16 hex digits)")
    c.set_defaults(func=_run(cancel))

    t = sub.add_parser("status", help="a subscription's status, or every subscription's")
    node_args(t)
    t.add_argument("id", nargs="?", default=None, help="the subscription id (default: all)")
    t.set_defaults(func=_run(status))
