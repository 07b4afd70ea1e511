"""The hint learner on a contract it never saw: a vault with a mapping of mappings that pulls
tokens from another contract. After a few calls its rules predict every key of new calls."""

import random

from eth._utils.address import generate_contract_address
from support import small_genesis

from bench.workload.contracts import compile_source, compiled
from bench.workload.genesis import MAX_UINT, block_env, sign
from compute_unit.executor import run_group
from compute_unit.state import DictSnapshot, WriteLayer
from coordinator.hints import HintTable
from coordinator.learner import HintLearner, HintScore, RunningCounters, touched
from coordinator.planner import tx_fields
from storage.keys import ACCT, SLOT

VAULT = """
# pragma version ~=0.4.3
interface IERC20:
    def transferFrom(_from: address, _to: address, _value: uint256) -> bool: nonpayable

deposits: public(HashMap[address, HashMap[address, uint256]])
totals: public(HashMap[address, uint256])
receipts: public(HashMap[uint256, address])
count: public(uint256)

@external
def deposit(token: address, amount: uint256) -> uint256:
    extcall IERC20(token).transferFrom(msg.sender, self, amount)
    self.deposits[msg.sender][token] += amount
    self.totals[token] += amount
    receipt: uint256 = self.count + 1
    self.receipts[receipt] = msg.sender
    self.count = receipt
    return receipt
"""


class Chain:
    """Runs transactions one by one in process over the genesis state."""

    def __init__(self) -> None:
        self.genesis = small_genesis()
        self.layer = WriteLayer(DictSnapshot(self.genesis.state))
        self.nonces = dict(self.genesis.nonces)
        self.number = 0

    def send(self, wallet, to: bytes, data: bytes, gas: int = 300_000):
        nonce = self.nonces.get(wallet.address, 0)
        self.nonces[wallet.address] = nonce + 1
        return sign(wallet, nonce, to, data, gas=gas)

    def run(self, tx):
        self.number += 1
        env = block_env(self.number, gas_limit=30_000_000)
        (outcome,) = run_group(env, self.layer, [(0, tx)])
        assert outcome.success, "the call reverted"
        return env, outcome


def test_learned_rules_reach_full_recall_on_new_inputs_of_an_unseen_contract():
    chain = Chain()
    g = chain.genesis
    vault_code = compile_source("vault-test", VAULT)
    deployer = g.wallets[0]
    vault = generate_contract_address(deployer.address, chain.nonces.get(deployer.address, 0))
    chain.run(chain.send(deployer, b"", vault_code.deploy_data(), 1_000_000))
    token = compiled("token")
    users = g.wallets[1:9]
    for user in users:
        for tok in (g.token_a, g.token_b):
            chain.run(chain.send(user, tok, token.calldata("approve", vault, MAX_UINT), 80_000))

    learner = HintLearner(HintTable())
    rng = random.Random(5)

    def deposit(user):
        tok = rng.choice((g.token_a, g.token_b))
        return chain.send(user, vault, vault_code.calldata("deposit", tok, rng.randrange(1, 10**6)))

    for user in users[:3]:  # a few calls to learn from
        tx = deposit(user)
        env, outcome = chain.run(tx)
        learner.learn(tx_fields(tx), outcome.access, outcome.gas_used, env.header.block_number)
    assert learner.predict(tx_fields(deposit(users[0])), 300_000).wildcard is None

    score = HintScore()
    for user in users[3:]:  # new senders, tokens and amounts
        tx = deposit(user)
        prediction = learner.predict(tx_fields(tx), tx.gas, RunningCounters(chain.layer))
        env, outcome = chain.run(tx)
        actual = set(touched(outcome.access)) - {(ACCT, env.header.coinbase)}
        assert actual - prediction.keys == set(), "a key was not predicted"
        score.add(prediction, actual)
        learner.learn(tx_fields(tx), outcome.access, outcome.gas_used, env.header.block_number)
    assert score.recall == 1.0
    assert score.precision == 1.0

    entry = learner.table.get(vault + vault_code.calldata("deposit", g.token_a, 1)[:4])
    rules = list(entry.rules.values())
    nested = [r for r in rules if r.kind == SLOT and r.slot[0] == "hash" and r.slot[1][0] == "hash"]
    assert nested, "the mapping of mappings was learned as a nested hash"
    assert any(r.kind == SLOT and r.address == ("word", 0) for r in rules), "the called token"
    assert any(r.slot and r.slot[0] == "hash" and r.slot[-1][0] == "count" for r in rules)
    statics = [r for r in rules if r.static_in(entry.key)]
    assert any(r.kind == SLOT and r.address == ("to",) for r in statics), "count, a static key"


def test_an_unknown_method_is_predicted_to_touch_its_whole_contract():
    g = small_genesis()
    learner = HintLearner(HintTable())
    tx = sign(g.wallets[0], 0, g.nft, compiled("nft").calldata("mint"), gas=200_000)
    prediction = learner.predict(tx_fields(tx), tx.gas)
    assert prediction.wildcard == g.nft
    assert prediction.writes == {(ACCT, g.wallets[0].address)}
