"""Fixtures shared by the whole suite.

* every test runs in its own empty working directory, with no ``STOCKRNN_DATA_DIR`` /
  ``STOCKRNN_RUNS_DIR`` from the environment, so nothing it writes lands in the repository
  (``work`` is that directory);
* the loggers the CLI reconfigures are restored after every test;
* a few things are built once per session and shared read-only (tests that change them take a
  copy): the bundled sample in a store, a small trained run (``smoke_run``) and a horizon-2 run
  on a dated AR(1) series (``horizon_run``). They are trained with the library, not the CLI, so
  building them never touches the loggers or the working directory of the test that needs
  them first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    HORIZON,
    HORIZON_LAST_DAY,
    HORIZON_LOOK_BACK,
    SHORT,
    SMOKE,
    ar1_returns,
    fork_server,
    prices_from_returns,
    saved_logging,
    seed_store,
    write_close_csv,
)

# Several test processes (pytest-xdist, see the Makefile) share the cores: each gets its share of
# the math libraries' threads, set before anything imports TensorFlow (as `--jobs` workers do).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    from stockrnn.jobs import limit_threads

    limit_threads(max(1, (os.cpu_count() or 1) // _WORKERS))

# The slowest files first (measured wall seconds in `make test`, slowest first): the test
# processes take whole files (--dist loadfile) in this order (the Makefile's
# --no-loadscope-reorder: pytest-xdist would otherwise order them by their number of tests), so
# the last file a process takes is a short one and both finish together. Files not named here
# keep their order after these.
SLOW_FILES = ("test_ray.py", "test_backends.py", "test_backtest.py", "test_covariates.py",
              "test_honesty.py", "test_faults.py", "test_training.py", "test_tracking.py",
              "test_ci_example.py", "test_classical.py", "test_report.py", "test_cli_run.py",
              "test_cron_example.py", "test_batch.py", "test_ensemble.py", "test_models.py",
              "test_config.py", "test_cli_train.py", "test_tuning.py", "test_dataset.py",
              "test_cli_evaluate.py", "test_calendars.py", "test_bench_entry.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))


@pytest.fixture(scope="session", autouse=True)
def _statsforecast_once():
    """statsforecast (when installed) is imported once per test process, as a `--jobs` worker
    has it from its fork server: a test process evaluates many runs, and its first `run` would
    otherwise fit the baselines in a forked child (classical.prefetch) that imports it again.
    What a prefetch does is tested in test_classical, that `run` asks for it in test_cli_run,
    and the fresh `stockrnn` processes of test_cron_example and test_ci_example prefetch for
    real. A fixture, not an import at the top of this file: pytest-xdist's controller, which
    runs no test, imports this file before it starts the test processes."""
    from stockrnn import classical

    classical.preload()


@pytest.fixture(scope="session", autouse=True)
def _tests_fork_server_first():
    """The tests' fork server starts (in the background) before a ``--jobs`` pool could start
    stockrnn's own: both use the process's one fork server, and the tests' preloads more
    (Keras, the CLI, helpers) for the real processes of test_faults and test_cli_run."""
    fork_server(wait=False)


@pytest.fixture(autouse=True)
def work(tmp_path, monkeypatch) -> Path:
    """The test's working directory: empty, private, outside the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STOCKRNN_DATA_DIR", raising=False)
    monkeypatch.delenv("STOCKRNN_RUNS_DIR", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI's setup_logging reconfigures the 'stockrnn' and 'yfinance' loggers."""
    with saved_logging():
        yield


def _train(base: Path, *overrides: str, config: Path | None = SMOKE) -> Path:
    """A complete run trained in-process (library calls: no CLI, no logging set-up)."""
    from stockrnn import stages
    from stockrnn.config import load_config
    from stockrnn.options import RunOptions

    cfg = load_config(config, [f"paths.data_dir={base / 'data'}",
                               f"paths.runs_dir={base / 'runs'}", *overrides])
    run = stages.train(cfg, RunOptions(progress="none"))
    return run.path


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    """A data dir holding the bundled GOOG sample. Its prices are read-only (copy it to change
    them); trainings on it add their prepared datasets under prepared/, which is harmless."""
    return seed_store(tmp_path_factory.mktemp("sample") / "data")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, sample_data) -> Path:
    """configs/smoke.yaml (LSTM(8), look_back 10, 2 epochs, horizon 1) on the sample from
    2010-05-03 (about 720 rows): one complete run, evaluated by nobody yet. Shared: tests
    that change or damage it work on a copy (helpers.copy_run)."""
    base = tmp_path_factory.mktemp("smoke")
    return _train(base, f"paths.data_dir={sample_data}", SHORT)


@pytest.fixture(scope="session")
def horizon_run(tmp_path_factory) -> Path:
    """A horizon-2 run (smoke settings, look_back 10) on 600 days of AR(1) log returns (phi 0.6)
    from a CSV whose last bar is Friday HORIZON_LAST_DAY (ticker SYN, run name pred). It learns
    something (its best epoch is a trained one), so its forecasts are not persistence's and
    feeding them back for steps past the horizon changes the later steps. Shared read-only."""
    base = tmp_path_factory.mktemp("horizon")
    prices = prices_from_returns(ar1_returns(600, 0.6, seed=5, sigma=0.015))
    dates = pd.bdate_range(end=HORIZON_LAST_DAY, periods=len(prices))
    csv = write_close_csv(base / "SYN.csv", prices, dates)
    return _train(base, "data.source=csv", f"data.path={csv}", "data.ticker=SYN",
                  "paths.run_name=pred", f"window.horizon={HORIZON}",
                  f"window.look_back={HORIZON_LOOK_BACK}")
