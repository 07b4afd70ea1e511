"""Block folder import: faithful rebuild of headers and transactions, clear errors otherwise."""

import json
import shutil

import pytest

from bench.mainnet_blocks import mainnet_blocks_dir
from cli.replay import expand_folders
from coordinator.block_import import BlockFolderError, load_block_folder, mainnet_vm_for


def copy_block(tmp_path, number: str):
    folder = tmp_path / number
    shutil.copytree(mainnet_blocks_dir() / number, folder)
    return folder


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_forks_follow_the_mainnet_schedule():
    names = {n: mainnet_vm_for(n).fork for n in (0, 1_150_000, 4_370_000, 15_537_394)}
    assert names == {
        0: "frontier",
        1_150_000: "homestead",
        4_370_000: "byzantium",
        15_537_394: "paris",
    }


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
        ("block.json", lambda b: b.update(timestamp=hex(int(b["timestamp"], 16) + 1)), "hash"),
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
