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
    from jsontune.data import Record
    from jsontune.prompts import PromptFormat
    from jsontune.serving.base import Engine, Generation, GenerationParams
    from jsontune.serving.ray_engine import RayOptions


@dataclass(frozen=True)
class Extraction:
    """One text's result: the JSON (None where the output held none) and what the engine generated."""

    id: str
    prediction: dict[str, Any] | None
    raw_output: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop", or "length" when --max-new-tokens cut the output

    @property
    def valid_json(self) -> bool:
        return self.prediction is not None


class Extractor:
    """An engine with the tokenizer, prompt format and decoding settings it is asked with."""

    def __init__(
        self,
        engine: Engine,
        tokenizer: Any,
        fmt: PromptFormat,
        params: GenerationParams,
        schema: dict[str, Any] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.engine, self.tokenizer, self.fmt, self.params = engine, tokenizer, fmt, params
        self.schema = schema  # what outputs are checked against (and, when guided, decoded under)
        self.notes = notes or []  # e.g. that --max-new-tokens may cut the longest answer the schema allows
        self.fit_prompts: list[str] = []  # the prompts of `load`'s `fit` records, rendered once

    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        engine: str = "auto",
        *,
        lora: str | os.PathLike | None = None,
        guided_json: bool = False,
        schema: str | os.PathLike | None = None,
        max_new_tokens: int = 64,
        params: GenerationParams | None = None,
        ray: RayOptions | None = None,
        fit: tuple[str | os.PathLike, list[Record]] | None = None,
        **engine_options: Any,
    ) -> Extractor:
        """Load `model` (a merged checkpoint, or a base with a `lora` adapter) on `engine` ("auto", "hf" or
        "vllm"; with `ray`, on that many Ray replicas). `guided_json` constrains vLLM's decoding to `schema`
        (a JSON schema file; default: inferred from the training data the manifest names). `fit` is
        (input path, its records): their prompts are rendered once (`fit_prompts`), and vLLM's context is
        sized to the longest. Other keyword
        arguments go to the engine (batch_size, dtype, device, max_model_len, kv_cache_gb, ...)."""
        from jsontune.manifest import read_prompt_format
        from jsontune.modeling import load_tokenizer
        from jsontune.serving.base import GenerationParams
        from jsontune.serving.registry import make_engine, resolve_engine

        model, lora = str(model), str(lora) if lora else None
        engine = resolve_engine(engine)
        if lora and not (Path(lora) / "adapter_config.json").is_file():
            raise JsontuneError(
                f"--lora {lora} is not a PEFT adapter folder (no adapter_config.json); "
                "give RUN/best or RUN/last of a `jsontune train` run."
            )
        if guided_json and engine != "vllm":
            raise JsontuneError("--guided-json needs --engine vllm; HF generate here cannot constrain decoding.")
        params = params or GenerationParams(max_new_tokens=max_new_tokens)
        tokenizer = load_tokenizer(model, trust_remote_code=bool(engine_options.get("trust_remote_code")))
        # The adapter's manifest records the prompt format it was trained with; a merged model's its own.
        fmt = read_prompt_format(lora or model)
        known_schema = _schema(schema, [f for f in (lora, model) if f], required=guided_json)
        notes = []
        if guided_json:
            params = replace(params, json_schema=known_schema)
            notes += _check_room(tokenizer, known_schema, params.max_new_tokens)
        options, fit_prompts = dict(engine_options), []
        if fit is not None:
            from jsontune.prompts import render_prompts, token_lengths

            input_path, records = fit
            fit_prompts = render_prompts(tokenizer, [r.text for r in records], fmt)
            if engine == "vllm":
                lengths = token_lengths(tokenizer, fit_prompts)
                options["max_model_len"] = fit_context(
                    input_path, records, lengths, params.max_new_tokens, options.get("max_model_len")
                )
        if ray is not None:
            from jsontune.serving.ray_engine import RayEngine

            built: Engine = RayEngine(engine, model, ray, lora=lora, **options)
        else:
            built = make_engine(engine, model, lora=lora, **options)
        extractor = cls(built, tokenizer, fmt, params, known_schema, notes)
        extractor.fit_prompts = fit_prompts
        return extractor

    def prompts(self, texts: list[str]) -> list[str]:
        """The exact strings the engine is given: the chat template, thinking off, in the trained format."""
        from jsontune.prompts import render_prompts

        return render_prompts(self.tokenizer, texts, self.fmt)

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
            Extraction(i, extract_json(g.text), g.text, g.prompt_tokens, g.output_tokens, g.finish_reason)
            for i, g in zip(ids, self.generate(texts), strict=True)
        ]

    def close(self) -> None:
        """Free the engine (its model, and vLLM's engine processes)."""
        self.engine.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def fit_context(
    input_path: str | os.PathLike, records: list[Record], lengths: list[int], max_new_tokens: int, asked: int | None
) -> int:
    """vLLM's context length for this job: --max-model-len when given (every prompt must leave room to
    generate), else the longest prompt plus --max-new-tokens, so the KV cache is sized for the job and not
    for the model's 40k-token maximum."""
    if not lengths:
        return asked or max_new_tokens + 1
    if asked is None:
        return max(lengths) + max_new_tokens
    for record, n in zip(records, lengths, strict=True):
        if n >= asked:
            raise JsontuneError(
                f"{input_path}: row {record.id!r} has a prompt of {n} tokens, which leaves no room to generate "
                f"within --max-model-len {asked}; raise --max-model-len to {n + max_new_tokens}, or shorten that text."
            )
    return asked
