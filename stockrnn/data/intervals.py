"""The bar intervals stockrnn knows (yfinance's names), and what each means.

``freq`` is a bar's length as a pandas frequency (intraday forecasts step by it inside the
exchange's sessions; forecast dates of daily and longer bars come from the exchange calendar,
see ``calendars``), ``per_year`` the bars in a year (for annualising returns), ``daily``
whether a bar is a whole session or more (its timestamp is a date).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Interval:
    name: str
    freq: str
    per_year: float
    daily: bool


_HOURS = 6.5 * 252  # regular US session hours a year
TABLE: dict[str, Interval] = {i.name: i for i in (
    Interval("1m", "min", _HOURS * 60, False),
    Interval("2m", "2min", _HOURS * 30, False),
    Interval("5m", "5min", _HOURS * 12, False),
    Interval("15m", "15min", _HOURS * 4, False),
    Interval("30m", "30min", _HOURS * 2, False),
    Interval("60m", "h", _HOURS, False),
    Interval("90m", "90min", _HOURS / 1.5, False),
    Interval("1h", "h", _HOURS, False),
    Interval("1d", "B", 252, True),
    Interval("5d", "5B", 252 / 5, True),
    Interval("1wk", "W-FRI", 52, True),
    Interval("1mo", "BME", 12, True),
    Interval("3mo", "BQE", 4, True),
)}
NAMES = tuple(TABLE)
DAILY = tuple(n for n, i in TABLE.items() if i.daily)


def get(name: str) -> Interval:
    """The interval called ``name``; ValueError listing the valid names otherwise."""
    try:
        return TABLE[name]
    except KeyError:
        raise ValueError(f"unknown interval {name!r}; valid: {', '.join(NAMES)}") from None
