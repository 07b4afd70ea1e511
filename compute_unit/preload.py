"""Async preloading: a block's predicted state, read ahead from State Storage into an Arrow
table in Ray's object store, so execution reads memory.

As soon as a block's order is fixed, a ``PreloadJob`` reads (on a thread, while the block
before it still executes) first the *static* hint keys (optimistic preloading: keys every
call of a method touches), then the *dynamic* ones (pessimistic preloading: keys derived from
each transaction; over-reading is fine), each set in one batched multi-get. Since the block
before may commit meanwhile, the result is patched with that block's write set before use.

``PreloadedReader`` is what the workers execute against: the Arrow table (key and value
columns, binary; a null value is a key known to be absent), put in the object store once and
mapped zero-copy by every worker, indexed on first use. A key not in the table is a *miss*:
read from storage (the fallback reader) and counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import rlp
from rlp.codec import encode_raw

from compute_unit.state import StateReader
from storage.keys import ACCT, SLOT, AccountFields, StateKey, int_bytes
from storage.write_behind import stored_after

SCHEMA = pa.schema([("key", pa.binary()), ("value", pa.binary())])


def encode_key(key: StateKey) -> bytes:
    if key[0] == SLOT:
        return b"s" + key[1] + key[2].to_bytes(32, "big")
    return (b"a" if key[0] == ACCT else b"c") + key[1]


def encode_value(key: StateKey, value: Any) -> bytes | None:
    if value is None:
        return None
    if key[0] == ACCT:
        return encode_raw([int_bytes(value.nonce), int_bytes(value.balance), value.code_hash])
    if key[0] == SLOT:
        return int_bytes(value)
    return value


def decode_value(key: StateKey, data: bytes | None) -> Any:
    if data is None:
        return None
    if key[0] == ACCT:
        nonce, balance, code_hash = rlp.decode(data)
        return AccountFields(
            int.from_bytes(nonce, "big"), int.from_bytes(balance, "big"), code_hash
        )
    if key[0] == SLOT:
        return _int(data)
    return data


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


@dataclass
class PreloadedState:
    """Values of a block's predicted keys, as State Storage answers them."""

    values: dict[StateKey, Any] = field(default_factory=dict)
    static_ms: float = 0.0
    dynamic_ms: float = 0.0

    def read(self, store: Any, keys: Iterable[StateKey]) -> float:
        """Read the keys not held yet in one multi-get; milliseconds taken."""
        started = time.perf_counter()
        missing = sorted(set(keys) - self.values.keys(), key=encode_key)
        if missing:
            self.values.update(zip(missing, store.get_many(missing), strict=True))
        return (time.perf_counter() - started) * 1000

    def patch(self, writes: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> None:
        """Bring values read before a block committed up to date with its write set."""
        wiped = set(wiped)
        for key in self.values:
            decided, value = stored_after(key, writes, wiped)
            if decided:
                self.values[key] = value

    def table(self) -> pa.Table:
        keys = sorted(self.values, key=encode_key)
        return pa.table(
            [
                pa.array([encode_key(k) for k in keys], pa.binary()),
                pa.array([encode_value(k, self.values[k]) for k in keys], pa.binary()),
            ],
            schema=SCHEMA,
        )


class PreloadJob:
    """Static keys, then dynamic keys, read on the preloader's thread."""

    def __init__(
        self, pool: ThreadPoolExecutor, store: Any, static: set[StateKey], dynamic: set[StateKey]
    ) -> None:
        self._future: Future[PreloadedState] = pool.submit(self._run, store, static, dynamic)

    @staticmethod
    def _run(store: Any, static: set[StateKey], dynamic: set[StateKey]) -> PreloadedState:
        state = PreloadedState()
        state.static_ms = state.read(store, static)
        state.dynamic_ms = state.read(store, dynamic)
        return state

    def result(self) -> PreloadedState:
        return self._future.result()


class Preloader:
    """Starts preload jobs against a store (State Storage: ``get_many``)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preload")

    def start(self, static: set[StateKey], dynamic: set[StateKey]) -> PreloadJob:
        return PreloadJob(self._pool, self.store, static, dynamic - static)

    def close(self) -> None:
        self._pool.shutdown()


class PreloadedReader:
    """A worker's state reader: the preloaded Arrow table, then the fallback (counted)."""

    def __init__(self, table: pa.Table, fallback: StateReader) -> None:
        self.table = table
        self.fallback = fallback
        self._index: dict[bytes, int] | None = None
        self._values: Any = None
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"table": self.table, "fallback": self.fallback}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["table"], state["fallback"])

    def __len__(self) -> int:
        return self.table.num_rows

    def get(self, key: StateKey) -> Any:
        if self._index is None:  # once per worker process and block
            keys = self.table.column("key").to_pylist()
            # the values first: threads of one process may share the reader (the spaces of a
            # block on in-process CUs), and one that sees the index must see them too
            self._values = self.table.column("value").combine_chunks()
            self._index = {k: i for i, k in enumerate(keys)}
        row = self._index.get(encode_key(key))
        if row is None:
            self.misses += 1
            return self.fallback.get(key)
        self.hits += 1
        return decode_value(key, self._values[row].as_py())


def preload_keys(predictions: Iterable[Any]) -> tuple[set[StateKey], set[StateKey]]:
    """The static and the dynamic keys of a block's predictions (``Prediction``s)."""
    static: set[StateKey] = set()
    dynamic: set[StateKey] = set()
    for prediction in predictions:
        static |= prediction.static
        dynamic |= prediction.dynamic
    return static, dynamic - static


def hit_rate(preloaded: set[StateKey], reads: Sequence[Iterable[StateKey]]) -> float:
    """Share of the keys transactions read from below that were preloaded."""
    total = hits = 0
    for keys in reads:
        for key in keys:
            total += 1
            hits += key in preloaded
    return hits / total if total else 1.0
