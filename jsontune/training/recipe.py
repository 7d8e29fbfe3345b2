"""A recipe (configs/*.yaml), the `jsontune train` flags and a resumed run's run.json, read into one TrainConfig.

Names are checked (TrainConfig's own fields at the top level; `sft:` against trl.SFTConfig and `lora:`
against peft.LoraConfig, with the nearest real key for a misspelt one) and values typed the way
transformers' HfArgumentParser types a command line. The tables these rules use are in config.py.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import fields
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.training.config import (
    ALIASES,
    COLUMNS,
    RESERVED,
    SECTIONS,
    TrainConfig,
    check_resume,
    class_name,
    init_fields,
    pass_through_class,
)


def build_config(yaml_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Recipe values, then every override that is not None (TrainConfig fields, ALIASES, `sft`, `lora`).

    With `resume`, the settings the run started with (RUN/run.json) come first, so a resumed run needs
    no flag but --out; a recipe or flag may still change what does not shape the run (more steps, other
    eval settings), and a change to a RESUME_FIXED setting, a RESUME_FIXED_SFT key or any lora key is
    refused, naming it.
    """
    recipe = load_yaml(yaml_path) if yaml_path else {}
    flags = parse_settings({k: v for k, v in overrides.items() if v is not None}, "the settings given")
    given = _layered(recipe, flags)
    saved = saved_settings(given["out"]) if given.get("resume") and given.get("out") else {}
    cfg = TrainConfig(**_layered(saved, given))
    if saved:
        started = TrainConfig(**{**saved, "resume": False})  # normalised the same way (absolute paths, defaults)
        check_resume(started, cfg)
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe's settings: names checked, values typed, ALIASES moved into their section."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise JsontuneError(f"config file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise JsontuneError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise JsontuneError(f"config file {path} must be a mapping of setting: value.")
    return parse_settings(data, f"config file {path}")


def parse_settings(values: dict[str, Any], where: str) -> dict[str, Any]:
    """`values` (a recipe, flags, run.json) as TrainConfig takes them; errors begin with `where`."""
    own_fields = {f.name for f in fields(TrainConfig)} - set(SECTIONS) - {"columns"}
    unknown = [key for key in values if key not in own_fields | {"columns", *COLUMNS, *ALIASES, *SECTIONS}]
    if unknown:
        raise JsontuneError(f"{where}: {_unknown_top_level(unknown[0], own_fields | set(COLUMNS))}")
    own = typed(TrainConfig, {k: v for k, v in values.items() if k in own_fields}, where, "")
    if columns := _columns(values, where):
        own["columns"] = columns
    sections = {name: _section(values.get(name), name, where) for name in SECTIONS}
    for alias, (section, key) in ALIASES.items():
        if alias not in values:
            continue
        if key in sections[section]:
            raise JsontuneError(f"{where} sets {section}.{key} twice, as {alias} and under {section}:; keep one.")
        value = values[alias]
        if alias == "target_modules" and isinstance(value, str):  # the flag's comma-separated names
            value = [m.strip() for m in value.split(",") if m.strip()]
        sections[section][key] = value
    return {**own, **{name: _typed_section(name, keys, where) for name, keys in sections.items() if keys}}


def _columns(values: dict[str, Any], where: str) -> dict[str, Any]:
    """The input columns given, typed: a recipe's top-level text_col, ... keys, and `columns` (run.json's
    mapping, or the flags' InputColumns, whose defaults are not given)."""
    from dataclasses import asdict

    from jsontune.data.records import InputColumns

    given = values.get("columns") or {}
    if isinstance(given, InputColumns):
        given = {k: v for k, v in asdict(given).items() if v != getattr(InputColumns(), k)}
    given = {**_section(given, "columns", where), **{k: values[k] for k in COLUMNS if k in values}}
    for key in given:
        if key not in COLUMNS:
            raise JsontuneError(f"{where}: columns.{key} is not a column setting; use {', '.join(COLUMNS)}.")
    return typed(InputColumns, given, where, "")


def _section(value: Any, name: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JsontuneError(f"{where}: {name}: must be a mapping of key: value, got {value!r}.")
    return dict(value)


def _unknown_top_level(key: str, own_fields: set[str]) -> str:
    names = {name: name for name in [*own_fields, *ALIASES, *SECTIONS]}  # a name -> how to write it
    for section in SECTIONS:
        section_fields = init_fields(pass_through_class(section))
        if key in section_fields:
            return f"{key} is a {class_name(section)} setting; put it under {section}:."
        names.update({name: f"{section}.{name}" for name in section_fields if name not in names})
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"{key} is not a setting; did you mean {names[close[0]]}?"
    return f"{key} is not a setting; the top level takes jsontune's own settings and the sft: and lora: sections."


def _typed_section(section: str, values: dict[str, Any], where: str) -> dict[str, Any]:
    """A section's keys checked against its dataclass (with the nearest field for a misspelt one), typed."""
    cls = pass_through_class(section)
    names = init_fields(cls)
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {section}.{close[0]}?" if close else "."
            raise JsontuneError(f"{where}: {section}.{key} is not a {class_name(section)} setting{hint}")
        if key in RESERVED[section]:
            raise JsontuneError(f"{where}: {section}.{key} is set by jsontune; use {RESERVED[section][key]}.")
    if section == "lora":
        return _typed_lora(values, where)
    return typed(cls, values, where, f"{section}.")


def typed(cls: type, values: dict[str, Any], where: str, prefix: str) -> dict[str, Any]:
    """Values typed by HfArgumentParser as it types a command line, so `2e-4` (a string to YAML, which
    wants a dot) is a float, `'8'` an int and `'true'` a bool; values that are not strings stay."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, exit_on_error=False)
    parser.set_defaults(**values)  # argparse parses a string default as if it were given on the command line
    try:
        namespace = parser.parse_args([])
    except argparse.ArgumentError as e:
        key = (e.argument_name or "").split("/")[0].lstrip("-")
        raise JsontuneError(f"{where}: {prefix}{key} has an invalid value ({e.message}).") from None
    return {key: getattr(namespace, key) for key in values}


def _typed_lora(values: dict[str, Any], where: str) -> dict[str, Any]:
    """HfArgumentParser cannot read LoraConfig's annotations (unions of generics), so a string given for a
    number or a bool is read as the type of the field's default."""
    from peft import LoraConfig
    from transformers.hf_argparser import string_to_bool

    defaults = {f.name: f.default for f in fields(LoraConfig)}
    out = {}
    for key, value in values.items():
        kind = type(defaults[key])
        if isinstance(value, str) and kind in (bool, int, float):
            try:
                value = string_to_bool(value) if kind is bool else kind(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                raise JsontuneError(f"{where}: lora.{key} must be {kind.__name__}, got {value!r}.") from None
        out[key] = value
    return out


def _layered(below: dict[str, Any], above: dict[str, Any]) -> dict[str, Any]:
    """`above` over `below`, the sft and lora sections key by key."""
    merged = {**below, **above}
    for section in (*SECTIONS, "columns"):
        if section in below or section in above:
            merged[section] = {**below.get(section, {}), **above.get(section, {})}
    return merged


def saved_settings(run_dir: str | Path) -> dict[str, Any]:
    """The settings RUN/run.json recorded, as TrainConfig takes them ({} when there is none)."""
    import json

    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8")).get("settings") or {}
    except (json.JSONDecodeError, AttributeError):
        raise JsontuneError(f"--resume: {path} is not valid JSON; it is written by jsontune train.") from None
    known = {f.name for f in fields(TrainConfig)} | set(COLUMNS) | set(ALIASES)
    return parse_settings({k: v for k, v in saved.items() if k in known and k != "resume"}, f"--resume: {path}")
