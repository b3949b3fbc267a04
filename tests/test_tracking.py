"""Experiment tracking: MLflow runs read back with MLflow's own client from a real local store
(one run, one 2-ticker batch and one 2-fold backtest, shared by the tests), the missing extras
(exit 2), an unreachable server (a warning, exit 0, the run intact), and TensorBoard's event
files read back with TensorFlow's reader."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import invoke, last_line, saved_logging, set_args

from stockrnn.config import load_config

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_mlflow = pytest.mark.skipif(not HAS_MLFLOW, reason="the mlflow extra is not installed")
needs_tensorboard = pytest.mark.skipif(not HAS_TENSORBOARD,
                                       reason="the tensorboard extra is not installed")

# tiny and fast: ~460 rows of a synthetic series, LSTM(4), 2 epochs. AR1 (AR(1) returns) so
# that the model moves off persistence and has a directional accuracy to log.
TINY = ["data.source=synthetic", "data.ticker=AR1", "data.start=2019-01-01",
        "window.look_back=5", "model.units=[4]", "train.epochs=2"]


def tiny(base: Path, *extra: str) -> list[str]:
    return set_args([*TINY, f"paths.data_dir={base / 'data'}", f"paths.runs_dir={base / 'runs'}",
                     *extra])


def meta(run: Path) -> dict:
    return json.loads((Path(run) / "meta.json").read_text())


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One runs folder (and so one default MLflow store, runs/mlflow.db) with a tracked run,
    a tracked 2-ticker batch and a tracked 2-fold backtest; built with the CLI once."""
    if not HAS_MLFLOW:
        pytest.skip("the mlflow extra is not installed")
    base = tmp_path_factory.mktemp("tracking")
    tb = ["train.tensorboard=true"] if HAS_TENSORBOARD else []
    with pytest.MonkeyPatch.context() as mp, saved_logging():
        mp.chdir(base)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        run = invoke("run", *tiny(base, *tb), "--mlflow")
        batch = invoke("run", *tiny(base, "data.tickers=[RW1, RW2]", "paths.run_name=multi"),
                       "--mlflow", "-q")
        # refit never: one model serves both folds (one training instead of two)
        backtest = invoke("backtest", *tiny(base, "paths.run_name=bt"), "--folds", "2",
                          "--refit", "never", "--mlflow")
    from mlflow import MlflowClient

    return {"base": base, "runs": base / "runs", "run_result": run,
            "run": Path(last_line(run)), "batch": Path(last_line(batch)),
            "backtest": Path(last_line(backtest)),
            "client": MlflowClient(f"sqlite:///{(base / 'runs' / 'mlflow.db').as_posix()}")}


def children(client, parent_id: str) -> list:
    run = client.get_run(parent_id)
    found = client.search_runs([run.info.experiment_id],
                               filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return sorted(found, key=lambda r: r.info.run_name)


def artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for item in client.list_artifacts(run_id, path):
        out |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


# --------------------------------------------------------------------------- one run


@needs_mlflow
def test_a_run_is_logged_to_the_default_local_store(store):
    run, client = store["run"], store["client"]
    assert (store["runs"] / "mlflow.db").is_file()
    assert last_line(store["run_result"]) == str(run)  # stdout: still the run dir last
    rid = meta(run)["mlflow_run_id"]
    logged = client.get_run(rid)
    assert logged.info.status == "FINISHED"
    exp = client.get_experiment(logged.info.experiment_id)
    assert exp.name == "lstm"
    assert exp.artifact_location == (store["runs"] / "mlartifacts").resolve().as_uri()

    params = logged.data.params
    assert params["model.type"] == "lstm" and params["window.look_back"] == "5"
    assert params["model.units"] == "[4]" and params["data.ticker"] == "AR1"
    assert params["train.early_stopping.patience"] == "10" and params["train.epochs"] == "2"
    assert not [k for k in params if k.startswith("tracking.")]

    tags = logged.data.tags
    assert {k: tags[k] for k in ("ticker", "model_type", "backend")} == {
        "ticker": "AR1", "model_type": "lstm", "backend": "tensorflow"}
    assert tags["run_dir"] == str(run.resolve())
    from stockrnn import __version__

    assert tags["stockrnn_version"] == __version__


@needs_mlflow
def test_loss_and_val_loss_per_epoch_and_the_test_metrics(store):
    run, client = store["run"], store["client"]
    rid = meta(run)["mlflow_run_id"]
    history = pd.read_csv(run / "history.csv")
    for key in ("loss", "val_loss"):
        points = sorted((m.step, m.value) for m in client.get_metric_history(rid, key))
        assert [s for s, _ in points] == [0, 1]
        assert [v for _, v in points] == pytest.approx(list(history[key]))

    metrics = client.get_run(rid).data.metrics
    result = json.loads((run / "metrics_test.json").read_text())
    assert result["model"]["directional_accuracy"] is not None  # AR1: the model moved
    for key in ("mae", "rmse", "mase", "directional_accuracy", "direction_p_value"):
        assert metrics[f"test_{key}"] == pytest.approx(result["model"][key])
    assert metrics["test_persistence_mae"] == pytest.approx(
        result["baselines"]["persistence"]["mae"])
    assert metrics["epochs_run"] == 2
    assert not [k for k in metrics if k.startswith("val_") and k != "val_loss"]  # no val split


@needs_mlflow
def test_the_run_files_are_artifacts(store, tmp_path):
    run, client = store["run"], store["client"]
    rid = meta(run)["mlflow_run_id"]
    logged = artifacts(client, rid)
    assert {"model.keras", "metrics_test.json", "forecast.csv", "config.yaml", "meta.json",
            "history.csv", "plots/loss.png", "plots/predictions_test.png",
            "plots/forecast.png"} <= logged
    assert not [p for p in logged if p.startswith(("checkpoints", "backup", "tensorboard"))]
    got = Path(client.download_artifacts(rid, "model.keras", str(tmp_path)))
    assert got.read_bytes() == (run / "model.keras").read_bytes()
    assert json.loads(Path(client.download_artifacts(rid, "meta.json", str(tmp_path)))
                      .read_text())["mlflow_run_id"] == rid


@needs_tensorboard
def test_tensorboard_event_files_hold_the_epoch_losses(store):
    import tensorflow as tf

    run = store["run"]
    history = pd.read_csv(run / "history.csv")

    def epoch_losses(folder: str) -> list[tuple[int, float]]:
        out = []
        for path in sorted((run / "tensorboard" / folder).glob("events.out.tfevents.*")):
            for raw in tf.data.TFRecordDataset(str(path)):
                event = tf.compat.v1.Event.FromString(raw.numpy())
                out += [(event.step, float(tf.make_ndarray(v.tensor)))
                        for v in event.summary.value if v.tag == "epoch_loss"]
        return sorted(out)

    train, val = epoch_losses("train"), epoch_losses("validation")
    assert [s for s, _ in train] == [0, 1] and [s for s, _ in val] == [0, 1]
    assert [v for _, v in train] == pytest.approx(list(history["loss"]), rel=1e-5)
    assert [v for _, v in val] == pytest.approx(list(history["val_loss"]), rel=1e-5)


# --------------------------------------------------------------------------- batch, backtest


@needs_mlflow
def test_a_batch_is_a_parent_with_a_child_per_ticker(store):
    client, batch = store["client"], store["batch"]
    summary = json.loads((batch / "summary.json").read_text())
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.tags["kind"] == "batch" and parent.data.params["data.tickers"] == \
        '["RW1", "RW2"]'
    assert parent.data.metrics["tickers_ok"] == 2
    assert {"summary.json", "summary.csv"} <= artifacts(client, parent.info.run_id)
    kids = children(client, parent.info.run_id)
    assert [k.data.tags["ticker"] for k in kids] == ["RW1", "RW2"]
    # each ticker is logged once, as a child, not also as a run of its own run name
    assert client.get_experiment_by_name("multi-RW1") is None
    assert {k.info.experiment_id for k in kids} == {parent.info.experiment_id}
    rows = {r["ticker"]: r for r in summary["tickers"]}
    for kid in kids:
        run_dir = Path(rows[kid.data.tags["ticker"]]["run_dir"])
        assert meta(run_dir)["mlflow_run_id"] == kid.info.run_id
        assert kid.data.params["data.ticker"] == kid.data.tags["ticker"]
        assert kid.data.metrics["test_mase"] == pytest.approx(rows[kid.data.tags["ticker"]]
                                                              ["mase"])
        assert len(client.get_metric_history(kid.info.run_id, "val_loss")) == 2
        assert "model.keras" in artifacts(client, kid.info.run_id)


@needs_mlflow
def test_a_backtest_is_a_parent_with_pooled_metrics_and_a_child_per_fold(store):
    client, folder = store["client"], store["backtest"]
    summary = json.loads((folder / "summary.json").read_text())
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.data.tags["kind"] == "backtest"
    assert parent.data.metrics["pooled_mase"] == pytest.approx(
        summary["pooled"]["model"]["mase"])
    assert parent.data.metrics["pooled_mae"] == pytest.approx(summary["pooled"]["model"]["mae"])
    assert {"summary.json", "folds.csv", "predictions.csv", "plots/fold_mase.png"} <= \
        artifacts(client, parent.info.run_id)
    first, second = kids = children(client, parent.info.run_id)
    assert [k.info.run_name for k in kids] == ["fold 0", "fold 1"]
    for kid, row in zip(kids, summary["folds"], strict=True):
        assert kid.data.tags["fold"] == str(row["fold"])
        assert kid.data.metrics["test_mase"] == pytest.approx(row["model"]["mase"])
        assert kid.data.metrics["test_mae"] == pytest.approx(row["model"]["mae"])
    # fold 0 trained the model (its run directory is logged with it); fold 1 reuses it
    model_dir = Path(summary["folds"][0]["run_dir"])
    assert summary["folds"][1]["run_dir"] == str(model_dir)
    assert meta(model_dir)["mlflow_run_id"] == first.info.run_id
    assert [m.step for m in client.get_metric_history(first.info.run_id, "loss")] == [0, 1]
    assert "model.keras" in artifacts(client, first.info.run_id)
    assert second.data.tags["model_mlflow_run_id"] == first.info.run_id
    assert second.data.tags["model_run_dir"] == str(model_dir.resolve())


@needs_mlflow
def test_a_tune_study_is_a_parent_with_a_child_per_trial_and_the_retrained_run(store, tmp_path):
    """tune's summary (as tuning.tune writes it) logged as a study: no training needed here;
    the shared run stands in for the retrained best config."""
    from helpers import copy_run

    from stockrnn import tracking

    best_run = copy_run(store["run"], tmp_path / "best")
    rows = [{"trial": t, "look_back": 5, "units": u, "dropout": 0.0, "learning_rate": 0.001,
             "val_loss": v, "epochs": 2, "seconds": 1.5, "state": "complete"}
            for t, u, v in ((0, 4, 0.9), (1, 8, 0.8))]
    summary = {"tune_dir": str(tmp_path), "trials": 2, "space": {"units": [2, 8]},
               "default": rows[0], "best": rows[1], "results": rows,
               "best_yaml": str(tmp_path / "best.yaml"), "run_dir": str(best_run),
               "retrained_val_loss": 0.8,
               "test": {"mase": 1.01, "mae": 0.4, "directional_accuracy": 0.5,
                        "persistence_mae": 0.39}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    cfg = load_config(None, [f"paths.runs_dir={store['runs']}", "paths.run_name=study",
                             "tracking.mlflow=true"])
    out = tracking.log_tune(cfg, summary)
    client = store["client"]
    parent = client.get_run(out["mlflow_run_id"])
    assert json.loads((tmp_path / "summary.json").read_text())["mlflow_run_id"] == \
        parent.info.run_id
    assert parent.data.tags["kind"] == "tune"
    assert parent.data.metrics["best_val_loss"] == 0.8
    assert parent.data.metrics["test_mase"] == 1.01
    trial0, trial1, best = sorted(children(client, parent.info.run_id),
                                  key=lambda r: r.info.run_name.replace("best", "z"))
    assert (trial0.info.run_name, trial1.info.run_name) == ("trial 0", "trial 1")
    assert trial1.data.params == {"units": "8"} and trial1.data.metrics["val_loss"] == 0.8
    assert trial1.data.tags["best"] == "true" and trial0.data.tags["best"] == "false"
    assert best.data.tags["role"] == "retrained_best"
    assert meta(best_run)["mlflow_run_id"] == best.info.run_id
    assert "model.keras" in artifacts(client, best.info.run_id)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("command", ["train", "run", "backtest", "tune"])
def test_asking_for_mlflow_without_the_extra_exits_2(command, work, monkeypatch):
    if command == "tune":
        pytest.importorskip("optuna")  # tune checks for Optuna first
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    result = invoke(command, *tiny(work), "--mlflow", code=2)
    assert "pip install 'stockrnn[mlflow]'" in result.stderr
    assert not (work / "runs").exists() and not (work / "data").exists()  # nothing ran


def test_asking_for_tensorboard_without_it_exits_2(work, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = invoke("train", *tiny(work, "train.tensorboard=true"), code=2)
    assert "pip install 'stockrnn[tensorboard]'" in result.stderr
    assert not (work / "runs").exists()


@needs_mlflow
def test_an_unreachable_server_is_a_warning_and_the_run_is_kept(work):
    result = invoke("train", *tiny(work), "--mlflow", "http://127.0.0.1:9")  # exit 0
    run = Path(last_line(result))
    assert "MLflow: could not log" in result.stderr and "127.0.0.1:9" in result.stderr
    info = meta(run)
    assert info["status"] == "complete" and "mlflow_run_id" not in info
    assert (run / "model.keras").is_file() and (run / "history.csv").is_file()


def test_the_tracking_uri_resolves_flag_then_environment_then_the_local_store(work, monkeypatch):
    runs = ["paths.runs_dir=somewhere"]
    default = load_config(None, runs)
    assert default.mlflow_uri == f"sqlite:///{(work / 'somewhere' / 'mlflow.db').as_posix()}"
    assert not default.tracking.mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert load_config(None, runs).mlflow_uri == "http://tracking:5000"
    explicit = load_config(None, [*runs, "tracking.mlflow_uri=sqlite:///x.db"])
    assert explicit.mlflow_uri == "sqlite:///x.db"


def test_resume_may_add_or_drop_tracking_but_not_change_what_is_trained():
    from stockrnn.tracking import same_config

    plain = load_config(None, TINY)
    tracked = load_config(None, [*TINY, "tracking.mlflow=true", "tracking.experiment=x"])
    assert same_config(tracked.to_yaml(), plain) and same_config(plain.to_yaml(), tracked)
    older = {k: v for k, v in plain.to_dict().items() if k != "tracking"}  # before tracking
    assert same_config(yaml.safe_dump(older, sort_keys=False), tracked)
    # a run started before data.calendar existed resumes (the missing key is its default)
    data = {k: v for k, v in plain.to_dict()["data"].items() if k != "calendar"}
    assert same_config(yaml.safe_dump({**plain.to_dict(), "data": data}), plain)
    assert not same_config(yaml.safe_dump({**plain.to_dict(), "data": {**data, "nope": 1}}), plain)
    assert not same_config(plain.to_yaml(), load_config(None, [*TINY, "window.look_back=6"]))
    assert not same_config("{not: [yaml", plain) and not same_config("[1, 2]", plain)


def test_the_mlflow_flag_stands_for_the_tracking_keys():
    from stockrnn.cli import tracking_sets

    assert tracking_sets(None) == []
    assert tracking_sets("") == ["tracking.mlflow=true"]
    assert tracking_sets("http://h:5000") == ["tracking.mlflow=true",
                                              "tracking.mlflow_uri=http://h:5000"]


def test_importing_the_cli_does_not_import_mlflow_or_tensorboard():
    code = ("import sys, stockrnn.cli, stockrnn.tracking; "
            "print('mlflow' in sys.modules, 'tensorboard' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]
