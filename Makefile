# vdup: the two commands a newcomer needs are `make run` and `make test`.
# Python 3.12 is selected by .python-version (pyenv); set PYTHON to override.

PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run test test-fast models lint format typecheck clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), f"vdup needs Python >= 3.12, found {sys.version.split()[0]} (set PYTHON=...)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/vdup models install

run: install
	$(BIN)/vdup serve --host 127.0.0.1 --port 8080 --data ./data

# the whole suite with a coverage report of the vdup package (reports/coverage.xml too)
test: install
	$(BIN)/python -m pytest --cov=vdup --cov-report=term:skip-covered \
	  --cov-report=xml:reports/coverage.xml $(PYTEST_ARGS)

# the unit tests: no server processes, no Triton, no browser (tests marked "slow" are left out)
test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# ruff's fixes and formatting, applied
format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache

-include mk/*.mk
