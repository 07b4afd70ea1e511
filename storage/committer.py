"""Commits blocks to disk: State Storage (SS) and State Commitment (SC), concurrently.

For a block's write set, SC first merkelizes in memory (storage tries, then the account trie:
the state root and each changed account's record, storage root included); then SS's batch
(I/O: the flat state, with those records and the block's root) and SC's page batch (encoding
the dirty pages, writing them) run concurrently. Each store records the block it last
committed, in the same batch as the block. SS syncs its batch before it returns, with the
block's write set (the keys it wrote): a commit is durable when ``commit`` returns. SC is
durable at its checkpoints: it writes the blocks between without RocksDB's write-ahead log
and flushes its memtables at a checkpoint, since recovery goes back to its last checkpoint
and replays SS's write sets anyway (logging and syncing them had cost a copy of every SC
byte). So at any cut (a kill or a power cut) SS holds its previous block or the new one,
and SC a block from its last durable checkpoint on, at most one ahead of SS. Without write
sets (validators), SC syncs every block, as SS does.

SC's trie is wholly on disk only as of its last checkpoint (its top pages are held in memory
between checkpoints, every ``checkpoint_every`` blocks; a clean ``close`` checkpoints). On
open the two marks are compared. Equal, and SC's last block a checkpoint: nothing to do.
Otherwise SC goes back to its newest checkpoint at or before SS's block (the pages written
after it are dropped, the root records of blocks SS holds kept) and replays SS's write sets
of the blocks since (the keys they wrote), merged into one with SS's values, which must give
the root SS recorded (SS keeps write sets as far back as that, ``checkpoint_every`` blocks,
unless told otherwise); SS one block ahead (a crash after SS's batch, before SC's) and SC
one ahead (after SC's, before SS's) are cases of it. A store without write sets (validators)
checkpoints every block and writes SC first, then SS, so SC can only be ahead, and is rolled
back. A crash in the first block's commit is the same: an empty SC is built from SS's write
sets, and an SC holding a first block that SS never got is emptied. Anything else is an
error naming both marks; nothing is ever guessed.

A write-behind commit (``background=True``) returns the root once SC has merkelized, and
writes both stores on a thread of its own while the next block runs; that block reads the
write set in flight from memory (``storage/write_behind.py``). The next commit (or
``settle``, or ``close``) waits for it first: one block in flight at most, and SC's tries are
never merkelized while their pages are being written. A crash meanwhile leaves the stores as a
crash mid-commit does, and recovery is the same.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storage.keys import ACCT, SLOT, StateKey
from storage.sc import DEFAULT_KEEP_VERSIONS, StateCommitment
from storage.ss import (
    CommitMark,
    StateStorage,
    StorageError,
    db_options,
)
from storage.write_behind import InFlight
from storage.writeset import WriteSetRecord, decode_writeset, merge_written_keys

CRASH_POINTS = ("before_writes", "after_sc", "after_ss")
DEFAULT_CHECKPOINT_EVERY = 32  # blocks between SC's checkpoints of its top pages
FULL_COLLECT_EVERY = 256


class Committer:
    """SS and SC in one data directory, kept at the same block."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        keep_writesets: bool = True,
        writeset_window: int | None = None,
        keep_versions: int | None = DEFAULT_KEEP_VERSIONS,
        levels: int = 2,
        page_target: int = 4096,
        statistics: bool = False,
        write_buffer_bytes: int | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        self.data_dir = Path(data_dir)
        # SC's top pages are rebuilt by replaying write sets: without them, every block is
        # a checkpoint; with them, the window must reach back to the last checkpoint, and by
        # default reaches just that far (write sets are kept for recovery alone: a window of
        # 128 kept 23 MB of them at 100,000 accounts, two thirds of the live state's size)
        if keep_versions is not None:
            checkpoint_every = min(checkpoint_every, keep_versions - 1)
        if writeset_window is None:
            writeset_window = max(1, checkpoint_every)
        checkpoint_every = min(checkpoint_every, writeset_window) if keep_writesets else 1
        self.ss_options = db_options(statistics, write_buffer_bytes)
        self.sc_options = db_options(statistics, write_buffer_bytes)
        self.ss = StateStorage(
            self.data_dir / "ss",
            keep_writesets=keep_writesets,
            writeset_window=writeset_window,
            options=self.ss_options,
            write_buffer_bytes=write_buffer_bytes,
        )
        self._sc_options = {
            "keep_versions": keep_versions,
            "levels": levels,
            "page_target": page_target,
            "options": self.sc_options,
            "write_buffer_bytes": write_buffer_bytes,
            "ss": self.ss,  # (account records and small storage tries are State Storage's)
            "checkpoint_every": max(1, checkpoint_every),
            # with write sets, SC need be durable only at its checkpoints (recovery goes back
            # to the last one and replays the write sets since)
            "durable_every_block": not keep_writesets,
        }
        self.sc = StateCommitment(self.data_dir / "sc", **self._sc_options)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ss-write")
        self._behind = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self._in_flight: tuple[InFlight, Future[bytes]] | None = None
        self._failed: StorageError | None = None  # a write-behind that failed: no more commits
        self._commits = 0
        try:
            self.recovery = self._recover()
        except Exception:
            self.close()  # nothing to recover with: release the stores opened for it
            raise

    def close(self) -> None:
        try:
            self.settle()
            if self._failed is None:
                self.sc.checkpoint_now()  # (so that reopening replays nothing)
        finally:
            self._behind.shutdown()
            self._io.shutdown()
            self.ss.close()
            self.sc.close()

    @property
    def mark(self) -> CommitMark | None:
        """The last block State Storage holds (a block in flight is not there yet)."""
        return self.ss.last_committed()

    @property
    def in_flight(self) -> InFlight | None:
        """The block being written behind, until ``settle`` (read it through a
        ``BehindReader``)."""
        return None if self._in_flight is None else self._in_flight[0]

    def settle(self) -> None:
        """Wait for the block in flight to be written. A failed write is a ``StorageError``
        naming the block, here and at every later commit: the stores are as after a crash
        mid-commit, and only reopening (recovery) brings them back."""
        if self._failed is not None:
            raise self._failed
        if self._in_flight is None:
            return
        block, future = self._in_flight
        try:
            future.result()
        except Exception as err:
            self._failed = StorageError(
                f"{self.data_dir}: writing block {block.number} behind failed: "
                f"{type(err).__name__}: {err}; reopen the store to recover"
            )
            raise self._failed from err
        finally:
            # forgotten only once written (or failed): interrupted while waiting (Ctrl-C),
            # the write goes on, and the next commit must still wait for it
            if future.done():
                self._in_flight = None

    @property
    def state_root(self) -> bytes:
        return self.sc.root

    # -- recovery ---------------------------------------------------------------------------
    def _recover(self) -> str:
        """Bring SC to SS's block. SC's trie is on disk as of its last checkpoint, and its
        top pages since were held in memory: SC goes back to its newest checkpoint at or
        before SS's block (pages written after it are dropped), then replays SS's write sets
        of the blocks since, merged into one, and must reach the root SS recorded."""
        ss, sc = self.ss.last_committed(), self.sc.last_committed()
        at_ss = ss.number if ss else -1
        at_sc = sc.number if sc else -1
        if at_ss == at_sc and (ss is None or self.sc.checkpoint == at_sc):
            if ss is not None and ss.state_root != sc.state_root:
                raise StorageError(
                    f"{self.data_dir}: SS and SC both at block {at_ss} with different roots "
                    f"0x{ss.state_root.hex()} / 0x{sc.state_root.hex()}"
                )
            return "consistent" if ss else "empty"
        if at_ss > at_sc and not self.ss.keep_writesets:
            raise StorageError(
                f"{self.data_dir}: SS holds block {at_ss}, SC block {at_sc}, and SS keeps no "
                "write sets to roll SC forward with"
            )
        if ss is None and self.sc.holds_one_block():  # (a crash in the first block's
            # commit, SC's write done, SS's not: no block is committed, and SC is emptied)
            self.sc.reset()
            self.sc.close()
            self.sc = StateCommitment(self.data_dir / "sc", **self._sc_options)
            return f"emptied SC: SS holds no block, SC block {at_sc} alone"
        # (SS syncs each block before the next is written, so SC can be at most one ahead;
        # SC is durable at its checkpoints only, so with write sets it may be further behind)
        if at_ss < 0 or at_sc > at_ss + 1 or (at_ss > at_sc + 1 and not self.ss.keep_writesets):
            raise StorageError(
                f"{self.data_dir}: SS at block {at_ss} and SC at block {at_sc} are too far apart"
            )
        base = self.sc.last_checkpoint(at_ss)
        if base is None and sc is None:  # (a crash in the first block's commit, SS's write
            # done, SC's not: SC is built from the write sets SS keeps from the first block)
            self._replay(None, at_ss, ss.state_root)
            return f"rolled SC forward to block {at_ss}"
        if base is None:
            raise StorageError(
                f"{self.data_dir}: SC holds no checkpoint at or before SS's block {at_ss}"
            )
        steps = []
        if base < at_sc or self.sc.checkpoint != at_sc:
            self.sc.roll_back(base, roots_through=at_ss)
            self.sc.close()
            self.sc = StateCommitment(self.data_dir / "sc", **self._sc_options)
            steps.append(f"rolled SC back to block {base}")
        if base < at_ss:
            self._replay(base, at_ss, ss.state_root)
            steps.append(f"rolled SC forward to block {at_ss}")
        return ", ".join(steps)

    def _replay(self, base: int | None, number: int, root: bytes) -> None:
        """SC from block ``base`` (None: from empty) to ``number`` by SS's write sets of the
        blocks between, followed back from ``number`` (each record names the block before
        it) to ``base``, or to the first block (a record naming none)."""
        kept = self.ss.writesets(-1 if base is None else base, number)
        records: dict[int, WriteSetRecord] = {}
        block: int | None = number
        while block is not None and block != base:
            if block not in kept:
                raise StorageError(
                    f"{self.data_dir}: SS holds block {number}, SC block {base}, and SS keeps no "
                    f"write set of block {block} to roll SC forward with"
                )
            records[block] = decode_writeset(kept[block])
            previous = records[block].previous
            if base is not None and (previous is None or previous < base):
                raise StorageError(
                    f"{self.data_dir}: SS's write set of block {block} follows block {previous}, "
                    f"not one after SC's checkpoint {base}: SC cannot be rolled forward"
                )
            block = previous
        # (the keys the blocks wrote, with SS's values: SS is at block ``number`` already)
        written = merge_written_keys(record.keys for record in records.values())
        writes, wiped = written.replayed(self.ss.get_many)
        roots = {block: record.state_root for block, record in records.items()}
        replayed = self.sc.commit(number, writes, wiped, replay=True, roots=roots)
        if replayed != root:
            raise StorageError(
                f"{self.data_dir}: rolling SC forward to block {number} gave root "
                f"0x{replayed.hex()}, SS recorded 0x{root.hex()}"
            )

    # -- committing -------------------------------------------------------------------------
    def commit(
        self,
        number: int,
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        crash_at: str | None = None,
        before_write: Callable[[bytes], None] | None = None,
        background: bool = False,
    ) -> bytes:
        """Persist one block; its state root. ``before_write(root)`` runs once the root is
        known and before either store is written (a node writes its block there, so a crash
        leaves the block to roll the state forward with). ``background``: return once the
        root is known and write behind (``in_flight`` until the next commit or ``settle``).
        ``crash_at`` kills the process (tests)."""
        wiped = block_wipes(writes, wiped)
        with _collector_paused():
            self.settle()
            records, _ = self.sc.update(writes, wiped)
            root = self.sc.accounts.root_hash
            if before_write is not None:
                before_write(root)
            if background:
                future = self._behind.submit(self._write, number, writes, wiped, records, crash_at)
                self._in_flight = (InFlight(number, root, writes, wiped), future)
            else:
                root = self._write(number, writes, wiped, records, crash_at)
            self._settle_garbage()
        return root

    def commit_steps(
        self,
        number: int,
        steps: Sequence[tuple[Mapping[StateKey, Any], Iterable[bytes]]],
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
    ) -> list[bytes]:
        """Persist a block given per transaction too; the state root after each transaction.

        ``writes``/``wiped`` are the whole block's, as the steps add up to.
        """
        checked = [(step, block_wipes(step, step_wiped)) for step, step_wiped in steps]
        # (SS applies the block's wipes before its writes: a step's, too, since SC applied
        # it, though a later step may have brought the account back)
        wiped = block_wipes(writes, wiped).union(*(step_wiped for _, step_wiped in checked))
        with _collector_paused():
            self.settle()
            roots = []
            changed: dict[bytes, bytes | None] = {}
            for step_writes, step_wiped in checked:
                records, root = self.sc.update(step_writes, step_wiped)
                changed.update(records)
                roots.append(root)
            self._write(number, writes, wiped, changed, None)
            self._settle_garbage()
        return roots

    def _settle_garbage(self) -> None:
        """Keep Python's cyclic garbage collector off the in-memory tries.

        The tries are millions of long-lived node objects; every full collection walked them
        all (commit spikes of 0.6 to 1 s at 100,000 accounts, gone with the collector off).
        After each block everything alive is frozen out of later collections; nodes hold no
        cycles, so reference counting still frees the replaced ones. The block's objects are
        frozen uncollected: collecting the young generations first found no garbage at all at
        100,000 accounts, and cost 45 ms a block (a seventh of a commit) scanning the
        hundreds of thousands of objects the block made. Every ``FULL_COLLECT_EVERY`` blocks
        everything is unfrozen and fully collected once, so cyclic garbage frozen meanwhile
        is reclaimed.
        """
        self._commits += 1
        if self._commits % FULL_COLLECT_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()

    def _write(
        self,
        number: int,
        writes: Mapping[StateKey, Any],
        wiped: frozenset[bytes],
        records: Mapping[bytes, bytes | None],
        crash_at: str | None,
    ) -> bytes:
        mark = CommitMark(number, self.sc.accounts.root_hash)
        # Without write sets SC could not be rolled forward: SC is written first, alone.
        sc_first = not self.ss.keep_writesets or crash_at == "after_sc"
        if crash_at is not None or sc_first:  # in a fixed order (fault injection, validators)
            if crash_at is not None:
                _crash_if(crash_at, "before_writes")
            if sc_first:
                self.sc.write(number)
                if crash_at is not None:
                    _crash_if(crash_at, "after_sc")
            self.ss.write_block(mark, writes, wiped, records)
            if crash_at is not None:
                _crash_if(crash_at, "after_ss")
            return mark.state_root if sc_first else self.sc.write(number)
        ss_done = self._io.submit(self.ss.write_block, mark, writes, wiped, records)
        root = self.sc.write(number)
        ss_done.result()
        return root

    def compact(self) -> None:
        """Both stores flushed and compacted whole, once a write in flight has landed (after a
        bulk load such as a large genesis, so that the blocks after it do not flush and
        compact its memtables and L0 files)."""
        self.settle()
        self.ss.compact()
        self.sc.compact()

    def load_genesis(self, items: Iterable[tuple[StateKey, Any]]) -> bytes:
        """Commit a pre-state as block 0 of an empty store."""
        if self.mark is not None:
            raise StorageError(
                f"{self.data_dir}: already holds a chain at block {self.mark.number}; "
                "use an empty data directory"
            )
        return self.commit(0, dict(items), ())


def block_wipes(writes: Mapping[StateKey, Any], wiped: Iterable[bytes]) -> frozenset[bytes]:
    """The accounts whose storage a write set wipes: those it names, and those it deletes.
    Deleting an account deletes its storage, as in geth and py-evm: SC drops a deleted
    account's storage trie with its leaf, and SS, told nothing, would keep its slots, to be
    read again if the account came back. A write set that deletes an account yet gives it
    a non-zero slot describes no state: refused (``StorageError``) before anything is
    written."""
    deleted = {key[1] for key, value in writes.items() if key[0] == ACCT and value is None}
    for key, value in writes.items() if deleted else ():
        if key[0] == SLOT and value and key[1] in deleted:
            raise StorageError(
                f"the write set deletes account 0x{key[1].hex()} and writes its slot "
                f"{key[2]:#x}: a deleted account has no storage"
            )
    return frozenset(wiped).union(deleted)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic collector off while a block commits (``_settle_garbage`` then freezes
    what the block made). A commit allocates hundreds of thousands of objects that
    outlive it (nodes, decoded pages); with the collector on, they were scanned again and
    again as they aged, and, the long-lived ones being few once frozen, fully collected
    over and over: a third of the first block after reopening (100,000 accounts)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _crash_if(crash_at: str, point: str) -> None:
    if crash_at not in CRASH_POINTS:
        raise ValueError(f"unknown crash point {crash_at!r}; one of {CRASH_POINTS}")
    if crash_at == point:
        os.kill(os.getpid(), signal.SIGKILL)
