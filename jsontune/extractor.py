"""Use a trained extractor from Python: the model loaded once, texts in, JSON out.

    from jsontune import Extractor

    with Extractor.load("runs/merged", engine="auto") as ex:
        ex.extract(["Necesito 100 tornillos a 50 pesos"])   # -> [{"producto": ..., ...}]  (None: no JSON)

It is `jsontune predict` without the files: the same engines (HF or vLLM, `lora`, `guided_json`), the same
prompt (`prompts.py`, in the format the model's manifest records) and the same extraction. `predict` itself
builds one, and so does the training F1 eval over the model being trained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsontune.errors import JsontuneError

if TYPE_CHECKING:
    from jsontune.data import LoadResult, Record
    from jsontune.prompts import PromptFormat
    from jsontune.serving.base import Engine, Generation, GenerationParams
    from jsontune.serving.client import ServerClient
    from jsontune.serving.ray_engine import RayOptions
    from jsontune.serving.settings import EngineSettings


@dataclass(frozen=True)
class Extraction:
    """One text's result: the JSON (None where the output held none) and what the engine generated."""

    id: str
    prediction: dict[str, Any] | None
    raw_output: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop", or "length" when --max-new-tokens cut the output
    confidence: dict[str, float | None] | None = None  # each field's, where the decoding gave log-probs
    min_confidence: float | None = None  # the lowest field's

    @property
    def valid_json(self) -> bool:
        """The output is strict JSON as written: what a client's plain `json.loads` reads (`parsing.valid_json`)."""
        from jsontune.parsing import find_json, valid_json

        return valid_json(find_json(self.raw_output))

    @property
    def repaired(self) -> bool:
        """The prediction could be read only after repair, so the output is not valid JSON."""
        return self.prediction is not None and not self.valid_json


@dataclass(frozen=True)
class Prompting:
    """How texts are asked: the tokenizer, the prompt format the model was trained with, the decoding and the
    schema outputs are checked against (and, when guided, decoded under). Resolved once, by `resolve`."""

    tokenizer: Any
    fmt: PromptFormat
    params: GenerationParams
    schema: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()  # e.g. that --max-new-tokens may cut the longest answer the schema allows

    @classmethod
    def resolve(
        cls,
        folder: str,
        lora: str | None = None,
        *,
        guided_json: bool = False,
        schema: str | os.PathLike | None = None,
        params: GenerationParams | None = None,
        schema_required: bool | None = None,
        trust_remote_code: bool = False,
    ) -> Prompting:
        """The tokenizer of `folder`, the prompt format the adapter's (else the model's) manifest records, and the
        schema: `schema`, else inferred from the training data the manifest names (`schema_required`, default
        `guided_json`: one sentence when there is none). `guided_json` decodes under it."""
        from jsontune.manifest import read_prompt_format
        from jsontune.modeling import load_tokenizer
        from jsontune.serving.base import GenerationParams

        params = params or GenerationParams(logprobs=True)  # confidences by default
        tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        fmt = read_prompt_format(lora or folder)
        required = guided_json if schema_required is None else schema_required
        known = _schema(schema, [f for f in (lora, folder) if f], required=required)
        notes: list[str] = []
        if guided_json and known is not None:
            params = replace(params, json_schema=known)
            notes += _check_room(tokenizer, known, params.max_new_tokens)
        return cls(tokenizer, fmt, params, known, tuple(notes))

    def prompts(self, texts: list[str]) -> list[str]:
        """The exact strings an engine is given: the chat template, thinking off, in the trained format."""
        from jsontune.prompts import render_prompts

        return render_prompts(self.tokenizer, texts, self.fmt)


class Extractor:
    """An engine with the tokenizer, prompt format and decoding settings it is asked with."""

    def __init__(
        self,
        engine: Engine,
        prompting: Prompting,
        prompts: list[str] | None = None,
        identity: dict[str, Any] | None = None,
        recorded: dict[str, Any] | None = None,
    ) -> None:
        self.engine, self.prompting = engine, prompting
        # What makes the predictions, for a resume sidecar: the model (and adapter) and the engine, not where
        # it runs (a restarted server on another address is the same model).
        self.identity = identity or {"engine": engine.name}
        # What predict's manifest records beside the engine's own settings: why `auto` took it, where a server's
        # prompt format came from.
        self.recorded = recorded or {}
        self.tokenizer, self.fmt, self.params = prompting.tokenizer, prompting.fmt, prompting.params
        self.schema = prompting.schema  # what outputs are checked against (and, when guided, decoded under)
        self.notes = list(prompting.notes)
        self.fitted_prompts = prompts or []  # the prompts of the records `load` fitted the engine to, rendered once

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        engine: str = "auto",
        *,
        lora: str | os.PathLike | None = None,
        guided_json: bool = False,
        schema: str | os.PathLike | None = None,
        params: GenerationParams | None = None,
        settings: EngineSettings | None = None,
        ray: RayOptions | None = None,
        fit: LoadResult | None = None,
    ) -> Extractor:
        """Load `model` (a merged checkpoint, or a base with a `lora` adapter) on `engine` ("auto", "hf" or
        "vllm"; with `ray`, on that many Ray replicas), as `settings` say. `guided_json` constrains vLLM's
        decoding to `schema` (a JSON schema file; default: inferred from the training data the manifest
        names). `fit` is the job's input: its prompts are rendered once (`fitted_prompts`), and vLLM's context
        is sized to the longest."""
        from jsontune.prompts import token_lengths
        from jsontune.serving.registry import auto_engine
        from jsontune.shape import job_tokens

        kind, settings = _engine_and_settings(engine, settings, guided_json)
        lora = _adapter(lora)
        prompting = Prompting.resolve(
            str(model),
            lora,
            guided_json=guided_json,
            schema=schema,
            params=params,
            trust_remote_code=settings.trust_remote_code,
        )
        prompts = prompting.prompts([r.text for r in fit.records]) if fit is not None else []
        rule = None
        if fit is not None and kind == "vllm":
            lengths = token_lengths(prompting.tokenizer, prompts)
            new_tokens = prompting.params.max_new_tokens
            if engine == "auto":
                size = job_tokens(lengths, new_tokens)
                kind, rule = auto_engine(
                    str(model), settings, size, guided=guided_json, ray=ray is not None, lora=lora is not None
                )
            if kind == "vllm":
                settings = fit_context(settings, fit, lengths, new_tokens)
        identity = {"model": str(model), "lora": lora, "engine": kind}
        built = build_engine(kind, str(model), settings, lora=lora, ray=ray)
        return cls(built, prompting, prompts, identity, {"engine_rule": rule} if rule else None)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        model: str | os.PathLike | None = None,
        schema: str | os.PathLike | None = None,
        guided: bool = True,
        params: GenerationParams | None = None,
        client: ServerClient | None = None,
    ) -> Extractor:
        """The model that `jsontune serve` (or any vLLM OpenAI server of it) serves at `url`, asked as `load`'s
        engines are: the prompt rendered here in the format of `model` (the checkpoint or adapter folder;
        default: the folder the server reports), sent to the completions endpoint. `guided` sends the schema
        (`schema`, else the one inferred from the training data the manifest names) when one is known."""
        from jsontune.serving.client import ServerClient, ServerEngine, served_model

        client = client or ServerClient()
        name, root = served_model(url, client)
        folder = str(model) if model else root
        if not folder:
            raise JsontuneError(
                f"{url} does not say which checkpoint it serves; pass --model FOLDER (the served checkpoint or "
                "adapter), so that the prompts are rendered in its format."
            )
        prompting = Prompting.resolve(folder, guided_json=guided, schema=schema, params=params, schema_required=False)
        engine = ServerEngine(url, prompting.tokenizer, name, client)
        # The URL is where the model is, not what it is: a resume against another address serving the same
        # checkpoint in the same prompt format continues (the decoding and schema are compared as well).
        identity = {"engine": "server", "model": name, "served_from": root, "prompt_format": prompting.fmt.to_dict()}
        recorded = {"prompt_format_from": folder, "guided": prompting.params.json_schema is not None}
        return cls(engine, prompting, identity=identity, recorded=recorded)

    def prompts(self, texts: list[str]) -> list[str]:
        """The exact strings the engine is given: the chat template, thinking off, in the trained format."""
        return self.prompting.prompts(texts)

    def confidences(self, generation: Generation) -> tuple[dict[str, float | None] | None, float | None]:
        """Each extracted field's confidence (`confidence.py`) and the row's, its lowest field's; (None, None)
        for a generation without log-probs."""
        from jsontune.confidence import field_confidences, row_confidence, token_spans

        if not generation.logprobs:
            return None, None
        spans = token_spans(self.tokenizer, generation.token_ids, stopped=generation.finish_reason == "stop")
        fields = field_confidences(generation.text, spans, list(generation.logprobs))
        return fields, row_confidence(fields)

    def generate(self, texts: list[str]) -> list[Generation]:
        return self.engine.generate(self.prompts(texts), self.params)

    def extract(self, texts: str | list[str]) -> list[dict[str, Any] | None]:
        """The JSON object of each text (None where the model wrote none), in order."""
        return [e.prediction for e in self.extract_records([texts] if isinstance(texts, str) else texts)]

    def extract_records(self, records: list[Record] | list[str]) -> list[Extraction]:
        """Each record's (or text's) Extraction: the JSON, the raw output, its token counts and finish reason."""
        from jsontune.parsing import extract_json

        ids = [str(i) if isinstance(r, str) else r.id for i, r in enumerate(records)]
        texts = [r if isinstance(r, str) else r.text for r in records]
        return [
            Extraction(
                i, extract_json(g.text), g.text, g.prompt_tokens, g.output_tokens, g.finish_reason, *self.confidences(g)
            )
            for i, g in zip(ids, self.generate(texts), strict=True)
        ]

    def close(self) -> None:
        """Free the engine (its model, and vLLM's engine processes)."""
        self.engine.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _engine_and_settings(engine: str, settings: EngineSettings | None, guided_json: bool) -> tuple[str, EngineSettings]:
    """The engine --engine NAME means here, and the settings for it (one sentence for one it does not take)."""
    from jsontune.serving.registry import resolve_engine
    from jsontune.serving.settings import EngineSettings

    kind = resolve_engine(engine)
    if guided_json and kind != "vllm":
        raise JsontuneError("--guided-json needs --engine vllm; HF generate here cannot constrain decoding.")
    return kind, (settings or EngineSettings()).for_engine(kind)


def _adapter(lora: str | os.PathLike | None) -> str | None:
    if lora and not (Path(lora) / "adapter_config.json").is_file():
        raise JsontuneError(
            f"--lora {lora} is not a PEFT adapter folder (no adapter_config.json); "
            "give RUN/best or RUN/last of a `jsontune train` run."
        )
    return str(lora) if lora else None


def build_engine(
    kind: str, model: str, settings: EngineSettings, *, lora: str | None = None, ray: RayOptions | None = None
) -> Engine:
    """Engine `kind` for `model`: in this process, or with `ray` on that many Ray replicas."""
    if ray is not None:
        from jsontune.serving.ray_engine import RayEngine

        return RayEngine(kind, model, ray, settings, lora=lora)
    from jsontune.serving.registry import make_engine

    return make_engine(kind, model, settings, lora=lora)


def _schema(schema_file: str | os.PathLike | None, folders: list[str], *, required: bool) -> dict[str, Any] | None:
    """The schema outputs are checked against (and, with --guided-json, decoded under): --schema, else the
    one inferred from the training data in the model's manifest; None when neither exists and none is needed."""
    from jsontune.schema import guided_json_schema, schema_if_known

    return guided_json_schema(schema_file, folders) if required or schema_file else schema_if_known(folders)


def _check_room(tokenizer: Any, schema: dict[str, Any], max_new_tokens: int) -> list[str]:
    """Refuse a --max-new-tokens that cannot hold even the shortest object the schema allows; a note when
    it is shorter than the longest one."""
    from jsontune.schema import longest_output, minimal_output

    shortest = minimal_output(schema)
    needed = len(tokenizer(shortest, add_special_tokens=False)["input_ids"]) + 1  # + the end-of-turn token
    if max_new_tokens < needed:
        raise JsontuneError(
            f"--max-new-tokens {max_new_tokens} cannot hold even the shortest JSON the schema allows "
            f"({shortest}, {needed} tokens with the end of turn); raise --max-new-tokens."
        )
    most = longest_output(schema)
    if most is None or max_new_tokens > most:
        return []
    return [
        f"the schema allows answers of up to {most} characters and --max-new-tokens is {max_new_tokens}: "
        "an answer that long would be cut (counted as cut below)."
    ]


def fit_context(settings: EngineSettings, inputs: LoadResult, lengths: list[int], new_tokens: int) -> EngineSettings:
    """`settings` with vLLM's context length for a job whose prompts (of `inputs`' records) are `lengths` tokens
    long: --max-model-len when given (every prompt must leave room to generate), else the longest prompt plus
    `new_tokens`, so the KV cache is sized for the job and not for the model's 40k-token maximum. The job's size
    (`job_tokens`: every prompt and `new_tokens` for each) goes with it: vLLM's engine runs in this process for a
    small job (`vllm_engine.in_process`)."""
    from jsontune.shape import job_tokens

    settings = replace(settings, job_tokens=job_tokens(lengths, new_tokens))
    asked = settings.max_model_len
    if not lengths:
        return replace(settings, max_model_len=asked or new_tokens + 1)
    if asked is None:
        return replace(settings, max_model_len=max(lengths) + new_tokens)
    for record, n in zip(inputs.records, lengths, strict=True):
        if n >= asked:
            raise JsontuneError(
                f"{inputs.path}: row {record.id!r} has a prompt of {n} tokens, which leaves no room to generate "
                f"within --max-model-len {asked}; raise --max-model-len to {n + new_tokens}, or shorten that text."
            )
    return settings
