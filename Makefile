# stockrnn — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BACKEND ?= tensorflow
PYTEST_ARGS ?=
# test processes (pytest-xdist; whole files per process, so module fixtures are built once, in
# the order of tests/conftest.py's SLOW_FILES)
# Only the pytest plugins the suite uses (xdist, hypothesis) are loaded: pytest rewrites the
# asserts of every module of every installed plugin's package (fugue, anyio, ... come with the
# extras), about 2 CPU-s in each test process
# Python may write its bytecode caches (__pycache__/, ignored by git) even where
# PYTHONDONTWRITEBYTECODE is set: else every test process compiles the test files (with pytest's
# assert rewriting) and every process the tests start compiles stockrnn again
TEST_WORKERS ?= auto
export KERAS_BACKEND := $(BACKEND)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.DEFAULT_GOAL := help
.PHONY: help demo test test-oldest lint bench bench-full ray-demo clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "stockrnn needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,jax,tune,ray,onnx,mlflow,tensorboard,stats]'

	@touch $(STAMP)

## demo: create .venv and run fetch -> prepare -> train -> evaluate -> predict on the bundled sample (offline; BACKEND=jax for JAX)
demo: $(STAMP)
	$(BIN)/stockrnn run --config configs/lstm.yaml

## test: create/update .venv and run the whole test suite (offline)
test: $(STAMP)
	PYTHONDONTWRITEBYTECODE= PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(BIN)/python -m pytest -p xdist -p hypothesispytest \
		-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## test-oldest: the training, resume and dataset tests on the oldest allowed Keras/TensorFlow (.venv-oldest)
test-oldest:
	@test -x .venv-oldest/bin/python || $(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/python -m pip install --quiet -e '.[dev]' 'keras==3.8.0' 'tensorflow==2.18.*'
	.venv-oldest/bin/python -m pytest tests/test_training.py tests/test_cli_train.py tests/test_dataset.py $(PYTEST_ARGS)

## lint: ruff check
lint: $(STAMP)
	$(BIN)/ruff check stockrnn tests benchmarks

## bench: quick benchmarks (speed and quality) -> docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m benchmarks --quick

## bench-full: the full benchmark suite (slow)
bench-full: $(STAMP)
	$(BIN)/python -m benchmarks

## ray-demo: a Ray head and worker node on this machine (ray start), a batch and a backtest on them vs serial runs, the cluster stopped (a few minutes)
ray-demo: $(STAMP)
	$(BIN)/python -m benchmarks.ray_cluster

.PHONY: docs
## docs: regenerate docs/reference.md (every command, option and config key) from the code
docs: $(STAMP)
	$(BIN)/python -m stockrnn.reference --write

## clean: remove .venv, caches and generated data/runs in this folder
clean:
	rm -rf $(VENV) .venv-oldest .pytest_cache .ruff_cache .hypothesis build dist *.egg-info data runs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
