"""Lint a model folder for what breaks it at serving time (`jsontune merge --check`, and every merge)."""

from __future__ import annotations

from pathlib import Path


def check_checkpoint(folder: str | Path) -> list[str]:
    """Problems that make a checkpoint fail at serving time, each with its fix. Empty when it is sound."""
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder."]
    problems: list[str] = []
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as e:
        return [f"config.json is missing or unreadable ({e}); save the model with save_pretrained."]
    if not list(folder.glob("*.safetensors")):
        problems.append("no *.safetensors weights; save with model.save_pretrained(folder).")
    if (folder / "adapter_config.json").exists():
        problems.append("adapter_config.json is present: this is an adapter, not a merged model; run jsontune merge.")
    missing = [name for name in ("tokenizer_config.json",) if not (folder / name).is_file()]
    bpe_files = all((folder / name).is_file() for name in ("vocab.json", "merges.txt"))
    if not (folder / "tokenizer.json").is_file() and not bpe_files and not (folder / "tokenizer.model").is_file():
        missing.append("tokenizer.json (or vocab.json + merges.txt, or tokenizer.model)")
    if missing:
        return [
            *problems,
            f"tokenizer files missing: {', '.join(missing)}; save the tokenizer with "
            "tokenizer.save_pretrained(folder), or copy them from the base model.",
        ]
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        return [*problems, f"tokenizer files are missing or broken ({e}); save the tokenizer with save_pretrained."]
    problems += _check_template(tokenizer)
    problems += _check_special_tokens(folder, tokenizer, config)
    return problems


def _check_template(tokenizer) -> list[str]:
    if not tokenizer.chat_template:
        return ["the tokenizer has no chat template; copy chat_template.jinja from the base model."]
    messages = [{"role": "user", "content": "hola"}]
    try:
        off = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    except Exception as e:  # a template error surfaces here, whatever its type
        return [f"the chat template does not render ({e}); replace it with the base model's."]
    if "<think>" in tokenizer.chat_template and "</think>" not in off:
        return ["with enable_thinking=False the chat template still lets the model think; use Qwen3's template."]
    return []


def _check_special_tokens(folder: Path, tokenizer, config) -> list[str]:
    from transformers import GenerationConfig

    problems = []
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        return ["generation_config.json is missing; write one whose eos_token_id includes <|im_end|>."]
    eos = generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if end_of_turn is not None and end_of_turn != tokenizer.unk_token_id and end_of_turn not in eos:
        problems.append(
            f"generation_config eos_token_id {eos} lacks <|im_end|> ({end_of_turn}): "
            "generation will run past the answer; add it."
        )
    ends_turn = generation.pad_token_id in (end_of_turn, tokenizer.eos_token_id)
    if generation.pad_token_id is not None and ends_turn and generation.pad_token_id != tokenizer.pad_token_id:
        problems.append(
            f"generation_config pad_token_id {generation.pad_token_id} is the end-of-turn token: "
            f"set it to the tokenizer's pad token ({tokenizer.pad_token_id}, <|endoftext|> in Qwen3)."
        )
    if tokenizer.pad_token_id is None:
        problems.append("the tokenizer has no pad token; set pad_token (Qwen3 uses <|endoftext|>).")
    elif tokenizer.pad_token_id == tokenizer.eos_token_id:  # Qwen3's pad <|endoftext|> is an eos id too: fine
        problems.append(
            "pad token equals the eos token: padded batches would stop or train wrongly; "
            "set pad_token to a different token (Qwen3 uses <|endoftext|>)."
        )
    if len(tokenizer) > config.vocab_size:
        problems.append(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
            f"{config.vocab_size}; resize the embeddings."
        )
    return problems
