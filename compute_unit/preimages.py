"""Records the Keccak preimages a transaction's execution computes, for the hint learner.

Storage slots of mappings are Keccak hashes (``keccak(key ‖ slot)``, nested for mappings of
mappings); the learner (``coordinator/learner.py``) explains a slot by finding which
transaction fields its preimage holds. The fork's SHA3 opcode is replaced by one that does
exactly the same (same gas, same result) and also hands (hash, preimage) to the state's
account database, for preimages of one or two words (what slot derivations use).
"""

from __future__ import annotations

from functools import cache

from eth import constants
from eth._utils.numeric import ceil32
from eth.abc import ComputationAPI
from eth.vm.opcode import as_opcode
from eth_hash.auto import keccak

SHA3 = 0x20
RECORDED_SIZES = (32, 64)


def recording_sha3(computation: ComputationAPI) -> None:
    """py-evm's ``eth.vm.logic.sha3.sha3``, noting the preimage."""
    start_position, size = computation.stack_pop_ints(2)
    computation.extend_memory(start_position, size)
    data = computation.memory_read_bytes(start_position, size)
    word_count = ceil32(len(data)) // 32
    computation.consume_gas(constants.GAS_SHA3WORD * word_count, reason="SHA3: word gas cost")
    result = keccak(data)
    if size in RECORDED_SIZES:
        computation.state._account_db.note_preimage(result, bytes(data))
    computation.stack_push_bytes(result)


RECORDING_SHA3 = as_opcode(logic_fn=recording_sha3, mnemonic="SHA3", gas_cost=constants.GAS_SHA3)


@cache
def recording_computation_class(computation_class: type[ComputationAPI]) -> type[ComputationAPI]:
    """The fork's computation class with the recording SHA3 opcode."""
    opcodes = {**computation_class.opcodes, SHA3: RECORDING_SHA3}
    return type(
        f"Recording{computation_class.__name__}", (computation_class,), {"opcodes": opcodes}
    )
