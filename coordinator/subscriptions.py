"""Elastic block space subscriptions: from a registry transaction to a dApp's own CU.

A subscription or cancellation is a signed transaction to the registry address
(``ebs/subscription.py``). At submit, ``check`` refuses what cannot take effect (a duplicate
contract, a cancel of an unknown subscription or by someone else). While a block is stored,
``settle`` works out what its registry transactions did to the stake ledger
(``ebs/stakes.py``, stored with the block; a cancelled stake is returned at the start of the
next block). After the block, ``apply`` gives them their effect: a subscription waits for a
CU, and the waiting ones are seated highest stake first (``ebs/space.py`` auction) each on a
new CU pool of its own, active from the next block; a cancellation releases its CU. Each
active space adapts its parallelism and gas limit after every block. After a restart the
ledger's held stakes are the subscriptions, seated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth.abc import SignedTransactionAPI

from chain import SystemTransfer
from compute_unit.pool import CuPool
from coordinator.cu_supply import CuSupply
from coordinator.events import EventLog
from coordinator.node_api import NodeError, SubscriptionState
from ebs.space import Bid, ElasticSpace, auction
from ebs.stakes import Settlement, StakeLedger
from ebs.subscription import (
    Cancel,
    Subscribe,
    SubscriptionError,
    parse,
    subscription_id,
)


@dataclass
class SubscriptionRecord:
    id: str
    subscriber: bytes
    contracts: tuple[bytes, ...]
    stake: int
    status: str  # pending (not in a block yet), waiting (for a CU), active, cancelled
    requested: int | None  # block that included the request
    order: int
    space: ElasticSpace | None = None
    cu: str | None = None
    active_since: int | None = None
    told_pending: bool = False  # the event saying it waits for a CU was given


class SubscriptionBook:
    """The subscriptions and the CU pools of the active ones."""

    def __init__(
        self,
        pools: dict[str, CuPool],
        supply: CuSupply,
        events: EventLog,
        slots: int,
        pbs_gas_limit: int,
        on_failure: Callable[[str], None],
        ledger: StakeLedger | None = None,
    ) -> None:
        """``ledger``: the stakes as of the head (its held stakes are subscriptions)."""
        self.pools = pools
        self.supply = supply
        self.events = events
        self.slots = slots
        self.pbs_gas_limit = pbs_gas_limit
        self.on_failure = on_failure
        self.records: dict[str, SubscriptionRecord] = {}
        self.requested: dict[str, Subscribe] = {}  # submitted, not in a block yet
        self.ledger = ledger or StakeLedger()
        for sub_id, entry in sorted(self.ledger.held().items(), key=lambda i: i[1].requested):
            self.records[sub_id] = SubscriptionRecord(
                sub_id,
                entry.owner,
                entry.contracts,
                entry.amount,
                "waiting",
                entry.requested,
                len(self.records),
            )

    def resume(self, number: int) -> None:
        """Seat the subscriptions a restart found (the head is block ``number``)."""
        if self.records:
            self.events.add(number, "subscription", f"{len(self.records)} resumed from the ledger")
            self._seat_waiting(number)

    def active(self) -> list[SubscriptionRecord]:
        return [s for s in self.records.values() if s.status == "active"]

    def gas_limits(self) -> int:
        return sum(s.space.gas_limit for s in self.active() if s.space)

    # -- at submit --------------------------------------------------------------------------
    @staticmethod
    def parse_request(tx: SignedTransactionAPI, state: Any) -> Subscribe | Cancel:
        """A registry transaction's request, checked against the current state."""
        try:
            return parse(tx, state)
        except SubscriptionError as err:
            status = 403 if "not the deployer" in str(err) else 400
            raise NodeError(str(err), status=status) from err

    def check(self, tx: SignedTransactionAPI, state: Any) -> None:
        """Refuse a registry transaction that cannot take effect; note a subscription."""
        request = self.parse_request(tx, state)
        if isinstance(request, Cancel):
            record = self.records.get(request.id)
            if record is None or record.status == "cancelled":
                raise NodeError(f"no subscription {request.id} to cancel", status=404)
            if record.subscriber != request.subscriber:
                raise NodeError("only the subscriber may cancel its subscription", status=403)
            return
        for other in [*self.records.values(), *self.requested.values()]:
            live = getattr(other, "status", "pending") != "cancelled"
            if live and set(other.contracts) & set(request.contracts):
                raise NodeError(
                    f"contracts already subscribed (subscription {other.id})", status=409
                )
        self.requested[request.id] = request

    # -- while a block is stored -----------------------------------------------------------
    def settle(
        self,
        number: int,
        txs: Sequence[SignedTransactionAPI],
        outcomes: Sequence[Any],
        state_before: Any,
    ) -> Settlement:
        """The ledger's changes by the block's kept transactions (their outcomes, the state
        before the block); the ledger takes them once the block is stored (``commit``)."""
        return self.ledger.settle(number, txs, [o.success for o in outcomes], state_before)

    def commit(self, settlement: Settlement) -> None:
        self.ledger.commit(settlement)

    def due(self) -> tuple[SystemTransfer, ...]:
        """The stake refunds the next block starts with."""
        return self.ledger.due()

    # -- after a block ----------------------------------------------------------------------
    def apply(self, settlement: Settlement) -> None:
        """The block's registry transactions take effect (its settlement is committed)."""
        number = settlement.number
        for tx_hash, reason in settlement.refused:
            self.requested.pop(subscription_id(tx_hash), None)
            self.events.add(number, "subscription", f"refused 0x{tx_hash.hex()}: {reason}")
        for request in settlement.subscribed:
            self._subscribe(number, request)
        for request in settlement.cancelled:
            self._cancel(number, request)
        for transfer in self.ledger.due():
            self.events.add(
                number,
                "stake",
                f"{transfer.amount} wei returned to 0x{transfer.recipient.hex()} "
                f"at the start of block {number + 1}",
            )
        self._seat_waiting(number)

    def forget(self, tx_hash: bytes) -> None:
        """A registry transaction left out of its block: its request is gone too."""
        self.requested.pop(subscription_id(tx_hash), None)

    def _subscribe(self, number: int, request: Subscribe) -> None:
        self.requested.pop(request.id, None)
        if request.id in self.records:
            return
        self.records[request.id] = SubscriptionRecord(
            request.id,
            request.subscriber,
            request.contracts,
            request.stake,
            "waiting",
            number,
            len(self.records),
        )
        self.events.add(number, "subscription", f"{request.id} requested, stake {request.stake}")

    def _cancel(self, number: int, request: Cancel) -> None:
        record = self.records.get(request.id)
        if record is None:  # the ledger held a stake the book never seated: nothing to release
            return
        if record.cu is not None:
            pool = self.pools.pop(record.cu)
            for cu in pool.cus:
                cu.shutdown()
            pool.close()
            self.events.add(
                number, "scale", f"{record.cu} released by {request.id}", {"pool": record.cu}
            )
        record.status, record.cu = "cancelled", None
        self.events.add(number, "subscription", f"{request.id} cancelled")

    def _seat_waiting(self, number: int) -> None:
        """Waiting subscriptions get a CU of their own, highest stake first."""
        waiting = [s for s in self.records.values() if s.status == "waiting"]
        if not waiting:
            return
        free = self.slots - len(self.active())
        winners, _ = auction([Bid(s.id, s.stake, s.order) for s in waiting], free)
        for bid in winners:
            record = self.records[bid.subscription]
            cu = self.supply.new()
            if cu is None:
                if not record.told_pending:  # once, not every block it waits
                    record.told_pending = True
                    self.events.add(
                        number,
                        "pending",
                        f"no CU for {record.id} yet (the cluster places and starts one); "
                        "retried every block",
                    )
                break
            record.cu, record.status, record.active_since = cu.name, "active", number + 1
            record.space = ElasticSpace(record.id, frozenset(record.contracts), cu.size)
            record.space.open(self.pbs_gas_limit)
            self.pools[cu.name] = CuPool(cu.name, [cu], self.on_failure)
            self.events.add(
                number,
                "subscription",
                f"{record.id} active from block {number + 1} on {cu.name}",
                {"pool": cu.name, "gas_limit": record.space.gas_limit},
            )

    def adapt(self, number: int, gas: dict[str, int], times: dict[str, float]) -> None:
        """Each active space's P and gas limit after the block (``ebs/space.py``)."""
        for record in self.active():
            if record.active_since is not None and record.active_since <= number:
                t_ebs = times.get(record.cu, 0.0)
                record.space.after_block(number, gas.get(record.cu, 0), t_ebs, self.pbs_gas_limit)

    # -- views ------------------------------------------------------------------------------
    def state(self, subscription: str) -> SubscriptionState | None:
        record = self.records.get(subscription)
        if record is not None:
            space = record.space
            return SubscriptionState(
                record.id,
                record.subscriber,
                record.contracts,
                record.stake,
                record.status,
                record.requested,
                record.active_since,
                record.cu,
                space.gas_limit if space else None,
                round(space.parallelism, 4) if space else None,
            )
        request = self.requested.get(subscription)
        if request is None:
            return None
        return SubscriptionState(
            request.id, request.subscriber, request.contracts, request.stake, "pending"
        )

    def states(self) -> list[SubscriptionState]:
        ids = [*self.records, *self.requested]
        return [view for i in ids if (view := self.state(i)) is not None]
