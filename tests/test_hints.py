"""The hint table on disk: it survives a restart byte for byte, its size cap evicts the least
useful entries, and a corrupt table is rebuilt from scratch with a warning, never trusted."""

import logging

import pytest
from rocksdict import Rdict
from support import env_for, generator, inline_chain, small_genesis

from coordinator.hints import HintEntry, HintTable, Rule, TxFields, evaluate
from coordinator.learner import HintLearner
from coordinator.planner import tx_fields


def learned_table(path, blocks: int = 2) -> HintTable:
    """A table learned from real executions of the workload's mix."""
    table = HintTable(path)
    learner = HintLearner(table)
    gen = generator(small_genesis(), "transfer=0.2,erc20=0.4,swap=0.3,mint=0.1", 0.8, 11)
    with inline_chain(small_genesis()) as chain:
        for number in range(1, blocks + 1):
            txs = gen.block(60)
            _, parallel, _ = chain.run_block(env_for(number, txs), txs)
            for tx, outcome in zip(txs, parallel.block.outcomes, strict=True):
                learner.learn(tx_fields(tx), outcome.access, outcome.gas_used, number)
    table.save()
    return table


def test_the_table_survives_a_restart_byte_for_byte(tmp_path):
    table = learned_table(tmp_path / "hints")
    records = table.dump()
    entries = {key: entry.encode() for key, entry in table.entries.items()}
    assert len(records) >= 5 and records == entries
    table.close()
    reopened = HintTable(tmp_path / "hints")
    assert reopened.rebuilt is None
    assert reopened.dump() == records
    assert {key: entry.encode() for key, entry in reopened.entries.items()} == entries
    reopened.save()  # nothing changed: saving again writes the same bytes
    assert reopened.dump() == records
    reopened.close()


def test_the_size_cap_evicts_the_least_useful_entries(tmp_path):
    table = learned_table(tmp_path / "hints")
    full = table.size_bytes
    by_use = sorted(table, key=lambda e: (e.calls, e.last_block))
    least, most = by_use[0].key, by_use[-1].key
    table.cap_bytes = full - 1  # one entry too many: the least used one goes
    table.entry(most)  # touched: saved again
    table.save()
    assert table.size_bytes <= full - 1
    assert least not in table.entries
    assert set(table.entries) == {entry.key for entry in by_use[1:]}
    assert set(table.dump()) == set(table.entries)
    table.cap_bytes = 0
    table.save()
    assert len(table) == 0 and table.dump() == {}
    table.close()


def test_a_garbled_record_makes_the_table_rebuilt_with_a_warning(tmp_path, caplog):
    table = learned_table(tmp_path / "hints", blocks=1)
    key = next(iter(table.entries))
    table.close()
    db = Rdict(str(tmp_path / "hints"))
    record = bytearray(db[key])
    record[-3] ^= 0x01  # one bit, inside the JSON: the checksum catches it
    db[key] = bytes(record)
    db.close()
    with caplog.at_level(logging.WARNING):
        reopened = HintTable(tmp_path / "hints")
    assert reopened.rebuilt and "checksum" in reopened.rebuilt
    assert "rebuilding it from scratch" in caplog.text
    assert len(reopened) == 0 and reopened.dump() == {}
    reopened.close()


def test_damaged_database_files_make_the_table_rebuilt(tmp_path, caplog):
    learned_table(tmp_path / "hints", blocks=1).close()
    (tmp_path / "hints" / "CURRENT").write_text("garbage\n")
    with caplog.at_level(logging.WARNING):
        reopened = HintTable(tmp_path / "hints")
    assert reopened.rebuilt and len(reopened) == 0
    reopened.entry(b"k" * 24).calls = 1
    reopened.close()
    assert len(HintTable(tmp_path / "hints")) == 1  # the rebuilt table works


@pytest.mark.parametrize(
    "record",
    [b"", b"\0\0\0\0{}", HintEntry(b"x").encode()[:-1], b"\xff" * 40],
)
def test_records_that_are_not_entries_are_refused(record):
    with pytest.raises((ValueError, KeyError, TypeError)):
        HintEntry.decode(record)


def test_expressions_round_trip_and_evaluate():
    sender, to = b"\x11" * 20, b"\x22" * 20
    tx = TxFields(sender, to, b"\xaa\xbb\xcc\xdd" + (7).to_bytes(32, "big"))
    rule = Rule("slot", ("to",), ("hash", ("from",), ("hash", ("word", 0), ("const", b"\0" * 32))))
    entry = HintEntry(tx.entry_key, calls=3, rules={rule.id: rule})
    assert HintEntry.decode(entry.encode()).encode() == entry.encode()
    assert evaluate(("word", 1), tx) is None  # no such argument
    key = rule.key(tx)
    assert key[0] == "slot" and key[1] == to
    assert not rule.static_in(tx.entry_key)
    assert Rule("slot", ("to",), ("const", b"\0" * 32)).static_in(tx.entry_key)
