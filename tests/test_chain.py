"""chain/: fork schedule, geth genesis parsing, dev chain, base fee and genesis header."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import rlp
from eth.chains.mainnet import MAINNET_VM_CONFIGURATION, MainnetDAOValidatorVM
from eth.constants import BLANK_ROOT_HASH, EMPTY_UNCLE_HASH, ZERO_HASH32
from eth.rlp.headers import BlockHeader
from eth.vm.forks import (
    ByzantiumVM,
    CancunVM,
    ConstantinopleVM,
    FrontierVM,
    GrayGlacierVM,
    HomesteadVM,
    LondonVM,
    ParisVM,
    PetersburgVM,
    PragueVM,
    ShanghaiVM,
)
from eth.vm.forks.cancun.blocks import CancunBlockHeader
from eth.vm.forks.london.blocks import LondonBlockHeader
from eth_utils import keccak

from chain import (
    DEV_BALANCE,
    BlockEnv,
    ChainSpec,
    ChainSpecError,
    Genesis,
    GenesisAccount,
    GenesisError,
    dev_accounts,
    dev_genesis,
    format_dev_accounts,
    genesis_header,
    load_genesis,
    next_base_fee,
    parse_genesis,
)

GWEI = 10**9

# -- dev chain ---------------------------------------------------------------------------


def test_dev_accounts_are_the_standard_test_mnemonic():
    accounts = dev_accounts()
    assert len(accounts) == 10
    assert accounts[0].address == bytes.fromhex("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    assert accounts[0].private_key == bytes.fromhex(
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
    )
    assert accounts[1].address == bytes.fromhex("70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert len({a.address for a in accounts}) == 10
    assert len({a.private_key for a in accounts}) == 10
    assert dev_accounts(3) == accounts[:3]


def test_dev_genesis():
    genesis = dev_genesis()
    assert genesis.spec.chain_id == 1337
    assert genesis.gas_limit == 30_000_000
    assert genesis.base_fee_per_gas == GWEI
    assert genesis.coinbase == bytes(20)
    assert set(genesis.alloc) == {a.address for a in dev_accounts()}
    assert all(acct.balance == 10_000 * 10**18 for acct in genesis.alloc.values())
    assert genesis.spec.vm_class_at(0, genesis.timestamp) is CancunVM
    assert genesis.spec.vm_class_at(10**9, 2**40) is CancunVM  # no Prague

    extra = {b"\x42" * 20: GenesisAccount(balance=5, code=b"\x60\x00", storage={1: 2})}
    bigger = dev_genesis(accounts=2, balance=7, extra_alloc=extra)
    assert len(bigger.alloc) == 3
    assert bigger.alloc[dev_accounts(1)[0].address].balance == 7
    assert bigger.alloc[b"\x42" * 20] == extra[b"\x42" * 20]
    assert parse_genesis(json.loads(json.dumps(bigger.to_geth_json()))) == bigger


def test_format_dev_accounts_as_anvil():
    text = format_dev_accounts(dev_accounts(2))
    assert "Available Accounts\n==================\n" in text
    assert "(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)" in text
    assert "Private Keys\n==================\n" in text
    assert "(0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80" in text
    assert "(1) 0x70997970C51812dc3A010C7d01b50e0d17dc79C8" in text
    assert text.index("Available Accounts") < text.index("Private Keys")


# -- geth genesis ------------------------------------------------------------------------

GENESIS_JSON = """
{
  "config": {
    "chainId": 12345,
    "homesteadBlock": 0,
    "eip150Block": 0,
    "eip155Block": 0,
    "eip158Block": 0,
    "byzantiumBlock": 0,
    "constantinopleBlock": 0,
    "petersburgBlock": 0,
    "istanbulBlock": 0,
    "berlinBlock": 0,
    "londonBlock": 0,
    "terminalTotalDifficulty": 0,
    "terminalTotalDifficultyPassed": true,
    "shanghaiTime": 0,
    "cancunTime": 100,
    "blobSchedule": {"cancun": {"target": 3, "max": 6, "baseFeeUpdateFraction": 3338477}},
    "ethash": {}
  },
  "nonce": "0x0",
  "timestamp": "0x6553f100",
  "extraData": "0x65766d707021",
  "gasLimit": "30000000",
  "difficulty": "0x0",
  "mixHash": "0x0000000000000000000000000000000000000000000000000000000000000000",
  "coinbase": "0x0000000000000000000000000000000000000000",
  "baseFeePerGas": "0x3b9aca00",
  "number": "0x0",
  "gasUsed": "0x0",
  "parentHash": "0x0000000000000000000000000000000000000000000000000000000000000000",
  "alloc": {
    "0x71562b71999873DB5b286dF957af199Ec94617F7": {
      "balance": "0x56bc75e2d63100000"
    },
    "8a8eafb1cf62bfbeb1741769dae1a9dd47996192": {
      "balance": "1000000000000000000000",
      "nonce": "0x5"
    },
    "0x4200000000000000000000000000000000000001": {
      "balance": "0",
      "code": "0x60003560005260206000f3",
      "nonce": 1,
      "storage": {
        "0x0000000000000000000000000000000000000000000000000000000000000000": "0x01",
        "0x01": "0x000000000000000000000000000000000000000000000000000000000000abcd",
        "0a": "0xff"
      }
    }
  }
}
"""
CONTRACT = bytes.fromhex("4200000000000000000000000000000000000001")


def test_parse_geth_genesis():
    genesis = parse_genesis(json.loads(GENESIS_JSON))
    assert genesis.spec.chain_id == 12345
    assert genesis.spec.shanghai_time == 0 and genesis.spec.cancun_time == 100
    assert genesis.timestamp == 0x6553F100
    assert genesis.extra_data == b"evmpp!"
    assert genesis.gas_limit == 30_000_000
    assert genesis.difficulty == 0
    assert genesis.base_fee_per_gas == GWEI
    assert genesis.nonce == bytes(8)
    assert len(genesis.alloc) == 3
    first = genesis.alloc[bytes.fromhex("71562b71999873db5b286df957af199ec94617f7")]
    assert first == GenesisAccount(balance=100 * 10**18)
    second = genesis.alloc[bytes.fromhex("8a8eafb1cf62bfbeb1741769dae1a9dd47996192")]
    assert (second.balance, second.nonce) == (1000 * 10**18, 5)
    contract = genesis.alloc[CONTRACT]
    assert contract.code == bytes.fromhex("60003560005260206000f3")
    assert contract.nonce == 1
    assert contract.storage == {0: 1, 1: 0xABCD, 0xA: 0xFF}
    assert genesis.spec.vm_class_at(0, genesis.timestamp) is CancunVM


def test_geth_genesis_round_trip(tmp_path):
    genesis = parse_genesis(json.loads(GENESIS_JSON))
    written = genesis.to_geth_json()
    assert all(not key.startswith("0x") for key in written["alloc"])  # geth writes them so
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(written))
    assert load_genesis(path) == genesis
    assert parse_genesis(written).to_geth_json() == written


def test_genesis_defaults_and_load_errors(tmp_path):
    minimal = {"config": {"chainId": 1}, "gasLimit": 5000, "difficulty": 1, "alloc": {}}
    genesis = parse_genesis(minimal)
    assert (genesis.timestamp, genesis.extra_data, genesis.coinbase) == (0, b"", bytes(20))
    assert genesis.base_fee_per_gas is None and genesis.header_base_fee is None
    assert genesis.spec.vm_class_at(0, 0) is FrontierVM
    london = parse_genesis({**minimal, "config": {"chainId": 1, **_all_block_forks(0)}})
    assert london.base_fee_per_gas is None and london.header_base_fee == GWEI  # geth default
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenesisError, match="not JSON"):
        load_genesis(bad)


def _all_block_forks(at: int) -> dict[str, int]:
    names = [
        "homesteadBlock",
        "eip150Block",
        "eip155Block",
        "eip158Block",
        "byzantiumBlock",
        "constantinopleBlock",
        "petersburgBlock",
        "istanbulBlock",
        "berlinBlock",
        "londonBlock",
    ]
    return dict.fromkeys(names, at)


_KEY = "0x4200000000000000000000000000000000000001"


def _set(path: tuple[str, ...], value: object):
    def mutate(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return mutate


_DELETE = object()


def _rename_alloc_key(new: str):
    def mutate(data: dict) -> None:
        data["alloc"][new] = data["alloc"].pop(_KEY)

    return mutate


def _storage(slot: str, value: str):
    def mutate(data: dict) -> None:
        data["alloc"][_KEY]["storage"] = {slot: value}

    return mutate


MALFORMED = [
    (_set(("gasLimit",), "0xzz"), "gasLimit"),
    (_set(("gasLimit",), _DELETE), "gasLimit"),
    (_set(("gasLimit",), "1e6"), "gasLimit"),
    (_set(("gasLimit",), hex(2**64)), "gasLimit"),
    (_set(("difficulty",), -1), "difficulty"),
    (_set(("difficulty",), _DELETE), "difficulty"),
    (_set(("timestamp",), 1.5), "timestamp"),
    (_set(("timestamp",), " 12"), "timestamp"),
    (_set(("nonce",), "0x1ffffffffffffffff"), "nonce"),
    (_set(("extraData",), "657670"), "extraData"),
    (_set(("extraData",), "0x123"), "extraData"),
    (_set(("extraData",), "0x12 34"), "extraData"),
    (_set(("mixHash",), "0x00"), "mixHash"),
    (_set(("coinbase",), "0x1234"), "coinbase"),
    (_set(("baseFeePerGas",), "ten"), "baseFeePerGas"),
    (_set(("baseFeePerGas",), True), "baseFeePerGas"),
    (_set(("number",), "0x1"), "number"),
    (_set(("parentHash",), "0x" + "11" * 32), "parentHash"),
    (_set(("config",), _DELETE), "config"),
    (_set(("config", "chainId"), "12345"), "config.chainId"),
    (_set(("config", "chainId"), _DELETE), "config.chainId"),
    (_set(("config", "londonBlock"), True), "config.londonBlock"),
    (_set(("config", "cancunTime"), -5), "config.cancunTime"),
    (_set(("alloc",), []), "alloc"),
    (_rename_alloc_key("0x123"), "alloc.0x123"),
    (_rename_alloc_key("0x" + "zz" * 20), "alloc.0x" + "zz" * 20),
    (_set(("alloc", _KEY, "balance"), "0xg"), f"alloc.{_KEY}.balance"),
    (_set(("alloc", _KEY, "balance"), _DELETE), f"alloc.{_KEY}.balance"),
    (_set(("alloc", _KEY, "balance"), hex(2**256)), f"alloc.{_KEY}.balance"),
    (_set(("alloc", _KEY, "nonce"), -1), f"alloc.{_KEY}.nonce"),
    (_set(("alloc", _KEY, "code"), "0x123"), f"alloc.{_KEY}.code"),
    (_set(("alloc", _KEY, "code"), 96), f"alloc.{_KEY}.code"),
    (_set(("alloc", _KEY, "storage"), "0x"), f"alloc.{_KEY}.storage"),
    (_storage("0x" + "00" * 33, "0x01"), f"alloc.{_KEY}.storage"),
    (_storage("0x01", "0xzz"), f"alloc.{_KEY}.storage.0x01"),
    (_storage("0x01", "0x123"), f"alloc.{_KEY}.storage.0x01"),
]


@pytest.mark.parametrize(("mutate", "field"), MALFORMED)
def test_malformed_genesis_names_the_field(mutate, field):
    data = json.loads(GENESIS_JSON)
    mutate(data)
    with pytest.raises(GenesisError) as err:
        parse_genesis(data)
    assert str(err.value).startswith(field + ":"), str(err.value)


# -- fork schedule -----------------------------------------------------------------------

MAINNET_CONFIG = {
    "chainId": 1,
    "homesteadBlock": 1150000,
    "daoForkBlock": 1920000,
    "daoForkSupport": True,
    "eip150Block": 2463000,
    "eip155Block": 2675000,
    "eip158Block": 2675000,
    "byzantiumBlock": 4370000,
    "constantinopleBlock": 7280000,
    "petersburgBlock": 7280000,
    "istanbulBlock": 9069000,
    "muirGlacierBlock": 9200000,
    "berlinBlock": 12244000,
    "londonBlock": 12965000,
    "arrowGlacierBlock": 13773000,
    "grayGlacierBlock": 15050000,
    "terminalTotalDifficulty": 58750000000000000000000,
    "shanghaiTime": 1681338455,
    "cancunTime": 1710338135,
    "pragueTime": 1746612311,
    "ethash": {},
}
PARIS_BLOCK, PARIS_TIME = 15537394, 1663224179
# mainnet fork blocks after the merge -> their timestamps
MAINNET_FORK_TIMES = {17034870: 1681338455, 19426587: 1710338135, 22431084: 1746612311}


def _same_vm(ours, theirs) -> bool:
    if ours is theirs:
        return True
    # Homestead: py-evm's MainnetHomesteadVM; ours is the same configuration under its name
    return (
        issubclass(theirs, HomesteadVM)
        and issubclass(ours, MainnetDAOValidatorVM)
        and ours.fork == theirs.fork
        and ours.support_dao_fork == theirs.support_dao_fork
        and ours.get_dao_fork_block_number() == theirs.get_dao_fork_block_number()
    )


def test_mainnet_schedule_matches_py_evm():
    spec = ChainSpec.from_geth_config(MAINNET_CONFIG)
    previous = None
    for block, vm in MAINNET_VM_CONFIGURATION:
        if block < PARIS_BLOCK:
            assert _same_vm(spec.vm_class_at(block, 0), vm), (block, vm)
            if previous is not None:
                assert _same_vm(spec.vm_class_at(block - 1, 0), previous), (block, previous)
        elif block == PARIS_BLOCK:
            assert spec.vm_class_at(block, PARIS_TIME, merged=True) is vm is ParisVM
            # without the total difficulty, the config alone does not place the merge
            assert spec.vm_class_at(block, PARIS_TIME) is GrayGlacierVM
            assert spec.vm_class_at(block - 1, PARIS_TIME - 12, merged=False) is GrayGlacierVM
        else:
            time = MAINNET_FORK_TIMES[block]
            assert spec.vm_class_at(block, time) is vm, (block, vm)
            assert spec.vm_class_at(block - 1, time - 1, merged=True) is previous
        previous = vm
    assert spec.fork_name_at(PARIS_BLOCK + 10**6, 1710338135) == "cancun"
    assert spec.vm_class_at(17034870, 1681338455) is ShanghaiVM
    assert spec.vm_class_at(10**8, 2**40) is PragueVM


def test_mainnet_config_round_trips():
    spec = ChainSpec.from_geth_config(MAINNET_CONFIG)
    assert spec.to_geth_config() == {k: v for k, v in MAINNET_CONFIG.items() if k != "ethash"}
    assert ChainSpec.from_geth_config(spec.to_geth_config()) == spec


def test_dao_homestead_vm():
    spec = ChainSpec.from_geth_config(MAINNET_CONFIG)
    vm = spec.vm_class_at(1920000, 0)
    assert vm.support_dao_fork and vm.get_dao_fork_block_number() == 1920000
    assert pickle.loads(pickle.dumps(vm)) is vm
    no_dao = ChainSpec.from_geth_config({**MAINNET_CONFIG, "daoForkSupport": False})
    assert not no_dao.vm_class_at(1920000, 0).support_dao_fork
    assert issubclass(no_dao.vm_class_at(1920000, 0), HomesteadVM)


def test_schedule_rules():
    # Petersburg with no petersburgBlock follows Constantinople, as in geth
    forks = _all_block_forks(0)
    only_constantinople = {k: v for k, v in forks.items() if k == "homesteadBlock"} | {
        "eip150Block": 0,
        "eip155Block": 0,
        "eip158Block": 0,
        "byzantiumBlock": 0,
        "constantinopleBlock": 10,
    }
    spec = ChainSpec.from_geth_config({"chainId": 5, **only_constantinople})
    assert spec.vm_class_at(9, 0) is ByzantiumVM
    assert spec.vm_class_at(10, 0) is PetersburgVM
    split = ChainSpec.from_geth_config({"chainId": 5, **only_constantinople, "petersburgBlock": 20})
    assert split.vm_class_at(10, 0) is ConstantinopleVM
    assert split.vm_class_at(20, 0) is PetersburgVM
    # TTD 0: Paris from London; no TTD: London stays
    merged = ChainSpec.from_geth_config({"chainId": 5, **forks, "terminalTotalDifficulty": 0})
    assert merged.vm_class_at(0, 0) is ParisVM
    assert ChainSpec.from_geth_config({"chainId": 5, **forks}).vm_class_at(0, 0) is LondonVM
    netsplit = ChainSpec.from_geth_config(
        {"chainId": 5, **forks, "terminalTotalDifficulty": 10**20, "mergeNetsplitBlock": 50}
    )
    assert netsplit.vm_class_at(49, 0) is LondonVM
    assert netsplit.vm_class_at(50, 0) is ParisVM


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"byzantiumBlock": 2000000}, "config.byzantiumBlock"),  # before spurious dragon
        ({"londonBlock": 100}, "config.londonBlock"),
        ({"cancunTime": 1681338454}, "config.cancunTime"),  # before shanghai
        ({"berlinBlock": None}, "config.londonBlock"),  # london without berlin
        ({"shanghaiTime": None}, "config.cancunTime"),
        ({"eip155Block": 2675001}, "config.eip158Block"),
        ({"daoForkBlock": 2463000}, "config.daoForkBlock"),  # not in the Homestead era
        ({"chainId": -1}, "config.chainId"),
        ({"istanbulBlock": "9069000"}, "config.istanbulBlock"),
        ({"daoForkSupport": "yes"}, "config.daoForkSupport"),
    ],
)
def test_bad_schedules_refused(change, field):
    with pytest.raises(ChainSpecError) as err:
        ChainSpec.from_geth_config({**MAINNET_CONFIG, **change})
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_optional_forks_may_be_absent():
    config = {k: v for k, v in MAINNET_CONFIG.items() if k not in ("muirGlacierBlock",)}
    config = {k: v for k, v in config.items() if k not in ("arrowGlacierBlock", "daoForkBlock")}
    spec = ChainSpec.from_geth_config(config)
    assert spec.vm_class_at(9200000, 0).fork == "istanbul"


# -- block env ---------------------------------------------------------------------------


def _london_parent(gas_limit: int, gas_used: int, base_fee: int) -> LondonBlockHeader:
    return LondonBlockHeader(
        difficulty=0,
        block_number=100,
        gas_limit=gas_limit,
        gas_used=gas_used,
        timestamp=1000,
        base_fee_per_gas=base_fee,
    )


def test_next_base_fee_follows_eip_1559():
    limit, fee = 30_000_000, GWEI
    target = limit // 2
    # full parent: up by parent_fee * (used - target) / target / 8 = 1/8
    full = fee + fee * (limit - target) // target // 8
    assert full == 1_125_000_000
    assert next_base_fee(_london_parent(limit, limit, fee)) == full
    # empty parent: down by 1/8
    empty = fee - fee * target // target // 8
    assert empty == 875_000_000
    assert next_base_fee(_london_parent(limit, 0, fee)) == empty
    # exactly at target: unchanged
    assert next_base_fee(_london_parent(limit, target, fee)) == fee
    # a quarter over target: up by 1/32
    assert next_base_fee(_london_parent(limit, target + target // 4, fee)) == fee + fee // 32
    # just over target with a tiny fee: up by at least 1
    assert next_base_fee(_london_parent(limit, target + 1, 7)) == 8
    # the London fork block: 1 gwei
    frontier = BlockHeader(difficulty=1, block_number=5, gas_limit=limit, timestamp=1)
    assert next_base_fee(frontier) == GWEI


def test_block_env():
    header = genesis_header(dev_genesis(), BLANK_ROOT_HASH)
    env = BlockEnv(CancunVM, header, 1337, ())
    assert not env.intermediate_roots
    assert BlockEnv(FrontierVM, header, 1).intermediate_roots


# -- genesis header ----------------------------------------------------------------------


def test_dev_genesis_header():
    genesis = dev_genesis()
    state_root = keccak(b"some state")
    header = genesis_header(genesis, state_root)
    assert isinstance(header, CancunBlockHeader)
    assert header.block_number == 0
    assert header.parent_hash == ZERO_HASH32
    assert header.uncles_hash == EMPTY_UNCLE_HASH
    assert header.state_root == state_root
    assert header.transaction_root == BLANK_ROOT_HASH
    assert header.receipt_root == BLANK_ROOT_HASH
    assert header.coinbase == bytes(20)
    assert header.gas_limit == 30_000_000
    assert header.gas_used == 0
    assert header.timestamp == genesis.timestamp
    assert header.difficulty == 0
    assert header.extra_data == b""
    assert header.mix_hash == ZERO_HASH32
    assert header.nonce == bytes(8)
    assert header.base_fee_per_gas == GWEI
    assert header.withdrawals_root == BLANK_ROOT_HASH
    assert header.blob_gas_used == 0 and header.excess_blob_gas == 0
    assert header.parent_beacon_block_root == ZERO_HASH32
    assert header.hash == keccak(rlp.encode(header))
    assert rlp.decode(rlp.encode(header), CancunBlockHeader) == header
    assert genesis_header(genesis, state_root).hash == header.hash  # deterministic


def test_genesis_header_per_fork():
    minimal = {"config": {"chainId": 1}, "gasLimit": "0x1388", "difficulty": "0x1", "alloc": {}}
    pre_london = genesis_header(parse_genesis(minimal), BLANK_ROOT_HASH)
    assert not hasattr(pre_london, "base_fee_per_gas")
    london = parse_genesis(
        {**minimal, "config": {"chainId": 1, **_all_block_forks(0)}, "baseFeePerGas": "7"}
    )
    header = genesis_header(london, BLANK_ROOT_HASH)
    assert isinstance(header, LondonBlockHeader) and header.base_fee_per_gas == 7
    assert not hasattr(header, "withdrawals_root")
    prague_config = {
        "chainId": 1,
        **_all_block_forks(0),
        "terminalTotalDifficulty": 0,
        "shanghaiTime": 0,
        "cancunTime": 0,
        "pragueTime": 0,
    }
    prague = genesis_header(parse_genesis({**minimal, "config": prague_config}), BLANK_ROOT_HASH)
    assert prague.requests_hash == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_mainnet_genesis_hash():
    # mainnet's block 0 (its alloc's state root given): the well-known genesis hash
    genesis = Genesis(
        spec=ChainSpec.from_geth_config(MAINNET_CONFIG),
        alloc={},
        gas_limit=5000,
        difficulty=17179869184,
        extra_data=bytes.fromhex(
            "11bbe8db4e347b4e8c937c1c8370e4b5ed33adb3db69cbdb7a38e1e50b1b82fa"
        ),
        nonce=(0x42).to_bytes(8, "big"),
    )
    state_root = bytes.fromhex("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544")
    assert genesis_header(genesis, state_root).hash == bytes.fromhex(
        "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
    )


def test_genesis_is_immutable_and_compares_by_value():
    a = dev_genesis(accounts=2)
    assert a == copy.deepcopy(a)
    with pytest.raises(AttributeError):
        a.gas_limit = 1  # type: ignore[misc]
    assert DEV_BALANCE == 10_000 * 10**18


def test_chain_is_layer_zero():
    import subprocess
    import sys

    code = (
        "import sys, chain; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'storage', 'compute_unit', "
        "'coordinator', 'cluster', 'ebs', 'api', 'cli', 'bench', 'ray'}); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
