"""The committer: SS and SC at the same block, concurrent writes, and recovery after a
process is killed (SIGKILL) or the power is cut in the middle of a block's commit, written in
place or behind (``background``: on the committer's own thread, while the next block would
run)."""

import gc
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from support import paged_storage_blocks, random_state_blocks

import storage.committer
from compute_unit.state import DictSnapshot
from storage.committer import CRASH_POINTS, Committer
from storage.keys import AccountFields, acct_key, slot_key
from storage.reference_trie import TrieCommitter
from storage.sc import FAMILIES as sc_families
from storage.ss import COLUMN_FAMILIES as ss_families
from storage.ss import CommitMark, StateStorage, StorageError
from storage.writeset import decode_writeset, encode_writeset

REPO = Path(__file__).resolve().parent.parent
BLOCKS = 5

CHILD = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
{prelude}
from support import random_state_blocks
from storage.committer import Committer
committer = Committer({data!r}, keep_writesets={keep!r}, checkpoint_every={every!r})
blocks = random_state_blocks(7, {count})
for number, (writes, wiped) in enumerate(blocks[:-1], start=1):
    committer.commit(number, writes, wiped, background={background!r})
writes, wiped = blocks[-1]
committer.commit({count}, writes, wiped, crash_at={point!r}, background={background!r})
committer.settle()
"""

# A power cut loses every write not yet synced. Simulated at the engine: every DB the stores
# open writes without its write-ahead log unless the write asks for a sync, so such a write
# lives only in the memtable, and the SIGKILL loses it (a kill alone keeps unsynced writes:
# the OS still has them).
POWER_CUT = """
import rocksdict
import storage.sc, storage.ss
opened = storage.ss.open_rocksdb
def unsynced_writes_lost(*args, **kwargs):
    db = opened(*args, **kwargs)
    no_log = rocksdict.WriteOptions()
    no_log.disable_wal = True
    db.set_write_options(no_log)
    return db
storage.ss.open_rocksdb = storage.sc.open_rocksdb = unsynced_writes_lost
"""


def run_killed(child: str, data: Path, power_cut: bool = False, **fields: object) -> None:
    """Run a child script (``child``, formatted with ``fields``, the repository, the tests
    and ``data``), which must end killed (``power_cut``: every write it did not sync lost)."""
    script = child.format(
        prelude=POWER_CUT if power_cut else "",
        repo=str(REPO),
        tests=str(REPO / "tests"),
        data=str(data),
        **fields,
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()[-2000:]


def kill_mid_commit(
    tmp_path: Path,
    point: str,
    keep_writesets: bool,
    background: bool = False,
    checkpoint_every: int = 1,
    power_cut: bool = False,
) -> Path:
    """A child process commits BLOCKS - 1 blocks, then is killed at ``point`` of the next
    (``power_cut``: and every write it did not sync is lost)."""
    data = tmp_path / "data"
    run_killed(
        CHILD,
        data,
        power_cut,
        count=BLOCKS,
        point=point,
        keep=keep_writesets,
        background=background,
        every=checkpoint_every,
    )
    return data


def reference(count: int) -> tuple[list[bytes], DictSnapshot]:
    """Roots after each of the first ``count`` blocks (index 0: empty), and the state."""
    trie, model = TrieCommitter([]), DictSnapshot()
    roots = [trie.state_root]
    for writes, wiped in random_state_blocks(7, count):
        roots.append(trie.commit(writes, wiped, lambda h: b""))
        model.apply(writes, wiped)
    return roots, model


def test_blocks_commit_to_the_reference_roots(tmp_path):
    roots, model = reference(BLOCKS)
    committer = Committer(tmp_path / "data", levels=1, page_target=512)
    for number, (writes, wiped) in enumerate(random_state_blocks(7, BLOCKS), start=1):
        assert committer.commit(number, writes, wiped) == roots[number]
    assert committer.mark.number == BLOCKS and committer.mark.state_root == roots[BLOCKS]
    keys = sorted(model.data, key=repr)
    assert committer.ss.get_many(keys) == [model.data[k] for k in keys]
    committer.close()
    reopened = Committer(tmp_path / "data", levels=1, page_target=512)
    assert reopened.recovery == "consistent" and reopened.state_root == roots[BLOCKS]
    reopened.close()


def test_compacting_settles_both_stores_and_changes_nothing_read(tmp_path):
    """``compact`` (after a bulk load) leaves every column family's memtable empty and its
    files in the bottom level, and the same state and roots; commits go on after it."""
    roots, model = reference(BLOCKS)
    committer = Committer(tmp_path / "data", levels=1, page_target=512, write_buffer_bytes=1 << 16)
    blocks = random_state_blocks(7, BLOCKS)
    for number, (writes, wiped) in enumerate(blocks[:-1], start=1):
        committer.commit(number, writes, wiped)
    committer.compact()
    for store, families in ((committer.ss, ss_families), (committer.sc, sc_families)):
        for name in families:
            family = store._db.get_column_family(name)
            assert family.property_int_value("rocksdb.num-entries-active-mem-table") == 0
            files = [
                family.property_int_value(f"rocksdb.num-files-at-level{level}")
                for level in range(7)
            ]
            assert files[:6] == [0] * 6, (store.path, name, files)  # all in the bottom level
            family.close()
    keys = sorted(model.data, key=repr)
    writes, wiped = blocks[-1]
    assert committer.commit(BLOCKS, writes, wiped) == roots[BLOCKS]
    assert committer.ss.get_many(keys) == [model.data[k] for k in keys]
    committer.close()


def test_deleting_an_account_deletes_its_storage_and_a_slot_of_it_is_refused(tmp_path):
    """A write set that deletes an account without naming it among the wiped still wipes
    its storage (else SS would keep slots SC dropped, and give them back with the account);
    one that deletes an account and writes a slot of it is refused, nothing written."""
    a = b"\x05" * 20
    committer, reference = Committer(tmp_path / "data"), TrieCommitter([])
    blocks = [
        ({acct_key(a): AccountFields(1), slot_key(a, 1): 7}, set()),
        ({acct_key(a): None}, {a}),  # (the reference is told of the wipe; ours is not)
        ({acct_key(a): AccountFields(2)}, set()),
    ]
    for number, (writes, wiped) in enumerate(blocks, start=1):
        assert committer.commit(number, writes, ()) == reference.commit(writes, wiped, None)
    assert committer.ss.get(slot_key(a, 1)) is None
    root = committer.state_root
    with pytest.raises(StorageError, match=f"deletes account 0x{a.hex()} and writes its slot 0x2"):
        committer.commit(4, {acct_key(a): None, slot_key(a, 2): 1}, ())
    with pytest.raises(StorageError, match="deletes account"):
        committer.commit_steps(4, [({acct_key(a): None, slot_key(a, 2): 1}, ())], {}, ())
    assert committer.state_root == root and committer.mark.number == 3
    writes = {acct_key(a): AccountFields(3), slot_key(a, 2): 7}
    assert committer.commit(4, writes, ()) == reference.commit(writes, (), None)
    # deleted by one step and back in a later one: the block's writes delete nothing, yet
    # the slot it had before is gone (SC dropped it with the leaf at the step)
    steps = [({acct_key(a): None}, ()), ({acct_key(a): AccountFields(4), slot_key(a, 1): 5}, ())]
    block = {acct_key(a): AccountFields(4), slot_key(a, 1): 5}
    assert committer.commit_steps(5, steps, block, ())[-1] == reference.commit(block, {a}, None)
    assert committer.ss.get(slot_key(a, 2)) is None and committer.ss.get(slot_key(a, 1)) == 5
    committer.close()
    reopened = Committer(tmp_path / "data")
    writes = {slot_key(a, 3): 1}
    assert reopened.commit(6, writes, ()) == reference.commit(writes, (), None)
    reopened.close()


def test_write_sets_are_kept_back_to_the_last_checkpoint_by_default(tmp_path):
    """Recovery replays the write sets since SC's last checkpoint, so that is the default
    window (the kills below, with a checkpoint every 2 blocks, recover with exactly 2)."""
    committer = Committer(tmp_path / "data", levels=1, page_target=512, checkpoint_every=3)
    for number, (writes, wiped) in enumerate(random_state_blocks(7, 7), start=1):
        committer.commit(number, writes, wiped)
    assert [n for n in range(8) if committer.ss.writeset(n) is not None] == [5, 6, 7]
    committer.close()


def test_the_cyclic_collector_stays_off_a_commit_but_every_full_collect_every(
    tmp_path, monkeypatch
):
    """A block's commit runs with Python's cyclic collector off (its many new objects were
    scanned over and over as they aged: a third of a cold block) and freezes what it made
    uncollected (a collection found nothing, at a seventh of a commit): no collection runs
    in a commit but the full one every ``FULL_COLLECT_EVERY`` blocks, which reclaims a
    garbage cycle frozen meanwhile. The collector is on again after, and stays off if it
    was off."""
    monkeypatch.setattr(storage.committer, "FULL_COLLECT_EVERY", 3)
    collections: list[int] = []

    def started(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    committer = Committer(tmp_path / "data", levels=1, page_target=512)
    blocks = random_state_blocks(3, 4, 400)
    committer.commit(1, *blocks[0])  # (the collections so far: the committer's first is 2)
    gc.callbacks.append(started)
    try:
        cycle = Cycle()
        alive = weakref.ref(cycle)
        for number in (2, 3):
            collections.clear()
            committer.commit(number, *blocks[number - 1])
            if number == 2:
                del cycle  # (garbage now, frozen by the next commit)
                assert collections == [] and gc.isenabled()
        assert collections == [2]  # (block 3, the third commit: the full collection)
        assert alive() is None
        collections.clear()
        gc.disable()
        committer.commit(4, *blocks[3])
        assert not gc.isenabled() and collections == []
    finally:
        gc.enable()
        gc.callbacks.remove(started)
        committer.close()


@pytest.mark.parametrize("every", [1, 2], ids=["checkpoint-each", "checkpoint-every-2"])
@pytest.mark.parametrize("power_cut", [False, True], ids=["kill", "power-cut"])
@pytest.mark.parametrize("background", [False, True], ids=["in-place", "behind"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_mid_commit_recovers_to_the_last_block_both_hold(
    tmp_path, point, background, power_cut, every
):
    """``every`` 2: SC checkpoints blocks 1, 3 and 5 (its top pages of blocks 2 and 4 are
    held in memory, and their pages written without the write-ahead log), so recovery goes
    back to block 3 and replays the write sets since."""
    data = kill_mid_commit(
        tmp_path, point, True, background=background, power_cut=power_cut, checkpoint_every=every
    )
    committer = Committer(data)
    expected_block = BLOCKS if point == "after_ss" else BLOCKS - 1
    roots, model = reference(expected_block)
    assert committer.mark.number == expected_block
    assert committer.sc.last_committed().number == expected_block
    assert committer.sc.checkpoint == expected_block
    assert committer.state_root == roots[expected_block]
    expected = {
        "before_writes": "consistent",
        "after_sc": f"rolled SC back to block {BLOCKS - 1}",
        "after_ss": f"rolled SC forward to block {BLOCKS}",
    }[point]
    if every == 2:  # (SC wrote block 4 without its log: lost; block 5, a checkpoint, flushed)
        expected = f"rolled SC forward to block {expected_block}"
        if point == "after_sc":
            expected = f"rolled SC back to block 3, {expected}"
    assert committer.recovery == expected
    keys = sorted(model.data, key=repr)
    assert committer.ss.get_many(keys) == [model.data[k] for k in keys]
    for number in range(1, expected_block + 1):  # nothing of an earlier block lost
        assert committer.sc.root_at(number) == roots[number]
    writes, wiped = random_state_blocks(7, BLOCKS)[-1]  # and the chain goes on
    if expected_block < BLOCKS:
        assert committer.commit(BLOCKS, writes, wiped) == reference(BLOCKS)[0][BLOCKS]
    committer.close()


PAGED_CHILD = """
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
{prelude}
from support import paged_storage_blocks
from storage.committer import Committer
committer = Committer({data!r})
for number, (writes, wiped) in enumerate(paged_storage_blocks()[:3], start=1):
    committer.commit(number, writes, wiped, crash_at={point!r} if number == 3 else None)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("power_cut", [False, True], ids=["kill", "power-cut"])
@pytest.mark.parametrize("point", [None, "after_ss"], ids=["after-the-block", "after-ss"])
def test_a_paged_storage_trie_changed_since_the_checkpoint_recovers(tmp_path, point, power_cut):
    """Killed after block 3 (or between its SS and SC writes), SC's last checkpoint block 1:
    recovery replays blocks 2 and 3, which changed a paged storage trie. The replay reads
    the account's record from State Storage, whose storage root is block 3's, while the
    storage pages are block 1's: the trie is taken from its pages, not from that root."""
    run_killed(PAGED_CHILD, tmp_path / "data", power_cut, point=point)
    blocks = paged_storage_blocks()
    trie = TrieCommitter([])
    roots = [trie.commit(writes, wiped, lambda h: b"") for writes, wiped in blocks]
    committer = Committer(tmp_path / "data")
    assert committer.recovery.endswith("rolled SC forward to block 3")
    assert committer.state_root == roots[2]
    assert committer.commit(4, *blocks[3]) == roots[3]  # and the chain goes on
    committer.close()


UNLOGGED_CHILD = """
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from support import random_state_blocks
from storage.committer import Committer
committer = Committer({data!r}, checkpoint_every=4)
for number, (writes, wiped) in enumerate(random_state_blocks(7, 7), start=1):
    committer.commit(number, writes, wiped)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_after_seven_blocks(tmp_path: Path) -> Path:
    """A child commits 7 blocks, SC checkpointing blocks 1 and 5, and is killed after."""
    data = tmp_path / "data"
    run_killed(UNLOGGED_CHILD, data)
    return data


def test_sc_is_durable_at_its_checkpoints_and_recovery_replays_the_blocks_since(tmp_path):
    """SC writes the blocks between checkpoints without RocksDB's write-ahead log: a kill
    (no power cut) loses blocks 6 and 7 of SC, not of SS; SC is found at its checkpoint,
    block 5, and recovery replays 6 and 7 and records block 6's root again (from SS's write
    set record), its proofs gone with its top pages, as for any block between checkpoints."""
    data = killed_after_seven_blocks(tmp_path)
    roots, model = reference(7)
    committer = Committer(data, checkpoint_every=4)
    assert committer.recovery == "rolled SC forward to block 7"  # (nothing to roll back)
    assert committer.state_root == roots[7]
    assert [committer.sc.root_at(n) for n in range(1, 8)] == roots[1:8]
    with pytest.raises(StorageError, match="held in memory only"):
        committer.sc.at(6)
    keys = sorted(model.data, key=repr)
    assert committer.ss.get_many(keys) == [model.data[k] for k in keys]
    writes, wiped = random_state_blocks(8, 1)[0]  # and the chain goes on
    trie = TrieCommitter([])
    for block_writes, block_wiped in random_state_blocks(7, 7):
        trie.commit(block_writes, block_wiped, lambda h: b"")
    assert committer.commit(8, writes, wiped) == trie.commit(writes, wiped, lambda h: b"")
    committer.close()


@pytest.mark.parametrize("fault", ["missing", "chained-before-the-checkpoint"])
def test_a_write_set_missing_between_the_checkpoint_and_ss_is_named(tmp_path, fault):
    """Recovery follows SS's write set records back from SS's block to SC's checkpoint (5):
    a record missing on the way, or one naming a block before the checkpoint as the block
    before it, is an error naming the block, never a replay short of a block."""
    data = killed_after_seven_blocks(tmp_path)
    ss = StateStorage(data / "ss")
    key = (6).to_bytes(8, "big")
    if fault == "missing":
        ss._cf["writeset"].delete(key)
        message = "keeps no write set of block 6"
    else:
        record = decode_writeset(ss._cf["writeset"][key])
        ss._cf["writeset"][key] = encode_writeset(2, record.state_root, {}, ())
        message = "write set of block 6 follows block 2, not one after SC's checkpoint 5"
    ss.close()
    with pytest.raises(StorageError, match=message):
        Committer(data, checkpoint_every=4)


BETWEEN_FLUSHES_CHILD = """
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import storage.sc
from support import random_state_blocks
from storage.committer import Committer
flush_all = storage.sc.flush_all
committer = Committer({data!r}, checkpoint_every=4, keep_versions=8)
def killed_between(db, families):
    if committer.sc.number == 8:  # (SC writing block 9, a checkpoint: 1, 5, 9)
        pages = db.get_column_family("pages")
        pages.flush()
        pages.close()
        os.kill(os.getpid(), signal.SIGKILL)  # (before meta's flush)
    flush_all(db, families)
storage.sc.flush_all = killed_between
for number, (writes, wiped) in enumerate(random_state_blocks(3, 9, 300), start=1):
    committer.commit(number, writes, wiped)
"""


def test_pages_left_by_a_kill_between_a_checkpoints_flushes_are_deleted(tmp_path):
    """Killed at checkpoint 9 between the flush of SC's pages and that of their records
    (RocksDB flushes one family at a time when asked): SC is found at block 5, with pages
    of versions 6 to 9 that nothing reaches and no block's garbage lists. Recovery is
    right, and the pages are deleted on open; pruning would never have."""
    data = tmp_path / "data"
    run_killed(BETWEEN_FLUSHES_CHILD, data)
    committer = Committer(data, checkpoint_every=4, keep_versions=8)
    assert committer.recovery == "rolled SC forward to block 9"
    blocks = random_state_blocks(3, 40, 300)
    trie = TrieCommitter([])
    roots = [trie.commit(writes, wiped, lambda h: b"") for writes, wiped in blocks]
    assert committer.state_root == roots[8]
    for number, (writes, wiped) in enumerate(blocks[9:], start=10):
        assert committer.commit(number, writes, wiped) == roots[number - 1]
    versions = {int.from_bytes(key[:8], "big") for key, _ in committer.sc._pages.items()}
    assert not versions & {6, 7, 8}  # (replayed as block 9; 31 blocks pruned since)
    committer.close()


FIRST_BLOCK_CHILD = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
{prelude}
from support import random_state_blocks
from storage.committer import Committer
committer = Committer({data!r}, keep_writesets={keep!r})
committer.commit(0, *random_state_blocks(7, 1)[0], crash_at={point!r})
"""


@pytest.mark.parametrize("keep", [True, False], ids=["write-sets", "validator"])
@pytest.mark.parametrize("power_cut", [False, True], ids=["kill", "power-cut"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_in_the_first_blocks_commit_recovers(tmp_path, point, power_cut, keep):
    """The first block (a genesis) killed between the stores' writes: SS's done, SC is built
    from SS's write set (no checkpoint to start from); SC's done alone (SS holds no block),
    SC is emptied and the block can be committed again. Either way the store opens."""
    data = tmp_path / "data"
    run_killed(FIRST_BLOCK_CHILD, data, power_cut, keep=keep, point=point)
    writes, wiped = random_state_blocks(7, 1)[0]
    root = TrieCommitter([]).commit(writes, wiped, lambda h: b"")
    committer = Committer(data, keep_writesets=keep)
    # (without write sets SC is written first: SS's write done means SC's is too)
    ss_done = point == "after_ss"
    sc_done = point == "after_sc" or (ss_done and not keep)
    expected = {
        (False, False): "empty",
        (False, True): "emptied SC: SS holds no block, SC block 0 alone",
        (True, False): "rolled SC forward to block 0",
        (True, True): "consistent",
    }[ss_done, sc_done]
    assert committer.recovery == expected
    if ss_done:
        assert committer.mark.number == 0 and committer.state_root == root
    else:
        assert committer.mark is None
        assert committer.load_genesis(writes.items()) == root
    assert committer.sc.last_committed() == committer.mark
    committer.close()


def test_ss_ahead_without_write_sets_is_refused(tmp_path):
    data = tmp_path / "data"
    committer = Committer(data, keep_writesets=False)
    writes, wiped = random_state_blocks(7, 1)[0]
    records, root = committer.sc.update(writes, wiped)
    committer.ss.write_block(CommitMark(1, root), writes, wiped, records)  # SC never was
    committer.close()
    with pytest.raises(StorageError, match="keeps no write sets"):
        Committer(data, keep_writesets=False)


@pytest.mark.parametrize("power_cut", [False, True], ids=["kill", "power-cut"])
@pytest.mark.parametrize("point", ["after_sc", "after_ss"])
def test_without_write_sets_sc_goes_first_so_a_kill_still_recovers(tmp_path, point, power_cut):
    data = kill_mid_commit(tmp_path, point, keep_writesets=False, power_cut=power_cut)
    committer = Committer(data, keep_writesets=False)
    expected_block = BLOCKS if point == "after_ss" else BLOCKS - 1
    assert committer.mark.number == committer.sc.last_committed().number == expected_block
    assert committer.state_root == reference(expected_block)[0][expected_block]
    committer.close()


def test_fewer_than_two_versions_are_refused(tmp_path):
    """Recovery may roll SC back one block: the version before the last must be kept."""
    with pytest.raises(ValueError, match="keep_versions must be at least 2"):
        Committer(tmp_path / "data", keep_versions=1)
