"""Is a forecaster's edge real? Diebold-Mariano for accuracy, binomial for direction.

Pure numpy and scipy.special, no keras.

Diebold-Mariano test (Diebold & Mariano 1995) with the Harvey-Leybourne-Newbold (1997)
small-sample correction, as in R's ``forecast::dm.test``. For forecast errors ``e_m`` (the model)
and ``e_r`` (the reference, e.g. persistence) on the same ``n`` points::

    loss            L(e)   = |e| ** power                    (power 1: absolute errors, the default)
    differential    d_t    = L(e_m,t) - L(e_r,t)              (negative mean: the model is better)
    mean            d̄      = (1/n) Σ d_t
    autocovariance  γ_k    = (1/n) Σ_{t=k+1..n} (d_t - d̄)(d_{t-k} - d̄)
    long-run var    V      = γ_0 + 2 Σ_{k=1..h-1} γ_k         (h = forecast horizon; rectangular)
                    if V <= 0: V = γ_0 + 2 Σ_{k=1..h-1} (1 - k/h) γ_k   (Newey-West / Bartlett)
    statistic       DM     = d̄ / sqrt(V / n)
    HLN correction  DM*    = DM · sqrt((n + 1 - 2h + h(h-1)/n) / n)
    p-value         p      = 2 · P(T_{n-1} > |DM*|)           (Student's t, n - 1 degrees of freedom)

An h-step forecast's errors overlap, so ``d`` is at most MA(h-1): autocovariances beyond lag h-1
are zero by assumption, which is why only those lags enter ``V``.

Degenerate input gives an answer, not an exception: with fewer than two points, ``horizon >= n``,
or a differential with zero variance (identical errors), the test cannot reject, so ``p_value`` is
1.0 and ``statistic`` is 0.0 when ``d`` is all zero, ``nan`` otherwise (``to_dict`` turns ``nan``
into ``None``). Mismatched lengths, non-finite errors, a horizon below 1 or a power not above 0
raise ``ValueError``.

Direction (did the forecast call up/down right more often than a coin?) is the exact binomial test
in :func:`stockrnn.metrics.binomial_p_value`, re-exported here with :func:`direction_test`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stockrnn.metrics import binomial_p_value

__all__ = ["DMResult", "binomial_p_value", "diebold_mariano", "direction_test",
           "long_run_variance", "verdict"]


@dataclasses.dataclass(frozen=True)
class DMResult:
    """HLN-corrected DM statistic, its two-sided p-value, the points used and mean(d)."""

    statistic: float
    p_value: float
    n: int
    mean_difference: float

    def to_dict(self) -> dict:
        """JSON-friendly: plain floats, ``None`` for an undefined statistic."""
        stat = None if math.isnan(self.statistic) else self.statistic
        return {"statistic": stat, "p_value": self.p_value, "n": self.n,
                "mean_difference": self.mean_difference}


def long_run_variance(d, horizon: int = 1) -> float:
    """γ_0 + 2 Σ_{k<h} γ_k of ``d``; Bartlett weights (1 - k/h) if that is not positive."""
    d = np.asarray(d, dtype="float64")
    n = len(d)
    dev = d - d.mean()
    gammas = [float(dev[k:] @ dev[: n - k]) / n for k in range(min(horizon, n))]
    v = gammas[0] + 2.0 * sum(gammas[1:])
    if v <= 0.0:
        v = gammas[0] + 2.0 * sum((1.0 - k / horizon) * g for k, g in enumerate(gammas) if k)
    return v


def diebold_mariano(errors_model, errors_ref, horizon: int = 1, power: float = 1) -> DMResult:
    """Diebold-Mariano test of equal accuracy of two forecasts of the same points.

    ``errors_*`` are forecast errors (actual - forecast, in price units), 1-D and equally long.
    A negative ``statistic`` with a small ``p_value`` means the model's losses are smaller than
    the reference's. Formulas and the degenerate cases are in the module docstring.
    """
    em = _errors(errors_model, "errors_model")
    er = _errors(errors_ref, "errors_ref")
    if em.shape != er.shape:
        raise ValueError(f"errors_model and errors_ref must have the same length. "
                         f"Received: {len(em)} and {len(er)}")
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"`horizon` must be an integer >= 1. Received: horizon={horizon!r}")
    if not power > 0:
        raise ValueError(f"`power` must be > 0. Received: power={power!r}")
    horizon = int(horizon)

    loss_m, loss_r = np.abs(em) ** power, np.abs(er) ** power
    d = loss_m - loss_r
    n = len(d)
    mean = float(d.mean()) if n else 0.0
    if n < 2 or horizon >= n or _constant(d, scale=max(loss_m.max(), loss_r.max())):
        return DMResult(0.0 if mean == 0.0 else math.nan, 1.0, n, mean)

    v = long_run_variance(d, horizon)
    dm = mean / math.sqrt(v / n)
    hln = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    stat = dm * hln

    # Student's t survival function as scipy.stats.t.sf computes it (the same bits), without
    # importing scipy.stats (0.8-1.9 s)
    from scipy.special import stdtr

    p = float(2.0 * stdtr(n - 1, -abs(stat)))
    return DMResult(float(stat), min(p, 1.0), n, mean)


def direction_test(hits: int, n: int) -> float | None:
    """Two-sided exact binomial p-value of ``hits`` right calls out of ``n`` against a coin
    (``metrics.binomial_p_value``)."""
    return binomial_p_value(hits, n)


def verdict(dm: DMResult, alpha: float = 0.05, reference: str = "persistence") -> str:
    """One line for the CLI: "better than persistence (p = 0.003)" and the like.

    Better or worse only when ``p_value < alpha``; the side is the sign of the mean loss
    differential (negative: the model's losses are smaller).
    """
    p = _format_p(dm.p_value)
    if dm.p_value < alpha and dm.mean_difference != 0.0:
        side = "better" if dm.mean_difference < 0.0 else "worse"
        return f"{side} than {reference} ({p})"
    return f"not distinguishable from {reference} ({p})"


def _format_p(p: float) -> str:
    """Two decimals from 0.1 up, two significant digits below, "p < 0.001" below that."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2f}" if p >= 0.1 else f"p = {p:.2g}"


def _constant(d: np.ndarray, scale: float) -> bool:
    """d does not vary beyond rounding of losses of size ``scale`` (exactly, for d == 0)."""
    return float(np.ptp(d)) <= 1e-12 * scale


def _errors(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype="float64")
    if a.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D. Received shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise ValueError(f"`{name}` has {int(bad.sum())} NaN or infinite value(s), "
                         f"first at index {int(np.argmax(bad))}")
    return a
