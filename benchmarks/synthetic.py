"""Synthetic price series with known answers, each from a seed:

- a random walk (nothing to learn; the best forecast is persistence);
- AR(1) log returns ``r_t = phi * r_{t-1} + e_t`` (the oracle forecast is P_t * exp(phi * r_t));
- threshold AR log returns, whose persistence depends on the sign of the last return:
  ``r_t = c + phi(r_{t-1}) * r_{t-1} + e_t`` with ``phi(r) = TAR_PHI_POS if r > 0 else
  TAR_PHI_NEG`` (the oracle forecast is P_t * exp(c + phi(r_t) * r_t)). A linear model such as
  AutoARIMA can only fit the average slope. The small intercept ``c`` keeps the mean return near
  zero: without it the positive returns' persistence makes the price drift up by about 1% a bar.

``e_t ~ N(0, SIGMA)`` throughout. Every generator takes the seed of its innovations, so the
benchmark can check several series, never one lucky seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SIGMA = 0.015
AR1_PHI = 0.5            # as in issue 18: the oracle's MASE there is about 0.865
TAR_PHI_POS = 0.7        # persistence after a rise
TAR_PHI_NEG = -0.3       # reversal after a fall
TAR_INTERCEPT = -0.0063  # mean log return about 0 (measured over 10^5 draws)
BURN_IN = 200
# a different stream of innovations per kind of series, for the same seed
_STREAM = {"random_walk": 0, "ar1": 1, "threshold_ar": 2}


def _noise(kind: str, seed: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, _STREAM[kind]]).normal(0.0, SIGMA, n)


def random_walk(rows: int, seed: int = 7, freq: str = "B") -> pd.DataFrame:
    """Close = 100 * exp(cumulative sum of N(0, SIGMA) log returns)."""
    return _frame(100.0 * np.exp(np.cumsum(_noise("random_walk", seed, rows))), freq)


def ar1(rows: int, phi: float = AR1_PHI, seed: int = 11) -> pd.DataFrame:
    """Log returns r_t = phi * r_{t-1} + e_t."""
    e = _noise("ar1", seed, rows + BURN_IN)
    r = np.zeros_like(e)
    for t in range(1, len(e)):
        r[t] = phi * r[t - 1] + e[t]
    return _frame(100.0 * np.exp(np.cumsum(r[BURN_IN:])), "B")


def threshold_ar(rows: int, seed: int = 13, phi_pos: float = TAR_PHI_POS,
                 phi_neg: float = TAR_PHI_NEG, intercept: float = TAR_INTERCEPT) -> pd.DataFrame:
    """Log returns r_t = intercept + (phi_pos if r_{t-1} > 0 else phi_neg) * r_{t-1} + e_t."""
    e = _noise("threshold_ar", seed, rows + BURN_IN)
    r = np.zeros_like(e)
    for t in range(1, len(e)):
        r[t] = intercept + (phi_pos if r[t - 1] > 0 else phi_neg) * r[t - 1] + e[t]
    return _frame(100.0 * np.exp(np.cumsum(r[BURN_IN:])), "B")


SERIES = {"random_walk": random_walk, "ar1": ar1, "threshold_ar": threshold_ar}


def series(kind: str, rows: int, seed: int) -> pd.DataFrame:
    """The synthetic series ``kind`` (a key of ``SERIES``) of ``rows`` bars from ``seed``."""
    return SERIES[kind](rows, seed=seed)


def _frame(close: np.ndarray, freq: str) -> pd.DataFrame:
    idx = pd.date_range("2000-01-03", periods=len(close), freq=freq, name="Date")
    return pd.DataFrame({"Close": close}, index=idx)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index_label="Date", float_format="%.6f")
    return path


def _last_return(prices: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    last = prices[anchors]
    return last, np.log(last / prices[anchors - 1])


def ar1_oracle(prices: np.ndarray, anchors: np.ndarray, phi: float = AR1_PHI) -> np.ndarray:
    """One-step oracle forecast at each anchor t: P_t * exp(phi * log(P_t / P_{t-1}))."""
    last, r = _last_return(prices, anchors)
    return last * np.exp(phi * r)


def threshold_ar_oracle(prices: np.ndarray, anchors: np.ndarray, phi_pos: float = TAR_PHI_POS,
                        phi_neg: float = TAR_PHI_NEG,
                        intercept: float = TAR_INTERCEPT) -> np.ndarray:
    """One-step oracle forecast at each anchor t: P_t * exp(c + phi(r_t) * r_t)."""
    last, r = _last_return(prices, anchors)
    return last * np.exp(intercept + np.where(r > 0, phi_pos, phi_neg) * r)


def random_walk_oracle(prices: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """The best forecast of a random walk: persistence, P_t."""
    return np.asarray(prices)[anchors]


ORACLES = {"random_walk": random_walk_oracle, "ar1": ar1_oracle,
           "threshold_ar": threshold_ar_oracle}
