"""``evmpp serve``'s chain and settings, without starting a node: --dev, --genesis FILE (and a
bad one: a clear error, no traceback), the operator's flags."""

import json

import pytest
from support import small_genesis

from bench.workload.genesis import chain_genesis
from chain import DEV_CHAIN_ID
from cli.main import build_parser
from cli.serve import chain_of, node_settings


def test_dev_is_the_chain_every_tool_knows():
    genesis = chain_of("dev")
    assert genesis.spec.chain_id == DEV_CHAIN_ID == 1337
    first = bytes.fromhex("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    assert genesis.alloc[first].balance == 10_000 * 10**18


def test_a_geth_genesis_file_is_read_as_written(tmp_path):
    written = chain_genesis(small_genesis())
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(written.to_geth_json()))
    args = build_parser().parse_args(["serve", "--genesis", str(path)])
    settings, source = node_settings(args)
    genesis = chain_of(source)
    assert genesis.spec.chain_id == written.spec.chain_id
    assert genesis.alloc == written.alloc and genesis.gas_limit == written.gas_limit
    assert settings.verify and not settings.allow_unprotected


@pytest.mark.parametrize(
    "text, where",
    [
        ("{", "genesis"),
        (
            '{"config": {"chainId": "x"}, "alloc": {}, "gasLimit": "0x1", "difficulty": "0x0"}',
            "chainId",
        ),
    ],
)
def test_a_bad_genesis_is_a_clear_error(tmp_path, text, where):
    path = tmp_path / "genesis.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match=where):
        chain_of(str(path))
    with pytest.raises(SystemExit, match="genesis"):
        chain_of(str(tmp_path / "missing.json"))


def test_operator_flags_reach_the_settings():
    args = build_parser().parse_args(
        ["serve", "--dev", "--no-verifier", "--allow-unprotected-txs", "--history-blocks", "16"]
    )
    settings, source = node_settings(args)
    assert source == "dev"
    assert not settings.verify and settings.allow_unprotected and settings.history_blocks == 16
    with pytest.raises(SystemExit):  # one chain or the other
        build_parser().parse_args(["serve", "--dev", "--genesis", "g.json"])
