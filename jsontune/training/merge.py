"""`jsontune merge`: adapter + base -> one standalone checkpoint, verified, linted, written atomically.

    jsontune merge runs/run1 --out runs/merged            # best/ adapter of a run folder
    jsontune merge --check runs/merged                     # lint an existing checkpoint

The merge happens in float32 and is cast to the requested dtype afterwards, so rounding happens once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jsontune.errors import JsontuneError
from jsontune.io import atomic_folder
from jsontune.manifest import read_manifest, read_prompt_format, write_manifest
from jsontune.training.checkpoint import check_checkpoint

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
# Largest |merged - (base+adapter)| logit difference, relative to the largest |logit|, that the output
# dtype's rounding explains; anything above it means the merge is wrong, not imprecise.
RELATIVE_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 8e-2}
VERIFY_TEXTS = [
    "Necesito 100 unidades de producto A, precio 50 pesos",
    "Hola, quisiera pedir 1.500 cajas de guantes de nitrilo a $12,50 cada una. Gracias.",
    "buenas! me mandan 3 resmas de papel A4 a 4500 c/u porfa",
]


@dataclass
class MergeReport:
    out: str
    base_model: str
    adapter: str
    dtype: str
    verified: bool = False
    max_logit_diff: float | None = None
    relative_diff: float | None = None
    tolerance: float | None = None
    token_agreement: float | None = None
    adapter_effect: float | None = None  # max |logit| change the adapter makes to the base: what a merge must keep
    float32_max_logit_diff: float | None = None  # the merge itself, before the cast
    problems: list[str] = field(default_factory=list)


def find_adapter(source: str | Path) -> Path:
    """A run folder's best/ (else last/) adapter, or the adapter folder itself."""
    source = Path(source)
    for candidate in (source / "best", source / "last", source):
        if (candidate / "adapter_config.json").is_file():
            if not any((candidate / name).is_file() for name in ADAPTER_WEIGHTS):
                raise JsontuneError(
                    f"{candidate} has adapter_config.json but no adapter weights "
                    f"({' or '.join(ADAPTER_WEIGHTS)}); the adapter was not saved completely."
                )
            return candidate
    raise JsontuneError(
        f"{source} holds no LoRA adapter (no adapter_config.json in it, nor in best/ or last/); "
        "give a run folder written by `jsontune train` or an adapter folder."
    )


def find_base(adapter: Path, base: str | None) -> str:
    if base:
        return base
    recorded = read_manifest(adapter).get("base_model")
    if recorded:
        return recorded
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path"):
        return config["base_model_name_or_path"]
    raise JsontuneError(f"{adapter} does not record its base model; pass --base MODEL.")


def load_adapter_model(base: str, adapter: Path, device: str = "cpu", trust_remote_code: bool = False):
    """base + adapter (unmerged) in float32; an adapter that does not fit the base becomes one sentence."""
    from peft import PeftModel

    from jsontune.modeling import load_model

    model = load_model(base, dtype="float32", device=device, trust_remote_code=trust_remote_code)
    misfit = f"the adapter in {adapter} does not fit base model {base}", "pass the base it was trained on with --base."
    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except (RuntimeError, ValueError, KeyError) as e:  # size mismatch; target modules that the base lacks
        reason = "its weight shapes differ" if "size mismatch" in str(e) else str(e).strip().splitlines()[0][:200]
        raise JsontuneError(f"{misfit[0]} ({reason}); {misfit[1]}") from None
    unplaced = unplaced_adapter_weights(peft_model, adapter)
    if unplaced:
        raise JsontuneError(
            f"{misfit[0]}: {len(unplaced)} of its weights have no place in it (first: {unplaced[0]}); {misfit[1]}"
        )
    return peft_model


def unplaced_adapter_weights(peft_model, adapter: Path) -> list[str]:
    """LoRA tensors of the adapter file whose module the base lacks (PEFT only warns; a merge drops them).

    Compared by module path, the part before `.lora_`: PEFT names the same tensor differently on disk
    and in the model (`.default`, DoRA's magnitude vector), and modules_to_save copies have no `.lora_`.
    """
    weights = adapter / ADAPTER_WEIGHTS[0]
    if not weights.is_file():
        return []
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        saved = [k for k in f.keys() if ".lora_" in k]  # noqa: SIM118 (safe_open is not iterable)
    placed = {name.split(".lora_")[0] for name, _ in peft_model.named_parameters() if ".lora_" in name}
    return [k for k in saved if k.split(".lora_")[0] not in placed]


def merge(
    source: str | Path,
    out: str | Path,
    dtype: str = "auto",
    base: str | None = None,
    verify: bool = True,
    force: bool = False,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> MergeReport:
    """Merge the adapter of `source` (a run folder or an adapter folder) into its base, in float32, cast it to
    `dtype`, verify both steps against base + adapter, and write `out` atomically."""
    from jsontune.device import dtype_name, torch_dtype
    from jsontune.modeling import load_tokenizer

    out = check_out(out, force)
    adapter = find_adapter(source)
    base_model = find_base(adapter, base)
    dtype = output_dtype(dtype_name(dtype), base_model, adapter, trust_remote_code)
    tokenizer = load_tokenizer(str(adapter), trust_remote_code=trust_remote_code)
    merged = load_adapter_model(base_model, adapter, device, trust_remote_code).merge_and_unload()  # float32
    report = MergeReport(out=str(out), base_model=base_model, adapter=str(adapter), dtype=dtype)
    if verify:
        merged = verified_cast(merged, tokenizer, adapter, base_model, report, device, trust_remote_code)
    else:
        merged = merged.to(torch_dtype(dtype))
    write_merged(out, merged, tokenizer, adapter, report)
    return report


def check_out(out: str | Path, force: bool) -> Path:
    """`out` as a Path, refused when it is a file, or a folder that --force does not allow to replace."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise JsontuneError(f"--out {out} is a file, not a folder; pick another --out.")
    if out.exists() and not force:
        raise JsontuneError(f"output folder {out} already exists; pass --force to replace it.")
    return out


def output_dtype(dtype: str, base_model: str, adapter: Path, trust_remote_code: bool) -> str:
    """The dtype to write: the one asked for, or for auto the dtype the base model's config records."""
    if dtype != "auto":
        return dtype
    from transformers import AutoConfig

    from jsontune.device import config_dtype

    try:
        config = AutoConfig.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        raise JsontuneError(
            f"base model {base_model} (recorded in {adapter}) cannot be loaded; pass --base with its current location."
        ) from None
    return config_dtype(config)


def verified_cast(
    merged, tokenizer, adapter: Path, base_model: str, report: MergeReport, device: str, trust_remote_code
):
    """`merged` (float32) cast to report.dtype, compared with base + adapter twice: the merge itself in
    float32, where only float noise is allowed, then the cast, which may only round."""
    from jsontune.device import torch_dtype

    reference = load_adapter_model(base_model, adapter, device, trust_remote_code)
    fmt = read_prompt_format(adapter)
    verify_merge(reference, merged, tokenizer, fmt, report, dtype="float32")
    report.float32_max_logit_diff = report.max_logit_diff
    merged = merged.to(torch_dtype(report.dtype))
    if report.dtype != "float32":
        verify_merge(reference, merged, tokenizer, fmt, report)
    return merged


def write_merged(out: Path, merged, tokenizer, adapter: Path, report: MergeReport) -> None:
    """Weights, tokenizer, generation config and manifest, swapped into `out` whole; the lint's findings go
    to report.problems."""
    with atomic_folder(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_generation_config(tmp, report.base_model, tokenizer)
        write_manifest(
            tmp,
            "merged",
            base_model=report.base_model,
            adapter=str(adapter),
            dtype=report.dtype,
            prompt_format=read_prompt_format(adapter).to_dict(),
            data=read_manifest(adapter).get("data", {}),
            verification=asdict(report),
        )
        report.problems = check_checkpoint(tmp)


def _write_generation_config(folder: Path, base_model: str, tokenizer) -> None:
    """The base's generation config, with <|im_end|> among the eos ids and a pad that is not an eos."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(base_model)
    except OSError:
        config = GenerationConfig()
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    for token in ("<|im_end|>", tokenizer.eos_token):
        token_id = tokenizer.convert_tokens_to_ids(token) if token else None
        if token_id is not None and token_id != tokenizer.unk_token_id and token_id not in eos:
            eos.append(token_id)
    config.eos_token_id = [e for e in eos if e is not None]
    config.pad_token_id = tokenizer.pad_token_id
    config.do_sample = False
    for sampling_only in ("temperature", "top_p", "top_k"):
        setattr(config, sampling_only, None)
    config.save_pretrained(folder)


def verify_merge(
    reference, merged, tokenizer, fmt, report: MergeReport, max_new_tokens: int = 16, dtype: str | None = None
) -> None:
    """Compare `merged` with base + adapter (`reference`, a PeftModel) on a few prompts: logits and greedy
    tokens. Raise when the logits differ by more than `dtype`'s rounding explains (default: report.dtype)."""
    import torch

    from jsontune.prompts import render_prompt

    diffs, effects, scale, agree, total = [], [], 0.0, 0, 0
    for text in VERIFY_TEXTS:
        ids = tokenizer(render_prompt(tokenizer, text, fmt), return_tensors="pt", add_special_tokens=False)
        ids = ids["input_ids"].to(reference.device)
        with torch.inference_mode():
            want = reference(input_ids=ids).logits.float()
            with reference.disable_adapter():
                effects.append((want - reference(input_ids=ids).logits.float()).abs().max().item())
            got = merged(input_ids=ids.to(merged.device)).logits.float().to(want.device)
            diffs.append((want - got).abs().max().item())
            scale = max(scale, want.abs().max().item())
            kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            a = reference.generate(input_ids=ids, **kwargs)[0, ids.shape[1] :]
            b = merged.generate(input_ids=ids.to(merged.device), **kwargs)[0, ids.shape[1] :].to(a.device)
        n = min(len(a), len(b))
        agree += int((a[:n] == b[:n]).sum())
        total += max(len(a), len(b))
    dtype = dtype or report.dtype
    report.max_logit_diff = max(diffs)
    report.relative_diff = report.max_logit_diff / max(scale, 1e-6)
    report.tolerance = RELATIVE_TOLERANCE[dtype]
    report.token_agreement = agree / max(total, 1)
    report.adapter_effect = max(effects)
    if not report.relative_diff <= report.tolerance:  # also NaN
        what = "the merge" if dtype == "float32" else f"the cast to {dtype}"
        raise JsontuneError(
            f"merged model disagrees with base + adapter after {what}: max logit difference "
            f"{report.max_logit_diff:.3g} ({report.relative_diff:.2%} of the logit scale; the adapter itself moves "
            f"logits by up to {report.adapter_effect:.3g}) exceeds what {dtype} explains ({report.tolerance:.2%}); "
            "nothing was written. Check that --base is the adapter's base model."
        )
    report.verified = True
