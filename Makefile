# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
# Both create .venv on first use and install the pinned set from constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= quickstart

.PHONY: install run test lint clean

$(BIN)/fedshield: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; fedshield needs Python 3.11 (tensorflow-privacy refuses 3.12+)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

install: $(BIN)/fedshield

run: install
	$(BIN)/fedshield run $(SCENARIO)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy common fedshield server clients strategies attacks scenarios

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
