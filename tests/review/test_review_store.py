"""The review log: SQLite in WAL mode with synchronous=FULL, append-only, state, undo and stale saves from it."""

from __future__ import annotations

import sqlite3

import pytest

from jsontune.errors import JsontuneError
from jsontune.review.store import Change, ReviewStore, StaleRow

SETTINGS = {"below": 0.8, "share": None, "audit_share": 0.05, "seed": 1, "precision": 0.95}


@pytest.fixture
def store(tmp_path):
    made = ReviewStore(tmp_path / "pred.csv.review.sqlite", "sha-1", SETTINGS)
    yield made
    made.close()


def test_the_file_is_wal_with_full_sync_and_keeps_its_settings(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.settings() == SETTINGS


def test_every_change_is_one_appended_row_and_state_is_replayed_from_them(store):
    store.record([Change("r1", "cantidad", True, 100, 0.12, model=(True, 10))], {"r1": 0})
    version = store.state("r1").version
    store.record(
        [Change("r1", "precio", False, model=(True, 50)), Change("r1", None, value="accepted")], {"r1": version}
    )
    state = store.state("r1")
    assert state.status == "accepted" and state.edits == {"cantidad": (True, 100), "precio": (False, None)}
    log = store.log()
    assert [(c["row_id"], c["field"], c["old"], c["new"], c["confidence"], c["status"]) for c in log] == [
        ("r1", "cantidad", "10", "100", 0.12, "open"),
        ("r1", "precio", "50", None, None, "open"),
        ("r1", None, '"open"', '"accepted"', None, "accepted"),
    ]
    assert log[1]["action"] == log[2]["action"] != log[0]["action"] and all(c["at"] for c in log)


def test_the_log_refuses_updates_and_deletes(store):
    store.record([Change("r1", "cantidad", True, 1)], {})
    for sql in ("UPDATE changes SET new = '2'", "DELETE FROM changes"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store._db.execute(sql)
    assert len(store.log()) == 1


def test_a_save_from_an_older_version_is_refused_and_writes_nothing(store):
    store.record([Change("r1", "cantidad", True, 1)], {"r1": 0})
    with pytest.raises(StaleRow, match="row r1 changed in another tab; reload it"):
        store.record([Change("r1", "cantidad", True, 2)], {"r1": 0})
    assert store.state("r1").edits == {"cantidad": (True, 1)} and len(store.log()) == 1


def test_undo_takes_back_the_last_action_whole_and_goes_further_back_each_time(store):
    store.record([Change("r1", "cantidad", True, 1)], {})
    store.record([Change("r1", "cantidad", True, 2), Change("r1", None, value="accepted")], {})
    store.record([Change("r2", None, value="unusable")], {})
    assert store.undo() == ["r2"] and store.state("r2").status == "open"
    assert store.undo() == ["r1"]
    assert store.state("r1").status == "open" and store.state("r1").edits == {"cantidad": (True, 1)}
    assert store.undo() == ["r1"] and store.state("r1").edits == {}
    assert store.undo() == []
    undos = [c for c in store.log() if c["undoes"]]
    assert len(undos) == 4 and all(c["undoes"] < c["seq"] for c in undos)
    assert [c["new"] for c in undos if c["field"] == "cantidad"] == ["1", None]  # old and new swapped


def test_a_change_to_what_the_row_holds_already_is_not_recorded(store):
    assert store.record([Change("r1", "cantidad", True, 1, model=(True, 1))], {}) == 0  # the model's own value
    store.record([Change("r1", "cantidad", True, 2, model=(True, 1))], {})
    assert store.record([Change("r1", "cantidad", True, 2, model=(True, 1))], {}) == 0 and len(store.log()) == 1


def test_reopened_the_file_has_every_change_and_another_csv_is_refused(store, tmp_path):
    store.record([Change("r1", "cantidad", True, 5), Change("r1", None, value="accepted")], {})
    store.close()
    again = ReviewStore(store.path, "sha-1", {"ignored": True})
    assert again.state("r1").status == "accepted" and again.settings() == SETTINGS
    again.close()
    with pytest.raises(JsontuneError, match="was made for other predictions"):
        ReviewStore(store.path, "sha-2", SETTINGS)


def test_two_connections_see_each_others_changes(store):
    other = ReviewStore(store.path, "sha-1", SETTINGS)
    try:
        store.record([Change("r1", "cantidad", True, 5)], {"r1": 0})
        seen = other.state("r1")
        assert seen.edits == {"cantidad": (True, 5)}
        other.record([Change("r1", "cantidad", True, 6)], {"r1": seen.version})
        with pytest.raises(StaleRow):
            store.record([Change("r1", "cantidad", True, 7)], {"r1": seen.version})
        assert store.state("r1").edits == {"cantidad": (True, 6)}
    finally:
        other.close()
