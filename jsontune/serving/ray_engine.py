"""N replicas of a jsontune engine on a Ray cluster: a Ray Data actor pool, one engine per replica.

    jsontune predict --model runs/merged --input orders.jsonl --out pred.csv --ray --replicas 2
    jsontune predict ... --engine vllm --ray auto --replicas 8       # a cluster started with `ray start`

The prompts (rendered by prompts.py) and their positions become a `ray.data.from_items` dataset;
`map_batches` sends its batches to an `ActorPoolStrategy(size=replicas)` of `_Replica` actors, each of
which builds its engine once (`registry.make_engine`: HF or vLLM, on a GPU or the CPU) and decodes
greedily. `stream` yields every batch as soon as a replica finishes it, in whatever order they finish,
so predict appends it to its resume sidecar at once; predict writes the CSV in input order at the end.
Ray restarts a replica whose process dies and sends its batch again: every position comes back once.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.serving.base import Batches, Generation, GenerationParams, Progress, generation_from_dict, in_order
from jsontune.serving.settings import EngineSettings

LOCAL = "local"  # Ray's own address for "start a Ray on the local machine", which `--ray` alone means
RAY_MISSING = "--ray needs Ray, which is not installed: pip install 'jsontune[ray]'."
# Variables a replica needs to behave as this process does (offline hub, quiet tokenizers, vLLM's settings).
_PASSED_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "VLLM_", "PYTORCH_NVML_")


def ray_available() -> str | None:
    """None when Ray can be imported here, else the sentence that says how to install it."""
    return None if importlib.util.find_spec("ray") is not None else RAY_MISSING


@dataclass(frozen=True)
class RayOptions:
    """Where the replicas run and what each one gets; None picks the default for the engine and machine."""

    address: str = LOCAL  # LOCAL: a Ray started on the local machine; "auto", "host:port" or "ray://...": a cluster
    replicas: int = 1
    gpus_per_replica: float | None = None  # default: vLLM --tensor-parallel-size, HF 1, on a machine with GPUs; else 0
    cpus_per_replica: float | None = None  # default 1

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise JsontuneError(f"--replicas must be at least 1, got {self.replicas}.")
        per_replica = {"--gpus-per-replica": self.gpus_per_replica, "--cpus-per-replica": self.cpus_per_replica}
        for flag, value in per_replica.items():
            if value is not None and value < 0:
                raise JsontuneError(f"{flag} must be 0 or more, got {value:g}.")

    @classmethod
    def given(
        cls,
        address: str | None,
        replicas: int = 1,
        gpus_per_replica: float | None = None,
        cpus_per_replica: float | None = None,
    ) -> RayOptions | None:
        """The options of `--ray ADDRESS` and the replica flags (predict's and bench's); None without --ray,
        where a replica flag is refused: it would do nothing."""
        if address is not None:
            return cls(address, replicas, gpus_per_replica, cpus_per_replica)
        flags = {
            "--replicas": replicas != 1,
            "--gpus-per-replica": gpus_per_replica is not None,
            "--cpus-per-replica": cpus_per_replica is not None,
        }
        given = [flag for flag, on in flags.items() if on]
        if given:
            raise JsontuneError(f"{given[0]} needs --ray (the replicas run on a Ray cluster).")
        return None


class RayEngine:
    """The Engine protocol over a pool of replicas, plus `stream`, which yields batches as they finish."""

    def __init__(
        self,
        engine: str,
        model: str,
        ray_options: RayOptions,
        settings: EngineSettings | None = None,
        *,
        lora: str | None = None,
    ) -> None:
        if (missing := ray_available()) is not None:
            raise JsontuneError(missing)
        settings = (settings or EngineSettings()).for_engine(engine)  # refused here, not in every replica
        self.inner, self.model, self.ray_options, self.engine_settings = engine, str(model), ray_options, settings
        self.lora = str(lora) if lora else None
        self.name = f"{engine}@ray"
        self._started_ray = connect(ray_options.address)
        _quiet_ray_data()
        self.gpus, self.cpus = replica_resources(engine, ray_options, settings.tensor_parallel_size)
        check_room(ray_options, self.gpus, self.cpus)
        self.pool: dict[str, Any] = {
            "ray_address": ray_options.address,
            "replicas": ray_options.replicas,
            "gpus_per_replica": self.gpus,
            "cpus_per_replica": self.cpus,
            "engine": engine,
        }
        self.replica: dict[str, Any] | None = None  # what a replica's engine chose, once one has said

    @property
    def settings(self) -> dict[str, Any]:
        """The pool's settings, and once a replica has run, what its engine chose ("replica")."""
        return {**self.pool, "replica": self.replica} if self.replica is not None else dict(self.pool)

    def stream(
        self, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None = None
    ) -> Batches:
        """(position in `prompts`, generation) for every prompt, a replica's batch of `chunk_size` at a time, as
        batches finish."""
        import ray

        if not prompts:
            return
        items = [{"index": i, "prompt": p} for i, p in enumerate(prompts)]
        # Blocks of one batch each, so that every replica has work from the start even on a small input.
        batch_size = chunk_size
        dataset = ray.data.from_items(items, override_num_blocks=math.ceil(len(prompts) / batch_size))
        mapped = dataset.map_batches(
            _Replica,
            fn_constructor_kwargs={
                "engine": self.inner,
                "model": self.model,
                "settings": self.engine_settings.to_dict(),  # typed again in the replica
                "lora": self.lora,
                "params": asdict(params),
                "threads": self.cpus if self.gpus == 0 else None,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.ray_options.replicas),
            num_gpus=self.gpus,
            num_cpus=self.cpus,
            runtime_env={"env_vars": self.replica_env()},
        )
        # No prefetching: a batch reaches the caller (and predict's sidecar) as soon as a replica finishes it.
        batches = iter(mapped.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0))
        try:
            for batch in batches:
                for settings in batch["settings"]:
                    if settings:
                        self.replica = json.loads(settings)
                finished = _generations(batch)
                if progress:
                    progress(len(finished))
                yield finished
        except Exception as e:  # a replica that cannot start or generate (Ray retries one that died)
            raise JsontuneError(f"a Ray replica failed: {ray_error_reason(e)}") from None
        finally:
            close = getattr(batches, "close", None)
            if close:  # an abandoned stream stops its replicas
                close()

    def replica_env(self) -> dict[str, str]:
        """The environment a replica gets: this process's settings for HF, vLLM and the hub (a remote node
        has none of them), and on a CPU-only replica no GPU, with vLLM's threads left to Ray's CPU share."""
        env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_ENV)}
        if self.gpus == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""  # Ray hides no GPU from a replica that asked for none
            env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # not every core of the node, for each replica
        return env

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        return in_order(self.stream(prompts, params, self.chunk_size(len(prompts)), progress), len(prompts))

    def chunk_size(self, rows: int) -> int:
        """Rows per batch for `rows`: small enough that every replica gets several (the load spreads, and a
        crash loses little), and no more than the inner engine saves at once in one process."""
        from jsontune.serving.hf_engine import CHUNK_SIZE as HF_CHUNK
        from jsontune.serving.vllm_engine import CHUNK_SIZE as VLLM_CHUNK

        spread = max(1, math.ceil(rows / (4 * self.ray_options.replicas)))
        return min(spread, VLLM_CHUNK if self.inner == "vllm" else HF_CHUNK)

    def reset_cache(self) -> None:
        """Each `stream` starts fresh replicas: there is no cache left between calls."""

    def close(self) -> None:
        if self._started_ray:
            import ray

            ray.shutdown()


class _Replica:
    """One replica: builds its engine once, then generates for each batch Ray Data gives it."""

    def __init__(
        self,
        engine: str,
        model: str,
        settings: dict[str, Any],
        lora: str | None,
        params: dict[str, Any],
        threads: float | None,
    ) -> None:
        if threads:  # HF on a CPU: as many torch threads as CPUs reserved, not one per core of the node
            import torch

            torch.set_num_threads(max(1, int(threads)))
        from jsontune.serving.registry import make_engine

        self.engine = make_engine(engine, model, EngineSettings.from_dict(settings), lora=lora)
        self.params = GenerationParams(**params)
        self.first = True

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        generations = self.engine.generate([str(p) for p in batch["prompt"]], self.params)
        settings = [""] * len(generations)
        if self.first and settings:  # what the engine chose, once per replica
            settings[0], self.first = json.dumps(self.engine.settings), False
        return {
            "index": [int(i) for i in batch["index"]],
            # Each Generation whole, as one JSON string: its token ids (and their log-probs) are lists of a
            # different length on every row, which a numpy batch would not keep as they are.
            "generation": [json.dumps(asdict(g)) for g in generations],
            "settings": settings,
        }


def _generations(batch: dict[str, Any]) -> list[tuple[int, Generation]]:
    return [
        (int(i), generation_from_dict(json.loads(g))) for i, g in zip(batch["index"], batch["generation"], strict=True)
    ]


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` (LOCAL: start one on the local machine), or use the one this process
    already has; True when this call started Ray, so that closing the engine stops it."""
    import ray

    if ray.is_initialized():
        return False
    if address not in (LOCAL, "auto") and not address.startswith("ray://"):
        _check_listening(address)
        if "RAY_AUTH_MODE" not in os.environ and _has_token():
            # Ray enables its token auth by itself only for a cluster it finds; a given address needs it said.
            os.environ["RAY_AUTH_MODE"] = "token"
    # Ray's C++ core logs at ERROR what is routine here (that a replica's constructor arguments sit in the
    # object store); its failures still reach the user, as the exceptions caught below and in `stream`.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with _stderr_silenced():  # the one line Ray prints to say that it read RAY_BACKEND_LOG_LEVEL
            ray.init(address=address, **quiet)
    except Exception as e:
        where = "on the local machine" if address == LOCAL else f"at {address}"
        raise JsontuneError(
            f"no Ray cluster answers {where} ({ray_error_reason(e)}); start one with `ray start --head`, "
            "or leave out the address to run Ray on the local machine."
        ) from None
    return True


def _check_listening(address: str) -> None:
    """A HOST:PORT where nothing listens is one sentence at once: ray.init would retry it for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise JsontuneError(f"--ray {address}: give auto, HOST:PORT or ray://HOST:PORT.")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as e:
        raise JsontuneError(
            f"no Ray cluster answers at {address} ({e.strerror or e}); start one there with `ray start --head`, "
            "or leave out the address to run Ray on the local machine."
        ) from None


def _has_token() -> bool:
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH", os.path.expanduser("~/.ray/auth_token"))
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(token_file)


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the duration (Ray's C++ logs bypass Python's sys.stderr)."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and execution banners stay off: predict draws one bar for all replicas."""
    import ray.data

    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # its banners, and errors raised to us anyway
    context = ray.data.DataContext.get_current()
    context.raise_original_map_exception = True  # a replica's own error, not Ray's wrapping of it
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False


def replica_resources(engine: str, options: RayOptions, tensor_parallel_size: int) -> tuple[float, float]:
    """(GPUs, CPUs) each replica asks Ray for: the flags, else one GPU per tensor-parallel rank where the
    cluster has GPUs (none where it has none), and one CPU."""
    import ray

    gpus = options.gpus_per_replica
    if gpus is None:
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        gpus = float(tensor_parallel_size if engine == "vllm" else 1) if has_gpus else 0.0
    cpus = 1.0 if options.cpus_per_replica is None else options.cpus_per_replica
    return gpus, cpus


def check_room(options: RayOptions, gpus: float, cpus: float) -> None:
    """Refuse, before anything starts, a replica no node can hold, or more replicas than the cluster holds
    (Ray would wait for them for ever)."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    for flag, kind, need in (("--gpus-per-replica", "GPU", gpus), ("--cpus-per-replica", "CPU", cpus)):
        most = max((node.get(kind, 0.0) for node in nodes), default=0.0)
        if need > most:
            raise JsontuneError(
                f"{flag} {need:g}: no node of the Ray cluster has {need:g} {kind}s (the most on one node is "
                f"{most:g}); lower {flag}{' or --tensor-parallel-size' if kind == 'GPU' else ''}."
            )
        fits = sum(int(node.get(kind, 0.0) // need) for node in nodes) if need else options.replicas
        if fits < options.replicas:
            raise JsontuneError(
                f"--replicas {options.replicas} with {flag} {need:g}: the Ray cluster has room for {fits} "
                f"replica(s); lower --replicas or {flag}, or add nodes."
            )


def ray_error_reason(error: BaseException) -> str:
    """The last line of what went wrong, with Ray's wrapping stripped: the sentence a user can act on."""
    cause = error
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:  # RayTaskError -> the user's error
        cause = cause.cause
    text = str(cause).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    marker = next((line for line in reversed(lines) if "JsontuneError" in line or line.startswith("error:")), None)
    reason = (marker or (lines[-1] if lines else type(cause).__name__)).removeprefix("jsontune.errors.")
    return " ".join(reason.split())[:300]
