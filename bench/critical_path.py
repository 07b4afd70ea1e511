"""The critical path of a block: what bounds any parallel schedule of it.

From the final outcomes of a block (in order), a transaction depends on the last earlier
transaction that wrote a key it read (a balance credit counts only for a read that looked at
the balance). The longest chain of dependencies, weighed by gas, is work no schedule can
overlap; ``critical_path_bound`` is the block's total gas over that chain's: the most any
number of workers could speed the block up by (before overheads).
"""

from __future__ import annotations

from collections.abc import Sequence

from compute_unit.executor import TxOutcome
from compute_unit.state import BlindAccount
from storage.keys import SLOT, acct_key


def dependency_chain_gas(outcomes: Sequence[TxOutcome]) -> tuple[int, int]:
    """(total gas, gas of the longest dependency chain) of a block's final outcomes."""
    last_write: dict = {}  # key -> the last transaction that set it
    last_touch: dict = {}  # key -> the last that set it or credited it
    last_wipe: dict[bytes, int] = {}
    chain: dict[int, int] = {}
    total = 0
    for position, outcome in enumerate(outcomes):
        deps = []
        for key, seen in outcome.access.reads.items():
            writers = last_write if isinstance(seen, BlindAccount) else last_touch
            if key in writers:
                deps.append(writers[key])
            if key[0] == SLOT and key[1] in last_wipe:
                deps.append(last_wipe[key[1]])
        chain[position] = outcome.gas_used + max((chain[d] for d in deps), default=0)
        total += outcome.gas_used
        for key in outcome.access.writes:
            last_write[key] = last_touch[key] = position
        for address in outcome.access.credits:
            last_touch[acct_key(address)] = position
        for address in outcome.access.wiped:
            last_wipe[address] = position
    return total, max(chain.values(), default=0)


def critical_path_bound(outcomes: Sequence[TxOutcome]) -> float:
    total, longest = dependency_chain_gas(outcomes)
    return round(total / longest, 3) if longest else 1.0
