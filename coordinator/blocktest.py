"""Ethereum's BlockchainTests, run through the pipeline (``evmpp blocktest``, as geth's
``evm blocktest``).

A test is a genesis (``pre``, ``genesisRLP``), blocks as RLP and the expected end
(``postState`` or ``postStateHash``, ``lastblockhash``). Each block is decoded for the fork the
test's network puts it on, its header validated against its parent with py-evm's rules, its
body against its header (transactions, uncles, withdrawals, blob gas), then run: first on the
sequential oracle, whose result must match the header (state root, receipts root, gas used,
bloom) or the block is refused and the chain stays where it was; then on the parallel chain,
committed, whose receipts, gas and state root must equal the oracle's and the header's. A block
with ``expectException`` must be refused; any other must be accepted.

Blocks may build on any block accepted before (side chains, reorganisations): both chains
are then rebuilt from the genesis along that block's path. The head is the heaviest chain
before the merge, the newest block after it; the end state is the head's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
from eth.abc import BlockAPI, BlockHeaderAPI, VirtualMachineAPI
from eth.chains.mainnet import MainnetDAOValidatorVM, validate_header_is_on_intended_dao_fork
from eth.db.trie import make_trie_root_and_nodes
from eth.vm.forks import CancunVM, ParisVM, ShanghaiVM
from eth.vm.forks.cancun.constants import MAX_BLOB_GAS_PER_BLOCK
from eth.vm.forks.cancun.headers import calc_excess_blob_gas_cancun
from eth.vm.forks.cancun.state import get_total_blob_gas
from eth_bloom import BloomFilter
from eth_hash.auto import keccak
from eth_utils import ValidationError, to_canonical_address

from chain import BlockEnv, ChainSpec, ChainSpecError, chain_spec
from compute_unit.blockstm import InvalidBlockError
from compute_unit.sequential import SequentialChain
from coordinator.grouping import FallbackPolicy
from coordinator.hints import HintTable
from coordinator.pipeline import ChainRunner, ComputeUnitAPI, ParallelExecutor
from coordinator.planner import HintPlanner, SenderPlanner
from storage.keys import AccountFields, StateKey, acct_key, code_key, slot_key

MAX_UNCLES = 2
MAX_UNCLE_DEPTH = 6
BLOCKHASH_WINDOW = 256


def fixture_spec(network: str) -> ChainSpec | None:
    """The chain spec of a fixture's ``network`` (``chain/networks.py``, as geth's
    tests/init.go names them); None: not one this runner runs, an unknown name or one that
    reaches Prague (its system operations, EIP-2935's block hashes and EIP-7685's requests,
    are not applied here)."""
    try:
        spec = chain_spec(network)
    except ChainSpecError:
        return None
    return None if spec.prague_time is not None else spec


class Refused(Exception):
    """A block the chain does not accept; the message is the reason."""


class Skipped(Exception):
    """A test this runner cannot run; the message is the reason."""


@dataclass
class TestResult:
    file: str
    name: str
    network: str
    status: str  # "passed", "failed", "skipped"
    reason: str = ""
    blocks: int = 0  # imported
    refused: list[str] = field(default_factory=list)  # refused as expected, with the reason
    fallback_blocks: int = 0  # run in process rather than on the workers
    parallel_txs: int = 0  # transactions of accepted blocks run through the parallel path
    # the accepted blocks' parallel time by phase, ms summed (``BlockReport.profile``)
    profile: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hex_int(value: str) -> int:
    return int(value, 16) if value not in ("0x", "") else 0


def pre_state_items(pre: Mapping[str, Any]) -> list[tuple[StateKey, Any]]:
    """A fixture's ``pre`` (or ``postState``) as state key/value pairs."""
    items: list[tuple[StateKey, Any]] = []
    for address_hex, account in pre.items():
        address = to_canonical_address(address_hex)
        code = bytes.fromhex(account.get("code", "0x")[2:])
        code_hash = keccak(code)
        items.append(
            (
                acct_key(address),
                AccountFields(_hex_int(account["nonce"]), _hex_int(account["balance"]), code_hash),
            )
        )
        if code:
            items.append((code_key(code_hash), code))
        for slot, value in account.get("storage", {}).items():
            if _hex_int(value):
                items.append((slot_key(address, _hex_int(slot)), _hex_int(value)))
    return items


def decode_block(
    spec: ChainSpec, raw: bytes, parent_td: int | None
) -> tuple[BlockAPI, type[VirtualMachineAPI]]:
    """A block's RLP decoded as the fork its number and timestamp fall in encodes it."""
    try:
        fields = rlp.decode(raw)
        header_fields = fields[0]
        number = int.from_bytes(header_fields[8], "big")
        timestamp = int.from_bytes(header_fields[11], "big")
    except Exception as err:
        raise Refused(f"RLP: {type(err).__name__}: {err}") from err
    merged = None
    if spec.terminal_total_difficulty and parent_td is not None:
        merged = parent_td >= spec.terminal_total_difficulty
    vm_class = spec.vm_class_at(number, timestamp, merged=merged)
    try:
        block = rlp.decode(raw, sedes=vm_class.get_block_class())
    except Exception as err:  # py-evm's decoders raise many kinds (unknown tx types ...)
        raise Refused(f"RLP as a {vm_class.fork} block: {type(err).__name__}: {err}") from err
    if rlp.encode(block) != raw:
        raise Refused("RLP: not canonical")
    return block, vm_class


def _short(err: Exception, header: BlockHeaderAPI) -> str:
    """py-evm's message with a header's repr (every field) cut to its number."""
    return re.sub(r"BlockHeader\(.*\)(?= )", f"#{header.block_number}", str(err))


def _check(ok: bool, reason: str) -> None:
    if not ok:
        raise Refused(reason)


def validate_block(
    block: BlockAPI,
    vm_class: type[VirtualMachineAPI],
    parent: BlockHeaderAPI,
    headers: Mapping[bytes, BlockHeaderAPI],
    ancestors: list[BlockAPI],
    vm_of: Any,
) -> None:
    """The header against its parent and the body against the header (py-evm's rules); the
    uncles as py-evm's ``Chain.validate_uncles``. ``ancestors``: the canonical blocks, the
    parent last; ``vm_of(header)``: the VM class a header ran under."""
    header = block.header
    try:
        vm_class.validate_header(header, parent)
    except ValidationError as err:
        raise Refused(f"header: {_short(err, header)}") from err
    if not issubclass(vm_class, ParisVM):
        expected = vm_class.compute_difficulty(parent, header.timestamp)
        _check(header.difficulty == expected, f"difficulty {header.difficulty} != {expected}")
    _check(header.gas_used <= header.gas_limit, "gas used above the gas limit")
    tx_root, _ = make_trie_root_and_nodes(block.transactions)
    _check(tx_root == header.transaction_root, "transactions root does not match")
    _check(keccak(rlp.encode(block.uncles)) == header.uncles_hash, "uncles hash does not match")
    _check(len(block.uncles) <= MAX_UNCLES, f"{len(block.uncles)} uncles")
    if issubclass(vm_class, ShanghaiVM):
        try:
            for withdrawal in block.withdrawals:
                withdrawal.validate()
        except ValidationError as err:
            raise Refused(f"withdrawal: {err}") from err
        root, _ = make_trie_root_and_nodes(block.withdrawals)
        _check(root == header.withdrawals_root, "withdrawals root does not match")
    if issubclass(vm_class, CancunVM):
        excess = calc_excess_blob_gas_cancun(parent) if hasattr(parent, "excess_blob_gas") else 0
        _check(header.excess_blob_gas == excess, "excess blob gas is wrong")
        blob_gas = sum(get_total_blob_gas(tx) for tx in block.transactions)
        _check(blob_gas <= MAX_BLOB_GAS_PER_BLOCK, "blob gas above the block's limit")
        _check(header.blob_gas_used == blob_gas, "blob gas used does not match")
    if block.uncles:
        _validate_uncles(block, headers, ancestors, vm_of)


def _validate_uncles(
    block: BlockAPI,
    headers: Mapping[bytes, BlockHeaderAPI],
    ancestors: list[BlockAPI],
    vm_of: Any,
) -> None:
    hashes = [uncle.hash for uncle in block.uncles]
    _check(len(set(hashes)) == len(hashes), "duplicate uncles")
    recent = ancestors[-(MAX_UNCLE_DEPTH + 1) :]
    recent_hashes = {ancestor.header.hash for ancestor in recent}
    recent_uncles = {uncle.hash for ancestor in recent for uncle in ancestor.uncles}
    for uncle in block.uncles:
        _check(uncle.hash != block.header.hash, "uncle has the block's hash")
        _check(uncle.hash not in recent_uncles, f"uncle 0x{uncle.hash.hex()} included before")
        _check(uncle.hash not in recent_hashes, "uncle is an ancestor")
        _check(
            uncle.parent_hash in recent_hashes and uncle.parent_hash != block.header.parent_hash,
            "uncle's parent is not a recent ancestor",
        )
        uncle_parent = headers[uncle.parent_hash]
        uncle_vm = vm_of(uncle)
        try:
            uncle_vm.validate_uncle(block, uncle, uncle_parent)
            if issubclass(uncle_vm, MainnetDAOValidatorVM):  # the fork's extra data, as geth
                validate_header_is_on_intended_dao_fork(
                    uncle_vm.support_dao_fork, uncle_vm.get_dao_fork_block_number(), uncle
                )
        except ValidationError as err:
            raise Refused(f"uncle: {_short(err, uncle)}") from err
        expected = uncle_vm.compute_difficulty(uncle_parent, uncle.timestamp)
        _check(uncle.difficulty == expected, "uncle difficulty is wrong")


def _receipt_checks(header: BlockHeaderAPI, receipts: Iterable[Any], gas_used: int) -> None:
    receipts = tuple(receipts)
    _check(gas_used == header.gas_used, f"gas used {gas_used} != header's {header.gas_used}")
    bloom = BloomFilter()
    for receipt in receipts:
        bloom |= receipt.bloom
    _check(int(bloom) == header.bloom, "logs bloom does not match")
    root, _ = make_trie_root_and_nodes(receipts)
    _check(root == header.receipt_root, "receipts root does not match")


def _post_state_problems(runner: ChainRunner, post: Mapping[str, Any]) -> list[str]:
    problems = []
    ss = runner.committer.ss
    for key, value in pre_state_items(post):
        if key[0] == "code":
            continue
        held = ss.get(key)
        if held != value:
            problems.append(f"{key[0]} 0x{key[1].hex()}: {held} != {value}")
    return problems


class _Chains:
    """The block tree of one test and the two chains (oracle, parallel) at one of its tips.

    Blocks may build on any accepted block: the chains are rebuilt from the genesis along
    the new parent's path (tests are short) when it is not the tip they are at."""

    def __init__(
        self, spec: ChainSpec, genesis: BlockAPI, genesis_vm: Any, items: list, executor: Any
    ) -> None:
        self.spec = spec
        self.items = items
        self.executor = executor
        self.genesis = genesis.header.hash
        self.blocks: dict[bytes, BlockAPI] = {self.genesis: genesis}
        self.vms: dict[bytes, type[VirtualMachineAPI]] = {self.genesis: genesis_vm}
        self.td: dict[bytes, int] = {self.genesis: genesis.header.difficulty}
        self.head = self.genesis  # the fork choice's
        self.rebuilds = 0
        self._open()

    def _open(self) -> None:
        self.oracle = SequentialChain(self.items)
        self.runner = ChainRunner(self.items, self.executor, verify=False)
        self.tip = self.genesis

    def close(self) -> None:
        self.runner.close()

    def headers(self) -> dict[bytes, BlockHeaderAPI]:
        return {h: block.header for h, block in self.blocks.items()}

    def path(self, block_hash: bytes) -> list[BlockAPI]:
        """The blocks from the genesis to ``block_hash``."""
        path = [self.blocks[block_hash]]
        while path[-1].header.hash != self.genesis:
            path.append(self.blocks[path[-1].header.parent_hash])
        return path[::-1]

    def vm_of(self, header: BlockHeaderAPI) -> type[VirtualMachineAPI]:
        ttd = self.spec.terminal_total_difficulty
        merged = None if not ttd else self.td.get(header.parent_hash, 0) >= ttd
        return self.spec.vm_class_at(header.block_number, header.timestamp, merged=merged)

    def env(self, block: BlockAPI, vm_class: Any, ancestors: list[BlockAPI]) -> BlockEnv:
        prev_hashes = tuple(b.header.hash for b in reversed(ancestors[-BLOCKHASH_WINDOW:]))
        return BlockEnv(
            vm_class,
            block.header,
            self.spec.chain_id,
            prev_hashes,
            uncles=tuple(block.uncles),
            withdrawals=tuple(getattr(block, "withdrawals", ())),
        )

    def move_to(self, block_hash: bytes) -> None:
        """Rebuild both chains along the path to ``block_hash`` (blocks already checked)."""
        if block_hash == self.tip:
            return
        self.runner.close()
        self._open()
        self.rebuilds += 1
        path = self.path(block_hash)
        for depth, block in enumerate(path[1:], start=1):
            env = self.env(block, self.vms[block.header.hash], path[:depth])
            self.oracle.execute(env, list(block.transactions))
            self.runner.import_block(env, [env.decode(tx.encode()) for tx in block.transactions])
        self.tip = block_hash

    def accept(self, block: BlockAPI, vm_class: Any) -> None:
        block_hash = block.header.hash
        self.blocks[block_hash] = block
        self.vms[block_hash] = vm_class
        self.td[block_hash] = self.td[block.header.parent_hash] + block.header.difficulty
        self.tip = block_hash
        # proof of stake: the newest block is the head; proof of work: the heaviest chain
        if issubclass(vm_class, ParisVM) or self.td[block_hash] > self.td[self.head]:
            self.head = block_hash


class FixtureRunner:
    """Runs BlockchainTests on one Compute Unit."""

    def __init__(
        self, cu: ComputeUnitAPI, policy: FallbackPolicy | None = None, hints: bool = True
    ) -> None:
        """``hints``: group by a hint table learnt over the test's blocks (one table per
        test, kept across its blocks); else by sender."""
        self.cu = cu
        self.policy = policy
        self.hints = hints

    def run_file(self, path: Path) -> list[TestResult]:
        try:
            tests = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            return [TestResult(str(path), "", "", "failed", f"not valid JSON: {err}")]
        return [self.run_test(str(path), name, test) for name, test in tests.items()]

    def run_test(self, file: str, name: str, test: Mapping[str, Any]) -> TestResult:
        result = TestResult(file, name, test.get("network", ""), "passed")
        try:
            self._run(test, result)
        except Skipped as skip:
            result.status, result.reason = "skipped", str(skip)
        except (Refused, AssertionError, InvalidBlockError, ValidationError) as err:
            result.status, result.reason = "failed", str(err)
        except Exception as err:  # a crash is one failed test, the run goes on
            result.status, result.reason = "failed", f"{type(err).__name__}: {err}"
        return result

    def _run(self, test: Mapping[str, Any], result: TestResult) -> None:
        spec = fixture_spec(result.network)
        if spec is None:
            raise Skipped(f"network {result.network!r} is not supported")
        genesis_raw = bytes.fromhex(test["genesisRLP"][2:])
        try:
            genesis, genesis_vm = decode_block(spec, genesis_raw, None)
        except Refused as err:
            raise AssertionError(f"genesis: {err}") from err
        expected_hash = bytes.fromhex(test["genesisBlockHeader"]["hash"][2:])
        if genesis.header.hash != expected_hash:
            raise AssertionError("genesis header hash does not match genesisBlockHeader")
        items = pre_state_items(test["pre"])
        planner = HintPlanner(HintTable()) if self.hints else SenderPlanner()
        executor = ParallelExecutor(self.cu, planner, policy=self.policy)
        chains = _Chains(spec, genesis, genesis_vm, items, executor)
        try:
            if chains.runner.committer.state_root != genesis.header.state_root:
                raise AssertionError("genesis state root does not match the pre-state")
            self._import_blocks(test, chains, result)
            chains.move_to(chains.head)
            runner = chains.runner
            last = bytes.fromhex(test["lastblockhash"][2:])
            if chains.head != last:
                raise AssertionError(f"head 0x{chains.head.hex()} is not lastblockhash")
            if "postStateHash" in test:
                want = bytes.fromhex(test["postStateHash"][2:])
                if runner.committer.state_root != want:
                    raise AssertionError("final state root is not postStateHash")
            if "postState" in test:
                problems = _post_state_problems(runner, test["postState"])
                if problems:
                    raise AssertionError("postState: " + "; ".join(problems[:3]))
        finally:
            chains.close()

    def _import_blocks(self, test: Mapping[str, Any], chains: _Chains, result: TestResult) -> None:
        for index, block_json in enumerate(test["blocks"]):
            expected = block_json.get("expectException")
            try:
                raw = bytes.fromhex(block_json["rlp"][2:])
            except ValueError as err:
                if expected:
                    result.refused.append(f"block {index}: RLP: {err}")
                    continue
                raise AssertionError(f"block {index}: rlp is not hex") from err
            try:
                block, vm_class = self._import(raw, chains, result)
            except Refused as refusal:
                if not expected:
                    raise AssertionError(f"block {index} refused: {refusal}") from refusal
                result.refused.append(f"block {index} ({expected}): {refusal}")
                continue
            if expected:
                raise AssertionError(f"block {index} accepted, expected {expected}")
            chains.accept(block, vm_class)
            result.blocks += 1

    def _import(
        self, raw: bytes, chains: _Chains, result: TestResult
    ) -> tuple[BlockAPI, type[VirtualMachineAPI]]:
        try:
            parent_hash = bytes(rlp.decode(raw)[0][0])
        except Exception as err:
            raise Refused(f"RLP: {type(err).__name__}: {err}") from err
        if parent_hash not in chains.blocks:
            raise Refused(f"unknown parent 0x{parent_hash.hex()}")
        block, vm_class = decode_block(chains.spec, raw, chains.td[parent_hash])
        ancestors = chains.path(parent_hash)
        validate_block(
            block, vm_class, ancestors[-1].header, chains.headers(), ancestors, chains.vm_of
        )
        chains.move_to(parent_hash)
        header = block.header
        env = chains.env(block, vm_class, ancestors)
        txs = list(block.transactions)
        oracle = chains.oracle
        saved = oracle.state_root
        try:
            sequential = oracle.execute(env, txs)
            _receipt_checks(header, sequential.receipts, sequential.gas_used)
            _check(sequential.state_root == header.state_root, "state root does not match")
        except (Refused, ValidationError) as err:
            oracle.state_root = saved
            raise Refused(str(err) or type(err).__name__) from err
        txs = [env.decode(tx.encode()) for tx in txs]
        report, parallel, _ = chains.runner.import_block(env, txs)
        result.parallel_txs += len(txs)
        for phase, ms in report.profile.items():
            result.profile[phase] = round(result.profile.get(phase, 0.0) + ms, 2)
        if report.fallback:
            result.fallback_blocks += 1
        parallel_receipts = [r.encode() for r in parallel.block.receipts]
        if parallel_receipts != [r.encode() for r in sequential.receipts]:
            raise AssertionError(f"block {header.block_number}: parallel receipts differ")
        if parallel.block.gas_used != sequential.gas_used:
            raise AssertionError(f"block {header.block_number}: parallel gas differs")
        if parallel.state_root != header.state_root:
            raise AssertionError(f"block {header.block_number}: parallel state root differs")
        return block, vm_class
