"""Load models and tokenizers; make random-init Qwen3 folders offline for tests, demos and benchmarks.

    jsontune init-model --preset tiny --out models/tiny
    jsontune init-model --preset qwen3-0.6b --out models/qwen3-0.6b-random
    jsontune init-model --preset tiny --out models/tiny-warm --pretrain-steps 600   # copies spans (pretrain.py)

A folder made here is an ordinary Hugging Face checkpoint: `config.json`, `model.safetensors`,
`generation_config.json`, a byte-level BPE `tokenizer.json` built like Qwen3's (same split regex,
same added tokens in the same order, no BOS) and Qwen3's real chat template, taken from TRL. Only the
BPE vocabulary is small and trained here on purchase-order text, so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError
from jsontune.manifest import MANIFEST, write_manifest
from jsontune.prompts import build_messages, completion_text

MANIFEST_NAME = MANIFEST  # the folder's jsontune.json, as for every artifact


@dataclass(frozen=True)
class Preset:
    """The shape of a Qwen3ForCausalLM; `dtype` is what its weights are saved in."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    dtype: str
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02


PRESETS: dict[str, Preset] = {
    # Fine-tunes on a CPU; two layers are the fewest that can copy a span, and learnt it faster than four.
    "tiny": Preset(
        vocab_size=1088,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        dtype="float32",
        # 1/sqrt(hidden): with Qwen's 0.02 a 128-wide model's logits stay near-uniform and LoRA cannot sharpen them.
        initializer_range=0.088,
    ),
    # Qwen/Qwen3-0.6B's exact shape, so throughput and memory numbers match the real model.
    "qwen3-0.6b": Preset(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        dtype="bfloat16",
    ),
}

# Qwen3's added tokens in its id order, right after the BPE vocabulary. The ones marked False are
# plain added tokens in Qwen3 too, so skip_special_tokens keeps a leaked <think> block visible.
QWEN3_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]
EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
BPE_VOCAB_SIZE = 1024
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_PRODUCTS = [
    "A",
    "B",
    "C",
    "Z",
    "X-200",
    "tornillos hexagonales",
    "cable UTP cat. 6",
    "papel bond tamaño carta",
    "tóner HP 85A",
    "guantes de nitrilo",
    "café molido",
    "sillas ergonómicas",
    "martillo de uña",
    "cinta adhesiva",
    "láminas galvanizadas",
    "jabón líquido",
    "brocas para concreto",
    "azúcar refinada",
    "cuadernos de 100 hojas",
    "focos LED",
    "pintura vinílica",
    "mangueras de ½ pulgada",
    "baterías AA",
    "válvulas de presión",
    "teclados inalámbricos",
    "aceite de oliva",
    "piñones de acero",
    "señalética",
]
_ORDER_TEMPLATES = [
    "Necesito comprar {q} unidades de producto {p}, precio {pr} pesos",
    "Pedido: {q} piezas de {p} a {pr} c/u.",
    "Favor de enviar {q} cajas de {p}; precio unitario {pr}.",
    "¿Me pueden cotizar {q} {p}? Nos ofrecieron {pr} por unidad.",
    "Solicito {q} paquetes de {p} con un precio de {pr} cada uno.",
    "Compra de {p}: cantidad {q}, precio unitario {pr} MXN.",
    "Queremos {q} unidades del artículo {p} (precio: {pr}).",
    "¡Urgente! Mandar {q} {p} al almacén, costo {pr} por pieza.",
    "Orden de compra n.º {n}: {p} × {q} a {pr} cada una.",
    "Hola, quisiera pedir {q} de {p}. El precio acordado es {pr}. Gracias.",
    "Buenos días: por favor surtir {q} rollos de {p}, precio por rollo {pr}.",
    "Requerimos {q} litros de {p} a {pr} el litro, según la última cotización.",
]
_EXTRAS = [
    "",
    "Entregar en {city} antes del {day}.",
    "Pago a 30 días, precio sin IVA.",
    "Factura a nombre de {co}.",
    "Enviar a la sucursal de {city}; contacto: compras@{dom}.com.",
    "Favor de confirmar disponibilidad.",
    "La entrega es el próximo {day} en el almacén central.",
    "Saludos cordiales, {co}.",
]
_CITIES = [
    "Monterrey",
    "Guadalajara",
    "Bogotá",
    "Medellín",
    "Lima",
    "Santiago",
    "Buenos Aires",
    "Madrid",
    "Quito",
    "Montevideo",
    "Ciudad de México",
    "Asunción",
    "San José",
    "Córdoba",
]
_DAYS = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"]
_COMPANIES = [
    "Ferretería López",
    "Distribuidora del Norte S.A. de C.V.",
    "Papelería El Águila",
    "Comercializadora Pérez y Hijos",
    "Constructora Núñez",
    "Suministros Industriales Ibarra",
]


def _amount_text(rng: random.Random, value: float) -> str:
    """One of the ways Spanish-speaking buyers write a price: 1250, $1.250,50, 1,250.50, USD 12.99..."""
    whole, cents = int(value), round(value * 100) % 100
    return rng.choice(
        [
            str(whole),
            f"${whole:,}".replace(",", ".") + f",{cents:02d}",
            f"{whole:,}.{cents:02d}",
            f"USD {value:.2f}",
            f"{value:.2f} pesos",
            f"${whole:,}".replace(",", "."),
        ]
    )


def _quantity_text(rng: random.Random, quantity: int) -> str:
    words = {12: "una docena", 100: "cien", 200: "doscientas", 500: "quinientas", 1000: "mil"}
    return rng.choice([str(quantity), f"{quantity:,}".replace(",", "."), words.get(quantity, str(quantity))])


def _corpus(n_orders: int = 400) -> Iterator[str]:
    """Deterministic chat turns (order prompts and JSON answers) to train the small BPE on.

    Each item is the text between two special tokens of the rendered Qwen3 chat, so the merges
    learnt are the ones the real prompts need ("user\n", "\n\n" after </think>, JSON keys).
    """
    rng = random.Random(0)
    for n in range(n_orders):
        product = rng.choice(_PRODUCTS)
        quantity = rng.choice([rng.randint(1, 99), rng.randint(100, 5000), rng.choice([12, 100, 200, 500, 1000])])
        price = rng.choice([rng.randint(1, 999), round(rng.uniform(0.5, 25000), 2)])
        text = rng.choice(_ORDER_TEMPLATES).format(
            q=_quantity_text(rng, quantity), p=product, pr=_amount_text(rng, price), n=n
        )
        extra = rng.choice(_EXTRAS).format(
            city=rng.choice(_CITIES), day=rng.choice(_DAYS), co=rng.choice(_COMPANIES), dom=f"empresa{n % 7}"
        )
        yield "user\n" + build_messages(f"{text} {extra}")[-1]["content"]
        yield "\nassistant\n"
        target = {"producto": product, "cantidad": quantity, "precio_unitario": price}
        yield "\n\n" + (completion_text(target) if n % 4 else json.dumps(target, ensure_ascii=False, indent=2))


def _chat_template() -> str:
    """Qwen3's own chat template, as shipped inside the installed TRL package."""
    from importlib import resources

    try:
        return (resources.files("trl") / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise JsontuneError(
            f"Qwen3's chat template trl/chat_templates/qwen3.jinja was not found ({e}); "
            "upgrade TRL with `pip install -U trl`."
        ) from None


def build_tokenizer(model_max_length: int) -> Any:
    """A Qwen3-style byte-level BPE tokenizer trained on the built-in corpus (deterministic, offline)."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte, so any text round-trips
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN3_ADDED_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[t for t, special in QWEN3_ADDED_TOKENS[1:] if special],
        chat_template=_chat_template(),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )


def preset_config(preset: str) -> Any:
    """The Qwen3Config of a preset (no weights, no tokenizer: cheap enough to inspect anywhere)."""
    from transformers import Qwen3Config

    if preset not in PRESETS:
        raise JsontuneError(f"unknown model preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    shape = asdict(PRESETS[preset])
    return Qwen3Config(architectures=["Qwen3ForCausalLM"], use_sliding_window=False, **shape)


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
    from jsontune.pretrain import pretrain

    losses = pretrain(model, tokenizer, steps, seed, on_step=on_step)
    model.eval()
    last = losses[-10:]
    return {
        "pretrain_steps": steps,
        "pretrain_loss": round(sum(last) / len(last), 4),  # the last ten steps: one step is noisy
        "note": "Random initial weights, then `--pretrain-steps` of causal-LM training on jsontune.pretrain's "
        "synthetic copy corpus (no chat template, no JSON): a stand-in for pretraining, not a real model.",
    }


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


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
    (jsontune.pretrain) as a stand-in for pretraining, so fine-tuning has spans and numbers to copy.
    Everything is written into a hidden temporary folder beside `out` and renamed at the end, so a
    crash never leaves a half-written model. `force` replaces an existing non-empty `out`.
    """
    out = Path(out)
    config = preset_config(preset)
    if pretrain_steps < 0:
        raise JsontuneError(f"--pretrain-steps is {pretrain_steps}; give 0 (random weights) or more.")
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"  # mkdtemp's 0700 would stick to the folder
    tmp.mkdir()
    try:
        tokenizer = build_tokenizer(model_max_length=config.max_position_embeddings)
        model = _build_model(preset, tokenizer, seed)
        pretrained = _warm_start(model, tokenizer, pretrain_steps, seed, on_step)
        with _no_progress_bars():  # a library call does not print; the CLI reports what was written
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
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def cpu_auto_dtype() -> str:
    """What `auto` means for inference on this CPU: bfloat16 where it has bf16 instructions (AVX512-BF16 or
    AMX; measured 3x faster than float32 for the qwen3-0.6b shape with vLLM and HF alike, docs/BENCHMARKS.md),
    float32 elsewhere, where bfloat16 is emulated and slower."""
    import torch

    has_bf16 = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bfloat16" if has_bf16 else "float32"


def torch_dtype(name: str) -> Any:
    """`"bfloat16"` (or bf16, float16, fp16, half, float32, fp32) -> the torch dtype."""
    import torch

    if name not in _DTYPES:
        raise JsontuneError(f"unknown dtype {name!r}; choose one of: auto, float32, bfloat16, float16.")
    return getattr(torch, _DTYPES[name])


def resolve_device(device: str | None = None) -> str:
    """The device to run on: the one asked for (checked), else cuda, then mps, then cpu."""
    import torch

    has_mps = torch.backends.mps.is_available()
    if device is None:
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    kind = device.split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise JsontuneError(f"unknown device {device!r}; use cuda, cuda:N, mps or cpu.")
    if (kind == "cuda" and not torch.cuda.is_available()) or (kind == "mps" and not has_mps):
        raise JsontuneError(f"device {device!r} was asked for but is not available here; use --device cpu.")
    return device


def _load_error(name_or_path: str, what: str, error: Exception) -> JsontuneError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return JsontuneError(f"could not load the {what} from folder {name_or_path} ({reason}).")
    # A Hub id is "name" or "org/name"; anything else can only have meant a local folder.
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1 or path.is_absolute():
        return JsontuneError(f"model folder {name_or_path} does not exist; give a model folder or a Hub id.")
    return JsontuneError(
        f"model {name_or_path!r} is neither a local folder nor reachable on the Hugging Face Hub "
        f"(offline?); give a local model folder or a Hub id ({reason})."
    )


def _refuse_missing_local(name: str) -> None:
    """A path that can only be local and is not there fails at once, not after the Hub client's retries."""
    path = Path(name).expanduser()
    if path.exists():
        return
    local = name.startswith((".", "/", "~")) or name.count("/") > 1 or path.is_absolute()
    if local or ("/" in name and path.parent.is_dir()):  # "data/model" beside a data/ folder
        raise JsontuneError(f"model folder {name} does not exist; give a model folder or a Hub id.")


def load_tokenizer(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> Any:
    """AutoTokenizer for a local folder or Hub id; a missing model is one clear JsontuneError."""
    from transformers import AutoTokenizer

    name = str(name_or_path)
    _refuse_missing_local(name)
    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:  # the Hub client raises both for missing / invalid / offline ids
        raise _load_error(name, "tokenizer", e) from None


def load_model(
    name_or_path: str | os.PathLike,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """AutoModelForCausalLM in eval mode on `device`; dtype "auto" is the config's on GPU, float32 on CPU."""
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    if dtype == "auto":
        # Half-precision matmuls on CPU are slow or unsupported, so "auto" means float32 there.
        resolved: Any = torch_dtype("float32") if device == "cpu" else "auto"
    else:
        resolved = torch_dtype(dtype)
    from safetensors import SafetensorError

    name = str(name_or_path)
    _refuse_missing_local(name)
    try:
        with _no_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(name, dtype=resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: a truncated or corrupt weights file
        raise _load_error(name, "model", e) from None
    return model.to(device).eval()
