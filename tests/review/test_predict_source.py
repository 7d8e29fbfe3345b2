"""predict's manifest names its input file (path, checksum, columns), so `jsontune review` finds the texts."""

from __future__ import annotations

import json
from types import SimpleNamespace

from jsontune.data import InputColumns, load_records
from jsontune.io import file_sha256
from jsontune.predict import input_file, manifest_path, predict_with
from jsontune.serving.base import Generation, GenerationParams, chunked


class EchoEngine:
    """Answers every prompt with the same JSON object."""

    name = "echo"
    settings: dict = {}

    def generate(self, prompts, params, progress=None):
        return [Generation('{"producto": "A"}', 3, 5, "stop") for _ in prompts]

    def stream(self, prompts, params, chunk_size, progress=None):
        return chunked(self, prompts, params, chunk_size, progress)

    def chunk_size(self, rows):
        return 256


def test_the_manifest_records_the_input_file_and_its_columns(tmp_path):
    source = tmp_path / "orders.jsonl"
    rows = [{"ref": "r1", "mensaje": "quiero A"}, {"ref": "r2", "mensaje": "quiero B"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_records(source, InputColumns(text_col="mensaje", id_col="ref"), require_target=False)
    extractor = SimpleNamespace(
        engine=EchoEngine(),
        params=GenerationParams(max_new_tokens=8, logprobs=False),
        fitted_prompts=None,
        prompts=lambda texts: texts,
        identity={"model": "m"},
        schema=None,
        notes=[],
        recorded={},
    )
    out = tmp_path / "pred.csv"
    predict_with(extractor, loaded, out)
    made = json.loads(manifest_path(out).read_text())["input"]
    sha256 = file_sha256(source)
    assert made == {"path": str(source.resolve()), "sha256": sha256, "text_col": "mensaje", "id_col": "ref"}
    assert made == input_file(loaded)
