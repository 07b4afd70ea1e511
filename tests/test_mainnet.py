"""Real Ethereum mainnet blocks, Frontier to Cancun, replayed sequentially and in parallel.

Every recorded block must reproduce its header's gasUsed, logsBloom and (from Byzantium)
receiptsRoot in both modes, and the parallel run must equal the sequential one.
"""

import dataclasses
import json
import shutil

import pytest

from bench.mainnet_blocks import mainnet_blocks_dir
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
    """Parallel here always means on the workers: the in-process fallback is switched off."""
    block = load_block_folder(folder)
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


def test_replay_exits_2_on_a_bad_folder(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nowhere")]) == 2
    assert "not a directory" in capsys.readouterr().err
