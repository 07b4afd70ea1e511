"""``evmpp run`` end to end on the embedded Ray, and its argument errors."""

import json

import pytest

from bench.compare import main
from bench.workload.blocks import Mix
from storage.committer import Committer
from storage.ss import StorageError


def test_run_prints_table_and_writes_json(ray_cluster, tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["--blocks", "2", "--txs", "40", "--accounts", "60", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "speedup" in printed and "re-exec" in printed
    data = json.loads(out.read_text())
    assert data["summary"]["all_roots_match"] is True
    assert [row["number"] for row in data["rows"]] == [1, 2]
    assert all(row["root_match"] and row["txs"] == 40 for row in data["rows"])


@pytest.mark.parametrize("text", ["swap", "dance=1", "erc20=-1", "erc20=0"])
def test_bad_mix_is_a_clear_error(text):
    with pytest.raises(ValueError, match="mix"):
        Mix.parse(text)


def test_nonpositive_counts_are_refused():
    with pytest.raises(SystemExit):
        main(["--txs", "0"])


def test_run_persists_every_block_in_the_data_dir(ray_cluster, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run.json"
    argv = ["--blocks", "2", "--txs", "30", "--accounts", "50", "--json", str(out)]
    assert main([*argv, "--data-dir", str(data)]) == 0
    rows = json.loads(out.read_text())["rows"]
    committer = Committer(data)
    assert committer.recovery == "consistent"
    assert committer.mark.number == 2
    assert "0x" + committer.state_root.hex() == rows[-1]["state_root"]
    assert committer.sc.root_at(1).hex() == rows[0]["state_root"][2:]
    committer.close()
    assert main([*argv, "--data-dir", str(data)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_run_with_pruning_and_without_write_sets(ray_cluster, tmp_path):
    data = tmp_path / "data"
    argv = ["--blocks", "3", "--txs", "20", "--accounts", "40", "--data-dir", str(data)]
    assert main([*argv, "--keep-versions", "2", "--no-writesets"]) == 0
    committer = Committer(data, keep_writesets=False)
    assert committer.mark.number == 3 and committer.ss.writeset(3) is None
    committer.sc.root_at(3)
    committer.sc.root_at(2)
    with pytest.raises(StorageError, match="no root kept for block 1"):
        committer.sc.root_at(1)
    committer.close()


def test_hints_persist_across_runs_and_no_hints_turns_them_off(ray_cluster, tmp_path):
    hints, out = tmp_path / "hints", tmp_path / "run.json"
    argv = ["--blocks", "2", "--txs", "40", "--accounts", "60", "--json", str(out)]
    assert main([*argv, "--hints", str(hints)]) == 0
    cold = json.loads(out.read_text())["rows"]
    assert cold[0]["recall"] < 0.5 and cold[0]["preload_hit_rate"] is not None
    assert main([*argv, "--hints", str(hints)]) == 0  # the same blocks, a warm table
    warm = json.loads(out.read_text())["rows"]
    assert warm[0]["recall"] > 0.95 and warm[0]["preload_hit_rate"] > 0.95
    assert main([*argv, "--no-hints"]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert all(r["recall"] is None and r["preload_hit_rate"] is None for r in rows)
    assert all(r["root_match"] for r in cold + warm + rows)
