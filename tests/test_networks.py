"""Named chains (mainnet, sepolia, holesky, the fixture networks) and the header fork fit."""

import json
from pathlib import Path

import pytest
from eth.chains.mainnet import MAINNET_VM_CONFIGURATION
from eth.tools.fixtures.helpers import chain_vm_configuration
from test_chain import MAINNET_CONFIG

from bench.mainnet_blocks import REPO
from chain import (
    FIXTURE_NETWORKS,
    HOLESKY,
    MAINNET,
    SEPOLIA,
    ChainSpec,
    ChainSpecError,
    ForkMismatch,
    HeaderShape,
    chain_spec,
    fork_for_header,
)

BLOCKCHAIN_TESTS = REPO.parent / "shared" / "ethereum-tests" / "BlockchainTests"
TRANSITION_FILES = sorted((BLOCKCHAIN_TESTS / "TransitionTests").rglob("*.json"))


def test_mainnet_is_geths_config():
    assert ChainSpec.from_geth_config(MAINNET_CONFIG) == MAINNET
    assert chain_spec("mainnet") is MAINNET


def test_public_testnets():
    assert (SEPOLIA.chain_id, HOLESKY.chain_id) == (11155111, 17000)
    assert SEPOLIA.fork_name_at(0, 1633267481) == "london"  # before the merge by TD
    assert SEPOLIA.fork_name_at(1_735_371, 1661130000) == "paris"  # the netsplit block
    assert SEPOLIA.fork_name_at(3_000_000, 1_677_557_088) == "shanghai"
    assert SEPOLIA.fork_name_at(6_000_000, 1_741_159_776) == "prague"
    assert HOLESKY.fork_name_at(0, 1695902100) == "paris"  # merged from genesis
    assert HOLESKY.fork_name_at(1, 1_707_305_664) == "cancun"
    assert chain_spec("holesky") is HOLESKY and chain_spec("sepolia") is SEPOLIA


def test_every_fixture_network_is_known():
    names = set()
    for path in BLOCKCHAIN_TESTS.rglob("*.json"):
        names |= {test["network"] for test in json.loads(path.read_text()).values()}
    assert len(names) >= 9, names
    assert names <= set(FIXTURE_NETWORKS), names - set(FIXTURE_NETWORKS)
    assert all(FIXTURE_NETWORKS[name].chain_id == 1 for name in names)


# py-evm's runner places a timestamp transition by block index off normalised fixtures;
# the rule itself is plain: the later fork from timestamp 15,000
TIME_TRANSITIONS = {"ParisToShanghaiAtTime15k": ("paris", "shanghai")}


@pytest.mark.parametrize("path", TRANSITION_FILES, ids=[p.stem for p in TRANSITION_FILES])
def test_transition_fixtures_get_py_evms_forks(path):
    """Every header of every transition fixture fits the fork our spec gives it, and that is
    the fork py-evm's own fixture runner uses (its table of the same network names)."""
    for name, test in json.loads(path.read_text()).items():
        network = test["network"]
        spec = FIXTURE_NETWORKS[network]
        schedule = [] if network in TIME_TRANSITIONS else list(chain_vm_configuration(test))
        for block in test["blocks"]:
            if "blockHeader" not in block:
                continue  # an invalid block that does not decode; nothing to place
            shape = _shape(block["blockHeader"])
            vm_class = fork_for_header(spec, shape)
            if network in TIME_TRANSITIONS:
                assert vm_class.fork == TIME_TRANSITIONS[network][shape.timestamp >= 15_000]
                continue
            theirs = [vm for first, vm in schedule if shape.number >= first][-1]
            assert vm_class.fork == theirs.fork, (name, shape.number)
            assert getattr(vm_class, "support_dao_fork", None) == getattr(
                theirs, "support_dao_fork", None
            )


def _shape(header: dict) -> HeaderShape:
    fork_fields = ("baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas")
    present = {f for f in (*fork_fields, "parentBeaconBlockRoot", "requestsHash") if f in header}
    return HeaderShape(
        number=int(header["number"], 16),
        timestamp=int(header["timestamp"], 16),
        difficulty=int(header["difficulty"], 16),
        extra_data=bytes.fromhex(header["extraData"][2:]),
        present=frozenset(present),
    )


def test_mainnet_forks_follow_py_evm():
    before_paris = [(n, vm) for n, vm in MAINNET_VM_CONFIGURATION if n < 15_537_394]
    for number, vm in before_paris:
        shape = HeaderShape(number, 0, 1, b"dao-hard-fork", _fields_of(vm))
        assert fork_for_header(MAINNET, shape).fork == vm.fork


def _fields_of(vm) -> frozenset[str]:
    return frozenset(
        {"baseFeePerGas"} if vm.fork in ("london", "arrow-glacier", "gray-glacier") else ()
    )


LONDON = 12_965_000


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        # a base fee before London
        (
            HeaderShape(LONDON - 1, 0, 1, b"", frozenset({"baseFeePerGas"})),
            "Berlin: it has baseFee",
        ),
        # none from London
        (HeaderShape(LONDON, 0, 1, b"", frozenset()), "London: it has no baseFeePerGas"),
        # a withdrawals root before Shanghai (a merged header, so the merge is not the issue)
        (
            HeaderShape(
                17_000_000, 1_681_338_454, 0, b"", frozenset({"baseFeePerGas", "withdrawalsRoot"})
            ),
            "Paris: it has withdrawalsRoot, which headers have from Shanghai on",
        ),
        # blob fields before Cancun
        (
            HeaderShape(
                19_000_000,
                1_710_338_134,
                0,
                b"",
                frozenset({"baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas"}),
            ),
            "Shanghai: it has blobGasUsed",
        ),
        # a proof-of-work difficulty after Shanghai
        (
            HeaderShape(
                17_100_000, 1_681_338_455, 5, b"", frozenset({"baseFeePerGas", "withdrawalsRoot"})
            ),
            "Shanghai: difficulty 5",
        ),
        # the DAO fork's extra data missing in its ten blocks
        (
            HeaderShape(1_920_003, 0, 1, b"", frozenset()),
            "Homestead \\(DAO fork at block 1920000\\)",
        ),
    ],
)
def test_a_header_that_does_not_fit_its_fork_is_refused(shape, message):
    with pytest.raises(ForkMismatch, match=f"does not fit {message}"):
        fork_for_header(MAINNET, shape)


def test_a_proof_of_stake_header_before_the_merge_is_refused():
    shape = HeaderShape(5, 0, 0, b"", frozenset({"baseFeePerGas"}))
    with pytest.raises(ForkMismatch, match="does not fit London: difficulty 0"):
        fork_for_header(FIXTURE_NETWORKS["BerlinToLondonAt5"], shape)
    # where only the total difficulty places the merge, the header's difficulty does
    arrow = FIXTURE_NETWORKS["ArrowGlacierToParisAtDiffC0000"]
    assert fork_for_header(arrow, shape).fork == "paris"
    assert fork_for_header(arrow, HeaderShape(5, 0, 1, b"", shape.present)).fork == "gray-glacier"


def test_chain_spec_from_a_file(tmp_path: Path):
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps({"config": {**MAINNET_CONFIG, "chainId": 7}, "alloc": {}}))
    assert chain_spec(genesis) == ChainSpec.from_geth_config({**MAINNET_CONFIG, "chainId": 7})
    bare = tmp_path / "config.json"
    bare.write_text(json.dumps({"chainId": 9, "homesteadBlock": 0}))
    assert chain_spec(str(bare)).vm_class_at(0, 0).fork == "homestead"
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"chain": "Cancun"}))
    assert chain_spec(named) is FIXTURE_NETWORKS["Cancun"]


def test_bad_chain_names_and_files_are_clear(tmp_path: Path):
    with pytest.raises(ChainSpecError, match="'mainet': not a known chain nor a file; known"):
        chain_spec("mainet")
    with pytest.raises(ChainSpecError) as err:
        chain_spec("nowhere")
    assert "mainnet, sepolia, holesky, Frontier" in str(err.value)
    assert "ShanghaiToCancunAtTime15k" in str(err.value)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ChainSpecError, match="broken.json'.*not valid JSON"):
        chain_spec(broken)
    out_of_order = tmp_path / "order.json"
    out_of_order.write_text(json.dumps({"config": {"chainId": 3, "londonBlock": 0}}))
    with pytest.raises(ChainSpecError, match="order.json: config.londonBlock: unsupported"):
        chain_spec(out_of_order)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"chain": "Osaka"}))
    with pytest.raises(ChainSpecError, match="chain 'Osaka' is not a known chain"):
        chain_spec(unknown)
