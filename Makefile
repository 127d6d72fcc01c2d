PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo sandbox soak bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check connectors tests bench
	$(BIN)/ruff format --check connectors tests bench
	$(BIN)/mypy connectors bench
	$(BIN)/cfn-lint deploy/aws/template.yaml
	$(BIN)/hadolint deploy/container/Dockerfile

test: lint
	$(BIN)/pytest -q -n auto

demo: $(STAMP)
	$(BIN)/sirsync demo

sandbox: $(STAMP)
	$(BIN)/sirsync sandbox

# The reliability proofs in full (CI runs them reduced): 50 cases killed 30+ times, 200 cycles under faults,
# with the state in SQLite and then in DynamoDB (moto's server on loopback).
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --full --state both

# sirsync against the naive strategy on the sandbox, one table (BENCHMARKS.md); not part of `make test`.
# A shorter run: make bench BENCH_ARGS="--quick"
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
