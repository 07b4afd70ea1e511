"""``evmpp blocktest``: Ethereum's BlockchainTests through the parallel pipeline on the CU
workers, the small-block fallback off.

``make test`` runs a sample of every fixture folder (the smallest files of each); the whole
suite is ``-m slow``. Tests this runner skips are listed here with their reason.
"""

import json
from collections import Counter
from pathlib import Path

import pytest

from chain import FIXTURE_NETWORKS
from cli.blocktest import expand_paths
from cli.main import main
from compute_unit.worker import ComputeUnit
from coordinator.blocktest import FixtureRunner, fixture_spec

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "ethereum-tests" / "BlockchainTests"
FOLDERS = sorted({path.parent for path in FIXTURES.rglob("*.json")})
PER_FOLDER = 2
# Folders whose smallest files still run long (loops of millions of gas): one file of each.
SAMPLE_SIZE = {"ValidBlocks/bcExploitTest": 1}

# Files the runner skips, with the reason (none: every network here is supported, side chains
# and reorganisations included).
SKIPPED: dict[str, str] = {}


def sample(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_size, p.name))
    size = SAMPLE_SIZE.get(rel(folder), PER_FOLDER)
    return [f for f in files if rel(f) not in SKIPPED][:size]


def rel(path: Path) -> str:
    return str(path.relative_to(FIXTURES))


@pytest.fixture(scope="module")
def runner(ray_cluster):
    cu = DispatchCounter(ComputeUnit(2, name="cu-blocktest-tests"))
    yield FixtureRunner(cu, policy=None)
    cu.shutdown()


class DispatchCounter:
    """The CU, counting the blocks dispatched to its workers (and the transactions)."""

    def __init__(self, cu: ComputeUnit) -> None:
        self.cu, self.blocks, self.txs = cu, 0, 0

    def execute(self, env, state, groups, raw, *args, **kwargs):
        self.blocks += 1
        self.txs += len(raw)
        return self.cu.execute(env, state, groups, raw, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cu, name)


def test_every_fixture_network_has_a_spec():
    networks = {
        test["network"]
        for path in FIXTURES.rglob("*.json")
        for test in json.loads(path.read_text()).values()
    }
    assert networks <= set(FIXTURE_NETWORKS)
    assert fixture_spec("Cancun").vm_class_at(1, 1).fork == "cancun"
    assert fixture_spec("BerlinToLondonAt5").vm_class_at(5, 0).fork == "london"
    assert fixture_spec("Prague") is None


@pytest.mark.parametrize("folder", FOLDERS, ids=[rel(f) for f in FOLDERS])
def test_a_sample_of_every_folder_passes_on_the_workers(folder, runner):
    files = sample(folder)
    cu = runner.cu
    for path in files:
        for name, test in json.loads(path.read_text()).items():
            before = cu.txs
            result = runner.run_test(str(path), name, test)
            assert result.status == "passed", (rel(path), result.name, result.reason)
            assert result.fallback_blocks == 0
            # every transaction of an accepted block reached the workers
            assert cu.txs - before == result.parallel_txs, (rel(path), result.name)


def test_invalid_blocks_are_refused_with_their_reason(runner):
    path = FIXTURES / "InvalidBlocks/bcStateTests/TransactionNonceCheck.json"
    (result,) = runner.run_file(path)
    assert result.status == "passed" and result.refused
    assert all("(" in refusal and ":" in refusal for refusal in result.refused)
    dao = FIXTURES / "TransitionTests/bcHomesteadToDao/DaoTransactions_UncleExtradata.json"
    (result,) = runner.run_file(dao)
    assert result.status == "passed"
    assert result.refused[0] == (
        "block 4 (BlockException.EXTRA_DATA_INVALID_DAO): header: Block #5 must have extra "
        "data 0x64616f2d686172642d666f726b not 0x43 when supporting DAO fork"
    )
    assert any("uncle: Block #5 must have extra data" in r for r in result.refused)


def test_a_wrong_post_state_fails(runner, tmp_path):
    path = FIXTURES / "ValidBlocks/bcExample/shanghaiExample.json"
    data = json.loads(path.read_text())
    (test,) = data.values()
    address = next(iter(test["postState"]))
    test["postState"][address]["balance"] = "0x01"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    (result,) = runner.run_file(tampered)
    assert result.status == "failed" and "postState" in result.reason
    test["lastblockhash"] = "0x" + "00" * 32
    tampered.write_text(json.dumps(data))
    assert "lastblockhash" in runner.run_file(tampered)[0].reason


def test_blocktest_command_lines_summary_json_and_exit_status(ray_cluster, tmp_path, capsys):
    good = FIXTURES / "ValidBlocks/bcExample/shanghaiExample.json"
    prague = json.loads(good.read_text())
    next(iter(prague.values()))["network"] = "Prague"
    skipped = tmp_path / "prague.json"
    skipped.write_text(json.dumps(prague))
    out = tmp_path / "blocktest.json"
    assert main(["blocktest", str(good), str(skipped), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"ok   {good}" in printed and f"SKIP {skipped}" in printed
    why = "network 'Prague' is not supported"
    assert f"1 passed, 0 failed, 1 skipped (1: {why})" in printed
    data = json.loads(out.read_text())
    assert data["summary"] == {"passed": 1, "skipped": 1}
    ran = next(test for test in data["tests"] if test["status"] == "passed")
    assert {"plan", "execute", "validate", "commit"} <= ran["profile"].keys()  # where it went
    broken = json.loads(good.read_text())
    next(iter(broken.values()))["blocks"][0]["expectException"] = "made up"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    assert main(["blocktest", str(bad)]) == 1
    printed = capsys.readouterr().out
    assert "FAIL" in printed and "accepted, expected made up" in printed
    assert "0 passed, 1 failed" in printed


def test_side_chains_and_reorganisations(runner):
    """Blocks that build on a block other than the tip rebuild the chains along its path;
    the heaviest chain is the head before the merge."""
    for name in (
        "TransitionTests/bcFrontierToHomestead/blockChainFrontierWithLargerTDvsHomesteadBlockchain.json",
        "InvalidBlocks/bcMultiChainTest/UncleFromSideChain.json",
    ):
        (result,) = runner.run_file(FIXTURES / name)
        assert result.status == "passed", result.reason


@pytest.mark.slow
def test_every_fixture_passes_or_is_listed_as_skipped(runner):
    counts: Counter = Counter()
    skipped = {}
    for path in expand_paths([str(FIXTURES)]):
        for result in runner.run_file(path):
            counts[result.status] += 1
            assert result.status != "failed", (rel(path), result.name, result.reason)
            if result.status == "skipped":
                skipped[rel(path)] = result.reason
    assert skipped == SKIPPED
    assert counts == {"passed": 594}
