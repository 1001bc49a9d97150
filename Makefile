# GPT4All-style pipeline. Two commands for a new user: `make all` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= configs/tiny.yaml
ARGS ?=
# The newest run's quantized model, else the bundled SmolLM2 (empty = the runtime's default).
MODEL ?= $(shell ls -t runs/*/quantize/*-q4_0.gguf 2>/dev/null | head -n 1)
PIPELINE := $(BIN)/python -m pipeline
RUNTIME := $(BIN)/python -m runtime

.PHONY: install test all collect curate train eval quantize chat serve bench clean

install: $(STAMP)

# torch first: `torch==2.13.0` is the CPU build on disk; anything unpinned would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==26.3
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

all: install
	$(PIPELINE) all --config $(CONFIG) $(ARGS)

collect curate train eval quantize: install
	$(PIPELINE) $@ --config $(CONFIG) $(ARGS)

chat: install
	$(RUNTIME) chat $(MODEL)

serve: install
	$(RUNTIME) serve $(MODEL) $(ARGS)

BENCHMARKS ?= runtime collect curate train quantize eval localdocs
bench: install
	$(BIN)/pip install -q -e '.[dev,bench]'
	for name in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$name || exit 1; done

clean:
	rm -rf runs
