"""Ticker symbols: validated once, and the one rule that turns a symbol into a name part.

A symbol is letters, digits and ``^ . - = _`` (``^GSPC``, ``BRK-B``, ``EURUSD=X``, ``7203.T``):
anything else (a ``/``, a space, ``..``) is refused before it can become a file or folder name.
"""

from __future__ import annotations

import re

SYMBOL = re.compile(r"\A[A-Za-z0-9^.=_-]{1,32}\Z")
ALLOWED = "letters, digits and ^ . - = _ (at most 32)"


def check(ticker: str, where: str = "ticker") -> str:
    """``ticker`` upper-cased; ValueError (with ``where``) unless it is a valid symbol."""
    if not isinstance(ticker, str) or not SYMBOL.match(ticker) or set(ticker) <= {"."}:
        raise ValueError(f"{where}: {ticker!r} is not a ticker symbol ({ALLOWED})")
    return ticker.upper()


def check_all(tickers, where: str) -> list[str]:
    """Every ticker checked; a ticker listed twice (case-insensitive) is an error."""
    seen: set[str] = set()
    for t in tickers:
        up = check(t, where)
        if up in seen:
            raise ValueError(f"{where}: {t} is listed twice")
        seen.add(up)
    return list(tickers)


def file_part(ticker: str) -> str:
    """The ticker as a store file-name part: ``GOOG`` -> ``GOOG`` (``data/GOOG_1d.csv``)."""
    return check(ticker)


def run_part(ticker: str) -> str:
    """The ticker as a run-name part (letters, digits, ``._-``): ``^VIX`` -> ``_VIX``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", check(ticker))


def listed(cfg) -> list[str]:
    """A multi-ticker config's tickers: data.tickers, or the lines of data.tickers_file (``#``
    starts a comment); ConfigError when the file is unreadable, empty or lists a bad symbol."""
    from pathlib import Path

    from stockrnn.errors import ConfigError

    if cfg.data.tickers is not None:
        return list(cfg.data.tickers)
    path = Path(cfg.data.tickers_file or "")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"data.tickers_file: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    out = [t for t in (line.split("#", 1)[0].strip() for line in text.splitlines()) if t]
    if not out:
        raise ConfigError(f"data.tickers_file: {path} lists no tickers")
    try:
        return check_all(out, f"data.tickers_file {path}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
