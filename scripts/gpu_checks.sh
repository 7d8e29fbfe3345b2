#!/usr/bin/env bash
# Everything that needs a GPU, in one go, each part under its own time limit so that one slow part cannot
# eat the others' time: the bench of the qwen3-0.6b shape on 1000 prompts, then the gpu/vllm tests (vLLM vs
# HF agreement, guided JSON, --lora vs merged, kill and --resume, merged checkpoints in vLLM).
# Logs and bench files go to ${OUT:-runs/gpu}. See ../shared/gpu/README.md for getting vLLM there.
#
#   pip install -e '.[vllm,dev]' && bash scripts/gpu_checks.sh
#   BENCH_S=600 TESTS_S=900 bash scripts/gpu_checks.sh     # more time for each part
#   PREFIX=1 bash scripts/gpu_checks.sh                     # also vLLM's prefix cache on, off, and no instruction
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# vLLM 0.26 imports flashinfer for its top-k/top-p sampler unless told not to; greedy decoding needs none of
# it, and its wheels are too large to stage for a short GPU run.
python -c "import flashinfer" 2>/dev/null || export VLLM_USE_FLASHINFER_SAMPLER=0
python -c "from jsontune.serving.base import vllm_available as v; import sys; r = v(); r and sys.exit(r)" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
python -c "from jsontune.manifest import library_versions as v; print(v())" | tee "$out/versions.txt"
start=$SECONDS
timeout "${BENCH_S:-270}" python -m jsontune.cli.app bench --model qwen3-0.6b -n 1000 \
    --engines hf-seq,hf-batch,vllm --batch-size 64 --seq-limit 20 --max-new-tokens 64 --repeats 2 \
    --out "$out/bench" --models-dir "${MODELS:-runs/bench-models}" > "$out/bench.log" 2>&1
bench_rc=$?
tail -n 40 "$out/bench.log"
echo "bench: exit $bench_rc after $((SECONDS - start)) s"
if [ "${PREFIX:-0}" = 1 ]; then
  # The prefix cache and the prompt on a GPU (issue "Fewer FLOPs per row", item 6): vLLM alone, 1000 prompts x 64
  # tokens on the qwen3-0.6b shape, cache on at vLLM's block, cache off, and the same weights asked without the
  # instruction (a copy of the preset whose manifest records `train --instruction none`).
  models=${MODELS:-runs/bench-models}
  python - "$models/qwen3-0.6b" "$models/qwen3-0.6b-none" <<'PY'
import json, sys
from pathlib import Path
from jsontune.prompts import NO_INSTRUCTION, prompt_format
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.name != "jsontune.json" and not (dst / f.name).exists():
        (dst / f.name).symlink_to(f.resolve())
manifest = json.loads((src / "jsontune.json").read_text())
manifest["prompt_format"] = prompt_format(NO_INSTRUCTION).to_dict()
(dst / "jsontune.json").write_text(json.dumps(manifest, indent=2))
PY
  for row in "cache-on:$models/qwen3-0.6b:" "cache-off:$models/qwen3-0.6b:--no-prefix-caching" \
      "no-instruction:$models/qwen3-0.6b-none:"; do
    IFS=: read -r name model flags <<< "$row"
    start=$SECONDS
    timeout "${PREFIX_S:-120}" python -m jsontune.cli.app bench --model "$model" -n 1000 --engines vllm \
        --max-new-tokens 64 --repeats 2 $flags --out "$out/prefix-$name" > "$out/prefix-$name.log" 2>&1
    echo "prefix $name: exit $? after $((SECONDS - start)) s"; tail -n 12 "$out/prefix-$name.log"
  done
fi
start=$SECONDS
timeout "${TESTS_S:-240}" python -m pytest -q -s -rs -m "vllm or gpu" -p no:cacheprovider tests > "$out/gpu-tests.log" 2>&1
tests_rc=$?
grep -E "^(vLLM|free|guided|predict|killed|merged)|passed|failed|Error" "$out/gpu-tests.log" | tail -n 40
echo "gpu tests: exit $tests_rc after $((SECONDS - start)) s (logs in $out)"
exit $((tests_rc || bench_rc))
