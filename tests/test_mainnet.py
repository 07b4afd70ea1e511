"""Real Ethereum mainnet blocks, Frontier to Cancun, replayed sequentially and in parallel.

Every recorded block must reproduce its header's gasUsed, logsBloom and (from Byzantium)
receiptsRoot in both modes, and the parallel run must equal the sequential one.
"""

import dataclasses
import json
import shutil

import pytest

from bench.mainnet_blocks import mainnet_blocks_dir
from chain import chain_spec
from cli.main import main
from cli.replay import expand_folders, header_checks, replay_block
from compute_unit.sequential import SequentialChain
from compute_unit.worker import ComputeUnit
from coordinator.block_import import ExpectedHeader, load_block_folder

FOLDERS = expand_folders([str(mainnet_blocks_dir())])


@pytest.fixture(scope="module")
def cu(ray_cluster):
    unit = ComputeUnit(2, name="cu-mainnet")
    yield unit
    unit.shutdown()


def test_all_sixteen_blocks_are_there():
    assert len(FOLDERS) >= 16
    forks = {load_block_folder(folder).fork for folder in FOLDERS}
    assert {"Frontier", "Homestead", "Byzantium", "London", "Cancun"} <= forks


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_block_passes_every_check_in_both_modes(folder, cu):
    """Parallel here always means on the workers: the in-process fallback is switched off.
    The chain is named, as ``evmpp replay --chain mainnet`` names it."""
    block = load_block_folder(folder, chain_spec("mainnet"))
    row = replay_block(block, cu, policy=None)
    assert row.report.fallback is None and row.report.groups == min(
        2, len({tx.sender for tx in block.transactions})
    )
    assert not row.error, row.error
    assert row.checks["gasUsed"] and row.checks["logsBloom"], row.checks
    if block.receipts_root_checkable:
        assert row.checks["receiptsRoot"], row.checks
    else:
        assert row.checks["receiptsRoot"] is None
    assert row.checks["parallel==sequential"], row.report
    assert row.report.txs == len(block.transactions) > 0


def test_small_blocks_and_single_sender_chains_run_in_process(cu):
    small = replay_block(load_block_folder(mainnet_blocks_dir() / "930196"), cu)
    assert small.passed and "under" in small.report.fallback and small.report.groups == 1
    chain = replay_block(load_block_folder(mainnet_blocks_dir() / "11814555"), cu)
    assert chain.passed and "dependency chain" in chain.report.fallback


def test_header_checks_catch_a_wrong_result():
    block = load_block_folder(mainnet_blocks_dir() / "4370000")
    wrong = ExpectedHeader(block.expected.gas_used + 1, block.expected.bloom ^ 1, b"\0" * 32)
    tampered = dataclasses.replace(block, expected=wrong)
    result = SequentialChain(block.pre_state).execute(block.env, block.transactions)
    assert header_checks(block, result.receipts, result.gas_used) == {
        "gasUsed": True,
        "logsBloom": True,
        "receiptsRoot": True,
    }
    assert header_checks(tampered, result.receipts, result.gas_used) == {
        "gasUsed": False,
        "logsBloom": False,
        "receiptsRoot": False,
    }


def test_replay_command_prints_rows_and_writes_json(ray_cluster, tmp_path, capsys):
    folders = [str(mainnet_blocks_dir() / n) for n in ("46147", "2675000")]
    out = tmp_path / "replay.json"
    assert main(["replay", *folders, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SpuriousDragon" in printed and "2/2 blocks pass" in printed
    data = json.loads(out.read_text())
    assert data["summary"]["all_checks_pass"] is True
    assert [row["block"] for row in data["rows"]] == [46147, 2675000]


def test_replay_exits_nonzero_on_an_invalid_block(ray_cluster, tmp_path, capsys):
    folder = tmp_path / "930196"
    shutil.copytree(mainnet_blocks_dir() / "930196", folder)
    state = json.loads((folder / "pre_state.json").read_text())
    block = json.loads((folder / "block.json").read_text())
    sender = block["transactions"][0]["from"]
    state[sender]["basic"]["balance"] = "0x1"  # cannot pay for its gas
    (folder / "pre_state.json").write_text(json.dumps(state))
    assert main(["replay", str(folder)]) == 1
    printed = capsys.readouterr().out
    assert "invalid block" in printed and "0/1 blocks pass" in printed


def test_a_missing_folder_is_a_failed_row(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nowhere")]) == 1
    printed = capsys.readouterr().out
    assert "nowhere -               ERROR import failed:" in printed
    assert "not a directory" in printed and "0/1 blocks pass" in printed


def test_an_unknown_chain_exits_2(capsys):
    assert main(["replay", str(mainnet_blocks_dir() / "46147"), "--chain", "mainet"]) == 2
    err = capsys.readouterr().err
    assert "--chain: chain 'mainet': not a known chain nor a file" in err and "sepolia" in err


def _broken_folders(tmp_path):
    """Three folders that cannot import: bad JSON, a header off its fork, no pre-state."""
    bad_json = tmp_path / "bad-json"
    shutil.copytree(mainnet_blocks_dir() / "46147", bad_json)
    (bad_json / "block.json").write_text('{"number": ')
    wrong_fork = tmp_path / "wrong-fork"
    shutil.copytree(mainnet_blocks_dir() / "13287210", wrong_fork)
    block = json.loads((wrong_fork / "block.json").read_text())
    del block["baseFeePerGas"]
    (wrong_fork / "block.json").write_text(json.dumps(block))
    no_state = tmp_path / "no-state"
    shutil.copytree(mainnet_blocks_dir() / "930196", no_state)
    (no_state / "pre_state.json").unlink()
    return [bad_json, wrong_fork, no_state]


def test_replay_keeps_going_past_folders_that_do_not_import(ray_cluster, tmp_path, capsys):
    good = [str(mainnet_blocks_dir() / n) for n in ("46147", "2675000")]
    bad_json, wrong_fork, no_state = (str(p) for p in _broken_folders(tmp_path))
    out = tmp_path / "replay.json"
    args = [good[0], bad_json, wrong_fork, no_state, good[1], "--chain", "mainnet"]
    assert main(["replay", *args, "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "bad-json/block.json: line 1: not valid JSON" in printed
    assert "block 13287210 (hash 0x" in printed
    assert "does not fit London: it has no baseFeePerGas" in printed
    assert "no-state/pre_state.json: file is missing" in printed
    assert "2/5 blocks pass every check on 2 workers (3 did not import)" in printed
    rows = json.loads(out.read_text())["rows"]
    assert [(r["block"], r["fork"], r["passed"]) for r in rows] == [
        (46147, "Frontier", True),
        (None, "", False),
        (None, "London", False),
        (None, "", False),
        (2675000, "SpuriousDragon", True),
    ]
    assert json.loads(out.read_text())["summary"]["import_failed"] == 3


@pytest.mark.slow
def test_replay_of_every_mainnet_block_and_a_broken_folder(ray_cluster, tmp_path, capsys):
    broken = _broken_folders(tmp_path)[1]
    args = [str(mainnet_blocks_dir()), str(broken), "--chain", "mainnet"]
    assert main(["replay", *args]) == 1
    printed = capsys.readouterr().out
    assert "does not fit London: it has no baseFeePerGas" in printed
    assert f"{len(FOLDERS)}/{len(FOLDERS) + 1} blocks pass" in printed


HEAVY = {"17666333", "19932703", "14029313"}  # about 19 s of the 40 by Block-STM: ``slow``
STM_FOLDERS = [
    pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.name in HEAVY else []) for f in FOLDERS
]


@pytest.mark.parametrize("folder", STM_FOLDERS)
def test_block_passes_every_check_by_block_stm_on_the_workers(folder, cu):
    """The same blocks by Block-STM: the workers validate and re-execute; the coordinator's
    final pass must find nothing to redo."""
    block = load_block_folder(folder, chain_spec("mainnet"))
    row = replay_block(block, cu, policy=None, stm=True)
    assert not row.error, row.error
    assert row.passed and row.checks["parallel==sequential"], (row.checks, row.report)
    assert row.report.serial_reexecutions == 0 and row.report.stm_aborts is not None


def test_replay_plans_and_preloads_from_hints_that_learn_across_blocks(ray_cluster, tmp_path):
    """``--hints DIR``: every row has the predictions' precision and recall and the preload
    hit rate; the table persists, and a second run over the same blocks predicts from it."""
    folders = [str(mainnet_blocks_dir() / n) for n in ("4370000", "8038679")]
    hints = tmp_path / "hints"
    runs = []
    for name in ("first", "second"):
        out = tmp_path / f"{name}.json"
        args = ["replay", *folders, "--hints", str(hints), "--always-parallel", "--stm"]
        assert main([*args, "--json", str(out)]) == 0
        runs.append(json.loads(out.read_text()))
    for data in runs:
        assert data["summary"]["all_checks_pass"] is True
        for row in data["rows"]:
            assert row["fallback"] is None
            assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
            assert 0 <= row["preload_hit_rate"] <= 1
    assert any(hints.iterdir())
    first, second = ([row["recall"] for row in data["rows"]] for data in runs)
    # the first block of the first run has static predictions only (senders, recipients);
    # in the second, the table predicts what the first run taught it
    assert second[0] > first[0], (first, second)
