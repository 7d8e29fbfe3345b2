#!/usr/bin/env bash
# Everything that needs a GPU, in one go, each part under its own time limit so that one slow part cannot
# eat the others' time: the bench of the qwen3-0.6b shape on 1000 prompts, then the gpu/vllm tests (vLLM vs
# HF agreement, guided JSON, --lora vs merged, kill and --resume, merged checkpoints in vLLM).
# Logs and bench files go to ${OUT:-runs/gpu}. See ../shared/gpu/README.md for getting vLLM there.
#
#   pip install -e '.[vllm,dev]' && bash scripts/gpu_checks.sh
#   BENCH_S=600 TESTS_S=900 bash scripts/gpu_checks.sh     # more time for each part
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
start=$SECONDS
timeout "${TESTS_S:-240}" python -m pytest -q -s -rs -m "vllm or gpu" -p no:cacheprovider tests > "$out/gpu-tests.log" 2>&1
tests_rc=$?
grep -E "^(vLLM|free|guided|predict|killed|merged)|passed|failed|Error" "$out/gpu-tests.log" | tail -n 40
echo "gpu tests: exit $tests_rc after $((SECONDS - start)) s (logs in $out)"
exit $((tests_rc || bench_rc))
