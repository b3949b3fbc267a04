"""data.sources: the registry of sources and the offline ones (the bundled sample, the seeded
synthetic series). Yahoo is in test_yahoo_source.py, CSV files in test_csvfile.py."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from stockrnn.data.sources import SOURCES, SampleSource, SyntheticSource, make_source
from stockrnn.errors import ConfigError, DataError, NoDataError


def test_synthetic_series_are_seeded_and_named():
    src = SyntheticSource()
    a, b = src.fetch("RW1", None, None, "1d"), src.fetch("rw1", None, None, "1d")
    assert a.equals(b) and len(a) == SyntheticSource.ROWS and list(a.columns) == ["Close"]
    assert not a.equals(src.fetch("RW2", None, None, "1d"))
    r = np.diff(np.log(src.fetch("AR3", None, None, "1d")["Close"].to_numpy()))
    lag1 = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert 0.3 < lag1 < 0.5  # phi 0.4
    r = np.diff(np.log(a["Close"].to_numpy()))
    assert abs(np.corrcoef(r[:-1], r[1:])[0, 1]) < 0.1
    with pytest.raises(DataError, match="RW<n>"):
        src.fetch("GOOG", None, None, "1d")


def test_synthetic_series_dates_interval_and_range():
    src = SyntheticSource()
    a = src.fetch("AR2", None, None, "1d")
    assert a.index[0] == pd.Timestamp("2015-01-05") and a.index.name == "Date"
    assert (a.index.dayofweek < 5).all() and a["Close"].iloc[0] == 100.0
    part = src.fetch("AR2", dt.date(2016, 1, 1), dt.date(2016, 1, 31), "1d")
    assert part.index[0] >= pd.Timestamp("2016-01-01") and part.index[-1] <= pd.Timestamp("2016-01-31")
    assert part.equals(a.loc["2016-01-01":"2016-01-31"])
    with pytest.raises(NoDataError, match="no rows for RW1"):
        src.fetch("RW1", dt.date(2030, 1, 1), None, "1d")
    with pytest.raises(DataError, match="synthetic series are daily"):
        src.fetch("RW1", None, None, "1wk")


def test_sample_source():
    src = SampleSource()
    assert SampleSource.tickers() == ["GOOG"]
    frame = src.fetch("goog", dt.date(2013, 1, 1), dt.date(2013, 1, 31), "1d")
    assert str(frame.index[0].date()) == "2013-01-02" and str(frame.index[-1].date()) == "2013-01-31"
    with pytest.raises(DataError, match="the bundled sample has no 'AAPL'; it has: GOOG"):
        src.fetch("AAPL", None, None, "1d")
    with pytest.raises(DataError, match="the bundled sample is daily"):
        src.fetch("GOOG", None, None, "1h")


def test_registry_names_the_valid_sources():
    assert set(SOURCES) == {"yahoo", "csv", "sample", "synthetic"}
    assert isinstance(make_source("sample"), SampleSource)
    assert isinstance(make_source("synthetic"), SyntheticSource)
    with pytest.raises(ConfigError) as info:
        make_source("bloomberg")
    assert info.value.exit_code == 2
    assert str(info.value) == f"unknown source 'bloomberg'; valid: {', '.join(SOURCES)}"
    with pytest.raises(ConfigError, match="needs a file"):
        make_source("csv")
