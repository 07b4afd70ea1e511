"""The Ethereum JSON-RPC methods over ``EthereumAPI``, with geth's JSON shapes.

Each method is a small function ``fn(node, *args)``; ``METHODS`` maps the method names to them
with their parameter decoders. The ``format_*`` functions marshal the node's views as geth's
``RPCMarshalHeader``/``RPCMarshalBlock``, ``newRPCTransaction``, ``marshalReceipt`` and
``types.Log`` do.
"""

from __future__ import annotations

from typing import Any

from api import hexcodec as hx
from api.hexcodec import BlockHashRef, HexError, enc_data, enc_quantity
from api.jsonrpc import Method, Param, RpcError
from coordinator.node_api import (
    EXECUTION_REVERTED,
    SERVER_ERROR,
    AccessListEntry,
    BlockRef,
    BlockView,
    CallRequest,
    EthereumAPI,
    FeeHistoryView,
    HeaderView,
    LogFilter,
    LogView,
    NodeError,
    ReceiptView,
    TxView,
)

MAX_FEE_HISTORY = 1024  # geth's FeeHistoryMaxHeaders
MAX_PERCENTILES = 100
MAX_TOPICS = 4
REVERT_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)

# --- formatting ----------------------------------------------------------------------------


def format_header(h: HeaderView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": enc_quantity(h.number),
        "hash": enc_data(h.hash),
        "parentHash": enc_data(h.parent_hash),
        "nonce": enc_data(h.nonce),
        "mixHash": enc_data(h.mix_hash),
        "sha3Uncles": enc_data(h.uncles_hash),
        "logsBloom": enc_data(h.logs_bloom),
        "stateRoot": enc_data(h.state_root),
        "miner": enc_data(h.coinbase),
        "difficulty": enc_quantity(h.difficulty),
        "extraData": enc_data(h.extra_data),
        "gasLimit": enc_quantity(h.gas_limit),
        "gasUsed": enc_quantity(h.gas_used),
        "timestamp": enc_quantity(h.timestamp),
        "transactionsRoot": enc_data(h.transactions_root),
        "receiptsRoot": enc_data(h.receipts_root),
    }
    if h.base_fee_per_gas is not None:
        out["baseFeePerGas"] = enc_quantity(h.base_fee_per_gas)
    if h.withdrawals_root is not None:
        out["withdrawalsRoot"] = enc_data(h.withdrawals_root)
    if h.blob_gas_used is not None:
        out["blobGasUsed"] = enc_quantity(h.blob_gas_used)
    if h.excess_blob_gas is not None:
        out["excessBlobGas"] = enc_quantity(h.excess_blob_gas)
    if h.parent_beacon_block_root is not None:
        out["parentBeaconBlockRoot"] = enc_data(h.parent_beacon_block_root)
    if h.requests_hash is not None:
        out["requestsHash"] = enc_data(h.requests_hash)
    return out


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def format_withdrawal(w: Any) -> dict[str, Any]:
    """A withdrawal: an object or dict with ``index, validator_index, address, amount``."""
    return {
        "index": enc_quantity(_field(w, "index")),
        "validatorIndex": enc_quantity(_field(w, "validator_index")),
        "address": enc_data(_field(w, "address")),
        "amount": enc_quantity(_field(w, "amount")),
    }


def format_block(block: BlockView) -> dict[str, Any]:
    out = format_header(block.header)
    out["size"] = enc_quantity(block.header.size)
    out["transactions"] = [
        format_tx(tx) if isinstance(tx, TxView) else enc_data(tx) for tx in block.transactions
    ]
    out["uncles"] = []
    if block.header.withdrawals_root is not None:
        out["withdrawals"] = [format_withdrawal(w) for w in block.withdrawals]
    return out


def format_access_list(entries: tuple[AccessListEntry, ...] | None) -> list[dict[str, Any]]:
    return [
        {
            "address": enc_data(e.address),
            "storageKeys": [hx.enc_word(key) for key in e.storage_keys],
        }
        for e in entries or ()
    ]


def format_tx(tx: TxView) -> dict[str, Any]:
    mined = tx.block_number is not None
    gas_price = tx.gas_price
    if gas_price is None:  # a pending 1559 transaction: geth shows the fee cap
        gas_price = tx.max_fee_per_gas or 0
    out: dict[str, Any] = {
        "blockHash": hx.enc_optional_data(tx.block_hash) if mined else None,
        "blockNumber": enc_quantity(tx.block_number) if mined else None,
        "from": enc_data(tx.sender),
        "gas": enc_quantity(tx.gas),
        "gasPrice": enc_quantity(gas_price),
        "hash": enc_data(tx.hash),
        "input": enc_data(tx.input),
        "nonce": enc_quantity(tx.nonce),
        "to": hx.enc_optional_data(tx.to),
        "transactionIndex": enc_quantity(tx.index) if mined and tx.index is not None else None,
        "value": enc_quantity(tx.value),
        "type": enc_quantity(tx.type),
    }
    if tx.type >= 2:
        out["maxFeePerGas"] = enc_quantity(tx.max_fee_per_gas or 0)
        out["maxPriorityFeePerGas"] = enc_quantity(tx.max_priority_fee_per_gas or 0)
    if tx.type >= 1:
        out["accessList"] = format_access_list(tx.access_list)
    if tx.chain_id is not None:
        out["chainId"] = enc_quantity(tx.chain_id)
    if tx.type == 3:
        out["maxFeePerBlobGas"] = enc_quantity(tx.max_fee_per_blob_gas or 0)
        out["blobVersionedHashes"] = [enc_data(h) for h in tx.blob_versioned_hashes or ()]
    out["v"] = enc_quantity(tx.v)
    out["r"] = enc_quantity(tx.r)
    out["s"] = enc_quantity(tx.s)
    if tx.type >= 1:
        out["yParity"] = enc_quantity(tx.y_parity if tx.y_parity is not None else tx.v)
    return out


def format_log(entry: LogView) -> dict[str, Any]:
    return {
        "address": enc_data(entry.address),
        "topics": [enc_data(t) for t in entry.topics],
        "data": enc_data(entry.data),
        "blockNumber": enc_quantity(entry.block_number),
        "transactionHash": enc_data(entry.tx_hash),
        "transactionIndex": enc_quantity(entry.tx_index),
        "blockHash": enc_data(entry.block_hash),
        "logIndex": enc_quantity(entry.log_index),
        "removed": entry.removed,
    }


def format_receipt(r: ReceiptView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "blockHash": enc_data(r.block_hash),
        "blockNumber": enc_quantity(r.block_number),
        "transactionHash": enc_data(r.tx_hash),
        "transactionIndex": enc_quantity(r.tx_index),
        "from": enc_data(r.sender),
        "to": hx.enc_optional_data(r.to),
        "gasUsed": enc_quantity(r.gas_used),
        "cumulativeGasUsed": enc_quantity(r.cumulative_gas_used),
        "contractAddress": hx.enc_optional_data(r.contract_address),
        "logs": [format_log(entry) for entry in r.logs],
        "logsBloom": enc_data(r.logs_bloom),
        "type": enc_quantity(r.type),
        "effectiveGasPrice": enc_quantity(r.effective_gas_price),
        "status": enc_quantity(r.status),
    }
    if r.blob_gas_used is not None:
        out["blobGasUsed"] = enc_quantity(r.blob_gas_used)
    if r.blob_gas_price is not None:
        out["blobGasPrice"] = enc_quantity(r.blob_gas_price)
    return out


def format_fee_history(view: FeeHistoryView) -> dict[str, Any]:
    out: dict[str, Any] = {"oldestBlock": enc_quantity(view.oldest_block)}
    if view.reward is not None:
        out["reward"] = [[enc_quantity(x) for x in row] for row in view.reward]
    if view.base_fee_per_gas:
        out["baseFeePerGas"] = [enc_quantity(x) for x in view.base_fee_per_gas]
    out["gasUsedRatio"] = list(view.gas_used_ratio)
    if view.base_fee_per_blob_gas:
        out["baseFeePerBlobGas"] = [enc_quantity(x) for x in view.base_fee_per_blob_gas]
    if view.blob_gas_used_ratio:
        out["blobGasUsedRatio"] = list(view.blob_gas_used_ratio)
    return out


def revert_message(output: bytes) -> str:
    """geth's message for a revert: the ``Error(string)`` reason when there is one."""
    if output[:4] == REVERT_SELECTOR and len(output) >= 68:
        try:
            offset = int.from_bytes(output[4:36], "big")
            start = 4 + offset
            length = int.from_bytes(output[start : start + 32], "big")
            reason = output[start + 32 : start + 32 + length]
            if len(reason) == length:
                return "execution reverted: " + reason.decode("utf-8")
        except (UnicodeDecodeError, OverflowError):
            pass
    return "execution reverted"


# --- parameter decoders --------------------------------------------------------------------


def _access_list(value: Any) -> tuple[AccessListEntry, ...]:
    if not isinstance(value, list):
        raise HexError("accessList: want a list")
    entries = []
    for item in value:
        if not isinstance(item, dict):
            raise HexError("accessList: want objects")
        keys = item.get("storageKeys") or []
        if not isinstance(keys, list):
            raise HexError("accessList: storageKeys must be a list")
        entries.append(
            AccessListEntry(
                hx.address(item.get("address")),
                tuple(int.from_bytes(hx.hash32(k), "big") for k in keys),
            )
        )
    return tuple(entries)


def call_args(value: Any) -> CallRequest:
    """geth's ``TransactionArgs`` (unknown fields are ignored, as Go's decoder does)."""
    if not isinstance(value, dict):
        raise HexError("json: cannot unmarshal non-object into Go value of type TransactionArgs")

    def opt(name: str, decode: Any) -> Any:
        raw = value.get(name)
        if raw is None:
            return None
        try:
            return decode(raw)
        except HexError as err:
            raise HexError(f"{name}: {err}") from None

    data, input_ = opt("data", hx.data), opt("input", hx.data)
    if data is not None and input_ is not None and data != input_:
        raise HexError(
            'both "data" and "input" are set and not equal. '
            'Please use "input" to pass transaction call data'
        )
    gas_price = opt("gasPrice", hx.big)
    max_fee, tip = opt("maxFeePerGas", hx.big), opt("maxPriorityFeePerGas", hx.big)
    if gas_price is not None and (max_fee is not None or tip is not None):
        raise HexError("both gasPrice and (maxFeePerGas or maxPriorityFeePerGas) specified")
    return CallRequest(
        sender=opt("from", hx.address),
        to=opt("to", hx.address),
        gas=opt("gas", hx.quantity),
        gas_price=gas_price,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
        value=opt("value", hx.big) or 0,
        data=(input_ if input_ is not None else data) or b"",
        nonce=opt("nonce", hx.quantity),
        access_list=opt("accessList", _access_list) or (),
    )


def _topics(value: Any) -> tuple[tuple[bytes, ...] | None, ...]:
    if not isinstance(value, list):
        raise HexError("invalid topic(s)")
    if len(value) > MAX_TOPICS:
        raise HexError("exceed max topics")
    topics: list[tuple[bytes, ...] | None] = []
    for position in value:
        if position is None:
            topics.append(None)
        elif isinstance(position, str):
            topics.append((hx.hash32(position),))
        elif isinstance(position, list):
            # a null inside an OR-list, or an empty list, matches anything (as geth)
            if not position or any(t is None for t in position):
                topics.append(None)
            else:
                topics.append(tuple(hx.hash32(t) for t in position))
        else:
            raise HexError("invalid topic(s)")
    return tuple(topics)


def log_filter(value: Any) -> LogFilter:
    """geth's ``FilterCriteria``."""
    if not isinstance(value, dict):
        raise HexError("json: cannot unmarshal non-object into Go value of type FilterCriteria")
    block_hash = value.get("blockHash")
    from_block, to_block = value.get("fromBlock"), value.get("toBlock")
    if block_hash is not None and (from_block is not None or to_block is not None):
        raise HexError(
            "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
        )
    raw_address = value.get("address")
    if raw_address is None:
        addresses: tuple[bytes, ...] = ()
    elif isinstance(raw_address, str):
        addresses = (hx.address(raw_address),)
    elif isinstance(raw_address, list):
        try:
            addresses = tuple(hx.address(a) for a in raw_address)
        except HexError as err:
            raise HexError(f"invalid address in query: {err}") from None
    else:
        raise HexError("invalid addresses in query")
    topics = value.get("topics")
    return LogFilter(
        from_block=hx.block_number(from_block) if from_block is not None else "latest",
        to_block=hx.block_number(to_block) if to_block is not None else "latest",
        addresses=addresses,
        topics=_topics(topics) if topics is not None else (),
        block_hash=hx.hash32(block_hash) if block_hash is not None else None,
    )


def percentiles(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(
        isinstance(p, int | float) and not isinstance(p, bool) for p in value
    ):
        raise HexError("json: cannot unmarshal into Go value of type []float64")
    return tuple(float(p) for p in value)


# --- block resolution ----------------------------------------------------------------------


def state_block(node: EthereumAPI, ref: BlockRef | BlockHashRef) -> int:
    """The number of the block whose state a read is at (geth: ``StateAndHeaderByNumberOrHash``)."""
    if isinstance(ref, BlockHashRef):
        block = node.block_by_hash(ref.hash, False)
        if block is None:
            raise NodeError("header for hash not found")
        if ref.require_canonical:
            canonical = node.block_by_number(block.header.number, False)
            if canonical is None or canonical.header.hash != ref.hash:
                raise NodeError(f"hash {enc_data(ref.hash)} is not currently canonical")
        return block.header.number
    return node.resolve(ref)


def block_number_of(node: EthereumAPI, ref: BlockRef) -> int:
    """A block lookup's number: tags resolve, numbers stand (an absent block is ``null``)."""
    return ref if isinstance(ref, int) else node.resolve(ref)


# --- methods -------------------------------------------------------------------------------


def web3_client_version(node: EthereumAPI) -> str:
    return node.info().client_version


def net_version(node: EthereumAPI) -> str:
    return str(node.info().network_id)


def net_listening(node: EthereumAPI) -> bool:
    return True


def eth_chain_id(node: EthereumAPI) -> str:
    return enc_quantity(node.info().chain_id)


def eth_syncing(node: EthereumAPI) -> bool:
    return False


def eth_accounts(node: EthereumAPI) -> list[str]:
    return []


def eth_block_number(node: EthereumAPI) -> str:
    return enc_quantity(node.head())


def eth_get_balance(node: EthereumAPI, addr: bytes, ref: Any) -> str:
    return enc_quantity(node.account(addr, state_block(node, ref)).balance)


def eth_get_transaction_count(node: EthereumAPI, addr: bytes, ref: Any) -> str:
    if ref == "pending":
        return enc_quantity(node.pending_nonce(addr))
    return enc_quantity(node.account(addr, state_block(node, ref)).nonce)


def eth_get_code(node: EthereumAPI, addr: bytes, ref: Any) -> str:
    return enc_data(node.account(addr, state_block(node, ref)).code)


def eth_get_storage_at(node: EthereumAPI, addr: bytes, slot: int, ref: Any) -> str:
    return hx.enc_word(node.storage_at(addr, slot, state_block(node, ref)))


def eth_call(node: EthereumAPI, request: CallRequest, ref: Any) -> str:
    result = node.call(request, state_block(node, ref))
    if result.success:
        return enc_data(result.output)
    error = result.error or "execution reverted"
    if error.startswith("execution reverted"):
        raise RpcError(EXECUTION_REVERTED, revert_message(result.output), enc_data(result.output))
    raise RpcError(SERVER_ERROR, error)


def eth_estimate_gas(node: EthereumAPI, request: CallRequest, ref: Any) -> str:
    return enc_quantity(node.estimate_gas(request, state_block(node, ref)))


def eth_gas_price(node: EthereumAPI) -> str:
    return enc_quantity(node.gas_price())


def eth_max_priority_fee_per_gas(node: EthereumAPI) -> str:
    return enc_quantity(node.max_priority_fee())


def eth_fee_history(
    node: EthereumAPI, count: int, newest: BlockRef, rewards: tuple[float, ...] | None
) -> dict[str, Any]:
    if rewards is not None:
        if len(rewards) > MAX_PERCENTILES:
            raise NodeError(f"too many percentiles: over the query limit {MAX_PERCENTILES}")
        for i, p in enumerate(rewards):
            if not 0 <= p <= 100 or (i > 0 and p <= rewards[i - 1]):
                raise NodeError(f"invalid reward percentile: {p:f}")
    count = min(count, MAX_FEE_HISTORY)
    if count == 0:
        return {"oldestBlock": "0x0", "gasUsedRatio": []}
    return format_fee_history(node.fee_history(count, node.resolve(newest), rewards))


def eth_send_raw_transaction(node: EthereumAPI, raw: bytes) -> str:
    return enc_data(node.send_raw_transaction(raw))


def eth_get_transaction_by_hash(node: EthereumAPI, tx_hash: bytes) -> dict[str, Any] | None:
    tx = node.transaction(tx_hash)
    return None if tx is None else format_tx(tx)


def eth_get_transaction_receipt(node: EthereumAPI, tx_hash: bytes) -> dict[str, Any] | None:
    receipt = node.receipt(tx_hash)
    return None if receipt is None else format_receipt(receipt)


def eth_get_block_by_number(node: EthereumAPI, ref: BlockRef, full: bool) -> dict | None:
    block = node.block_by_number(block_number_of(node, ref), full)
    return None if block is None else format_block(block)


def eth_get_block_by_hash(node: EthereumAPI, block_hash: bytes, full: bool) -> dict | None:
    block = node.block_by_hash(block_hash, full)
    return None if block is None else format_block(block)


def _count(block: BlockView | None) -> str | None:
    return None if block is None else enc_quantity(len(block.transactions))


def eth_get_block_transaction_count_by_number(node: EthereumAPI, ref: BlockRef) -> str | None:
    return _count(node.block_by_number(block_number_of(node, ref), False))


def eth_get_block_transaction_count_by_hash(node: EthereumAPI, block_hash: bytes) -> str | None:
    return _count(node.block_by_hash(block_hash, False))


def _at_index(block: BlockView | None, index: int) -> dict[str, Any] | None:
    if block is None or index >= len(block.transactions):
        return None
    tx = block.transactions[index]
    return format_tx(tx) if isinstance(tx, TxView) else None


def eth_get_transaction_by_block_number_and_index(
    node: EthereumAPI, ref: BlockRef, index: int
) -> dict[str, Any] | None:
    return _at_index(node.block_by_number(block_number_of(node, ref), True), index)


def eth_get_transaction_by_block_hash_and_index(
    node: EthereumAPI, block_hash: bytes, index: int
) -> dict[str, Any] | None:
    return _at_index(node.block_by_hash(block_hash, True), index)


def eth_get_logs(node: EthereumAPI, query: LogFilter) -> list[dict[str, Any]]:
    return [format_log(entry) for entry in node.logs(query)]


ADDRESS = Param("address", hx.address)
BLOCK = Param("block", hx.block_ref)
OPT_BLOCK = Param("block", hx.block_ref, required=False, default="latest")
HASH = Param("hash", hx.hash32)
NUMBER = Param("number", hx.block_number)
FULL = Param("fullTransactions", hx.boolean)
INDEX = Param("index", hx.quantity)

METHODS: dict[str, Method] = {
    "web3_clientVersion": Method(web3_client_version),
    "net_version": Method(net_version),
    "net_listening": Method(net_listening),
    "eth_chainId": Method(eth_chain_id),
    "eth_syncing": Method(eth_syncing),
    "eth_accounts": Method(eth_accounts),
    "eth_blockNumber": Method(eth_block_number),
    "eth_getBalance": Method(eth_get_balance, (ADDRESS, BLOCK)),
    "eth_getTransactionCount": Method(eth_get_transaction_count, (ADDRESS, BLOCK)),
    "eth_getCode": Method(eth_get_code, (ADDRESS, BLOCK)),
    "eth_getStorageAt": Method(
        eth_get_storage_at, (ADDRESS, Param("slot", hx.storage_slot), BLOCK)
    ),
    "eth_call": Method(eth_call, (Param("args", call_args), OPT_BLOCK)),
    "eth_estimateGas": Method(eth_estimate_gas, (Param("args", call_args), OPT_BLOCK)),
    "eth_gasPrice": Method(eth_gas_price),
    "eth_maxPriorityFeePerGas": Method(eth_max_priority_fee_per_gas),
    "eth_feeHistory": Method(
        eth_fee_history,
        (
            Param("blockCount", hx.hex_or_decimal),
            NUMBER,
            Param("rewardPercentiles", percentiles, required=False),
        ),
    ),
    "eth_sendRawTransaction": Method(eth_send_raw_transaction, (Param("raw", hx.data),)),
    "eth_getTransactionByHash": Method(eth_get_transaction_by_hash, (HASH,)),
    "eth_getTransactionReceipt": Method(eth_get_transaction_receipt, (HASH,)),
    "eth_getBlockByNumber": Method(eth_get_block_by_number, (NUMBER, FULL)),
    "eth_getBlockByHash": Method(eth_get_block_by_hash, (HASH, FULL)),
    "eth_getBlockTransactionCountByNumber": Method(
        eth_get_block_transaction_count_by_number, (NUMBER,)
    ),
    "eth_getBlockTransactionCountByHash": Method(eth_get_block_transaction_count_by_hash, (HASH,)),
    "eth_getTransactionByBlockNumberAndIndex": Method(
        eth_get_transaction_by_block_number_and_index, (NUMBER, INDEX)
    ),
    "eth_getTransactionByBlockHashAndIndex": Method(
        eth_get_transaction_by_block_hash_and_index, (HASH, INDEX)
    ),
    "eth_getLogs": Method(eth_get_logs, (Param("filter", log_filter),)),
}
