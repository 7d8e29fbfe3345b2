"""`jsontune extract --url`: the client of `jsontune serve` (or any OpenAI-compatible server of the model).

    jsontune extract --url http://127.0.0.1:8000 "Necesito 100 tornillos a 50 pesos"
    jsontune extract --url http://127.0.0.1:8000 --input orders.jsonl --out pred.csv --concurrency 32

`ServerEngine` is an Engine like the others: it takes the prompts `prompts.py` rendered (in the format the
model's manifest records; `Extractor.connect` resolves it) and sends each as one completion request, greedy,
with `response_format` set to the JSON schema, asking for the generated token ids too, many in flight at once
(the `openai` client, which retries connection errors, timeouts and 5xx with backoff). The CSV, its resume
sidecar and its manifest are `predict`'s.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.serving.base import Batches, Generation, GenerationParams, Progress, decode_output, in_order

CHUNK_SIZE = 256  # rows a job saves at once


def base_url(url: str) -> str:
    """The OpenAI base URL for what the user typed: http://host:8000, .../v1 or .../v1/."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


@dataclass(frozen=True)
class ServerClient:
    """How the client talks to the server: `jsontune extract`'s flags are made from these fields."""

    model_name: str | None = field(
        default=None, metadata={"help": "The served model to ask (default: the adapter, else the model)."}
    )
    api_key: str | None = field(default=None, metadata={"help": "The server's --api-key (default: $JSONTUNE_API_KEY)."})
    concurrency: int = field(default=16, metadata={"help": "Requests in flight at once."})
    timeout_s: float = field(default=120.0, metadata={"help": "Seconds one request may take (per try)."})
    retries: int = field(default=3, metadata={"help": "Retries of a request on connection errors, timeouts and 5xx."})

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise JsontuneError(f"--concurrency must be at least 1, got {self.concurrency}.")

    def open(self, url: str) -> Any:
        """An `openai.OpenAI` client for the server at `url` (its retries and timeout as set here)."""
        from openai import OpenAI

        key = self.api_key or os.environ.get("JSONTUNE_API_KEY") or "none"  # vLLM without --api-key takes any
        return OpenAI(base_url=base_url(url), api_key=key, timeout=self.timeout_s, max_retries=self.retries)


def served_model(url: str, client: ServerClient) -> tuple[str, str | None]:
    """(the model to ask for, the checkpoint or adapter it was loaded from, as the server reports it): the
    client's model_name, else the only model served, else the LoRA adapter (the model with a parent). One
    sentence for a dead server, a refused key or a bad name."""
    api = client.open(url)
    try:
        models = list(api.models.list())
    except Exception as e:
        raise JsontuneError(api_error(e, base_url(url))) from None
    finally:
        api.close()
    names = [m.id for m in models]
    if client.model_name is not None:
        if client.model_name not in names:
            raise JsontuneError(f"{base_url(url)} serves no model {client.model_name!r}; it serves {', '.join(names)}.")
        chosen = next(m for m in models if m.id == client.model_name)
    else:
        adapters = [m for m in models if getattr(m, "parent", None)]
        chosen = adapters[0] if adapters else models[0]
    return chosen.id, getattr(chosen, "root", None)


class ServerEngine:
    """Completions from a served model, for prompts rendered here (`prompts.py`), as every engine takes them: the
    server tokenizes the prompt as it stands (no special tokens added) and decodes greedily."""

    name = "server"

    def __init__(self, url: str, tokenizer: Any, model_name: str, client: ServerClient | None = None) -> None:
        self.client = client or ServerClient()
        self.url, self.tokenizer, self.model_name = base_url(url), tokenizer, model_name
        self.concurrency = self.client.concurrency
        self.api = self.client.open(url)
        self.settings: dict[str, Any] = {"url": self.url, "model_name": model_name, "concurrency": self.concurrency}

    def _one(self, prompt: str, params: GenerationParams) -> Generation:
        extra: dict[str, Any] = {"add_special_tokens": False, "return_token_ids": True}
        if params.logprobs:
            extra["logprobs"] = 0  # the chosen token's own log-probability, as the offline engine gives it
        if params.json_schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "extraction", "schema": params.json_schema},
            }
        answer = self.api.completions.create(
            model=self.model_name,
            prompt=prompt,
            temperature=0.0,
            max_tokens=params.max_new_tokens,
            extra_body=extra,
        )
        choice = answer.choices[0]
        token_ids = tuple((choice.model_extra or {}).get("token_ids") or ())
        stopped = choice.finish_reason != "length"
        usage = answer.usage
        logprobs = tuple(float(x) for x in (choice.logprobs.token_logprobs or [])) if choice.logprobs else ()
        # The server's prefix-cache count (vLLM's, with --enable-prompt-tokens-details, which `jsontune serve` gives).
        details = usage.prompt_tokens_details if usage else None
        return Generation(
            # The one decoding of every engine, from the ids the server generated (its own text where it sent
            # none: a server that does not know return_token_ids).
            decode_output(self.tokenizer, token_ids, stopped=stopped) if token_ids else choice.text or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else len(token_ids),
            "stop" if stopped else "length",
            token_ids,
            logprobs,
            details.cached_tokens if details else None,
        )

    def stream(
        self, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None = None
    ) -> Batches:
        """(position, generation) pairs as requests finish, `concurrency` in flight, at most `chunk_size` a batch;
        the first request that fails for good (after the client's retries) stops the rest and is one sentence."""
        pending = iter(enumerate(prompts))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: dict[Any, int] = {}

            def fill() -> None:
                for i, prompt in pending:
                    running[pool.submit(self._one, prompt, params)] = i
                    if len(running) >= self.concurrency:
                        return

            fill()
            batch: list[tuple[int, Generation]] = []
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    try:
                        batch.append((i, future.result()))
                    except Exception as e:
                        for other in running:
                            other.cancel()
                        raise JsontuneError(api_error(e, self.url)) from None
                fill()
                if progress:
                    progress(len(finished))
                if len(batch) >= chunk_size or not running:
                    yield batch
                    batch = []

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        return in_order(self.stream(prompts, params, self.concurrency, progress), len(prompts))

    def chunk_size(self, rows: int) -> int:
        return min(rows, CHUNK_SIZE) or 1

    def reset_cache(self) -> None:
        """The server's cache is the server's."""

    def close(self) -> None:
        self.api.close()


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
