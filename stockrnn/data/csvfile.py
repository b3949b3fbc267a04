"""Read price CSV files of the shapes people actually have.

Handled: Yahoo exports (``Date,Open,High,Low,Close,Adj Close,Volume``), long multi-ticker files
(``date,open,...,Name`` — rows picked by a Name/symbol/ticker column), two-column files such as
``date,closed_price`` with ``2021/5/6`` dates and ``"29,331.37"`` prices, an unnamed first date
column, any letter case. Unparseable values raise DataError naming file, line and value.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import pandas as pd

from stockrnn.data.frames import normalize
from stockrnn.errors import DataError

DATE_NAMES = ("date", "datetime", "timestamp", "time", "day")
TICKER_NAMES = ("name", "symbol", "ticker", "code")
CLOSE_NAMES = ("close", "closed_price", "close_price", "closing_price", "closing price", "price",
               "last", "last_price", "close/last")
ADJ_CLOSE_NAMES = ("adj close", "adj_close", "adjclose", "adjusted_close", "adjusted close")
OTHER_NAMES = {"open": "Open", "high": "High", "low": "Low", "volume": "Volume", "vol": "Volume"}
_NUMBER_JUNK = re.compile(r"[,\s$€£%]")
_UTC_OFFSET = re.compile(r"(\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:Z|[+-]\d\d:?\d\d)$")


def read_price_csv(path: str | Path, ticker: str | None = None, column: str | None = None,
                   interval: str = "1d") -> pd.DataFrame:
    """Read ``path`` into the normalized price frame (see ``frames``)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # index_col=False warns when a row has extra fields
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            # index_col=False: never take the first column as the index when rows are longer
            # than the header (trailing commas); the header names the columns.
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                              index_col=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: cannot read as CSV: {str(exc).strip()}") from None
    if raw.empty:
        raise DataError(f"{path}: no data rows")
    raw.columns = [str(c).strip() for c in raw.columns]
    dups = raw.columns[raw.columns.duplicated()]
    if len(dups):
        raise DataError(f"{path}: duplicate column name {dups[0]!r}")
    lower = {c.lower(): c for c in raw.columns}

    raw = _select_ticker(raw, lower, ticker, path)
    date_col = _find_date_column(raw, lower, path)
    columns = _map_columns(lower, column, path, exclude={date_col})

    records = raw.index.to_numpy()  # 0-based data record numbers (pandas skips blank lines)
    out = pd.DataFrame(index=_parse_dates(raw[date_col], records, path, date_col))
    for target, source in columns.items():
        out[target] = _parse_numbers(raw[source], records, path, source)
    if "AdjClose" in out.columns:
        # Store adjusted prices, as the yahoo source does: scale O/H/L by Adj Close / Close.
        ratio = out["AdjClose"] / out["Close"] if "Close" in out.columns else None
        for col in ("Open", "High", "Low"):
            if col in out.columns and ratio is not None:
                out[col] = out[col] * ratio
        out["Close"] = out.pop("AdjClose")
    out = out[out.index.notna()]
    return normalize(out, interval)


def _select_ticker(raw: pd.DataFrame, lower: dict[str, str], ticker: str | None,
                   path: Path) -> pd.DataFrame:
    tcol = next((lower[n] for n in TICKER_NAMES if n in lower), None)
    if tcol is None:
        return raw
    values = raw[tcol].str.strip()
    if ticker is None:
        names = values.unique()
        if len(names) == 1:
            return raw
        raise DataError(f"{path}: holds {len(names)} tickers in column {tcol!r}; "
                        f"name one (e.g. {', '.join(map(str, names[:5]))})")
    picked = raw[values.str.upper() == ticker.upper()]
    if picked.empty:
        sample = ", ".join(map(str, values.unique()[:8]))
        raise DataError(f"{path}: no rows for ticker {ticker!r} in column {tcol!r} "
                        f"(found e.g. {sample})")
    return picked


def _find_date_column(raw: pd.DataFrame, lower: dict[str, str], path: Path) -> str:
    for name in DATE_NAMES:
        if name in lower:
            return lower[name]
    first = raw.columns[0]
    if first == "" or first.lower().startswith("unnamed"):
        return first
    raise DataError(f"{path}: no date column (looked for {', '.join(DATE_NAMES)} "
                    "or an unnamed first column)")


def _map_columns(lower: dict[str, str], column: str | None, path: Path,
                 exclude: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for low, orig in lower.items():
        if orig in exclude:
            continue
        if low in OTHER_NAMES and OTHER_NAMES[low] not in found:
            found[OTHER_NAMES[low]] = orig
        elif low in ADJ_CLOSE_NAMES and column is None:
            found["AdjClose"] = orig
    if column is not None:
        if column not in lower.values() and column.lower() not in lower:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(lower.values())})")
        found["Close"] = lower.get(column.lower(), column)
    else:
        close = next((lower[n] for n in CLOSE_NAMES if n in lower), None)
        if close is not None:
            found["Close"] = close
        elif "AdjClose" not in found:
            raise DataError(f"{path}: no close-price column (looked for "
                            f"{', '.join(CLOSE_NAMES)}; columns: {', '.join(lower.values())}); "
                            "name one with --column")
    return found


def _line_number(path: Path, record: int) -> int:
    """Physical line where data record ``record`` starts (the header is record -1).

    pandas skips blank lines and lets quoted fields span lines, so ``record + 2`` is only right
    for plain files; recount with the csv module (only on the error path).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.reader(fh)
            start, n = 1, -2
            for row in reader:
                if row and not (len(row) == 1 and not row[0].strip()):  # pandas' blank line
                    n += 1
                    if n == record:
                        return start
                start = reader.line_num + 1
    except (OSError, csv.Error):
        pass
    return record + 2


def _parse_dates(col: pd.Series, records, path: Path, name: str) -> pd.DatetimeIndex:
    text = col.str.strip()
    parsed = _to_datetime(text, dayfirst=_day_first(text, path, name))
    if parsed is None:  # mixed UTC offsets (a yfinance history saved across DST): local wall time
        parsed = _to_datetime(text.str.replace(_UTC_OFFSET, r"\1", regex=True))
    if parsed is None:
        parsed = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns]")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna() & (text != "")
    if bad.any():
        i = bad.to_numpy().argmax()
        line = _line_number(path, int(records[i]))
        raise DataError(f"{path}: line {line}: cannot parse date {text.iloc[i]!r} "
                        f"in column {name!r}")
    return pd.DatetimeIndex(parsed)


_NUMERIC_DATE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b")


def _day_first(text: pd.Series, path: Path, name: str) -> bool:
    """Whether dates like 14/05/2021 put the day first: a first part above 12 says so, a second
    part above 12 says month first; a file with both is refused rather than guessed."""
    parts = text.str.extract(_NUMERIC_DATE).dropna().astype(int)
    if parts.empty:
        return False
    day_first, month_first = bool((parts[0] > 12).any()), bool((parts[1] > 12).any())
    if day_first and month_first:
        raise DataError(f"{path}: column {name!r} mixes day-first (DD/MM) and month-first "
                        "(MM/DD) dates; fix the file")
    return day_first


def _to_datetime(text: pd.Series, dayfirst: bool = False) -> pd.Series | None:
    # pandas < 3 returns objects instead of raising for mixed offsets, with a FutureWarning
    # that it will raise: either way such a column is not parsed here (None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=dayfirst)
    except (ValueError, TypeError):
        return None
    return parsed if pd.api.types.is_datetime64_any_dtype(parsed) else None


def _parse_numbers(col: pd.Series, records, path: Path, name: str):
    text = col.str.strip()
    cleaned = text.str.replace(_NUMBER_JUNK, "", regex=True)
    missing = cleaned.isin(["", "-", "null", "NaN", "nan", "NA", "N/A", "None"])
    values = pd.to_numeric(cleaned.mask(missing), errors="coerce")
    bad = values.isna() & ~missing
    if bad.any():
        i = bad.to_numpy().argmax()
        line = _line_number(path, int(records[i]))
        raise DataError(f"{path}: line {line}: cannot parse number {text.iloc[i]!r} "
                        f"in column {name!r}")
    return values.to_numpy(dtype="float64")
