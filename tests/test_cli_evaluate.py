"""`stockrnn evaluate` on the session's smoke run: schema, baselines recomputed here from
series.csv, the model's forecasts recomputed here from model.keras, plots, the --max-mase gate,
per-step metrics of a horizon-2 run, finding runs by name, and damaged or missing runs
(evaluate and predict: exit 1, one `Error:` line, never a traceback)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import (
    copy_run,
    error_line,
    evaluate_json,
    invoke,
    is_png,
    series,
    split_anchors,
)

METRIC_KEYS = {"mae", "rmse", "mape", "mase", "directional_accuracy", "direction_p_value"}


def look_back(run) -> int:
    return yaml.safe_load((run / "config.yaml").read_text())["window"]["look_back"]


@pytest.fixture(scope="module")
def smoke(smoke_run, tmp_path_factory):
    """This module's copy of the session's smoke run, as runs/smoke/<stamp> with its latest
    pointer (evaluate writes into it)."""
    run = copy_run(smoke_run, tmp_path_factory.mktemp("evaluate") / "runs" / "smoke" /
                   smoke_run.name)
    (run.parent / "latest").write_text(run.name + "\n")
    return run


@pytest.fixture(scope="module")
def scored(smoke):
    return evaluate_json(smoke)


@pytest.fixture(scope="module")
def horizon2(horizon_run, tmp_path_factory):
    return copy_run(horizon_run, tmp_path_factory.mktemp("horizon") / "20240101T000000Z")


def independent_baselines(prices: np.ndarray, anchors: np.ndarray, lb: int, train_end: int,
                          horizon: int = 1) -> dict[str, np.ndarray]:
    """Forecasts for steps 1..horizon, (n, horizon), computed without stockrnn."""
    steps = np.arange(1, horizon + 1)
    last = prices[anchors]
    changes = np.diff(prices[:train_end])
    ma = np.array([prices[a - lb + 1: a + 1].mean() for a in anchors])
    return {"persistence": np.repeat(last[:, None], horizon, axis=1),
            "drift": last[:, None] + changes.mean() * steps[None, :],
            "moving_average": np.repeat(ma[:, None], horizon, axis=1)}


# --------------------------------------------------------------------------- schema


def test_json_schema_and_metrics_file(smoke, scored):
    m = scored
    assert {"run", "split", "n", "model", "baselines"} <= set(m)
    assert m["split"] == "test"
    assert m["run"] == str(smoke)
    assert isinstance(m["n"], int) and m["n"] > 100
    assert METRIC_KEYS <= set(m["model"])
    # the classical ones (auto_arima, auto_ets) join them with the stats extra: test_classical.py
    assert {"persistence", "drift", "moving_average"} <= set(m["baselines"]) <= {
        "persistence", "drift", "moving_average", "auto_arima", "auto_ets"}
    for block in m["baselines"].values():
        assert METRIC_KEYS <= set(block)
    for key in ("mae", "rmse", "mape", "mase"):
        assert isinstance(m["model"][key], float) and m["model"][key] > 0
    assert 0.0 <= m["model"]["directional_accuracy"] <= 1.0
    assert 0.0 <= m["model"]["direction_p_value"] <= 1.0
    on_disk = json.loads((smoke / "metrics_test.json").read_text())
    assert on_disk == m


def test_table_output_lists_model_and_baselines(smoke, scored):
    out = invoke("evaluate", "--run", smoke).stdout
    assert out.splitlines()[0] == f"run {smoke}"
    assert f"test split: {scored['n']} points" in out
    for name in ("model", "persistence", "drift", "moving_average"):
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        mae = (scored["model"] if name == "model" else scored["baselines"][name])["mae"]
        assert f"{mae:.4f}" in line
    assert "interval coverage: 80% ->" in out


# --------------------------------------------------------------------------- MASE and baselines


def test_persistence_mase_is_one_and_model_mase_is_the_ratio(scored):
    per = scored["baselines"]["persistence"]
    assert per["mase"] == 1.0
    assert per["directional_accuracy"] is None
    model = scored["model"]
    assert model["mae"] / per["mae"] == pytest.approx(model["mase"], rel=1e-12)
    for name in ("drift", "moving_average"):
        b = scored["baselines"][name]
        assert b["mae"] / per["mae"] == pytest.approx(b["mase"], rel=1e-12)


def test_baselines_match_an_independent_computation(smoke, scored):
    s = series(smoke)
    prices = s.to_numpy(dtype=float)
    lb = look_back(smoke)
    anchors = split_anchors(len(prices), lb)["test"]
    assert scored["n"] == len(anchors)
    assert scored["first"] == str(s.index[anchors[0] + 1].date())
    assert scored["last"] == str(s.index[-1].date())
    actual = prices[anchors + 1]
    train_end = int(round(len(prices) * 0.70))
    base = independent_baselines(prices, anchors, lb, train_end)
    for name, forecast in base.items():
        got = scored["baselines"][name]
        err = actual - forecast[:, 0]
        assert got["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-9), name
        assert got["rmse"] == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-9), name
        assert got["mape"] == pytest.approx(np.mean(np.abs(err / actual)) * 100, rel=1e-9), name
    # the baselines are genuinely different forecasts
    maes = [scored["baselines"][k]["mae"] for k in base]
    assert len(set(np.round(maes, 6))) == 3


def test_model_forecasts_match_model_keras_on_past_windows(smoke, scored):
    """Recompute the model's test forecasts from model.keras, scaler.json and series.csv, with
    windows that end at the anchor (never later): the same MAE means no look-ahead in evaluate."""
    from stockrnn.backend import use

    keras = use()
    model = keras.models.load_model(smoke / "model.keras", compile=False)
    sc = json.loads((smoke / "scaler.json").read_text())
    prices = series(smoke).to_numpy(dtype=float)
    lb = look_back(smoke)
    anchors = split_anchors(len(prices), lb)["test"]
    r = np.diff(np.log(prices))                      # r[j-1] is the return that ends on row j
    z = (r - sc["scaler"]["offset"][0]) / sc["scaler"]["scale"][0]
    x = np.stack([z[a - lb: a] for a in anchors])[..., None].astype("float32")
    y = model.predict(x, verbose=0)[:, 0]
    pred = prices[anchors] * np.exp(y * sc["target_scale"])
    mae = np.mean(np.abs(prices[anchors + 1] - pred))
    assert scored["model"]["mae"] == pytest.approx(mae, rel=1e-5)
    per = np.mean(np.abs(prices[anchors + 1] - prices[anchors]))
    assert scored["model"]["mase"] == pytest.approx(mae / per, rel=1e-5)


def test_plots_are_real_pngs(smoke, scored):
    for name in ("predictions_test.png", "residuals_test.png"):
        path = smoke / "plots" / name
        assert is_png(path), path


# --------------------------------------------------------------------------- options


def test_no_plots_scores_the_same_and_draws_nothing(smoke, scored, tmp_path):
    run = copy_run(smoke, tmp_path / "run")
    shutil.rmtree(run / "plots")
    result = evaluate_json(run, "--no-plots")
    assert result == {**scored, "run": str(run)}
    assert json.loads((run / "metrics_test.json").read_text()) == result
    assert not (run / "plots").exists()


def test_val_split(smoke, scored):
    val = evaluate_json(smoke, "--split", "val")
    assert val["split"] == "val"
    prices = series(smoke)
    anchors = split_anchors(len(prices), look_back(smoke))["val"]
    assert val["n"] == len(anchors)
    assert val["first"] == str(prices.index[anchors[0] + 1].date())
    assert val["last"] == str(prices.index[int(round(len(prices) * 0.85)) - 1].date())
    assert val["baselines"]["persistence"]["mase"] == 1.0
    assert val["model"]["mae"] != scored["model"]["mae"]
    assert json.loads((smoke / "metrics_val.json").read_text()) == val
    assert is_png(smoke / "plots" / "predictions_val.png")
    # the val split's interval coverage is what the conformal quantiles were fitted on
    for lv in ("0.8", "0.95"):
        assert val["intervals"][lv]["coverage"] >= float(lv) - 0.01


def test_max_mase_gate_exits_3_and_still_writes_metrics(smoke, tmp_path):
    run = copy_run(smoke, tmp_path / "copy")
    (run / "metrics_test.json").unlink()
    result = invoke("evaluate", "--run", run, "--max-mase", "0.01", code=3)
    assert "quality gate failed" in result.stderr
    assert "--max-mase 0.01" in result.stderr
    written = json.loads((run / "metrics_test.json").read_text())
    assert written["model"]["mase"] > 0.01
    assert f"{written['model']['mase']:.4f}" in result.stderr
    # a gate the model passes exits 0
    invoke("evaluate", "--run", run, "--max-mase", str(written["model"]["mase"] + 1e-6))


def test_horizon_2_reports_per_step_metrics(horizon2):
    m = evaluate_json(horizon2)
    assert m["horizon"] == 2
    steps = m["model"]["per_step"]
    assert len(steps) == 2
    for step in steps:
        assert METRIC_KEYS <= set(step)
    prices = series(horizon2).to_numpy(dtype=float)
    lb = look_back(horizon2)
    anchors = split_anchors(len(prices), lb, horizon=2)["test"]
    assert m["n"] == len(anchors)
    train_end = int(round(len(prices) * 0.70))
    base = independent_baselines(prices, anchors, lb, train_end, horizon=2)
    actual = prices[anchors[:, None] + np.arange(1, 3)[None, :]]
    for name, forecast in base.items():
        got = m["baselines"][name]["per_step"]
        for k in range(2):
            assert got[k]["mae"] == pytest.approx(np.mean(np.abs(actual[:, k] - forecast[:, k])),
                                                  rel=1e-9), (name, k)
        # all steps have the same points, so the overall MAE is the mean of the steps'
        assert m["baselines"][name]["mae"] == pytest.approx(np.mean([g["mae"] for g in got]))
    per = m["baselines"]["persistence"]["per_step"]
    assert [p["mase"] for p in per] == [1.0, 1.0]
    # a random-walk-like price drifts further from the last value the further ahead
    assert per[0]["mae"] < per[1]["mae"]
    for k in range(2):
        assert steps[k]["mase"] == pytest.approx(steps[k]["mae"] / per[k]["mae"], rel=1e-12)
    assert len(m["intervals"]["0.8"]["per_step"]) == 2
    table = invoke("evaluate", "--run", horizon2).stdout
    assert "model MASE per step: " + " ".join(f"{s['mase']:.3f}" for s in steps) in table


# --------------------------------------------------------------------------- finding runs


def test_run_name_resolves_to_latest(smoke, tmp_path):
    runs_dir = tmp_path / "runs"
    newest = copy_run(smoke, runs_dir / "smoke" / "20990101T000000Z")
    older = copy_run(smoke, runs_dir / "smoke" / "20000101T000000Z")
    for run in (newest, older):
        (run / "metrics_test.json").unlink(missing_ok=True)
    (runs_dir / "smoke" / "latest").write_text(newest.name + "\n")
    out = invoke("evaluate", "--run", "smoke", "--runs-dir", runs_dir).stdout
    assert out.splitlines()[0] == f"run {newest}"
    assert (newest / "metrics_test.json").is_file()
    assert not (older / "metrics_test.json").exists()
    # the pointer decides, not the name order
    (runs_dir / "smoke" / "latest").write_text(older.name + "\n")
    m = evaluate_json("smoke", "--runs-dir", runs_dir)
    assert m["run"] == str(older)


def test_run_name_from_cwd_runs_folder(smoke, tmp_path):
    # the autouse fixture runs every test in tmp_path, without $STOCKRNN_RUNS_DIR
    shutil.copytree(smoke.parent, tmp_path / "runs" / "smoke")
    m = evaluate_json("smoke")
    assert Path(m["run"]).resolve() == (tmp_path / "runs" / "smoke" / smoke.name).resolve()
    assert (tmp_path / "runs" / "smoke" / smoke.name / "metrics_test.json").is_file()


# --------------------------------------------------------------------------- finding runs that are not there


def test_nonexistent_run_exits_1(work):
    result = invoke("evaluate", "--run", "no-such-run", "--runs-dir", work, code=1)
    assert "no-such-run" in result.stderr
    assert "Traceback" not in result.output
    missing = work / "runs" / "lstm" / "20990101T000000Z"
    msg = error_line(invoke("evaluate", "--run", missing, code=1))
    assert str(missing) in msg and "no run directory" in msg, msg
    msg = error_line(invoke("predict", "--run", "nosuchname", code=1))
    assert "'nosuchname'" in msg


def test_run_name_without_latest_exits_1(work):
    (work / "runs" / "empty").mkdir(parents=True)
    result = invoke("evaluate", "--run", "empty", "--runs-dir", work / "runs", code=1)
    assert "latest" in result.stderr


# --------------------------------------------------------------------------- damaged runs


@pytest.fixture
def damaged(smoke, work) -> Path:
    """A private copy of the (evaluated) smoke run, to damage."""
    return copy_run(smoke, work / "run")


def test_truncated_model_exits_1_with_a_message(damaged, smoke, scored):
    model = damaged / "model.keras"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    (damaged / "metrics_test.json").unlink()
    for cmd in ("evaluate", "predict"):
        result = invoke(cmd, "--run", damaged, code=1)
        assert result.stderr.startswith("Error: ")
        msg = error_line(result)
        assert msg.startswith(f"{model}: cannot load the model") and "retrain" in msg, msg
    assert not (damaged / "metrics_test.json").exists()  # nothing written


def test_missing_model_exits_1(damaged):
    (damaged / "model.keras").unlink()
    for cmd in ("evaluate", "predict"):
        msg = error_line(invoke(cmd, "--run", damaged, code=1))
        assert msg == f"{damaged / 'model.keras'}: missing"


def test_incompatible_run_format_exits_1(damaged):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["format"] = 99
    (damaged / "meta.json").write_text(json.dumps(meta))
    for cmd in ("evaluate", "predict"):
        msg = error_line(invoke(cmd, "--run", damaged, code=1))
        assert "run format 99 is not supported" in msg and "retrain" in msg, msg


def test_unreadable_meta_json(damaged):
    (damaged / "meta.json").write_text('{"format": 1, "status": "comp')
    msg = error_line(invoke("evaluate", "--run", damaged, code=1))
    assert "meta.json is unreadable" in msg, msg


def test_incomplete_run_exits_1(damaged):
    meta = json.loads((damaged / "meta.json").read_text())
    meta["status"] = "incomplete"
    (damaged / "meta.json").write_text(json.dumps(meta))
    result = invoke("evaluate", "--run", damaged, code=1)
    assert "not complete" in result.stderr
    # a run whose process is gone (status running, no such pid) is incomplete too
    meta.update(status="running", pid=2 ** 22 + 12345)
    (damaged / "meta.json").write_text(json.dumps(meta))
    for cmd in ("evaluate", "predict"):
        msg = error_line(invoke(cmd, "--run", damaged, code=1))
        assert "run is incomplete" in msg and "--resume" in msg, msg
