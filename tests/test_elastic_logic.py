"""Elastic block space and scaling as pure logic (no Ray): the gas-limit and parallelism
formulas against hand-computed values, the scaling policy, the vote, subscriptions."""

import random

import pytest
from eth._utils.address import generate_contract_address
from eth.constants import EMPTY_SHA3
from support import small_genesis

from bench.workload.genesis import ETHER, sign
from cluster.autoscaler import PoolLoad, ScalingPolicy, decide
from cluster.governance import Ballot, Validator, tally, vote
from compute_unit.state import DictSnapshot
from ebs.space import (
    Bid,
    ElasticSpace,
    auction,
    cpu_seconds,
    ebs_gas_limit,
    gas_for,
    next_parallelism,
)
from ebs.subscription import (
    REGISTRY,
    Cancel,
    Subscribe,
    SubscriptionError,
    cancel_data,
    parse,
    subscribe_data,
    subscription_id,
)
from storage.keys import AccountFields, acct_key


def test_gas_and_time_convert_at_ten_million_gas_a_cpu_second():
    assert cpu_seconds(30_000_000) == 3.0
    assert gas_for(0.25) == 2_500_000
    assert ebs_gas_limit(30_000_000, 1.0) == 30_000_000  # unknown P: the worst case
    assert ebs_gas_limit(30_000_000, 2.5) == 75_000_000


def test_parallelism_follows_the_formula_and_its_clamp():
    # t_pbs = 3 s; EBS used 60M of 75M (U = 0.8) in 1.5 s: I = (3 - 1.5) / 3 * 0.8 = 0.4
    assert next_parallelism(2.5, 60_000_000, 75_000_000, 3.0, 1.5, 8) == pytest.approx(3.5)
    # overran: t_ebs 4.5 s, U = 1: I = -0.5, P 2 -> 1
    assert next_parallelism(2.0, 10, 10, 3.0, 4.5, 8) == pytest.approx(1.0)
    assert next_parallelism(1.2, 10, 10, 3.0, 6.0, 8) == 1.0  # never under 1
    assert next_parallelism(3.0, 10, 10, 3.0, 0.0, 4) == 4.0  # never over the CU's cores
    assert next_parallelism(2.0, 0, 10, 3.0, 0.1, 8) == 2.0  # unused: no change


def test_an_elastic_space_converges_towards_its_cores_when_fast():
    space = ElasticSpace("s", frozenset({b"c" * 20}), cores=4)
    space.open(30_000_000)
    assert space.gas_limit == 30_000_000
    for number in range(1, 8):  # fully used, half the PBS time
        space.after_block(number, space.gas_limit, 1.5, 30_000_000)
    assert space.parallelism == 4.0 and space.gas_limit == 120_000_000
    assert [h[0] for h in space.history] == list(range(1, 8))


def test_scarce_space_goes_to_the_highest_stakes():
    bids = [Bid("a", 5, 0), Bid("b", 9, 1), Bid("c", 9, 2), Bid("d", 1, 3)]
    won, waiting = auction(bids, 2)
    assert [b.subscription for b in won] == ["b", "c"]
    assert [b.subscription for b in waiting] == ["a", "d"]
    assert auction(bids, 0) == ([], sorted(bids, key=lambda b: (-b.stake, b.order)))


def load_of(demands: list[float], minimum: int = 1) -> PoolLoad:
    load = PoolLoad(minimum)
    for demand in demands:
        load.record(demand, 3)
    return load


def test_scaling_thresholds_target_and_window():
    policy = ScalingPolicy()
    assert decide("pbs", load_of([2.6, 2.6]), 2, 5, policy) is None  # window not full
    up = decide("pbs", load_of([2.6, 2.6, 2.6]), 2, 5, policy)  # 130% of 2 CUs
    assert up.scale_up and up.target == 4  # ceil(2.6 / 0.75): load falls to 65%
    assert decide("pbs", load_of([2.4, 2.4, 2.4]), 2, 5, policy) is None  # 120%: stays
    down = decide("pbs", load_of([0.5, 0.5, 0.5]), 4, 9, policy)  # 12.5% of 4
    assert not down.scale_up and down.target == 1
    assert decide("pbs", load_of([0.5, 0.5, 0.5], minimum=2), 2, 9, policy) is None
    capped = decide("pbs", load_of([40.0] * 3), 2, 5, policy)
    assert capped.target == policy.max_cus


def test_the_window_restarts_after_a_step():
    load = load_of([3.0, 3.0, 3.0])
    assert decide("pbs", load, 2, 5, ScalingPolicy()) is not None
    load.restart()
    load.record(3.0, 3)
    assert decide("pbs", load, 4, 6, ScalingPolicy()) is None


def test_votes_count_stake_not_heads():
    big = Ballot("big", 700, 1.0, True)
    small = [Ballot(f"s{i}", 100, 1.0, False) for i in range(3)]
    assert tally([big, *small]).approved  # 1 of 4 validators, 70% of stake
    many = [Ballot(f"s{i}", 100, 1.0, True) for i in range(3)]
    assert not tally([Ballot("big", 600, 1.0, False), *many]).approved  # 3 of 4, 33% of stake
    exactly = tally([Ballot("a", 200, 1.0, True), Ballot("b", 100, 1.0, False)])
    assert not exactly.approved  # 2/3 is not more than 2/3


def test_validators_measure_with_their_own_noise():
    validators = [Validator("a", 100, 0.0), Validator("b", 100, 0.0), Validator("c", 100, 0.5)]
    outcome = vote(validators, 3.0, 2, True, (1.25, 0.25), random.Random(1))
    assert outcome.approved  # a and b see 150% exactly: 2/3 of stake plus whatever c sees
    assert [b.measured for b in outcome.ballots[:2]] == [3.0, 3.0]
    calm = vote(validators, 2.0, 2, True, (1.25, 0.25), random.Random(1))
    assert not calm.approved


class Deployed:
    """A state where a wallet deployed a contract (at its nonce 3)."""

    def __init__(self) -> None:
        g = small_genesis()
        self.owner, self.other = g.wallets[0], g.wallets[1]
        self.contract = generate_contract_address(self.owner.address, 3)
        self.state = DictSnapshot(
            {acct_key(self.contract): AccountFields(1, 0, b"\x01" * 32)}
            | {acct_key(b"\x09" * 20): AccountFields(0, 5, EMPTY_SHA3)}
        )

    def tx(self, wallet, data: bytes, value: int = ETHER):
        return sign(wallet, 7, REGISTRY, data, value=value, gas=60_000)


def test_a_deployer_subscribes_and_cancels():
    d = Deployed()
    tx = d.tx(d.owner, subscribe_data([(d.contract, 3)], ETHER))
    request = parse(tx, d.state)
    assert request == Subscribe(subscription_id(tx.hash), d.owner.address, (d.contract,), ETHER)
    cancel = parse(d.tx(d.owner, cancel_data(request.id), value=0), d.state)
    assert cancel == Cancel(request.id, d.owner.address)


@pytest.mark.parametrize(
    "case, message",
    [
        ("forged", "is not the deployer"),
        ("wrong nonce", "is not the deployer"),
        ("no code", "holds no contract"),
        ("low stake", "under the minimum"),
        ("value", "must equal the stake"),
        ("twice", "named twice"),
        ("empty", "empty payload"),
        ("type", "unknown payload type"),
        ("garbage", "not RLP"),
        ("shape", "subscribe payload must be"),
        ("cancel shape", "cancel payload must be"),
        ("none", "name 1 to"),
    ],
)
def test_bad_subscriptions_are_refused_with_a_reason(case, message):
    d = Deployed()
    data = {
        "forged": subscribe_data([(d.contract, 3)], ETHER),
        "wrong nonce": subscribe_data([(d.contract, 4)], ETHER),
        "no code": subscribe_data([(generate_contract_address(d.owner.address, 5), 5)], ETHER),
        "low stake": subscribe_data([(d.contract, 3)], 5),
        "value": subscribe_data([(d.contract, 3)], 2 * ETHER),
        "twice": subscribe_data([(d.contract, 3), (d.contract, 3)], ETHER),
        "empty": b"",
        "type": b"\x07\xc0",
        "garbage": b"\x01\xff\xff",
        "shape": b"\x01" + bytes.fromhex("c0"),
        "cancel shape": b"\x02" + bytes.fromhex("c0"),
        "none": subscribe_data([], ETHER),
    }[case]
    signer = d.other if case == "forged" else d.owner
    with pytest.raises(SubscriptionError, match=message):
        parse(d.tx(signer, data), d.state)
