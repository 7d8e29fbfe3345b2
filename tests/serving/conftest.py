"""Models for the serving tests, derived from the shared `tiny_model`.

The tiny model's own random init writes the same token for every prompt, so a comparison of two
engines on it could not fail. `chatty_model` redraws its weights with a larger spread: its greedy
outputs differ from prompt to prompt, token by token.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

_TEXTS = [
    "Necesito comprar 100 unidades de producto A, precio 50 pesos",
    "Pedido: 3 piezas de tornillos hexagonales a 12,50 c/u. Urgente, por favor, para mañana temprano.",
    "x",
    "Compra de café molido: cantidad 20, precio unitario 300 MXN.",
    "¿Me pueden cotizar 5 focos LED? Nos ofrecieron 40 por unidad.",
    "hola",
    "Orden de compra n.º 7: guantes de nitrilo × 1500 a $1.250,50 cada una, entregar en el almacén norte.",
]


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Order texts of very different lengths (so batches need padding), from one character up."""
    return list(_TEXTS)


def _redrawn(source: Path, out: Path, std: float, seed: int) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim > 1:
                param.normal_(0.0, std, generator=generator)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def chatty_model(tiny_model, tmp_path_factory):
    return _redrawn(tiny_model, tmp_path_factory.mktemp("serving") / "chatty", std=0.3, seed=0)


@pytest.fixture(scope="session")
def adapter_and_merged(chatty_model, tmp_path_factory):
    """A LoRA adapter with non-zero random weights on `chatty_model`, and the same adapter merged in."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(chatty_model, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(root / "adapter")
    merged = root / "merged"
    shutil.copytree(chatty_model, merged)
    model.merge_and_unload().save_pretrained(merged)
    return root / "adapter", merged
