"""read_price_csv on the CSV shapes people actually have, and on broken ones."""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import FUZZ
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stockrnn.data.csvfile import read_price_csv
from stockrnn.data.sources import SAMPLE_DIR
from stockrnn.errors import DataError, StockRNNError

SAMPLE = SAMPLE_DIR / "GOOG.csv"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_frame(df: pd.DataFrame, unique: bool = True) -> None:
    """Invariants of every frame read_price_csv returns (duplicates are the store's to reject)."""
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.tz is None
    assert df.index.name == "Date"
    assert df.index.is_monotonic_increasing
    assert df.index.is_unique or not unique
    assert "Close" in df.columns
    assert set(df.columns) <= {"Open", "High", "Low", "Close", "Volume"}
    assert all(df[c].dtype == np.float64 for c in df.columns)


def business_days(start: str, n: int) -> list[dt.date]:
    return [d.date() for d in pd.bdate_range(start, periods=n)]


# --------------------------------------------------------------------------- the bundled sample


def test_sample_unnamed_first_date_column():
    with SAMPLE.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[0] == ""  # the date column has no name
    df = read_price_csv(SAMPLE)
    check_frame(df)
    assert len(df) == len(body) == 2148
    assert df.index[0].date() == dt.date.fromisoformat(body[0][0]) == dt.date(2004, 8, 19)
    assert df.index[-1].date() == dt.date.fromisoformat(body[-1][0]) == dt.date(2013, 3, 1)
    close = header.index("Close")
    assert df["Close"].iloc[-1] == float(body[-1][close]) == 806.19
    assert list(df.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert df["Volume"].iloc[-1] == float(body[-1][header.index("Volume")])


# --------------------------------------------------------------------------- Yahoo export


def yahoo_rows(n: int = 40):
    rng = np.random.default_rng(7)
    rows = []
    for i, day in enumerate(business_days("2023-01-03", n)):
        close = round(100 + i + rng.uniform(-1, 1), 2)
        adj = round(close * (0.95 + 0.001 * i), 6)  # dividends: adjusted < raw, ratio drifts
        rows.append((day, round(close - 0.5, 2), round(close + 1.5, 2), round(close - 1.5, 2),
                     close, adj, int(rng.integers(1e6, 5e6))))
    return rows


def test_yahoo_export_stores_adjusted_prices(tmp_path):
    rows = yahoo_rows()
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    lines += [f"{d},{o},{h},{lo},{c},{a},{v}" for d, o, h, lo, c, a, v in rows]
    df = read_price_csv(write(tmp_path, "GOOG.csv", "\n".join(lines) + "\n"))
    check_frame(df)
    assert len(df) == len(rows)
    day, o, h, lo, c, adj, v = rows[-1]
    assert df.index[-1].date() == day
    assert df["Close"].iloc[-1] == pytest.approx(adj, rel=1e-12)  # stored Close = Adj Close
    ratio = adj / c
    assert df["Open"].iloc[-1] == pytest.approx(o * ratio, rel=1e-12)
    assert df["High"].iloc[-1] == pytest.approx(h * ratio, rel=1e-12)
    assert df["Low"].iloc[-1] == pytest.approx(lo * ratio, rel=1e-12)
    assert df["Volume"].iloc[-1] == v
    # every row scaled by its own ratio, not the last one
    day0, o0, _, _, c0, adj0, _ = rows[0]
    assert df.loc[pd.Timestamp(day0), "Open"] == pytest.approx(o0 * adj0 / c0, rel=1e-12)
    assert (df["Low"] <= df["Close"]).all() and (df["Close"] <= df["High"]).all()


def test_yahoo_export_null_rows_are_dropped(tmp_path):
    text = ("Date,Open,High,Low,Close,Adj Close,Volume\n"
            "2020-01-02,10,11,9,10.5,10,1000\n"
            "2020-01-03,null,null,null,null,null,null\n"
            "2020-01-06,11,12,10,11.5,11,2000\n")
    df = read_price_csv(write(tmp_path, "y.csv", text))
    check_frame(df)
    assert len(df) == 2
    assert df.index[-1].date() == dt.date(2020, 1, 6)
    assert df["Close"].iloc[-1] == 11.0


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_saved_yfinance_history_with_utc_offsets(tmp_path, tz):
    """``yf.Ticker(t).history().to_csv(f)``: 00:00 local stamps whose offset changes with DST."""
    idx = pd.DatetimeIndex(pd.bdate_range("2023-01-03", periods=260), name="Date").tz_localize(tz)
    close = np.linspace(90.0, 140.0, len(idx)).round(4)
    hist = pd.DataFrame({"Open": close - 1, "High": close + 1, "Low": close - 2, "Close": close,
                         "Volume": 1000, "Dividends": 0.0, "Stock Splits": 0.0}, index=idx)
    path = tmp_path / "hist.csv"
    hist.to_csv(path)
    assert "00:00:00" in path.read_text().splitlines()[1]
    df = read_price_csv(path)
    check_frame(df)
    assert len(df) == len(hist)
    assert [d.date() for d in df.index] == [d.date() for d in idx]  # local dates, not UTC
    assert df.index[-1].date() == idx[-1].date()
    assert df["Close"].iloc[-1] == close[-1]


# --------------------------------------------------------------------------- Kaggle all_stocks_5yr


KAGGLE_TICKERS = ("AAL", "AAPL", "GOOG", "MSFT", "ZTS")


def kaggle_text(ticker_col: str = "Name", n: int = 30) -> tuple[str, dict[str, list]]:
    """A long file grouped by ticker like the Kaggle set, with a few blank opens like the real one."""
    rng = np.random.default_rng(1)
    by_ticker: dict[str, list] = {}
    lines = [f"date,open,high,low,close,volume,{ticker_col}"]
    for k, name in enumerate(KAGGLE_TICKERS):
        n_rows = n + 3 * k  # different lengths per ticker
        rows = []
        for i, day in enumerate(business_days("2013-02-08", n_rows)):
            close = round(20 * (k + 1) + i * 0.1 + rng.uniform(0, 1), 2)
            op = "" if i == 5 else round(close - 0.1, 2)
            rows.append((day, op, round(close + 1, 2), round(close - 1, 2), close,
                         int(rng.integers(1e5, 1e7))))
            lines.append(f"{day},{op},{close + 1:.2f},{close - 1:.2f},{close},{rows[-1][5]},{name}")
        by_ticker[name] = rows
    return "\n".join(lines) + "\n", by_ticker


@pytest.mark.parametrize("ticker_col", ["Name", "symbol", "ticker", "Symbol", "TICKER"])
@pytest.mark.parametrize("ticker", ["AAPL", "aapl", "ZTS"])
def test_kaggle_long_file_selects_ticker(tmp_path, ticker_col, ticker):
    text, by_ticker = kaggle_text(ticker_col)
    df = read_price_csv(write(tmp_path, "all_stocks_5yr.csv", text), ticker=ticker)
    check_frame(df)
    rows = by_ticker[ticker.upper()]
    assert len(df) == len(rows)
    assert df.index[-1].date() == rows[-1][0]
    assert df["Close"].iloc[-1] == rows[-1][4]
    assert df["Volume"].iloc[-1] == rows[-1][5]
    assert math.isnan(df["Open"].iloc[5])  # blank open stays missing, the row is kept
    assert df["Close"].iloc[5] == rows[5][4]


def test_kaggle_unknown_ticker_lists_some_found(tmp_path):
    text, _ = kaggle_text()
    path = write(tmp_path, "all_stocks_5yr.csv", text)
    with pytest.raises(DataError) as err:
        read_price_csv(path, ticker="NOPE")
    msg = str(err.value)
    assert str(path) in msg and "NOPE" in msg and "'Name'" in msg
    assert "AAL" in msg and "AAPL" in msg


def test_kaggle_without_ticker_asks_for_one(tmp_path):
    text, _ = kaggle_text()
    with pytest.raises(DataError, match=rf"holds {len(KAGGLE_TICKERS)} tickers.*AAL"):
        read_price_csv(write(tmp_path, "all.csv", text))


def test_single_ticker_file_with_name_column_needs_no_ticker(tmp_path):
    text = "date,close,Name\n2020-01-02,5,X\n2020-01-03,6,X\n"
    df = read_price_csv(write(tmp_path, "x.csv", text))
    assert len(df) == 2 and df["Close"].iloc[-1] == 6.0


def test_kaggle_bad_number_line_is_the_line_in_the_file(tmp_path):
    text, _ = kaggle_text()
    lines = text.splitlines()
    # break one AAPL row: its physical line number counts the other tickers' rows above it
    target = next(i for i, line in enumerate(lines) if line.endswith(",AAPL")) + 3
    parts = lines[target].split(",")
    parts[4] = "12..5"
    lines[target] = ",".join(parts)
    path = write(tmp_path, "all.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        read_price_csv(path, ticker="AAPL")
    assert f"line {target + 1}:" in str(err.value)
    assert "'12..5'" in str(err.value)


# --------------------------------------------------------------------------- two-column files


def test_two_column_closed_price_with_thousands_and_slashed_dates(tmp_path):
    # newest first, as these exports usually are
    days = business_days("2021-04-01", 25)[::-1]
    prices = [29331.37 + 1000.5 * i for i in range(len(days))]
    lines = ["date,closed_price"]
    lines += [f'{d.year}/{d.month}/{d.day},"{p:,.2f}"' for d, p in zip(days, prices, strict=True)]
    df = read_price_csv(write(tmp_path, "btc.csv", "\n".join(lines) + "\n"))
    check_frame(df)
    assert list(df.columns) == ["Close"]
    assert len(df) == len(days)
    newest = max(days)
    assert df.index[-1].date() == newest
    assert df["Close"].iloc[-1] == pytest.approx(prices[days.index(newest)])
    assert df.index[0].date() == min(days)


def test_example_closed_price_row(tmp_path):
    text = 'date,closed_price\n2021/5/6,"29,331.37"\n2021/5/5,"28,001.00"\n'
    df = read_price_csv(write(tmp_path, "p.csv", text))
    assert len(df) == 2
    assert df.index[-1].date() == dt.date(2021, 5, 6)
    assert df["Close"].iloc[-1] == 29331.37


# --------------------------------------------------------------------------- names, order, column=


@pytest.mark.parametrize("case", [str.upper, str.lower, str.title])
def test_column_names_any_case(tmp_path, case):
    header = ",".join(case(c) for c in ("Date", "Open", "High", "Low", "Close", "Volume"))
    rows = [(d, 10 + i, 11 + i, 9 + i, 10.5 + i, 100 * i) for i, d in
            enumerate(business_days("2022-06-01", 12))]
    body = "\n".join(",".join(map(str, r)) for r in rows)
    df = read_price_csv(write(tmp_path, "c.csv", f"{header}\n{body}\n"))
    check_frame(df)
    assert list(df.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert len(df) == len(rows)
    assert df.index[-1].date() == rows[-1][0]
    assert df["Close"].iloc[-1] == rows[-1][4]


def test_descending_dates_are_sorted(tmp_path):
    rows = [(d, 50 + i) for i, d in enumerate(business_days("2019-03-01", 15))]
    text = "Date,Close\n" + "".join(f"{d},{c}\n" for d, c in reversed(rows))
    df = read_price_csv(write(tmp_path, "desc.csv", text))
    check_frame(df)
    assert len(df) == len(rows)
    assert df.index[-1].date() == rows[-1][0]
    assert df["Close"].iloc[-1] == rows[-1][1]
    assert df["Close"].tolist() == [float(c) for _, c in rows]


def test_column_picks_a_named_column(tmp_path):
    text = ("Date,Open,Close,Settle\n"
            "2020-01-02,1,2,3.5\n"
            "2020-01-03,1,2,4.25\n")
    path = write(tmp_path, "f.csv", text)
    df = read_price_csv(path, column="Settle")
    assert df["Close"].tolist() == [3.5, 4.25]
    assert df.index[-1].date() == dt.date(2020, 1, 3)
    assert read_price_csv(path, column="settle")["Close"].iloc[-1] == 4.25
    assert read_price_csv(path)["Close"].iloc[-1] == 2.0  # default: the Close column
    with pytest.raises(DataError, match=r"no column 'Nope'.*Settle"):
        read_price_csv(path, column="Nope")


def test_column_overrides_adj_close(tmp_path):
    text = "Date,Close,Adj Close\n2020-01-02,10,9\n"
    path = write(tmp_path, "f.csv", text)
    assert read_price_csv(path)["Close"].iloc[-1] == 9.0
    assert read_price_csv(path, column="Close")["Close"].iloc[-1] == 10.0


def test_other_date_and_close_names(tmp_path):
    text = "Timestamp,Price\n2020-01-02T00:00:00Z,1.5\n2020-01-03T00:00:00Z,2.5\n"
    df = read_price_csv(write(tmp_path, "t.csv", text))
    check_frame(df)
    assert df.index[-1] == pd.Timestamp("2020-01-03") and df["Close"].iloc[-1] == 2.5


def test_currency_signs_crlf_and_bom(tmp_path):
    path = tmp_path / "nasdaq.csv"
    path.write_bytes("\ufeffDate,Close/Last,Volume\r\n"
                     "03/01/2024,$179.66,1000\r\n"
                     "02/29/2024,$180.75,2000\r\n".encode())
    df = read_price_csv(path)
    check_frame(df)
    assert len(df) == 2
    assert df.index[-1].date() == dt.date(2024, 3, 1)
    assert df["Close"].iloc[-1] == 179.66


def test_trailing_delimiters(tmp_path):
    text = "Date,Close\n2020-01-02,1.5,\n2020-01-03,2.5,\n"
    df = read_price_csv(write(tmp_path, "t.csv", text))
    assert len(df) == 2
    assert df.index[-1].date() == dt.date(2020, 1, 3)
    assert df["Close"].iloc[-1] == 2.5


# --------------------------------------------------------------------------- malformed files


def test_missing_close_column(tmp_path):
    path = write(tmp_path, "m.csv", "Date,Open,Volume\n2020-01-02,1,2\n")
    with pytest.raises(DataError) as err:
        read_price_csv(path)
    msg = str(err.value)
    assert str(path) in msg and "close" in msg.lower() and "Open, Volume" in msg
    assert "--column" in msg


def test_no_date_column(tmp_path):
    path = write(tmp_path, "m.csv", "When,Close\n2020-01-02,1\n")
    with pytest.raises(DataError, match="no date column"):
        read_price_csv(path)


def test_bad_date_names_file_line_and_value(tmp_path):
    rows = [f"2020-01-{d:02d},{d}" for d in range(2, 12)]
    rows[6] = "2020-02-30,7"  # line 8: header is line 1
    path = write(tmp_path, "d.csv", "Date,Close\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        read_price_csv(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line 8:")
    assert "'2020-02-30'" in msg and "'Date'" in msg


def test_bad_number_names_file_line_and_value(tmp_path):
    rows = [f"2020-01-{d:02d},{d}.5,{d}" for d in range(2, 22)]
    rows[12] = "2020-01-14,abc,14"  # line 14
    path = write(tmp_path, "n.csv", "Date,Open,Close\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        read_price_csv(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line 14:")
    assert "'abc'" in msg and "'Open'" in msg


def test_bad_number_line_counts_blank_lines(tmp_path):
    text = "Date,Close\n2020-01-02,1\n\n2020-01-03,2\n\n\n2020-01-06,x7\n"
    path = write(tmp_path, "b.csv", text)
    with pytest.raises(DataError) as err:
        read_price_csv(path)
    assert f"{path}: line 7:" in str(err.value) and "'x7'" in str(err.value)


def test_bad_number_line_counts_quoted_newlines(tmp_path):
    text = 'Date,Close,Note\n2020-01-02,1,"two\nlines"\n2020-01-03,oops,x\n'
    path = write(tmp_path, "q.csv", text)
    with pytest.raises(DataError) as err:
        read_price_csv(path)
    assert f"{path}: line 4:" in str(err.value) and "'oops'" in str(err.value)


def test_blank_lines_are_ignored(tmp_path):
    text = "\nDate,Close\n2020-01-02,1\n\n  \n2020-01-03,2\n\n"
    df = read_price_csv(write(tmp_path, "b.csv", text))
    assert len(df) == 2 and df["Close"].iloc[-1] == 2.0


def test_empty_file(tmp_path):
    path = write(tmp_path, "e.csv", "")
    with pytest.raises(DataError, match=re.escape(f"{path}: file is empty")):
        read_price_csv(path)


def test_header_only(tmp_path):
    path = write(tmp_path, "h.csv", "Date,Open,High,Low,Close,Volume\n")
    with pytest.raises(DataError, match=re.escape(f"{path}: no data rows")):
        read_price_csv(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_price_csv(tmp_path / "nope.csv")


def test_not_utf8(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes(b"Date,Close\n2020-01-02,1\xe9\n")
    with pytest.raises(DataError, match="cannot read as CSV"):
        read_price_csv(path)


def test_duplicate_column_names_after_stripping(tmp_path):
    path = write(tmp_path, "dup.csv", "Date,Close,Close \n2020-01-02,1,2\n")
    with pytest.raises(DataError, match="duplicate column"):
        read_price_csv(path)


# --------------------------------------------------------------------------- fuzz

HEADER_WORDS = ["Date", "date", "", "Open", "High", "Low", "Close", "close", "Adj Close",
                "Volume", "Name", "symbol", "closed_price", "Price", " Close ", "x"]
CELLS = ["2020-01-02", "2021/5/6", "1.5", '"29,331.37"', "", "null", "-1", "0", "1e999", "abc",
         "AAPL", "2020-13-01", "12:00", " ", '"', "nan", "$5", "1,2"]


@st.composite
def csv_like(draw):
    header = draw(st.lists(st.sampled_from(HEADER_WORDS) | st.text(max_size=6),
                           min_size=1, max_size=7))
    cell = st.sampled_from(CELLS) | st.text(max_size=8)
    width = len(header)
    sizes = st.sampled_from([width, width, width + 1]) | st.integers(0, width + 2)
    rows = draw(st.lists(sizes.flatmap(lambda n: st.lists(cell, min_size=n, max_size=n)),
                         max_size=6))
    sep = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return sep.join([",".join(header), *(",".join(r) for r in rows)])


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=csv_like() | st.text(max_size=200) | st.binary(max_size=200),
       ticker=st.none() | st.sampled_from(["AAPL", "x"]))
def test_fuzz_parses_or_raises_stockrnn_error(tmp_path, content, ticker):
    path = tmp_path / "fuzz.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        df = read_price_csv(path, ticker=ticker)
    except StockRNNError:
        return
    check_frame(df, unique=False)


def test_day_first_dates_are_read_day_first(tmp_path):
    """11/05/2021 is ambiguous alone; 14/05/2021 in the same column settles it: day first."""
    path = tmp_path / "eu.csv"
    path.write_text("Date,Close\n11/05/2021,10\n12/05/2021,11\n13/05/2021,12\n14/05/2021,13\n")
    df = read_price_csv(path)
    assert [d.strftime("%Y-%m-%d") for d in df.index] == [
        "2021-05-11", "2021-05-12", "2021-05-13", "2021-05-14"]


def test_mixed_day_and_month_first_dates_are_refused(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("Date,Close\n14/05/2021,10\n05/15/2021,11\n")
    with pytest.raises(DataError, match="mixes day-first"):
        read_price_csv(path)


# --------------------------------------------------------------------------- fuzzing the reader


def read_csv_bytes(blob: bytes) -> None:
    """read_price_csv on a file holding ``blob``: a price frame, or a StockRNNError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(blob)
        try:
            frame = read_price_csv(path)
        except StockRNNError as exc:
            assert str(exc).strip(), "empty message"
            assert str(path) in str(exc), str(exc)
        else:
            assert "Close" in frame.columns
            assert isinstance(frame.index, pd.DatetimeIndex)
            assert frame.index.is_monotonic_increasing


CSV_HEADER = st.lists(st.sampled_from(
    ["Date", "date", "Close", "close", "Adj Close", "Open", "High", "Low", "Volume", "Name",
     "price", "closed_price", "", "Unnamed: 0", "x", "Close "]), min_size=1, max_size=6)
CSV_CELL = st.one_of(
    st.sampled_from(["2020-01-02", "2021/5/6", "06/05/2021", "2020-01-02 09:30:00-05:00",
                     "2020-01-02T14:30:00Z", "1.5", '"29,331.37"', "$12", "-", "", "nan", "1e999",
                     "-0", "0", "abc", "GOOG", "2020-02-30", "99999-01-01", '"', "'", "1,2"]),
    st.text(string.printable, max_size=8), st.floats().map(str))


@st.composite
def csvish(draw) -> bytes:
    header = draw(CSV_HEADER)
    sep = draw(st.sampled_from([",", ";", "\t", ", "]))
    rows = [sep.join(header)]
    for _ in range(draw(st.integers(0, 6))):
        n = draw(st.integers(max(0, len(header) - 1), len(header) + 1))
        rows.append(sep.join(draw(CSV_CELL) for _ in range(n)))
    end = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return end.join(rows).encode("utf-8", "surrogatepass") + end.encode()


@FUZZ
@given(blob=st.one_of(st.binary(max_size=400), csvish()))
@example(blob=b"")
@example(blob=b"\n\n")
@example(blob=b"Date,Close\n")
@example(blob=b"Date,Close\n2020-01-02,1\n2020-01-02,2\n")
@example(blob=b"Date,Close\n2020-01-02,1e999\n")
@example(blob=b"Date,Close,Close\n2020-01-02,1,2\n")
@example(blob=b'Date,Close\n"2020-01-02,1\n')
@example(blob=b"\xef\xbb\xbfDate,Close\n2020-01-02,1\n")
@example(blob=b"Date,Close\n2020-01-02 09:30-05:00,1\n2020-06-02 09:30-04:00,2\n")
def test_fuzz_read_price_csv(blob):
    read_csv_bytes(blob)


def test_fuzz_target_accepts_a_good_file(tmp_path):
    """The fuzzed reader accepts good input (so the fuzzing tells good from bad)."""
    path = tmp_path / "ok.csv"
    path.write_bytes(b"Date,Close\n2020-01-02,10\n2020-01-03,11\n")
    assert read_price_csv(path)["Close"].tolist() == [10.0, 11.0]
