"""Atomic outputs: a folder or file appears whole, and a failure leaves what was there."""

from __future__ import annotations

import os

import pytest

from jsontune.io import atomic_folder, write_text_atomic


def test_a_folder_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.bin").write_text("old")
    with atomic_folder(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out
        (tmp / "config.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary or old folder is left
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's 0700


def test_a_failure_inside_leaves_the_old_folder_and_no_debris(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "weights.bin").write_text("good")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("disk full")
    assert (out / "weights.bin").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_file_in_the_way_is_replaced_and_parents_are_made(tmp_path):
    (tmp_path / "a").write_text("a file")
    with atomic_folder(tmp_path / "a") as tmp:
        (tmp / "x").write_text("1")
    with atomic_folder(tmp_path / "new" / "deep") as tmp:
        (tmp / "y").write_text("2")
    assert (tmp_path / "a" / "x").read_text() == "1"
    assert (tmp_path / "new" / "deep" / "y").read_text() == "2"


def test_a_file_is_written_whole(tmp_path):
    write_text_atomic(tmp_path / "sub" / "f.txt", "hello")
    assert (tmp_path / "sub" / "f.txt").read_text() == "hello"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.txt"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
