"""stockrnn.plotting: each backtest plot writes a non-empty PNG, atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stockrnn import plotting

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


@pytest.mark.parametrize("labels", [
    ["fold 1", "fold 2", "fold 3", "fold 4"],
    list(pd.date_range("2022-01-31", periods=4, freq="ME")),
])
def test_fold_mase_plot(tmp_path, labels):
    path = plotting.fold_mase_plot(
        labels, {"lstm": [0.98, 1.02, None, 0.97], "drift": [1.01, 1.0, 1.03, 0.99]},
        tmp_path / "sub" / "folds.png", "MASE by fold")
    assert path == tmp_path / "sub" / "folds.png" and _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["folds.png"]  # no temp file left


def test_cumulative_error_plot(tmp_path):
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2023-01-02", periods=120)
    path = plotting.cumulative_error_plot(dates, np.abs(rng.normal(size=120)),
                                          np.abs(rng.normal(size=120)), tmp_path / "cum.png",
                                          "cumulative error vs persistence")
    assert _is_png(path)


def test_equity_plot(tmp_path):
    dates = pd.bdate_range("2023-01-02", periods=50)
    rng = np.random.default_rng(1)
    curves = {"model (net)": np.cumprod(1 + rng.normal(0, 0.01, 50)),
              "buy and hold": np.cumprod(1 + rng.normal(0, 0.01, 50))}
    path = plotting.equity_plot(dates, curves, tmp_path / "equity.png", "equity")
    assert _is_png(path)
