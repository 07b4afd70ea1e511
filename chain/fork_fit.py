"""Which fork a recorded header runs under, and whether the header fits that fork.

Consulted when a recorded block is imported (a replay folder, a fixture block), before its
header is rebuilt: the spec picks the fork from the number and timestamp, and the header must
look like that fork's headers. A block is never run under another fork's rules: a header that
does not fit raises ``ForkMismatch`` naming the fork, since running it anyway can "pass"
(pre-London headers hash the same under several forks) with the wrong gas rules.

The fit is the header's shape: the optional fields each fork added (``baseFeePerGas`` from
London, ``withdrawalsRoot`` from Shanghai, the blob fields and ``parentBeaconBlockRoot`` from
Cancun, ``requestsHash`` from Prague) are present exactly from their fork on; difficulty is 0
exactly from the merge on (EIP-3675); the DAO fork's ten blocks carry its extra data.

The merge needs the total difficulty where the config does not place it (mainnet, or the
``ArrowGlacierToParisAtDiffC0000`` fixtures); without it the header's difficulty says which
side it is on, so only those chains take the merge from the header.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth.abc import VirtualMachineAPI
from eth.chains.mainnet.constants import DAO_FORK_MAINNET_EXTRA_DATA

from chain.spec import ChainSpec

# JSON-RPC header field -> the fork that added it (py-evm's header classes agree)
FORK_FIELDS: dict[str, str] = {
    "baseFeePerGas": "London",
    "withdrawalsRoot": "Shanghai",
    "blobGasUsed": "Cancun",
    "excessBlobGas": "Cancun",
    "parentBeaconBlockRoot": "Cancun",
    "requestsHash": "Prague",
}
# JSON-RPC name -> py-evm header field, for the fields above
_PY_EVM_FIELD = {
    "baseFeePerGas": "base_fee_per_gas",
    "withdrawalsRoot": "withdrawals_root",
    "blobGasUsed": "blob_gas_used",
    "excessBlobGas": "excess_blob_gas",
    "parentBeaconBlockRoot": "parent_beacon_block_root",
    "requestsHash": "requests_hash",
}


class ForkMismatch(ValueError):
    """A header that does not fit the fork its number and time fall in."""

    def __init__(self, fork: str, problem: str) -> None:
        super().__init__(f"does not fit {fork}: {problem}")
        self.fork = fork
        self.problem = problem


@dataclass(frozen=True)
class HeaderShape:
    """What of a recorded header decides its fork and its fit.

    ``present`` names the fork-added fields (keys of ``FORK_FIELDS``) the header has.
    """

    number: int
    timestamp: int
    difficulty: int
    extra_data: bytes
    present: frozenset[str]


def fork_name(vm_class: type[VirtualMachineAPI]) -> str:
    """The fork's name as people write it: ``Frontier``, ``SpuriousDragon``, ``Cancun``."""
    return vm_class.fork.replace("-", " ").title().replace(" ", "")


def header_fields(vm_class: type[VirtualMachineAPI]) -> frozenset[str]:
    """The py-evm field names of the fork's header class."""
    header_class = vm_class.get_block_class()._meta.fields[0][1]
    return frozenset(name for name, _ in header_class._meta.fields)


def fork_for_header(spec: ChainSpec, shape: HeaderShape) -> type[VirtualMachineAPI]:
    """The VM class the header runs under; raises ``ForkMismatch`` if it does not fit."""
    merged = spec.merge_decided(shape.number, shape.timestamp)
    inferred = merged is None
    if inferred:
        merged = shape.difficulty == 0  # only the total difficulty could tell; see module doc
    vm_class = spec.vm_class_at(shape.number, shape.timestamp, merged=merged)
    fork = fork_name(vm_class)
    wanted = header_fields(vm_class)
    for json_name, since in FORK_FIELDS.items():
        has = json_name in shape.present
        if has and _PY_EVM_FIELD[json_name] not in wanted:
            raise ForkMismatch(fork, f"it has {json_name}, which headers have from {since} on")
        if not has and _PY_EVM_FIELD[json_name] in wanted:
            raise ForkMismatch(fork, f"it has no {json_name}, which every {fork} header has")
    if merged and shape.difficulty != 0:
        raise ForkMismatch(
            fork, f"difficulty {shape.difficulty}; a proof-of-stake header has difficulty 0"
        )
    if not merged and shape.difficulty == 0:
        raise ForkMismatch(fork, "difficulty 0 (a proof-of-stake header) under proof-of-work rules")
    _check_dao_extra_data(vm_class, fork, shape)
    return vm_class


def _check_dao_extra_data(vm_class: type[VirtualMachineAPI], fork: str, shape: HeaderShape) -> None:
    """The DAO fork's first ten blocks say ``dao-hard-fork`` in their extra data, as geth's
    ``VerifyDAOHeaderExtraData`` checks (and py-evm's DAO validator VM, on import)."""
    if not getattr(vm_class, "support_dao_fork", False):
        return
    dao_block = getattr(vm_class, "_dao_fork_block_number", None)
    if dao_block is None or not dao_block <= shape.number < dao_block + 10:
        return
    if shape.extra_data != DAO_FORK_MAINNET_EXTRA_DATA:
        raise ForkMismatch(
            f"{fork} (DAO fork at block {dao_block})",
            f"extra data 0x{shape.extra_data.hex()}, not "
            f"0x{DAO_FORK_MAINNET_EXTRA_DATA.hex()} (dao-hard-fork)",
        )
