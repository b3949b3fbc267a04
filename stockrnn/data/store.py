"""The on-disk price store: one CSV per ticker and interval, plus a JSON sidecar.

    data/GOOG_1d.csv    Date,Open,High,Low,Close,Volume
    data/GOOG_1d.json   {"ticker", "interval", "source", "first", "last", "rows", "fetched_at"}

Every write is validated first and atomic; writers hold ``data/.stockrnn.lock``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import pandas as pd

from stockrnn import atomic, locking, tickers
from stockrnn.config import data_dir
from stockrnn.data import calendars, frames, intervals
from stockrnn.data.frames import validate
from stockrnn.data.sources import Source
from stockrnn.errors import ConfigError, DataError, NoDataError, TickerMissingError

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class UpdateResult:
    ticker: str
    interval: str
    added: int
    rows: int
    first: dt.date
    last: dt.date
    path: Path
    up_to_date: bool = False
    refetched: bool = False

    def line(self) -> str:
        if self.up_to_date:
            return (f"{self.ticker} {self.interval}: up to date ({self.rows} rows, "
                    f"{self.first}..{self.last}) {self.path}")
        extra = " (full refetch: adjusted prices changed)" if self.refetched else ""
        return (f"{self.ticker} {self.interval}: {self.added:+d} rows, {self.rows} rows "
                f"{self.first}..{self.last} -> {self.path}{extra}")


class Store:
    def __init__(self, data_dir_: str | Path | None = None):
        self.dir = data_dir(data_dir_)

    @property
    def lock_path(self) -> Path:
        return self.dir / ".stockrnn.lock"

    @property
    def cache_dir(self) -> Path:
        return self.dir / ".yfinance-cache"

    def path(self, ticker: str, interval: str = "1d") -> Path:
        try:
            return self.dir / f"{tickers.file_part(ticker)}_{interval}.csv"
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def meta_path(self, ticker: str, interval: str = "1d") -> Path:
        return self.path(ticker, interval).with_suffix(".json")

    def exists(self, ticker: str, interval: str = "1d") -> bool:
        return self.path(ticker, interval).is_file()

    def read(self, ticker: str, interval: str = "1d") -> pd.DataFrame:
        path = self.path(ticker, interval)
        if not path.is_file():
            raise DataError(f"no stored data for {ticker} ({interval}) in {self.dir}/: "
                            f"run `stockrnn fetch {ticker}` first")
        try:
            df = frames.read_csv(path)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: stored file is unreadable ({exc}); "
                            "refetch with `stockrnn fetch --full`") from None
        validate(df, str(path))
        return df

    def meta(self, ticker: str, interval: str = "1d") -> dict:
        try:
            return json.loads(self.meta_path(ticker, interval).read_text())
        except (OSError, ValueError):
            return {}

    def write(self, ticker: str, interval: str, df: pd.DataFrame, source: str) -> Path:
        """Validate and atomically write ``df`` and its sidecar. Caller holds the lock."""
        path = self.path(ticker, interval)
        validate(df, f"{ticker} ({interval})")
        sidecar = json.dumps(_describe(ticker, interval, df, source), indent=2) + "\n"
        # Both temp files are written before either is renamed (a full disk changes nothing);
        # the CSV goes first, and a sidecar left stale by a kill in between is rewritten by
        # the next update (see _sync_sidecar).
        atomic.write_all([
            (path, lambda tmp: df.to_csv(tmp, index_label="Date")),
            (self.meta_path(ticker, interval), lambda tmp: tmp.write_bytes(sidecar.encode())),
        ])
        return path

    def _sync_sidecar(self, ticker: str, interval: str, df: pd.DataFrame) -> None:
        """Rewrite the sidecar when it does not describe the stored CSV. Caller holds the lock."""
        meta = self.meta(ticker, interval)
        want = _describe(ticker, interval, df, meta.get("source", "unknown"))
        if any(meta.get(k) != want[k] for k in ("ticker", "interval", "first", "last", "rows")):
            log.warning("%s: the sidecar did not match the stored prices; rewritten",
                        self.meta_path(ticker, interval))
            atomic.write_json(self.meta_path(ticker, interval),
                              {**want, "fetched_at": meta.get("fetched_at", want["fetched_at"])})

    def update(self, source: Source, ticker: str, interval: str = "1d",
               start: dt.date | None = None, end: dt.date | None = None,
               full: bool = False, wait: float = 0.0,
               calendar: str | None = None) -> UpdateResult:
        """Fetch ``ticker`` and merge it into the store (incrementally unless ``full``).
        ``calendar`` (data.calendar; None: from the ticker) is what the gap rule counts."""
        with locking.hold(self.lock_path, wait):
            old = None if full or not self.exists(ticker, interval) else self.read(ticker, interval)
            if old is None:
                new = source.fetch(ticker, start, end, interval)
                return self._result(ticker, interval, new, source, added=len(new))
            fetch_start = old.index[-1].date() if source.incremental else start
            try:
                new = source.fetch(ticker, fetch_start, end, interval)
            except NoDataError as exc:
                if not source.incremental or isinstance(exc, TickerMissingError):
                    raise  # only an empty answer means "nothing new"
                new = old.iloc[0:0]
            if _adjustment_changed(old, new):
                log.warning("%s: stored prices differ from the source on overlapping bars "
                            "(dividend or split adjustment): refetching the full history", ticker)
                new = source.fetch(ticker, start, end, interval)
                return self._result(ticker, interval, new, source, added=len(new) - len(old),
                                    refetched=True)
            _check_no_gap(ticker, old, new, interval, calendars.resolve(calendar, ticker))
            # a merge never drops stored rows (--start/--end narrow what is read, not the store;
            # --full replaces it)
            merged = pd.concat([old, new])
            merged = merged[~merged.index.duplicated(keep="last")].sort_index()
            added = len(merged) - len(old)
            if added == 0 and merged.equals(old):
                self._sync_sidecar(ticker, interval, old)
                return UpdateResult(ticker.upper(), interval, 0, len(old), old.index[0].date(),
                                    old.index[-1].date(), self.path(ticker, interval),
                                    up_to_date=True)
            return self._result(ticker, interval, merged, source, added=added)

    def _result(self, ticker, interval, df, source, added, refetched=False) -> UpdateResult:
        path = self.write(ticker, interval, df, source.name)
        return UpdateResult(ticker.upper(), interval, added, len(df), df.index[0].date(),
                            df.index[-1].date(), path, refetched=refetched)


MAX_GAP = pd.Timedelta(days=7)  # multi-session bars (5d, 1wk, ...): slack beyond one bar


def _check_no_gap(ticker: str, old: pd.DataFrame, new: pd.DataFrame, interval: str,
                  calendar: str) -> None:
    """New rows that neither overlap nor adjoin the stored ones would leave a hole in the
    history (windows would then span it as if it were one bar). Daily and intraday bars adjoin
    when no session of ``calendar`` lies between them (a holiday or a weekend is no gap);
    longer bars when they are at most one bar plus MAX_GAP apart."""
    if new.empty:
        return
    pairs = ((old.index[-1], new.index[0]), (new.index[-1], old.index[0]))
    if interval == "1d" or not intervals.get(interval).daily:
        missing = max(calendars.sessions_between(calendar, a, b) if b > a else 0
                      for a, b in pairs)
        gap, detail = missing > 0, f" of {missing} {calendar} sessions"
    else:
        bar = pd.Timedelta(days=365.25 / intervals.get(interval).per_year)
        gap, detail = any(b > a + bar + MAX_GAP for a, b in pairs), ""
    if gap:
        raise DataError(
            f"{ticker}: the new rows ({new.index[0].date()}..{new.index[-1].date()}) do not "
            f"meet the stored ones ({old.index[0].date()}..{old.index[-1].date()}); merging "
            f"them would leave a gap{detail}. Fetch a range that overlaps, or replace the "
            "store with --full")


def _describe(ticker: str, interval: str, df: pd.DataFrame, source: str) -> dict:
    return {"ticker": ticker.upper(), "interval": interval, "source": source,
            "first": str(df.index[0].date()), "last": str(df.index[-1].date()),
            "rows": int(len(df)),
            "fetched_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _adjustment_changed(old: pd.DataFrame, new: pd.DataFrame, tol: float = 1e-4) -> bool:
    common = old.index.intersection(new.index)
    if len(common) == 0:
        return False
    a = old.loc[common, "Close"].to_numpy()
    b = new.loc[common, "Close"].to_numpy()
    return bool((abs(a - b) / a > tol).any())
