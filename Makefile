# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
# Both create .venv on first use and install the pinned set from constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= quickstart

.PHONY: install run test lint clean bench

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

# Every benchmark, each writing its committed output under benchmarks/results/ (about an hour on
# 2 cores); the figures and commands are gathered in benchmarks/README.md. Runs that start Ray go
# one at a time: on a shared machine wrap the whole target in `flock`.
BENCH_ENV := TF_CPP_MIN_LOG_LEVEL=3 PYTHONPATH=$(CURDIR)
bench: install
	$(BENCH_ENV) $(BIN)/python benchmarks/aggregators.py --repeats 7 --out benchmarks/results/aggregators.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/simulation.py --repeats 3 --out benchmarks/results/simulation.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/sim_phases.py --out benchmarks/results/simulation_phases.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/scaling.py --out benchmarks/results/scaling.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/dp_sgd.py > benchmarks/results/dp_sgd.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/integrity.py > benchmarks/results/integrity.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/leakage.py
	$(BENCH_ENV) $(BIN)/python benchmarks/privacy_utility.py
	$(BENCH_ENV) $(BIN)/python benchmarks/watermark_robustness.py > benchmarks/results/watermark_robustness.txt
	$(BENCH_ENV) $(BIN)/python benchmarks/attack_matrix.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
