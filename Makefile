# quench: `make setup` once, then `make quantize` (the bundled default recipe) or `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
RECIPE ?= recipes/tinystories-rtn-w4a16.yaml
ARGS ?=
ARTIFACTS ?= artifacts
UI_PORT ?= 5000

# Offline mirror: ../shared (models/ and data/) when it is there; hub ids resolve through it.
ifneq ($(wildcard ../shared/models),)
export QUENCH_MIRROR ?= $(abspath ../shared)
endif

.PHONY: setup quantize validate ui test lint bench clean

setup: $(VENV)/.installed

# torch first, on its own: the CPU build; anything later that asks for torch finds it installed.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

quantize: setup
	$(VENV)/bin/quench run $(RECIPE) $(ARGS)

validate: setup
	$(VENV)/bin/quench validate $(RECIPE) $(ARGS)

# A lean MLflow UI on the default store (one worker, no job runner).
ui: setup
	mkdir -p $(ARTIFACTS)/mlartifacts
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow server \
	  --backend-store-uri sqlite:///$(abspath $(ARTIFACTS))/mlflow.db \
	  --default-artifact-root file://$(abspath $(ARTIFACTS))/mlartifacts \
	  --host 127.0.0.1 --port $(UI_PORT) --workers 1

test: setup
	$(PY) -m ruff check pipeline tests bench
	$(PY) -m pytest -q -rs

bench: setup
	$(PY) bench/spine.py
	$(PY) bench/methods.py

clean:
	find $(ARTIFACTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
