"""Load a model and its tokenizer from a local folder or the Hub; a missing model is one clear sentence.

Models made offline (`jsontune init-model`) are built in `jsontune.offline`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsontune.errors import JsontuneError


@contextmanager
def no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


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
    """AutoModelForCausalLM in eval mode on `device`, in the dtype `device.inference_dtype` gives HF ("auto":
    float32 on a CPU; on a GPU the checkpoint's, float32 run as bfloat16)."""
    from safetensors import SafetensorError
    from transformers import AutoConfig, AutoModelForCausalLM

    from jsontune.device import config_dtype, inference_dtype, resolve_device, torch_dtype

    device = resolve_device(device)
    name = str(name_or_path)
    _refuse_missing_local(name)
    try:
        with no_progress_bars():
            config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
            stored = config_dtype(config.get_text_config())
            resolved = inference_dtype(dtype, device, stored, engine="hf")
            model = AutoModelForCausalLM.from_pretrained(
                name, config=config, dtype=torch_dtype(resolved), trust_remote_code=trust_remote_code
            )
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: a truncated or corrupt weights file
        raise _load_error(name, "model", e) from None
    return model.to(device).eval()
