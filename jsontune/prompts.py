"""The only place a record becomes model input.

Training (`training/sft.py`), predict (`predict.py`) and bench all call these functions, so
the prompt a model is trained on is byte-identical to the prompt it is asked at inference. Qwen3's
thinking is switched off (`enable_thinking=False`): its chat template then renders an empty
`<think>\n\n</think>\n\n` block both after the generation prompt and before a trained answer.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_INSTRUCTION = (
    "Extrae los datos del pedido del siguiente texto. Responde únicamente con un objeto JSON "
    'con las claves "producto", "cantidad" y "precio_unitario"; los números van como números.'
)
NO_INSTRUCTION = "none"  # train's `--instruction none`: the prompt is "Texto: " and the text, nothing before it


@dataclass(frozen=True)
class PromptFormat:
    """How a text is put to the model; saved in every run and checkpoint manifest."""

    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None
    enable_thinking: bool = False
    version: int = field(default=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PromptFormat:
        if not data:
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def chat_template_kwargs(self) -> dict[str, Any]:
        return {"enable_thinking": self.enable_thinking}


def build_messages(text: str, fmt: PromptFormat | None = None) -> list[dict[str, str]]:
    """The chat messages that ask for `text`'s JSON (no answer)."""
    fmt = fmt or PromptFormat()
    messages = [{"role": "system", "content": fmt.system}] if fmt.system else []
    task = f"Texto: {text.strip()}"
    messages.append({"role": "user", "content": f"{fmt.instruction}\n\n{task}" if fmt.instruction else task})
    return messages


def prompt_format(instruction: str | None = None) -> PromptFormat:
    """The format `train` asks in for its `instruction` setting: None, DEFAULT_INSTRUCTION; NO_INSTRUCTION, none
    (the instruction is what makes a model that was not fine-tuned answer at all; a fine-tuned one learns the task
    from its data, and every prompt is shorter without it); any other text, that instruction."""
    if instruction is None:
        return PromptFormat()
    return PromptFormat(instruction="" if instruction.strip().lower() == NO_INSTRUCTION else instruction)


def completion_text(target: dict[str, Any]) -> str:
    """The answer the model is trained to write: compact JSON, keys in the target's order."""
    return json.dumps(target, ensure_ascii=False, separators=(",", ":"))


def training_example(text: str, target: dict[str, Any], fmt: PromptFormat | None = None) -> dict[str, Any]:
    """A conversational prompt/completion record for TRL's SFTTrainer (loss on the completion only)."""
    fmt = fmt or PromptFormat()
    return {
        "prompt": build_messages(text, fmt),
        "completion": [{"role": "assistant", "content": completion_text(target)}],
        "chat_template_kwargs": fmt.chat_template_kwargs,
    }


def render_prompt(tokenizer: Any, text: str, fmt: PromptFormat | None = None) -> str:
    """The exact string sent to an engine for `text`: chat template with the generation prompt."""
    fmt = fmt or PromptFormat()
    return tokenizer.apply_chat_template(
        build_messages(text, fmt),
        tokenize=False,
        add_generation_prompt=True,
        **fmt.chat_template_kwargs,
    )


def render_prompts(tokenizer: Any, texts: list[str], fmt: PromptFormat | None = None) -> list[str]:
    return [render_prompt(tokenizer, t, fmt) for t in texts]


def token_lengths(tokenizer: Any, prompts: list[str]) -> list[int]:
    """Each rendered prompt's length in tokens, counted as every engine counts it (no extra special tokens)."""
    return [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]] if prompts else []
