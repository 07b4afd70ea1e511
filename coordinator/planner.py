"""Plans a block's parallel run and learns from its result.

``HintPlanner`` predicts each transaction's keys from the hint table
(``coordinator/learner.py``), groups the predicted conflict graph's components
(``coordinator/grouping.py``), and after validation scores the predictions against what
really ran and teaches the table. ``SenderPlanner`` is the foundation's policy (one sender's
transactions together, weighted by gas limit), kept for comparison (``evmpp run
--no-hints``) and for blocks from unrelated chains (mainnet replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth.abc import SignedTransactionAPI

from compute_unit.blockstm import ValidatedBlock
from compute_unit.executor import BlockEnv
from compute_unit.state import StateReader
from coordinator.grouping import (
    Group,
    conflict_components,
    largest_share,
    pack_components,
    sender_components,
)
from coordinator.hints import HintTable, TxFields
from coordinator.learner import (
    HintLearner,
    HintScore,
    LearnerSettings,
    Prediction,
    RunningCounters,
    touched,
)
from storage.keys import ACCT


@dataclass
class BlockPlan:
    """Groups for the workers, the predicted gas they were balanced by, and the predictions
    (None without hints). ``largest_share``: the heaviest conflict component's share of the
    predicted gas; above ``1 / n_groups`` it cannot be balanced."""

    groups: list[Group]
    weights: list[int]
    largest_share: float
    predictions: list[Prediction] | None = None
    by_space: dict[str, list[Group]] | None = None  # groups per block space (coordinator)


class Planner:
    """Plans a block's groups; after validation, may learn from what ran."""

    # whether ``learn`` reads the Keccak preimages of each transaction's execution (the
    # workers record and send them back only then)
    wants_preimages = False

    def plan(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        n_groups: int,
        state: StateReader | None = None,
    ) -> BlockPlan:
        raise NotImplementedError

    def learn(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        plan: BlockPlan,
        block: ValidatedBlock,
    ) -> HintScore | None:
        """Score and learn from the validated block (nothing, by default)."""
        return None


def tx_fields(tx: SignedTransactionAPI) -> TxFields:
    return TxFields(tx.sender, tx.to or None, tx.data)


class SenderPlanner(Planner):
    """The foundation's grouping: by sender, balanced by gas limit; learns nothing."""

    def plan(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        n_groups: int,
        state: StateReader | None = None,
    ) -> BlockPlan:
        weights = [tx.gas for tx in txs]
        components = sender_components([tx.sender for tx in txs])
        groups = pack_components(components, n_groups, weights)
        return BlockPlan(groups, weights, largest_share(components, weights))


class HintPlanner(Planner):
    """Prediction from a hint table, conflict-graph grouping, learning after each block."""

    wants_preimages = True

    def __init__(self, table: HintTable, settings: LearnerSettings | None = None) -> None:
        self.table = table
        self.learner = HintLearner(table, settings)

    def predict(
        self, txs: Sequence[SignedTransactionAPI], state: StateReader | None = None
    ) -> list[Prediction]:
        """Each transaction's prediction, in block order (``state``: the pre-block state,
        for keys that follow counters)."""
        counters = None if state is None else RunningCounters(state)
        predictions = []
        for tx in txs:
            prediction = self.learner.predict(tx_fields(tx), tx.gas, counters)
            if counters is not None:
                counters.advance(prediction.writes)
            predictions.append(prediction)
        return predictions

    def plan(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        n_groups: int,
        state: StateReader | None = None,
    ) -> BlockPlan:
        predictions = self.predict(txs, state)
        components = conflict_components(predictions, ignore={(ACCT, env.header.coinbase)})
        weights = [prediction.gas for prediction in predictions]
        groups = pack_components(components, n_groups, weights)
        return BlockPlan(groups, weights, largest_share(components, weights), predictions)

    def learn(
        self,
        env: BlockEnv,
        txs: Sequence[SignedTransactionAPI],
        plan: BlockPlan,
        block: ValidatedBlock,
    ) -> HintScore:
        """Score the block's predictions against what ran, then learn from it."""
        score = HintScore()
        number = env.header.block_number
        coinbase = (ACCT, env.header.coinbase)
        for tx, outcome in zip(txs, block.outcomes, strict=True):
            fields = tx_fields(tx)
            if plan.predictions is not None:
                actual = touched(outcome.access).keys() - {coinbase}
                score.add(plan.predictions[outcome.index], actual)
            self.learner.learn(fields, outcome.access, outcome.gas_used, number)
        self.table.save()
        return score
