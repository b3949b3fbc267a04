"""Exchange calendars: which days an exchange trades, and when each session closes.

Sessions, holidays (Good Friday, Christmas, unscheduled closures such as 2025-01-09) and early
closes come from the ``exchange_calendars`` package, which computes them from rules, offline.
``24/7`` (crypto: every day) and ``24/5`` (FX: Monday to Friday, no holidays) are calendars
there too, with sessions from 00:00 to 24:00 UTC.

``data.calendar`` names the calendar; ``None``/``auto`` picks it from the ticker's Yahoo
suffix (:func:`resolve`). Dates in and out are tz-naive (exchange-local dates, as the store
keeps them); closes are tz-aware. The package is imported only when a calendar is needed (not
by ``stockrnn --help`` nor by loading a config without an explicit calendar), and each
calendar is built once per process (building XNYS takes about 0.3-0.5 s), or in a forked child
ahead of need (:func:`prefetch`).
"""

from __future__ import annotations

import difflib
import math
import warnings
from typing import TYPE_CHECKING

from stockrnn import forked
from stockrnn.data import intervals

if TYPE_CHECKING:
    import pandas as pd

AUTO = "auto"
ALWAYS = "24/7"     # crypto: every day is a session
WEEKDAYS = "24/5"   # FX: Monday to Friday, no holidays
DEFAULT = "XNYS"    # a ticker without a suffix, and US indices (^GSPC)

#: Yahoo Finance ticker suffix -> exchange calendar
SUFFIXES: dict[str, str] = {
    ".T": "XTKS", ".L": "XLON", ".IL": "XLON", ".DE": "XETR", ".F": "XFRA", ".DU": "XDUS",
    ".HM": "XHAM", ".SG": "XSTU", ".PA": "XPAR", ".AS": "XAMS", ".BR": "XBRU", ".LS": "XLIS",
    ".MI": "XMIL", ".MC": "XMAD", ".SW": "XSWX", ".ST": "XSTO", ".OL": "XOSL", ".CO": "XCSE",
    ".HE": "XHEL", ".IR": "XDUB", ".IC": "XICE", ".VI": "XWBO", ".WA": "XWAR", ".PR": "XPRA",
    ".BD": "XBUD", ".AT": "ASEX", ".IS": "XIST", ".TL": "XTAL", ".RG": "XRIS", ".VS": "XLIT",
    ".TO": "XTSE", ".V": "XTSE", ".HK": "XHKG", ".AX": "XASX", ".NZ": "XNZE", ".SI": "XSES",
    ".KS": "XKRX", ".KQ": "XKRX", ".TW": "XTAI", ".TWO": "XTAI", ".SS": "XSHG", ".SZ": "XSHG",
    ".BO": "XBOM", ".NS": "XBOM", ".SA": "BVMF", ".MX": "XMEX", ".JK": "XIDX", ".KL": "XKLS",
    ".BK": "XBKK", ".JO": "XJSE", ".TA": "XTAE", ".SR": "XSAU", ".BA": "XBUE", ".SN": "XSGO",
    "=X": WEEKDAYS, "=F": "CMES",
    "-USD": ALWAYS, "-USDT": ALWAYS, "-USDC": ALWAYS, "-EUR": ALWAYS, "-GBP": ALWAYS,
    "-BTC": ALWAYS, "-ETH": ALWAYS,
}
#: indices of other exchanges (any other ``^`` index is taken for a US one: XNYS)
INDICES: dict[str, str] = {
    "^N225": "XTKS", "^FTSE": "XLON", "^GDAXI": "XETR", "^FCHI": "XPAR", "^AEX": "XAMS",
    "^IBEX": "XMAD", "^SSMI": "XSWX", "^HSI": "XHKG", "^AXJO": "XASX", "^AORD": "XASX",
    "^GSPTSE": "XTSE", "^KS11": "XKRX", "^TWII": "XTAI", "^BSESN": "XBOM", "^NSEI": "XBOM",
    "^BVSP": "BVMF", "^MXX": "XMEX", "^STI": "XSES", "^NZ50": "XNZE", "^JKSE": "XIDX",
    "^KLSE": "XKLS",
}


# ---- names ------------------------------------------------------------------------------------

def known() -> list[str]:
    """Every calendar name exchange_calendars knows (aliases such as NYSE included)."""
    import exchange_calendars as xc

    return sorted(xc.get_calendar_names(include_aliases=True))


def check(name: str | None) -> str | None:
    """``data.calendar`` checked: None for auto, else the calendar's canonical name (``xnys`` ->
    ``XNYS``, the alias ``NYSE`` -> ``XNYS``); ValueError naming the closest valid ones."""
    if name is None or name.strip().lower() == AUTO:
        return None
    name = name.strip()
    if name in (ALWAYS, WEEKDAYS):
        return name
    import exchange_calendars as xc

    by_upper = {n.upper(): n for n in known()}
    if name.upper() in by_upper:
        return xc.resolve_alias(by_upper[name.upper()])
    close = difflib.get_close_matches(name.upper(), by_upper, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(by_upper[c] for c in close)}?)" if close else ""
    plain = [n for n in xc.get_calendar_names(include_aliases=False) if "/" not in n]
    raise ValueError(f"unknown calendar {name!r}{hint}; valid: auto (from the ticker), 24/7, "
                     f"24/5 or an exchange_calendars name: {', '.join(sorted(plain))}")


def for_ticker(ticker: str) -> str:
    """The default calendar of a ticker, from its Yahoo suffix: none -> XNYS, ``.T`` -> XTKS,
    ``.L`` -> XLON, ``-USD`` -> 24/7, ``=X`` -> 24/5, ... (see SUFFIXES); an index ``^X`` ->
    XNYS unless INDICES names it; any other ``.XX`` suffix -> 24/5 (weekdays: set
    data.calendar for its exchange)."""
    t = ticker.strip().upper()
    if t in INDICES:
        return INDICES[t]
    for suffix, name in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if t.endswith(suffix) and len(t) > len(suffix):
            return name
    if "." in t.lstrip(".^") and not t.startswith("^"):
        return WEEKDAYS
    return DEFAULT


def resolve(calendar: str | None, ticker: str) -> str:
    """The calendar a ticker's bars follow: ``calendar`` when one is named, else from the
    ticker (:func:`for_ticker`)."""
    if calendar is None or calendar.strip().lower() == AUTO:
        return for_ticker(ticker)
    return calendar


# ---- the calendars themselves ----------------------------------------------------------------

class _Cached:
    def __init__(self, schedule, tz: str, first, last):
        self.schedule = schedule   # index: session dates (naive); open/break/close in UTC
        self.tz = tz
        self.first = first         # the range asked for (the schedule covers all of it)
        self.last = last


_CACHE: dict[str, _Cached] = {}
_BACK, _AHEAD = 20, 2   # years around today a calendar is built for, at least


def _build(name: str, lo, hi):
    import exchange_calendars as xc

    with warnings.catch_warnings():   # the package's pandas deprecations are not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return xc.get_calendar(name, start=lo, end=hi), lo, hi
        except ValueError:
            # before its first or after its last computable date: clamp to its bounds
            cls = type(xc.get_calendar(name))
            lo_b, hi_b = cls.bound_min(), cls.bound_max()
            lo2 = max(lo, lo_b) if lo_b is not None else lo
            hi2 = min(hi, hi_b) if hi_b is not None else hi
            # dates outside the bounds have no sessions: mark the whole asked range covered
            return xc.get_calendar(name, start=lo2, end=hi2), lo, hi


def _calendar(name: str, first, last) -> _Cached:
    """The calendar ``name``, its schedule covering ``first``..``last`` (built once per
    process, or taken from the child ``prefetch`` started; rebuilt wider when a date outside it
    is asked for)."""
    import pandas as pd

    first, last = pd.Timestamp(first).normalize(), pd.Timestamp(last).normalize()
    hit = _CACHE.get(name)
    if hit is None:
        # None when none was started, or it failed or hung
        hit = forked.result(_PREFETCH + name, timeout=_PREFETCH_WAIT_S)
        if hit is not None:
            _CACHE[name] = hit
    if hit is not None and hit.first <= first and last <= hit.last:
        return hit
    lo, hi = _span(first, last)
    if hit is not None:
        lo, hi = min(lo, hit.first), max(hi, hit.last)
    _CACHE[name] = _made(name, lo, hi)
    return _CACHE[name]


def _span(first, last) -> tuple:
    """The dates a calendar asked for ``first``..``last`` is built for: at least _BACK years
    before today to _AHEAD years after."""
    import pandas as pd

    today = pd.Timestamp.today().normalize()
    return (min(first, today - pd.DateOffset(years=_BACK)),
            max(last, today + pd.DateOffset(years=_AHEAD)))


def _made(name: str, lo, hi) -> _Cached:
    import pandas as pd

    cal, lo, hi = _build(name, lo, hi)
    sched = cal.schedule.copy()
    sched.index = pd.DatetimeIndex(sched.index).tz_localize(None).normalize()
    return _Cached(sched, str(cal.tz), lo, hi)


_PREFETCH = "calendar:"   # forked's key of a calendar's prefetch
_PREFETCH_WAIT_S = 30     # a build takes about a second; a child slower than this is ended


def prefetch(name: str) -> bool:
    """Build calendar ``name`` for the dates around today in a forked child (``forked``: only
    before TensorFlow is loaded), while this process goes on (``run`` and ``predict`` import
    TensorFlow and load or train a model first): importing exchange_calendars and building the
    schedule take about a second, which the first lookup then skips, taking the child's
    schedule. It covers the usual span around today (``_BACK`` years back); a lookup of older
    dates (``--as-of`` far back, covariates over a longer history) builds it wider here, as
    without a prefetch. Whether a child started (not when the calendar is built already)."""
    import pandas as pd

    if name in _CACHE:
        return False
    today = pd.Timestamp.today().normalize()
    return forked.start(_PREFETCH + name, _made, name, *_span(today, today))


def _day(d):
    import pandas as pd

    return pd.Timestamp(d).tz_localize(None).normalize() if pd.Timestamp(d).tz is not None \
        else pd.Timestamp(d).normalize()


def timezone(name: str) -> str:
    """The calendar's time zone (``America/New_York``; UTC for 24/7 and 24/5)."""
    import pandas as pd

    return _calendar(name, pd.Timestamp.today(), pd.Timestamp.today()).tz


def sessions(name: str, start, end) -> pd.DatetimeIndex:
    """The sessions from ``start`` to ``end`` (dates, both inclusive)."""
    start, end = _day(start), _day(end)
    idx = _calendar(name, start, end).schedule.index
    return idx[(idx >= start) & (idx <= end)]


def next_sessions(name: str, after, n: int) -> pd.DatetimeIndex:
    """The first ``n`` sessions after the date ``after``: after Thursday 2026-04-02 on XNYS,
    2026-04-06, 04-07, 04-08 (Good Friday is closed)."""
    import pandas as pd

    after = _day(after)
    days = math.ceil(n * 1.6) + 20
    for _ in range(6):
        found = sessions(name, after + pd.Timedelta(days=1), after + pd.Timedelta(days=days))
        if len(found) >= n:
            return found[:n]
        days *= 4
    raise ValueError(f"calendar {name} has only {len(found)} sessions after {after.date()}; "
                     f"{n} were asked for")


def sessions_between(name: str, after, before) -> int:
    """How many sessions fall strictly between the dates ``after`` and ``before``."""
    import pandas as pd

    after, before = _day(after), _day(before)
    if before - after <= pd.Timedelta(days=1):
        return 0
    return len(sessions(name, after + pd.Timedelta(days=1), before - pd.Timedelta(days=1)))


def session_close(name: str, day) -> pd.Timestamp | None:
    """When the session of ``day`` closes (tz-aware, in the calendar's time zone; early closes
    included: 13:00 New York on 2026-11-27), or None when ``day`` is not a session."""
    day = _day(day)
    cal = _calendar(name, day, day)
    if day not in cal.schedule.index:
        return None
    return cal.schedule.at[day, "close"].tz_convert(cal.tz)


def closed_after(name: str, last, now) -> int:
    """How many sessions after the date ``last`` had closed by ``now`` (a tz-aware time): the
    bars a store ending on ``last`` lacks. Thursday 2026-04-02's data on Monday 04-06 before the
    close lack none (Good Friday was closed)."""
    import pandas as pd

    last, now = _day(last), pd.Timestamp(now)
    if now.tz is None:
        now = now.tz_localize("UTC")
    end = now.tz_convert("UTC").tz_localize(None).normalize() + pd.Timedelta(days=1)
    if end <= last:
        return 0
    sched = _calendar(name, last, end).schedule
    rows = sched[(sched.index > last) & (sched.index <= end)]
    return int((rows["close"] <= now).sum())


# ---- forecast dates -------------------------------------------------------------------------

#: the pandas period a bar of a multi-session interval spans (its date is its period's last
#: session)
PERIODS = {"1wk": ("W-SUN", 7), "1mo": ("M", 31), "3mo": ("Q", 92)}


def future_dates(name: str, last, n: int, interval: str = "1d") -> pd.DatetimeIndex:
    """The dates of the ``n`` bars after the bar dated ``last``:

    * ``1d``: the calendar's next sessions;
    * ``5d``: every fifth session;
    * ``1wk``/``1mo``/``3mo``: the last session of each following week/month/quarter;
    * intraday: the bar starts inside the next sessions' trading hours (exchange-local wall
      clock, from each session's open in steps of the bar; lunch breaks and early closes
      respected).
    """
    import pandas as pd

    iv = intervals.get(interval)
    last = pd.Timestamp(last)
    if not iv.daily:
        return _intraday(name, last, n, iv.freq)
    if interval == "1d":
        return pd.DatetimeIndex(next_sessions(name, last, n), name=None)
    if interval == "5d":
        return pd.DatetimeIndex(next_sessions(name, last, 5 * n)[4::5])
    freq, days = PERIODS[interval]
    span = n * days + 40
    for _ in range(6):
        end = last.normalize() + pd.Timedelta(days=span)
        s = sessions(name, last + pd.Timedelta(days=1), end)
        periods = s.to_period(freq)
        keep = (periods > last.to_period(freq)) & (periods.end_time.normalize() <= end)
        ends = pd.Series(s[keep]).groupby(periods[keep]).max()
        if len(ends) >= n:
            return pd.DatetimeIndex(ends.iloc[:n].to_numpy())
        span *= 4
    raise ValueError(f"calendar {name} has too few sessions after {last.date()} for {n} "
                     f"{interval} bars")


def _intraday(name: str, last: pd.Timestamp, n: int, freq: str) -> pd.DatetimeIndex:
    import pandas as pd

    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    out: list = []
    start = last.normalize()
    days = math.ceil(n * step / pd.Timedelta(hours=3) * 1.6) + 10
    while True:
        end = start + pd.Timedelta(days=days)
        cal = _calendar(name, start, end)
        rows = cal.schedule[(cal.schedule.index >= start) & (cal.schedule.index <= end)]
        for _, row in rows.iterrows():
            local = {k: (row[k].tz_convert(cal.tz).tz_localize(None) if pd.notna(row[k]) else None)
                     for k in ("open", "break_start", "break_end", "close")}
            bars = pd.date_range(local["open"], local["close"], freq=step, inclusive="left")
            if local["break_start"] is not None and local["break_end"] is not None:
                bars = bars[(bars < local["break_start"]) | (bars >= local["break_end"])]
            out.extend(b for b in bars if b > last)
            if len(out) >= n:
                return pd.DatetimeIndex(out[:n])
        if rows.empty and days > 5000:
            raise ValueError(f"calendar {name} has no sessions after {last}")
        start = end + pd.Timedelta(days=1)
        days *= 2


# ---- close times ------------------------------------------------------------------------------

def closes(name: str, dates) -> pd.DatetimeIndex:
    """When the bar of each date (tz-naive exchange-local dates) closed, in UTC: the session's
    close (early closes included); a date that is not a session (a bar on a holiday in the
    data) closes at the calendar's usual time of day, so two series on one calendar still
    line up."""
    import pandas as pd

    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    days = dates.normalize()
    cal = _calendar(name, days[0], days[-1])
    out = cal.schedule["close"].reindex(days)
    missing = out.isna().to_numpy()
    if missing.any():
        local = cal.schedule.index.tz_localize(cal.tz)
        usual = (cal.schedule["close"] - local.tz_convert("UTC")).mode().iloc[0]
        filled = days[missing].tz_localize(cal.tz).tz_convert("UTC") + usual
        out = out.copy()
        out.iloc[missing] = filled
    return pd.DatetimeIndex(out, name=None).tz_convert("UTC")
