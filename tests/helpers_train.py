"""Shared helpers for the config, windows, transforms, models and train tests (no fixtures that
touch the repository: every path is a temp folder the test passes in)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from stockrnn.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SMOKE = CONFIGS / "smoke.yaml"
CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))


def cli_run(*args: str):
    """Invoke the click app in-process; stdout and stderr come back separately."""
    from stockrnn.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def stdout_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def explain(result) -> str:
    """Everything needed to understand a failed CLI call in an assertion message."""
    exc = result.exception
    return (f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"exception: {exc!r}")


@functools.cache
def sample_frame() -> pd.DataFrame:
    """The bundled GOOG sample as the store keeps it (read once per session)."""
    from stockrnn.data.csvfile import read_price_csv
    from stockrnn.data.sources import SAMPLE_DIR

    return read_price_csv(SAMPLE_DIR / "GOOG.csv")


def seed_store(data_dir: Path) -> Path:
    """Fetch the bundled sample into ``data_dir`` the way ``stockrnn fetch --source sample`` does."""
    from stockrnn.data.sources import SampleSource
    from stockrnn.data.store import Store

    Store(data_dir).update(SampleSource(), "GOOG")
    return data_dir


def price_frame(close, **columns) -> pd.DataFrame:
    """A price frame on business days from a Close array (and optional other columns)."""
    close = np.asarray(close, dtype="float64")
    idx = pd.bdate_range("2020-01-01", periods=len(close), name="Date")
    data = {"Close": close, **{k: np.asarray(v, dtype="float64") for k, v in columns.items()}}
    return pd.DataFrame(data, index=idx)


def config(*overrides: str, base: Path | None = None) -> Config:
    """A validated Config from ``base`` (default: built-in defaults) plus ``--set`` overrides."""
    return load_config(base, list(overrides))
