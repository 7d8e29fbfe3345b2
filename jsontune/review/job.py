"""The review job: a predictions CSV, the texts it was made from, its queue and its log, as the page, the
export and eval use them.

    review = Review.open("runs/pred.csv")          # texts from the input file predict's manifest names
    review.decide("synth-000123", "accepted", {"cantidad": "12"}, version=0)
    review.export("corrections.jsonl")

A predictions CSV holds no texts: predict's manifest names its input file (path, SHA-256, columns), or
`input` says where it is now; every id of the CSV must be in it. The log lives beside the CSV, in
PRED.review.sqlite (`store.ReviewStore`), made for that CSV's checksum and the queue's settings: a CSV that
changed since (another predict run) is refused, and so are other settings for the same file.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsontune.errors import JsontuneError
from jsontune.review import fields as F
from jsontune.review.queue import plan
from jsontune.review.store import REVIEWED, Change, ReviewStore, RowState

if TYPE_CHECKING:
    from jsontune.data import Record

DEFAULT_AUDIT_SHARE = 0.05
DEFAULT_PRECISION = 0.95  # eval's first coverage-at-precision figure


def review_db_path(pred: str | Path) -> Path:
    """Where the review of predictions PRED is kept: PRED.review.sqlite, beside it."""
    pred = Path(pred)
    return pred.with_name(pred.name + ".review.sqlite")


@dataclass(frozen=True)
class Row:
    """One prediction: its text, the model's answer (None: no JSON), field confidences and its lowest, how
    the answer was read ("strict" JSON, "repaired", or "missing"), and the input's own target, where it has one:
    its keys and types name fields no answer may have (the page does not show its values)."""

    id: str
    text: str
    answer: dict[str, Any] | None
    confidences: dict[str, float | None] | None
    lowest: float | None
    kind: str
    target: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueueSettings:
    """What a review's queue is made by (kept in its file): `metrics.review_queue`'s below / share, the audit
    share and the seed that draws the audit rows."""

    below: float | None = None
    share: float | None = None
    audit_share: float = DEFAULT_AUDIT_SHARE
    seed: int = 0

    def __post_init__(self) -> None:
        for flag, value in (("--review-below", self.below), ("--review-share", self.share)):
            if value is not None and not 0 <= value <= 1:
                raise JsontuneError(f"{flag} is a share in [0, 1], got {value:g}.")
        if not 0 <= self.audit_share <= 1:
            raise JsontuneError(f"--audit-share is a share in [0, 1], got {self.audit_share:g}.")


class Review:
    """A review of one predictions CSV: its rows, their queue and the log of changes (see the module doc)."""

    def __init__(self, pred: Path, rows: list[Row], settings: QueueSettings, store: ReviewStore, precision: float):
        self.pred, self.settings, self.store, self.precision = pred, settings, store, precision
        self.rows = {row.id: row for row in rows}
        self.ids = [row.id for row in rows]
        answers = [row.answer for row in rows]
        known = [*answers, *(row.target for row in rows)]
        self.fields = F.field_names(known, _manifest(pred).get("schema"))
        self.text_fields = {name for name in self.fields if F.is_text(name, known)}
        made = plan([row.lowest for row in rows], settings.below, settings.share, settings.audit_share, settings.seed)
        self.order = [self.ids[i] for i in made.order]
        self.audit = {self.ids[i] for i in made.audit}

    @classmethod
    def open(
        cls,
        pred: str | Path,
        *,
        input: str | Path | None = None,
        columns: Any = None,
        below: float | None = None,
        share: float | None = None,
        audit_share: float | None = None,
        precision: float | None = None,
        seed: int | None = None,
        texts: bool = True,
        create: bool = True,
    ) -> Review:
        """The review of `pred`: its rows (with their texts unless `texts` is False: eval needs none), and its
        file, made when `create` and missing. Settings not given come from the file, else from predict's
        --review-below / --review-share, else the defaults; given ones must match the file's."""
        from jsontune.io import file_sha256

        pred = Path(pred)
        rows = _rows(pred, lambda ids: _texts(pred, ids, input, columns) if texts else None)
        db = review_db_path(pred)
        if not create and not db.exists():
            raise JsontuneError(
                f"{pred} has no review yet ({db} does not exist); start one with `jsontune review {pred}`."
            )
        given = {"below": below, "share": share, "audit_share": audit_share, "seed": seed}
        store = ReviewStore(db, file_sha256(pred), _new_settings(pred, given, precision))
        kept = store.settings()
        differ = [k for k, v in given.items() if v is not None and k != "seed" and v != kept.get(k)]
        if differ:
            made = " ".join(
                f"--{k.replace('_', '-')} {kept[k]}" for k in ("below", "share", "audit_share") if kept[k] is not None
            )
            raise JsontuneError(
                f"{db} was made with {made}; start it with those (or none), or move it aside to review with "
                f"other settings."
            )
        settings = QueueSettings(kept["below"], kept["share"], kept["audit_share"], kept["seed"])
        return cls(pred, rows, settings, store, precision if precision is not None else kept["precision"])

    def close(self) -> None:
        self.store.close()

    # ---- one row

    def _row(self, row_id: str) -> Row:
        if row_id not in self.rows:
            raise JsontuneError(f"{self.pred} has no row {row_id!r}.")
        return self.rows[row_id]

    def values(self, row_id: str, state: RowState | None = None) -> dict[str, tuple[bool, Any]]:
        """Every field's (present, value) as the row stands: the model's, with the reviewer's edits."""
        row, state = self._row(row_id), state or self.store.state(row_id)
        model = row.answer or {}
        return {name: state.edits.get(name, (name in model, model.get(name))) for name in self.fields}

    def answer(self, row_id: str, state: RowState | None = None) -> dict[str, Any]:
        """The row's answer as it stands (the model's keys in its order, fields the reviewer added after)."""
        state = state or self.store.state(row_id)
        model = self._row(row_id).answer or {}
        values = {key: (True, value) for key, value in model.items()} | state.edits
        return {key: value for key, (present, value) in values.items() if present}

    def row(self, row_id: str) -> dict[str, Any]:
        """What the page shows of a row: text cut where the values appear, each field's value as it stands and
        as the model gave it, its confidence, status and version."""
        row, state = self._row(row_id), self.store.state(row_id)
        values, model = self.values(row_id, state), row.answer or {}
        spans = {name: F.locate(row.text, value) for name, (present, value) in values.items() if present}
        return {
            "id": row.id,
            "text": row.text,
            "segments": F.segments(row.text, spans),
            "answer": row.kind,
            "status": state.status,
            "version": state.version,
            "fields": [
                {
                    "name": name,
                    "value": F.show(values[name][1], values[name][0]),
                    "model": F.show(model.get(name), name in model),
                    "confidence": F.field_confidence(name, row.confidences),
                    "changed": values[name] != (name in model, model.get(name)),
                }
                for name in self.fields
            ],
        }

    # ---- changes

    def _changes(self, row_id: str, typed: dict[str, str]) -> list[Change]:
        """The field changes `typed` ({field: text in its input}) makes to the row as it stands."""
        row, values = self._row(row_id), self.values(row_id)
        changes = []
        for name, text in typed.items():
            if name not in values:
                raise JsontuneError(f"{self.pred} has no field {name!r}; its fields are {', '.join(self.fields)}.")
            if text == F.show(values[name][1], values[name][0]):
                continue  # left as shown: the value keeps its type
            model = row.answer or {}
            is_text = isinstance(model[name], str) if name in model else name in self.text_fields
            present, value = F.parse_value(text, is_text)
            confidence = F.field_confidence(name, row.confidences)
            changes.append(Change(row_id, name, present, value, confidence, (name in model, model.get(name))))
        return changes

    def save(self, row_id: str, typed: dict[str, str], version: int) -> dict[str, Any]:
        """Save the fields `typed` gives, if the row is still at `version` (else `store.StaleRow`)."""
        self.store.record(self._changes(row_id, typed), {row_id: version})
        return self.row(row_id)

    def decide(self, row_id: str, status: str, typed: dict[str, str], version: int) -> dict[str, Any]:
        """Save the fields `typed` gives and set the row's status (accepted, skipped, unusable or open), in one
        action, if the row is still at `version`."""
        changes = self._changes(row_id, typed) + [Change(row_id, None, value=status)]
        self.store.record(changes, {row_id: version})
        return self.row(row_id)

    def undo(self) -> list[str]:
        """Take back the last change (all of one save or decision); the ids of the rows it changed."""
        return self.store.undo()

    # ---- the queue and the counts

    def queue(self, field: str | None = None, below: float | None = None) -> dict[str, Any]:
        """The queue's ids and statuses, optionally only rows whose `field` (else: lowest) confidence is below
        `below` (a field without a confidence counts as below), or, with a field and no bound, rows whose least
        confident field it is; and where to start: the first row not decided yet, else the first skipped."""
        if field is not None and field not in self.fields:
            raise JsontuneError(f"{self.pred} has no field {field!r}; its fields are {', '.join(self.fields)}.")
        ids = [i for i in self.order if self._passes(self.rows[i], field, below)]
        states = self.store.states()
        status = [states.get(i, RowState()).status for i in ids]
        start = next((n for n, s in enumerate(status) if s == "open"), None)
        if start is None:
            start = next((n for n, s in enumerate(status) if s == "skipped"), 0)
        return {"ids": ids, "status": status, "start": start}

    def _passes(self, row: Row, field: str | None, below: float | None) -> bool:
        if field is None and below is None:
            return True
        confidence = row.lowest if field is None else F.field_confidence(field, row.confidences)
        if below is not None:
            return confidence is None or confidence < below
        return confidence is not None and confidence == row.lowest

    def summary(self) -> dict[str, Any]:
        """The counts (rows, in queue, reviewed: accepted or unusable, skipped, corrected) and the audit."""
        states = self.store.states()
        status = [states.get(i, RowState()).status for i in self.ids]
        corrected = sum(
            1 for i, s in states.items() if s.status == "accepted" and self.answer(i, s) != (self.rows[i].answer or {})
        )
        return {
            "csv": self.pred.name,
            "total": len(self.ids),
            "in_queue": len(self.order),
            "reviewed": sum(s in REVIEWED for s in status),
            "accepted": status.count("accepted"),
            "unusable": status.count("unusable"),
            "skipped": status.count("skipped"),
            "corrected": corrected,
            "fields": self.fields,
            "audit": self.audit_estimate(states),
        }

    def accepts(self) -> float | None:
        """The threshold rows are accepted at: --review-below alone, else the lowest min_confidence among the
        rows the queue leaves out; None when it leaves none."""
        queued = set(self.order) - self.audit
        left = [self.rows[i].lowest for i in self.ids if i not in queued and self.rows[i].lowest is not None]
        if not left:
            return None
        return self.settings.below if self.settings.share is None and self.settings.below is not None else min(left)

    def audit_estimate(self, states: dict[str, RowState] | None = None) -> dict[str, Any]:
        """`metrics.audit_precision` of the accepted audit rows (the model's fields against the reviewer's),
        with the rule, the rows audited and unusable, and one sentence saying it."""
        from jsontune.metrics import audit_precision, leaf_correctness

        states = self.store.states() if states is None else states
        done = [i for i in self.audit if states.get(i, RowState()).status == "accepted"]
        marks = [ok for i in done for _, ok in leaf_correctness(self.rows[i].answer, self.answer(i, states[i]))]
        estimate = audit_precision(marks, self.precision)
        result = {
            **estimate,
            "below": self.settings.below,
            "share": self.settings.share,
            "accepts_from": self.accepts(),
            "audit_rows": len(self.audit),
            "audited_rows": len(done),
            "unusable_rows": sum(states.get(i, RowState()).status == "unusable" for i in self.audit),
        }
        return {**result, "sentence": describe_audit(result)}

    # ---- export

    def export(self, out: str | Path) -> dict[str, Any]:
        """Write the accepted rows as training records ({"id", "text", "target": the answer as reviewed}), in
        the CSV's order, atomically, with OUT.manifest.json beside them; returns what was written."""
        from jsontune.io import file_sha256, write_json_atomic, write_jsonl_atomic

        states = self.store.states()
        accepted = [i for i in self.ids if states.get(i, RowState()).status == "accepted"]
        write_jsonl_atomic(
            out, [{"id": i, "text": self.rows[i].text, "target": self.answer(i, states[i])} for i in accepted]
        )
        summary = {"out": str(out), "written": len(accepted), **self.summary()}
        manifest = {
            "kind": "review-export",
            "predictions": str(self.pred.resolve()),
            "csv_sha256": file_sha256(self.pred),
        }
        write_json_atomic(Path(str(out) + ".manifest.json"), {**manifest, **summary})
        return summary


def describe_audit(audit: dict[str, Any]) -> str:
    """One sentence for people: what the audit says of the rows the threshold accepts without a look."""
    if audit["below"] is None and audit["share"] is None:
        return (
            "No threshold: every row is in the queue. Start with --review-below T to measure the precision of "
            "what T would accept without a look."
        )
    if audit["accepts_from"] is None:
        return "Every row is in the queue: the threshold accepts none without a look, so there is nothing to audit."
    rule = f"min confidence ≥ {audit['accepts_from']:.3f}"
    if not audit["audit_rows"]:
        return (
            f"The threshold accepts rows without a look ({rule}); no audit row is mixed into the queue to measure "
            "them (start a new review with --audit-share above 0)."
        )
    if not audit["fields"]:
        return (
            f"Audit of the rows the threshold accepts ({rule}): {audit['audited_rows']} of {audit['audit_rows']} "
            "audit rows reviewed, no field to count yet."
        )
    low, high = audit["interval"]
    asked = _percent(audit["asked"], 0)
    verdict = {
        "below": f"below the {asked} asked for: raise --review-below",
        "unsure": f"may be below the {asked} asked for; review more rows to tell",
        "meets": f"at least the {asked} asked for",
    }[audit["verdict"]]
    return (
        f"Rows the threshold accepts ({rule}): {_percent(audit['precision'])} of {audit['fields']} audited fields "
        f"correct (95 % interval {_percent(low)}–{_percent(high)}, {audit['audited_rows']} rows); {verdict}."
    )


def _percent(share: float, digits: int = 1) -> str:
    return f"{share * 100:.{digits}f} %"


def _manifest(pred: Path) -> dict[str, Any]:
    from jsontune.predict import manifest_path

    path = manifest_path(pred)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _new_settings(pred: Path, given: dict[str, Any], precision: float | None) -> dict[str, Any]:
    """The settings a new review file keeps: those given, else predict's queue (its manifest), else defaults."""
    predicted = _manifest(pred).get("review") or {}
    below, share = given["below"], given["share"]
    if below is None and share is None:
        below, share = predicted.get("below"), predicted.get("share")
    settings = QueueSettings(
        below,
        share,
        DEFAULT_AUDIT_SHARE if given["audit_share"] is None else given["audit_share"],
        secrets.randbits(31) if given["seed"] is None else given["seed"],
    )
    return {**settings.__dict__, "precision": DEFAULT_PRECISION if precision is None else precision}


def _rows(pred: Path, texts: Callable[[list[str]], dict[str, Record] | None]) -> list[Row]:
    """The CSV's rows, in its order, with their texts (`texts(ids)`: the input's records by id; None: none)."""
    from jsontune.confidence import row_confidence
    from jsontune.evaluation import read_confidences, read_predictions

    if not pred.is_file():
        raise JsontuneError(f"{pred} does not exist; give the CSV `jsontune predict` wrote.")
    answers, repaired = read_predictions(pred)
    confidences = read_confidences(pred)
    if confidences is None:
        raise JsontuneError(
            f"{pred} has no confidence column; make one with `jsontune predict` without --no-confidence."
        )
    found = texts(list(answers))
    rows = []
    for row_id, answer in answers.items():
        kind = "missing" if answer is None else "repaired" if row_id in repaired else "strict"
        confidence = confidences.get(row_id)
        lowest = row_confidence(confidence) if confidence and kind == "strict" else None
        record = found[row_id] if found is not None else None
        text, target = (record.text, record.target) if record else ("", None)
        rows.append(Row(row_id, text, answer, confidence, lowest, kind, target))
    return rows


def _texts(pred: Path, ids: list[str], given: str | Path | None, columns: Any) -> dict[str, Record]:
    """The records of `pred`'s rows (`ids`) by id, from `given` or the input file predict's manifest names."""
    from jsontune.data import InputColumns, load_records
    from jsontune.evaluation import first_ids
    from jsontune.io import file_sha256

    source = _manifest(pred).get("input") or {}
    if given is None and not source.get("path"):
        raise JsontuneError(f"{pred}'s manifest does not name the input file it was predicted from; pass --input FILE.")
    path = Path(given if given is not None else source["path"])
    if given is None:
        if not path.exists():
            raise JsontuneError(f"{path}, the input {pred} was predicted from, does not exist; pass --input FILE.")
        if source.get("sha256") and path.is_file() and file_sha256(path) != source["sha256"]:
            raise JsontuneError(
                f"{path} changed since {pred} was predicted from it; pass --input {path} to review with it as it "
                "is now, or predict again."
            )
        columns = InputColumns(text_col=source.get("text_col"), id_col=source.get("id_col"), skip_bad_rows=True)
    columns = columns or InputColumns(skip_bad_rows=True)
    texts = {r.id: r for r in load_records(path, columns, require_target=False).records}
    strangers = [i for i in ids if i not in texts]
    if strangers:
        raise JsontuneError(
            f"{len(strangers)} id(s) of {pred} are not in {path} ({first_ids(strangers)}); pass --input with the "
            "file it was predicted from."
        )
    return texts


def audit_of(pred: str | Path) -> dict[str, Any] | None:
    """The audit estimate of `pred`'s review (`Review.audit_estimate`), or None when it has none."""
    if not review_db_path(pred).exists():
        return None
    review = Review.open(pred, texts=False, create=False)
    try:
        return review.audit_estimate()
    finally:
        review.close()
