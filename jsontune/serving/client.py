"""`jsontune extract --url`: the client of `jsontune serve` (or any OpenAI-compatible server of the model).

    jsontune extract --url http://127.0.0.1:8000 "Necesito 100 tornillos a 50 pesos"
    jsontune extract --url http://127.0.0.1:8000 --input orders.jsonl --out pred.csv --concurrency 32

Each text becomes the chat messages `prompts.py` builds (in the format the model's manifest records) and one
chat completion, greedy, with `response_format` set to the JSON schema, many in flight at once (the `openai`
client, which retries connection errors, timeouts and 5xx with backoff). `ServerEngine` is an Engine like
the others, so the CSV, its resume sidecar and its manifest are `predict`'s (`run_predictions`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from jsontune.errors import JsontuneError
from jsontune.serving.base import Generation, GenerationParams, Progress, in_order

if TYPE_CHECKING:
    from jsontune.prompts import PromptFormat


def base_url(url: str) -> str:
    """The OpenAI base URL for what the user typed: http://host:8000, .../v1 or .../v1/."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class ServerEngine:
    """Chat completions from a served model; `generate`/`stream` take the texts themselves (the messages are
    built here, the server applies the chat template)."""

    name = "server"

    def __init__(
        self,
        url: str,
        fmt: PromptFormat,
        *,
        model_name: str | None = None,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        retries: int = 3,
    ) -> None:
        if concurrency < 1:
            raise JsontuneError(f"--concurrency must be at least 1, got {concurrency}.")
        from openai import OpenAI

        self.url, self.fmt, self.concurrency = base_url(url), fmt, concurrency
        key = api_key or os.environ.get("JSONTUNE_API_KEY") or "none"  # vLLM without --api-key takes any
        self.client = OpenAI(base_url=self.url, api_key=key, timeout=timeout_s, max_retries=retries)
        self.model_name, self.root = self._served_model(model_name)
        self.settings: dict[str, Any] = {"url": self.url, "model_name": self.model_name, "concurrency": concurrency}

    def _served_model(self, asked: str | None) -> tuple[str, str | None]:
        """(the model to ask for, its folder on the server): `asked`, else the only model served, else the
        LoRA adapter (the model with a parent). One sentence for a dead server, a refused key or a bad name."""
        try:
            models = list(self.client.models.list())
        except Exception as e:
            raise JsontuneError(api_error(e, self.url)) from None
        names = [m.id for m in models]
        if asked is not None:
            if asked not in names:
                raise JsontuneError(f"{self.url} serves no model {asked!r}; it serves {', '.join(names)}.")
            chosen = next(m for m in models if m.id == asked)
        else:
            adapters = [m for m in models if getattr(m, "parent", None)]
            chosen = adapters[0] if adapters else models[0]
        return chosen.id, getattr(chosen, "root", None)

    def _one(self, text: str, params: GenerationParams) -> Generation:
        from jsontune.prompts import build_messages

        extra: dict[str, Any] = {"chat_template_kwargs": self.fmt.chat_template_kwargs}
        if params.json_schema is not None:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": "extraction", "schema": params.json_schema},
            }
        else:
            response_format = None
        answer = self.client.chat.completions.create(
            model=self.model_name,
            messages=build_messages(text, self.fmt),
            temperature=0.0,
            max_tokens=params.max_new_tokens,
            **({"response_format": response_format} if response_format else {}),
            extra_body=extra,
        )
        choice = answer.choices[0]
        usage = answer.usage
        return Generation(
            choice.message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            "length" if choice.finish_reason == "length" else "stop",
        )

    def stream(
        self, texts: list[str], params: GenerationParams, batch_size: int
    ) -> Iterator[list[tuple[int, Generation]]]:
        """(position, generation) pairs as requests finish, `concurrency` in flight; the first request that
        fails for good (after the client's retries) stops the rest and is one sentence."""
        pending = iter(enumerate(texts))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running = {}
            for i, text in pending:
                running[pool.submit(self._one, text, params)] = i
                if len(running) >= self.concurrency:
                    break
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                batch = []
                for future in finished:
                    i = running.pop(future)
                    try:
                        batch.append((i, future.result()))
                    except Exception as e:
                        for other in running:
                            other.cancel()
                        raise JsontuneError(api_error(e, self.url)) from None
                for i, text in pending:
                    running[pool.submit(self._one, text, params)] = i
                    if len(running) >= self.concurrency:
                        break
                yield batch

    def generate(
        self, texts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        return in_order(self.stream(texts, params, self.concurrency), len(texts), progress)

    def reset_cache(self) -> None:
        """The server's cache is the server's."""

    def close(self) -> None:
        self.client.close()


def api_error(error: BaseException, url: str) -> str:
    """One sentence for what the openai client raised."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return f"{url} did not answer in time (after the client's retries); raise --timeout-s or lower --concurrency."
    if isinstance(error, openai.APIConnectionError):
        return f"no server answers at {url}; start one with `jsontune serve MODEL`, or check --url."
    if isinstance(error, openai.AuthenticationError):
        return f"{url} refused the API key (401); pass the server's --api-key (or set JSONTUNE_API_KEY)."
    if isinstance(error, openai.NotFoundError):
        return f"{url} answered 404 ({_message(error)}); check --model-name and --url."
    if isinstance(error, openai.APIStatusError):
        return f"{url} answered {error.status_code}: {_message(error)}."
    return f"the request to {url} failed ({type(error).__name__}: {' '.join(str(error).split())[:200]})."


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return " ".join(str(message or error).split())[:200]


def connect(
    url: str,
    model: str | os.PathLike | None = None,
    schema: str | os.PathLike | None = None,
    guided: bool = True,
    **client: Any,
) -> tuple[ServerEngine, dict[str, Any] | None]:
    """The engine for the server at `url`, in the prompt format of `model` (the checkpoint or adapter folder;
    default: the folder the server reports, where it exists here), and the schema to send as
    `response_format` (`schema`, else the one inferred from the training data the manifest names)."""
    from pathlib import Path

    from jsontune.manifest import read_prompt_format
    from jsontune.prompts import PromptFormat
    from jsontune.schema import load_schema, schema_if_known

    engine = ServerEngine(url, PromptFormat(), **client)
    folder = str(model) if model else engine.root if engine.root and Path(engine.root).is_dir() else None
    if folder:
        engine.fmt = read_prompt_format(folder)
    known = load_schema(schema) if schema else schema_if_known([folder]) if folder else None
    engine.settings.update(prompt_format_from=folder, guided=guided and known is not None)
    return engine, known if guided else None
