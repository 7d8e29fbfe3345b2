"""The shapes every stage shares: one example (`Record`), one loaded file (`LoadResult`) and the columns a
file is read by (`InputColumns`, the flags of every verb that reads records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Record:
    """One example: a stable id, the input text and its JSON target (None when the file has no labels)."""

    id: str
    text: str
    target: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSONL row written by `data synth` and `data augment`: {"id", "text", "target"}."""
        return {"id": self.id, "text": self.text, "target": self.target}


@dataclass
class LoadResult:
    """The records of one file, every skipped row as one sentence, and the columns that were used."""

    path: Path | str
    records: list[Record]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a reader changed that the user should know
    columns: list[str] = field(default_factory=list)
    text_col: str = "text"
    target_col: str | None = None
    id_col: str | None = None


@dataclass(frozen=True)
class InputColumns:
    """Which columns hold the text, the target and the id (None: found by name), and what to do with a bad row.
    Every verb that reads records takes these flags, made from these fields (`cli/common.py`)."""

    text_col: str | None = field(
        default=None, metadata={"help": "Text column, if not found by name (text, input, texto, ...)."}
    )
    target_col: str | None = field(
        default=None, metadata={"help": "Target JSON column, if not found by name (target, output, json, ...)."}
    )
    id_col: str | None = field(
        default=None, metadata={"help": "Id column, if not found by name (else the row numbers)."}
    )
    skip_bad_rows: bool = field(
        default=False, metadata={"help": "Skip bad rows (each named and counted) instead of stopping."}
    )
