"""Make random-init Qwen3 model folders offline, for tests, demos and benchmarks.

    jsontune init-model --preset tiny --out models/tiny
    jsontune init-model --preset qwen3-0.6b --out models/qwen3-0.6b-random
    jsontune init-model --preset tiny --out models/tiny-warm --pretrain-steps 600  # see pretrain.py

A folder made here is an ordinary Hugging Face checkpoint: `config.json`, `model.safetensors`,
`generation_config.json`, a byte-level BPE `tokenizer.json` built like Qwen3's (same split regex,
same added tokens in the same order, no BOS) and Qwen3's real chat template, taken from TRL (tokenizer.py).
Only the BPE vocabulary is small and trained here on purchase-order text (corpus.py), so nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.io import atomic_folder
from jsontune.manifest import MANIFEST, write_manifest
from jsontune.modeling import no_progress_bars
from jsontune.offline.presets import preset_config
from jsontune.offline.tokenizer import EOS_TOKEN, PAD_TOKEN, build_tokenizer

MANIFEST_NAME = MANIFEST  # the folder's jsontune.json, as for every artifact


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise JsontuneError(
            f"output folder {out} already exists and is not empty; choose another --out or pass --force."
        )


def _build_model(preset: str, tokenizer: Any, seed: int) -> Any:
    """A seeded random-init Qwen3ForCausalLM whose special-token ids are the tokenizer's."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    config = preset_config(preset)
    eos, pad = tokenizer.convert_tokens_to_ids([EOS_TOKEN, PAD_TOKEN])
    # Like Qwen3: <|endoftext|> is bos in the config (never added to text), pad, and a second stop token.
    config.bos_token_id, config.eos_token_id, config.pad_token_id = pad, eos, pad
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=config.dtype)  # bf16 init: no 2.4 GB fp32 copy
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad, do_sample=False
    )
    return model.eval()


def _warm_start(model: Any, tokenizer: Any, steps: int, seed: int, on_step: Any = None) -> dict[str, Any]:
    """Pretrain `model` in place for `steps` (none for 0); return what the manifest records about it."""
    if not steps:
        return {
            "pretrain_steps": 0,
            "note": "Random initial weights made offline by `jsontune init-model`; this model is not trained.",
        }
    from jsontune.offline.pretrain import pretrain

    losses = pretrain(model, tokenizer, steps, seed, on_step=on_step)
    model.eval()
    last = losses[-10:]
    return {
        "pretrain_steps": steps,
        "pretrain_loss": round(sum(last) / len(last), 4),  # the last ten steps: one step is noisy
        "note": "Random initial weights, then `--pretrain-steps` of causal-LM training on jsontune.offline.pretrain's "
        "synthetic copy corpus (no chat template, no JSON): a stand-in for pretraining, not a real model.",
    }


def init_model(
    preset: str,
    out: str | os.PathLike,
    seed: int = 0,
    force: bool = False,
    pretrain_steps: int = 0,
    on_step: Any = None,
) -> Path:
    """Write a random-init Qwen3 model folder for `preset` to `out` (offline); return its path.

    `pretrain_steps` > 0 then trains every weight that many steps on a synthetic copy corpus
    (jsontune.offline.pretrain) as a stand-in for pretraining, so fine-tuning has spans and numbers to copy.
    Everything is written into a hidden temporary folder beside `out` and renamed at the end, so a
    crash never leaves a half-written model. `force` replaces an existing non-empty `out`.
    """
    out = Path(out)
    config = preset_config(preset)
    if pretrain_steps < 0:
        raise JsontuneError(f"--pretrain-steps is {pretrain_steps}; give 0 (random weights) or more.")
    _check_out(out, force)
    with atomic_folder(out) as tmp:
        tokenizer = build_tokenizer(model_max_length=config.max_position_embeddings)
        model = _build_model(preset, tokenizer, seed)
        pretrained = _warm_start(model, tokenizer, pretrain_steps, seed, on_step)
        with no_progress_bars():  # a library call does not print; the CLI reports what was written
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(
            tmp,
            "init-model",
            preset=preset,
            seed=seed,
            random_weights=not pretrain_steps,
            **pretrained,
            parameters=sum(p.numel() for p in model.parameters()),
            vocab_size=model.config.vocab_size,
            tokenizer_size=len(tokenizer),
            chat_template="trl/chat_templates/qwen3.jinja",
        )
    return out
