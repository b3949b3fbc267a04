"""`stockrnn predict` on the session's horizon-2 run: business-day dates, recursive steps,
formats, --output, --as-of, stale data."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import HORIZON, HORIZON_LAST_DAY, HORIZON_LOOK_BACK, copy_run, invoke, is_png

LAST_DAY = HORIZON_LAST_DAY
LOOK_BACK = HORIZON_LOOK_BACK
COLUMNS = ["date", "forecast", "lower_80", "upper_80", "lower_95", "upper_95"]


@pytest.fixture(scope="module")
def run(horizon_run, tmp_path_factory):
    """This module's copy of the session's horizon-2 run on an AR(1) series whose last bar is
    Friday LAST_DAY (predict writes its forecast files into it)."""
    return copy_run(horizon_run, tmp_path_factory.mktemp("predict") / "run")


def predict_json(run, *extra, code=0) -> dict:
    """The forecast as JSON (no plot: the plot is tested on its own)."""
    return json.loads(invoke("predict", "--run", run, "--format", "json", "--no-plots", *extra,
                             code=code).stdout)


def stored(run) -> pd.Series:
    return pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"])["Close"]


def check_bands(rows) -> None:
    for r in rows:
        assert r["lower_95"] <= r["lower_80"] <= r["forecast"] <= r["upper_80"] <= r["upper_95"]
        assert r["lower_80"] < r["upper_80"]


def set_config(run, **changes) -> None:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        cfg[section][name] = value
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def age_days(day: str) -> int:
    return (dt.date.today() - dt.date.fromisoformat(day)).days


# --------------------------------------------------------------------------- dates and formats


def test_default_steps_are_the_next_business_days(run):
    fc = predict_json(run)
    assert fc["as_of"] == LAST_DAY
    assert fc["last_price"] == pytest.approx(stored(run).iloc[-1])
    assert fc["recursive"] is False
    # Friday -> Monday, Tuesday
    assert [r["date"] for r in fc["forecast"]] == ["2024-03-11", "2024-03-12"]
    assert not any(r["recursive"] for r in fc["forecast"])
    check_bands(fc["forecast"])


def test_dates_skip_weekends_over_many_steps(run):
    fc = predict_json(run, "--steps", "12")
    dates = [dt.date.fromisoformat(r["date"]) for r in fc["forecast"]]
    expected = [np.busday_offset(LAST_DAY, k, roll="forward").astype(dt.date)
                for k in range(1, 13)]
    assert dates == expected
    assert all(d.weekday() < 5 for d in dates)
    assert dates == sorted(set(dates))


def test_steps_beyond_horizon_are_recursive_and_said_so(run):
    out = invoke("predict", "--run", run, "--steps", "5").stdout
    assert "fed back recursively" in out
    rows = [ln for ln in out.splitlines() if ln[:4].isdigit()]
    assert len(rows) == 5
    assert [ln.rstrip().endswith("*") for ln in rows] == [False] * HORIZON + [True] * (5 - HORIZON)
    fc = predict_json(run, "--steps", "5")
    assert fc["recursive"] is True
    assert [r["recursive"] for r in fc["forecast"]] == [False] * HORIZON + [True] * (5 - HORIZON)
    check_bands(fc["forecast"])
    # bands widen past the trained horizon
    widths = [np.log(r["upper_80"] / r["forecast"]) for r in fc["forecast"]]
    assert all(b > a for a, b in zip(widths[HORIZON - 1:], widths[HORIZON:], strict=False))
    # the trained steps do not change when more steps are asked for
    plain = predict_json(run)
    assert fc["forecast"][:HORIZON] == plain["forecast"]
    # the default output does not claim recursion
    assert "recursively" not in invoke("predict", "--run", run).stdout


def test_recursive_steps_feed_forecasts_back(run):
    """Recompute the 4-step forecast with model.keras: step 3-4 come from a window that ends with
    the forecasts of steps 1-2."""
    from stockrnn.backend import use

    # a model that forecasts "no change" would give the same numbers whatever it was fed: this
    # run's model learned something
    assert json.loads((run / "meta.json").read_text())["best_epoch"] >= 1

    keras = use()
    model = keras.models.load_model(run / "model.keras", compile=False)
    sc = json.loads((run / "scaler.json").read_text())
    prices = list(stored(run).to_numpy(dtype=float))
    out = []
    while len(out) < 4:
        r = np.diff(np.log(prices[-(LOOK_BACK + 1):]))
        x = ((r - sc["scaler"]["offset"][0]) / sc["scaler"]["scale"][0]).astype("float32")
        y = model.predict(x[None, :, None], verbose=0)[0]
        p = prices[-1] * np.exp(y * sc["target_scale"])
        out += list(p)
        prices += list(p)
    fc = predict_json(run, "--steps", "4")
    got = [r["forecast"] for r in fc["forecast"]]
    assert got == pytest.approx(out, abs=2e-4)
    assert len({round(v, 4) for v in got}) == 4  # every step moves: not persistence
    q = json.loads((run / "intervals.json").read_text())["quantiles"]
    assert len(q) == HORIZON
    for k, r in enumerate(fc["forecast"]):
        q80 = q[k]["0.8"] if k < HORIZON else q[-1]["0.8"] * np.sqrt((k + 1) / HORIZON)
        assert r["upper_80"] == pytest.approx(r["forecast"] * np.exp(q80), abs=2e-4)
        assert r["lower_80"] == pytest.approx(r["forecast"] * np.exp(-q80), abs=2e-4)


def test_csv_format(run):
    text = invoke("predict", "--run", run, "--steps", "3", "--format", "csv").stdout
    df = pd.read_csv(io.StringIO(text))
    assert list(df.columns[:6]) == COLUMNS
    assert len(df) == 3
    assert (df["lower_95"] <= df["lower_80"]).all()
    assert (df["lower_80"] <= df["forecast"]).all()
    assert (df["forecast"] <= df["upper_80"]).all()
    assert (df["upper_80"] <= df["upper_95"]).all()
    fc = predict_json(run, "--steps", "3")
    assert list(df["date"]) == [r["date"] for r in fc["forecast"]]
    assert list(df["forecast"]) == pytest.approx([r["forecast"] for r in fc["forecast"]])


def test_json_format_columns(run):
    fc = predict_json(run, "--steps", "3")
    assert set(fc) >= {"as_of", "last_price", "recursive", "forecast"}
    for r in fc["forecast"]:
        assert set(COLUMNS) <= set(r)
        dt.date.fromisoformat(r["date"])


def test_output_file(run, tmp_path):
    target = tmp_path / "out" / "fc.json"
    target.parent.mkdir()
    result = invoke("predict", "--run", run, "--format", "json", "--output", target)
    assert result.stdout == ""
    fc = json.loads(target.read_text())
    assert fc == predict_json(run)
    csv_target = tmp_path / "fc.csv"
    invoke("predict", "--run", run, "--format", "csv", "--output", csv_target)
    assert list(pd.read_csv(csv_target).columns[:6]) == COLUMNS


def test_forecast_csv_and_plot_written_into_the_run(run, tmp_path):
    r = copy_run(run, tmp_path / "copy")
    (r / "forecast.csv").unlink(missing_ok=True)
    (r / "plots" / "forecast.png").unlink(missing_ok=True)
    invoke("predict", "--run", r, "--steps", "2", "--no-plots")
    assert len(pd.read_csv(r / "forecast.csv")) == 2
    assert not (r / "plots" / "forecast.png").exists()  # --no-plots: the forecast only
    invoke("predict", "--run", r, "--steps", "3")
    df = pd.read_csv(r / "forecast.csv")
    assert list(df.columns[:6]) == COLUMNS and len(df) == 3
    assert is_png(r / "plots" / "forecast.png")


# --------------------------------------------------------------------------- --as-of


@pytest.mark.parametrize("as_of, last_bar, first_target", [
    ("2024-01-17", "2024-01-17", "2024-01-18"),   # a Wednesday
    ("2024-01-21", "2024-01-19", "2024-01-22"),   # a Sunday: the Friday before is the last bar
])
def test_as_of_forecasts_from_that_date(run, as_of, last_bar, first_target):
    fc = predict_json(run, "--as-of", as_of)
    assert fc["as_of"] == last_bar
    assert fc["last_price"] == pytest.approx(stored(run)[last_bar])
    assert fc["forecast"][0]["date"] == first_target
    latest = predict_json(run)
    assert fc["forecast"][0]["forecast"] != latest["forecast"][0]["forecast"]
    # the forecast is near the price on that date, not the latest one
    assert abs(np.log(fc["forecast"][0]["forecast"] / fc["last_price"])) < 0.1


def test_as_of_writes_its_own_files_and_keeps_the_current_forecast(run, tmp_path):
    r = copy_run(run, tmp_path / "copy")
    invoke("predict", "--run", r, "--steps", "2")
    current = (r / "forecast.csv").read_bytes()
    invoke("predict", "--run", r, "--as-of", "2024-01-17", "--steps", "3")
    assert (r / "forecast.csv").read_bytes() == current
    past = pd.read_csv(r / "forecast_asof_2024-01-17.csv")
    assert list(past.columns[:6]) == COLUMNS and len(past) == 3
    assert past["date"].iloc[0] == "2024-01-18"
    assert is_png(r / "plots" / "forecast_asof_2024-01-17.png")


def test_as_of_before_the_data_exits_1(run):
    result = invoke("predict", "--run", run, "--as-of", "1990-01-01", code=1)
    assert "on or before 1990-01-01" in result.stderr


# --------------------------------------------------------------------------- stale and missing data


def test_stale_yahoo_data_exits_1_unless_allowed(run, tmp_path):
    r = copy_run(run, tmp_path / "yahoo")
    set_config(r, data__source="yahoo", data__path=None)
    before = age_days(LAST_DAY)
    result = invoke("predict", "--run", r, code=1)
    after = age_days(LAST_DAY)
    err = result.stderr
    assert "Traceback" not in result.output
    assert f"end on {LAST_DAY}" in err
    assert f"({before} days ago" in err or f"({after} days ago" in err
    assert "max_age_days=7" in err and "--allow-stale" in err
    fc = json.loads(invoke("predict", "--run", r, "--format", "json", "--allow-stale").stdout)
    assert fc["as_of"] == LAST_DAY
    # --as-of also opts out of the staleness check (it asks for the past on purpose)
    invoke("predict", "--run", r, "--as-of", "2024-02-01")
    # a larger max_age_days accepts the data
    set_config(r, data__max_age_days=before + 30)
    invoke("predict", "--run", r)


def test_stale_csv_data_only_warns(run):
    result = invoke("predict", "--run", run)
    assert f"end on {LAST_DAY}" in result.stderr


def test_missing_stored_data_exits_1(run, tmp_path):
    r = copy_run(run, tmp_path / "nodata")
    set_config(r, paths__data_dir=str(tmp_path / "empty-store"))
    result = invoke("predict", "--run", r, code=1)
    assert "no stored data for SYN" in result.stderr
    assert "Traceback" not in result.output
