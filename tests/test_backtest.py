"""``stockrnn backtest``: the fold plan, the files and JSON it writes, no look-ahead across
folds (with real training), and honest verdicts on series whose answers are known: a random
walk (no edge: MASE 1.00 +- 0.03, Diebold-Mariano does not reject) and AR(1) log returns (an
edge close to the oracle's, significant, and worth money before costs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import invoke

from stockrnn import backtest, dataset
from stockrnn.config import load_config
from stockrnn.data.sources import SyntheticSource
from stockrnn.errors import ConfigError
from stockrnn.options import RunOptions

TINY = ["data.source=synthetic", "window.look_back=5", "model.units=[4]", "train.epochs=2",
        "paths.run_name=bt"]


def run_backtest(*args):
    """``stockrnn backtest ARGS`` in-process; the caller checks the exit code."""
    return invoke("backtest", *args, code=None)


def sets(items):
    return [a for item in items for a in ("--set", item)]


def cfg_of(*extra):
    return load_config(None, [*TINY, *extra])


# --------------------------------------------------------------------------- the plan


@pytest.mark.parametrize("refit,models", [("always", [0, 1, 2, 3, 4]), ("never", [0] * 5),
                                          ("every:2", [0, 0, 2, 2, 4])])
def test_plan_cuts_consecutive_folds_after_the_training_rows(refit, models):
    cfg = cfg_of(f"backtest.refit={refit}")
    folds = backtest.plan(1000, cfg)
    assert [f.model_fold for f in folds] == models
    assert folds[0].test_start == 850  # the train+val fractions of the history
    assert folds[-1].test_end == 1000
    for a, b in zip(folds, folds[1:], strict=False):
        assert a.test_end == b.test_start  # consecutive, no gap, no overlap
    for f in folds:
        m = folds[f.model_fold]
        # the model trains and validates only on rows before its own first target, which is
        # never after the fold's
        assert m.start < m.val_start < m.test_start <= f.test_start < f.test_end
        assert (m.start, m.val_start) == (f.start, f.val_start)


def test_rolling_window_trains_on_the_last_rows_only():
    folds = backtest.plan(1000, cfg_of("backtest.window=rolling:300", "backtest.folds=3"))
    for f in folds:
        assert f.test_start - f.start == 300
        assert f.val_start - f.start == round(300 * 0.70 / 0.85)


@pytest.mark.parametrize("extra,words", [
    (["backtest.folds=200"], "need at least"),
    (["backtest.window=rolling:5"], "need at least"),
    (["backtest.min_train=6"], "need at least"),
    (["backtest.folds=150", "window.horizon=2"], "fewer folds"),
])
def test_impossible_plans_say_how_many_rows_are_needed(extra, words):
    with pytest.raises(ConfigError, match=words):
        backtest.plan(1000, cfg_of(*extra))


@pytest.mark.parametrize("flag,value", [("--refit", "every:0"), ("--refit", "sometimes"),
                                        ("--window", "rolling:0"), ("--folds", "0")])
def test_bad_flags_exit_2(work, flag, value):
    result = run_backtest(*sets(TINY), "--set", "data.ticker=RW1", flag, value)
    assert result.exit_code == 2, result.output
    assert not (work / "runs").exists() or not list((work / "runs").rglob("summary.json"))


def test_more_folds_than_the_data_allow_exits_2_before_training(work):
    result = run_backtest(*sets(TINY), "--set", "data.ticker=RW1", "--folds", "500")
    assert result.exit_code == 2
    assert "need at least" in result.stderr
    assert not list(work.rglob("model.keras"))


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One real backtest (3 folds, refit every:2: folds 0 and 2 train, fold 1 reuses fold 0's
    model) through the CLI, JSON out."""
    base = tmp_path_factory.mktemp("bt")
    args = ["backtest", *sets([*TINY, "data.ticker=RW1", f"paths.data_dir={base / 'data'}",
                               f"paths.runs_dir={base / 'runs'}"]), "--folds", "3",
            "--refit", "every:2", "--json"]
    result = invoke(*args, code=None)
    assert result.exit_code == 0, result.output + str(result.exception)
    return base, json.loads(result.stdout)


def test_summary_json_has_the_documented_shape(ran):
    base, s = ran
    assert {"backtest_dir", "config", "refit", "window", "folds", "pooled", "trading",
            "seconds"} <= set(s)
    assert len(s["folds"]) == 3
    for f in s["folds"]:
        assert {"fold", "first", "last", "n", "train_rows", "run_dir", "model",
                "persistence"} <= set(f)
        assert set(f["model"]) >= {"mae", "mase", "directional_accuracy"}
    p = s["pooled"]
    assert p["n"] == sum(f["n"] for f in s["folds"])
    assert set(p["model"]) >= {"mae", "rmse", "mape", "mase", "directional_accuracy",
                               "direction_p_value", "dm_statistic", "dm_p_value"}
    assert {"persistence", "drift", "moving_average"} <= set(p["baselines"]) <= {
        "persistence", "drift", "moving_average", "auto_arima", "auto_ets"}
    assert p["baselines"]["persistence"]["mase"] == pytest.approx(1.0)
    assert set(p["intervals"]) == {"0.8", "0.95"}
    t = s["trading"]
    for key in ("strategy", "drift_strategy", "buy_and_hold"):
        for kind in ("gross", "net"):
            assert {"total_return", "annual_return", "annual_volatility", "sharpe",
                    "max_drawdown", "turnover", "exposure"} <= set(t[key][kind])
    on_disk = json.loads((Path(s["backtest_dir"]) / "summary.json").read_text())
    assert on_disk == s


def test_files_and_pooled_metrics_agree(ran):
    _, s = ran
    out = Path(s["backtest_dir"])
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns)[:13] == ["date", "origin", "fold", "step", "actual", "model",
                                       "lower_80", "upper_80", "lower_95", "upper_95",
                                       "persistence", "drift", "moving_average"]
    assert list(pred.columns)[13:] in ([], ["auto_arima", "auto_ets"])
    assert len(pred) == s["pooled"]["n"]
    assert pred["date"].is_monotonic_increasing and pred["date"].is_unique
    assert (pred["origin"] < pred["date"]).all()
    mae = (pred["actual"] - pred["model"]).abs().mean()
    pers = (pred["actual"] - pred["persistence"]).abs().mean()
    assert s["pooled"]["model"]["mae"] == pytest.approx(mae, rel=1e-5)
    assert s["pooled"]["model"]["mase"] == pytest.approx(mae / pers, rel=1e-5)
    folds = pd.read_csv(out / "folds.csv")
    assert folds["n"].tolist() == [f["n"] for f in s["folds"]]
    for png in ("fold_mase", "cumulative_error", "equity"):
        assert (out / "plots" / f"{png}.png").stat().st_size > 1000
    assert (out / "config.yaml").is_file()


def test_each_folds_model_is_an_ordinary_run(ran, monkeypatch):
    base, s = ran
    monkeypatch.chdir(base)
    fold = s["folds"][2]  # trained its own model (fold 1 reuses fold 0's)
    assert s["folds"][1]["run_dir"] == s["folds"][0]["run_dir"] != fold["run_dir"]
    # the fold runs draw no plots of their own without --plots (the backtest's cover them)
    assert not [p for f in s["folds"] for p in Path(f["run_dir"], "plots").glob("*.png")]
    result = invoke("evaluate", "--run", fold["run_dir"], "--json", code=None)
    assert result.exit_code == 0, result.output
    res = json.loads(result.stdout)
    assert res["n"] == fold["n"] and res["first"] == fold["first"]
    assert res["model"]["mae"] == pytest.approx(fold["model"]["mae"], rel=1e-6)
    rows = json.loads(invoke("compare", fold["run_dir"], "--format", "json").stdout)
    assert rows[0]["mase"] == pytest.approx(fold["model"]["mase"], rel=1e-6)
    board = json.loads(invoke("compare", s["backtest_dir"], "--format", "json").stdout)
    assert sorted(r["run"] for r in board) == sorted({f["run_dir"] for f in s["folds"]})


def test_jobs_2_gives_the_serial_numbers_and_plots_change_nothing(ran):
    """--jobs 2 (with --plots: each fold run draws its own plots too) gives the numbers of
    the serial backtest without plots."""
    base, serial = ran
    args = ["backtest", *sets([*TINY, "data.ticker=RW1", f"paths.data_dir={base / 'data'}",
                               f"paths.runs_dir={base / 'runs'}"]), "--folds", "3",
            "--refit", "every:2", "--json", "--jobs", "2", "--plots"]
    result = invoke(*args, code=None)
    assert result.exit_code == 0, result.output
    parallel = json.loads(result.stdout)
    assert parallel["pooled"] == serial["pooled"]
    assert parallel["trading"] == serial["trading"]
    assert [f["model"] for f in parallel["folds"]] == [f["model"] for f in serial["folds"]]
    for f in parallel["folds"]:
        assert {p.name for p in Path(f["run_dir"], "plots").glob("*.png")} == {
            "loss.png", "predictions_test.png", "residuals_test.png"}


def test_a_multi_ticker_config_backtests_every_ticker(work):
    result = run_backtest(*sets([*TINY, "data.tickers=[RW1, AR1]", "backtest.refit=never"]),
                    "--folds", "2", "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert sorted(s["tickers"]) == ["AR1", "RW1"]
    for t, one in s["tickers"].items():
        assert one["ticker"] == t and len(one["folds"]) == 2
        assert (Path(one["backtest_dir"]) / "predictions.csv").is_file()
    assert json.loads((Path(s["backtest_dir"]) / "summary.json").read_text()) == s


def test_horizon_2_text_output_and_gate(work):
    """Horizon 2 (each step forecast from each origin), the text tables, and the quality gate,
    which exits 3 after everything is written."""
    result = run_backtest(*sets([*TINY, "data.ticker=AR2", "window.horizon=2",
                                 "backtest.refit=never"]), "--folds", "2", "--max-mase", "0.5")
    assert result.exit_code == 3, result.output
    assert "quality gate failed" in result.stderr
    text, out = result.stdout, Path(result.stdout.splitlines()[-1])
    assert "pooled:" in text and "persistence" in text and "verdict: the model is" in text
    assert "Diebold-Mariano" in text and "buy and hold" in text and "horizon 2" in text
    s = json.loads((out / "summary.json").read_text())
    pred = pd.read_csv(out / "predictions.csv")
    assert sorted(pred["step"].unique()) == [1, 2]
    assert len(pred) == 2 * s["pooled"]["n"] and s["pooled"]["horizon"] == 2
    one, two = pred[pred["step"] == 1], pred[pred["step"] == 2]
    assert (one["origin"].to_numpy() == two["origin"].to_numpy()).all()
    assert (one["date"].to_numpy() < two["date"].to_numpy()).all()
    # within a fold, step 2 of one origin is step 1 of the next: the same actual price (an
    # origin whose step 2 would fall in the next fold belongs to neither)
    for k in (0, 1):
        a, b = one[one["fold"] == k], two[two["fold"] == k]
        np.testing.assert_allclose(b["actual"].to_numpy()[:-1], a["actual"].to_numpy()[1:])
    assert s["pooled"]["model"]["dm_p_value"] is not None


# --------------------------------------------------------------------------- no look-ahead


def test_changing_rows_after_a_fold_changes_nothing_in_its_forecasts(work):
    """Real training, fixed seeds: fold 0's forecasts are identical whatever comes after it."""
    cfg = cfg_of("data.ticker=RW4", "backtest.folds=2", "train.epochs=3")
    frame = SyntheticSource().fetch("RW4", None, None, "1d")
    folds = backtest.plan(len(frame), cfg)
    changed = frame.copy()
    after = slice(folds[0].test_end, None)
    changed.iloc[after, 0] = changed.iloc[after, 0].to_numpy()[::-1] * 1.7

    def fold0(f: pd.DataFrame, name: str) -> dict:
        job = backtest.Job(cfg.to_dict(), dataset.select(f, cfg), (folds[0],),
                           str(work / name))
        return backtest.run_job(job, RunOptions(progress="none"))[0]["forecasts"]

    a, b = fold0(frame, "a"), fold0(changed, "b")
    for key in ("model", "actual", "persistence", "drift", "moving_average", "lower_95"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# --------------------------------------------------------------------------- known answers


def _run(work, ticker, *extra):
    result = run_backtest(*sets(["data.source=synthetic", f"data.ticker={ticker}",
                                       "window.look_back=5", "model.units=[8]",
                                       "train.epochs=30", "train.early_stopping.patience=4",
                                       "backtest.refit=never", "backtest.folds=3",
                                       "backtest.min_train=750",
                                       "paths.run_name=known", *extra]), "--json")
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    return s, pd.read_csv(Path(s["backtest_dir"]) / "predictions.csv")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walk_no_edge_and_costs_are_exactly_the_difference(work, seed):
    s, pred = _run(work, f"RW{seed}")
    p = s["pooled"]["model"]
    assert 0.97 <= p["mase"] <= 1.03
    assert p["dm_p_value"] > 0.05
    assert s["pooled"]["verdict"].startswith("not distinguishable")
    t = s["trading"]["strategy"]
    cost = t["net"]["turnover"] * s["trading"]["cost_bps"] / 1e4
    # net returns are below gross by exactly the costs paid, period by period: rebuild both
    last, actual = pred["persistence"].to_numpy(), pred["actual"].to_numpy()
    pos = (np.log(pred["model"].to_numpy() / last) > 0).astype(float)
    turnover = np.abs(np.diff(np.concatenate([[0.0], pos])))
    gross = pos * (actual / last - 1)
    net = gross - turnover * 5 / 1e4
    assert np.prod(1 + gross) - 1 == pytest.approx(t["gross"]["total_return"], rel=1e-6)
    assert np.prod(1 + net) - 1 == pytest.approx(t["net"]["total_return"], rel=1e-6)
    assert turnover.sum() * 5 / 1e4 == pytest.approx(cost)


def test_ar1_edge_is_close_to_the_oracle_significant_and_earns_before_costs(work):
    s, pred = _run(work, "AR3")
    frame = SyntheticSource().fetch("AR3", None, None, "1d")["Close"]
    prices = frame.to_numpy()
    pos = {d: i for i, d in enumerate(frame.index.strftime("%Y-%m-%d"))}
    origin = np.array([pos[d] for d in pred["origin"]])
    r_last = np.log(prices[origin] / prices[origin - 1])
    oracle = prices[origin] * np.exp(SyntheticSource.PHI * r_last)
    actual = pred["actual"].to_numpy()
    oracle_mase = np.abs(actual - oracle).mean() / np.abs(actual - pred["persistence"]).mean()
    p = s["pooled"]["model"]
    assert oracle_mase < 0.95  # there is an edge to find
    assert p["mase"] <= oracle_mase * 1.05
    assert p["dm_p_value"] < 0.01 and p["dm_statistic"] < 0
    assert s["pooled"]["verdict"].startswith("better than persistence")
    assert s["trading"]["strategy"]["gross"]["sharpe"] > 1.0
