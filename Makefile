# Two commands on a fresh clone:
#   make demo   set up, start a local Kafka, run Pulse's worker on sample events
#   make test   set up, lint, type-check and run every test (starts Kafka itself)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration setup kafka-start kafka-stop clean bench

setup: $(STAMP)

# constraints.txt pins every package to the versions the suite was run with
# (regenerate with `.venv/bin/pip freeze --exclude-editable > constraints.txt`).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" ./scripts/demo.sh

lint: $(STAMP)
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline

typecheck: $(STAMP)
	$(BIN)/mypy pipeline

test: lint typecheck
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/wiring

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

kafka-start: $(STAMP)
	$(BIN)/pulse kafka start

kafka-stop: $(STAMP)
	$(BIN)/pulse kafka stop

bench: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench.run

clean:
	-$(BIN)/pulse kafka stop
	rm -rf .pulse
