"""py-evm's own state trie, fed with state-key items and write sets.

The oracle (``compute_unit/sequential.py``) loads its pre-state with ``load_state``; tests and
the storage benchmark check the State Commitment's roots against ``TrieCommitter`` (py-evm's
``AccountDB`` over py-trie, in memory), which applies a block's write set and recomputes the
root the way py-evm does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from eth.abc import AccountDatabaseAPI
from eth.constants import EMPTY_SHA3
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB

from storage.keys import ACCT, CODE, SLOT, AccountFields, StateDump, StateKey


def load_state(account_db: AccountDatabaseAPI, items: Iterable[tuple[StateKey, Any]]) -> bytes:
    """Write a whole state (state-key items) into a py-evm account database; return its root."""
    dump = StateDump.from_items(items)
    for address, account in dump.accounts.items():
        _set_account(account_db, address, account, dump.code)
    for address, slots in dump.storage.items():
        for slot, value in slots.items():
            account_db.set_storage(address, slot, value)
    account_db.persist()
    return account_db.state_root


def _set_account(
    account_db: AccountDatabaseAPI,
    address: bytes,
    account: AccountFields,
    code_by_hash: Mapping[bytes, bytes],
) -> None:
    account_db.set_nonce(address, account.nonce)
    account_db.set_balance(address, account.balance)
    if account.code_hash != account_db.get_code_hash(address):
        if account.code_hash == EMPTY_SHA3:
            account_db.delete_code(address)
        else:
            account_db.set_code(address, code_by_hash[account.code_hash])


class TrieCommitter:
    """The reference: state in py-evm's trie; applies write sets, returns state roots."""

    def __init__(self, genesis: Iterable[tuple[StateKey, Any]]) -> None:
        self.account_db = AccountDB(AtomicDB())
        self._code: dict[bytes, bytes] = {}
        self.state_root = load_state(self.account_db, genesis)

    def commit(
        self,
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        code_of: Callable[[bytes], bytes],
    ) -> bytes:
        """Apply one block's write set (wipes first) and return the new state root.

        ``code_of`` resolves code hashes the write set points at but does not carry.
        """
        self._apply(writes, wiped, code_of)
        return self._persist()

    def commit_steps(
        self,
        steps: Iterable[tuple[Mapping[StateKey, Any], Iterable[bytes]]],
        code_of: Callable[[bytes], bytes],
    ) -> list[bytes]:
        """Commit a block one transaction at a time; the state root after each one."""
        roots = []
        for writes, wiped in steps:
            self._apply(writes, wiped, code_of)
            roots.append(self.account_db.make_state_root())
        self._persist()
        return roots

    def _persist(self) -> bytes:
        self.account_db.persist()
        self.state_root = self.account_db.state_root
        return self.state_root

    def _apply(
        self,
        writes: Mapping[StateKey, Any],
        wiped: Iterable[bytes],
        code_of: Callable[[bytes], bytes],
    ) -> None:
        adb = self.account_db
        for address in wiped:
            adb.delete_storage(address)
        code = {key[1]: value for key, value in writes.items() if key[0] == CODE}
        code_by_hash = _CodeLookup(code, code_of)
        for key, value in writes.items():
            if key[0] != ACCT:
                continue
            if value is None:
                adb.delete_account(key[1])
            else:
                _set_account(adb, key[1], value, code_by_hash)
        for key, value in writes.items():
            if key[0] == SLOT:
                adb.set_storage(key[1], key[2], value or 0)


class _CodeLookup(Mapping[bytes, bytes]):
    """Code by hash: the block's own new code first, then the committed state's."""

    def __init__(self, fresh: dict[bytes, bytes], code_of: Callable[[bytes], bytes]) -> None:
        self._fresh, self._code_of = fresh, code_of

    def __getitem__(self, code_hash: bytes) -> bytes:
        return self._fresh[code_hash] if code_hash in self._fresh else self._code_of(code_hash)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._fresh)

    def __len__(self) -> int:
        return len(self._fresh)
