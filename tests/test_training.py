"""training: resuming interrupted runs. Ctrl-C or an error writes the last finished epoch's
backup; ``train --resume`` (and ``run --resume``) continue in the same folder from it, with
one history row per epoch and the best epoch over both parts; a backup cut short by a kill
falls back to the previous one (or starts over). A real SIGKILLed process is in
test_faults.py (test_sigkill_during_train_then_resume).

Everything trains the smoke config (LSTM(4)) on the bundled sample, in-process, with the data
and runs folders from the environment (so a run's config.yaml does not depend on where it is,
and the tests that start from the same interrupted run can each resume a copy of it)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    SHORT,
    SMOKE,
    copy_run,
    explain,
    history,
    interrupt_at,
    invoke,
    saved_logging,
    set_args,
    stdout_lines,
)

from stockrnn import dataset, runs, stages, training
from stockrnn.config import load_config

TINY = ("model.units=[4]",)
# interrupted at the third epoch (after two) of four, a backup after every epoch: the starting
# point several tests share (see ``interrupted``)
FOUR = ("train.epochs=4", "train.early_stopping.patience=50", "train.backup_every_s=0")


@pytest.fixture(autouse=True)
def folders(work, sample_data, monkeypatch) -> Path:
    """The sample store (shared) and this test's runs folder, through the environment."""
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(sample_data))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(work / "runs"))
    return work / "runs"


def train(*extra: str, resume: bool = False):
    args = ["train", "-c", SMOKE, *set_args([*TINY, *extra])]
    return invoke(*args, *(["--resume"] if resume else []), code=None)


def run_path(result) -> Path:
    assert result.exit_code == 0, explain(result)
    return Path(stdout_lines(result)[-1])


def epoch_lines(result) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"^epoch (\d+)/(\d+) ", result.stderr, re.M)]


@pytest.fixture(scope="module")
def interrupted_runs(sample_data, tmp_path_factory) -> Path:
    """A runs folder holding one run of FOUR interrupted (Ctrl-C) when its third epoch began:
    two epochs in history.csv and in the backup. Tests resume a copy of it."""
    runs_dir = tmp_path_factory.mktemp("interrupted") / "runs"
    with pytest.MonkeyPatch.context() as mp, saved_logging():
        mp.setenv("STOCKRNN_DATA_DIR", str(sample_data))
        mp.setenv("STOCKRNN_RUNS_DIR", str(runs_dir))
        mp.setattr(training, "epoch_logger", interrupt_at(2, KeyboardInterrupt))
        assert train(*FOUR).exit_code == 130
    return runs_dir


@pytest.fixture
def interrupted(interrupted_runs, folders) -> Path:
    """This test's copy of the interrupted run (in its runs folder)."""
    shutil.copytree(interrupted_runs, folders)
    [run] = [p for p in (folders / "smoke").iterdir() if p.is_dir()]
    return run


def val_loss_of_the_model(run: Path) -> float:
    """The saved model's loss on the run's validation windows."""
    cfg = load_config(run / "config.yaml")
    ds = dataset.build(pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"]), cfg)
    va = ds.splits["val"]
    pred = training.load_model(run / "model.keras").predict(va.x, verbose=0)
    return float(np.mean(np.abs(pred - va.y)))


@pytest.mark.parametrize("exc, code", [(KeyboardInterrupt, 130), (RuntimeError, 1)])
def test_interrupted_run_resumes_where_it_stopped(folders, smoke_run, monkeypatch, exc, code):
    runs_dir = folders
    epochs = ("train.epochs=6", "train.early_stopping.patience=50")
    # an earlier complete run of the name (a copy of the session's), the latest
    done = copy_run(smoke_run, runs_dir / "smoke" / "20000101T000000Z")
    runs.set_latest(runs.RunDir(done))

    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(3, exc))
        result = train(*epochs)
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
    if exc is not KeyboardInterrupt:
        return  # the same interrupted state as after Ctrl-C: its resume is tested below

    # resuming with a different config is refused and leaves the run alone
    before = (run / "history.csv").read_text()
    bad = train("train.epochs=7", "train.early_stopping.patience=50",
                resume=True)
    assert bad.exit_code == 1, explain(bad)
    assert "different config" in bad.stderr and str(run) in bad.stderr
    assert (run / "history.csv").read_text() == before
    assert json.loads((run / "meta.json").read_text())["status"] == "incomplete"

    result = train(*epochs, resume=True)
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
    assert val_loss_of_the_model(run) == pytest.approx(meta["best_val_loss"], rel=1e-4)


def test_run_resume_finishes_the_interrupted_run_then_evaluates_and_predicts(interrupted):
    """`stockrnn run --resume` trains only the missing epochs of the interrupted run, in its own
    directory, and then evaluates and forecasts from it."""
    run = interrupted
    assert history(run)["epoch"].tolist() == [0, 1]
    result = invoke("run", "-c", SMOKE, *set_args([*TINY, *FOUR]), "--resume", "--json")
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(run)
    assert [s["name"] for s in summary["stages"]] == ["fetch", "prepare", "train", "evaluate",
                                                      "predict"]
    assert history(run)["epoch"].tolist() == [0, 1, 2, 3]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 4
    assert (run / "metrics_test.json").is_file() and (run / "forecast.csv").is_file()
    assert [p for p in run.parent.iterdir() if p.is_dir()] == [run]


def test_resumed_run_keeps_the_best_epoch_from_before_the_interrupt(interrupted, monkeypatch):
    """When every resumed epoch is worse, the final model is still the pre-interrupt best."""
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
    result = train(*FOUR, resume=True)
    run = run_path(result)
    assert run == interrupted
    assert epoch_lines(result) == [(3, 4), (4, 4)]
    h = history(run)
    assert h["epoch"].tolist() == [0, 1, 2, 3]
    assert h["val_loss"].iloc[2:].min() > h["val_loss"].iloc[:2].max()  # the wreck worked
    meta = json.loads((run / "meta.json").read_text())
    assert meta["best_epoch"] in (1, 2)
    assert val_loss_of_the_model(run) == pytest.approx(meta["best_val_loss"], rel=1e-4)


def test_reduce_lr_halves_the_rate_after_a_plateau_and_resume_keeps_the_lowered_rate(
        folders, smoke_run, monkeypatch):
    """train.reduce_lr: after ``patience`` epochs without a better val_loss the learning rate
    is multiplied by ``factor``; history.csv logs the rate each epoch ran at, and a run resumed
    from its backup continues at the lowered rate (the rate is an optimizer variable, which the
    backup holds), not at train.learning_rate again."""
    # at a learning rate of 1e-8 val_loss moves by far less than ReduceLROnPlateau's min_delta
    # (1e-4): every epoch after the first is a plateau (min_lr 0: the rate may go below 1e-5)
    opts = ("train.learning_rate=1e-8", "train.reduce_lr.patience=1",
            "train.reduce_lr.factor=0.5", "train.reduce_lr.min_lr=0", *FOUR)
    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_at(2, KeyboardInterrupt))
        assert train(*opts).exit_code == 130
    run = run_path(train(*opts, resume=True))
    h = history(run)
    assert h["epoch"].tolist() == [0, 1, 2, 3]
    rates, val = h["learning_rate"].tolist(), h["val_loss"].tolist()
    assert rates[:2] == pytest.approx([1e-8, 1e-8]) and abs(val[1] - val[0]) < 1e-4
    # halved after epoch 1, before the interrupt; kept by the resume
    assert rates[2] == pytest.approx(0.5e-8)
    # like EarlyStopping's, the plateau count starts over when a run resumes
    assert rates[3] == pytest.approx(0.5e-8)
    # off by default (configs/smoke.yaml sets no reduce_lr): a constant rate, no column
    assert "learning_rate" not in history(smoke_run).columns


def test_failure_while_saving_an_epoch_loses_no_history(folders, monkeypatch):
    """A run that dies while its epoch-end files are written (here: the best-model checkpoint
    cannot be saved; a SIGKILL in that moment is the same) must resume without a hole in
    history.csv: the backup may never be ahead of the history."""
    runs_dir = folders
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
        failed = train(*epochs)
    assert failed.exit_code == 1 and len(traps) == 1, explain(failed)
    run = traps[0].parent.parent
    assert json.loads((run / "meta.json").read_text())["status"] == "incomplete"
    traps[0].rmdir()

    result = train(*epochs, resume=True)
    assert run_path(result) == run
    assert history(run)["epoch"].tolist() == [0, 1, 2]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 3


@pytest.mark.parametrize("cut, finished, rerun_from", [
    ("weights", 2, 1), ("weights", 1, 0), ("metadata", 2, 1)])
def test_backup_cut_short_by_a_kill(request, folders, monkeypatch, cut, finished, rerun_from):
    """A SIGKILL while the epoch-end backup is written leaves a truncated weights file (seen in
    practice: 96 bytes of HDF5 header) next to the previous epoch's metadata, if any, or the
    new weights with an emptied metadata file. Resume must use the previous backup, or with
    none (the first epoch's) start over, never fail."""
    # a backup after every epoch (FOUR), so the one before the cut one is there
    epochs = FOUR
    if finished == 2:
        request.getfixturevalue("interrupted")  # the shared run interrupted after two epochs
    else:
        with monkeypatch.context() as m:
            m.setattr(training, "epoch_logger", interrupt_at(finished, KeyboardInterrupt))
            assert train(*epochs).exit_code == 130
    [run] = [p for p in (folders / "smoke").iterdir() if p.is_dir()]
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

    result = train(*epochs, resume=True)
    assert run_path(result) == run
    assert epoch_lines(result) == [(e + 1, 4) for e in range(rerun_from, 4)]
    assert history(run)["epoch"].tolist() == list(range(4))  # one row per epoch
    assert training.read_history(run / "history.csv")["epoch"].tolist() == [0, 1, 2, 3]
    assert ("unreadable" in result.stderr) == (rerun_from == 0)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 4
    assert not backup.exists()


def fit_history(cfg, ds, run: Path) -> list[list[float]]:
    run.mkdir(parents=True)
    training.fit(cfg.model, cfg.train, ds, runs.RunDir(run), progress="none")
    return history(run)[["loss", "val_loss"]].to_numpy().tolist()


def test_a_reused_compiled_model_trains_like_a_new_one(folders, monkeypatch):
    """A new model's training step is traced once. The next training of the same shape in a
    process reuses the compiled model (no new trace), with a new model's initial weights, dropout seeds and optimizer state: the same
    history and weights as a new model. The earlier run's model file is then loaded from disk,
    not served by the reused model."""
    cfg = load_config(SMOKE, ["model.units=[4]", "model.dropout=0.1", "train.epochs=2", SHORT])
    ds = dataset.build(stages.load_frame(cfg), cfg)  # the sample store (STOCKRNN_DATA_DIR)
    training._COMPILED.clear()
    traced = []
    new_model = training.compiled_model

    def counting(*args, **kwargs):  # counts the traces of the new model's training step
        model = new_model(*args, **kwargs)
        step = model.train_step
        model.train_step = lambda data: traced.append(1) or step(data)
        return model

    monkeypatch.setattr(training, "compiled_model", counting)
    first = fit_history(cfg, ds, folders / "a")
    # traced once: with its optimizer built only inside the step, TensorFlow traced it twice
    assert len(traced) == 1
    monkeypatch.undo()
    [compiled] = training._COMPILED.values()
    first_pred = training.predict(training.load_model(folders / "a" / "model.keras"),
                                  ds.splits["val"].x)
    again = fit_history(cfg, ds, folders / "b")
    assert list(training._COMPILED.values()) == [compiled]  # reused, not compiled again
    assert again == first
    np.testing.assert_array_equal(
        training.predict(training.load_model(folders / "b" / "model.keras"), ds.splits["val"].x),
        first_pred)
    reloaded = training.load_model(folders / "a" / "model.keras")
    assert reloaded is not compiled  # the reused model no longer stands for run a's file
    np.testing.assert_array_equal(training.predict(reloaded, ds.splits["val"].x), first_pred)


def test_a_reused_compiled_model_takes_the_new_learning_rate(folders):
    """A training that differs from the last one only in its learning rate reuses its compiled
    model (the rate is an optimizer variable, set from the new optimizer) and gives the history
    of a new model trained at that rate."""
    base = ["model.units=[4]", "train.epochs=2", SHORT]
    cfg = load_config(SMOKE, base)
    faster = load_config(SMOKE, [*base, "train.learning_rate=0.05"])
    ds = dataset.build(stages.load_frame(cfg), cfg)
    training._COMPILED.clear()
    slow = fit_history(cfg, ds, folders / "a")
    [compiled] = training._COMPILED.values()
    reused = fit_history(faster, ds, folders / "b")
    assert list(training._COMPILED.values()) == [compiled]  # not compiled again
    assert float(compiled.optimizer.learning_rate.numpy()) == pytest.approx(0.05)
    training._COMPILED.clear()
    assert fit_history(faster, ds, folders / "c") == reused != slow  # a new model: the same


def test_seeding_keeps_tensorflows_kernels_and_sets_its_seed():
    """``seed_everything`` sets TensorFlow's global seed as ``tf.random.set_seed`` does (the
    ``tf.data`` shuffle's order, the seeds of ops given none) but leaves its kernel cache as it
    is (emptied, a reused compiled model's functions would run their first call anew: about
    0.3 s a training). A stateful random op shows the cache: its kernel's counter goes on."""
    import tensorflow as tf

    from stockrnn.backend import seed_everything

    def draw():
        return float(tf.random.uniform([], seed=1))

    def shuffled():
        return [int(v) for v in tf.data.Dataset.range(20).shuffle(20, seed=7)]

    def unseeded():  # the seeds an op given none takes: from the global seed's generator
        return [tf.compat.v1.get_seed(None) for _ in range(3)]

    tf.random.set_seed(4)
    expected = (shuffled(), unseeded())
    seed_everything(3)
    first = [draw(), draw()]
    seed_everything(3)
    assert draw() not in first  # the same kernel, its counter went on
    seed_everything(4)
    assert (shuffled(), unseeded()) == expected  # as after tf.random.set_seed(4)
    assert draw() not in first  # a new seed kept the kernels too


def test_compiled_models_of_alternating_shapes_are_each_reused(folders, monkeypatch):
    """Trainings that alternate between shapes (an ensemble's LSTM and Conv1D members, fold
    after fold) each reuse their shape's compiled model, with a new model's numbers; only the
    last ``_COMPILED_KEPT`` used are kept."""
    lstm = load_config(SMOKE, ["model.units=[4]", "train.epochs=2", SHORT])
    conv = load_config(SMOKE, ["model.type=conv1d", "model.filters=4", "model.kernel_size=3",
                               "train.epochs=2", SHORT])
    ds = dataset.build(stages.load_frame(lstm), lstm)
    training._COMPILED.clear()
    first = fit_history(lstm, ds, folders / "lstm1")
    [compiled] = training._COMPILED.values()
    fit_history(conv, ds, folders / "conv1")
    assert fit_history(lstm, ds, folders / "lstm2") == first
    assert list(training._COMPILED.values())[-1] is compiled and len(training._COMPILED) == 2
    monkeypatch.setattr(training, "_COMPILED_KEPT", 1)
    fit_history(conv, ds, folders / "conv2")  # drops the LSTM's
    assert fit_history(lstm, ds, folders / "lstm3") == first
    assert list(training._COMPILED.values()) != [compiled] and len(training._COMPILED) == 1


def test_predict_calls_have_one_shape_and_give_the_same_bits_as_bigger_calls(monkeypatch):
    """``predict`` pads up to 4096 windows into calls of 256 rows (one traced shape, from a
    forecast's one window to a validation split), more into calls of 4096; a window's output
    is the same bits whatever the call size, so 512-row calls (the size before) give the same
    numbers."""
    from stockrnn.backend import seed_everything
    from stockrnn.models.registry import build_model

    cfg = load_config(SMOKE, ["model.units=[4]"])
    seed_everything(1)
    model = build_model(cfg.model, (cfg.window.look_back, 1), 1)
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    shapes = []
    real = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch",
                        lambda part: shapes.append(part.shape[0]) or real(part))
    for n in (1, 225, 700):
        x = rng.normal(size=(n, cfg.window.look_back, 1)).astype("float32")
        shapes.clear()
        got = training.predict(model, x)
        assert got.shape == (n, 1) and set(shapes) == {training.SMALL} == {256}
        assert len(shapes) == training.predict_calls(n)
        monkeypatch.setattr(training, "SMALL", 512)
        np.testing.assert_array_equal(training.predict(model, x), got)
        monkeypatch.setattr(training, "SMALL", 256)
    x = rng.normal(size=(4097, cfg.window.look_back, 1)).astype("float32")
    shapes.clear()
    assert training.predict(model, x).shape == (4097, 1) and shapes == [4096, 4096]
    assert training.predict_calls(4097) == 2


def test_early_stopping_and_plateau_decide_on_the_host_as_keras_own_ops_do():
    """``training.on_host`` makes Keras' EarlyStopping and ReduceLROnPlateau compare val_loss
    with the best in NumPy instead of a backend op per epoch, as float32 numbers, as Keras'
    ``ops.less`` does: the same waits, best values, stops and learning rates epoch by epoch,
    also for changes float32 cannot hold (1e-9: no improvement, where float64 sees one)."""
    from stockrnn.backend import use

    keras = use()
    losses = [1.0, 1.0 - 1e-9, 0.9995, 0.9, 0.9 + 1e-9, 0.8999999, 0.95, 0.7, 0.7 - 1e-9, 0.7,
              0.69, 0.7]
    models = [keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]) for _ in range(2)]
    for model in models:
        model.compile(keras.optimizers.Adam(), "mae")
    for cls, kw in ((keras.callbacks.EarlyStopping, {"patience": 3}),
                    (keras.callbacks.EarlyStopping, {"patience": 2, "min_delta": 1e-3}),
                    (keras.callbacks.ReduceLROnPlateau, {"patience": 1, "factor": 0.5}),
                    (keras.callbacks.ReduceLROnPlateau, {"patience": 1, "min_delta": 1e-3})):
        traces = []
        for make, model in zip((cls, training.on_host(cls)), models, strict=True):
            model.stop_training, model.optimizer.learning_rate = False, 1e-2
            callback = make(monitor="val_loss", **kw)
            callback.set_model(model)
            callback.on_train_begin()
            trace = []
            for epoch, loss in enumerate(losses):
                callback.on_epoch_end(epoch, {"val_loss": loss})
                trace.append((callback.wait, float(callback.best), model.stop_training,
                              float(np.asarray(model.optimizer.learning_rate))))
            traces.append(trace)
        assert type(callback).__name__ == cls.__name__
        assert callback.monitor_op is not keras.ops.less  # on the host
        assert traces[0] == traces[1], (cls.__name__, kw)
        assert traces[0][1][1] == 1.0  # 1 - 1e-9 is 1 in float32: not a new best


def test_validation_draws_the_dropout_seeds_as_keras_own_validation():
    """Keras' evaluation loop advances a recurrent layer's dropout seed once per validation
    batch; ``training.validation`` scores the windows in 256-row predict calls and advances
    the seeds as far, so a model with dropout trains to the same weights as with Keras' own
    ``validation_data``, also when the validation windows take two calls (300 here)."""
    from stockrnn.backend import use

    keras = use()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 5, 1)).astype("float32"), rng.normal(size=(96, 1)).astype("float32")
    xv = rng.normal(size=(300, 5, 1)).astype("float32")
    yv = rng.normal(size=(300, 1)).astype("float32")
    assert training.predict_calls(len(xv)) == 2
    weights = []
    for validation in ({"validation_data": (xv, yv)},
                       {"callbacks": [training.validation("mae", xv, yv, 32)]}):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(4, dropout=0.3),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-2), "mae")
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0, **validation)
        weights.append(model.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
