"""Covariates (data.covariates): other tickers aligned by close time without look-ahead,
indicators from the target's own bars, calendar features of the forecast day, and the commands
that must work with them.

The data are a synthetic pair on real NYSE sessions where LEAD's log return of one day moves
FOLLOW the next (FOLLOW's own past carries nothing), in one long-format CSV (a Name column, as
Kaggle's all_stocks_5yr) with OHLCV for both."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    FUZZ,
    SMOKE,
    error_line,
    evaluate_json,
    explain,
    in_folder,
    interrupt_at,
    invoke,
    last_line,
    prices_from_returns,
    set_args,
)
from hypothesis import given
from hypothesis import strategies as st

from stockrnn import dataset
from stockrnn.config import load_config
from stockrnn.data import calendars, frames
from stockrnn.errors import DataError
from stockrnn.features import covariates

ROWS, BETA, NOISE = 1000, 0.5, 0.006
SESSIONS = calendars.sessions("XNYS", "2015-01-02", "2023-12-29")
INDICATORS = ["rsi_14", "macd", "atr_14", "volatility_20", "volume_z_20", "momentum_5"]


def ohlcv(close: np.ndarray, rng, dates) -> pd.DataFrame:
    """Plausible OHLCV bars around a Close path."""
    open_ = close * np.exp(rng.normal(0, 0.003, len(close)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.004, len(close))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.004, len(close))))
    volume = rng.integers(1_000_000, 5_000_000, len(close)).astype("float64")
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": volume}, index=pd.DatetimeIndex(dates, name="Date")).round(6)


def pair(seed: int = 5, rows: int = ROWS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(FOLLOW, LEAD) bars: r_follow[t] = BETA * r_lead[t-1] + noise."""
    rng = np.random.default_rng(seed)
    lead_r = rng.normal(0.0, 0.01, rows - 1)
    follow_r = np.r_[0.0, BETA * lead_r[:-1]] + rng.normal(0.0, NOISE, rows - 1)
    dates = SESSIONS[:rows]
    return (ohlcv(prices_from_returns(follow_r), rng, dates),
            ohlcv(prices_from_returns(lead_r), rng, dates))


def long_csv(path: Path, frames_by_name: dict[str, pd.DataFrame]) -> Path:
    parts = [f.assign(Name=name).reset_index() for name, f in frames_by_name.items()]
    out = pd.concat(parts)
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False)
    return path


def cfg_of(*overrides: str):
    return load_config(None, list(overrides))


def reader(by_name: dict[str, pd.DataFrame]):
    return lambda t: by_name[t.upper()]


# --------------------------------------------------------------------------- alignment


def test_a_covariate_on_the_same_exchange_gives_its_bar_of_the_same_date():
    follow, lead = pair(rows=60)
    cfg = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[LEAD]")
    out = covariates.attach(follow, cfg, reader({"LEAD": lead}))
    np.testing.assert_array_equal(out["cov:LEAD"].to_numpy(), lead["Close"].to_numpy())


def test_a_covariate_that_closes_later_the_same_date_is_lagged_one_bar():
    """A Tokyo stock with SPY (New York closes after Tokyo on every date): the window at the
    Tokyo close of day t sees SPY's bar of t-1, never t's."""
    target, spy = pair(rows=60)
    cfg = cfg_of("data.ticker=7203.T", "data.covariates.tickers=[SPY]")  # XTKS, same dates
    out = covariates.attach(target, cfg, reader({"SPY": spy}))
    assert out.index[0] == target.index[1]  # Tokyo's first bar closed before any SPY bar
    np.testing.assert_array_equal(out["cov:SPY"].to_numpy(), spy["Close"].to_numpy()[:-1])


def test_days_a_covariate_did_not_trade_are_forward_filled_up_to_max_fill():
    follow, lead = pair(rows=80)
    holey = lead.drop(lead.index[[10, 30, 31, 32]])
    cfg = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[LEAD]",
                 "data.covariates.max_fill=3")
    out = covariates.attach(follow, cfg, reader({"LEAD": holey}))["cov:LEAD"]
    assert out.iloc[10] == lead["Close"].iloc[9]
    assert (out.iloc[30:33] == lead["Close"].iloc[29]).all()
    assert out.iloc[33] == lead["Close"].iloc[33]
    # the log return a window sees is 0 on a forward-filled bar
    assert np.diff(np.log(out.to_numpy()))[29:32].tolist() == [0.0, 0.0, 0.0]

    tight = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[LEAD]",
                   "data.covariates.max_fill=2")
    with pytest.raises(DataError) as err:
        covariates.attach(follow, tight, reader({"LEAD": holey}))
    message = str(err.value)
    assert "LEAD" in message and "data.covariates.max_fill=2" in message
    assert (f"bars {lead.index[30].date()}..{lead.index[32].date()}" in message
            and f"its bar of {lead.index[29].date()}" in message)


def test_covariate_data_that_end_too_early_are_an_error_naming_the_ticker():
    follow, lead = pair(rows=80)
    cfg = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[LEAD]")
    with pytest.raises(DataError, match=r"covariate LEAD: no new bar for the target's bars "
                       + str(follow.index[70].date())):
        covariates.attach(follow, cfg, reader({"LEAD": lead.iloc[:70]}))


def test_a_crypto_covariate_is_seen_up_to_its_bar_closed_before_the_nyse_close():
    """BTC-USD's daily bar of date d closes at midnight UTC, after New York's close of d."""
    follow, _ = pair(rows=40)
    days = pd.date_range(follow.index[0] - pd.Timedelta(days=3), follow.index[-1], name="Date")
    btc = pd.DataFrame({"Close": np.arange(1.0, len(days) + 1)}, index=days)
    cfg = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[BTC-USD]")
    out = covariates.attach(follow, cfg, reader({"BTC-USD": btc}))
    seen = btc["Close"].reindex(out.index - pd.Timedelta(days=1)).to_numpy()
    np.testing.assert_array_equal(out["cov:BTC-USD"].to_numpy(), seen)


# --------------------------------------------------------------------------- indicators, calendar


def test_indicators_follow_their_formulas():
    follow, _ = pair(rows=120)
    c = follow["Close"]
    np.testing.assert_allclose(covariates.indicator(follow, "momentum_5"),
                               np.log(c / c.shift(5)), equal_nan=True)
    np.testing.assert_allclose(covariates.indicator(follow, "volatility_20"),
                               np.log(c).diff().rolling(20).std(), equal_nan=True)
    rsi = covariates.indicator(follow, "rsi_14")
    assert rsi.iloc[:14].isna().all() and rsi.iloc[14:].between(0, 1).all()
    rising = follow.assign(Close=np.linspace(10, 20, 120))
    assert covariates.indicator(rising, "rsi_14").iloc[20:].eq(1.0).all()
    atr = covariates.indicator(follow, "atr_14")
    assert atr.iloc[14:].gt(0).all() and atr.iloc[:14].isna().all()
    with pytest.raises(DataError, match="atr_14 needs the column High, Low"):
        covariates.indicator(follow[["Close"]], "atr_14")


def test_calendar_features_are_those_of_the_forecast_day():
    idx = pd.DatetimeIndex(["2026-03-30", "2026-03-31", "2026-04-01", "2026-04-02"])
    table = covariates.calendar_frame(
        idx, ["day_of_week", "month", "days_since_previous"], 0,
        lambda last, n: calendars.future_dates("XNYS", last, n))
    # row 0 forecasts Tuesday 03-31; the last row (Thursday 04-02) forecasts Monday 04-06,
    # after Good Friday: 4 days since the previous session
    assert table["days_since_previous"].tolist() == [1.0, 1.0, 1.0, 4.0]
    dow = np.arctan2(table["day_of_week_sin"], table["day_of_week_cos"]) / (2 * np.pi) * 7
    np.testing.assert_allclose(np.round(dow.to_numpy()) % 7, [1, 2, 3, 0])
    month = np.arctan2(table["month_sin"], table["month_cos"]) / (2 * np.pi) * 12
    np.testing.assert_allclose(np.round(month.to_numpy()) % 12, [2, 3, 3, 3])  # 0 = January


def test_indicator_warm_up_rows_are_dropped_before_the_split():
    follow, lead = pair(rows=400)
    cfg = cfg_of("data.ticker=FOLLOW", "data.covariates.tickers=[LEAD]",
                 "data.covariates.indicators=[volatility_20]", "window.look_back=5")
    ds = dataset.build(covariates.attach(follow, cfg, reader({"LEAD": lead})), cfg)
    assert ds.transform.first_valid_row == 20  # 20 returns, the first from row 0 to row 1
    # the split's fractions apply to the rows after the warm-up (row 0 is the returns' own)
    assert ds.splits["val"].rows[0] == 19 + round((400 - 19) * 0.7)
    assert ds.transform.features == ("Close", "cov:LEAD", "volatility_20")
    assert all(np.isfinite(s.x).all() for s in ds.splits.values())


# --------------------------------------------------------------------------- no look-ahead


def _windows(ds) -> dict[int, np.ndarray]:
    return {int(a): x for s in ds.splits.values() for a, x in zip(s.anchors, s.x, strict=True)}


LOOK_AHEAD_CASES = {  # target calendar, how many covariate rows at and after the anchor's date
    "same exchange": ("XNYS", 1),   # changing the covariate's later dates only
    "later exchange": ("XTKS", 0),  # New York's bar of the anchor's date closed after Tokyo's
}
ALL_COVARIATES = ["data.covariates.tickers=[LEAD]",
                  f"data.covariates.indicators=[{','.join(INDICATORS)}]",
                  "data.covariates.calendar=[day_of_week,month,days_since_previous]",
                  "data.features=[Close,Volume,High]", "window.look_back=6"]
_BASE = pair(seed=11, rows=260)


@functools.cache
def _base_build(calendar: str):
    """The config and the unchanged pair's dataset of a look-ahead case (built once)."""
    follow, lead = _BASE
    cfg = cfg_of("data.ticker=FOLLOW", f"data.calendar={calendar}", *ALL_COVARIATES)
    return cfg, dataset.build(covariates.attach(follow, cfg, reader({"LEAD": lead})), cfg)


@FUZZ
@given(case=st.sampled_from(sorted(LOOK_AHEAD_CASES)), anchor=st.integers(60, 250),
       later=st.integers(0, 40), which=st.sampled_from(["target", "covariate"]),
       column=st.sampled_from(["Open", "High", "Low", "Close", "Volume"]),
       factor=st.floats(0.5, 2.0).filter(lambda f: abs(f - 1) > 1e-3))
def test_changing_any_later_row_of_the_target_or_a_covariate_changes_no_earlier_window(
        case, anchor, later, which, column, factor):
    """Rows of the target after the anchor, and covariate bars that closed after the target's
    close at the anchor, change no input of any window anchored at or before it (with the
    scaler fixed: a change inside the training rows would refit it, which is the point of
    fitting on training rows, not a look-ahead)."""
    calendar, skip = LOOK_AHEAD_CASES[case]
    follow, lead = _BASE
    cfg, base = _base_build(calendar)

    def build(f, c, transform=None):
        return dataset.build(covariates.attach(f, cfg, reader({"LEAD": c})), cfg,
                             transform=transform)

    date = base.frame.index[min(anchor, len(base.frame) - 1)]
    if which == "target":
        rows = np.flatnonzero(follow.index > date)
        frame, other = follow.copy(), lead
    else:
        rows = np.flatnonzero(lead.index >= date)[skip:]
        frame, other = lead.copy(), follow
    if not len(rows):
        return
    row = rows[min(later, len(rows) - 1)]
    frame.iloc[row, frame.columns.get_loc(column)] *= factor
    frame["High"] = frame[["Open", "High", "Low", "Close"]].max(axis=1)
    frame["Low"] = frame[["Open", "High", "Low", "Close"]].min(axis=1)
    changed = build(frame, other, base.transform) if which == "target" \
        else build(other, frame, base.transform)
    before, after = _windows(base), _windows(changed)
    anchors = [a for a in before if base.frame.index[a] <= date]
    assert anchors
    for a in anchors:
        np.testing.assert_array_equal(before[a], after[a], err_msg=f"window at {a}")


def test_the_look_ahead_check_would_catch_a_covariate_seen_too_early():
    """The property above fails when the alignment takes the covariate's bar of the same date
    from an exchange that closes later (what a naive date join does)."""
    follow, lead = _BASE
    tokyo = cfg_of("data.ticker=FOLLOW", "data.calendar=XTKS", "data.covariates.tickers=[LEAD]")
    naive = follow.assign(**{"cov:LEAD": lead["Close"]})
    aligned = covariates.attach(follow, tokyo, reader({"LEAD": lead}))
    assert not np.array_equal(aligned["cov:LEAD"].to_numpy(),
                              naive["cov:LEAD"].reindex(aligned.index).to_numpy())


# --------------------------------------------------------------------------- the commands


SETTINGS = ["window.look_back=5", "model.units=[8]", "train.epochs=10",
            "train.learning_rate=0.01", "train.batch_size=64"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A folder with the long-format CSV (FOLLOW, LEAD, a second target FOLLOW2 and HOLE,
    LEAD with a month missing) and two trained runs on FOLLOW: with LEAD as a covariate, and
    without."""
    base = tmp_path_factory.mktemp("covariates")
    follow, lead = pair()
    follow2, _ = pair(seed=6)
    hole = lead.drop(lead.index[400:425])
    path = long_csv(base / "all_stocks.csv", {"FOLLOW": follow, "LEAD": lead,
                                              "FOLLOW2": follow2, "HOLE": hole})
    common = ["data.source=csv", f"data.path={path}", "data.ticker=FOLLOW", *SETTINGS]
    with in_folder(base):
        with_cov = invoke("run", "-q", "--no-plots", *set_args(
            [*common, "data.covariates.tickers=[LEAD]", "paths.run_name=cov"]))
        without = invoke("run", "-q", "--no-plots", *set_args([*common, "paths.run_name=plain"]))
    return {"base": base, "csv": path, "common": common, "follow": follow, "lead": lead,
            "with": base / last_line(with_cov), "without": base / last_line(without)}


def oracle_mase(run: Path) -> tuple[float, int]:
    """The MASE of the best possible forecast, P_t * exp(BETA * r_lead_t), on the run's test
    points (rebuilt from the run's own series)."""
    cfg = load_config(run / "config.yaml")
    frame = frames.read_csv(run / "series.csv")
    ds = dataset.build(frame, cfg)
    a = ds.splits["test"].anchors
    lead = frame["cov:LEAD"].to_numpy()
    last, actual = ds.last_prices("test"), ds.actual_prices("test")[:, 0]
    oracle = last * np.exp(BETA * np.log(lead[a] / lead[a - 1]))
    return float(np.mean(np.abs(actual - oracle)) / np.mean(np.abs(actual - last))), len(a)


def test_the_covariate_is_used_mase_near_the_oracle_with_it_and_near_one_without(store):
    """Measured with these settings (training seeds 42, 7, 1): 1.011, 1.034, 1.028 x the
    oracle's MASE with LEAD; 0.995-1.003 without."""
    oracle, n = oracle_mase(store["with"])
    with_cov = evaluate_json(store["with"], "--no-plots")
    without = evaluate_json(store["without"], "--no-plots")
    assert with_cov["n"] == n
    assert oracle < 0.85  # the covariate carries a real edge on this series
    assert with_cov["model"]["mase"] <= oracle * 1.05, (with_cov["model"]["mase"], oracle)
    assert 0.97 <= without["model"]["mase"] <= 1.03, without["model"]["mase"]


def test_the_run_keeps_the_covariate_series_and_evaluates_without_the_store(store, tmp_path):
    run = store["with"]
    saved = frames.read_csv(run / "series.csv")
    np.testing.assert_array_equal(saved["cov:LEAD"], store["lead"]["Close"].loc[saved.index])
    assert json.loads((run / "scaler.json").read_text())["features"] == ["Close", "cov:LEAD"]
    before = evaluate_json(run, "--no-plots")
    with in_folder(tmp_path):  # no data/ here
        assert evaluate_json(run, "--no-plots") == before


def test_predict_needs_the_covariates_latest_bars(store, tmp_path):
    with in_folder(store["base"]):
        fc = json.loads(invoke("predict", "--run", store["with"], "--format", "json").stdout)
    assert fc["as_of"].startswith(str(store["follow"].index[-1].date()))
    assert len(fc["forecast"]) == 1
    shutil.copytree(store["base"] / "data", tmp_path / "data")
    (tmp_path / "data" / "LEAD_1d.csv").unlink()
    with in_folder(tmp_path):
        result = invoke("predict", "--run", store["with"], code=1)
    assert "no stored data for LEAD" in error_line(result)


def test_fetch_config_stores_the_covariates(store, tmp_path):
    with in_folder(tmp_path):
        result = invoke("fetch", "-c", SMOKE,
                        *set_args([*store["common"], "data.covariates.tickers=[LEAD]"]))
    assert result.exit_code == 0, explain(result)
    assert sorted(p.name for p in (tmp_path / "data").glob("*.csv")) == ["FOLLOW_1d.csv",
                                                                         "LEAD_1d.csv"]


@pytest.mark.parametrize("overrides, code, words", [
    (["data.covariates.indicators=[rsi_14,bollinger]"], 2,
     ["data.covariates.indicators", "bollinger", "rsi_<n>"]),
    (["data.covariates.tickers=[NOPE]"], 1, ["NOPE"]),
    (["data.covariates.tickers=[HOLE]"], 1, ["covariate HOLE", "max_fill=5",
                                             str(SESSIONS[400].date())]),
], ids=["unknown indicator", "ticker without data", "gap too long"])
def test_bad_covariate_configs_exit_with_a_message_and_leave_the_store_unchanged(
        store, tmp_path, overrides, code, words):
    data = tmp_path / "data"
    shutil.copytree(store["base"] / "data", data)
    with in_folder(tmp_path):
        if "HOLE" in overrides[0]:  # stored first: only the alignment finds the gap
            invoke("fetch", "-q", "-c", SMOKE, *set_args([*store["common"], *overrides]))
        before = {p.name: p.read_bytes() for p in data.rglob("*") if p.is_file()}
        result = invoke("run", *set_args([*store["common"], *overrides]), code=code)
    message = error_line(result)
    assert all(w in message for w in words), message
    after = {p.name: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert after == before


# --------------------------------------------------------------------------- with every command

TINY = ["window.look_back=5", "model.units=[4]", "train.epochs=2", "train.batch_size=128",
        "data.covariates.tickers=[LEAD]", "data.covariates.indicators=[rsi_14]",
        "data.covariates.calendar=[day_of_week]"]
INPUTS = ["Close", "cov:LEAD", "rsi_14", "day_of_week_sin", "day_of_week_cos"]


@pytest.fixture(scope="module")
def everywhere(store, tmp_path_factory) -> dict:
    """A per-ticker batch, a global model, a backtest and a tune, all with covariates."""
    base = tmp_path_factory.mktemp("everywhere")
    common = ["data.source=csv", f"data.path={store['csv']}", *TINY]
    two = "data.tickers=[FOLLOW,FOLLOW2]"
    out = {"base": base}
    with in_folder(base):
        out["batch"] = json.loads(invoke("run", "--json", *set_args(
            [*common, two, "paths.run_name=b"])).stdout)
        out["global"] = json.loads(invoke("run", "--json", *set_args(
            [*common, two, "model.scope=global", "paths.run_name=g"])).stdout)
        out["backtest"] = json.loads(invoke("backtest", "--json", "--folds", "2", *set_args(
            [*common, "data.ticker=FOLLOW", "paths.run_name=bt"])).stdout)
        tuned = invoke("tune", "--trials", "2", *set_args(
            [*common, "data.ticker=FOLLOW", "paths.run_name=t", "tune.units=[2,6]"]))
        out["tune"] = json.loads((base / last_line(tuned) / "summary.json").read_text())
    return out


def scaler_of(run) -> dict:
    return json.loads((Path(run) / "scaler.json").read_text())


def test_a_batch_trains_every_ticker_with_the_covariates(everywhere):
    rows = everywhere["batch"]["tickers"]
    assert [r["ticker"] for r in rows] == ["FOLLOW", "FOLLOW2"]
    for r in rows:
        assert r["status"] == "ok", r
        run = everywhere["base"] / r["run_dir"]
        assert scaler_of(run)["features"] == INPUTS
        # the run keeps what its inputs are computed from
        assert {"Close", "cov:LEAD"} <= set(frames.read_csv(run / "series.csv").columns)


def test_the_global_model_trains_on_every_ticker_with_the_covariates(everywhere):
    out = everywhere["global"]
    assert out["status"] == "ok" and out["failed"] == []
    scalers = [scaler_of(everywhere["base"] / r["run_dir"]) for r in out["tickers"]]
    assert all(s["features"] == INPUTS for s in scalers)
    assert scalers[0]["scaler"] != scalers[1]["scaler"]  # each ticker's own training rows


def test_a_backtest_fits_the_covariates_scaler_per_fold(everywhere):
    s = everywhere["backtest"]
    assert len(s["folds"]) == 2 and s["pooled"]["n"] == sum(f["n"] for f in s["folds"])
    scalers = [scaler_of(everywhere["base"] / f["run_dir"]) for f in s["folds"]]
    assert all(sc["features"] == INPUTS for sc in scalers)
    assert scalers[0]["scaler"] != scalers[1]["scaler"]


def test_tune_searches_with_the_covariates(everywhere):
    rows = everywhere["tune"]["results"]
    assert len(rows) == 2 and all(np.isfinite(r["val_loss"]) for r in rows)


def test_an_interrupted_run_with_covariates_resumes(store, tmp_path, monkeypatch):
    from stockrnn import training

    args = set_args(["data.source=csv", f"data.path={store['csv']}", "data.ticker=FOLLOW",
                     *TINY, "train.epochs=3", "train.early_stopping.patience=50",
                     "paths.run_name=r"])
    with in_folder(tmp_path):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(training, "epoch_logger", interrupt_at(1, KeyboardInterrupt))
            invoke("train", *args, code=130)
        run = tmp_path / last_line(invoke("train", "--resume", *args))
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 3
    assert scaler_of(run)["features"] == INPUTS
    assert evaluate_json(run)["n"] > 0
