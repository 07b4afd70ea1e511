"""Hint learner: turns executed transactions into hint-table rules, and scores predictions.

After a block is validated, each transaction's actual read/write set and the Keccak
preimages its execution computed (``compute_unit/preimages.py``) update the entry of what it
called (``coordinator/hints.py``): every existing rule is checked against what the
transaction really touched (hit or miss); each touched key no rule named gets a new rule,
derived by explaining its parts: a word equal to the sender, the callee or a calldata word
becomes that field, a slot with a recorded preimage becomes the hash of its explained words
(recursively: mappings of mappings), anything else a constant. So a slot that is the same
for every call ends up a static hint, one that follows the input a dynamic hint, and rules
that keep missing (a slot picked by state, not input) are pruned.

A contract never seen has no entry: its transactions are predicted to conflict with
everything touching the contract, so the chain starts with little parallelism and gains it
as the table warms up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from compute_unit.state import TxAccess
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


def derive(word: bytes, tx: TxFields, preimages: dict[bytes, bytes], depth: int = 0) -> Expr:
    """Explain a 32-byte word by the transaction's fields and recorded preimages."""
    if word == pad32(tx.sender):
        return FROM
    if tx.to is not None and word == pad32(tx.to):
        return TO
    for index, calldata_word in enumerate(tx.words):
        if word == calldata_word:
            return ("word", index)
    preimage = preimages.get(word) if depth < MAX_HASH_DEPTH else None
    if preimage is not None:
        halves = (preimage[i : i + 32] for i in range(0, len(preimage), 32))
        return ("hash", *(derive(half, tx, preimages, depth + 1) for half in halves))
    return ("const", word)


def rule_for(key: StateKey, tx: TxFields, preimages: dict[bytes, bytes]) -> Rule:
    """A new rule naming ``key`` for this transaction."""
    if key[0] == CODE:
        return Rule(CODE, ("const", key[1]))
    address = derive(pad32(key[1]), tx, {}, MAX_HASH_DEPTH)
    if key[0] == ACCT:
        return Rule(ACCT, address)
    return Rule(SLOT, address, derive(key[2].to_bytes(32, "big"), tx, preimages))


class HintLearner:
    """Updates a ``HintTable`` from executed transactions and predicts from it."""

    def __init__(self, table: HintTable, settings: LearnerSettings | None = None) -> None:
        self.table = table
        self.settings = settings or LearnerSettings()

    def learn(self, tx: TxFields, access: TxAccess, gas_used: int, block: int) -> None:
        entry = self.table.entry(tx.entry_key)
        actual = touched(access)
        covered: set[StateKey] = set()
        for rule in entry.rules.values():
            key = rule.key(tx)
            rule.seen += 1
            if key is not None and key in actual:
                rule.hits += 1
                rule.writes += actual[key]
                covered.add(key)
        for key, written in actual.items():
            if key not in covered:
                rule = rule_for(key, tx, access.preimages)
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

    def predict(self, tx: TxFields, gas_limit: int) -> Prediction:
        """The keys a transaction is predicted to touch. The sender's account is always
        written (nonce); a call of an unknown method may touch anything of its contract."""
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
            key = rule.key(tx)
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
