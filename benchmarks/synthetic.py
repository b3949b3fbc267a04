"""Synthetic price series with known answers: a random walk (nothing to learn; the best
forecast is persistence) and AR(1) log returns (the oracle forecast is P_t * exp(phi * r_t))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

AR1_PHI = 0.6
SIGMA = 0.015


def random_walk(rows: int, seed: int = 7, freq: str = "B") -> pd.DataFrame:
    """Close = 100 * exp(cumulative sum of N(0, SIGMA) log returns)."""
    r = np.random.default_rng(seed).normal(0.0, SIGMA, rows)
    return _frame(100.0 * np.exp(np.cumsum(r)), freq)


def ar1(rows: int, phi: float = AR1_PHI, seed: int = 11, burn_in: int = 200) -> pd.DataFrame:
    """Log returns r_t = phi * r_{t-1} + e_t, e_t ~ N(0, SIGMA)."""
    e = np.random.default_rng(seed).normal(0.0, SIGMA, rows + burn_in)
    r = np.zeros_like(e)
    for t in range(1, len(e)):
        r[t] = phi * r[t - 1] + e[t]
    return _frame(100.0 * np.exp(np.cumsum(r[burn_in:])), "B")


def _frame(close: np.ndarray, freq: str) -> pd.DataFrame:
    idx = pd.date_range("2000-01-03", periods=len(close), freq=freq, name="Date")
    return pd.DataFrame({"Close": close}, index=idx)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index_label="Date", float_format="%.6f")
    return path


def ar1_oracle(prices: np.ndarray, anchors: np.ndarray, phi: float = AR1_PHI) -> np.ndarray:
    """One-step oracle forecast at each anchor t: P_t * exp(phi * log(P_t / P_{t-1}))."""
    last = prices[anchors]
    return last * np.exp(phi * np.log(last / prices[anchors - 1]))
