"""The price store: first and incremental fetches, refetches, validation, atomic writes, locks."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stockrnn.data.frames import validate
from stockrnn.data.sources import CsvSource, SampleSource, YahooSource
from stockrnn.data.store import Store
from stockrnn.errors import DataError, FetchError

REPO = Path(__file__).resolve().parents[1]
NY = "America/New_York"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp" in p.name or p.suffix == ".info"]


def sample_frame() -> pd.DataFrame:
    return SampleSource().fetch("GOOG", None, None, "1d")


# --------------------------------------------------------------------------- a Yahoo-like fake


def market(n: int, start: str = "2024-01-02", seed: int = 3) -> pd.DataFrame:
    """Daily bars as yfinance's Ticker.history returns them (tz-aware, 00:00 local)."""
    rng = np.random.default_rng(seed)
    idx = pd.DatetimeIndex(pd.bdate_range(start, periods=n), name="Date").tz_localize(NY)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"Open": close * 1.001, "High": close * 1.01, "Low": close * 0.99,
                         "Close": close, "Volume": rng.integers(10**5, 10**6, n)}, index=idx)


class FakeYahoo:
    """``client`` for YahooSource: serves ``self.frame`` filtered like Yahoo (end exclusive)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.calls: list[dict] = []
        self.error: BaseException | None = None

    def __call__(self, symbol):
        fake = self

        class Ticker:
            def history(self, **kw):
                fake.calls.append(kw)
                if fake.error is not None:
                    raise fake.error
                df = fake.frame
                if "start" in kw:
                    df = df[df.index >= pd.Timestamp(kw["start"]).tz_localize(NY)]
                if "end" in kw:
                    df = df[df.index < pd.Timestamp(kw["end"]).tz_localize(NY)]
                return df.copy()

        return Ticker()


def yahoo(fake: FakeYahoo) -> YahooSource:
    return YahooSource(client=fake, sleep=lambda s: None,
                       now=lambda tz: pd.Timestamp("2030-01-01 12:00", tz=tz))


def local_dates(frame: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(frame.index.tz_localize(None), name="Date")


# --------------------------------------------------------------------------- sample and csv


def test_first_fetch_sample_writes_csv_and_sidecar(tmp_path):
    store = Store(tmp_path / "data")
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = store.update(SampleSource(), "goog")
    expected = sample_frame()
    assert result.ticker == "GOOG" and result.interval == "1d"
    assert result.added == result.rows == len(expected) == 2148
    assert (result.first, result.last) == (expected.index[0].date(), expected.index[-1].date())
    assert not result.up_to_date and not result.refetched
    assert result.path == tmp_path / "data" / "GOOG_1d.csv"
    assert result.line() == (f"GOOG 1d: +2148 rows, 2148 rows {result.first}..{result.last} "
                             f"-> {result.path}")

    csv_text = result.path.read_text()
    assert csv_text.splitlines()[0] == "Date,Open,High,Low,Close,Volume"
    stored = store.read("GOOG")
    pd.testing.assert_frame_equal(stored, expected, check_index_type=False)
    assert stored["Close"].iloc[-1] == 806.19

    meta = json.loads(store.meta_path("GOOG").read_text())
    assert set(meta) == {"ticker", "interval", "source", "first", "last", "rows", "fetched_at"}
    assert meta["ticker"] == "GOOG" and meta["interval"] == "1d" and meta["source"] == "sample"
    assert meta["first"] == "2004-08-19" and meta["last"] == "2013-03-01"
    assert meta["rows"] == 2148
    fetched = dt.datetime.fromisoformat(meta["fetched_at"])
    assert fetched.utcoffset() == dt.timedelta(0)
    assert before <= fetched <= dt.datetime.now(dt.UTC)
    assert store.meta("GOOG") == meta
    assert leftovers(store.dir) == []


def test_second_sample_fetch_is_up_to_date(tmp_path):
    store = Store(tmp_path)
    store.update(SampleSource(), "GOOG")
    files = snapshot(tmp_path)
    result = store.update(SampleSource(), "GOOG")
    assert result.up_to_date and result.added == 0 and result.rows == 2148
    assert "up to date" in result.line()
    assert snapshot(tmp_path) == files


def test_sample_unknown_ticker(tmp_path):
    with pytest.raises(DataError, match="no 'NOPE'.*GOOG"):
        Store(tmp_path).update(SampleSource(), "NOPE")
    assert not Store(tmp_path).exists("NOPE")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    path.write_text(frame.tz_localize(None).to_csv(index_label="Date", date_format="%Y-%m-%d"))


def test_csv_source_import_and_merge(tmp_path):
    bars = market(30)
    src_file = tmp_path / "prices.csv"
    write_csv(src_file, bars.iloc[:20])
    store = Store(tmp_path / "data")
    first = store.update(CsvSource(src_file), "ACME")
    assert (first.added, first.rows) == (20, 20)
    assert store.meta("ACME")["source"] == "csv"
    assert first.last == bars.index[19].date()

    write_csv(src_file, bars)  # the file grows
    second = store.update(CsvSource(src_file), "ACME")
    assert (second.added, second.rows) == (10, 30)
    assert second.last == bars.index[-1].date()
    stored = store.read("ACME")
    assert stored["Close"].to_numpy() == pytest.approx(bars["Close"].to_numpy(), rel=1e-12)
    assert store.meta("ACME")["rows"] == 30


def test_csv_with_duplicate_dates_is_rejected(tmp_path):
    src_file = tmp_path / "dup.csv"
    src_file.write_text("Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-03,2.5\n")
    store = Store(tmp_path / "data")
    with pytest.raises(DataError, match="duplicate date 2020-01-03"):
        store.update(CsvSource(src_file), "X")
    assert not store.path("X").exists() and not store.meta_path("X").exists()


# --------------------------------------------------------------------------- incremental yahoo


@pytest.fixture
def stored(tmp_path):
    """A store holding the first 20 bars of a 30-bar market, fetched through YahooSource."""
    bars = market(30)
    fake = FakeYahoo(bars.iloc[:20])
    store = Store(tmp_path / "data")
    result = store.update(yahoo(fake), "GOOG")
    assert (result.added, result.rows) == (20, 20)
    assert "start" not in fake.calls[0] and fake.calls[0]["period"] == "max"
    fake.calls.clear()
    return store, fake, bars


def test_incremental_update_fetches_from_last_stored_date(stored):
    store, fake, bars = stored
    last = store.read("GOOG").index[-1].date()
    assert last == bars.index[19].date()
    fake.frame = bars  # ten trading days later
    result = store.update(yahoo(fake), "GOOG")
    assert len(fake.calls) == 1
    assert fake.calls[0]["start"] == last.isoformat()
    assert "period" not in fake.calls[0]
    assert (result.added, result.rows) == (10, 30)
    assert not result.up_to_date and not result.refetched
    assert result.line().startswith("GOOG 1d: +10 rows, 30 rows ")
    df = store.read("GOOG")
    assert df.index.is_unique and len(df) == 30
    pd.testing.assert_index_equal(df.index, local_dates(bars), exact=False)
    assert df["Close"].to_numpy() == pytest.approx(bars["Close"].to_numpy(), rel=1e-12)
    meta = store.meta("GOOG")
    assert meta["rows"] == 30 and meta["last"] == str(bars.index[-1].date())
    assert meta["source"] == "yahoo"


def test_nothing_new_is_up_to_date(stored):
    store, fake, _ = stored
    files = snapshot(store.dir)
    result = store.update(yahoo(fake), "GOOG")  # Yahoo returns only the overlapping bar
    assert fake.calls[0]["start"] == str(store.read("GOOG").index[-1].date())
    assert result.up_to_date and result.added == 0 and result.rows == 20
    assert "up to date" in result.line()
    assert snapshot(store.dir) == files


def test_no_data_for_the_new_range_is_up_to_date(stored):
    from yfinance.exceptions import YFPricesMissingError

    store, fake, _ = stored
    files = snapshot(store.dir)
    fake.error = YFPricesMissingError("GOOG", "")
    result = store.update(yahoo(fake), "GOOG")
    assert result.up_to_date and result.rows == 20
    assert snapshot(store.dir) == files


def test_full_refetch_repairs_history(tmp_path):
    bars = market(20)
    fake = FakeYahoo(bars.drop(bars.index[5]))  # Yahoo missed a bar the first time
    store = Store(tmp_path)
    store.update(yahoo(fake), "GOOG")
    fake.frame = bars
    assert store.update(yahoo(fake), "GOOG").up_to_date  # incremental: cannot see the gap
    assert len(store.read("GOOG")) == 19
    fake.calls.clear()
    result = store.update(yahoo(fake), "GOOG", full=True)
    assert "start" not in fake.calls[0] and fake.calls[0]["period"] == "max"
    assert result.rows == 20
    pd.testing.assert_index_equal(store.read("GOOG").index, local_dates(bars), exact=False)


def test_changed_overlapping_bar_triggers_full_refetch(stored):
    store, fake, bars = stored
    adjusted = bars.copy()
    adjusted[["Open", "High", "Low", "Close"]] *= 0.97  # a dividend re-adjusted history
    fake.frame = adjusted.iloc[:25]
    result = store.update(yahoo(fake), "GOOG")
    assert [("start" in c) for c in fake.calls] == [True, False]  # incremental, then full
    assert result.refetched and "full refetch" in result.line()
    assert (result.added, result.rows) == (5, 25)
    df = store.read("GOOG")
    assert df["Close"].to_numpy() == pytest.approx(adjusted["Close"].iloc[:25].to_numpy())


def test_small_dividend_adjustment_triggers_full_refetch(stored):
    """A 0.2 % dividend re-adjusts every earlier close: the history is refetched, not spliced."""
    store, fake, bars = stored
    adjusted = bars.copy()
    adjusted.loc[:, "Close"] *= 0.998
    fake.frame = adjusted
    result = store.update(yahoo(fake), "GOOG")
    assert result.refetched and result.rows == 30
    assert store.read("GOOG")["Close"].iloc[0] == pytest.approx(adjusted["Close"].iloc[0])


def test_tiny_overlap_difference_is_merged_not_refetched(stored):
    store, fake, bars = stored
    moved = bars.copy()
    moved.iloc[19, moved.columns.get_loc("Close")] *= 1.00001  # float noise, within 0.01 %
    fake.frame = moved
    result = store.update(yahoo(fake), "GOOG")
    assert len(fake.calls) == 1 and not result.refetched
    assert (result.added, result.rows) == (10, 30)
    assert store.read("GOOG")["Close"].iloc[19] == pytest.approx(moved["Close"].iloc[19])


class FailingSource:
    name = "yahoo"
    incremental = True

    def fetch(self, ticker, start, end, interval):
        raise FetchError(f"Yahoo Finance rate limited (HTTP 429) for {ticker}")


def broken_bars(bars, kind):
    out = bars.copy()
    if kind == "high<low":
        out.iloc[-1, out.columns.get_loc("High")] = out["Low"].iloc[-1] * 0.9
    elif kind == "negative":
        out.iloc[-2, out.columns.get_loc("Close")] = -1.0
    elif kind == "zero-open":
        out.iloc[-3, out.columns.get_loc("Open")] = 0.0
    return out


@pytest.mark.parametrize("case", ["fetch-error", "network", "high<low", "negative", "zero-open",
                                  "full-fetch-error"])
def test_failed_update_leaves_store_unchanged(stored, case):
    store, fake, bars = stored
    before = snapshot(store.dir)
    assert set(before) >= {"GOOG_1d.csv", "GOOG_1d.json"}
    full = case == "full-fetch-error"
    if case in ("fetch-error", "full-fetch-error"):
        src = FailingSource()
    elif case == "network":
        fake.error = ConnectionError("connection reset by peer")
        src = yahoo(fake)
    else:
        fake.frame = broken_bars(bars, case)
        src = yahoo(fake)
    with pytest.raises(DataError) as err:  # FetchError is a DataError
        store.update(src, "GOOG", full=full)
    if case in ("high<low", "negative", "zero-open"):
        assert not isinstance(err.value, FetchError)
        assert {"high<low": "High < Low", "negative": "Close is not positive",
                "zero-open": "Open is not positive"}[case] in str(err.value)
    else:
        assert isinstance(err.value, FetchError)
    assert snapshot(store.dir) == before
    assert leftovers(store.dir) == []


def test_corrupt_stored_file_is_a_data_error(tmp_path):
    store = Store(tmp_path)
    store.path("GOOG").write_text("Date,Close\n2020-01-02,abc\n")
    with pytest.raises(DataError):
        store.read("GOOG")
    assert store.update(SampleSource(), "GOOG", full=True).rows == 2148  # --full is the remedy


# --------------------------------------------------------------------------- validation


def frame(**cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    idx = pd.DatetimeIndex(pd.bdate_range("2021-03-01", periods=n), name="Date")
    return pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in cols.items()}, index=idx)


def test_validate_accepts_good_frame():
    validate(frame(Open=[1, 2], High=[2, 3], Low=[0.5, 1], Close=[1.5, 2], Volume=[0, 5]), "ok")
    validate(sample_frame(), "sample")


@pytest.mark.parametrize("bad, message", [
    (frame(Close=[1, 2, 3]).set_axis(pd.DatetimeIndex(["2021-03-01", "2021-03-02", "2021-03-02"],
                                                      name="Date")),
     "duplicate date 2021-03-02"),
    (frame(Close=[1, 2]).iloc[::-1], "not in increasing order"),
    (frame(Close=[1, 0]), "Close is not positive on 2021-03-02"),
    (frame(Close=[1, -2]), "Close is not positive"),
    (frame(Open=[-1, 1], Close=[1, 2]), "Open is not positive on 2021-03-01"),
    (frame(High=[2, 1], Low=[1, 1.5], Close=[1.5, 1.2]), "High < Low on 2021-03-02"),
    (frame(Close=[1, 2], Volume=[5, -1]), "negative Volume"),
    (frame(Close=[1, np.inf]), "infinite"),
    (frame(Close=[1, np.nan]), "all-NaN rows"),
    (frame(Open=[1, 2]), "no Close column"),
    (frame(Close=[]), "no rows"),
])
def test_validate_rejects(bad, message):
    with pytest.raises(DataError, match=message):
        validate(bad, "what")


def test_store_write_validates_before_writing(tmp_path):
    store = Store(tmp_path)
    store.write("GOOG", "1d", frame(Close=[1, 2]), "test")
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="High < Low"):
        store.write("GOOG", "1d", frame(High=[2, 1], Low=[1, 1.5], Close=[1.5, 1.2]), "test")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- network vs no data


def test_network_failure_then_tz_missing_is_a_network_error(stored):
    """yfinance says "no timezone found" when its own request failed: after network errors in
    the same call that is the network, not "nothing new" (exit 1, store unchanged)."""
    from yfinance.exceptions import YFTzMissingError

    store, fake, _ = stored
    files = snapshot(store.dir)
    errors = iter([ConnectionError("Could not resolve host"), ConnectionError("again"),
                   *[YFTzMissingError("GOOG")] * 3])

    class Flaky(FakeYahoo):
        def __call__(self, symbol):
            class Ticker:
                def history(self, **kw):
                    raise next(errors)
            return Ticker()

    src = YahooSource(client=Flaky(fake.frame), sleep=lambda s: None, retries=4)
    with pytest.raises(FetchError, match="network error for GOOG after 5 attempts"):
        store.update(src, "GOOG")
    assert snapshot(store.dir) == files


def test_tz_missing_for_a_stored_ticker_is_not_up_to_date(stored):
    from yfinance.exceptions import YFTzMissingError

    store, fake, _ = stored
    files = snapshot(store.dir)
    fake.error = YFTzMissingError("GOOG")
    with pytest.raises(FetchError, match="unreachable"):
        store.update(yahoo(fake), "GOOG")
    assert snapshot(store.dir) == files


# --------------------------------------------------------------------------- --start / --end


def test_start_never_drops_stored_rows(tmp_path):
    store = Store(tmp_path / "data")
    store.update(SampleSource(), "GOOG")
    result = store.update(SampleSource(), "GOOG", start=dt.date(2012, 1, 1))
    assert result.up_to_date and result.rows == 2148
    assert len(store.read("GOOG")) == 2148


def test_a_range_that_leaves_a_gap_is_refused(tmp_path):
    bars = market(60)
    src_file = tmp_path / "prices.csv"
    write_csv(src_file, bars)
    store = Store(tmp_path / "data")
    store.update(CsvSource(src_file), "ACME", end=bars.index[9].date())
    files = snapshot(store.dir)
    with pytest.raises(DataError, match="would leave a gap.*--full"):
        store.update(CsvSource(src_file), "ACME", start=bars.index[40].date())
    assert snapshot(store.dir) == files
    result = store.update(CsvSource(src_file), "ACME", start=bars.index[5].date())
    assert (result.added, result.rows) == (50, 60)  # an overlapping range merges
