"""``evmpp run`` end to end on the embedded Ray, and its argument errors."""

import json

import pytest

from bench.workload.blocks import Mix
from cluster.cli import main


def test_run_prints_table_and_writes_json(ray_cluster, tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["run", "--blocks", "2", "--txs", "40", "--accounts", "60", "--json", str(out)]
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
        main(["run", "--txs", "0"])
