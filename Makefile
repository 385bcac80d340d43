# One task runner for people and CI alike.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

## run: the whole system on embedded defaults (embedded Redis + SQLite under ./var)
run: $(STAMP)
	$(BIN)/jarvis-ir up

## test: unit, integration and e2e tests against real Redis, PostgreSQL (and Docker when running)
# pytest's exit code 5 means it collected no test: that is a failure, and says so.
test: $(STAMP)
	@scripts/with-test-servers.sh $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## demo: the sandbox stack (deploy/sandbox/, Docker) beside `jarvis-ir up` on :10300 with
## remediation on for the sandbox only; runs the five drills, then stays up until Ctrl-C
demo: $(STAMP)
	$(BIN)/python -m bench.drills --demo --port 10300 --redis-port 10379 --quiet-period 30

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
