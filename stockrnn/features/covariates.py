"""Covariates: other tickers aligned without look-ahead, technical indicators, calendar features.

A window anchored at the target's bar ``t`` sees, for each input row ``s <= t``:

* **another ticker** (``data.covariates.tickers``): the close of that ticker's last bar that had
  *closed* by the target's close on row ``s`` (both closes from the exchange calendars, early
  closes included), as the one-bar log return of that aligned close over the target's bars
  (0 on a bar it is forward-filled). A covariate on the same exchange gives its bar of the same
  date; one that closes later on that date (SPY for a Tokyo stock) its previous bar. A target
  bar the covariate did not trade reuses its last bar, at most ``max_fill`` bars in a row
  (more is a DataError naming the ticker and dates).
* **indicators** (``data.covariates.indicators``): computed from the target's own OHLCV up to
  row ``s`` (trailing rolling windows and exponential averages, never centred); the rows before
  every indicator is defined (its warm-up) are dropped before the split.
* **calendar features** (``data.covariates.calendar``) of the day row ``s`` forecasts (row
  ``s + 1 + foresight``: known in advance), from the rows' dates and, after the last row, the
  exchange calendar's next sessions.

Indicators are vectorised pandas (rolling/ewm): five short formulas, exact and fast, without a
dependency (``ta`` and ``pandas-ta`` add many indicators we do not use, and pandas-ta is not
kept up with numpy 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from stockrnn.errors import DataError

PREFIX = "cov:"        # column of an aligned covariate close in a prepared frame and series.csv
CALENDAR_FEATURES = ("day_of_week", "month", "days_since_previous")
_NAMED = re.compile(r"^(rsi|atr|volatility|volume_z|momentum)_(\d{1,3})$")
INDICATOR_HELP = ("rsi_<n>, atr_<n>, volatility_<n>, volume_z_<n>, momentum_<n> (n = 2..250 "
                  "bars) or macd")


def column(ticker: str) -> str:
    """The frame column of a covariate ticker's aligned close: ``SPY`` -> ``cov:SPY``."""
    return PREFIX + ticker.upper()


# ---- indicators ------------------------------------------------------------------------------

def _wilder(s: pd.Series, n: int) -> pd.Series:
    return s.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()


def _rsi(f: pd.DataFrame, n: int) -> pd.Series:
    delta = f["Close"].diff()
    gain, loss = _wilder(delta.clip(lower=0), n), _wilder(-delta.clip(upper=0), n)
    moved = gain + loss
    return (gain / moved.where(moved > 0)).mask(moved == 0, 0.5)   # RSI / 100, in [0, 1]


def _atr(f: pd.DataFrame, n: int) -> pd.Series:
    prev = f["Close"].shift(1)
    tr = pd.concat([f["High"] - f["Low"], (f["High"] - prev).abs(), (f["Low"] - prev).abs()],
                   axis=1).max(axis=1, skipna=False)
    return _wilder(tr, n) / f["Close"]       # in units of the price


def _volatility(f: pd.DataFrame, n: int) -> pd.Series:
    return np.log(f["Close"]).diff().rolling(n).std()


def _volume_z(f: pd.DataFrame, n: int) -> pd.Series:
    v = np.log1p(f["Volume"])
    sd = v.rolling(n).std()
    return ((v - v.rolling(n).mean()) / sd.where(sd > 0)).fillna(0.0).where(sd.notna())


def _momentum(f: pd.DataFrame, n: int) -> pd.Series:
    return np.log(f["Close"]).diff(n)


def _macd(f: pd.DataFrame) -> pd.Series:
    c = f["Close"]
    fast = c.ewm(span=12, adjust=False, min_periods=26).mean()
    slow = c.ewm(span=26, adjust=False, min_periods=26).mean()
    return (fast - slow) / c         # MACD line (12, 26) in units of the price


#: name -> (function(frame, n), the OHLCV columns it reads)
_FUNCS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "rsi": (_rsi, ("Close",)), "atr": (_atr, ("High", "Low", "Close")),
    "volatility": (_volatility, ("Close",)), "volume_z": (_volume_z, ("Volume",)),
    "momentum": (_momentum, ("Close",)),
}


def check_indicator(name: str) -> str:
    """``name`` when it is a valid indicator, else ValueError listing the valid ones."""
    m = _NAMED.match(name)
    if name == "macd" or (m and 2 <= int(m.group(2)) <= 250):
        return name
    raise ValueError(f"unknown indicator {name!r}; valid: {INDICATOR_HELP}")


def indicator_columns(names: Sequence[str]) -> list[str]:
    """The OHLCV columns the indicators read."""
    out: list[str] = []
    for name in names:
        m = _NAMED.match(name)
        out += ["Close"] if name == "macd" else list(_FUNCS[m.group(1)][1])
    return list(dict.fromkeys(out))


def indicator(frame: pd.DataFrame, name: str) -> pd.Series:
    """One indicator over the frame's rows, NaN during its warm-up."""
    missing = [c for c in indicator_columns([name]) if c not in frame.columns]
    if missing:
        raise DataError(f"data.covariates.indicators: {name} needs the column "
                        f"{', '.join(missing)}, which the stored data lack")
    if name == "macd":
        return _macd(frame)
    m = _NAMED.match(name)
    return _FUNCS[m.group(1)][0](frame, int(m.group(2)))


def warm_up(cfg) -> int:
    """At least the first row whose inputs are all defined (for planning backtest folds; the
    dataset finds the exact row from the data)."""
    cov = cfg.data.covariates
    rows = [1 if cfg.scaling.target_transform == "log_return" or cov.tickers else 0]
    for name in cov.indicators:
        rows.append(26 if name == "macd" else int(_NAMED.match(name).group(2)) + 1)
    return max(rows)


# ---- calendar features -----------------------------------------------------------------------

def calendar_names(features: Sequence[str]) -> list[str]:
    """The input columns of the calendar features (cyclic ones as a sine/cosine pair)."""
    out = []
    for f in features:
        out += [f] if f == "days_since_previous" else [f"{f}_sin", f"{f}_cos"]
    return out


def calendar_frame(index: pd.DatetimeIndex, features: Sequence[str], foresight: int,
                   next_dates: Callable[[pd.Timestamp, int], pd.DatetimeIndex]) -> pd.DataFrame:
    """Row ``s``: the features of the date of row ``s + 1 + foresight`` (the day it forecasts);
    past the last row, of ``next_dates(last date, n)`` (the calendar's next sessions)."""
    ahead = 1 + foresight
    extra = next_dates(index[-1], ahead) if len(index) else index[:0]
    dates = index.append(pd.DatetimeIndex(extra))
    day, prev = dates[ahead:], dates[ahead - 1:-1]
    cols: dict[str, np.ndarray] = {}
    for f in features:
        if f == "days_since_previous":
            cols[f] = (day - prev).days.to_numpy(dtype="float64")
            continue
        value, period = (day.dayofweek, 7) if f == "day_of_week" else (day.month - 1, 12)
        angle = 2 * np.pi * value.to_numpy(dtype="float64") / period
        cols[f"{f}_sin"], cols[f"{f}_cos"] = np.sin(angle), np.cos(angle)
    return pd.DataFrame(cols, index=index)


# ---- the input table -------------------------------------------------------------------------

def input_table(frame: pd.DataFrame, cfg, next_dates=None) -> pd.DataFrame:
    """The raw input columns of every row, before the transform: data.features, then each
    covariate ticker's aligned close, each indicator, each calendar feature. ``next_dates``
    dates the rows after the last (default: the config's exchange calendar)."""
    d = cfg.data
    cov = d.covariates
    cols = {name: frame[name].to_numpy(dtype="float64") for name in d.features}
    for t in cov.tickers:
        cols[column(t)] = frame[column(t)].to_numpy(dtype="float64")
    for name in cov.indicators:
        cols[name] = indicator(frame, name).to_numpy(dtype="float64")
    if cov.calendar:
        if next_dates is None:
            from stockrnn.data import calendars

            cal = calendars.resolve(d.calendar, d.ticker)
            def next_dates(last, n):
                return calendars.future_dates(cal, last, n, d.interval)
        cal_cols = calendar_frame(frame.index, cov.calendar, cfg.window.foresight, next_dates)
        cols.update({name: cal_cols[name].to_numpy() for name in cal_cols.columns})
    return pd.DataFrame(cols, index=frame.index)


def frame_columns(cfg) -> list[str]:
    """The stored columns a config's inputs and target read (beside the aligned covariates)."""
    d = cfg.data
    return list(dict.fromkeys([*d.features, d.target,
                               *indicator_columns(d.covariates.indicators),
                               *(column(t) for t in d.covariates.tickers)]))


def config_key(name: str) -> str:
    """The config key an input column comes from (for error messages)."""
    if name.startswith(PREFIX):
        return "data.covariates.tickers"
    if name in ("Open", "High", "Low", "Close", "Volume"):
        return "data.features"
    if name.rsplit("_", 1)[0] in CALENDAR_FEATURES or name in CALENDAR_FEATURES:
        return "data.covariates.calendar"
    return "data.covariates.indicators"


# ---- other tickers ---------------------------------------------------------------------------

def align(target_closes: pd.DatetimeIndex, cov: pd.DataFrame, cov_closes: pd.DatetimeIndex,
          ticker: str, max_fill: int, target_dates: pd.DatetimeIndex) -> np.ndarray:
    """For each target bar, the close of the covariate's last bar that had closed by the
    target bar's close (``target_closes``, ``cov_closes``: UTC, one per bar); NaN before its
    first one. DataError when a covariate bar would serve more than ``max_fill`` + 1 target
    bars in a row (a gap, or covariate data that end too early)."""
    pos = np.searchsorted(cov_closes.asi8, target_closes.asi8, side="right") - 1
    closes = cov["Close"].to_numpy(dtype="float64")
    values = np.where(pos >= 0, closes[np.clip(pos, 0, None)], np.nan)
    have = np.flatnonzero(pos >= 0)
    if len(have):
        p = pos[have]
        starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
        lengths = np.diff(np.r_[starts, len(p)])
        worst = int(np.argmax(lengths))
        if lengths[worst] - 1 > max_fill:
            first = target_dates[have[starts[worst] + 1]]
            last = target_dates[have[starts[worst] + lengths[worst] - 1]]
            bar = cov.index[p[starts[worst]]]
            raise DataError(
                f"covariate {ticker}: no new bar for the target's bars {first.date()}.."
                f"{last.date()} ({lengths[worst] - 1} bars to forward-fill from its bar of "
                f"{bar.date()}, more than data.covariates.max_fill={max_fill}); fetch {ticker} "
                "(`stockrnn fetch --config`), or raise data.covariates.max_fill")
    return values


def attach(frame: pd.DataFrame, cfg, read: Callable[[str], pd.DataFrame]) -> pd.DataFrame:
    """``frame`` (the target's stored bars) with a ``cov:<TICKER>`` column per covariate
    ticker, aligned by close times (see the module doc); rows before every covariate has a
    closed bar are dropped. ``read(ticker)`` returns that ticker's stored bars."""
    from stockrnn.data import calendars

    d = cfg.data
    if not d.covariates.tickers:
        return frame
    if d.interval != "1d":
        raise DataError(f"data.covariates.tickers needs daily bars (data.interval 1d), "
                        f"not {d.interval}")
    target_cal = calendars.resolve(d.calendar, d.ticker)
    t_closes = calendars.closes(target_cal, frame.index)
    out = frame.copy()
    first = 0
    for t in d.covariates.tickers:
        cov = read(t)
        c_closes = calendars.closes(calendars.resolve(None, t), cov.index)
        values = align(t_closes, cov, c_closes, t, d.covariates.max_fill, frame.index)
        defined = np.flatnonzero(np.isfinite(values))
        if not len(defined):
            raise DataError(f"covariate {t}: no bar closed before the target's last bar "
                            f"{frame.index[-1].date()} (its data start {cov.index[0].date()})")
        first = max(first, int(defined[0]))
        out[column(t)] = values
    return out.iloc[first:]
