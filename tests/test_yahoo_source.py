"""YahooSource against a fake yfinance client (no network): shapes, errors, retries, open bars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from yfinance.exceptions import (
    YFPricesMissingError,
    YFRateLimitError,
    YFTickerMissingError,
    YFTzMissingError,
)

from stockrnn.data.sources import YahooSource, classify_error, flatten_columns
from stockrnn.errors import FetchError, NoDataError

NY = "America/New_York"
OHLCV = ["Open", "High", "Low", "Close", "Volume"]


def history_frame(start: str = "2024-03-01", n: int = 10, tz: str | None = NY,
                  seed: int = 0) -> pd.DataFrame:
    """A frame shaped like ``yf.Ticker(t).history(auto_adjust=True, actions=False)``:
    daily bars at 00:00 exchange-local time, tz-aware index named Date, float prices, int volume."""
    rng = np.random.default_rng(seed)
    idx = pd.DatetimeIndex(pd.bdate_range(start, periods=n), name="Date")
    if tz is not None:
        idx = idx.tz_localize(tz)
    close = 150 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({
        "Open": close * 0.998, "High": close * 1.012, "Low": close * 0.987, "Close": close,
        "Volume": rng.integers(1_000_000, 9_000_000, n).astype("int64"),
    }, index=idx)


def download_frame(hist: pd.DataFrame, tickers=("GOOG",), price_first: bool = True):
    """The same bars as ``yf.download`` returns them: MultiIndex (Price, Ticker) columns."""
    parts = {t: hist * (1 + k) for k, t in enumerate(tickers)}
    cols = ["Close", "High", "Low", "Open", "Volume"]  # yf.download's column order
    if price_first:
        data = {(p, t): parts[t][p] for p in cols for t in tickers}
        names = ["Price", "Ticker"]
    else:  # group_by="ticker"
        data = {(t, p): parts[t][p] for t in tickers for p in cols}
        names = ["Ticker", "Price"]
    df = pd.DataFrame(data, index=hist.index)
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=names)
    return df


class FakeYF:
    """Stands in for ``yfinance.Ticker``: ``FakeYF(...)(symbol).history(**kwargs)``.

    ``responses`` is a list consumed one call at a time: a frame is returned, an exception raised.
    The last response repeats. Every call is recorded as (symbol, kwargs).
    """

    def __init__(self, *responses):
        self.responses = list(responses)
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, symbol: str):
        fake = self

        class Ticker:
            def history(self, **kwargs):
                fake.calls.append((symbol, kwargs))
                resp = fake.responses.pop(0) if len(fake.responses) > 1 else fake.responses[0]
                if isinstance(resp, BaseException):
                    raise resp
                return resp.copy()

        return Ticker()


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fixed_now(stamp: str):
    seen = []

    def now(tz):
        seen.append(tz)
        return pd.Timestamp(stamp).tz_localize(tz)

    now.seen = seen
    return now


LATER = fixed_now("2030-01-01 12:00")  # far after any bar in these tests


def source(fake, sleep=None, now=LATER, **kw) -> YahooSource:
    return YahooSource(client=fake, sleep=Sleeps() if sleep is None else sleep, now=now, **kw)


def check_frame(df: pd.DataFrame) -> None:
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.tz is None and df.index.name == "Date"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert (df.index == df.index.normalize()).all()
    assert list(df.columns) == OHLCV
    assert all(df[c].dtype == np.float64 for c in df.columns)


# --------------------------------------------------------------------------- shapes


def test_ticker_history_shape():
    hist = history_frame()
    fake = FakeYF(hist)
    df = source(fake).fetch("GOOG", None, None, "1d")
    check_frame(df)
    assert len(df) == len(hist)
    assert df.index[-1].date() == hist.index[-1].date()
    assert df["Close"].iloc[-1] == hist["Close"].iloc[-1]
    assert df["Volume"].iloc[-1] == hist["Volume"].iloc[-1]
    assert [c[0] for c in fake.calls] == ["GOOG"]


def test_dates_are_exchange_local_not_utc():
    # Tokyo midnight is the previous day in UTC; the stored date must stay the local one.
    hist = history_frame(tz="Asia/Tokyo")
    df = source(FakeYF(hist)).fetch("7203.T", None, None, "1d")
    assert [d.date() for d in df.index] == [d.date() for d in hist.index]


@pytest.mark.parametrize("tz", [NY, None])
@pytest.mark.parametrize("price_first", [True, False])
def test_download_multiindex_shape(tz, price_first):
    hist = history_frame(tz=tz)
    raw = download_frame(hist, ("GOOG",), price_first)
    df = source(FakeYF(raw)).fetch("GOOG", None, None, "1d")
    check_frame(df)
    assert len(df) == len(hist)
    assert df.index[-1].date() == hist.index[-1].date()
    assert df["Close"].iloc[-1] == hist["Close"].iloc[-1]
    assert df["Open"].tolist() == hist["Open"].tolist()


def test_download_multiindex_picks_the_asked_ticker():
    hist = history_frame()
    raw = download_frame(hist, ("AAPL", "GOOG", "MSFT"))
    df = source(FakeYF(raw)).fetch("GOOG", None, None, "1d")
    # download_frame scales the k-th ticker by (1 + k): GOOG is k=1
    assert df["Close"].tolist() == pytest.approx((hist["Close"] * 2).tolist())


def test_flatten_columns_rejects_unknown_multiindex():
    df = pd.DataFrame([[1.0, 2.0]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("c", "d")]))
    with pytest.raises(FetchError, match="unexpected columns"):
        flatten_columns(df, "GOOG")


def test_all_nan_rows_are_dropped():
    hist = history_frame(n=8).astype({"Volume": "float64"})
    hist.iloc[[2, 5]] = np.nan
    hist.iloc[6, hist.columns.get_loc("Open")] = np.nan  # a partly missing row is kept
    df = source(FakeYF(hist)).fetch("GOOG", None, None, "1d")
    check_frame(df)
    assert len(df) == len(hist) - 2
    assert hist.index[2].date() not in {d.date() for d in df.index}
    assert np.isnan(df.loc[pd.Timestamp(hist.index[6].date()), "Open"])
    assert df["Close"].iloc[-1] == hist["Close"].iloc[-1]


def test_only_nan_rows_is_no_data():
    hist = history_frame(n=3).astype("float64")
    hist.iloc[:] = np.nan
    with pytest.raises(NoDataError, match="no data for GOOG"):
        source(FakeYF(hist)).fetch("GOOG", None, None, "1d")


def test_empty_frame_is_no_data():
    from yfinance.utils import empty_df  # what yfinance returns when it has nothing

    fake = FakeYF(empty_df())
    sleeps = Sleeps()
    with pytest.raises(NoDataError, match="no data for ZZZZ") as err:
        source(fake, sleep=sleeps).fetch("ZZZZ", dt.date(2024, 1, 1), None, "1d")
    assert "2024-01-01" in str(err.value)
    assert len(fake.calls) == 1 and sleeps == []


# --------------------------------------------------------------------------- request arguments


def test_history_kwargs_full_history():
    fake = FakeYF(history_frame())
    source(fake).fetch("GOOG", None, None, "1d")
    (symbol, kwargs), = fake.calls
    assert symbol == "GOOG"
    assert kwargs["auto_adjust"] is True
    assert kwargs["period"] == "max"
    assert kwargs["interval"] == "1d"
    assert "start" not in kwargs and "end" not in kwargs


def test_history_kwargs_end_is_exclusive():
    fake = FakeYF(history_frame())
    source(fake).fetch("GOOG", dt.date(2024, 2, 27), dt.date(2024, 2, 29), "1d")
    kwargs = fake.calls[0][1]
    assert kwargs["auto_adjust"] is True
    assert kwargs["start"] == "2024-02-27"
    assert kwargs["end"] == "2024-03-01"  # inclusive 2024-02-29 (leap day) + 1 day
    assert "period" not in kwargs  # yfinance rejects period together with start and end


def test_history_kwargs_end_only_still_asks_for_all_history():
    # yfinance fetches only one month before ``end`` when it gets end without start or period
    fake = FakeYF(history_frame())
    source(fake).fetch("GOOG", None, dt.date(2024, 12, 31), "1wk")
    kwargs = fake.calls[0][1]
    assert kwargs["end"] == "2025-01-01"
    assert kwargs["period"] == "max"
    assert kwargs["interval"] == "1wk"
    assert "start" not in kwargs


def test_inclusive_end_with_a_yahoo_like_client():
    """A client that filters like Yahoo (start inclusive, end exclusive) returns the end bar."""
    hist = history_frame(n=20)

    class Ticker:
        def __init__(self, symbol):
            pass

        def history(self, start=None, end=None, **kwargs):
            df = hist
            if start is not None:
                df = df[df.index >= pd.Timestamp(start).tz_localize(NY)]
            if end is not None:
                df = df[df.index < pd.Timestamp(end).tz_localize(NY)]
            return df.copy()

    first, last = hist.index[3].date(), hist.index[9].date()
    df = source(Ticker).fetch("GOOG", first, last, "1d")
    assert df.index[0].date() == first and df.index[-1].date() == last
    assert len(df) == 7


# --------------------------------------------------------------------------- retries


def test_rate_limit_retried_with_backoff_then_succeeds():
    hist = history_frame()
    fake = FakeYF(YFRateLimitError(), YFRateLimitError(), YFRateLimitError(), hist)
    sleeps = Sleeps()
    df = source(fake, sleep=sleeps, backoff=1.5).fetch("GOOG", None, None, "1d")
    assert sleeps == [1.5, 3.0, 6.0]
    assert len(fake.calls) == 4
    assert df["Close"].iloc[-1] == hist["Close"].iloc[-1]


def test_rate_limit_backoff_is_capped_and_gives_up():
    fake = FakeYF(YFRateLimitError())
    sleeps = Sleeps()
    src = source(fake, sleep=sleeps, retries=6, backoff=2.0, max_backoff=10.0)
    with pytest.raises(FetchError) as err:
        src.fetch("GOOG", None, None, "1d")
    assert not isinstance(err.value, NoDataError)
    assert sleeps == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert len(fake.calls) == 7
    msg = str(err.value)
    assert "rate limit" in msg.lower() and "GOOG" in msg and "7 attempts" in msg
    assert isinstance(err.value.__cause__, YFRateLimitError)


def test_too_many_requests_text_counts_as_rate_limit():
    class HTTPError(Exception):
        pass

    fake = FakeYF(HTTPError("429 Client Error: Too Many Requests"))
    sleeps = Sleeps()
    with pytest.raises(FetchError, match="rate limit"):
        source(fake, sleep=sleeps, retries=2).fetch("GOOG", None, None, "1d")
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize("exc", [ConnectionError("Connection reset by peer"),
                                 TimeoutError("read timed out")])
def test_network_error_retried_then_fetch_error(exc):
    fake = FakeYF(exc)
    sleeps = Sleeps()
    with pytest.raises(FetchError) as err:
        source(fake, sleep=sleeps, retries=3, backoff=0.5).fetch("GOOG", None, None, "1d")
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(fake.calls) == 4
    assert "network error" in str(err.value) and str(exc) in str(err.value)
    assert not isinstance(err.value, NoDataError)


def test_network_error_then_recovery():
    hist = history_frame()
    fake = FakeYF(ConnectionError("reset"), hist)
    sleeps = Sleeps()
    df = source(fake, sleep=sleeps).fetch("GOOG", None, None, "1d")
    assert sleeps == [1.0] and len(df) == len(hist)


def test_http_library_errors_are_network_errors():
    err = type("ConnectionError", (Exception,), {"__module__": "curl_cffi.requests.exceptions"})
    assert classify_error(err("curl: (6) Could not resolve host")) == "network"
    req = type("ReadTimeout", (Exception,), {"__module__": "requests.exceptions"})
    assert classify_error(req("timed out")) == "network"


@pytest.mark.parametrize("exc", [
    YFTickerMissingError("NOPE", "no price data found"),
    YFPricesMissingError("NOPE", ""),
    type("YFTickerMissingError", (Exception,), {})("$NOPE: possibly delisted"),
])
def test_missing_ticker_is_no_data_without_retries(exc):
    fake = FakeYF(exc)
    sleeps = Sleeps()
    with pytest.raises(NoDataError, match="no data for NOPE") as err:
        source(fake, sleep=sleeps).fetch("NOPE", None, None, "1d")
    assert len(fake.calls) == 1 and sleeps == []
    assert err.value.__cause__ is exc


def test_tz_missing_hints_at_unreachable_yahoo():
    fake = FakeYF(YFTzMissingError("GOOG"))
    with pytest.raises(NoDataError, match="unreachable"):
        source(fake).fetch("GOOG", None, None, "1d")
    assert len(fake.calls) == 1


def test_unexpected_error_is_fetch_error_without_retries():
    fake = FakeYF(KeyError("chart"))
    sleeps = Sleeps()
    with pytest.raises(FetchError, match="KeyError") as err:
        source(fake, sleep=sleeps).fetch("GOOG", None, None, "1d")
    assert not isinstance(err.value, NoDataError)
    assert len(fake.calls) == 1 and sleeps == []


# --------------------------------------------------------------------------- today's open bar


@pytest.mark.parametrize("tz", [NY, None])
def test_todays_open_bar_is_dropped(tz):
    hist = history_frame(start="2024-03-11", n=5, tz=tz)  # Mon..Fri, last bar 2024-03-15
    now = fixed_now("2024-03-15 10:30")
    df = source(FakeYF(download_frame(hist) if tz is None else hist), now=now).fetch(
        "GOOG", None, None, "1d")
    assert len(df) == 4
    assert df.index[-1].date() == dt.date(2024, 3, 14)
    assert df["Close"].iloc[-1] == hist["Close"].iloc[-2]
    assert str(now.seen[0]) == NY  # "now" is asked in the exchange's time zone


@pytest.mark.parametrize("stamp", ["2024-03-15 17:05", "2024-03-16 09:00"])
def test_closed_bar_is_kept(stamp):
    hist = history_frame(start="2024-03-11", n=5)
    df = source(FakeYF(hist), now=fixed_now(stamp)).fetch("GOOG", None, None, "1d")
    assert len(df) == 5 and df.index[-1].date() == dt.date(2024, 3, 15)


def test_open_bar_uses_exchange_local_clock():
    # 10:00 in Tokyo on the 15th is still the 14th in New York: the Tokyo bar of the 15th is open.
    hist = history_frame(start="2024-03-11", n=5, tz="Asia/Tokyo")
    now = fixed_now("2024-03-15 10:00")
    df = source(FakeYF(hist), now=now).fetch("7203.T", None, None, "1d")
    assert df.index[-1].date() == dt.date(2024, 3, 14)
    assert str(now.seen[0]) == "Asia/Tokyo"


def test_only_the_open_bar_is_no_data():
    hist = history_frame(start="2024-03-15", n=1)
    with pytest.raises(NoDataError, match="no data for GOOG"):
        source(FakeYF(hist), now=fixed_now("2024-03-15 11:00")).fetch(
            "GOOG", dt.date(2024, 3, 15), None, "1d")
