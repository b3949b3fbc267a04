"""The one price-frame shape every source returns and the store keeps.

A frame has a tz-naive ``DatetimeIndex`` named ``Date`` (exchange-local dates for daily bars),
sorted and unique, and any of the columns Open, High, Low, Close, Volume (Close always).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from stockrnn.data import intervals
from stockrnn.errors import DataError

COLUMNS = ("Open", "High", "Low", "Close", "Volume")
PRICE_COLUMNS = ("Open", "High", "Low", "Close")


def normalize(df: pd.DataFrame, interval: str = "1d") -> pd.DataFrame:
    """Keep the OHLCV columns (as float), make the index tz-naive dates, drop all-NaN rows, sort."""
    cols = [c for c in COLUMNS if c in df.columns]
    out = df[cols].astype("float64").copy()
    idx = pd.DatetimeIndex(out.index)
    if idx.tz is not None:
        idx = idx.tz_localize(None)  # wall-clock time of the exchange: its local date
    if interval in intervals.DAILY:
        idx = idx.normalize()
    out.index = idx
    out.index.name = "Date"
    out = out.dropna(how="all")
    return out.sort_index(kind="stable")


def validate(df: pd.DataFrame, what: str) -> None:
    """Raise DataError unless ``df`` is safe to store: unique increasing dates, sane prices."""
    if "Close" not in df.columns:
        raise DataError(f"{what}: no Close column")
    if df.empty:
        raise DataError(f"{what}: no rows")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(f"{what}: index is not dates")
    dup = df.index[df.index.duplicated()]
    if len(dup):
        raise DataError(f"{what}: duplicate date {dup[0].date()} ({len(dup)} duplicates)")
    if not df.index.is_monotonic_increasing:
        raise DataError(f"{what}: dates are not in increasing order")
    if df.isna().all(axis=1).any():
        raise DataError(f"{what}: all-NaN rows")
    for col in PRICE_COLUMNS:
        if col in df.columns:
            bad = df.index[(df[col] <= 0).to_numpy()]
            if len(bad):
                raise DataError(f"{what}: {col} is not positive on {bad[0].date()} "
                                f"(value {df.loc[bad[0], col]})")
    if "Volume" in df.columns and (df["Volume"] < 0).any():
        raise DataError(f"{what}: negative Volume")
    if "High" in df.columns and "Low" in df.columns:
        bad = df.index[(df["High"] < df["Low"]).to_numpy()]
        if len(bad):
            raise DataError(f"{what}: High < Low on {bad[0].date()}")
    if not np.isfinite(df["Close"].dropna().to_numpy()).all():
        raise DataError(f"{what}: Close has infinite values")


def read_csv(path) -> pd.DataFrame:
    """A price CSV that stockrnn wrote (the store's files, a run's series.csv): Date index,
    float columns, read back exactly (pandas 2's default float parser can be off by one unit in
    the last place; ``round_trip`` is exact on every pandas)."""
    return pd.read_csv(path, index_col="Date", parse_dates=["Date"],
                       float_precision="round_trip").astype("float64")

