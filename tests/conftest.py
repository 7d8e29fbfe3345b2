"""Session-scoped fixtures: one tiny model and one synthetic dataset, made offline, shared by all tests."""

from __future__ import annotations

import os

import pytest

from jsontune.device import cuda_available, probe_cuda_with_nvml
from jsontune.serving.settings import EngineSettings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No test may initialise the CUDA driver by asking for a GPU: vLLM's engine process would inherit it.
probe_cuda_with_nvml()


def pytest_collection_modifyitems(config, items):
    """The markers' skip conditions, defined once (the markers are listed in pyproject.toml): `gpu` needs
    CUDA, `cpu_only` needs its absence, `vllm` needs a vLLM that can run here. `make test` installs vLLM (its
    CPU build without a GPU) and sets JSONTUNE_REQUIRE_VLLM=1: there a vLLM that cannot run fails the session
    instead of skipping its tests. `ray` needs Ray (`make` installs it; JSONTUNE_REQUIRE_RAY=1 likewise)."""
    from jsontune.serving.base import vllm_available
    from jsontune.serving.ray_engine import ray_available

    cuda = cuda_available()
    missing = {
        "gpu": None if cuda else "needs a CUDA GPU",
        "cpu_only": "checks what happens without a GPU" if cuda else None,
        "vllm": vllm_available(),
        "ray": ray_available(),
    }
    for marker in ("vllm", "ray"):
        if missing[marker] and os.environ.get(f"JSONTUNE_REQUIRE_{marker.upper()}") == "1":
            raise pytest.UsageError(f"JSONTUNE_REQUIRE_{marker.upper()}=1 but it cannot run: {missing[marker]}")
    for item in items:
        for marker, reason in missing.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A random-init tiny Qwen3 model + Qwen3-chat-template tokenizer (made offline, seconds)."""
    from jsontune.offline import init_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    init_model("tiny", out, seed=0)
    return out


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """train/val/test.jsonl of 200 synthetic purchase orders."""
    from jsontune.data.synth import write_splits

    out = tmp_path_factory.mktemp("data")
    write_splits(n=200, out=out, seed=0)
    return out


TRAIN_STEPS = 6


def _train_config(tiny_model, synth_dir, out, **overrides):
    """A few-step CPU training config on the tiny model (evaluates F1 at steps 0, 3 and 6)."""
    from jsontune.training.recipe import build_config

    values = dict(
        model=str(tiny_model),
        train=str(synth_dir / "train.jsonl"),
        val=str(synth_dir / "val.jsonl"),
        out=str(out),
        max_steps=TRAIN_STEPS,
        eval_steps=3,
        eval_samples=4,
        eval_max_new_tokens=12,
        batch_size=4,
        lr=5e-3,
        logging_steps=1,
        max_length=256,
        seed=7,
    )
    values.update(overrides)
    return build_config(**values)


@pytest.fixture(scope="session")
def make_train_config():
    return _train_config


@pytest.fixture(scope="session")
def trained_run(tiny_model, synth_dir, tmp_path_factory):
    """(run folder, TrainSummary) of one short training run, shared by training, merge and predict tests."""
    from jsontune.training.sft import train

    out = tmp_path_factory.mktemp("runs") / "run"
    return out, train(_train_config(tiny_model, synth_dir, out))


@pytest.fixture(scope="session")
def format_run(tiny_model, synth_dir, tmp_path_factory):
    """A tiny model trained until it writes the JSON format (40 steps, ~8 s): the run folder. `trained_run`'s
    6 steps leave a model that still writes noise, and invalid UTF-8 from byte tokens, inside its strings."""
    from jsontune.training.sft import train

    run = tmp_path_factory.mktemp("runs") / "format"
    train(
        _train_config(tiny_model, synth_dir, run, max_steps=40, eval_steps=40, batch_size=8, lr=1e-2, logging_steps=10)
    )
    return run


@pytest.fixture(scope="session")
def merged_run(format_run, tmp_path_factory):
    """`format_run` merged into one float32 checkpoint, whose manifest names the training data."""
    from jsontune.training.merge import merge

    out = tmp_path_factory.mktemp("merged") / "model"
    merge(format_run, out)
    return out


@pytest.fixture(scope="session")
def barely_trained(trained_run, tmp_path_factory):
    """`trained_run` (6 steps: it still writes noise, control characters and bytes of unfinished characters
    included) merged into one float32 checkpoint; its manifest names the training data the schema is inferred from."""
    from jsontune.training.merge import merge

    out = tmp_path_factory.mktemp("merged") / "barely"
    merge(trained_run[0], out, dtype="float32")
    return out


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole session (`ray.init(num_cpus=2)`, seconds to start): its GCS address, which
    a `jsontune predict --ray ADDRESS` in another process joins. In this process --ray uses it as it is."""
    import ray

    # A loopback cluster for this session only: no token, so a driver in another process joins it as it is.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def vllm_engine(merged_run):
    """One vLLM engine (float32) over `merged_run` for the whole session: a start costs ~20 s on 2 CPUs. In its own
    processes, as vLLM lays itself out: in the pytest process it would hold torch's thread setting all session."""
    from jsontune.serving.registry import make_engine

    engine = make_engine(
        "vllm",
        str(merged_run),
        EngineSettings(dtype="float32", max_model_len=512, gpu_memory_utilization=0.3, in_process=False),
    )
    yield engine
    engine.close()
