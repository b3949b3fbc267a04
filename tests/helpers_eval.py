"""Shared helpers and fixtures for the evaluate / predict / run / honesty tests.

Synthetic price series written as CSV files, a CliRunner wrapper, and a module-scoped run
trained from smoke settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from stockrnn.cli import cli

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- synthetic series


def random_walk(n: int, seed: int, sigma: float = 0.01, start: float = 100.0) -> np.ndarray:
    """Prices whose log is a driftless Gaussian random walk: no forecast beats persistence."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma, n - 1)
    return start * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))


def ar1_returns(n: int, phi: float, seed: int, sigma: float = 0.01) -> np.ndarray:
    """Log returns r_t = phi * r_{t-1} + eps_t (n - 1 of them; r[0] is the first return)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma, n - 1)
    r = np.empty(n - 1)
    r[0] = eps[0] / np.sqrt(1 - phi ** 2)
    for t in range(1, n - 1):
        r[t] = phi * r[t - 1] + eps[t]
    return r


def prices_from_returns(r: np.ndarray, start: float = 100.0) -> np.ndarray:
    return start * np.exp(np.concatenate([[0.0], np.cumsum(r)]))


def business_dates(n: int, start: str = "2015-01-05") -> pd.DatetimeIndex:
    return pd.bdate_range(start, periods=n)


def write_close_csv(path: Path, prices: np.ndarray, dates=None) -> Path:
    """A two-column ``Date,Close`` file (business days unless ``dates`` given)."""
    dates = business_dates(len(prices)) if dates is None else pd.DatetimeIndex(dates)
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": np.round(prices, 6)})
    frame.to_csv(path, index=False)
    return path


def write_ohlcv_csv(path: Path, prices: np.ndarray, dates=None, seed: int = 0) -> Path:
    """A full ``Date,Open,High,Low,Close,Volume`` file around the given closes."""
    rng = np.random.default_rng(seed)
    dates = business_dates(len(prices)) if dates is None else pd.DatetimeIndex(dates)
    close = np.round(prices, 6)
    open_ = np.round(close * (1 + rng.normal(0, 0.002, len(close))), 6)
    high = np.maximum(open_, close) * 1.005
    low = np.minimum(open_, close) * 0.995
    vol = rng.integers(1_000_000, 5_000_000, len(close))
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": open_, "High": high,
                          "Low": low, "Close": close, "Volume": vol})
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- the CLI


def invoke(*args: str, code: int | None = 0):
    """Run the CLI in-process; check the exit code (when ``code`` is not None)."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (
            f"exit {result.exit_code} != {code} for {args}\n--- output:\n{result.output}"
            f"\n--- exception: {result.exception!r}")
    return result


def csv_overrides(csv_path: Path, ticker: str, data_dir: Path, runs_dir: Path,
                  run_name: str) -> list[str]:
    out = []
    for kv in ("data.source=csv", f"data.path={csv_path}", f"data.ticker={ticker}",
               f"paths.data_dir={data_dir}", f"paths.runs_dir={runs_dir}",
               f"paths.run_name={run_name}"):
        out += ["--set", kv]
    return out


def sets(**kv) -> list[str]:
    """``sets(**{"window.look_back": 10})`` -> ["--set", "window.look_back=10"]."""
    out = []
    for key, value in kv.items():
        if isinstance(value, list | tuple):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        out += ["--set", f"{key}={value}"]
    return out


def train_run(*args: str) -> Path:
    """``stockrnn train -q ARGS``; returns the run directory it printed last."""
    result = invoke("train", "-q", *args)
    path = Path(result.stdout.strip().splitlines()[-1])
    assert (path / "model.keras").is_file(), result.output
    return path


def train_csv(tmp: Path, prices: np.ndarray, ticker: str = "SYN", run_name: str = "syn",
              config: Path | None = SMOKE, dates=None, **overrides) -> Path:
    """Write ``prices`` as a CSV in ``tmp`` and train a run on it (smoke settings + overrides)."""
    tmp.mkdir(parents=True, exist_ok=True)
    csv_path = write_close_csv(tmp / f"{ticker}.csv", prices, dates)
    args = ["-c", str(config)] if config is not None else []
    args += csv_overrides(csv_path, ticker, tmp / "data", tmp / "runs", run_name)
    args += sets(**overrides)
    return train_run(*args)


def evaluate_json(run: Path | str, *extra: str, code: int = 0) -> dict:
    result = invoke("evaluate", "--run", run, "--json", *extra, code=code)
    return json.loads(result.stdout)


def series(run: Path) -> pd.Series:
    """The target prices a run saved (series.csv), by date."""
    return pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"])["Close"]


def copy_run(run: Path, dest: Path) -> Path:
    """A private copy of a run directory, for tests that damage it."""
    return Path(shutil.copytree(run, dest))


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def split_anchors(n: int, look_back: int, horizon: int = 1, train: float = 0.70,
                  val: float = 0.15, log_return: bool = True) -> dict[str, np.ndarray]:
    """Anchors (row of the last input) of each split, computed from the documented rules:
    chronological split at round(n*train) and round(n*(train+val)); a sample belongs to the split
    that holds all its target rows; its inputs need ``look_back`` defined rows (log returns
    leave row 0 undefined)."""
    val_start, test_start = int(round(n * train)), int(round(n * (train + val)))
    first_input = (1 if log_return else 0) + look_back - 1
    out = {}
    for name, (r0, r1) in {"train": (0, val_start), "val": (val_start, test_start),
                           "test": (test_start, n)}.items():
        lo = max(r0 - 1, first_input)
        hi = r1 - horizon
        out[name] = np.arange(lo, hi)
    return out


# --------------------------------------------------------------------------- fixture bodies
# (plain functions: each test module wraps them in its own fixtures, so nothing is imported
# as a fixture and nothing depends on conftest.py)


def isolate(monkeypatch, folder: Path) -> Path:
    """Run in ``folder``, with no STOCKRNN_* folders from the environment."""
    monkeypatch.chdir(folder)
    monkeypatch.delenv("STOCKRNN_DATA_DIR", raising=False)
    monkeypatch.delenv("STOCKRNN_RUNS_DIR", raising=False)
    return folder


def train_smoke(base: Path, **overrides) -> Path:
    """A complete run of configs/smoke.yaml on the bundled sample, with its data and runs folders
    in ``base``. Returns the (absolute) run directory."""
    return train_run("-c", SMOKE, *sets(**{"paths.data_dir": base / "data",
                                           "paths.runs_dir": base / "runs", **overrides}))
