"""Stores left open are closed when the process exits; closing is done once, in order."""

import subprocess
import sys
import textwrap
from pathlib import Path

from coordinator.hints import HintTable
from storage import open_stores
from storage.committer import Committer
from storage.keys import code_key
from storage.ss import CommitMark, StateStorage

ROOT = Path(__file__).parent.parent


def test_stores_are_tracked_while_open_and_close_once(tmp_path):
    committer = Committer(tmp_path / "data")
    hints = HintTable(tmp_path / "hints")
    assert {committer.ss, committer.sc, hints} <= set(open_stores.still_open())
    committer.close()
    committer.close()  # a second close is a no-op, never a double free
    hints.close()
    left = set(open_stores.still_open())
    assert not {committer.ss, committer.sc, hints} & left


def test_a_process_that_exits_with_stores_open_closes_them(tmp_path):
    script = textwrap.dedent(
        f"""
        import gc
        from coordinator.hints import HintTable
        from storage.committer import Committer
        from storage.keys import code_key
        from storage.ss import CommitMark

        committer = Committer({str(tmp_path / "data")!r})
        writes = {{code_key(bytes(32)): b"\\1"}}
        committer.ss.write_block(CommitMark(1, bytes(32)), writes, (), {{}})
        table = HintTable({str(tmp_path / "hints")!r})
        table.entry(b"k").calls = 3
        cycle = [committer, table]
        cycle.append(cycle)  # only a collection could free these ...
        del committer, table, cycle
        gc.freeze()  # ... and the committer freezes such objects out of collections
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "could not close" not in done.stderr
    ss = StateStorage(tmp_path / "data" / "ss", read_only=True)
    assert ss.last_committed() == CommitMark(1, bytes(32))
    assert ss.get(code_key(bytes(32))) == b"\1"
    ss.close()
    table = HintTable(tmp_path / "hints")  # saved on close: HintTable.close saves first
    assert table.rebuilt is None and table.get(b"k").calls == 3
    table.close()
