# make demo: set up .venv and run the whole pipeline on a tiny local model and synthetic data.
# make test: set up .venv and run the test suite (CPU; GPU/vLLM tests skip cleanly).
#
# On a GPU machine: make test TORCH_SPEC=torch  (or any pip requirement for your CUDA build).
# torch==2.13.0 resolves to the CPU build on the machines this project is built on (a local wheel); elsewhere
# ask PyTorch's CPU index for it, or pip takes the CUDA build (several GB):
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/jsontune: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/jsontune

demo: install
	$(BIN)/jsontune demo --out runs/demo --force

test: install lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
