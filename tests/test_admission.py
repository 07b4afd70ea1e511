"""Bad transactions are rejected before execution with a reason naming them; the rest runs."""

from dataclasses import replace

import pytest
import rlp
from eth.vm.forks import BerlinVM, CancunVM, LondonVM
from eth_hash.auto import keccak
from eth_utils import ValidationError, to_checksum_address
from support import (
    assert_identical,
    dynamic_tx,
    env_for,
    generator,
    inline_chain,
    small_genesis,
)

from bench.workload.genesis import BASE_FEE, CHAIN_ID, ETHER, GWEI, Wallet, sign
from coordinator.admission import (
    TxRejected,
    admit,
    check_static,
    check_with_state,
    decode_raw,
    intrinsic_gas,
    rules_for,
    versioned_hash,
)


def test_each_bad_transaction_is_rejected_by_name_and_the_block_still_runs():
    genesis = small_genesis()
    good = generator(genesis, "erc20=1", 0.0, seed=2).block(10)
    alice, bob = genesis.wallets[7], genesis.wallets[8]
    nonce = genesis.nonces[alice.address]
    valid = sign(alice, nonce, bob.address, value=1)
    forged = valid.copy(r=valid.r ^ 0xFF)
    gap = sign(alice, nonce + 7, bob.address, value=1)
    broke = sign(Wallet.derive(99, 1), 0, bob.address, value=1)  # never funded
    too_much = sign(bob, genesis.nonces[bob.address], alice.address, value=10**6 * ETHER)
    bad = [forged, gap, broke, too_much, b"\x02garbage"]
    candidates = [*good[:5], *bad, *good[5:]]
    with inline_chain(genesis) as chain:
        report, _, _ = chain.run_block(env_for(1, good), candidates)
    reasons = {r.index: r.reason for r in chain.last_rejections}
    assert sorted(reasons) == [5, 6, 7, 8, 9]
    assert reasons[5].startswith("invalid sender")
    assert reasons[6].startswith("nonce too high") and "nonce gap" in reasons[6]
    assert reasons[7].startswith("insufficient funds for gas * price + value")
    assert reasons[8].startswith("insufficient funds for gas * price + value")
    assert reasons[9].startswith("malformed transaction:")
    for rejection in chain.last_rejections:
        assert str(rejection).startswith(f"transaction {rejection.index} (")
    assert report.txs == 10 and report.rejected == 5
    assert_identical(report)


def test_wrong_chain_id_is_named():
    genesis = small_genesis()
    alice, bob = genesis.wallets[3], genesis.wallets[4]
    nonce = genesis.nonces[alice.address]
    unsigned = CancunVM.get_transaction_builder().new_unsigned_dynamic_fee_transaction(
        chain_id=1,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=21_000,
        to=bob.address,
        value=1,
        data=b"",
        access_list=(),
    )
    other_chain = unsigned.as_signed_transaction(alice.key)
    ours = sign(alice, nonce, bob.address, value=1)
    with inline_chain(genesis) as chain:
        report, _, _ = chain.run_block(env_for(1, [ours]), [other_chain, ours])
    assert [r.index for r in chain.last_rejections] == [0]
    assert chain.last_rejections[0].reason == (
        f"invalid sender: invalid chain id for signer: have 1 want {CHAIN_ID}"
    )
    assert report.txs == 1
    assert_identical(report)


# -- one test per rule, asserting geth's message ------------------------------------------------
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
BUILDER = CancunVM.get_transaction_builder()


def _env():
    return env_for(1, [])


_dynamic = dynamic_tx


def _blob(wallet, hashes, nonce=0, **fields):
    values = dict(
        chain_id=CHAIN_ID,
        nonce=nonce,
        max_priority_fee_per_gas=GWEI,
        max_fee_per_gas=2 * BASE_FEE + GWEI,
        gas=21_000,
        to=b"\x11" * 20,
        value=0,
        data=b"",
        access_list=(),
        max_fee_per_blob_gas=10,
        blob_versioned_hashes=hashes,
    )
    values.update(fields)
    return BUILDER.new_unsigned_blob_transaction(**values).as_signed_transaction(wallet.key)


def _legacy(wallet, chain_id=None, nonce=0):
    unsigned = BUILDER.create_unsigned_transaction(
        nonce=nonce, gas_price=2 * BASE_FEE, gas=21_000, to=b"\x11" * 20, value=0, data=b""
    )
    return unsigned.as_signed_transaction(wallet.key, chain_id=chain_id)


def _refused(tx, message, **kw):
    with pytest.raises(TxRejected) as err:
        check_static(_env(), tx, **kw)
    assert str(err.value) == message
    return err.value


def _network_blob(tx, blobs, commitments, proofs):
    body = tx.encode()  # 0x03 || rlp(payload)
    payload = rlp.decode(body[1:])
    return body[:1] + rlp.encode([payload, blobs, commitments, proofs])


def test_the_four_transactions_that_halted_the_chain_are_rejected_and_the_block_runs():
    genesis = small_genesis()
    good = generator(genesis, "erc20=1", 0.0, seed=4).block(6)
    w = genesis.wallets
    valid = sign(w[10], genesis.nonces[w[10].address], w[11].address, value=1)
    high_s = valid.copy(s=SECP256K1_N - valid.s, y_parity=1 - valid.y_parity)
    low_gas = sign(w[12], genesis.nonces[w[12].address], w[11].address, gas=20_000)
    initcode = sign(w[13], genesis.nonces[w[13].address], b"", data=b"\x01" * 50_000, gas=2_000_000)
    blobless = _blob(w[14], [], nonce=genesis.nonces[w[14].address])
    candidates = [*good[:3], high_s, low_gas, initcode, blobless, *good[3:]]
    with inline_chain(genesis) as chain:
        report, _, _ = chain.run_block(env_for(1, candidates), candidates)
    reasons = {r.index: r.reason for r in chain.last_rejections}
    assert reasons == {
        3: "invalid sender: invalid transaction v, r, s values",
        4: "intrinsic gas too low: gas 20000, minimum needed 21000",
        5: "max initcode size exceeded: code size 50000, limit 49152",
        6: "blobless blob transaction",
    }
    assert report.txs == 6 and report.rejected == 4
    assert_identical(report)


def test_high_s_is_an_invalid_sender_even_though_it_recovers():
    alice = Wallet.derive(7, 0)
    valid = _dynamic(alice)
    high_s = valid.copy(s=SECP256K1_N - valid.s, y_parity=1 - valid.y_parity)
    assert check_static(_env(), valid) == alice.address
    _refused(high_s, "invalid sender: invalid transaction v, r, s values")


def test_gas_under_intrinsic_cost():
    _refused(
        _dynamic(Wallet.derive(7, 0), gas=20_000),
        "intrinsic gas too low: gas 20000, minimum needed 21000",
    )


def test_intrinsic_gas_counts_data_and_access_list():
    wallet = Wallet.derive(7, 0)
    fields = dict(data=b"\x00\x01\x02", access_list=((b"\x22" * 20, (1, 2)),))
    need = 21_000 + 4 + 2 * 16 + 2_400 + 2 * 1_900
    assert intrinsic_gas(rules_for(_env()), _dynamic(wallet, gas=need, **fields)) == need
    _refused(
        _dynamic(wallet, gas=need - 1, **fields),
        f"intrinsic gas too low: gas {need - 1}, minimum needed {need}",
    )
    assert check_static(_env(), _dynamic(wallet, gas=need, **fields)) == wallet.address
    creation = _dynamic(wallet, to=b"", gas=10**6, data=b"\x01" * 33)  # 2 words of init code
    assert intrinsic_gas(rules_for(_env()), creation) == 53_000 + 33 * 16 + 2 * 2


def test_init_code_over_eip3860_limit():
    wallet = Wallet.derive(7, 0)
    _refused(
        _dynamic(wallet, to=b"", gas=2_000_000, data=b"\x01" * 50_000),
        "max initcode size exceeded: code size 50000, limit 49152",
    )
    at_limit = _dynamic(wallet, to=b"", gas=2_000_000, data=b"\x01" * 49_152)
    assert check_static(_env(), at_limit) == wallet.address


def test_gas_over_the_block_gas_limit():
    _refused(_dynamic(Wallet.derive(7, 0), gas=30_000_001), "exceeds block gas limit")


def test_tip_above_fee_cap():
    tx = _dynamic(Wallet.derive(7, 0), max_priority_fee_per_gas=3 * GWEI, max_fee_per_gas=2 * GWEI)
    _refused(tx, "max priority fee per gas higher than max fee per gas")


def test_fee_cap_under_base_fee():
    wallet = Wallet.derive(7, 0)
    tx = _dynamic(wallet, max_priority_fee_per_gas=0, max_fee_per_gas=BASE_FEE - 1)
    _refused(
        tx,
        f"max fee per gas less than block base fee: address {to_checksum_address(wallet.address)}, "
        f"maxFeePerGas: {BASE_FEE - 1}, baseFee: {BASE_FEE}",
    )


def test_legacy_without_chain_id_is_refused_unless_allowed():
    wallet = Wallet.derive(7, 0)
    unprotected = _legacy(wallet)
    assert unprotected.v in (27, 28)
    _refused(unprotected, "only replay-protected (EIP-155) transactions allowed over RPC")
    assert check_static(_env(), unprotected, allow_unprotected=True) == wallet.address
    assert check_static(_env(), _legacy(wallet, chain_id=CHAIN_ID)) == wallet.address
    _refused(
        _legacy(wallet, chain_id=5),
        f"invalid sender: invalid chain id for signer: have 5 want {CHAIN_ID}",
    )


def test_unprotected_legacy_in_a_block_is_refused_by_default():
    genesis = small_genesis()
    alice, bob = genesis.wallets[20], genesis.wallets[21]
    unsigned = BUILDER.create_unsigned_transaction(
        nonce=genesis.nonces[alice.address],
        gas_price=2 * BASE_FEE,
        gas=21_000,
        to=bob.address,
        value=1,
        data=b"",
    )
    tx = unsigned.as_signed_transaction(alice.key)
    env = env_for(1, [tx])
    with inline_chain(genesis) as chain:
        refused = admit(env, chain.snapshot, [tx])
        allowed = admit(env, chain.snapshot, [tx.encode()], allow_unprotected=True)
    assert [r.reason for r in refused.rejected] == [
        "only replay-protected (EIP-155) transactions allowed over RPC"
    ]
    assert len(allowed.accepted) == 1 and not allowed.rejected


def test_wrong_chain_id_on_a_typed_transaction():
    tx = _dynamic(Wallet.derive(7, 0), chain_id=CHAIN_ID + 1)
    _refused(
        tx, f"invalid sender: invalid chain id for signer: have {CHAIN_ID + 1} want {CHAIN_ID}"
    )


def test_oversized_transaction():
    tx = _dynamic(Wallet.derive(7, 0), gas=3_000_000, data=b"\x01" * 140_000)
    size = len(tx.encode())
    message = f"oversized data: transaction size {size}, limit {128 * 1024}"
    _refused(tx, message)
    with pytest.raises(TxRejected, match="^oversized data: transaction size"):
        decode_raw(rules_for(_env()), tx.encode(), from_network=True)


def test_transaction_types_the_fork_does_not_know():
    cancun = rules_for(_env())
    dynamic = _dynamic(Wallet.derive(7, 0)).encode()
    blob = _blob(Wallet.derive(7, 0), [b"\x01" * 32]).encode()
    london, berlin = replace(cancun, vm_class=LondonVM), replace(cancun, vm_class=BerlinVM)
    with pytest.raises(TxRejected) as err:
        decode_raw(london, blob)
    assert str(err.value) == (
        "transaction type not supported: type 3 rejected, pool not yet in Cancun"
    )
    with pytest.raises(TxRejected) as err:
        decode_raw(berlin, dynamic)
    assert str(err.value) == (
        "transaction type not supported: type 2 rejected, pool not yet in London"
    )
    with pytest.raises(TxRejected) as err:
        decode_raw(cancun, b"\x04" + dynamic[1:])
    assert str(err.value) == (
        "transaction type not supported: type 4 rejected, pool not yet in Prague"
    )
    with pytest.raises(TxRejected) as err:
        decode_raw(cancun, b"\x05" + dynamic[1:])
    assert str(err.value) == "transaction type not supported"
    assert decode_raw(london, dynamic).hash == _dynamic(Wallet.derive(7, 0)).hash


def test_malformed_keeps_its_prefix():
    for raw in (b"", b"\x02garbage", b"\x80", _dynamic(Wallet.derive(7, 0)).encode() + b"\x00"):
        with pytest.raises(TxRejected, match="^malformed transaction:"):
            decode_raw(rules_for(_env()), raw)


def test_blob_transaction_without_sidecar_or_blobs():
    wallet = Wallet.derive(7, 0)
    rules = rules_for(_env())
    one = _blob(wallet, [b"\x01" + b"\x00" * 31])
    with pytest.raises(TxRejected) as err:
        decode_raw(rules, one.encode(), from_network=True)
    assert str(err.value) == "missing sidecar in blob transaction"
    assert decode_raw(rules, one.encode()).hash == one.hash  # a block body has no sidecar
    none = _blob(wallet, [])
    with pytest.raises(TxRejected) as err:
        decode_raw(rules, _network_blob(none, [], [], []), from_network=True)
    assert str(err.value) == "blobless blob transaction"
    _refused(none, "blobless blob transaction")
    _refused(_blob(wallet, [b"\x02" + b"\x00" * 31]), "blob 0 has invalid hash version")
    _refused(
        _blob(wallet, [b"\x01" * 32] * 7),
        "too many blobs in transaction: have 7, permitted 6",
    )
    _refused(
        _blob(wallet, [b"\x01" * 32], max_fee_per_blob_gas=0),
        f"max fee per blob gas less than block blob gas fee: address "
        f"{to_checksum_address(wallet.address)} blobGasFeeCap: 0, blobBaseFee: 1",
    )


def test_blob_sidecar_is_verified_and_dropped():
    ckzg = pytest.importorskip("ckzg")
    from eth.precompiles.point_evaluation import TRUSTED_SETUP_PATH

    setup = ckzg.load_trusted_setup(TRUSTED_SETUP_PATH, 0)
    blob = b"".join((i % 251).to_bytes(32, "big") for i in range(4096))
    commitment = ckzg.blob_to_kzg_commitment(blob, setup)
    proof = ckzg.compute_blob_kzg_proof(blob, commitment, setup)
    vhash = versioned_hash(commitment)
    wallet = Wallet.derive(7, 0)
    tx = _blob(wallet, [vhash])
    rules = rules_for(_env())
    decoded = decode_raw(rules, _network_blob(tx, [blob], [commitment], [proof]), from_network=True)
    assert decoded.hash == tx.hash and decoded.encode() == tx.encode()
    assert check_static(_env(), decoded) == wallet.address
    bad_proof = bytes(ckzg.compute_blob_kzg_proof(b"\x00" * len(blob), commitment, setup))
    with pytest.raises(TxRejected, match="^KZG verification error: invalid blob proof"):
        decode_raw(rules, _network_blob(tx, [blob], [commitment], [bad_proof]), from_network=True)
    with pytest.raises(TxRejected) as err:
        decode_raw(rules, _network_blob(tx, [], [commitment], [proof]), from_network=True)
    assert str(err.value) == "invalid number of 0 blobs compared to 1 blob hashes"
    other = _blob(wallet, [b"\x01" + b"\x00" * 31])
    with pytest.raises(TxRejected, match=r"^blob 0: computed hash 0x01.* mismatches"):
        decode_raw(rules, _network_blob(other, [blob], [commitment], [proof]), from_network=True)


def test_state_checks_nonce_funds_and_code():
    wallet = Wallet.derive(7, 0)
    address = to_checksum_address(wallet.address)
    tx = _dynamic(wallet, nonce=3, value=5)
    cost = tx.gas * tx.max_fee_per_gas + 5
    assert check_with_state(tx, wallet.address, 3, cost) == cost
    with pytest.raises(TxRejected) as err:
        check_with_state(tx, wallet.address, 4, cost)
    assert str(err.value) == f"nonce too low: address {address}, tx: 3 state: 4"
    with pytest.raises(TxRejected, match="^nonce too high: .*nonce gap"):
        check_with_state(tx, wallet.address, 2, cost)
    assert check_with_state(tx, wallet.address, 2, cost, allow_gap=True) == cost
    with pytest.raises(TxRejected) as err:
        check_with_state(tx, wallet.address, 3, cost + 10, pending_cost=11)
    assert str(err.value) == (
        f"insufficient funds for gas * price + value: address {address} have {cost - 1} want {cost}"
    )
    code_hash = keccak(b"\x60\x00")
    with pytest.raises(TxRejected) as err:
        check_with_state(tx, wallet.address, 3, cost, code_hash=code_hash)
    assert str(err.value) == f"sender not an eoa: address {address}, codehash: 0x{code_hash.hex()}"


def test_nonce_too_low_and_insufficient_funds_in_a_block():
    genesis = small_genesis()
    alice, bob = genesis.wallets[30], genesis.wallets[31]
    nonce = genesis.nonces[alice.address]
    first = sign(alice, nonce, bob.address, value=1)
    replay = sign(alice, nonce, bob.address, value=2)
    stranger = Wallet.derive(99, 2)
    broke = sign(stranger, 0, bob.address, value=1)
    env = env_for(1, [first])
    with inline_chain(genesis) as chain:
        result = admit(env, chain.snapshot, [first, replay, broke])
    assert [tx.hash for tx in result.accepted] == [first.hash]
    reasons = [r.reason for r in result.rejected]
    assert reasons[0] == (
        f"nonce too low: address {to_checksum_address(alice.address)}, "
        f"tx: {nonce} state: {nonce + 1}"
    )
    want = broke.gas * broke.max_fee_per_gas + 1
    assert reasons[1] == (
        f"insufficient funds for gas * price + value: address "
        f"{to_checksum_address(stranger.address)} have 0 want {want}"
    )
    assert isinstance(TxRejected("x"), ValidationError)
