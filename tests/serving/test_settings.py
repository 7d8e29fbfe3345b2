"""EngineSettings: declared once, the flags of predict, bench and serve made from it, and carried typed to the
engine (through the Extractor, the registry, a Ray replica and the bench worker's spec)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.errors import JsontuneError
from jsontune.serving import registry
from jsontune.serving.settings import HF, VLLM, EngineSettings, takes

runner = CliRunner()
VLLM_SETTINGS = {
    "--" + name.replace("_", "-")
    for name, field in EngineSettings.__dataclass_fields__.items()
    if VLLM in takes(name) and "help" in field.metadata  # dtype, trust_remote_code and vLLM's own flags
}


def _options(verb: str) -> set[str]:
    command = typer.main.get_command(app).commands[verb]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize("verb", ["predict", "bench", "serve"])
def test_the_three_verbs_that_start_vllm_take_the_same_vllm_settings(verb):
    assert {"--tensor-parallel-size", "--seed", "--kv-cache-gb", "--max-model-len"} <= VLLM_SETTINGS
    assert _options(verb) >= VLLM_SETTINGS


def test_serve_takes_no_hf_setting():
    hf_only = {"--" + n.replace("_", "-") for n in EngineSettings.__dataclass_fields__ if takes(n) == (HF,)}
    assert hf_only and not hf_only & _options("serve")
    assert hf_only <= _options("predict")


def test_a_setting_the_engine_does_not_take_is_one_sentence():
    with pytest.raises(JsontuneError, match=r"--kv-cache-gb is a vllm setting; the hf engine does not take it"):
        EngineSettings(kv_cache_gb=4).for_engine(HF)
    with pytest.raises(JsontuneError, match=r"--batch-size is a hf setting; the vllm engine does not take it"):
        EngineSettings(batch_size=3).for_engine(VLLM)
    assert EngineSettings(kv_cache_gb=4, dtype="bf16").for_engine(VLLM).dtype == "bfloat16"
    assert EngineSettings(kv_cache_gb=4, batch_size=3).only(VLLM) == EngineSettings(kv_cache_gb=4)


def test_the_extractor_refuses_such_a_setting_before_anything_loads(tmp_path):
    """Formerly `Extractor.load(m, "auto", kv_cache_gb=4)` where auto meant HF was a bare TypeError."""
    from jsontune import Extractor

    with pytest.raises(JsontuneError, match="--kv-cache-gb is a vllm setting; the hf engine"):
        Extractor.load(tmp_path / "no-model-here", "hf", settings=EngineSettings(kv_cache_gb=4))


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"max_model_len": 0}, "--max-model-len must be at least 1, got 0"),
        ({"tensor_parallel_size": 0}, "--tensor-parallel-size must be at least 1, got 0"),
        ({"gpu_memory_utilization": 1.5}, r"--gpu-memory-utilization is a share in \(0, 1\]"),
        ({"kv_cache_gb": -1.0}, "--kv-cache-gb must be more than 0"),
        ({"dtype": "int3"}, "unknown dtype 'int3'"),
    ],
)
def test_bad_values_are_one_sentence_naming_the_flag(values, says):
    with pytest.raises(JsontuneError, match=says):
        EngineSettings(**values)


def test_settings_survive_the_trip_as_a_dict():
    settings = EngineSettings(dtype="float32", kv_cache_gb=0.5, seed=3, tensor_parallel_size=2)
    assert EngineSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(JsontuneError, match="unknown engine setting"):
        EngineSettings.from_dict({"kv_cache": 1})


def test_a_typed_flag_refuses_a_value_of_the_wrong_type(tmp_path):
    result = runner.invoke(app, ["predict", "--model", "m", "--input", "i", "--out", "o", "--kv-cache-gb", "lots"])
    assert result.exit_code == 2 and "kv-cache-gb" in result.output


class _Stop(Exception):
    pass


@pytest.fixture
def seen(monkeypatch):
    """What the registry's engine builders receive; building stops there."""
    got: dict = {}

    def capture(kind):
        def build(model, settings, lora):
            got.update(kind=kind, settings=settings, lora=lora)
            raise _Stop

        return build

    monkeypatch.setitem(registry.ENGINES, "hf", capture("hf"))
    monkeypatch.setitem(registry.ENGINES, "vllm", capture("vllm"))
    return got


def test_predict_flags_reach_the_hf_engine_typed(tiny_model, synth_dir, tmp_path, seen):
    args = ["predict", "--model", str(tiny_model), "--input", str(synth_dir / "test.jsonl"), "--out"]
    result = runner.invoke(
        app, [*args, str(tmp_path / "p.csv"), "--engine", "hf", "--batch-size", "3", "--dtype", "fp32"]
    )
    assert isinstance(result.exception, _Stop), result.output
    assert seen["kind"] == "hf" and seen["settings"] == EngineSettings(batch_size=3, dtype="float32")


def test_predict_refuses_a_vllm_setting_for_hf_in_one_sentence(tiny_model, synth_dir, tmp_path, seen):
    args = ["predict", "--model", str(tiny_model), "--input", str(synth_dir / "test.jsonl"), "--out"]
    result = runner.invoke(app, [*args, str(tmp_path / "p.csv"), "--engine", "hf", "--kv-cache-gb", "4"])
    assert result.exit_code == 1 and "--kv-cache-gb is a vllm setting" in result.output and not seen


@pytest.mark.vllm
def test_predict_flags_reach_the_vllm_engine_typed_with_the_context_fitted(tiny_model, synth_dir, tmp_path, seen):
    args = ["predict", "--model", str(tiny_model), "--input", str(synth_dir / "test.jsonl"), "--out"]
    flags = ["--engine", "vllm", "--kv-cache-gb", "0.25", "--seed", "7", "--tensor-parallel-size", "1"]
    result = runner.invoke(app, [*args, str(tmp_path / "p.csv"), *flags, "--max-new-tokens", "16"])
    assert isinstance(result.exception, _Stop), result.output
    settings = seen["settings"]
    assert isinstance(settings, EngineSettings) and (settings.kv_cache_gb, settings.seed) == (0.25, 7)
    assert settings.max_model_len is not None and settings.max_model_len > 16  # the longest prompt + 16


def test_a_ray_replica_builds_its_engine_from_the_settings_dict(seen):
    from jsontune.serving.ray_engine import _Replica

    settings = EngineSettings(batch_size=3, dtype="float32")
    with pytest.raises(_Stop):
        _Replica("hf", "m", settings.to_dict(), None, {"max_new_tokens": 8}, None)
    assert seen["settings"] == settings


def test_the_bench_gives_each_engine_its_own_settings(tmp_path):
    from jsontune.bench.config import BenchConfig
    from jsontune.bench.runner import engine_spec

    config = BenchConfig(model="m", settings=EngineSettings(batch_size=4, kv_cache_gb=1.0, dtype="float32"))
    specs = {name: engine_spec(name, config, "m", tmp_path) for name in ("hf-seq", "hf-batch", "vllm")}
    settings = {name: EngineSettings.from_dict(json.loads(json.dumps(s["settings"]))) for name, s in specs.items()}
    assert settings["hf-batch"] == EngineSettings(batch_size=4, dtype="float32")
    assert settings["hf-seq"] == EngineSettings(batch_size=4, sequential=True, dtype="float32")
    assert settings["vllm"] == EngineSettings(kv_cache_gb=1.0, dtype="float32")


def test_serve_flags_reach_vllm_typed(tiny_model, monkeypatch):
    from jsontune.serving import server

    got = {}

    def start(model, settings, **kwargs):
        got["settings"] = settings
        raise JsontuneError("stopped by the test")

    monkeypatch.setattr(server, "start_server", start)
    result = runner.invoke(app, ["serve", str(tiny_model), "--tensor-parallel-size", "2", "--kv-cache-gb", "1"])
    assert result.exit_code == 1 and "stopped by the test" in result.output
    assert got["settings"] == EngineSettings(tensor_parallel_size=2, kv_cache_gb=1.0)
