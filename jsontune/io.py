"""Small file helpers: every output file and folder appears atomically (written beside it, then renamed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def proc_status(key: str) -> str | None:
    """The value of `key` in Linux's /proc/self/status ("VmHWM", "Umask", ...); None elsewhere."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    prefix = f"{key}:"
    return next(
        (line[len(prefix) :].strip() for line in status.read_text().splitlines() if line.startswith(prefix)), None
    )


def _umask() -> int:
    """The process's umask, read without setting it where Linux allows (os.umask changes it for every thread)."""
    mask = proc_status("Umask")
    if mask is not None:
        return int(mask, 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def share_like_umask(path: str | os.PathLike) -> None:
    """Give `path` (and, for a folder, all under it) the modes a plain open/mkdir would have given.

    mkstemp/mkdtemp (and safetensors' own atomic save) create 0600 files and 0700 folders; renamed into
    place they would keep those, and a checkpoint another account serves (a vLLM server) could not be read.
    """
    mask, path = _umask(), Path(path)
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        share_like_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it replaces `path` (folder or file) whole.

    An error inside the block, or a crash, leaves `path` as it was: the old folder is moved aside only
    once the new one is complete, and removed after the new one has taken its name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = path.parent / f"{tmp.name[: -len('.tmp')]}.old"
    try:
        yield tmp
        share_like_umask(tmp)  # mkdtemp's 0700 would stick to the folder
        if path.exists() or path.is_symlink():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists() or old.is_symlink():
            old.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
