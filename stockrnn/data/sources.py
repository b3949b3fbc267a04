"""Where prices come from: a registry of sources behind one small interface.

    source = make_source("yahoo" | "csv" | "sample", ...)
    frame = source.fetch(ticker, start, end, interval)   # normalized frame, see ``frames``

``start`` and ``end`` are inclusive dates (or None). Sources raise FetchError/NoDataError/DataError.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from stockrnn.data import calendars
from stockrnn.data.csvfile import read_price_csv
from stockrnn.data.frames import COLUMNS, normalize
from stockrnn.errors import ConfigError, DataError, FetchError, NoDataError, TickerMissingError

log = logging.getLogger(__name__)
SAMPLE_DIR = Path(__file__).parent / "sample"


class Source(Protocol):
    name: str
    #: True when asking for a later ``start`` is cheaper than the whole history (incremental fetch).
    incremental: bool

    def fetch(self, ticker: str, start: dt.date | None, end: dt.date | None,
              interval: str) -> pd.DataFrame: ...


def clip(df: pd.DataFrame, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    if start is not None:
        df = df[df.index >= pd.Timestamp(start)]
    if end is not None:
        df = df[df.index < pd.Timestamp(end) + pd.Timedelta(days=1)]
    return df


class CsvSource:
    """A local CSV file (see ``csvfile`` for the shapes it reads)."""

    name = "csv"
    incremental = False

    def __init__(self, path: str | Path, column: str | None = None):
        self.path = Path(path)
        self.column = column

    def fetch(self, ticker, start, end, interval):
        df = clip(read_price_csv(self.path, ticker, self.column, interval), start, end)
        if df.empty:
            raise NoDataError(f"no rows for {ticker} in {self.path} between {start} and {end}")
        return df


class SampleSource(CsvSource):
    """The bundled offline data set (daily GOOG, 2004-08-19 to 2013-03-01)."""

    name = "sample"

    def __init__(self, column: str | None = None):
        super().__init__(SAMPLE_DIR / "GOOG.csv", column)

    @staticmethod
    def tickers() -> list[str]:
        return sorted(p.stem for p in SAMPLE_DIR.glob("*.csv"))

    def fetch(self, ticker, start, end, interval):
        if ticker.upper() not in self.tickers():
            raise DataError(f"the bundled sample has no {ticker!r}; it has: "
                            f"{', '.join(self.tickers())}")
        if interval != "1d":
            raise DataError(f"the bundled sample is daily; asked for interval {interval!r}")
        self.path = SAMPLE_DIR / f"{ticker.upper()}.csv"
        return super().fetch(None, start, end, interval)


class YahooSource:
    """Yahoo Finance through yfinance, with retries on rate limits and network errors.

    ``client`` maps a ticker to an object with ``history(**kwargs)`` (default ``yfinance.Ticker``);
    tests inject a fake here. Prices are stored adjusted (``auto_adjust=True``).
    """

    name = "yahoo"
    incremental = True

    def __init__(self, cache_dir: str | Path | None = None,
                 client: Callable[[str], Any] | None = None, retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[Any], pd.Timestamp] | None = None,
                 calendar: str | None = None):
        self.calendar = calendar   # data.calendar (None: from each ticker)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._client = client
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._now = now or (lambda tz: pd.Timestamp.now(tz=tz))

    def _ticker(self, symbol: str):
        if self._client is not None:
            return self._client(symbol)
        import yfinance as yf

        if self.cache_dir is not None:  # cron and read-only homes: keep yfinance's cache with the data
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            yf.set_tz_cache_location(str(self.cache_dir))
            if hasattr(yf, "cache") and hasattr(yf.cache, "set_cache_location"):
                yf.cache.set_cache_location(str(self.cache_dir))
        return yf.Ticker(symbol)

    def fetch(self, ticker, start, end, interval):
        kwargs = dict(interval=interval, auto_adjust=True, actions=False, raise_errors=True)
        if start is not None:
            kwargs["start"] = pd.Timestamp(start).strftime("%Y-%m-%d")
        if end is not None:  # yfinance's end is exclusive, ours inclusive
            kwargs["end"] = (pd.Timestamp(end) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        if start is None:  # with end alone (no period) yfinance fetches only the month before it
            kwargs["period"] = "max"
        raw = self._history_with_retries(ticker, kwargs)
        if raw is None or len(raw) == 0:
            raise NoDataError(f"no data for {ticker} from Yahoo Finance "
                              f"(unknown or delisted ticker, or nothing in {start}..{end})")
        df = flatten_columns(raw, ticker)
        df = self._drop_open_bar(df, interval, calendars.resolve(self.calendar, ticker))
        df = normalize(df, interval)
        if df.empty:
            raise NoDataError(f"no data for {ticker} from Yahoo Finance (only empty rows)")
        return df

    def _history_with_retries(self, ticker: str, kwargs: dict):
        delay = self.backoff
        troubled = False  # a network or rate-limit failure earlier in this call
        for attempt in range(self.retries + 1):
            try:
                return self._ticker(ticker).history(**kwargs)
            except Exception as exc:  # yfinance raises many kinds; classify them
                kind = classify_error(exc)
                tz_missing = type(exc).__name__ == "YFTzMissingError"
                if kind == "missing" and tz_missing and troubled:
                    # yfinance reports "no timezone found" when its own request failed: after
                    # a network error in this call, that is the network again, not the ticker
                    kind = "network"
                if kind == "missing":
                    hint = " (or Yahoo Finance is unreachable from here)" if tz_missing else ""
                    # no prices in the range asked (a weekend) is an empty answer; no timezone
                    # or no ticker at all says nothing about new bars of a stored ticker
                    error = (NoDataError if type(exc).__name__ == "YFPricesMissingError"
                             else TickerMissingError)
                    raise error(f"no data for {ticker} from Yahoo Finance{hint}: "
                                f"{exc}") from exc
                troubled = True
                if kind == "other":
                    raise FetchError(f"Yahoo Finance failed for {ticker}: "
                                     f"{type(exc).__name__}: {exc}") from exc
                if attempt == self.retries:
                    what = "rate limited (HTTP 429)" if kind == "rate" else "network error"
                    raise FetchError(f"Yahoo Finance {what} for {ticker} after "
                                     f"{self.retries + 1} attempts: {exc}") from exc
                log.warning("%s: %s (%s), retrying in %.0fs", ticker, kind, exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    def _drop_open_bar(self, df: pd.DataFrame, interval: str, calendar: str) -> pd.DataFrame:
        """Drop today's daily bar while its session is still open: before the calendar's close
        of that day (early closes included), or before 17:00 local on a day that the calendar
        has no session."""
        if interval != "1d" or df.empty:
            return df
        idx = pd.DatetimeIndex(df.index)
        tz = idx.tz or calendars.timezone(calendar)
        now = self._now(tz)
        last = idx[-1] if idx.tz is not None else idx[-1].tz_localize(tz)
        if last.date() != now.date():
            return df
        close = calendars.session_close(calendar, last.date())
        still_open = now.hour < 17 if close is None else now < close
        if still_open:
            log.info("dropping today's still-open bar %s (%s closes at %s)", last.date(),
                     calendar, "17:00 local" if close is None else f"{close:%H:%M %Z}")
            return df.iloc[:-1]
        return df


def classify_error(exc: BaseException) -> str:
    """'rate' | 'network' | 'missing' | 'other' for an exception from yfinance or its HTTP stack."""
    name = type(exc).__name__
    text = str(exc)
    if name == "YFRateLimitError" or "Too Many Requests" in text or "429" in text:
        return "rate"
    if "Missing" in name or "delisted" in text.lower() or "no data found" in text.lower():
        return "missing"
    module = type(exc).__module__ or ""
    if (isinstance(exc, (ConnectionError, TimeoutError, OSError))
            or module.split(".")[0] in ("requests", "urllib3", "curl_cffi", "http")):
        return "network"
    return "other"


def flatten_columns(df: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """Turn yfinance's (Price, Ticker) MultiIndex columns into plain OHLCV columns."""
    if not isinstance(df.columns, pd.MultiIndex):
        return df
    for level in range(df.columns.nlevels):
        if "Close" in df.columns.get_level_values(level):
            other = [lv for lv in range(df.columns.nlevels) if lv != level]
            if other:
                tickers = df.columns.get_level_values(other[0])
                pick = ticker if ticker in tickers else tickers[0]
                df = df.xs(pick, axis=1, level=other[0])
            return df
    raise FetchError(f"unexpected columns from Yahoo Finance for {ticker}: {list(df.columns)[:6]}")


class SyntheticSource:
    """Seeded synthetic daily series, offline: ``RW<n>`` is a driftless Gaussian random walk of
    log prices, ``AR<n>`` has AR(1) log returns (phi 0.4); ``n`` is the seed. ``LEAD<n>`` and
    ``FOLLOW<n>`` are a pair where one leads the other: LEAD<n> is a random walk, and
    FOLLOW<n>'s log return on day t is 0.5 x LEAD<n>'s of day t-1 plus noise (sd 0.6%), so its
    own past tells nothing and LEAD<n> as a covariate does. 1,500 business days from
    2015-01-05, starting at 100, daily log-return sd 1%. For demos and tests only."""

    name = "synthetic"
    incremental = False
    ROWS, PHI, SIGMA = 1500, 0.4, 0.01
    BETA, NOISE = 0.5, 0.006
    _PATTERN = re.compile(r"^(RW|AR|LEAD|FOLLOW)(\d{1,6})$")

    def fetch(self, ticker, start, end, interval):
        import numpy as np

        m = self._PATTERN.match(ticker.upper())
        if m is None:
            raise DataError(f"the synthetic source has no {ticker!r}: use RW<n> (random walk), "
                            "AR<n> (AR(1) log returns) or the pair LEAD<n>/FOLLOW<n>, n = "
                            "seed, e.g. RW1, AR2, FOLLOW3")
        if interval != "1d":
            raise DataError(f"synthetic series are daily; asked for interval {interval!r}")
        kind, seed = m.group(1), int(m.group(2))
        rng = np.random.default_rng(seed)
        eps = rng.normal(0.0, self.SIGMA, self.ROWS - 1)
        if kind == "AR":
            r = np.empty_like(eps)
            r[0] = eps[0] / np.sqrt(1 - self.PHI ** 2)
            for t in range(1, len(eps)):
                r[t] = self.PHI * r[t - 1] + eps[t]
            eps = r
        elif kind == "FOLLOW":
            noise = np.random.default_rng([seed, 1]).normal(0.0, self.NOISE, len(eps))
            eps = np.concatenate([[0.0], self.BETA * eps[:-1]]) + noise
        close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(eps)]))
        idx = pd.bdate_range("2015-01-05", periods=self.ROWS, name="Date")
        df = clip(pd.DataFrame({"Close": close.round(6)}, index=idx), start, end)
        if df.empty:
            raise NoDataError(f"no rows for {ticker} between {start} and {end}")
        return df


def _csv(csv_path, column, cache_dir, calendar) -> Source:
    if csv_path is None:
        raise ConfigError("the csv source needs a file: pass --csv PATH (or data.path)")
    return CsvSource(csv_path, column)


# name -> factory(csv_path, column, cache_dir, calendar)
REGISTRY: dict[str, Callable[..., Source]] = {
    "yahoo": lambda csv_path, column, cache_dir, calendar: YahooSource(cache_dir=cache_dir,
                                                                       calendar=calendar),
    "csv": _csv,
    "sample": lambda csv_path, column, cache_dir, calendar: SampleSource(column),
    "synthetic": lambda csv_path, column, cache_dir, calendar: SyntheticSource(),
}
SOURCES = tuple(REGISTRY)


def make_source(name: str, *, csv_path: str | Path | None = None, column: str | None = None,
                cache_dir: str | Path | None = None, calendar: str | None = None) -> Source:
    """The source ``name``; ``calendar`` (data.calendar, None: from each ticker) tells the
    yahoo source when today's bar closes."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown source {name!r}; valid: {', '.join(SOURCES)}")
    return REGISTRY[name](csv_path, column, cache_dir, calendar)


__all__ = ["COLUMNS", "SOURCES", "CsvSource", "SampleSource", "Source",
           "SyntheticSource",
           "YahooSource", "classify_error", "flatten_columns", "make_source"]
