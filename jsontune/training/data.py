"""The training data as TRL gets it: records loaded and augmented, prompt/completion chats, rows too long left out."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from jsontune.data.records import Record
from jsontune.errors import JsontuneError
from jsontune.io import file_sha256
from jsontune.prompts import PromptFormat, training_example
from jsontune.training.config import TrainConfig


def _describe(loaded) -> dict[str, Any]:
    path = Path(loaded.path)
    sha = file_sha256(path) if path.is_file() else None
    return {
        "path": str(path),
        "sha256": sha,
        "rows": len(loaded.records),
        "skipped": loaded.skipped,
        "notes": loaded.notes,
    }


def load_data(cfg: TrainConfig, on_event) -> tuple[list, list, dict[str, Any]]:
    """Training records (every --train file, combined by `combine`, then augmented), the validation records
    the F1 eval uses, and what run.json records about the data; skipped rows, loader notes and replaced
    rows go to `on_event`."""
    from jsontune.data import load_records
    from jsontune.data.augment import augment_records

    parts = [load_records(path, cfg.columns) for path in cfg.train]
    val = load_records(cfg.val, cfg.columns) if cfg.val else None
    records, replaced = combine([part.records for part in parts])
    info: dict[str, Any] = {
        "train": [{**_describe(part), "replaces": len(ids)} for part, ids in zip(parts, replaced, strict=True)]
    }
    if val is not None:
        info["val"] = _describe(val)
    for name, loaded in [*(("train", part) for part in parts), *([("val", val)] if val else [])]:
        if loaded.skipped:
            skipped = f"{len(loaded.skipped)} bad {name} rows skipped: {_first(loaded.skipped, ' ')}"
            on_event({"note": f"--skip-bad-rows: {skipped}"})
        for note in loaded.notes:
            on_event({"note": note})
    for part, ids in zip(parts, replaced, strict=True):
        if ids:
            what = f"{len(ids)} rows replace the rows of an earlier --train file with the same id"
            on_event({"note": f"{part.path}: {what} ({_first(ids, ', ')})."})
    if cfg.augment_factor > 1:
        records, stats = augment_records(records, cfg.augment_factor, cfg.seed, cfg.augment_strategies)
        info["augmentation"] = {"factor": cfg.augment_factor, **asdict(stats)}
    if not records:
        raise JsontuneError(f"{', '.join(cfg.train)} has no usable training rows.")
    val_records = val.records if val is not None else []
    return records, (val_records[: cfg.eval_samples] if cfg.eval_samples else val_records), info


def combine(files: list[list[Record]]) -> tuple[list[Record], list[list[str]]]:
    """The records of several files as one training set, and for each file the ids of the earlier rows it
    replaced: a record whose id an earlier file holds takes that record's place (a corrections file, such
    as `jsontune review export` writes, overrides the rows it corrects); the others follow in order.

    >>> a, b = Record("1", "x", {"n": 1}), Record("2", "y", {"n": 2})
    >>> combine([[a, b], [Record("2", "y", {"n": 20}), Record("3", "z", {"n": 3})]])[1]
    [[], ['2']]
    """
    by_id: dict[str, Record] = {}
    replaced = []
    for records in files:
        replaced.append([r.id for r in records if r.id in by_id])
        by_id.update((r.id, r) for r in records)  # an id already there keeps its place: dicts keep order
    return list(by_id.values()), replaced


def training_length(tokenizer, example: dict[str, Any]) -> int:
    """Tokens in one training sequence as TRL builds it: the chat with its answer, thinking off."""
    messages = example["prompt"] + example["completion"]
    text = tokenizer.apply_chat_template(messages, tokenize=False, **example["chat_template_kwargs"])
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def drop_too_long(examples: list[dict[str, Any]], ids: list[str], tokenizer, max_length: int):
    """The examples that fit in `max_length` tokens, and the ids of those that do not.

    TRL would cut a longer one short, and a cut completion teaches JSON without its end (or, when the
    prompt alone is too long, nothing at all). Such rows are left out, counted and named instead.
    """
    keep, dropped = [], []
    for example, row_id in zip(examples, ids, strict=True):
        if training_length(tokenizer, example) <= max_length:
            keep.append(example)
        else:
            dropped.append(row_id)
    return keep, dropped


def _first(items: list[str], sep: str, k: int = 5) -> str:
    """The first `k` items joined, and how many more there are."""
    return sep.join(items[:k]) + (f"{sep}... ({len(items) - k} more)" if len(items) > k else "")


def training_dataset(records: list, fmt: PromptFormat, tokenizer, max_length: int, on_event):
    """The prompt/completion chats TRL trains on, without the rows over `max_length` tokens, and what
    run.json records about those (each named in a note)."""
    from datasets import Dataset

    examples = [training_example(r.text, r.target, fmt) for r in records]
    examples, too_long = drop_too_long(examples, [r.id for r in records], tokenizer, max_length)
    if too_long:
        message = f"{len(too_long)} training rows are longer than --max-length {max_length} tokens"
        if not examples:
            raise JsontuneError(f"{message}: all of them; raise --max-length.")
        on_event(
            {"note": f"{message} and are left out (ids {_first(too_long, ', ')}); raise --max-length to keep them."}
        )
    return Dataset.from_list(examples), {"max_length": max_length, "rows": len(too_long), "ids": too_long}
