#!/usr/bin/env bash
# Everything that needs a GPU, in one go: the gpu/vllm tests (vLLM vs HF agreement, guided JSON, --lora
# vs merged, merged checkpoints in vLLM), then the bench of the qwen3-0.6b shape on 1000 prompts.
# Logs and bench files go to ${OUT:-runs/gpu}. See ../shared/gpu/README.md for getting vLLM there.
#
#   pip install -e '.[vllm,dev]' && bash scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu}
mkdir -p "$out"
python -c "from jsontune.serving.base import vllm_available as v; import sys; r = v(); r and sys.exit(r)" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/nvidia-smi.txt"
python -m pytest -q -s -rs -m "vllm or gpu" -p no:cacheprovider tests 2>&1 | tee "$out/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
python -m jsontune.cli.app bench --model qwen3-0.6b -n 1000 --engines hf-seq,hf-batch,vllm --batch-size 64 \
    --seq-limit 100 --max-new-tokens 64 --repeats 3 --out "$out/bench" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}
echo "gpu tests exit $tests_rc, bench exit $bench_rc (logs in $out)"
exit $((tests_rc || bench_rc))
