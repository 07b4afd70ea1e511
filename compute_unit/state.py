"""The state view py-evm executes against on a Compute Unit.

A ``StateReader`` is anything that answers ``get(key)`` for the state keys of
``storage/keys.py``: State Storage itself or a worker's ``StorageView`` of it (the pre-block
state), a ``PreloadedReader`` (``compute_unit/preload.py``: the block's preloaded keys, then
one of those), a ``CachedReader`` memoizing one for a block, a ``DictSnapshot`` (a state as
a plain mapping: genesis building, tests), or a ``WriteLayer`` stacking applied write sets on
top of another reader (a group's earlier transactions, or the validator's committed prefix).

``OverlayAccountDB`` implements py-evm's ``AccountDatabaseAPI`` over a reader: every value a
transaction reads from below is recorded (its read set), every change is kept in a journaled
overlay (its write set), and nothing below is ever mutated.

Balance credits are lazy: a positive balance change to an account whose balance the
transaction has not looked at (the fee recipient's fee, a plain transfer's recipient, a
refund, a self-destruct's beneficiary) is kept as a commutative credit and added when the
block installs the transaction, so many transactions paying one address do not conflict.
An account read for its nonce, code or existence only is recorded as a ``BlindAccount``,
which credits by other transactions do not make stale. Reading the balance, or writing the
account, folds a pending credit in and records the balance read (``read_holds`` compares).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eth.abc import AccountDatabaseAPI, MetaWitnessAPI
from eth.constants import BLANK_ROOT_HASH, EMPTY_SHA3
from eth.db.journal import get_next_checkpoint
from eth.typing import JournalDBCheckpoint
from eth.vm.interrupt import MissingBytecode
from eth_hash.auto import keccak

from storage.keys import (
    ACCT,
    EMPTY_ACCOUNT,
    SLOT,
    AccountFields,
    StateKey,
    StateReader,
    acct_key,
    code_key,
    slot_key,
)


class BlindAccount(NamedTuple):
    """An account read without looking at its balance: only these fields must stay the same."""

    nonce: int
    code_hash: bytes


def read_holds(seen: Any, current: Any) -> bool:
    """Whether a value a transaction read is still what the state holds."""
    if isinstance(seen, BlindAccount):
        return current is not None and (current.nonce, current.code_hash) == seen
    return seen == current


@dataclass(frozen=True)
class TxAccess:
    """What one transaction read from below and what it changed.

    ``reads`` maps each key to the value first seen below the transaction (a
    ``BlindAccount`` where its balance was not looked at); ``writes`` holds final values of
    changed keys, applied after wiping the storage of ``wiped`` addresses; ``credits`` are
    balance additions still to make on top (address to wei); ``preimages`` maps each Keccak
    hash the execution computed of one or two words to its input (for the hint learner).
    """

    reads: dict[StateKey, Any]
    writes: dict[StateKey, Any]
    wiped: frozenset[bytes] = frozenset()
    credits: dict[bytes, int] = field(default_factory=dict)
    preimages: dict[bytes, bytes] = field(default_factory=dict)


class DictSnapshot:
    """A whole state held as a plain mapping of state key to value (absent keys are empty)."""

    def __init__(self, data: Mapping[StateKey, Any] | None = None) -> None:
        self.data: dict[StateKey, Any] = dict(data or {})
        self._slots: dict[bytes, set[int]] | None = None

    def get(self, key: StateKey) -> Any:
        return self.data.get(key)

    def storage_slots(self, address: bytes) -> Iterable[int]:
        if self._slots is None:
            self._slots = {}
            for key in self.data:
                if key[0] == SLOT:
                    self._slots.setdefault(key[1], set()).add(key[2])
        return tuple(self._slots.get(address, ()))

    def apply(self, writes: Mapping[StateKey, Any], wiped: Iterable[bytes] = ()) -> None:
        """Apply a block's write set in place (wipes first, then the writes)."""
        for address in wiped:
            for slot in self.storage_slots(address):
                self.data.pop(slot_key(address, slot), None)
            if self._slots is not None:
                self._slots.pop(address, None)
        for key, value in writes.items():
            if value is None or (key[0] == SLOT and value == 0):
                self.data.pop(key, None)
                if key[0] == SLOT and self._slots is not None:
                    self._slots.get(key[1], set()).discard(key[2])
            else:
                self.data[key] = value
                if key[0] == SLOT and self._slots is not None:
                    self._slots.setdefault(key[1], set()).add(key[2])


class CachedReader:
    """Memoizes another reader for one block: the state below does not change meanwhile."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.values: dict[StateKey, Any] = {}

    def get(self, key: StateKey) -> Any:
        try:
            return self.values[key]
        except KeyError:
            value = self.values[key] = self.base.get(key)
            return value

    def seed(self, values: Mapping[StateKey, Any]) -> None:
        """Values another reader of the same state read (a worker's), so they are not read
        again here; what is held already stays."""
        for key, value in values.items():
            self.values.setdefault(key, value)


class RecordingReader(CachedReader):
    """``CachedReader`` that also keeps what it read since the last ``take``: a worker's
    pre-block reads, sent back with its results so the coordinator does not read them from
    the store again (``CachedReader.seed``)."""

    def __init__(self, base: StateReader) -> None:
        super().__init__(base)
        self._new: dict[StateKey, Any] = {}

    def get(self, key: StateKey) -> Any:
        try:
            return self.values[key]
        except KeyError:
            value = self.values[key] = self._new[key] = self.base.get(key)
            return value

    def take(self) -> dict[StateKey, Any]:
        new, self._new = self._new, {}
        return new


class WriteLayer:
    """Write sets applied in order on top of a reader, remembering which tx wrote each key."""

    def __init__(self, base: StateReader) -> None:
        self.base = base
        self.writes: dict[StateKey, Any] = {}
        self.writers: dict[StateKey, int] = {}
        self.wiped: set[bytes] = set()

    def get(self, key: StateKey) -> Any:
        if key in self.writes:
            return self.writes[key]
        if key[0] == SLOT and key[1] in self.wiped:
            return None
        return self.base.get(key)

    def writer_of(self, key: StateKey) -> int | None:
        """Index of the last applied transaction that wrote ``key`` (None: below the layer)."""
        return self.writers.get(key)

    def apply(self, access: TxAccess, tx_index: int) -> dict[StateKey, Any]:
        """Install one transaction's access; return the keys it set (credits folded in)."""
        changed: dict[StateKey, Any] = {}
        for address in access.wiped:
            self.wiped.add(address)
            for key in [k for k in self.writes if k[0] == SLOT and k[1] == address]:
                changed[key] = 0
        changed.update(access.writes)
        for address, amount in access.credits.items():
            key = acct_key(address)
            account = (changed[key] if key in changed else self.get(key)) or EMPTY_ACCOUNT
            changed[key] = account._replace(balance=account.balance + amount)
        self.writes.update(changed)
        self.writers.update(dict.fromkeys(changed, tx_index))
        return changed


class OverlayAccountDB(AccountDatabaseAPI):
    """py-evm account database over a ``StateReader`` that records one transaction's access.

    Call ``finish_transaction`` after each transaction: it returns the ``TxAccess`` and
    starts a fresh overlay. Checkpoints are journal lengths; discarding one undoes every
    journal entry made after it.
    """

    def __init__(self, db: StateReader, state_root: bytes = BLANK_ROOT_HASH) -> None:
        self._view = db
        # Keccak preimages are for the hint learner: a block whose planner learns nothing
        # from them does not record them (nor send them back from the workers)
        self.record_preimages = True
        self._reset()

    def _reset(self) -> None:
        self._reads: dict[StateKey, Any] = {}
        self._writes: dict[StateKey, Any] = {}
        self._wiped: set[bytes] = set()
        self._warm: set[Any] = set()
        self._credits: dict[bytes, int] = {}
        self._preimages: dict[bytes, bytes] = {}
        self._balance_seen: set[bytes] = set()
        self._journal: list[tuple[Any, ...]] = []
        self._checkpoints: dict[int, int] = {}

    def finish_transaction(self) -> TxAccess:
        """Close the current transaction: its access, with writes that changed nothing dropped."""
        reads = self._reads
        writes = {
            key: value
            for key, value in self._writes.items()
            if key not in reads or reads[key] != value or key[1] in self._wiped
        }
        for key, value in reads.items():
            if key[0] == ACCT and value is not None and key[1] not in self._balance_seen:
                reads[key] = BlindAccount(value.nonce, value.code_hash)
        access = TxAccess(
            reads=reads,
            writes=writes,
            wiped=frozenset(self._wiped),
            credits={a: amount for a, amount in self._credits.items() if amount},
            preimages=self._preimages,
        )
        self._reset()
        return access

    # -- raw access ------------------------------------------------------------------------
    def _read(self, key: StateKey) -> Any:
        if key in self._writes:
            return self._writes[key]
        if key[0] == SLOT and key[1] in self._wiped:
            return None
        return self._read_below(key)

    def _read_below(self, key: StateKey) -> Any:
        if key in self._reads:
            return self._reads[key]
        value = self._view.get(key)
        self._reads[key] = value
        return value

    def _write(self, key: StateKey, value: Any) -> None:
        self._journal.append(("w", key, key in self._writes, self._writes.get(key)))
        self._writes[key] = value

    def _account(self, address: bytes) -> AccountFields | None:
        """The account as far as nonce, code and existence go (its balance may lack credits)."""
        return self._read(acct_key(address))

    def _full_account(self, address: bytes) -> AccountFields | None:
        """The account with its balance: a pending credit is folded in as a write."""
        self._balance_seen.add(address)  # a read stays a read even if its frame reverts
        credit = self._credits.get(address, 0)
        if not credit:
            return self._account(address)
        self._set_credit(address, 0)
        base = self._account(address) or EMPTY_ACCOUNT
        account = base._replace(balance=base.balance + credit)
        self._write(acct_key(address), account)
        return account

    def _set_account(self, address: bytes, account: AccountFields | None) -> None:
        self._full_account(address)
        self._write(acct_key(address), account)

    def _set_credit(self, address: bytes, amount: int) -> None:
        self._journal.append(("c", address, self._credits.get(address, 0)))
        self._credits[address] = amount

    def credit(self, address: bytes, amount: int) -> None:
        """Add ``amount`` (> 0) to a balance, lazily unless the balance was already looked at."""
        if address in self._balance_seen:
            self.set_balance(address, self.get_balance(address) + amount)
        else:
            self._set_credit(address, self._credits.get(address, 0) + amount)

    def note_preimage(self, digest: bytes, data: bytes) -> None:
        """A Keccak hash the execution computed (``compute_unit/preimages.py``)."""
        if self.record_preimages:
            self._preimages[digest] = data

    # -- storage ---------------------------------------------------------------------------
    def get_storage(self, address: bytes, slot: int, from_journal: bool = True) -> int:
        key = slot_key(address, slot)
        value = self._read(key) if from_journal else self._read_below(key)
        return value or 0

    def set_storage(self, address: bytes, slot: int, value: int) -> None:
        self._write(slot_key(address, slot), value)

    def delete_storage(self, address: bytes) -> None:
        if address not in self._wiped:
            self._journal.append(("x", address))
            self._wiped.add(address)
        for key in [k for k in self._writes if k[0] == SLOT and k[1] == address]:
            self._write(key, 0)

    def is_storage_warm(self, address: bytes, slot: int) -> bool:
        return (address, slot) in self._warm

    def mark_storage_warm(self, address: bytes, slot: int) -> None:
        self._mark_warm((address, slot))

    def _mark_warm(self, item: Any) -> None:
        if item not in self._warm:
            self._journal.append(("h", item))
            self._warm.add(item)

    # -- balance, nonce ----------------------------------------------------------------------
    def get_balance(self, address: bytes) -> int:
        account = self._full_account(address)
        return account.balance if account else 0

    def set_balance(self, address: bytes, balance: int) -> None:
        account = self._full_account(address) or EMPTY_ACCOUNT
        self._set_account(address, account._replace(balance=balance))

    def get_nonce(self, address: bytes) -> int:
        account = self._account(address)
        return account.nonce if account else 0

    def set_nonce(self, address: bytes, nonce: int) -> None:
        account = self._full_account(address) or EMPTY_ACCOUNT
        self._set_account(address, account._replace(nonce=nonce))

    def increment_nonce(self, address: bytes) -> None:
        self.set_nonce(address, self.get_nonce(address) + 1)

    # -- code ------------------------------------------------------------------------------
    def get_code(self, address: bytes) -> bytes:
        code_hash = self.get_code_hash(address)
        if code_hash == EMPTY_SHA3:
            return b""
        code = self._read(code_key(code_hash))
        if code is None:
            raise MissingBytecode(code_hash)
        return code

    def set_code(self, address: bytes, code: bytes) -> None:
        code_hash = keccak(code)
        self._write(code_key(code_hash), code)
        account = self._full_account(address) or EMPTY_ACCOUNT
        self._set_account(address, account._replace(code_hash=code_hash))

    def get_code_hash(self, address: bytes) -> bytes:
        account = self._account(address)
        return account.code_hash if account else EMPTY_SHA3

    def delete_code(self, address: bytes) -> None:
        account = self._full_account(address) or EMPTY_ACCOUNT
        self._set_account(address, account._replace(code_hash=EMPTY_SHA3))

    # -- accounts --------------------------------------------------------------------------
    def account_has_code_or_nonce(self, address: bytes) -> bool:
        return self.get_nonce(address) != 0 or self.get_code_hash(address) != EMPTY_SHA3

    def delete_account(self, address: bytes) -> None:
        self.delete_storage(address)
        self._set_account(address, None)

    def account_exists(self, address: bytes) -> bool:
        return self._credits.get(address, 0) > 0 or self._account(address) is not None

    def touch_account(self, address: bytes) -> None:
        """Create the account if absent; an existing one (or a credited one) is left alone."""
        if not self.account_exists(address):
            self._set_account(address, EMPTY_ACCOUNT)

    def account_is_empty(self, address: bytes) -> bool:
        if self._credits.get(address, 0) > 0:
            return False
        account = self._account(address)
        if account is None:
            return True
        if account.nonce or account.code_hash != EMPTY_SHA3:
            return False
        return self.get_balance(address) == 0

    def is_address_warm(self, address: bytes) -> bool:
        return address in self._warm

    def mark_address_warm(self, address: bytes) -> None:
        self._mark_warm(address)

    # -- journal ---------------------------------------------------------------------------
    def record(self) -> JournalDBCheckpoint:
        checkpoint = get_next_checkpoint()  # py-evm's ids: transient storage shares them
        self._checkpoints[checkpoint] = len(self._journal)
        return checkpoint

    def discard(self, checkpoint: JournalDBCheckpoint) -> None:
        length = self._checkpoints.pop(checkpoint)
        while len(self._journal) > length:
            entry = self._journal.pop()
            kind = entry[0]
            if kind == "w":
                _, key, existed, old = entry
                if existed:
                    self._writes[key] = old
                else:
                    del self._writes[key]
            elif kind == "c":
                self._credits[entry[1]] = entry[2]
            elif kind == "x":
                self._wiped.discard(entry[1])
            else:
                self._warm.discard(entry[1])

    def commit(self, checkpoint: JournalDBCheckpoint) -> None:
        """Nested changes stay in the journal so an enclosing discard can still undo them."""
        del self._checkpoints[checkpoint]

    def lock_changes(self) -> None:
        """Make the changes so far un-revertable and forget warm accesses (py-evm semantics)."""
        self._journal.clear()
        self._checkpoints.clear()
        self._warm.clear()

    # -- roots are the committer's job -----------------------------------------------------
    @property
    def state_root(self) -> bytes:
        return BLANK_ROOT_HASH

    @state_root.setter
    def state_root(self, value: bytes) -> None:
        """Reverts restore py-evm's root alongside the journal; the overlay has no root."""

    def has_root(self, state_root: bytes) -> bool:
        return False

    def make_state_root(self) -> bytes:
        raise NotImplementedError(
            "the overlay has no trie: state roots come from applying write sets (committer)"
        )

    def persist(self) -> MetaWitnessAPI:
        raise NotImplementedError("the overlay never persists: write sets go to the committer")
