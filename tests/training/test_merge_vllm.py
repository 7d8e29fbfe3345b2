"""On a GPU with vLLM: a merged checkpoint of the qwen3-0.6b shape, merged on CUDA in bfloat16, loads in vLLM.
(The merged tiny model against HF, on CPU, is tests/serving/test_vllm.py.)

    pytest -m gpu -s tests/training/test_merge_vllm.py
"""

from __future__ import annotations

import pytest

from jsontune.prompts import render_prompts
from jsontune.serving.base import GenerationParams
from jsontune.serving.registry import make_engine
from jsontune.serving.settings import EngineSettings

pytestmark = [pytest.mark.vllm, pytest.mark.gpu]
TEXTS = ["Necesito 100 unidades de producto A, precio 50 pesos", "Pedido: 3 cajas de guantes de nitrilo a $12,50 c/u"]


def _generate(engine_name, model, **options):
    from jsontune.modeling import load_tokenizer

    prompts = render_prompts(load_tokenizer(str(model)), TEXTS)
    engine = make_engine(engine_name, str(model), EngineSettings(**options))
    try:
        return engine.generate(prompts, GenerationParams(max_new_tokens=16))
    finally:
        engine.close()


def test_merged_qwen3_shape_loads_in_vllm(tmp_path):
    from peft import LoraConfig, get_peft_model

    from jsontune.modeling import load_model, load_tokenizer
    from jsontune.offline import init_model
    from jsontune.training.checkpoint import check_checkpoint
    from jsontune.training.merge import merge

    base = init_model("qwen3-0.6b", tmp_path / "base")
    model = get_peft_model(
        load_model(str(base), dtype="float32", device="cpu"),
        LoraConfig(
            r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
        ),
    )
    model.save_pretrained(tmp_path / "adapter")
    load_tokenizer(str(base)).save_pretrained(tmp_path / "adapter")
    report = merge(tmp_path / "adapter", tmp_path / "merged", dtype="bfloat16", base=str(base), device="cuda")
    assert report.verified and check_checkpoint(tmp_path / "merged") == []
    outputs = _generate("vllm", tmp_path / "merged", dtype="bfloat16", gpu_memory_utilization=0.5)
    assert all(o.output_tokens > 0 for o in outputs)
