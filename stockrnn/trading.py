"""What one-step-ahead forecasts would have earned: a sign strategy, costs, and its statistics.

Pure numpy, no keras. Inputs are arrays over the test points in time order, one period each:
``last`` (the close at the forecast origin), ``forecast`` (the forecast of the next close) and
``actual`` (that next close). Period t runs from the origin's close to the next close; the periods
should be consecutive bars, since returns are compounded across them.

Positions (decided at the origin from the forecast alone, so never from ``actual``: no look-ahead)::

    signal_t   = ln(forecast_t / last_t)
    position_t = +1   if signal_t >  threshold
                 -1   if signal_t < -threshold and short=True
                  0   otherwise                        (threshold >= 0, default 0)

Returns (simple, not log) and costs::

    asset_t    = actual_t / last_t - 1
    gross_t    = position_t · asset_t
    turnover_t = |position_t - position_{t-1}|,  position_{-1} = 0   (entering counts; a flip
                                                                       from +1 to -1 counts 2)
    cost_t     = turnover_t · cost_bps / 10_000                       (default 5 bps)
    net_t      = gross_t - cost_t

The position still held after the last period is not closed, so no exit cost is charged.
Buy-and-hold is position 1 throughout: one entry cost in the first period, none after.

Statistics of a return series r_1..r_n (:func:`performance`; ``ppy`` = periods per year)::

    equity_t          = Π_{s<=t} (1 + r_s)        (growth of 1, after period t)
    total_return      = equity_n - 1
    annual_return     = (1 + total_return) ** (ppy / n) - 1     (-1.0 if equity_n <= 0)
    annual_volatility = std(r, ddof=1) · sqrt(ppy)
    sharpe            = mean(r) / std(r, ddof=1) · sqrt(ppy)    (risk-free rate 0)
    max_drawdown      = min_t (equity_t / max(1, max_{s<=t} equity_s) - 1)   (<= 0; -0.23 = 23%
                                                                  below the running peak)
    turnover          = Σ turnover_t              (total position change over the test; the
                                                   costs paid are turnover · cost_bps / 10_000)
    exposure          = share of periods with position != 0
    periods           = n

``annual_volatility`` and ``sharpe`` are ``None`` with fewer than two periods; ``sharpe`` is also
``None`` when the returns do not vary (std 0). Every statistic is a plain float or ``None``, never
NaN, so the dicts go straight to JSON.

Periods per year for a bar interval (:func:`periods_per_year`) come from
:mod:`stockrnn.data.intervals`: 252 sessions a year for 1d, 252/5 for 5d, 52 for 1wk, 12 for 1mo,
4 for 3mo, and for intraday bars the 6.5-hour US regular session, 252 · 6.5 · 60 / minutes
(1h: 1638).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["buy_and_hold", "evaluate_strategy", "performance", "periods_per_year", "positions"]


def periods_per_year(interval: str) -> float:
    """Bars a year for a data interval name (1d -> 252, 1wk -> 52, 1h -> 1638, ...)."""
    from stockrnn.data import intervals

    return float(intervals.get(interval).per_year)


def positions(last, forecast, threshold: float = 0.0, short: bool = False) -> np.ndarray:
    """+1 / 0 (/ -1 with ``short``) per period from the forecast log return against ``threshold``."""
    last, forecast = _prices(last=last, forecast=forecast)
    if not threshold >= 0:
        raise ValueError(f"`threshold` must be >= 0. Received: threshold={threshold!r}")
    signal = np.log(forecast / last)
    pos = np.where(signal > threshold, 1, 0)
    if short:
        pos = np.where(signal < -threshold, -1, pos)
    return pos.astype("int64")


def performance(returns, positions, turnover, periods_per_year: float) -> dict:
    """Total and annual return, volatility, Sharpe, max drawdown, turnover, exposure, periods."""
    r = np.asarray(returns, dtype="float64")
    n = len(r)
    if n == 0:
        raise ValueError("need at least one period to measure performance")
    if not periods_per_year > 0:
        raise ValueError(f"`periods_per_year` must be > 0. Received: {periods_per_year!r}")
    equity = np.cumprod(1.0 + r)
    growth = float(equity[-1])
    std = None
    if n >= 2:
        std = 0.0 if np.ptp(r) == 0 else float(np.std(r, ddof=1))
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    ann = math.sqrt(periods_per_year)
    return {
        "total_return": growth - 1.0,
        "annual_return": growth ** (periods_per_year / n) - 1.0 if growth > 0 else -1.0,
        "annual_volatility": None if std is None else std * ann,
        "sharpe": float(r.mean()) / std * ann if std else None,
        "max_drawdown": min(0.0, float(np.min(equity / peak - 1.0))),
        "turnover": float(np.sum(turnover)),
        "exposure": float(np.mean(np.asarray(positions) != 0)),
        "periods": n,
    }


def evaluate_strategy(last, forecast, actual, threshold: float = 0.0, short: bool = False,
                      cost_bps: float = 5.0, periods_per_year: float = 252) -> dict:
    """Trade the sign of each forecast; gross and net statistics plus the series behind them.

    Returns ``{"gross": stats, "net": stats, "costs": float, "positions", "turnover",
    "returns_gross", "returns_net", "equity_gross", "equity_net"}``; the stats are
    :func:`performance` dicts, ``costs`` the sum of the per-period costs, the rest numpy arrays
    aligned with the input points (equity after each period, for plots).
    """
    last, forecast, actual = _prices(last=last, forecast=forecast, actual=actual)
    pos = positions(last, forecast, threshold, short)
    return _simulate(last, actual, pos, cost_bps, periods_per_year)


def buy_and_hold(last, actual, periods_per_year: float = 252, cost_bps: float = 5.0) -> dict:
    """Position 1 throughout (one entry cost); same shape as :func:`evaluate_strategy`."""
    last, actual = _prices(last=last, actual=actual)
    return _simulate(last, actual, np.ones(len(last), dtype="int64"), cost_bps, periods_per_year)


def _simulate(last: np.ndarray, actual: np.ndarray, pos: np.ndarray, cost_bps: float,
              periods_per_year: float) -> dict:
    if not cost_bps >= 0:
        raise ValueError(f"`cost_bps` must be >= 0. Received: cost_bps={cost_bps!r}")
    asset = actual / last - 1.0
    turnover = np.abs(np.diff(pos, prepend=0)).astype("float64")
    cost = turnover * (cost_bps / 1e4)
    gross = pos * asset
    net = gross - cost
    return {
        "gross": performance(gross, pos, turnover, periods_per_year),
        "net": performance(net, pos, turnover, periods_per_year),
        "costs": float(cost.sum()),
        "positions": pos,
        "turnover": turnover,
        "returns_gross": gross,
        "returns_net": net,
        "equity_gross": np.cumprod(1.0 + gross),
        "equity_net": np.cumprod(1.0 + net),
    }


def _prices(**arrays) -> tuple[np.ndarray, ...]:
    """Validate equally long, non-empty, 1-D, finite, positive price arrays."""
    out = []
    for name, x in arrays.items():
        a = np.asarray(x, dtype="float64")
        if a.ndim != 1 or len(a) == 0:
            raise ValueError(f"`{name}` must be a non-empty 1-D array. Received shape {a.shape}")
        bad = ~(np.isfinite(a) & (a > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"`{name}` must hold finite prices > 0; {int(bad.sum())} do not, "
                             f"first at index {i}: {float(a[i])}")
        out.append(a)
    lengths = {name: len(a) for name, a in zip(arrays, out, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"price arrays must have the same length. Received: {lengths}")
    return tuple(out)
