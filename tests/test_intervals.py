"""data.intervals: the bar intervals stockrnn knows and what each means; an unknown one is an
error that lists the valid names (a config error, exit 2)."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import invoke

from stockrnn.config import load_config
from stockrnn.data import intervals
from stockrnn.errors import ConfigError


def test_get_and_the_table():
    assert intervals.get("1d") == intervals.Interval("1d", "B", 252, True)
    assert intervals.NAMES == tuple(intervals.TABLE)
    assert set(intervals.DAILY) == {"1d", "5d", "1wk", "1mo", "3mo"}
    for name, iv in intervals.TABLE.items():
        assert iv.name == name and iv.per_year > 0
        pd.tseries.frequencies.to_offset(iv.freq)  # a pandas frequency
    # the finer the bars, the more of them in a year
    per_year = [intervals.get(n).per_year for n in ("1m", "5m", "1h", "1d", "1wk", "1mo", "3mo")]
    assert per_year == sorted(per_year, reverse=True)


def test_unknown_interval_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        intervals.get("7d")
    assert str(info.value) == ("unknown interval '7d'; valid: 1m, 2m, 5m, 15m, 30m, 60m, 90m, "
                               "1h, 1d, 5d, 1wk, 1mo, 3mo")


def test_unknown_interval_in_a_config_is_a_config_error(work):
    with pytest.raises(ConfigError) as info:
        load_config(None, ["data.interval=7d"])
    assert info.value.exit_code == 2
    assert str(info.value).startswith("<defaults>: data.interval: unknown interval '7d'")
    path = work / "weekly.yaml"
    path.write_text("data:\n  interval: 7d\n")
    result = invoke("config", "validate", path, code=2)
    assert result.stderr.startswith("Error: ")
    for name in intervals.NAMES:
        assert name in result.stderr
    invoke("run", "-c", path, code=2)  # refused before anything runs
    assert list(work.iterdir()) == [path]
