# psy-agents: one-command set-up, run, test, lint and benchmark.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
export MLFLOW_DISABLE_TELEMETRY ?= true
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install run test floors lint format typecheck bench ui clean sample-data

$(BIN)/psy-agents: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, from the CPU build on disk, so pip never pulls a multi-GB CUDA build.
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/psy-agents  ## Create .venv and install the package with dev tools

run: install  ## Train the criteria classifier on the bundled sample (MiniLM, CPU ok)
	$(BIN)/psy-agents train task=criteria

test: install  ## Run the whole test suite
	$(BIN)/pytest -q

floors:  ## Build .venv-floors at the lowest versions pyproject.toml allows; run the core tests
	scripts/floors_venv.sh .venv-floors --test

lint: install  ## ruff lint + format check + mypy on the public API
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests scripts bench
	$(BIN)/ruff check --fix src tests scripts bench

typecheck: install
	$(BIN)/mypy

bench: install  ## Benchmarks: print tables, write bench/results/*.json
	$(BIN)/python bench/run_bench.py
	$(BIN)/python bench/sliced_bench.py
	$(BIN)/python bench/hpo_bench.py
	$(BIN)/python bench/load_test.py
	$(BIN)/python bench/disk_bench.py
	$(BIN)/python bench/heldout.py
	$(BIN)/python bench/criteria_bench.py --table redsm5 --epochs 1

ui: install  ## MLflow UI on the default store
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

sample-data: install  ## Regenerate the bundled ReDSM5-format sample
	$(BIN)/python scripts/make_sample_data.py

clean:
	rm -rf mlruns mlartifacts outputs checkpoints .pytest_cache .mypy_cache .ruff_cache
