"""data.calendars: forecasts on the exchange's real sessions (Good Friday, Christmas, the
2025-01-09 closure skipped), the calendar picked from the ticker, early closes ending today's
bar, and the stale-data and store-gap rules counted in sessions."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import copy_run, invoke, meta, write_close_csv

from stockrnn.config import load_config
from stockrnn.data import calendars
from stockrnn.data.sources import CsvSource, YahooSource
from stockrnn.data.store import Store
from stockrnn.errors import ConfigError, DataError
from stockrnn.forecasting import current_prices

NY = "America/New_York"


def days(*isos: str) -> list[dt.date]:
    return [dt.date.fromisoformat(d) for d in isos]


def dates(index) -> list[dt.date]:
    return [pd.Timestamp(d).date() for d in index]


# --------------------------------------------------------------------------- sessions


@pytest.mark.parametrize("ticker, after, expected", [
    # Good Friday 2026 (04-03) is closed
    ("GOOG", "2026-04-02", ("2026-04-06", "2026-04-07", "2026-04-08")),
    # the unscheduled closure of 2025-01-09 (national day of mourning for President Carter)
    ("AAPL", "2025-01-08", ("2025-01-10", "2025-01-13", "2025-01-14")),
    # Christmas; an index follows NYSE too
    ("^GSPC", "2025-12-24", ("2025-12-26", "2025-12-29", "2025-12-30")),
    # Tokyo: Showa Day (04-29) and Golden Week (05-04..05-06) are closed
    ("7203.T", "2026-04-28", ("2026-04-30", "2026-05-01", "2026-05-07")),
    # crypto trades every day: the weekend is included
    ("BTC-USD", "2026-04-03", ("2026-04-04", "2026-04-05", "2026-04-06")),
    # FX: weekends excluded, holidays (Christmas) included
    ("EURUSD=X", "2025-12-24", ("2025-12-25", "2025-12-26", "2025-12-29")),
    # London: Good Friday and Easter Monday are closed
    ("BP.L", "2026-04-02", ("2026-04-07", "2026-04-08", "2026-04-09")),
])
def test_next_sessions_of_the_tickers_calendar(ticker, after, expected):
    cal = calendars.resolve(None, ticker)
    assert dates(calendars.future_dates(cal, pd.Timestamp(after), 3)) == days(*expected)


@pytest.mark.parametrize("ticker, calendar", [
    ("GOOG", "XNYS"), ("BRK-B", "XNYS"), ("^GSPC", "XNYS"), ("^VIX", "XNYS"),
    ("7203.T", "XTKS"), ("^N225", "XTKS"), ("BP.L", "XLON"), ("SAP.DE", "XETR"),
    ("MC.PA", "XPAR"), ("RY.TO", "XTSE"), ("0700.HK", "XHKG"), ("BHP.AX", "XASX"),
    ("BTC-USD", "24/7"), ("eth-usd", "24/7"), ("EURUSD=X", "24/5"), ("ABC.ZZ", "24/5"),
])
def test_the_default_calendar_follows_the_ticker(ticker, calendar):
    assert calendars.for_ticker(ticker) == calendar
    cfg = load_config(None, [f"data.ticker={ticker}"])
    assert cfg.data.calendar is None
    assert calendars.resolve(cfg.data.calendar, cfg.data.ticker) == calendar
    # a named calendar wins over the suffix
    assert calendars.resolve("XLON", ticker) == "XLON"


def test_every_mapped_calendar_exists():
    known = set(calendars.known())
    assert set(calendars.SUFFIXES.values()) <= known
    assert set(calendars.INDICES.values()) <= known


def test_longer_and_shorter_bars():
    # the week of Good Friday ends on Thursday 2026-04-02
    assert dates(calendars.future_dates("XNYS", pd.Timestamp("2026-03-23"), 2, "1wk")) == \
        days("2026-04-02", "2026-04-10")
    assert dates(calendars.future_dates("XNYS", pd.Timestamp("2026-03-01"), 3, "1mo")) == \
        days("2026-04-30", "2026-05-29", "2026-06-30")
    assert dates(calendars.future_dates("XNYS", pd.Timestamp("2026-01-02"), 2, "3mo")) == \
        days("2026-06-30", "2026-09-30")
    # intraday: inside the sessions' hours; the day after Thanksgiving closes at 13:00
    got = calendars.future_dates("XNYS", pd.Timestamp("2026-11-25 15:00"), 4, "30m")
    assert list(got) == [pd.Timestamp(s) for s in (
        "2026-11-25 15:30", "2026-11-27 09:30", "2026-11-27 10:00", "2026-11-27 10:30")]
    got = calendars.future_dates("XNYS", pd.Timestamp("2026-11-27 12:00"), 2, "30m")
    assert list(got) == [pd.Timestamp("2026-11-27 12:30"), pd.Timestamp("2026-11-30 09:30")]
    # Tokyo's lunch break (11:30-12:30) has no bars
    got = calendars.future_dates("XTKS", pd.Timestamp("2026-04-02 10:30"), 3, "30m")
    assert list(got) == [pd.Timestamp(s) for s in (
        "2026-04-02 11:00", "2026-04-02 12:30", "2026-04-02 13:00")]


# --------------------------------------------------------------------------- early closes


def test_session_close_includes_early_closes():
    assert calendars.session_close("XNYS", dt.date(2026, 11, 27)) == \
        pd.Timestamp("2026-11-27 13:00", tz=NY)
    assert calendars.session_close("XNYS", dt.date(2026, 11, 25)) == \
        pd.Timestamp("2026-11-25 16:00", tz=NY)
    assert calendars.session_close("XNYS", dt.date(2026, 11, 26)) is None  # Thanksgiving
    assert calendars.session_close("24/7", dt.date(2026, 4, 4)) == \
        pd.Timestamp("2026-04-05 00:00", tz="UTC")


class FakeYahoo:
    """``client`` for YahooSource: five daily bars up to ``last`` (tz-aware, like yfinance)."""

    def __init__(self, last: str, tz: str = NY):
        idx = pd.date_range(end=last, periods=5, name="Date").tz_localize(tz)
        close = np.linspace(100, 104, 5)
        self.frame = pd.DataFrame({"Open": close, "High": close + 1, "Low": close - 1,
                                   "Close": close, "Volume": 1000.0}, index=idx)

    def __call__(self, symbol):
        frame = self.frame

        class Ticker:
            def history(self, **kw):
                return frame.copy()

        return Ticker()


@pytest.mark.parametrize("ticker, last, clock, kept", [
    ("GOOG", "2026-11-27", "2026-11-27 12:30", False),  # early close at 13:00: still open
    ("GOOG", "2026-11-27", "2026-11-27 13:05", True),   # closed (a fixed 17:00 would drop it)
    ("GOOG", "2026-11-25", "2026-11-25 15:55", False),  # a normal day closes at 16:00
    ("GOOG", "2026-11-25", "2026-11-25 16:01", True),
    ("BTC-USD", "2026-04-04", "2026-04-04 22:00", False),  # crypto: open until midnight UTC
])
def test_todays_bar_is_dropped_until_the_sessions_close(ticker, last, clock, kept):
    tz = "UTC" if ticker == "BTC-USD" else NY
    src = YahooSource(client=FakeYahoo(last, tz), sleep=lambda s: None,
                      now=lambda zone: pd.Timestamp(clock).tz_localize(zone))
    df = src.fetch(ticker, None, None, "1d")
    assert (df.index[-1].date() == dt.date.fromisoformat(last)) is kept
    assert len(df) == (5 if kept else 4)


# --------------------------------------------------------------------------- stale data


def yahoo_store(tmp_path, last: str, ticker: str = "ACME", **overrides):
    idx = pd.DatetimeIndex(calendars.sessions(calendars.for_ticker(ticker),
                                              pd.Timestamp(last) - pd.Timedelta(days=60), last),
                           name="Date")
    Store(tmp_path / "data").write(ticker, "1d", pd.DataFrame(
        {"Close": np.linspace(100, 110, len(idx))}, index=idx), "yahoo")
    return load_config(None, ["data.source=yahoo", f"data.ticker={ticker}",
                              f"paths.data_dir={tmp_path / 'data'}",
                              *[f"data.{k}={v}" for k, v in overrides.items()]])


def at(stamp: str, tz: str = NY) -> pd.Timestamp:
    return pd.Timestamp(stamp).tz_localize(tz)


def test_staleness_counts_sessions_not_days(tmp_path):
    # data to Thursday 2026-04-02; Good Friday closed: on Monday before the close nothing is
    # missing (4 calendar days), after it one session is
    cfg = yahoo_store(tmp_path, "2026-04-02", max_age_days=0)
    assert current_prices(cfg, None, False, at("2026-04-06 15:00")).index[-1] == \
        pd.Timestamp("2026-04-02")
    with pytest.raises(DataError, match=r"end on 2026-04-02 \(4 days ago, 1 XNYS sessions "
                                        r"missing: more than data.max_age_days=0\)"):
        current_prices(cfg, None, False, at("2026-04-06 16:30"))
    cfg1 = cfg.model_copy(update={"data": cfg.data.model_copy(update={"max_age_days": 1})})
    current_prices(cfg1, None, False, at("2026-04-06 16:30"))
    # over Christmas: 12-25 closed, 12-26 closed by Monday morning
    cfg = yahoo_store(tmp_path, "2025-12-24", max_age_days=1)
    current_prices(cfg, None, False, at("2025-12-29 09:00"))
    with pytest.raises(DataError, match="2 XNYS sessions missing"):
        current_prices(cfg, None, False, at("2025-12-29 16:30"))
    # crypto misses the weekend's days too
    cfg = yahoo_store(tmp_path, "2026-04-03", ticker="BTC-USD", max_age_days=1)
    with pytest.raises(DataError, match="2 24/7 sessions missing"):
        current_prices(cfg, None, False, at("2026-04-06 12:00", "UTC"))
    assert len(current_prices(cfg, None, True, at("2026-04-06 12:00", "UTC"))) > 0


# --------------------------------------------------------------------------- the store's gap rule


def test_the_gap_rule_counts_sessions(tmp_path):
    idx = calendars.sessions("XNYS", "2026-02-02", "2026-04-30")
    src_file = write_close_csv(tmp_path / "prices.csv", np.linspace(50, 60, len(idx)), idx)
    store = Store(tmp_path / "data")
    store.update(CsvSource(src_file), "ACME", end=dt.date(2026, 4, 2))
    # Good Friday is a holiday, not a gap: Thursday's rows meet Monday's
    result = store.update(CsvSource(src_file), "ACME", start=dt.date(2026, 4, 6))
    assert result.last == dt.date(2026, 4, 30) and not result.up_to_date
    # a missing Tuesday (2026-03-31) is a gap, though only 2 calendar days lie between
    store = Store(tmp_path / "data2")
    store.update(CsvSource(src_file), "ACME", end=dt.date(2026, 3, 30))
    with pytest.raises(DataError, match=r"would leave a gap of 1 XNYS sessions.*--full"):
        store.update(CsvSource(src_file), "ACME", start=dt.date(2026, 4, 1))
    # on weekdays without holidays (24/5), Good Friday would be a missing session
    store = Store(tmp_path / "data3")
    store.update(CsvSource(src_file), "ACME", end=dt.date(2026, 4, 2), calendar="24/5")
    with pytest.raises(DataError, match="gap of 1 24/5 sessions"):
        store.update(CsvSource(src_file), "ACME", start=dt.date(2026, 4, 6), calendar="24/5")


# --------------------------------------------------------------------------- config


def test_a_named_calendar_is_checked_and_normalised(work):
    assert load_config(None, ["data.calendar=xtks"]).data.calendar == "XTKS"
    assert load_config(None, ["data.calendar=NYSE"]).data.calendar == "XNYS"  # an alias
    assert load_config(None, ["data.calendar=24/7"]).data.calendar == "24/7"
    assert load_config(None, ["data.calendar=auto"]).data.calendar is None
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.calendar=XNYZ"])
    assert str(info.value).startswith("<defaults>: data.calendar: unknown calendar 'XNYZ' "
                                      "(did you mean ")
    path = work / "bad.yaml"
    path.write_text("data:\n  calendar: NYSEE\n")
    err = invoke("config", "validate", path, code=2).stderr
    assert "data.calendar: unknown calendar 'NYSEE'" in err
    assert "NYSE" in err and "XTKS" in err and "24/7" in err


def test_help_and_configs_do_not_import_the_calendar_package():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom stockrnn.cli import cli\n"
            "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
            "from stockrnn.config import load_config\n"
            "load_config(None, ['data.ticker=BTC-USD', 'data.calendar=24/7'])\n"
            "assert 'exchange_calendars' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- predict


def test_predict_as_of_gives_the_next_nyse_sessions(horizon_run, tmp_path):
    """The session's horizon-2 run (ticker SYN: NYSE) on a store that runs past Good Friday
    2026: `predict --as-of 2026-04-02 --steps 3` forecasts 04-06, 04-07, 04-08."""
    assert meta(horizon_run)["calendar"] == "XNYS"
    run = copy_run(horizon_run, tmp_path / "run")
    idx = calendars.sessions("XNYS", "2025-06-02", "2026-04-17")
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, len(idx))))
    Store(tmp_path / "data").write("SYN", "1d", pd.DataFrame({"Close": prices},
                                                             index=idx.rename("Date")), "csv")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["paths"]["data_dir"] = str(tmp_path / "data")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = json.loads(invoke("predict", "--run", run, "--as-of", "2026-04-02", "--steps", "3",
                            "--format", "json").stdout)
    assert out["as_of"] == "2026-04-02"
    assert [r["date"] for r in out["forecast"]] == ["2026-04-06", "2026-04-07", "2026-04-08"]
    written = pd.read_csv(run / "forecast_asof_2026-04-02.csv")
    assert list(written["date"]) == ["2026-04-06", "2026-04-07", "2026-04-08"]
    table = invoke("predict", "--run", run, "--as-of", "2026-04-02").stdout
    assert "2026-04-06" in table and "2026-04-03" not in table


PREFETCH = """
import json, sys
from stockrnn.data import calendars

out = {"started": calendars.prefetch("XNYS")}
out["imported_here"] = "exchange_calendars" in sys.modules
got = calendars.sessions("XNYS", "2024-01-01", "2024-12-31")  # the child's schedule
out["imported_after"] = "exchange_calendars" in sys.modules
child = calendars._CACHE.pop("XNYS")
own = calendars.sessions("XNYS", "2024-01-01", "2024-12-31")  # built here
out["equal"] = bool(got.equals(own) and child.schedule.equals(calendars._CACHE["XNYS"].schedule)
                    and (child.tz, child.first, child.last) == (calendars._CACHE["XNYS"].tz,
                    calendars._CACHE["XNYS"].first, calendars._CACHE["XNYS"].last))
out["sessions_2024"] = len(got)
out["again"] = calendars.prefetch("XNYS")  # built now: no child
# a child slower than the caller's wait is ended and gives None (the caller does the work)
import os, time
from stockrnn import forked
forked.start("slow", time.sleep, 30)
[(pid, _)] = forked._pending.values()
t = time.monotonic()
out["slow"] = forked.result("slow", timeout=0.3)
out["slow_waited"] = time.monotonic() - t
try:
    os.kill(pid, 0)
    out["slow_ended"] = False
except ProcessLookupError:
    out["slow_ended"] = True
print(json.dumps(out))
"""


def test_a_prefetched_calendar_is_built_in_a_child_and_taken_from_it(tmp_path):
    """``run`` and ``predict`` start building the forecast's calendar in a forked child before
    they load TensorFlow: the first lookup takes the child's schedule (this process never
    imports exchange_calendars for it), the same as one built here. In a fresh Python (this
    one has TensorFlow loaded, where nothing is forked)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", PREFETCH], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["started"] and not out["imported_here"] and not out["imported_after"]
    assert out["equal"] and out["sessions_2024"] == 252
    assert out["again"] is False
    assert out["slow"] is None and out["slow_waited"] < 5 and out["slow_ended"]
