"""Forecast metrics in price units. NumPy (and scipy.special for a binomial p-value of
over 20,000 points), no keras.

All functions take arrays of shape (n,) for one horizon step. ``last`` is the last observed price
of each sample, so the persistence forecast is ``last`` itself.
"""

from __future__ import annotations

import math
import operator

import numpy as np


def mae(actual, pred) -> float:
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(pred))))


def rmse(actual, pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(pred)) ** 2)))


def mape(actual, pred) -> float:
    """Mean absolute percentage error, in percent."""
    a = np.asarray(actual, dtype="float64")
    return float(np.mean(np.abs((a - np.asarray(pred)) / a)) * 100.0)


def directional(actual, pred, last) -> tuple[float | None, int]:
    """Share of points where the forecast moves the same way as the price, and how many points.

    Points where the price did not move are left out (no direction to get right); a forecast of
    no change counts as a miss. Returns (None, n) when no point qualifies or nothing predicts a
    direction at all (the persistence forecast).
    """
    da = np.sign(np.asarray(actual) - np.asarray(last))
    dp = np.sign(np.asarray(pred) - np.asarray(last))
    mask = da != 0
    n = int(mask.sum())
    if n == 0 or not dp.any():
        return None, n
    return float(np.mean(da[mask] == dp[mask])), n


# Up to this many points the binomial p-value is summed in exact integers (a few hundredths of
# a second at most); beyond, from scipy.special's binomial CDF (within 1e-9 of the exact value
# up to 60,000 points, tests/test_metrics.py)
EXACT_BINOMIAL_MAX_N = 20_000


def binomial_p_value(hits: int, n: int) -> float | None:
    """Two-sided exact binomial test of ``hits`` out of ``n`` against p = 0.5 (scipy.stats'
    ``binomtest(hits, n, 0.5).pvalue``): twice the smaller tail, at most 1. The tail is a sum of
    binomial coefficients over 2**n in exact integers, rounded once, so it is the correctly
    rounded value; scipy.stats (a slow import) is not needed. None for no points; ValueError for
    ``hits`` outside 0..n, TypeError for counts that are not integers."""
    hits, n = operator.index(hits), operator.index(n)  # numpy integers too, as Python ints
    if not 0 <= hits <= n:
        raise ValueError(f"`hits` must be between 0 and n. Received: hits={hits}, n={n}")
    if n == 0:
        return None
    m = min(hits, n - hits)
    if 2 * m >= n:
        return 1.0
    if n > EXACT_BINOMIAL_MAX_N:
        from scipy.special import bdtr

        return min(1.0, float(2.0 * bdtr(m, n, 0.5)))
    tail, term = 0, 1
    for i in range(m + 1):
        tail += term
        term = term * (n - i) // (i + 1)
    return min(1.0, 2 * tail / 2**n)


def score(actual, pred, last, persistence_mae: float | None = None) -> dict:
    """MAE, RMSE, MAPE, MASE, directional accuracy (+ n and p-value) for one forecast."""
    m = mae(actual, pred)
    ref = persistence_mae if persistence_mae is not None else mae(actual, last)
    acc, n = directional(actual, pred, last)
    return {
        "mae": m, "rmse": rmse(actual, pred), "mape": mape(actual, pred),
        "mase": (m / ref) if ref > 0 else (0.0 if m == 0 else math.inf),
        "directional_accuracy": acc, "direction_n": n,
        "direction_p_value": binomial_p_value(round(acc * n), n) if acc is not None else None,
    }


def conformal_quantile(abs_residuals, level: float) -> float:
    """Split-conformal quantile: the ceil((n+1)·level)-th smallest absolute residual."""
    r = np.sort(np.asarray(abs_residuals, dtype="float64"))
    n = len(r)
    if n == 0:
        return math.inf
    k = math.ceil((n + 1) * level)
    return float(r[min(k, n) - 1]) if k <= n else float(r[-1])


def coverage(actual, lower, upper) -> float:
    a = np.asarray(actual)
    return float(np.mean((a >= lower) & (a <= upper)))


def best_baseline(baselines: dict, recorded: str | None = None) -> str | None:
    """The best baseline of a metrics block: ``recorded`` (its ``best_baseline``) when it names
    one of ``baselines``, else the one with the lowest MAE (the first of equals; metrics files
    written before it was recorded); None when no baseline has an MAE."""
    if recorded in baselines:
        return recorded
    known = [(m["mae"], name) for name, m in baselines.items()
             if isinstance(m, dict) and m.get("mae") is not None and m["mae"] == m["mae"]]
    return min(known, key=lambda t: t[0])[1] if known else None
