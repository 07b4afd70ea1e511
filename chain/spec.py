"""The fork schedule: which rules (py-evm VM class) a block at a height and time runs under.

Read once at start-up from a geth ``genesis.json`` ``config``; consulted for every block, before
its header is built or its transactions decoded, to pick the VM class of its ``BlockEnv``.

Forks up to Gray Glacier activate by block number, Shanghai and later by timestamp (as in
geth, a timestamp fork also needs London active). The merge (Paris) cannot be read off the
config alone, since it happens when the total difficulty reaches ``terminalTotalDifficulty``;
here a block runs under Paris when any of these holds:

- ``terminalTotalDifficulty`` is 0 (merged from the start) and London is active;
- ``mergeNetsplitBlock`` is set and reached (and London is active);
- the caller says so (``merged=True``, a caller that tracks total difficulty);
- a timestamp fork (Shanghai, Cancun, Prague) is active.

Petersburg with no ``petersburgBlock`` follows Constantinople's block, as in geth. py-evm runs
EIP-155 and EIP-158 as one fork (Spurious Dragon), so they must share a block, and it applies
the DAO drain only in the Homestead era, so a supported DAO fork must fall there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from eth.abc import VirtualMachineAPI
from eth.chains.mainnet import MainnetDAOValidatorVM
from eth.vm.forks import (
    ArrowGlacierVM,
    BerlinVM,
    ByzantiumVM,
    CancunVM,
    ConstantinopleVM,
    FrontierVM,
    GrayGlacierVM,
    HomesteadVM,
    IstanbulVM,
    LondonVM,
    MuirGlacierVM,
    ParisVM,
    PetersburgVM,
    PragueVM,
    ShanghaiVM,
    SpuriousDragonVM,
    TangerineWhistleVM,
)


class ChainSpecError(ValueError):
    """A chain config that is malformed or that this node cannot run; names the field."""


# geth config key -> ChainSpec field, in geth's fork order (CheckConfigForkOrder), with
# whether the fork may be left out while later ones are set.
_BLOCK_FORKS: tuple[tuple[str, str, bool], ...] = (
    ("homesteadBlock", "homestead_block", False),
    ("daoForkBlock", "dao_fork_block", True),
    ("eip150Block", "eip150_block", False),
    ("eip155Block", "eip155_block", False),
    ("eip158Block", "eip158_block", False),
    ("byzantiumBlock", "byzantium_block", False),
    ("constantinopleBlock", "constantinople_block", False),
    ("petersburgBlock", "petersburg_block", False),
    ("istanbulBlock", "istanbul_block", False),
    ("muirGlacierBlock", "muir_glacier_block", True),
    ("berlinBlock", "berlin_block", False),
    ("londonBlock", "london_block", False),
    ("arrowGlacierBlock", "arrow_glacier_block", True),
    ("grayGlacierBlock", "gray_glacier_block", True),
    ("mergeNetsplitBlock", "merge_netsplit_block", True),
)
_TIME_FORKS: tuple[tuple[str, str, bool], ...] = (
    ("shanghaiTime", "shanghai_time", False),
    ("cancunTime", "cancun_time", True),
    ("pragueTime", "prague_time", True),
)
_OTHER_KEYS: tuple[tuple[str, str], ...] = (
    ("chainId", "chain_id"),
    ("daoForkSupport", "dao_fork_support"),
    ("terminalTotalDifficulty", "terminal_total_difficulty"),
)
_GETH_KEY = {field: key for key, field, *_ in (*_OTHER_KEYS, *_BLOCK_FORKS, *_TIME_FORKS)}


@dataclass(frozen=True)
class ChainSpec:
    """A chain id and its fork schedule, as a geth genesis ``config`` states them.

    A fork left ``None`` never activates. Fork blocks are block numbers, ``*_time`` fields
    Unix timestamps.
    """

    chain_id: int
    homestead_block: int | None = None
    dao_fork_block: int | None = None
    dao_fork_support: bool = False
    eip150_block: int | None = None
    eip155_block: int | None = None
    eip158_block: int | None = None
    byzantium_block: int | None = None
    constantinople_block: int | None = None
    petersburg_block: int | None = None
    istanbul_block: int | None = None
    muir_glacier_block: int | None = None
    berlin_block: int | None = None
    london_block: int | None = None
    arrow_glacier_block: int | None = None
    gray_glacier_block: int | None = None
    merge_netsplit_block: int | None = None
    terminal_total_difficulty: int | None = None
    shanghai_time: int | None = None
    cancun_time: int | None = None
    prague_time: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            key = _GETH_KEY[f.name]
            if f.name == "dao_fork_support":
                if not isinstance(value, bool):
                    raise ChainSpecError(f"config.{key}: expected true or false, got {value!r}")
            elif f.name == "chain_id" or value is not None:
                _check_quantity(key, value)
        self._check_order()
        self._check_py_evm_limits()

    def _check_order(self) -> None:
        """geth's ``CheckConfigForkOrder``: forks are set in sequence and never go backwards."""
        last: tuple[str, int | None, bool] | None = None  # key, value, is_time
        for forks, is_time in ((_BLOCK_FORKS, False), (_TIME_FORKS, True)):
            for key, name, optional in forks:
                value = getattr(self, name)
                if last is not None:
                    last_key, last_value, last_is_time = last
                    if last_value is None and value is not None:
                        raise ChainSpecError(
                            f"config.{key}: unsupported fork ordering: {last_key} not enabled, "
                            f"but {key} enabled at {value}"
                        )
                    if (
                        last_value is not None
                        and value is not None
                        and last_is_time == is_time
                        and last_value > value
                    ):
                        raise ChainSpecError(
                            f"config.{key}: unsupported fork ordering: {last_key} enabled at "
                            f"{last_value}, but {key} enabled at {value}"
                        )
                if not optional or value is not None:
                    last = (key, value, is_time)

    def _check_py_evm_limits(self) -> None:
        if (
            self.eip155_block is not None
            and self.eip158_block is not None
            and self.eip155_block != self.eip158_block
        ):
            raise ChainSpecError(
                "config.eip158Block: py-evm runs EIP-155 and EIP-158 as one fork (Spurious "
                f"Dragon); eip155Block {self.eip155_block} must equal eip158Block "
                f"{self.eip158_block}"
            )
        if self.dao_fork_support and self.dao_fork_block is not None:
            dao = self.dao_fork_block
            in_homestead = _reached(self.homestead_block, dao) and not _reached(
                self.eip150_block, dao
            )
            if not in_homestead:
                raise ChainSpecError(
                    f"config.daoForkBlock: py-evm applies the DAO fork only under Homestead "
                    f"rules; block {dao} is outside [homesteadBlock, eip150Block)"
                )

    @classmethod
    def london_from_genesis(cls, chain_id: int, **later: Any) -> ChainSpec:
        """Every block-numbered fork up to London at block 0 (testnets, dev chains), and
        ``later``'s fields (the merge, the time forks) as given."""
        at_genesis = dict.fromkeys(_UP_TO_LONDON, 0)
        return cls(chain_id=chain_id, **{**at_genesis, **later})

    @classmethod
    def from_geth_config(cls, config: Mapping[str, Any]) -> ChainSpec:
        """The spec of a geth genesis ``config`` object; unknown keys are ignored, as geth
        does. Raises ``ChainSpecError`` naming the field on a missing chain id, a bad value
        or forks out of order."""
        if not isinstance(config, Mapping):
            raise ChainSpecError(f"config: expected an object, got {type(config).__name__}")
        if config.get("chainId") is None:
            raise ChainSpecError("config.chainId: missing")
        values = {
            field_name: config[key]
            for field_name, key in _GETH_KEY.items()
            if config.get(key) is not None
        }
        return cls(**values)  # __post_init__ checks each value and the order

    def to_geth_config(self) -> dict[str, int | bool]:
        """The geth ``config`` object of this spec (forks left ``None`` are omitted)."""
        out: dict[str, int | bool] = {"chainId": self.chain_id}
        for key, name, _ in _BLOCK_FORKS:
            value = getattr(self, name)
            if value is not None:
                out[key] = value
            if name == "dao_fork_block" and self.dao_fork_support:
                out["daoForkSupport"] = True  # where geth writes it, after daoForkBlock
        if self.terminal_total_difficulty is not None:
            out["terminalTotalDifficulty"] = self.terminal_total_difficulty
        for key, name, _ in _TIME_FORKS:
            value = getattr(self, name)
            if value is not None:
                out[key] = value
        return out

    def merge_decided(self, number: int, timestamp: int) -> bool | None:
        """Whether the config alone says the block is proof-of-stake: True or False, or None
        when only the total difficulty can tell (``terminalTotalDifficulty`` set, not 0, and
        neither a netsplit block nor a timestamp fork reached)."""
        if not _reached(self.london_block, number):
            return False
        if self._time_fork_at(timestamp) is not None:
            return True
        if self.terminal_total_difficulty is None:
            return False
        if self.terminal_total_difficulty == 0 or _reached(self.merge_netsplit_block, number):
            return True
        return None

    def is_merged(self, number: int, timestamp: int, merged: bool | None = None) -> bool:
        """Whether the block at ``number`` / ``timestamp`` is proof-of-stake (see module doc)."""
        if not _reached(self.london_block, number):
            return False
        if merged is not None:
            return merged or self._time_fork_at(timestamp) is not None
        if self._time_fork_at(timestamp) is not None:
            return True
        if self.terminal_total_difficulty is None:
            return False
        return self.terminal_total_difficulty == 0 or _reached(self.merge_netsplit_block, number)

    def _time_fork_at(self, timestamp: int) -> type[VirtualMachineAPI] | None:
        for value, vm in (
            (self.prague_time, PragueVM),
            (self.cancun_time, CancunVM),
            (self.shanghai_time, ShanghaiVM),
        ):
            if _reached(value, timestamp):
                return vm
        return None

    def vm_class_at(
        self, number: int, timestamp: int, *, merged: bool | None = None
    ) -> type[VirtualMachineAPI]:
        """The py-evm VM class of the block at ``number`` with ``timestamp``.

        ``merged`` overrides the spec's own view of whether the merge has happened (for a
        chain merged by total difficulty, whose merge block the config does not state).
        """
        if _reached(self.london_block, number):
            timed = self._time_fork_at(timestamp)
            if timed is not None:
                return timed
            if self.is_merged(number, timestamp, merged):
                return ParisVM
        for value, vm in (
            (self.gray_glacier_block, GrayGlacierVM),
            (self.arrow_glacier_block, ArrowGlacierVM),
            (self.london_block, LondonVM),
            (self.berlin_block, BerlinVM),
            (self.muir_glacier_block, MuirGlacierVM),
            (self.istanbul_block, IstanbulVM),
        ):
            if _reached(value, number):
                return vm
        if self._petersburg(number):
            return PetersburgVM
        for value, vm in (
            (self.constantinople_block, ConstantinopleVM),
            (self.byzantium_block, ByzantiumVM),
            (self.eip158_block, SpuriousDragonVM),
            (self.eip150_block, TangerineWhistleVM),
        ):
            if _reached(value, number):
                return vm
        if _reached(self.homestead_block, number):
            if self.dao_fork_support and self.dao_fork_block is not None:
                return _dao_homestead_vm(self.dao_fork_block)
            return _NoDAOHomesteadVM
        return FrontierVM

    def fork_name_at(self, number: int, timestamp: int, *, merged: bool | None = None) -> str:
        """py-evm's name of the fork at ``number`` / ``timestamp`` (``"cancun"``, ...)."""
        return self.vm_class_at(number, timestamp, merged=merged).fork

    def _petersburg(self, number: int) -> bool:
        if self.petersburg_block is not None:
            return number >= self.petersburg_block
        return _reached(self.constantinople_block, number)


_UP_TO_LONDON = (
    "homestead_block",
    "eip150_block",
    "eip155_block",
    "eip158_block",
    "byzantium_block",
    "constantinople_block",
    "petersburg_block",
    "istanbul_block",
    "muir_glacier_block",
    "berlin_block",
    "london_block",
)


def _reached(fork: int | None, at: int) -> bool:
    return fork is not None and at >= fork


def _check_quantity(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChainSpecError(f"config.{key}: expected a non-negative integer, got {value!r}")
    if value < 0:
        raise ChainSpecError(f"config.{key}: expected a non-negative integer, got {value}")


_NoDAOHomesteadVM: type[VirtualMachineAPI] = HomesteadVM.configure(
    __name__="NoDAOHomesteadVM", support_dao_fork=False
)
_NoDAOHomesteadVM.__module__ = __name__
_NoDAOHomesteadVM.__qualname__ = "_NoDAOHomesteadVM"


@cache
def _dao_homestead_vm(dao_fork_block: int) -> type[VirtualMachineAPI]:
    """Homestead with the DAO drain (and its extra-data rule) at ``dao_fork_block``.

    Registered as a module global so pickle (and Ray) find the class by name.
    """
    name = f"DAOHomesteadVM_{dao_fork_block}"
    vm = MainnetDAOValidatorVM.configure(
        __name__=name, support_dao_fork=True, _dao_fork_block_number=dao_fork_block
    )
    vm.__module__ = __name__
    vm.__qualname__ = name
    globals()[name] = vm
    return vm


def __getattr__(name: str) -> type[VirtualMachineAPI]:
    """Recreate a DAO Homestead class by name, for pickle in a fresh process."""
    prefix = "DAOHomesteadVM_"
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return _dao_homestead_vm(int(name[len(prefix) :]))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
