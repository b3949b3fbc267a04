"""``stockrnn train`` end to end on the bundled sample with tiny models (LSTM(4)): the run
directory's contents and meta.json, the ``latest`` pointer, paths from the environment, fetching
missing data, determinism, and what goes to stdout and stderr. Resuming is in test_training.py."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import PNG_MAGIC, SMOKE, explain, history, invoke, set_args, stdout_lines

from stockrnn import dataset, runs, training
from stockrnn.config import load_config
from stockrnn.data.store import Store
from stockrnn.features.transforms import Transform
from stockrnn.features.windows import split_bounds

TINY = ("model.units=[4]",)


def overrides(runs_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    return [f"paths.data_dir={data_dir}", f"paths.runs_dir={runs_dir}", *TINY, *extra]


def train(runs_dir: Path, data_dir: Path, *extra: str, plots: bool = True):
    return invoke("train", "-c", SMOKE, *set_args(overrides(runs_dir, data_dir, *extra)),
                  *([] if plots else ["--no-plots"]), code=None)


def run_path(result) -> Path:
    assert result.exit_code == 0, explain(result)
    return Path(stdout_lines(result)[-1])


# --------------------------------------------------------------------------- one full run


def test_train_writes_a_complete_run_directory(work, sample_data):
    data_dir = sample_data
    runs_dir = work / "runs"
    extra = ("train.epochs=3", "train.seed=7", "window.horizon=2")
    result = train(runs_dir, data_dir, *extra)
    run = run_path(result)
    assert run.parent == runs_dir / "smoke" and run.is_dir()
    assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", run.name)

    for name in ("config.yaml", "model.keras", "checkpoints/best.keras", "scaler.json",
                 "series.csv", "history.csv", "meta.json", "intervals.json", "plots/loss.png"):
        assert (run / name).is_file(), name
    assert not (run / "backup").exists()  # removed once training finished
    assert (runs_dir / "smoke" / "latest").read_text().strip() == run.name
    assert runs.latest(runs_dir, "smoke").path == run
    assert runs.resolve("smoke", runs_dir).path == run

    cfg = load_config(SMOKE, overrides(runs_dir, data_dir, *extra))
    assert load_config(run / "config.yaml") == cfg

    # series.csv holds exactly the rows trained on; scaler.json the fitted transform
    series = pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"])
    stored = dataset.select(Store(data_dir).read("GOOG"), cfg)
    pd.testing.assert_frame_equal(series, stored, check_freq=False)
    ds = dataset.build(series, cfg)
    assert Transform.from_dict(json.loads((run / "scaler.json").read_text())) == ds.transform

    h = history(run)
    assert list(h.columns) == ["epoch", "loss", "val_loss"]
    assert h["epoch"].tolist() == [0, 1, 2]
    assert np.isfinite(h[["loss", "val_loss"]].to_numpy()).all()

    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["format"] == runs.RUN_FORMAT
    assert runs.RunDir(run).status == "complete"
    runs.RunDir(run).check_complete()
    assert meta["backend"] == "tensorflow"
    assert meta["seed"] == 7
    assert meta["ticker"] == "GOOG" and meta["model_type"] == "lstm"
    assert meta["config_hash"] == cfg.dataset_hash()
    import keras
    import tensorflow as tf

    v = meta["versions"]
    assert v["keras"] == keras.__version__ and v["tensorflow"] == tf.__version__
    assert v["numpy"] == np.__version__ and v["pandas"] == pd.__version__
    assert v["python"] == ".".join(map(str, sys.version_info[:3]))
    assert v["stockrnn"]
    assert meta["data"]["data_hash"] == dataset.frame_hash(stored)
    assert meta["data"]["rows"] == 2148
    assert (meta["data"]["first"], meta["data"]["last"]) == ("2004-08-19", "2013-03-01")
    vs, ts = split_bounds(2148, 0.70, 0.15)
    splits = meta["data"]["splits"]
    assert {k: tuple(s["rows"]) for k, s in splits.items()} == \
        {"train": (0, vs), "val": (vs, ts), "test": (ts, 2148)}
    assert {k: s["samples"] for k, s in splits.items()} == \
        {k: len(s) for k, s in ds.splits.items()}
    assert meta["epochs_run"] == 3
    assert meta["best_epoch"] == int(h["val_loss"].idxmin()) + 1
    assert meta["best_val_loss"] == pytest.approx(h["val_loss"].min())
    assert meta["wall_seconds"] > 0 and meta["train_seconds"] > 0
    assert meta["wall_seconds"] >= meta["train_seconds"]
    assert meta["parameters"] > 0
    assert "finished" in meta and "created" in meta

    # model.keras is the best epoch's model: its val loss is the logged best val_loss
    model = training.load_model(run / "model.keras")
    va = ds.splits["val"]
    pred = model.predict(va.x, verbose=0)
    assert pred.shape == (len(va), 2)
    assert float(np.mean(np.abs(pred - va.y))) == pytest.approx(meta["best_val_loss"], rel=1e-4)
    assert model.count_params() == meta["parameters"]
    best = training.load_model(run / "checkpoints" / "best.keras")
    np.testing.assert_array_equal(best.predict(va.x, verbose=0), pred)

    from stockrnn.evaluation import interval_quantiles

    intervals = json.loads((run / "intervals.json").read_text())
    assert len(intervals["quantiles"]) == 2  # one per horizon step
    for q, recomputed in zip(intervals["quantiles"], interval_quantiles(model, ds), strict=True):
        assert 0 < q["0.8"] <= q["0.95"]
        assert q == pytest.approx(recomputed)

    png = (run / "plots" / "loss.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 2000
    import matplotlib.image

    img = matplotlib.image.imread(run / "plots" / "loss.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_a_first_train_uses_env_paths_and_fetches_missing_data(work, monkeypatch):
    """With an empty data dir from $STOCKRNN_DATA_DIR the sample is fetched there first (source:
    sample in smoke.yaml); the run goes to $STOCKRNN_RUNS_DIR; stdout holds only its path.
    (With --resume: there is nothing to resume, so it starts a new run.)"""
    data = work / "fresh-data"
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(data))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(work / "envruns"))
    result = invoke("train", "-c", SMOKE, *set_args([*TINY, "train.epochs=1",
                                                     "paths.run_name=viaenv"]), "--resume")
    run = run_path(result)
    assert "nothing to resume" in result.stderr
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    assert run.parent == work / "envruns" / "viaenv"
    assert stdout_lines(result) == [str(run)]  # the path is the only thing on stdout
    assert "epoch 1/1" in result.stderr
    assert history(run)["epoch"].tolist() == [0]
    assert Store(data).exists("GOOG")
    assert "fetching from sample" in result.stderr


def test_same_seed_same_history(work, sample_data):
    data_dir = sample_data
    runs_dir = work / "runs"
    a = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=3"))
    b = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=3", plots=False))
    c = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=4", plots=False))
    assert len({a, b, c}) == 3  # three run directories, even within one second
    assert (a / "plots" / "loss.png").is_file()
    assert not (b / "plots").exists() and not (c / "plots").exists()  # --no-plots
    ha, hb, hc = history(a), history(b), history(c)
    np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=0, atol=1e-6)
    assert np.abs(ha["val_loss"].to_numpy() - hc["val_loss"].to_numpy()).max() > 1e-6
    # latest names the newest complete run
    assert (runs_dir / "smoke" / "latest").read_text().strip() == c.name


# --------------------------------------------------------------------------- output


def test_progress_bar_goes_to_stderr_and_stdout_holds_only_the_run_path(work, sample_data,
                                                                        monkeypatch):
    """On a terminal Keras draws a progress bar; it must not end up in `RUN=$(stockrnn train)`.
    The bar counts an epoch's real steps (steps_per_execution is capped at them)."""
    from stockrnn import cli

    monkeypatch.setattr(cli, "progress_mode", lambda quiet: "bar")
    result = train(work / "runs", sample_data)
    run = run_path(result)
    assert stdout_lines(result) == [str(run)]
    steps = re.findall(r"(\d+)/(\d+) ", re.sub(r"\x1b\[[0-9;]*m", "", result.stderr))
    assert steps, result.stderr[-2000:]
    assert all(int(a) <= int(b) for a, b in steps), steps
