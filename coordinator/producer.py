"""Block production for the elastic cluster: mempool to committed block, every interval.

The ``BlockProducer`` is the coordinator's logic (``coordinator/coordinator.py`` is its Ray
actor shell). Each block is the public block space (PBS, ``pbs_gas_limit``) followed by one
elastic block space per active subscription, each filled from the mempool with transactions
to that dApp's contracts only (up to its gas limit, ``ebs/space.py``); transactions to a
subscribed contract wait for its EBS. The block then goes through admission, prediction and
preloading, execution (PBS on the basic CU pool, each EBS on its dedicated CU, all at once:
``coordinator/spaces.py``), validation in one order (PBS, then each EBS), commit, and the
check against sequential py-evm on the same ordered transactions.

After each block: registry transactions in it take effect (a subscription becomes active
with its own new CU, or waits for one; a cancellation releases it), each EBS adapts its
parallelism and gas limit, and the basic pool's load (execution time needed per interval)
feeds the scaling policy (``cluster/autoscaler.py``); a proposal goes to the validators'
vote (``cluster/governance.py``) and, approved, CUs are added or removed. A CU that cannot be
placed (no free CPUs) leaves the step pending, retried every block. Every proposal, vote,
step and subscription change is an ``Event`` with its block number and reason.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import rlp
from eth.abc import SignedTransactionAPI
from eth_hash.auto import keccak
from eth_utils import ValidationError

from bench.workload.genesis import BASE_FEE, block_env
from cluster.autoscaler import PoolLoad, Proposal, ScalingPolicy, decide
from cluster.governance import Validator, default_validators, vote
from compute_unit.pool import CuPool
from coordinator.admission import admit, check_static, decode_raw, rules_for
from coordinator.hints import HintTable
from coordinator.mempool import Mempool
from coordinator.pipeline import ChainRunner
from coordinator.planner import HintPlanner
from coordinator.spaces import SpacesExecutor
from ebs.space import Bid, ElasticSpace, auction
from ebs.subscription import (
    Cancel,
    Subscribe,
    SubscriptionError,
    is_registry_call,
    parse,
    subscription_id,
)
from storage.keys import StateKey, acct_key

PBS = "pbs"


@dataclass(frozen=True)
class CoordinatorSettings:
    block_interval: float = 1.0
    pbs_gas_limit: int = 30_000_000
    basic_cus: int = 1
    cu_cores: int = 2
    ebs_slots: int = 4  # dedicated CUs the cluster gives subscriptions at most
    validators: int = 4
    verify: bool = True  # check every block against sequential py-evm
    startup_timeout: float = 600.0  # seconds to wait for the basic CUs to be placed
    seed: int = 0
    policy: ScalingPolicy = ScalingPolicy()


@dataclass(frozen=True)
class Event:
    block: int
    kind: str  # proposal, vote, scale, pending, subscription, rejection, failure
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class SubscriptionRecord:
    id: str
    subscriber: bytes
    contracts: tuple[bytes, ...]
    stake: int
    status: str  # waiting (for a CU), active, cancelled
    requested: int  # block that included the request
    order: int
    space: ElasticSpace | None = None
    cu: str | None = None
    active_since: int | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscriber": "0x" + self.subscriber.hex(),
            "contracts": ["0x" + c.hex() for c in self.contracts],
            "stake": str(self.stake),
            "status": self.status,
            "requested_block": self.requested,
            "active_since": self.active_since,
            "cu": self.cu,
            "gas_limit": self.space.gas_limit if self.space else None,
            "parallelism": round(self.space.parallelism, 4) if self.space else None,
        }


@dataclass(frozen=True)
class BlockHeaderRecord:
    number: int
    hash: str
    parent_hash: str
    state_root: str
    txs: dict[str, int]
    gas_used: dict[str, int]
    gas_limit: dict[str, int]
    exec_ms: dict[str, float]
    reexecutions: int
    verified: bool  # equal to sequential py-evm (receipts, gas, root)
    rejected: int
    cus: dict[str, int]  # Compute Units per pool while the block ran
    parallelism: dict[str, float]  # each EBS's P for the block (by its CU)
    produced_at: float  # wall-clock seconds


class SubmitError(ValueError):
    """A transaction the coordinator refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


CuFactory = Callable[[str, int], Any]  # (name, cores) -> a Compute Unit, or None: no room


class BlockProducer:
    def __init__(
        self,
        genesis: Iterable[tuple[StateKey, Any]],
        settings: CoordinatorSettings,
        make_cu: CuFactory,
        data_dir: str | None = None,
        hints_dir: str | None = None,
        validators: Sequence[Validator] | None = None,
        on_block: Callable[[BlockProducer, BlockHeaderRecord], None] | None = None,
    ) -> None:
        self.settings = settings
        self.make_cu = make_cu
        self.validators = list(validators or default_validators(settings.validators))
        self.rng = random.Random(settings.seed)
        self.on_block = on_block
        self.lock = threading.RLock()
        self.events: list[Event] = []
        self.headers: list[BlockHeaderRecord] = []
        self.subscriptions: dict[str, SubscriptionRecord] = {}
        self.requested: dict[str, Subscribe] = {}  # submitted, not in a block yet
        self.mempool = Mempool(BASE_FEE)
        self._cu_names = iter(f"cu-{n}" for n in range(10**6))
        basic = [self._placed_cu(settings.startup_timeout) for _ in range(settings.basic_cus)]
        self.pools: dict[str, CuPool] = {PBS: CuPool(PBS, basic, self._failure)}
        self.loads = {PBS: PoolLoad(settings.basic_cus)}
        self.pending_cus = 0  # approved but not placed yet
        self.table = HintTable(hints_dir)
        self.executor = SpacesExecutor(self.pools, HintPlanner(self.table))
        self.chain = ChainRunner(genesis, self.executor, data_dir, preload=True)
        self.number = 0
        self.parent = "0x" + keccak(b"evmpp-genesis").hex()

    # -- transactions -----------------------------------------------------------------------
    def submit(self, raw: bytes) -> str:
        """Accept a raw signed transaction into the mempool; its hash. ``SubmitError`` says
        why not (bad encoding or signature, a refused subscription...)."""
        env = block_env(self.number + 1, gas_limit=self._block_gas_cap())
        tx = self.decode(raw)
        try:
            sender = check_static(env, tx)
        except ValidationError as err:
            raise SubmitError(str(err)) from err
        with self.lock:
            if is_registry_call(tx):
                self._check_request(tx)
            try:
                self.mempool.add(tx, sender)
            except ValueError as err:
                raise SubmitError(str(err), 409) from err
        return "0x" + tx.hash.hex()

    def decode(self, raw: bytes) -> SignedTransactionAPI:
        """A raw transaction decoded as the next block's fork encodes it (the network form: a
        blob transaction carries its sidecar, which is checked and dropped)."""
        try:
            return decode_raw(rules_for(block_env(self.number + 1, 0)), raw, from_network=True)
        except ValidationError as err:
            raise SubmitError(str(err)) from err

    def parse_request(self, tx: SignedTransactionAPI) -> Subscribe | Cancel:
        """A registry transaction's request, checked against the current state."""
        try:
            return parse(tx, self.chain.snapshot)
        except SubscriptionError as err:
            status = 403 if "not the deployer" in str(err) else 400
            raise SubmitError(str(err), status) from err

    def _check_request(self, tx: SignedTransactionAPI) -> None:
        request = self.parse_request(tx)
        if isinstance(request, Cancel):
            record = self.subscriptions.get(request.id)
            if record is None or record.status == "cancelled":
                raise SubmitError(f"no subscription {request.id} to cancel", 404)
            if record.subscriber != request.subscriber:
                raise SubmitError("only the subscriber may cancel its subscription", 403)
            return
        for record in [*self.subscriptions.values(), *self.requested.values()]:
            live = getattr(record, "status", "pending") != "cancelled"
            if live and set(record.contracts) & set(request.contracts):
                raise SubmitError(f"contracts already subscribed (subscription {record.id})", 409)
        self.requested[request.id] = request

    def _block_gas_cap(self) -> int:
        spaces = [s.space.gas_limit for s in self._active() if s.space]
        return self.settings.pbs_gas_limit + sum(spaces)

    def _active(self) -> list[SubscriptionRecord]:
        return [s for s in self.subscriptions.values() if s.status == "active"]

    # -- blocks -----------------------------------------------------------------------------
    def produce(self) -> BlockHeaderRecord:
        """Build, run, check and commit the next block (possibly empty)."""
        with self.lock:
            txs, spaces = self._build()
        number = self.number + 1
        env = block_env(number, gas_limit=max(self._block_gas_cap(), sum(t.gas for t in txs)))
        admission = admit(env, self.chain.snapshot, txs)
        for rejection in admission.rejected:
            self._event(number, "rejection", str(rejection))
        accepted = admission.accepted
        position = {tx.hash: i for i, tx in enumerate(accepted)}
        self.executor.assignment = {
            name: [position[t.hash] for t in space_txs if t.hash in position]
            for name, space_txs in spaces.items()
        }
        state_before = self.chain.snapshot
        restarts = self.executor.restarts
        report, parallel, _ = self.chain.import_block(env, accepted)
        if self.executor.restarts > restarts:
            self._event(
                number,
                "failure",
                f"{self.executor.restarts - restarts} worker(s) died mid-block; each was "
                "replaced in its CU and its groups re-ran there",
            )
        outcomes = parallel.block.outcomes
        gas = {
            name: sum(outcomes[i].gas_used for i in indices)
            for name, indices in self.executor.assignment.items()
        }
        times = dict(self.executor.times)
        header = self._header(report, gas, times, len(admission.rejected))
        with self.lock:
            self.number = number
            self.headers.append(header)
            self._apply_registry(number, accepted, outcomes, state_before)
            self._adapt_spaces(number, gas, times)
            self._scale(number, times.get(PBS, 0.0))
        if self.on_block is not None:
            self.on_block(self, header)
        return header

    def _build(self) -> tuple[list[SignedTransactionAPI], dict[str, list[SignedTransactionAPI]]]:
        state = self.chain.snapshot
        taken: dict[bytes, int] = {}

        def nonce_of(sender: bytes) -> int:
            if sender not in taken:
                account = state.get(acct_key(sender))
                taken[sender] = account.nonce if account else 0
            return taken[sender]

        def take(limit: int, wanted: Callable[[Any], bool]) -> list[SignedTransactionAPI]:
            txs = self.mempool.take(limit, wanted, nonce_of)
            for tx in txs:
                taken[tx.sender] = tx.nonce + 1
            return txs

        dedicated = {c for s in self._active() for c in s.contracts}
        spaces = {PBS: take(self.settings.pbs_gas_limit, lambda tx: tx.to not in dedicated)}
        for record in self._active():
            contracts = set(record.contracts)
            spaces[record.cu] = take(record.space.gas_limit, lambda tx, c=contracts: tx.to in c)
        return [tx for space in spaces.values() for tx in space], spaces

    def _header(
        self, report: Any, gas: dict[str, int], times: dict[str, float], rejected: int
    ) -> BlockHeaderRecord:
        limits = {PBS: self.settings.pbs_gas_limit}
        limits |= {s.cu: s.space.gas_limit for s in self._active()}
        counts = {name: len(idx) for name, idx in self.executor.assignment.items()}
        body = [report.number, bytes.fromhex(self.parent[2:]), bytes.fromhex(report.state_root[2:])]
        digest = "0x" + keccak(rlp.encode(body + [sorted(gas.items())])).hex()
        header = BlockHeaderRecord(
            number=report.number,
            hash=digest,
            parent_hash=self.parent,
            state_root=report.state_root,
            txs=counts,
            gas_used=gas,
            gas_limit=limits,
            exec_ms={name: round(t * 1000, 2) for name, t in times.items()},
            reexecutions=report.reexecutions,
            verified=report.matches if self.settings.verify else False,
            rejected=rejected,
            cus={name: len(pool.cus) for name, pool in self.pools.items()},
            parallelism={s.cu: round(s.space.parallelism, 4) for s in self._active()},
            produced_at=time.time(),
        )
        self.parent = digest
        return header

    # -- subscriptions ----------------------------------------------------------------------
    def _apply_registry(
        self, number: int, txs: Sequence[SignedTransactionAPI], outcomes: Sequence[Any], state: Any
    ) -> None:
        for tx, outcome in zip(txs, outcomes, strict=True):
            if not is_registry_call(tx) or not outcome.success:
                continue
            try:
                request = parse(tx, state)
            except SubscriptionError as err:
                self.requested.pop(subscription_id(tx.hash), None)
                self._event(number, "subscription", f"refused 0x{tx.hash.hex()}: {err}")
                continue
            if isinstance(request, Subscribe):
                self._subscribe(number, request)
            else:
                self._cancel(number, request)
        self._seat_waiting(number)

    def _subscribe(self, number: int, request: Subscribe) -> None:
        self.requested.pop(request.id, None)
        if request.id in self.subscriptions:
            return
        record = SubscriptionRecord(
            request.id,
            request.subscriber,
            request.contracts,
            request.stake,
            "waiting",
            number,
            len(self.subscriptions),
        )
        self.subscriptions[request.id] = record
        self._event(number, "subscription", f"{request.id} requested, stake {request.stake}")

    def _cancel(self, number: int, request: Cancel) -> None:
        record = self.subscriptions.get(request.id)
        if record is None or record.subscriber != request.subscriber:
            self._event(number, "subscription", f"cancel of {request.id} refused")
            return
        if record.cu is not None:
            pool = self.pools.pop(record.cu)
            for cu in pool.cus:
                cu.shutdown()
            pool.close()
            self._event(
                number, "scale", f"{record.cu} released by {request.id}", {"pool": record.cu}
            )
        record.status, record.cu = "cancelled", None
        self._event(number, "subscription", f"{request.id} cancelled")

    def _seat_waiting(self, number: int) -> None:
        """Waiting subscriptions get a CU of their own, highest stake first."""
        waiting = [s for s in self.subscriptions.values() if s.status == "waiting"]
        if not waiting:
            return
        free = self.settings.ebs_slots - len(self._active())
        bids = [Bid(s.id, s.stake, s.order) for s in waiting]
        winners, _ = auction(bids, free)
        for bid in winners:
            record = self.subscriptions[bid.subscription]
            cu = self._new_cu()
            if cu is None:
                self._event(number, "pending", f"no room for a CU for {record.id}; retrying")
                break
            record.cu, record.status, record.active_since = cu.name, "active", number + 1
            record.space = ElasticSpace(record.id, frozenset(record.contracts), cu.size)
            record.space.open(self.settings.pbs_gas_limit)
            self.pools[cu.name] = CuPool(cu.name, [cu], self._failure)
            self._event(
                number,
                "subscription",
                f"{record.id} active from block {number + 1} on {cu.name}",
                {"pool": cu.name, "gas_limit": record.space.gas_limit},
            )

    def _adapt_spaces(self, number: int, gas: dict[str, int], times: dict[str, float]) -> None:
        for record in self._active():
            if record.active_since is not None and record.active_since <= number:
                t_ebs = times.get(record.cu, 0.0)
                used = gas.get(record.cu, 0)
                record.space.after_block(number, used, t_ebs, self.settings.pbs_gas_limit)

    # -- scaling ----------------------------------------------------------------------------
    def _scale(self, number: int, pbs_seconds: float) -> None:
        pool = self.pools[PBS]
        policy = self.settings.policy
        demand = pbs_seconds * len(pool.cus) / self.settings.block_interval
        load = self.loads[PBS]
        load.record(demand, policy.window)
        if self.pending_cus:
            self._grow(number, self.pending_cus, "retrying a pending scale-up")
        proposal = decide(PBS, load, len(pool.cus), number, policy)
        if proposal is None:
            return
        self._event(
            number,
            "proposal",
            f"{proposal.pool}: {proposal.reason}, propose "
            f"{proposal.current} -> {proposal.target} CUs",
            asdict(proposal),
        )
        outcome = vote(
            self.validators,
            load.demand,
            proposal.current,
            proposal.scale_up,
            (policy.up, policy.down),
            self.rng,
        )
        ballots = [asdict(b) for b in outcome.ballots]
        verdict = "approved" if outcome.approved else "rejected"
        self._event(
            number,
            "vote",
            f"{verdict}: {outcome.approving_stake} of {outcome.total_stake} stake",
            {"ballots": ballots},
        )
        load.restart()
        if outcome.approved:
            self._step(number, proposal)

    def _step(self, number: int, proposal: Proposal) -> None:
        pool = self.pools[PBS]
        if proposal.scale_up:
            self._grow(number, proposal.target - proposal.current, proposal.reason)
            return
        while len(pool.cus) > proposal.target:
            cu = pool.cus.pop()
            cu.shutdown()
            self._event(number, "scale", f"{PBS}: removed {cu.name}", {"cus": len(pool.cus)})

    def _grow(self, number: int, count: int, reason: str) -> None:
        pool = self.pools[PBS]
        previously, self.pending_cus = self.pending_cus, 0
        for placed in range(count):
            cu = self._new_cu()
            if cu is None:
                self.pending_cus = count - placed
                if self.pending_cus == previously:
                    return  # still waiting, already said
                self._event(
                    number,
                    "pending",
                    f"{PBS}: {self.pending_cus} CUs cannot be "
                    "placed yet (not enough CPUs); retried every block",
                )
                return
            pool.cus.append(cu)
            self._event(
                number, "scale", f"{PBS}: added {cu.name} ({reason})", {"cus": len(pool.cus)}
            )

    def _new_cu(self) -> Any:
        return self.make_cu(next(self._cu_names), self.settings.cu_cores)

    def _placed_cu(self, timeout: float) -> Any:
        """A CU, waiting up to ``timeout`` seconds for the cluster to place one (a new
        cluster's worker nodes may still be starting)."""
        deadline = time.monotonic() + timeout
        while (cu := self._new_cu()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster placed no basic Compute Unit in {timeout} s")
            time.sleep(1.0)
        return cu

    # -- reporting --------------------------------------------------------------------------
    def _event(self, number: int, kind: str, message: str, data: dict | None = None) -> None:
        self.events.append(Event(number, kind, message, data or {}))

    def _failure(self, message: str) -> None:
        self._event(self.number + 1, "failure", message)

    def subscription_view(self, subscription: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.subscriptions.get(subscription)
            if record is not None:
                return record.view()
            request = self.requested.get(subscription)
            if request is None:
                return None
            return {
                "id": request.id,
                "subscriber": "0x" + request.subscriber.hex(),
                "contracts": ["0x" + c.hex() for c in request.contracts],
                "stake": str(request.stake),
                "status": "pending",
            }

    def cluster(self) -> dict[str, Any]:
        with self.lock:
            return {
                "pools": {
                    name: {"cus": [cu.name for cu in pool.cus], "workers": pool.size}
                    for name, pool in self.pools.items()
                },
                "load": {PBS: round(self.loads[PBS].demand / len(self.pools[PBS].cus), 4)},
                "pending_cus": self.pending_cus,
                "recent_votes": [asdict(e) for e in self.events if e.kind == "vote"][-5:],
            }

    def close(self) -> None:
        for pool in self.pools.values():
            for cu in pool.cus:
                cu.shutdown()
            pool.close()
        self.executor.close()
        self.chain.close()
        self.table.close()
