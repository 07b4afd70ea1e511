"""Block folder import: faithful rebuild of headers and transactions, clear errors otherwise."""

import json
import shutil

import pytest

from bench.mainnet_blocks import mainnet_blocks_dir
from chain import FIXTURE_NETWORKS, MAINNET, SEPOLIA
from cli.replay import expand_folders
from coordinator.block_import import (
    BlockFolderError,
    HeaderForkError,
    folder_chain_spec,
    load_block_folder,
)


def copy_block(tmp_path, number: str):
    folder = tmp_path / number
    shutil.copytree(mainnet_blocks_dir() / number, folder)
    return folder


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_forks_follow_the_chain_spec():
    folders = ("46147", "1150000", "4370000", "15537394", "19426587")
    names = {n: load_block_folder(mainnet_blocks_dir() / n).fork for n in folders}
    assert names == {
        "46147": "Frontier",
        "1150000": "Homestead",
        "4370000": "Byzantium",
        "15537394": "Paris",  # the merge by total difficulty: difficulty 0 places it
        "19426587": "Cancun",
    }
    explicit = load_block_folder(mainnet_blocks_dir() / "19426587", MAINNET)
    assert explicit.env.chain_id == 1 and explicit.fork == "Cancun"


@pytest.mark.parametrize(
    ("number", "change", "fork", "problem"),
    [
        ("12244000", lambda b: b.update(baseFeePerGas="0x7"), "Berlin", "it has baseFeePerGas"),
        ("13287210", lambda b: b.pop("baseFeePerGas"), "London", "it has no baseFeePerGas"),
        ("15537394", lambda b: b.update(withdrawalsRoot="0x" + "11" * 32), "Paris", "it has w"),
        ("17666333", lambda b: b.update(blobGasUsed="0x0"), "Shanghai", "it has blobGasUsed"),
        ("17666333", lambda b: b.update(difficulty="0x1"), "Shanghai", "difficulty 1;"),
        ("2179522", lambda b: b.update(extraData="0x"), "Homestead", "the header rebuilt"),
    ],
)
def test_a_header_that_does_not_fit_its_fork_is_refused(tmp_path, number, change, fork, problem):
    folder = copy_block(tmp_path, number)
    edit(folder / "block.json", change)
    with pytest.raises(HeaderForkError) as err:
        load_block_folder(folder)
    assert err.value.fork == fork
    assert f"block.json: block {number} (hash 0x" in str(err.value)
    assert f") does not fit {fork}: {problem}" in str(err.value)


def test_a_block_of_another_chain_is_refused_not_run_under_its_rules():
    # a mainnet Cancun block on a chain that never reaches Cancun
    with pytest.raises(HeaderForkError, match="does not fit Shanghai: it has blobGasUsed"):
        load_block_folder(mainnet_blocks_dir() / "19426587", FIXTURE_NETWORKS["Shanghai"])
    # a Frontier block read as London-from-genesis Sepolia
    with pytest.raises(HeaderForkError, match="does not fit London: it has no baseFeePerGas"):
        load_block_folder(mainnet_blocks_dir() / "46147", SEPOLIA)


def test_chain_json_beside_a_folder_wins_over_the_callers_chain(tmp_path):
    folder = copy_block(tmp_path, "46147")
    assert folder_chain_spec(folder, SEPOLIA) is SEPOLIA
    (tmp_path / "chain.json").write_text(json.dumps({"chain": "mainnet"}))
    assert folder_chain_spec(folder, SEPOLIA) is MAINNET
    assert load_block_folder(folder, SEPOLIA).fork == "Frontier"
    # the folder's own chain.json is nearer than its parent's (a Frontier header fits
    # Homestead: before London only the chain, never the header, tells them apart)
    (folder / "chain.json").write_text(json.dumps({"chain": "Homestead"}))
    assert load_block_folder(folder, SEPOLIA).fork == "Homestead"


def test_a_bad_chain_json_is_named(tmp_path):
    folder = copy_block(tmp_path, "46147")
    (folder / "chain.json").write_text(json.dumps({"chain": "Mainnet"}))
    with pytest.raises(BlockFolderError, match="chain.json: chain 'Mainnet' is not a known"):
        load_block_folder(folder)
    (folder / "chain.json").write_text(json.dumps({"config": {"homesteadBlock": 0}}))
    with pytest.raises(BlockFolderError, match="chain.json: config.chainId: missing"):
        load_block_folder(folder)
    (folder / "chain.json").write_text("[")
    with pytest.raises(BlockFolderError, match="chain.json: line 1: not valid JSON"):
        load_block_folder(folder)


def test_blob_block_rebuilds_every_transaction_type():
    block = load_block_folder(mainnet_blocks_dir() / "19932703")
    assert block.fork == "Cancun"
    assert {tx.type_id for tx in block.transactions if hasattr(tx, "type_id")} >= {2, 3}
    blob = next(tx for tx in block.transactions if getattr(tx, "type_id", None) == 3)
    assert len(blob.blob_versioned_hashes) == 6
    assert block.env.header.parent_beacon_block_root is not None
    assert block.env.prev_hashes[0] == block.env.header.parent_hash


def test_recorded_ancestor_hashes_reach_blockhash():
    block = load_block_folder(mainnet_blocks_dir() / "14029313")
    recorded = json.loads((mainnet_blocks_dir() / "14029313" / "block_hashes.json").read_text())
    for number, block_hash in recorded.items():
        depth = block.number - 1 - int(number)
        assert block.env.prev_hashes[depth] == bytes.fromhex(block_hash[2:])


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("block.json", lambda b: b["transactions"][3].update(r="zz"), "transactions.3.r"),
        ("block.json", lambda b: b.pop("gasLimit"), "gasLimit"),
        (
            "block.json",
            lambda b: b.update(timestamp=hex(int(b["timestamp"], 16) + 1)),
            "block 930196 .* does not fit Frontier: the header rebuilt",
        ),
        ("block.json", lambda b: b["transactions"][0].update(value="0x1"), "transactions.0.hash"),
        ("block.json", lambda b: b["transactions"][0].update(type="0x7"), "transactions.0"),
        ("block.json", lambda b: b["transactions"][0].update(to="0x1234"), "transactions.0.to"),
        ("pre_state.json", lambda s: s.update({"0xzz": s.popitem()[1]}), "0xzz"),
    ],
)
def test_malformed_fields_are_named(tmp_path, name, change, message):
    folder = copy_block(tmp_path, "930196")
    edit(folder / name, change)
    with pytest.raises(BlockFolderError, match=f"{name}: {message}"):
        load_block_folder(folder)


def test_code_must_match_its_hash(tmp_path):
    folder = copy_block(tmp_path, "2675000")

    def corrupt(state):
        account = next(a for a in state.values() if a["code"])
        account["code"]["bytecode"] = "0x00" + account["code"]["bytecode"][4:]

    edit(folder / "pre_state.json", corrupt)
    with pytest.raises(BlockFolderError, match=r"pre_state.json: 0x[0-9a-f]{40}.code_hash"):
        load_block_folder(folder)


@pytest.mark.parametrize("name", ["block.json", "pre_state.json"])
def test_missing_files_are_named(tmp_path, name):
    folder = copy_block(tmp_path, "46147")
    (folder / name).unlink()
    with pytest.raises(BlockFolderError, match=f"{name}: file is missing"):
        load_block_folder(folder)


def test_invalid_json_is_named(tmp_path):
    folder = copy_block(tmp_path, "46147")
    (folder / "block.json").write_text('{"number": ')
    with pytest.raises(BlockFolderError, match="block.json: line 1: not valid JSON"):
        load_block_folder(folder)


def test_a_directory_without_blocks_is_refused(tmp_path):
    with pytest.raises(BlockFolderError, match="no block folders"):
        expand_folders([str(tmp_path)])


def test_bad_ancestor_hashes_are_named(tmp_path):
    folder = copy_block(tmp_path, "46147")
    (folder / "block_hashes.json").write_text(json.dumps({"46146": "0x1234"}))
    with pytest.raises(BlockFolderError, match="block_hashes.json: 46146: .*32 bytes"):
        load_block_folder(folder)
    (folder / "block_hashes.json").write_text(json.dumps({"latest": "0x" + "ab" * 32}))
    with pytest.raises(BlockFolderError, match="block_hashes.json: latest: expected a decimal"):
        load_block_folder(folder)
