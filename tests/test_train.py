"""``stockrnn train`` and ``prepare`` end to end on the bundled sample with tiny models: the run
directory's contents, the ``latest`` pointer, determinism, and resuming interrupted runs (an
in-process interrupt, and a real process killed with SIGKILL)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers_train import SMOKE, cli_run, explain, sample_frame, seed_store, stdout_lines

from stockrnn import dataset, runs, training
from stockrnn.config import load_config
from stockrnn.data.store import Store
from stockrnn.features.transforms import Transform
from stockrnn.features.windows import split_bounds

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ("model.units=[4]",)


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI reconfigures the 'stockrnn' logger; give other test modules theirs back."""
    lg = logging.getLogger("stockrnn")
    saved = lg.handlers[:], lg.level, lg.propagate
    yield
    lg.handlers[:], lg.level, lg.propagate = saved


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return seed_store(tmp_path_factory.mktemp("data"))


@pytest.fixture
def work(tmp_path, monkeypatch, data_dir):
    """A temp working directory; nothing may land in the repository."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STOCKRNN_DATA_DIR", raising=False)
    monkeypatch.delenv("STOCKRNN_RUNS_DIR", raising=False)
    return tmp_path


def overrides(runs_dir: Path, data_dir: Path, *extra: str) -> list[str]:
    return [f"paths.data_dir={data_dir}", f"paths.runs_dir={runs_dir}", *TINY, *extra]


def set_args(items) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def train(runs_dir: Path, data_dir: Path, *extra: str, resume: bool = False):
    args = ["train", "-c", SMOKE, *set_args(overrides(runs_dir, data_dir, *extra))]
    return cli_run(*args, *(["--resume"] if resume else []))


def run_path(result) -> Path:
    assert result.exit_code == 0, explain(result)
    return Path(stdout_lines(result)[-1])


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv")


def epoch_lines(result) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"^epoch (\d+)/(\d+) ", result.stderr, re.M)]


# --------------------------------------------------------------------------- one full run


def test_train_writes_a_complete_run_directory(work, data_dir):
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


def test_train_uses_env_paths_and_prints_the_run_last(work, data_dir, monkeypatch):
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(work / "envruns"))
    result = cli_run("train", "-c", SMOKE, *set_args([*TINY, "train.epochs=1",
                                                      "paths.run_name=viaenv"]))
    run = run_path(result)
    assert run.parent == work / "envruns" / "viaenv"
    assert stdout_lines(result) == [str(run)]  # the path is the only thing on stdout
    assert "epoch 1/1" in result.stderr
    assert history(run)["epoch"].tolist() == [0]


def test_train_fetches_missing_data(work):
    """With an empty data dir the sample is fetched first (source: sample in smoke.yaml)."""
    data = work / "fresh-data"
    result = train(work / "runs", data, "train.epochs=1")
    run_path(result)
    assert Store(data).exists("GOOG")
    assert "fetching from sample" in result.stderr


def test_same_seed_same_history(work, data_dir):
    runs_dir = work / "runs"
    a = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=3"))
    b = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=3"))
    c = run_path(train(runs_dir, data_dir, "train.epochs=3", "train.seed=4"))
    assert len({a, b, c}) == 3  # three run directories, even within one second
    ha, hb, hc = history(a), history(b), history(c)
    np.testing.assert_allclose(ha["val_loss"], hb["val_loss"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=0, atol=1e-6)
    assert np.abs(ha["val_loss"].to_numpy() - hc["val_loss"].to_numpy()).max() > 1e-6
    # latest names the newest complete run
    assert (runs_dir / "smoke" / "latest").read_text().strip() == c.name


# --------------------------------------------------------------------------- prepare


def test_prepare_writes_the_artifact(work):
    data = seed_store(work / "data")
    over = [*TINY, f"paths.data_dir={data}", "window.horizon=2"]
    result = cli_run("prepare", "-c", SMOKE, *set_args(over))
    assert result.exit_code == 0, explain(result)
    lines = stdout_lines(result)
    path = Path(lines[-1])
    cfg = load_config(SMOKE, over)
    assert path == dataset.artifact_path(cfg)
    assert path == data / "prepared" / f"GOOG_1d-{cfg.dataset_hash()}.npz"
    assert [line.split()[0] for line in lines[:-1]] == ["train", "val", "test"]
    assert path.is_file() and path.with_suffix(".json").is_file()

    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config_hash"] == cfg.dataset_hash()
    frame = dataset.select(sample_frame(), cfg)
    assert meta["data_hash"] == dataset.frame_hash(frame)
    vs, ts = split_bounds(len(frame), 0.70, 0.15)
    assert {k: s["rows"] for k, s in meta["splits"].items()} == \
        {"train": [0, vs], "val": [vs, ts], "test": [ts, len(frame)]}
    assert Transform.from_dict(meta["transform"]) == dataset.build(frame, cfg).transform
    assert (meta["ticker"], meta["interval"], meta["rows"]) == ("GOOG", "1d", len(frame))

    ds = dataset.build(frame, cfg)
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted(f"{s}_{k}" for s in ("train", "val", "test")
                                           for k in ("x", "y", "anchors"))
        for name, sp in ds.splits.items():
            np.testing.assert_array_equal(npz[f"{name}_x"], sp.x)
            np.testing.assert_array_equal(npz[f"{name}_y"], sp.y)
            np.testing.assert_array_equal(npz[f"{name}_anchors"], sp.anchors)
            assert meta["splits"][name]["samples"] == len(sp)
            assert f"x{tuple(sp.x.shape)}" in lines[list(ds.splits).index(name)]

    # model/training keys leave the artifact's name alone; window keys change it
    same = load_config(SMOKE, [*over, "model.units=[32]", "train.epochs=50"])
    assert dataset.artifact_path(same) == path
    other = load_config(SMOKE, [*over, "window.look_back=12"])
    assert dataset.artifact_path(other) != path


def test_prepare_too_short_series_exits_1(work):
    data = seed_store(work / "data")
    result = cli_run("prepare", "-c", SMOKE, *set_args([f"paths.data_dir={data}",
                                                         "data.start=2013-02-15"]))
    assert result.exit_code == 1, explain(result)
    assert result.stderr.startswith("Error: GOOG: ") and "rows is too few" in result.stderr
    assert "need at least" in result.stderr


# --------------------------------------------------------------------------- resume


def interrupt_at(epoch: int, exc: type[BaseException]):
    """Stand-in for training.epoch_logger that raises when ``epoch`` (0-based) begins."""
    def factory(total):
        from stockrnn.backend import use

        keras = use()

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                if e == epoch:
                    raise exc("boom")

        return Interrupt()

    return factory


@pytest.mark.parametrize("exc, code", [(KeyboardInterrupt, 130), (RuntimeError, 1)])
def test_interrupted_run_resumes_where_it_stopped(work, data_dir, monkeypatch, exc, code):
    runs_dir = work / "runs"
    epochs = ("train.epochs=6", "train.early_stopping.patience=50")
    done = run_path(train(runs_dir, data_dir, "train.epochs=1"))  # an earlier complete run

    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(3, exc))
        result = train(runs_dir, data_dir, *epochs)
    assert result.exit_code == code, explain(result)
    if exc is KeyboardInterrupt:
        assert "Error: interrupted" in result.stderr
    interrupted = sorted(p for p in (runs_dir / "smoke").iterdir() if p.is_dir() and p != done)
    assert len(interrupted) == 1
    run = interrupted[0]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "incomplete"
    assert meta["error"] == ("interrupted" if exc is KeyboardInterrupt else "RuntimeError: boom")
    assert runs.RunDir(run).status == "incomplete"
    assert history(run)["epoch"].tolist() == [0, 1, 2]
    # the default backup_every_s (5 s) wrote no backup in these fast epochs: the interruption
    # wrote the last finished epoch's
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 3
    assert not (run / "model.keras").exists()
    # an interrupted run never becomes latest
    assert (runs_dir / "smoke" / "latest").read_text().strip() == done.name
    with pytest.raises(runs.RunError, match="incomplete"):
        runs.RunDir(run).check_complete()

    # resuming with a different config is refused and leaves the run alone
    before = (run / "history.csv").read_text()
    bad = train(runs_dir, data_dir, "train.epochs=7", "train.early_stopping.patience=50",
                resume=True)
    assert bad.exit_code == 1, explain(bad)
    assert "different config" in bad.stderr and str(run) in bad.stderr
    assert (run / "history.csv").read_text() == before
    assert json.loads((run / "meta.json").read_text())["status"] == "incomplete"

    result = train(runs_dir, data_dir, *epochs, resume=True)
    assert run_path(result) == run  # the same directory, finished
    assert epoch_lines(result) == [(4, 6), (5, 6), (6, 6)]  # only the missing epochs ran
    h = history(run)
    assert h["epoch"].tolist() == [0, 1, 2, 3, 4, 5]  # appended, no repeats, no restart
    assert (run / "history.csv").read_text().startswith(before)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 6
    assert meta["best_val_loss"] == pytest.approx(h["val_loss"].min())
    assert meta["best_epoch"] == int(h["val_loss"].idxmin()) + 1
    assert not (run / "backup").exists()
    assert (runs_dir / "smoke" / "latest").read_text().strip() == run.name
    assert (run / "plots" / "loss.png").is_file()
    # the final model is the best epoch over both parts, also when that was before the interrupt
    cfg = load_config(run / "config.yaml")
    ds = dataset.build(pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"]), cfg)
    va = ds.splits["val"]
    pred = training.load_model(run / "model.keras").predict(va.x, verbose=0)
    assert float(np.mean(np.abs(pred - va.y))) == pytest.approx(meta["best_val_loss"], rel=1e-4)


def test_run_resume_finishes_the_interrupted_run_then_evaluates_and_predicts(work, data_dir,
                                                                           monkeypatch):
    """`stockrnn run --resume` trains only the missing epochs of the interrupted run, in its own
    directory, and then evaluates and forecasts from it."""
    runs_dir = work / "runs"
    epochs = ("train.epochs=5", "train.early_stopping.patience=50")
    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(2, KeyboardInterrupt))
        assert train(runs_dir, data_dir, *epochs).exit_code == 130
    (run,) = [p for p in (runs_dir / "smoke").iterdir() if p.is_dir()]
    assert history(run)["epoch"].tolist() == [0, 1]

    result = cli_run("run", "-c", SMOKE, *set_args(overrides(runs_dir, data_dir, *epochs)),
                     "--resume", "--json")
    assert result.exit_code == 0, explain(result)
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(run)
    assert [s["name"] for s in summary["stages"]] == ["fetch", "prepare", "train", "evaluate",
                                                      "predict"]
    assert history(run)["epoch"].tolist() == [0, 1, 2, 3, 4]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 5
    assert (run / "metrics_test.json").is_file() and (run / "forecast.csv").is_file()
    assert [p for p in (runs_dir / "smoke").iterdir() if p.is_dir()] == [run]


def test_resumed_run_keeps_the_best_epoch_from_before_the_interrupt(work, data_dir, monkeypatch):
    """When every resumed epoch is worse, the final model is still the pre-interrupt best."""
    runs_dir = work / "runs"
    epochs = ("train.epochs=4", "train.early_stopping.patience=50")
    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(2, KeyboardInterrupt))
        assert train(runs_dir, data_dir, *epochs).exit_code == 130
    original = training.epoch_logger

    def wrecked(total):
        """The normal epoch logger, which also wrecks the restored weights before training."""
        cb = original(total)

        def on_train_begin(logs=None):
            rng = np.random.default_rng(0)
            cb.model.set_weights([w + rng.normal(0, 5, w.shape) for w in cb.model.get_weights()])

        cb.on_train_begin = on_train_begin
        return cb

    monkeypatch.setattr(training, "epoch_logger", wrecked)
    result = train(runs_dir, data_dir, *epochs, resume=True)
    run = run_path(result)
    assert epoch_lines(result) == [(3, 4), (4, 4)]
    h = history(run)
    assert h["epoch"].tolist() == [0, 1, 2, 3]
    assert h["val_loss"].iloc[2:].min() > h["val_loss"].iloc[:2].max()  # the wreck worked
    meta = json.loads((run / "meta.json").read_text())
    assert meta["best_epoch"] in (1, 2)
    cfg = load_config(run / "config.yaml")
    ds = dataset.build(pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"]), cfg)
    va = ds.splits["val"]
    pred = training.load_model(run / "model.keras").predict(va.x, verbose=0)
    assert float(np.mean(np.abs(pred - va.y))) == pytest.approx(meta["best_val_loss"], rel=1e-4)


def test_failure_while_saving_an_epoch_loses_no_history(work, data_dir, monkeypatch):
    """A run that dies while its epoch-end files are written (here: the best-model checkpoint
    cannot be saved; a SIGKILL in that moment is the same) must resume without a hole in
    history.csv: the backup may never be ahead of the history."""
    runs_dir = work / "runs"
    epochs = ("train.epochs=3", "train.early_stopping.patience=50")
    original = training.epoch_logger
    traps = []

    def trapped(total):  # called inside fit, after checkpoints/ exists and before training
        for ckpt in runs_dir.glob("smoke/*/checkpoints"):
            (ckpt / "best.keras").mkdir()  # the first epoch's checkpoint cannot be written
            traps.append(ckpt / "best.keras")
        return original(total)

    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", trapped)
        failed = train(runs_dir, data_dir, *epochs)
    assert failed.exit_code == 1 and len(traps) == 1, explain(failed)
    run = traps[0].parent.parent
    assert json.loads((run / "meta.json").read_text())["status"] == "incomplete"
    traps[0].rmdir()

    result = train(runs_dir, data_dir, *epochs, resume=True)
    assert run_path(result) == run
    assert history(run)["epoch"].tolist() == [0, 1, 2]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 3


@pytest.mark.parametrize("cut, finished, rerun_from", [
    ("weights", 2, 1), ("weights", 1, 0), ("metadata", 2, 1)])
def test_backup_cut_short_by_a_kill(work, data_dir, monkeypatch, cut, finished, rerun_from):
    """A SIGKILL while the epoch-end backup is written leaves a truncated weights file (seen in
    practice: 96 bytes of HDF5 header) next to the previous epoch's metadata, if any, or the
    new weights with an emptied metadata file. Resume must use the previous backup, or with
    none (the first epoch's) start over, never fail."""
    runs_dir = work / "runs"
    # a backup after every epoch, so the one before the cut one is there
    epochs = ("train.epochs=4", "train.early_stopping.patience=50", "train.backup_every_s=0")
    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(finished, KeyboardInterrupt))
        assert train(runs_dir, data_dir, *epochs).exit_code == 130
    [run] = [p for p in (runs_dir / "smoke").iterdir() if p.is_dir()]
    backup = run / "backup"
    weights, metadata = backup / "latest.weights.h5", backup / "training_metadata.json"
    assert json.loads(metadata.read_text()) == {"epoch": finished, "batch": 0}
    assert history(run)["epoch"].tolist() == list(range(finished))
    # the state a kill during the last finished epoch's backup write leaves behind
    if cut == "metadata":
        metadata.write_text("")  # opened for writing, nothing written yet
    else:
        weights.write_bytes(weights.read_bytes()[:96])
        if finished > 1:
            metadata.write_text(json.dumps({"epoch": finished - 1, "batch": 0}))
        else:
            metadata.unlink()  # written after the weights: the first backup had none yet

    result = train(runs_dir, data_dir, *epochs, resume=True)
    assert run_path(result) == run
    assert epoch_lines(result) == [(e + 1, 4) for e in range(rerun_from, 4)]
    assert history(run)["epoch"].tolist() == list(range(4))  # one row per epoch
    assert training.read_history(run / "history.csv")["epoch"].tolist() == [0, 1, 2, 3]
    assert ("unreadable" in result.stderr) == (rerun_from == 0)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 4
    assert not backup.exists()


def test_resume_with_nothing_to_resume_starts_a_new_run(work, data_dir):
    result = train(work / "runs", data_dir, "train.epochs=1", resume=True)
    run = run_path(result)
    assert "nothing to resume" in result.stderr
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"


@pytest.mark.slow
def test_killed_process_resumes_from_its_last_finished_epoch(work, data_dir):
    """A real ``python -m stockrnn train`` killed with SIGKILL mid-training, then resumed."""
    runs_dir = work / "runs"
    total = 40
    # a backup after every epoch (the throttled default has its own test in test_faults.py)
    extra = (f"train.epochs={total}", "train.early_stopping.patience=1000", "train.backup_every_s=0")
    cmd = [sys.executable, "-m", "stockrnn", "train", "-c", str(SMOKE),
           *set_args(overrides(runs_dir, data_dir, *extra))]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(work / "child.out", "wb") as out, open(work / "child.err", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 180
            while True:
                found = list((runs_dir / "smoke").glob("*/history.csv"))
                if found and found[0].read_text().count("\n") >= 3:  # header + 2 epochs
                    break
                assert proc.poll() is None, (work / "child.err").read_text()
                assert time.monotonic() < deadline, "training never logged two epochs"
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    run = found[0].parent

    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "running" and meta["pid"] == proc.pid  # it never got to say more
    assert runs.RunDir(run).status == "incomplete"                   # but it is dead
    assert not (runs_dir / "smoke" / "latest").exists()
    killed = history(run)
    k = len(killed)
    assert 2 <= k < total, "the process finished before it could be killed"
    assert killed["epoch"].tolist() == list(range(k))
    # epochs finished according to the backup: history.csv is written first, so it may be one
    # epoch ahead of the backup (that epoch is trained again) but never behind it
    backed_up = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    assert backed_up in (k - 1, k)

    result = train(runs_dir, data_dir, *extra, resume=True)
    assert run_path(result) == run
    lines = epoch_lines(result)
    assert lines[0] == (backed_up + 1, total) and lines[-1] == (total, total)
    assert len(lines) == total - backed_up
    raw = history(run)
    assert raw["epoch"].tolist() == list(range(total))  # one row per epoch, none twice
    # the epochs before the backup's are kept as logged; the one trained again is replaced
    pd.testing.assert_frame_equal(raw.iloc[:backed_up], killed.iloc[:backed_up])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == total
    assert (runs_dir / "smoke" / "latest").read_text().strip() == run.name
    assert not (run / "backup").exists()


def test_progress_bar_goes_to_stderr_and_stdout_holds_only_the_run_path(work, data_dir,
                                                                        monkeypatch):
    """On a terminal Keras draws a progress bar; it must not end up in `RUN=$(stockrnn train)`.
    The bar counts an epoch's real steps (steps_per_execution is capped at them)."""
    from stockrnn import cli

    monkeypatch.setattr(cli, "progress_mode", lambda quiet: "bar")
    result = train(work / "runs", data_dir)
    run = run_path(result)
    assert stdout_lines(result) == [str(run)]
    steps = re.findall(r"(\d+)/(\d+) ", re.sub(r"\x1b\[[0-9;]*m", "", result.stderr))
    assert steps, result.stderr[-2000:]
    assert all(int(a) <= int(b) for a, b in steps), steps
