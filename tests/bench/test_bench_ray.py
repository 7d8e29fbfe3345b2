"""`jsontune bench --ray --replicas 2`: each engine also on 1 and 2 Ray replicas, decoding what it decodes alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jsontune.bench.config import BenchConfig
from jsontune.bench.runner import run_bench
from jsontune.errors import JsontuneError

pytestmark = pytest.mark.ray


def _texts(row) -> list[str]:
    return [json.loads(line)["text"] for line in Path(row.outputs).read_text(encoding="utf-8").splitlines()]


def test_the_ray_rows_time_the_same_work_as_one_process(ray_cluster, tiny_model, tmp_path):
    # The workers join the session's Ray at its address rather than start one each.
    settings = {"n": 6, "max_new_tokens": 8, "repeats": 1, "engines": ("hf-batch",), "out": tmp_path}
    config = BenchConfig(str(tiny_model), **settings, ray=ray_cluster, replicas=2)
    result = run_bench(config)
    rows = {row.engine: row for row in result.rows}
    assert list(rows) == ["hf-batch", "hf-batch@ray×1", "hf-batch@ray×2"]
    assert all(row.ok for row in rows.values()), [row.reason for row in rows.values()]
    assert [rows[name].engine_settings.get("replicas") for name in rows] == [None, 1, 2]
    assert _texts(rows["hf-batch@ray×2"]) == _texts(rows["hf-batch@ray×1"]) == _texts(rows["hf-batch"])
    assert all(row.output_tokens == 6 * 8 for row in rows.values())  # fixed-length, every replica


def test_replicas_without_ray_is_refused(tiny_model):
    with pytest.raises(JsontuneError, match="--replicas needs --ray"):
        BenchConfig(model=str(tiny_model), replicas=2)


def test_the_rerun_command_keeps_ray(tiny_model):
    config = BenchConfig(model=str(tiny_model), ray="local", replicas=2)
    assert config.command().endswith("--ray --replicas 2")
