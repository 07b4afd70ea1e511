"""Hint learner: turns executed transactions into hint-table rules, and scores predictions.

After a block is validated, each transaction's actual read/write set and the Keccak
preimages its execution computed (``compute_unit/preimages.py``) update the entry of what it
called (``coordinator/hints.py``): every existing rule is checked against what the
transaction really touched (hit or miss); each touched key no rule named gets a new rule,
derived by explaining its parts: a word equal to the sender, the callee or a calldata word
becomes that field, a slot with a recorded preimage becomes the hash of its explained words
(recursively: mappings of mappings), a word one more than a slot the transaction read is that
counter's next value, anything else a constant. So a slot that is the same for every call
ends up a static hint, one that follows the input a dynamic hint, and rules that keep
missing (a slot picked some other way) are pruned. Counters are predicted as they will run:
``RunningCounters`` starts from the pre-block state and counts each predicted increment.

A contract never seen has no entry: its transactions are predicted to conflict with
everything touching the contract, so the chain starts with little parallelism and gains it
as the table warms up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from compute_unit.state import StateReader, TxAccess
from coordinator.hints import (
    FROM,
    TO,
    Expr,
    HintEntry,
    HintTable,
    Rule,
    TxFields,
    pad32,
)
from storage.keys import ACCT, CODE, SLOT, StateKey

MAX_HASH_DEPTH = 3  # mappings nested deeper than this are learned as constants
MAX_CANDIDATES = 4  # rules made for one ambiguous key


@dataclass(frozen=True)
class LearnerSettings:
    """``min_calls``/``min_seen``: observations before an entry/a rule is trusted;
    ``min_rate``: the least hit rate of a predicted rule; rules seen ``prune_after`` times
    with a hit rate under ``prune_rate`` are dropped; ``gas_weight``: the moving average's
    weight of the newest gas figure."""

    min_calls: int = 2
    min_seen: int = 2
    min_rate: float = 0.6
    prune_after: int = 4
    prune_rate: float = 0.25
    max_rules: int = 128
    gas_weight: float = 0.2


@dataclass
class Prediction:
    """One transaction's predicted keys. ``wildcard``: an address whose every key it may
    touch (an unknown method); ``static``/``dynamic`` split the keys for preloading."""

    reads: set[StateKey] = field(default_factory=set)
    writes: set[StateKey] = field(default_factory=set)
    static: set[StateKey] = field(default_factory=set)
    dynamic: set[StateKey] = field(default_factory=set)
    wildcard: bytes | None = None
    gas: int = 0

    @property
    def keys(self) -> set[StateKey]:
        return self.reads | self.writes


def touched(access: TxAccess) -> dict[StateKey, bool]:
    """Every key a transaction read or wrote, and whether it wrote it (balance credits are
    commutative and conflict with nothing: not counted)."""
    keys = dict.fromkeys(access.reads, False)
    keys.update(dict.fromkeys(access.writes, True))
    return keys


@dataclass
class Clues:
    """What a transaction's execution tells about its words: Keccak preimages, and the
    expression of the next value of each counter-like slot it read (by that value)."""

    preimages: dict[bytes, bytes] = field(default_factory=dict)
    counters: dict[bytes, Expr] = field(default_factory=dict)

    @classmethod
    def of(cls, tx: TxFields, access: TxAccess) -> Clues:
        clues = cls(access.preimages)
        for key, value in access.reads.items():
            if key[0] == SLOT and isinstance(value, int) and 0 < value < 2**256 - 1:
                (address,) = derive(pad32(key[1]), tx, NO_CLUES, MAX_HASH_DEPTH)
                slot = derive(key[2].to_bytes(32, "big"), tx, Clues(access.preimages))[0]
                clues.counters[(value + 1).to_bytes(32, "big")] = ("count", address, slot)
        return clues


NO_CLUES = Clues()


def derive(word: bytes, tx: TxFields, clues: Clues, depth: int = 0) -> list[Expr]:
    """Ways to explain a 32-byte word by the transaction's fields and what its execution
    showed, best first. A word equal to a counter's next value may also be a constant (a
    mapping's base slot 2 when the counter stood at 1): both are kept, and the calls that
    follow tell them apart (``MAX_CANDIDATES`` combinations at most)."""
    if word == pad32(tx.sender):
        return [FROM]
    if tx.to is not None and word == pad32(tx.to):
        return [TO]
    for index, calldata_word in enumerate(tx.words):
        if word == calldata_word:
            return [("word", index)]
    preimage = clues.preimages.get(word) if depth < MAX_HASH_DEPTH else None
    if preimage is not None:
        halves = [preimage[i : i + 32] for i in range(0, len(preimage), 32)]
        choices = itertools.product(*(derive(half, tx, clues, depth + 1) for half in halves))
        return [("hash", *parts) for parts in itertools.islice(choices, MAX_CANDIDATES)]
    counter = clues.counters.get(word)
    return [("const", word)] if counter is None else [counter, ("const", word)]


def rules_for(key: StateKey, tx: TxFields, clues: Clues) -> list[Rule]:
    """New rules naming ``key`` for this transaction (more than one where it is ambiguous)."""
    if key[0] == CODE:
        return [Rule(CODE, ("const", key[1]))]
    (address,) = derive(pad32(key[1]), tx, NO_CLUES, MAX_HASH_DEPTH)
    if key[0] == ACCT:
        return [Rule(ACCT, address)]
    slots = derive(key[2].to_bytes(32, "big"), tx, clues)
    return [Rule(SLOT, address, slot) for slot in slots]


class RunningCounters:
    """Counter slots' values as each transaction of a block will find them, for prediction:
    read from the pre-block state, then one more after each transaction predicted to write
    a counter it consulted."""

    def __init__(self, state: StateReader) -> None:
        self.state = state
        self.values: dict[StateKey, int] = {}
        self.consulted: set[StateKey] = set()

    def __call__(self, key: StateKey) -> int:
        self.consulted.add(key)
        if key not in self.values:
            self.values[key] = self.state.get(key) or 0
        return self.values[key]

    def advance(self, written: set[StateKey]) -> None:
        for key in self.consulted & written:
            self.values[key] += 1
        self.consulted.clear()


class HintLearner:
    """Updates a ``HintTable`` from executed transactions and predicts from it."""

    def __init__(self, table: HintTable, settings: LearnerSettings | None = None) -> None:
        self.table = table
        self.settings = settings or LearnerSettings()

    def learn(self, tx: TxFields, access: TxAccess, gas_used: int, block: int) -> None:
        entry = self.table.entry(tx.entry_key)
        actual = touched(access)
        covered: set[StateKey] = set()
        seen = access.reads.get  # counters as this transaction found them
        for rule in entry.rules.values():
            key = rule.key(tx, seen)
            rule.seen += 1
            if key is not None and key in actual:
                rule.hits += 1
                rule.writes += actual[key]
                covered.add(key)
        clues: Clues | None = None
        for key, written in actual.items():
            if key not in covered:
                clues = clues or Clues.of(tx, access)
                for rule in rules_for(key, tx, clues):
                    rule.seen, rule.hits, rule.writes = 1, 1, int(written)
                    entry.rules.setdefault(rule.id, rule)
        self._prune(entry)
        weight = self.settings.gas_weight if entry.calls else 1.0
        entry.gas = round(entry.gas * (1 - weight) + gas_used * weight)
        entry.calls += 1
        entry.last_block = block

    def _prune(self, entry: HintEntry) -> None:
        s = self.settings
        for rule_id, rule in list(entry.rules.items()):
            if rule.seen >= s.prune_after and rule.rate < s.prune_rate:
                del entry.rules[rule_id]
        if len(entry.rules) > s.max_rules:
            ranked = sorted(entry.rules.values(), key=lambda r: (r.rate, r.seen), reverse=True)
            entry.rules = {rule.id: rule for rule in ranked[: s.max_rules]}

    def predict(
        self, tx: TxFields, gas_limit: int, counters: RunningCounters | None = None
    ) -> Prediction:
        """The keys a transaction is predicted to touch. The sender's account is always
        written (nonce); a call of an unknown method may touch anything of its contract.
        Without ``counters`` (the state), counter-derived keys are not predicted."""
        s = self.settings
        sender = (ACCT, tx.sender)
        prediction = Prediction(writes={sender}, dynamic={sender}, gas=gas_limit)
        entry = self.table.get(tx.entry_key)
        if entry is None or entry.calls < s.min_calls:
            prediction.wildcard = tx.to
            return prediction
        prediction.gas = entry.gas
        for rule in entry.rules.values():
            if rule.seen < s.min_seen or rule.rate < s.min_rate:
                continue
            key = rule.key(tx, counters)
            if key is None:
                continue
            (prediction.writes if rule.writes else prediction.reads).add(key)
            (prediction.static if rule.static_in(entry.key) else prediction.dynamic).add(key)
        prediction.reads -= prediction.writes
        return prediction


@dataclass
class HintScore:
    """Predicted vs actual keys over some transactions."""

    predicted: int = 0
    actual: int = 0
    correct: int = 0

    def add(self, prediction: Prediction, actual: Iterable[StateKey]) -> None:
        actual = set(actual)
        predicted = prediction.keys
        self.predicted += len(predicted)
        self.actual += len(actual)
        self.correct += len(predicted & actual)

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.actual if self.actual else 1.0
