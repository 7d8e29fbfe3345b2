"""Hugging Face `generate`: the naive sequential baseline, or length-sorted left-padded batches.

Both modes decode greedily with the KV cache and stop on the model's own end-of-sequence ids
(Qwen3: `<|im_end|>` and `<|endoftext|>`); a batch stops once every row has finished. Left padding
keeps every row's last prompt token at the end, where generation continues, and `generate` derives
position ids from the attention mask, so a padded row decodes like the same prompt alone.
"""

from __future__ import annotations

import torch

from jsontune.device import dtype_name
from jsontune.errors import JsontuneError
from jsontune.serving.base import Batches, Generation, GenerationParams, Progress, chunked, decode_output
from jsontune.serving.settings import HF, EngineSettings

CHUNK_SIZE = 256  # rows a predict job saves at once: HF works batch by batch, and reports each


class HFEngine:
    """Greedy `generate` over a model in memory: `HFEngine.load(folder)` loads one, the training F1 eval
    passes the model being trained."""

    def __init__(self, model, tokenizer, *, batch_size: int = 8, sequential: bool = False) -> None:
        # batch_size is at least 1: `EngineSettings` checks --batch-size, `TrainConfig` eval_batch_size
        self.model, self.tokenizer = model, tokenizer
        self.sequential = sequential
        self.batch_size = 1 if sequential else batch_size
        self.name = "hf-seq" if sequential else "hf-batch"
        self.settings = {
            "device": str(model.device),
            "dtype": dtype_name(str(model.dtype)),
            "batch_size": self.batch_size,
            "torch_threads": torch.get_num_threads(),
        }
        self.eos_ids = _eos_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]  # e.g. Llama folders have no pad token

    @classmethod
    def load(cls, model: str, settings: EngineSettings | None = None, *, lora: str | None = None) -> HFEngine:
        """Load `model` (a folder or Hub id; with `lora`, that adapter on top) and its tokenizer, as `settings`
        say (dtype, device, batch size, sequential)."""
        from jsontune.modeling import load_model, load_tokenizer

        s = (settings or EngineSettings()).for_engine(HF)
        tokenizer = load_tokenizer(model, trust_remote_code=s.trust_remote_code)
        loaded = load_model(model, dtype=s.dtype, device=s.device, trust_remote_code=s.trust_remote_code)
        if lora:
            from peft import PeftModel

            loaded = PeftModel.from_pretrained(loaded, str(lora)).eval()
        return cls(loaded, tokenizer, batch_size=s.batch_size, sequential=s.sequential)

    def generate(
        self, prompts: list[str], params: GenerationParams, progress: Progress | None = None
    ) -> list[Generation]:
        if params.json_schema is not None:
            raise JsontuneError("--guided-json needs --engine vllm; the HF engine cannot constrain decoding.")
        ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        # The baseline keeps input order; batches take neighbours in length so rows share little padding.
        order = range(len(ids)) if self.sequential else sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        results: list[Generation | None] = [None] * len(ids)
        start = 0
        while start < len(order):
            rows = order[start : start + self.batch_size]
            try:
                generations = self._generate_batch([ids[i] for i in rows], params)
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise JsontuneError(
                        "The model ran out of GPU memory on a single prompt; lower --max-new-tokens, "
                        "use --dtype bfloat16, or free the GPU."
                    ) from None
                self.batch_size //= 2
                torch.cuda.empty_cache()
                continue
            for i, generation in zip(rows, generations, strict=True):
                results[i] = generation
            start += len(rows)
            if progress:
                progress(len(rows))
        return results  # type: ignore[return-value]

    def _generate_batch(self, batch: list[list[int]], params: GenerationParams) -> list[Generation]:
        """Greedy-decode one batch of token-id prompts (left-padded when their lengths differ)."""
        # Left padding by hand: the tokenizer may have no pad token and may be shared (the training eval).
        width = max(len(ids) for ids in batch)
        input_ids = [[self.pad_id] * (width - len(ids)) + ids for ids in batch]
        mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch]
        device = self.model.device
        inputs = {
            "input_ids": torch.tensor(input_ids, device=device),
            "attention_mask": torch.tensor(mask, device=device),
        }
        min_new = params.max_new_tokens if params.ignore_eos else params.min_new_tokens
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=min_new,
                eos_token_id=self.eos_ids,
                pad_token_id=self.pad_id,
                use_cache=True,
                # The raw logits of each step (before any logits processor), as vLLM's raw_logprobs.
                output_logits=params.logprobs,
                return_dict_in_generate=True,
            )
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]
        logprobs = _token_logprobs(out.logits, new_tokens) if params.logprobs else None
        return [
            self._generation(len(ids), new, logprobs[row] if logprobs is not None else [])
            for row, (ids, new) in enumerate(zip(batch, new_tokens.tolist(), strict=True))
        ]

    def _generation(self, prompt_tokens: int, tokens: list[int], logprobs: list[float]) -> Generation:
        # After a row's end-of-sequence token, generate fills it with padding until the batch ends.
        end = next((i + 1 for i, t in enumerate(tokens) if t in self.eos_ids), None)
        kept = tokens[:end] if end else tokens
        text = decode_output(self.tokenizer, kept, stopped=bool(end))
        finish = "stop" if end else "length"
        return Generation(text, prompt_tokens, len(kept), finish, tuple(kept), tuple(logprobs[: len(kept)]))

    def stream(
        self, prompts: list[str], params: GenerationParams, chunk_size: int, progress: Progress | None = None
    ) -> Batches:
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows: int) -> int:
        return min(rows, CHUNK_SIZE) or 1

    def reset_cache(self) -> None:
        """Nothing to forget: each generate call builds its own KV cache."""

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _token_logprobs(logits: tuple[torch.Tensor, ...], tokens: torch.Tensor) -> list[list[float]]:
    """Each row's log-probability of each of its generated `tokens`, from generate's per-step raw logits
    (float32 log-softmax, whatever dtype the model ran in)."""
    steps = torch.stack(logits, dim=1).float().log_softmax(dim=-1)  # (rows, steps, vocab)
    chosen = steps.gather(-1, tokens[:, : steps.shape[1], None]).squeeze(-1)
    return chosen.tolist()


def _eos_ids(configured: int | list[int] | None, tokenizer_eos: int | None) -> list[int]:
    """The ids that end a generation: the generation config's, else the tokenizer's eos token."""
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    if not ids and tokenizer_eos is not None:
        ids = [tokenizer_eos]
    if not ids:
        raise JsontuneError("The model has no end-of-sequence token in its generation config or tokenizer.")
    return ids
