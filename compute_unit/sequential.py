"""The correctness oracle: plain sequential py-evm over the same pre-state.

``SequentialChain`` keeps its own state in py-evm's trie and runs each block with
``vm.apply_all_transactions`` exactly as py-evm does, giving the receipts, gas and state root
every parallel result is checked against.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import ReceiptAPI, SignedTransactionAPI
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.vm.chain_context import ChainContext

from compute_unit.executor import BlockEnv
from storage.keys import StateKey
from storage.reference_trie import load_state


@dataclass(frozen=True)
class SequentialResult:
    receipts: tuple[ReceiptAPI, ...]
    gas_used: int
    state_root: bytes
    elapsed_s: float


def _oracle_vm_class(vm_class: type) -> type:
    """The fork's VM, taking its ancestor hashes from the block env instead of a chain DB."""
    return type(
        f"Oracle{vm_class.__name__}",
        (vm_class,),
        {"previous_hashes": property(lambda vm: vm.env_prev_hashes)},
    )


class SequentialChain:
    """A chain state advanced block by block by plain py-evm."""

    def __init__(self, genesis: Iterable[tuple[StateKey, Any]]) -> None:
        self.db = AtomicDB()
        self.state_root = load_state(AccountDB(self.db), genesis)
        self._vm_classes: dict[type, type] = {}

    def execute(self, env: BlockEnv, txs: Sequence[SignedTransactionAPI]) -> SequentialResult:
        vm_class = self._vm_classes.setdefault(env.vm_class, _oracle_vm_class(env.vm_class))
        header = env.header.copy(state_root=self.state_root, gas_used=0)
        vm = vm_class(header, ChainDB(self.db), ChainContext(env.chain_id), None)
        vm.env_prev_hashes = env.prev_hashes
        started = time.perf_counter()
        result_header, receipts, _ = vm.apply_all_transactions(txs, header)
        vm.state.persist()
        elapsed = time.perf_counter() - started
        self.state_root = vm.state.state_root
        return SequentialResult(receipts, result_header.gas_used, self.state_root, elapsed)
