#!/usr/bin/env bash
# GPU checks of the serving engines (skipped on CPU): vLLM greedy vs HF greedy agreement on the tiny
# model, guided JSON parses, and vLLM --lora equals the merged model. Prints the agreement rates.
#
#   pip install -e '.[vllm,dev]' && bash scripts/check_serving_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "from jsontune.serving.base import vllm_available as v; import sys; r = v(); r and sys.exit(r)"
exec python -m pytest -q -s -rs -m "vllm or gpu" tests/serving "$@"
