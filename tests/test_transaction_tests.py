"""ethereum/tests TransactionTests: decoding and validity of raw transactions, fork by fork.

Each file holds one raw transaction and, per fork, either the hash, sender and intrinsic gas a
client must derive or the exception it must raise. Admission runs with a huge gas limit, a zero
base fee and unprotected legacy transactions allowed (fixtures test consensus validity, not RPC
policy), so only the transaction's own validity counts. The fixtures are signed for chain id 1.
"""

import json
from pathlib import Path

import pytest
from eth.vm.forks import (
    BerlinVM,
    ByzantiumVM,
    CancunVM,
    ConstantinopleVM,
    FrontierVM,
    HomesteadVM,
    IstanbulVM,
    LondonVM,
    ParisVM,
    PetersburgVM,
    ShanghaiVM,
    SpuriousDragonVM,
    TangerineWhistleVM,
)

from coordinator.admission import AdmissionRules, check_tx, decode_raw, intrinsic_gas

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "ethereum-tests" / "TransactionTests"
FORKS = {
    "Frontier": FrontierVM,
    "Homestead": HomesteadVM,
    "EIP150": TangerineWhistleVM,
    "EIP158": SpuriousDragonVM,
    "Byzantium": ByzantiumVM,
    "Constantinople": ConstantinopleVM,
    "ConstantinopleFix": PetersburgVM,
    "Istanbul": IstanbulVM,
    "Berlin": BerlinVM,
    "London": LondonVM,
    "Paris": ParisVM,
    "Shanghai": ShanghaiVM,
    "Cancun": CancunVM,
}
FILES = sorted(ROOT.rglob("*.json")) if ROOT.is_dir() else []


def fixture_rules(vm_class) -> AdmissionRules:
    return AdmissionRules(
        chain_id=1,
        vm_class=vm_class,
        gas_limit=2**64,
        base_fee=0 if issubclass(vm_class, LondonVM) else None,
        blob_base_fee=1 if issubclass(vm_class, CancunVM) else None,
        allow_unprotected=True,
    )


def test_fixtures_are_present():
    assert len(FILES) >= 200, f"TransactionTests not found under {ROOT}"


@pytest.mark.parametrize("fork", list(FORKS))
@pytest.mark.parametrize("path", FILES, ids=[str(f.relative_to(ROOT)) for f in FILES])
def test_transaction_fixture(path, fork):
    ((_, test),) = json.loads(path.read_text()).items()
    expected = test["result"].get(fork)
    if expected is None:
        pytest.skip(f"the fixture has no {fork} result")
    rules = fixture_rules(FORKS[fork])
    raw = bytes.fromhex(test["txbytes"][2:])
    if "exception" in expected:
        for body in (None, raw):  # re-encoded, and read off the raw bytes (intake's way)
            with pytest.raises(Exception):  # noqa: B017 - any refusal will do
                check_tx(rules, decode_raw(rules, raw), body)
        return
    tx = decode_raw(rules, raw)
    sender = check_tx(rules, tx)
    assert "0x" + tx.hash.hex() == expected["hash"]
    assert "0x" + sender.hex() == expected["sender"].lower()
    assert check_tx(rules, decode_raw(rules, raw), raw) == sender
    assert intrinsic_gas(rules, tx) == int(expected["intrinsicGas"], 16)
