"""The hint table: what each kind of transaction is predicted to read and write.

An entry is keyed by what a transaction calls: (contract address, method selector), or one
shared entry for plain value transfers (no calldata), or one for contract creations. It
holds *rules*, each naming a state key (``storage/keys.py``) as an expression over the
transaction, with how often the rule held:

- a *static hint* (litepaper eq. 1) names a fixed key, whatever the input: a contract's
  ``totalSupply``, an AMM pair's reserves, the pair's balance in a token it calls;
- a *dynamic hint* (eq. 2) derives a key from the transaction: ``keccak(pad32(tx.from) ‖
  pad32(3))`` for ``balanceOf[msg.sender]``, nested for mappings of mappings, from calldata
  words (address or integer arguments), also for keys in other contracts reached by calls.

Expressions are tuples: ``("from",)``, ``("to",)``, ``("word", i)`` (calldata word ``i``
after the selector), ``("const", bytes32)``, ``("hash", e1[, e2])`` (Keccak of the words),
``("count", address, slot)`` (one more than that slot's value as the transaction finds it:
the next id of a sequential counter, such as an NFT mint's token id).
Nothing here is written by hand: ``coordinator/learner.py`` makes and scores the rules.

The table lives in a RocksDB of its own, one record per entry (a CRC-32 and canonical JSON,
so it reloads byte for byte), is loaded whole at start, and is capped in size: over the cap,
the least useful entries (fewest calls, then least recently used) are evicted. A record that
fails its check makes the whole table untrusted: it is rebuilt from scratch, with a warning.
"""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_hash.auto import keccak
from rocksdict import Options, Rdict, WriteBatch

from storage import open_stores
from storage.keys import ACCT, CODE, SLOT, StateKey

log = logging.getLogger(__name__)

Expr = tuple[Any, ...]
TRANSFER = b"transfer"  # the entry of plain value transfers
CREATE = b"create"  # the entry of contract creations
DEFAULT_CAP_BYTES = 4 << 30
FROM: Expr = ("from",)
TO: Expr = ("to",)


@dataclass(frozen=True)
class TxFields:
    """What rules are evaluated on: the sender, the callee and the calldata."""

    sender: bytes
    to: bytes | None
    data: bytes

    @property
    def entry_key(self) -> bytes:
        if self.to is None:
            return CREATE
        if not self.data:
            return TRANSFER
        return self.to + self.data[:4]

    @property
    def words(self) -> tuple[bytes, ...]:
        body = self.data[4:]
        return tuple(body[i : i + 32] for i in range(0, len(body) - 31, 32))


def pad32(address: bytes) -> bytes:
    return address.rjust(32, b"\0")


StateLookup = Callable[[StateKey], Any]  # a slot's value as a transaction finds it


def evaluate(expr: Expr, tx: TxFields, state: StateLookup | None = None) -> bytes | None:
    """The 32-byte word an expression gives for this transaction (None: not applicable, or
    it needs the state and none is given)."""
    kind = expr[0]
    if kind == "const":
        return expr[1]
    if kind == "from":
        return pad32(tx.sender)
    if kind == "to":
        return None if tx.to is None else pad32(tx.to)
    if kind == "word":
        words = tx.words
        return words[expr[1]] if expr[1] < len(words) else None
    if kind == "hash":
        parts = [evaluate(part, tx, state) for part in expr[1:]]
        return None if None in parts else keccak(b"".join(parts))
    if kind == "count":
        address, slot = evaluate(expr[1], tx, state), evaluate(expr[2], tx, state)
        if state is None or address is None or slot is None:
            return None
        value = state((SLOT, address[12:], int.from_bytes(slot, "big"))) or 0
        return (value + 1).to_bytes(32, "big") if value < 2**256 - 1 else None
    raise ValueError(f"unknown expression {expr!r}")


def is_dynamic(expr: Expr, shared: bool = False) -> bool:
    """Whether the expression depends on the transaction's sender or calldata (or on its
    callee, for the ``shared`` entries of transfers and creations)."""
    if expr[0] in ("from", "word", "count") or (shared and expr[0] == "to"):
        return True
    return expr[0] == "hash" and any(is_dynamic(part, shared) for part in expr[1:])


RuleId = tuple[str, Expr, Expr | None]  # kind, address (or code hash), slot


@dataclass
class Rule:
    """One predicted key and its record: ``seen`` calls since it was made, ``hits`` of
    them that touched the key, ``writes`` of those that wrote it."""

    kind: str
    address: Expr
    slot: Expr | None = None
    seen: int = 0
    hits: int = 0
    writes: int = 0

    @property
    def id(self) -> RuleId:
        return (self.kind, self.address, self.slot)

    @property
    def rate(self) -> float:
        return self.hits / self.seen if self.seen else 0.0

    def static_in(self, entry_key: bytes) -> bool:
        """Whether the rule names the same key for every call of its entry."""
        shared = entry_key in (TRANSFER, CREATE)
        exprs = (self.address,) if self.slot is None else (self.address, self.slot)
        return not any(is_dynamic(expr, shared) for expr in exprs)

    def key(self, tx: TxFields, state: StateLookup | None = None) -> StateKey | None:
        """The state key this rule names for a transaction (None: not applicable)."""
        word = evaluate(self.address, tx, state)
        if word is None:
            return None
        if self.kind == CODE:
            return (CODE, word)
        if word[:12].strip(b"\0"):
            return None  # not an address
        if self.kind == ACCT:
            return (ACCT, word[12:])
        slot = evaluate(self.slot, tx, state) if self.slot is not None else None
        return None if slot is None else (SLOT, word[12:], int.from_bytes(slot, "big"))


@dataclass
class HintEntry:
    """Everything learned about one kind of call."""

    key: bytes
    calls: int = 0
    gas: int = 0  # moving average of gas used
    last_block: int = 0
    rules: dict[RuleId, Rule] = field(default_factory=dict)

    def encode(self) -> bytes:
        """A CRC-32 of canonical JSON, then the JSON (``decode`` checks both)."""
        body = {
            "key": self.key.hex(),
            "calls": self.calls,
            "gas": self.gas,
            "last_block": self.last_block,
            "rules": sorted(
                (
                    [r.kind, _expr_json(r.address), _expr_json(r.slot), r.seen, r.hits, r.writes]
                    for r in self.rules.values()
                ),
                key=json.dumps,
            ),
        }
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return zlib.crc32(data).to_bytes(4, "big") + data

    @classmethod
    def decode(cls, record: bytes) -> HintEntry:
        crc, data = record[:4], record[4:]
        if len(record) < 4 or zlib.crc32(data).to_bytes(4, "big") != crc:
            raise ValueError("checksum mismatch")
        body = json.loads(data)
        entry = cls(bytes.fromhex(body["key"]), body["calls"], body["gas"], body["last_block"])
        for kind, address, slot, seen, hits, writes in body["rules"]:
            if kind not in (ACCT, SLOT, CODE):
                raise ValueError(f"unknown rule kind {kind!r}")
            rule = Rule(kind, _expr_from(address), _expr_from(slot), seen, hits, writes)
            entry.rules[rule.id] = rule
        return entry


def _expr_json(expr: Expr | None) -> Any:
    if expr is None:
        return None
    if expr[0] == "const":
        return ["const", expr[1].hex()]
    if expr[0] in ("hash", "count"):
        return [expr[0], *(_expr_json(part) for part in expr[1:])]
    return list(expr)


def _expr_from(data: Any) -> Expr | None:
    if data is None:
        return None
    kind = data[0]
    if kind == "const" and len(data) == 2:
        return ("const", bytes.fromhex(data[1]))
    if kind == "hash" and len(data) in (2, 3) or kind == "count" and len(data) == 3:
        return (kind, *(_expr_from(part) for part in data[1:]))
    if kind == "word" and len(data) == 2 and isinstance(data[1], int) and data[1] >= 0:
        return ("word", data[1])
    if kind in ("from", "to") and len(data) == 1:
        return (kind,)
    raise ValueError(f"bad expression {data!r}")


class HintTable:
    """The entries in memory, persisted in a RocksDB at ``path`` (None: memory only)."""

    def __init__(self, path: str | Path | None = None, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.path = None if path is None else Path(path)
        self.cap_bytes = cap_bytes
        self.entries: dict[bytes, HintEntry] = {}
        self._sizes: dict[bytes, int] = {}
        self._dirty: set[bytes] = set()
        self._evicted: set[bytes] = set()
        self.rebuilt: str | None = None  # why a stored table was discarded, if it was
        self._db = None if self.path is None else self._open()
        if self._db is not None:
            open_stores.opened(self)

    def _open(self) -> Rdict:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        db = None
        try:
            db = Rdict(str(self.path), options=options)
            for key, record in db.items():
                entry = HintEntry.decode(record)
                if entry.key != key:
                    raise ValueError(f"record under {key.hex()} is for {entry.key.hex()}")
                self.entries[key] = entry
                self._sizes[key] = len(record)
            return db
        except Exception as err:  # RocksDB reports corruption as a bare Exception
            reason = f"{self.path}: hint table is corrupt ({err}); rebuilding it from scratch"
            log.warning(reason)
            self.rebuilt = reason
            self.entries.clear()
            self._sizes.clear()
            if db is not None:
                db.close()
            shutil.rmtree(self.path, ignore_errors=True)
            return Rdict(str(self.path), options=options)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[HintEntry]:
        return iter(self.entries.values())

    def get(self, key: bytes) -> HintEntry | None:
        return self.entries.get(key)

    def entry(self, key: bytes) -> HintEntry:
        """The entry for ``key``, created empty if new; marked as changed."""
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = HintEntry(key)
        self._dirty.add(key)
        return entry

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def save(self) -> None:
        """Persist changed entries (and evictions) in one batch, evicting over the cap."""
        for key in self._dirty:
            if key in self.entries:
                self._sizes[key] = len(self.entries[key].encode())
        self._evict()
        if self._db is not None:
            batch = WriteBatch(raw_mode=True)
            for key in self._dirty:
                if key in self.entries:
                    batch.put(key, self.entries[key].encode())
            for key in self._evicted:
                batch.delete(key)
            self._db.write(batch)
        self._dirty.clear()
        self._evicted.clear()

    def _evict(self) -> None:
        size = self.size_bytes
        if size <= self.cap_bytes:
            return
        for entry in sorted(self.entries.values(), key=lambda e: (e.calls, e.last_block)):
            if size <= self.cap_bytes:
                break
            size -= self._sizes.pop(entry.key, 0)
            del self.entries[entry.key]
            self._dirty.discard(entry.key)
            self._evicted.add(entry.key)

    def dump(self) -> dict[bytes, bytes]:
        """Every stored record, as stored (tests compare tables byte for byte)."""
        return {} if self._db is None else dict(self._db.items())

    def close(self) -> None:
        if self._db is not None:
            self.save()
            self._db.close()
            self._db = None
            open_stores.closed(self)
