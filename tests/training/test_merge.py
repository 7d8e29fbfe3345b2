"""merge on CPU with the tiny model: merged == base + adapter, standalone folder, lint, refusals."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.errors import JsontuneError
from jsontune.training.checkpoint import check_checkpoint
from jsontune.training.merge import merge, verify_merge


@pytest.fixture(scope="module")
def merged(trained_run, tmp_path_factory):
    run, _ = trained_run
    out = tmp_path_factory.mktemp("merged") / "model"
    return out, merge(run, out)


def _logits(model, tokenizer, text="Necesito 100 unidades de producto A, precio 50 pesos"):
    from jsontune.prompts import render_prompt

    ids = tokenizer(render_prompt(tokenizer, text), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_merged_logits_equal_base_plus_adapter(merged, trained_run, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, report = merged
    run, _ = trained_run
    assert report.verified and report.token_agreement == 1.0 and report.max_logit_diff < 1e-4
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, run / "best")
    plain = AutoModelForCausalLM.from_pretrained(out)
    want, got = _logits(reference, tokenizer), _logits(plain, tokenizer)
    assert torch.allclose(want, got, atol=1e-5), (want - got).abs().max()
    assert not torch.allclose(want, _logits(AutoModelForCausalLM.from_pretrained(tiny_model), tokenizer)), (
        "the adapter changed nothing, so this test proves nothing"
    )


def test_merged_folder_is_standalone_and_sane(merged):
    out, report = merged
    assert not (out / "adapter_config.json").exists()
    assert list(out.glob("*.safetensors"))
    assert report.problems == [] and check_checkpoint(out) == []
    generation = json.loads((out / "generation_config.json").read_text())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]
    assert generation["pad_token_id"] == tokenizer.pad_token_id != tokenizer.eos_token_id  # as in Qwen3
    manifest = json.loads((out / "jsontune.json").read_text())
    assert manifest["kind"] == "merged" and manifest["prompt_format"]["enable_thinking"] is False
    assert not list(out.parent.glob(".model.*")), "a temporary folder was left behind"


def test_bfloat16_merge_is_verified_within_its_tolerance(trained_run, tmp_path):
    run, _ = trained_run
    report = merge(run, tmp_path / "bf16", dtype="bfloat16")
    assert report.verified and report.dtype == "bfloat16"
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"


def test_verification_catches_a_wrong_merge(trained_run, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsontune.prompts import PromptFormat
    from jsontune.training.merge import MergeReport

    run, _ = trained_run
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "best")
    broken = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        broken.lm_head.weight.mul_(1.5)
    report = MergeReport(out="x", base_model="b", adapter="a", dtype="float32")
    with pytest.raises(JsontuneError, match="disagrees"):
        verify_merge(reference, broken, AutoTokenizer.from_pretrained(tiny_model), PromptFormat(), report)


def test_lint_names_what_is_broken(merged, tmp_path):
    out, _ = merged
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    for template in broken.glob("chat_template.jinja"):
        template.unlink()
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    config["pad_token"] = config["eos_token"]
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    generation = json.loads((broken / "generation_config.json").read_text())
    generation["eos_token_id"] = [generation["pad_token_id"]]
    (broken / "generation_config.json").write_text(json.dumps(generation))
    problems = " ".join(check_checkpoint(broken))
    assert "chat template" in problems
    assert "<|im_end|>" in problems
    assert "pad token equals the eos token" in problems
    result = CliRunner().invoke(app, ["merge", "--check", str(broken)])
    assert result.exit_code == 1 and "chat template" in result.output


def test_refusals(trained_run, merged, tmp_path):
    run, _ = trained_run
    out, _ = merged
    with pytest.raises(JsontuneError, match="no LoRA adapter"):
        merge(tmp_path, tmp_path / "x")
    with pytest.raises(JsontuneError, match="already exists"):
        merge(run, out)


def test_adapter_on_a_base_of_another_shape_is_refused(trained_run, tiny_model, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model)
    config.hidden_size *= 2
    other = tmp_path / "other-base"
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(other)
    run, _ = trained_run
    with pytest.raises(JsontuneError, match="does not fit base model"):
        merge(run, tmp_path / "x", base=str(other))


def test_cli_merges_and_checks(trained_run, tmp_path):
    run, _ = trained_run
    result = CliRunner().invoke(app, ["merge", str(run), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "verified" in result.output
    assert CliRunner().invoke(app, ["merge", "--check", str(tmp_path / "m")]).exit_code == 0
    again = CliRunner().invoke(app, ["merge", str(run), "--out", str(tmp_path / "m")])
    assert again.exit_code == 1 and "--force" in again.output


def test_a_base_model_that_moved_is_one_sentence(trained_run, tmp_path):
    run, _ = trained_run
    adapter = tmp_path / "adapter"
    shutil.copytree(run / "best", adapter)
    manifest = json.loads((adapter / "jsontune.json").read_text())
    (adapter / "jsontune.json").write_text(json.dumps({**manifest, "base_model": str(tmp_path / "gone")}))
    with pytest.raises(JsontuneError, match="--base"):
        merge(adapter, tmp_path / "x")


def test_verification_catches_an_adapter_left_out(trained_run, tiny_model):
    """The plain base passed off as the merged model: the adapter's effect is far above float32 noise."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from jsontune.prompts import PromptFormat
    from jsontune.training.merge import MergeReport

    run, _ = trained_run
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "best")
    report = MergeReport(out="x", base_model="b", adapter="a", dtype="float32")
    with pytest.raises(JsontuneError, match="after the merge"):
        verify_merge(
            reference,
            AutoModelForCausalLM.from_pretrained(tiny_model),
            AutoTokenizer.from_pretrained(tiny_model),
            PromptFormat(),
            report,
        )
    assert report.adapter_effect > 0 and report.max_logit_diff == pytest.approx(report.adapter_effect)


def test_a_base_with_fewer_layers_is_refused(trained_run, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, _ = trained_run
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.model.layers = model.model.layers[:1]
    model.config.num_hidden_layers = 1
    model.config.layer_types = model.config.layer_types[:1] if getattr(model.config, "layer_types", None) else None
    model.save_pretrained(tmp_path / "short")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "short")
    with pytest.raises(JsontuneError, match="have no place in it"):
        merge(run, tmp_path / "out", base=str(tmp_path / "short"))
    assert not (tmp_path / "out").exists()


def test_refusals_are_one_sentence(trained_run, tmp_path):
    run, _ = trained_run
    adapter = tmp_path / "adapter"
    shutil.copytree(run / "best", adapter)
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(JsontuneError, match="no adapter weights"):
        merge(adapter, tmp_path / "out")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(JsontuneError, match="is a file, not a folder"):
        merge(run, tmp_path / "afile", force=True)


def test_merged_files_are_readable_by_others(merged):
    import stat

    out, _ = merged
    mask = os.umask(0)
    os.umask(mask)
    for path in [out, *out.rglob("*")]:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def test_lint_names_missing_tokenizer_files_and_a_pad_that_ends_turns(merged, tmp_path):
    out, _ = merged
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    generation = json.loads((broken / "generation_config.json").read_text())
    generation["pad_token_id"] = generation["eos_token_id"][0]
    (broken / "generation_config.json").write_text(json.dumps(generation))
    assert any("pad_token_id" in p and "end-of-turn" in p for p in check_checkpoint(broken))
    (broken / "tokenizer_config.json").unlink()
    problems = check_checkpoint(broken)
    assert len(problems) == 1 and "tokenizer files missing: tokenizer_config.json" in problems[0]


@pytest.mark.parametrize("kind", ["modules_to_save", "dora"])
def test_adapters_with_extra_tensors_are_not_refused(tiny_model, tmp_path, kind):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from jsontune.training.merge import load_adapter_model

    options = {"modules_to_save": ["lm_head"]} if kind == "modules_to_save" else {"use_dora": True}
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **options)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config).save_pretrained(tmp_path / kind)
    model = load_adapter_model(str(tiny_model), tmp_path / kind)
    assert any(".lora_" in name for name, _ in model.named_parameters())
