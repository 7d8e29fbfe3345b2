"""One dtype vocabulary for every --dtype, and the device choice."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen3Config

from jsontune.device import config_dtype, dtype_name, resolve_device, torch_dtype
from jsontune.errors import JsontuneError


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("bf16", "bfloat16"), ("half", "float16"), ("fp32", "float32"), ("torch.float16", "float16"), ("auto", "auto")],
)
def test_every_spelling_has_one_canonical_name(name, canonical):
    assert dtype_name(name) == canonical


def test_torch_dtypes_and_unknown_names():
    assert torch_dtype("bf16") is torch.bfloat16
    assert torch_dtype("float16") is torch.float16
    assert torch_dtype("float32") is torch.float32
    with pytest.raises(JsontuneError, match="unknown dtype 'int3'; choose one of: auto, float32"):
        torch_dtype("int3")
    with pytest.raises(JsontuneError, match="'auto' has no torch dtype"):
        torch_dtype("auto")


def test_a_config_names_its_dtype_whichever_way_it_was_saved():
    assert config_dtype(Qwen3Config(dtype="bfloat16")) == "bfloat16"
    assert config_dtype({"torch_dtype": "float16"}) == "float16"  # transformers 4's key
    assert config_dtype({}) == "float32"


def test_device_names():
    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device() == expected
    with pytest.raises(JsontuneError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(JsontuneError, match="'cuda' was asked for but is not available"):
            resolve_device("cuda")
