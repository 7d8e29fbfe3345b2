"""The review's SQLite file (PRED.review.sqlite): an append-only log of changes, and all state derived from it.

Every change a reviewer makes is one appended row of `changes`: the row id, the field (NULL for a change of
the row's status), the old and new value (JSON; NULL for no field), the model's confidence for the field, the
row's status after the change, and the time. Nothing is ever updated or deleted (triggers refuse it). The
latest state of a row is its changes replayed in order; undo appends one row per change it takes back, each
naming the change it undoes, and replay skips the undone ones. So the log is also the audit trail.

The file is in WAL mode with synchronous=FULL: a change is on disk when `record` returns, so a server killed
with SIGKILL, or a machine that loses power, loses no change the page was told was saved. `meta` holds what
the file was made for (the predictions' checksum, the queue's settings); `version(row)` (the seq of the row's
last change) lets two tabs find out that a row changed under them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError

FORMAT = 1
STATUSES = ("open", "accepted", "skipped", "unusable")  # open: no decision yet (edits alone keep a row open)
REVIEWED = ("accepted", "unusable")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action INTEGER NOT NULL,      -- changes made by one request share it; undo takes back a whole action
    row_id TEXT NOT NULL,
    field TEXT,                   -- NULL: a change of the row's status
    old TEXT,                     -- JSON of the value (or the status) before; NULL: no such field
    new TEXT,                     -- JSON of the value (or the status) after; NULL: no such field
    confidence REAL,              -- the model's confidence for the field
    status TEXT NOT NULL,         -- the row's status after the change
    at TEXT NOT NULL,             -- UTC, ISO 8601
    undoes INTEGER REFERENCES changes(seq)
);
CREATE INDEX IF NOT EXISTS changes_row ON changes(row_id);
CREATE TRIGGER IF NOT EXISTS changes_no_update BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS changes_no_delete BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;
"""


class StaleRow(JsontuneError):
    """A save that was based on an older version of the row than the file holds (another tab changed it)."""


@dataclass
class RowState:
    """A row's latest state: its status, the fields a reviewer set ({name: (present, value)}), its version."""

    status: str = "open"
    edits: dict[str, tuple[bool, Any]] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Change:
    """One change to record: a field's new value (present or not), or, with `field` None, a new status."""

    row_id: str
    field: str | None
    present: bool = True
    value: Any = None
    confidence: float | None = None
    model: tuple[bool, Any] = (False, None)  # the field as the model gave it: what it holds until edited


class ReviewStore:
    """The log of one review, opened (or made) at `path` for predictions whose SHA-256 is `csv_sha256`.

    Methods are safe to call from several threads (one lock, one connection); several processes on one file
    are kept apart by SQLite's own locks (a write is one IMMEDIATE transaction that checks versions first)."""

    def __init__(self, path: str | Path, csv_sha256: str, settings: dict[str, Any], *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise JsontuneError(f"{self.path} does not exist.")
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.meta = self._settle_meta(csv_sha256, settings)
        self._states: dict[str, RowState] = {}
        self._seen = 0  # the last seq replayed into _states

    def _settle_meta(self, csv_sha256: str, settings: dict[str, Any]) -> dict[str, Any]:
        """Write the meta of a new file; refuse a file made for other predictions or other settings."""
        with self._lock:
            meta = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}
            if not meta:
                meta = {"format": FORMAT, "csv_sha256": csv_sha256, "created": _now(), **settings}
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
                )
                self._db.execute("COMMIT")
                meta = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}
        if meta.get("csv_sha256") != csv_sha256:
            raise JsontuneError(
                f"{self.path} was made for other predictions than the CSV beside it holds now (another predict "
                "run wrote it since); move the .review.sqlite file aside to review the new predictions, or put "
                "back the CSV it was made for."
            )
        return meta

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.meta.items() if k not in ("format", "csv_sha256", "created")}

    def states(self) -> dict[str, RowState]:
        """Every row that has changes, by id, as of the file's last change (another process's included)."""
        with self._lock:
            return dict(self._refresh())

    def state(self, row_id: str) -> RowState:
        return self.states().get(row_id, RowState())

    def _refresh(self) -> dict[str, RowState]:
        """Replay the rows that changed since the last look, each from its whole history (an undo can take
        back any of its changes)."""
        touched = {r for (r,) in self._db.execute("SELECT DISTINCT row_id FROM changes WHERE seq > ?", (self._seen,))}
        for row_id in touched:
            self._states[row_id] = self._replay(row_id)
        self._seen = self._db.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
        return self._states

    def _replay(self, row_id: str) -> RowState:
        rows = self._db.execute(
            "SELECT seq, field, new, status, undoes FROM changes WHERE row_id = ? ORDER BY seq", (row_id,)
        ).fetchall()
        undone = {undoes for *_, undoes in rows if undoes is not None}
        state = RowState(version=rows[-1][0] if rows else 0)
        for seq, name, new, status, undoes in rows:
            if undoes is not None or seq in undone:
                continue
            if name is not None:
                state.edits[name] = (new is not None, None if new is None else json.loads(new))
            state.status = status
        return state

    def record(self, changes: list[Change], seen: dict[str, int]) -> int:
        """Append `changes` as one action, once every row in `seen` is still at the version given (else
        StaleRow, and nothing is written). A field change that sets what the row holds already is dropped.
        Returns the action's number (0 when nothing changed)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                states = self._refresh()
                for row_id, version in seen.items():
                    if states.get(row_id, RowState()).version != version:
                        raise StaleRow(f"row {row_id} changed in another tab; reload it.")
                action = self._append(changes, states)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._refresh()
        return action

    def _append(self, changes: list[Change], states: dict[str, RowState]) -> int:
        action, at, written = self._next_action(), _now(), 0
        current = {row_id: RowState(s.status, dict(s.edits)) for row_id, s in states.items()}
        for change in changes:
            state = current.setdefault(change.row_id, RowState())
            if change.field is None:
                if change.value not in STATUSES:
                    raise ValueError(f"status {change.value!r} is not one of {STATUSES}")
                old, new = json.dumps(state.status), json.dumps(change.value)
                state.status = change.value
            else:
                before = state.edits.get(change.field, change.model)
                if before == (change.present, change.value):
                    continue
                old = json.dumps(before[1], ensure_ascii=False) if before[0] else None
                new = json.dumps(change.value, ensure_ascii=False) if change.present else None
                state.edits[change.field] = (change.present, change.value)
            self._db.execute(
                "INSERT INTO changes (action, row_id, field, old, new, confidence, status, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (action, change.row_id, change.field, old, new, change.confidence, state.status, at),
            )
            written += 1
        return action if written else 0

    def _next_action(self) -> int:
        return self._db.execute("SELECT coalesce(max(action), 0) + 1 FROM changes").fetchone()[0]

    def undo(self) -> list[str]:
        """Take back the last action not taken back yet: append a row per change of it, each naming the change
        it undoes. Returns the ids of the rows it changed ([] when there is nothing to undo)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._db.execute(
                    "SELECT max(action) FROM changes WHERE undoes IS NULL AND seq NOT IN "
                    "(SELECT undoes FROM changes WHERE undoes IS NOT NULL)"
                ).fetchone()[0]
                rows = self._db.execute(
                    "SELECT seq, row_id, field, old, new, confidence FROM changes WHERE action = ? ORDER BY seq DESC",
                    (last,),
                ).fetchall()
                at, action = _now(), self._next_action()
                for seq, row_id, name, old, new, confidence in rows:
                    self._db.execute(
                        "INSERT INTO changes (action, row_id, field, old, new, confidence, status, at, undoes)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (action, row_id, name, new, old, confidence, self._status_without(row_id, seq), at, seq),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._refresh()
        return list(dict.fromkeys(row_id for _, row_id, *_ in rows))

    def _status_without(self, row_id: str, seq: int) -> str:
        """The row's status once change `seq` is taken back: that of its last other change still in force."""
        found = self._db.execute(
            "SELECT status FROM changes WHERE row_id = ? AND seq < ? AND undoes IS NULL AND seq NOT IN "
            "(SELECT undoes FROM changes WHERE undoes IS NOT NULL) ORDER BY seq DESC LIMIT 1",
            (row_id, seq),
        ).fetchone()
        return found[0] if found else "open"

    def log(self) -> list[dict[str, Any]]:
        """Every change, oldest first: the audit trail."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM changes ORDER BY seq")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
