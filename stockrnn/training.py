"""Compile and fit a model into a run directory, with checkpoints, resume and progress.

Callbacks: the validation loss (one ``predict`` of the validation windows per epoch),
EarlyStopping on val_loss, and one keeper (``run_keeper``) holding the best epoch's
weights, the epoch history and the last finished epoch in memory, which writes them together at
most every ``train.backup_every_s`` seconds, at the end and on an interruption: the best model
(``checkpoints/best.keras``), ``history.csv`` (one row per epoch, rewritten atomically, so an
epoch trained again after ``--resume`` replaces its row) and the backup (``backup/``, so
``--resume`` continues from the last written epoch). A compiled model is reused by the next fit
of the same shape (``compiled_model``).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from stockrnn import atomic, jaxsteps
from stockrnn.backend import seed_everything, use
from stockrnn.config import TrainConfig
from stockrnn.dataset import Dataset
from stockrnn.models.recurrent import for_training
from stockrnn.models.registry import build_model
from stockrnn.runs import RunDir

log = logging.getLogger(__name__)
LOSSES = {"mae": "mean_absolute_error", "mse": "mean_squared_error", "huber": "huber"}
# A training of fewer steps in all (epochs x batches) runs one batch per compiled call: tracing
# steps_per_execution batches as one loop costs 0.3-0.5 s more (TensorFlow, the smoke config)
# and saves about 1.7 ms a step, so it pays off from about 250 steps on.
SHORT_TRAINING = 256


def epoch_logger(total: int):
    """One plain line per epoch on stderr (cron logs must not fill with progress-bar redraws)."""
    keras = use()

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = " ".join(f"{k} {v:.5f}" for k, v in logs.items() if k.endswith("loss"))
            log.info("epoch %d/%d %s (%.2fs)", epoch + 1, total, parts,
                     time.perf_counter() - self._t)

    return EpochLines()


def validation(loss: str, x: np.ndarray, y: np.ndarray, batch_size: int):
    """Scores the model on the validation windows at the end of each epoch: ``val_loss`` in
    the epoch's logs (so early stopping, the keeper, the epoch lines and Keras' history see it)
    is the training loss of ``predict`` on them. One predict call per epoch instead of Keras'
    own evaluation loop: the predict step, traced (TensorFlow) or compiled (JAX) once, also
    serves the intervals, ``evaluate`` and the forecasts, and a run traces no evaluation step.
    Goes first among the callbacks.

    Keras draws the models' dropout seeds in every step, training or not, so its evaluation
    loop advanced them once per validation batch; they are advanced as far here (once per
    batch, however many calls ``predict`` makes; on JAX with batches of ``jaxsteps.ROWS``
    windows its calls are those batches, and nothing is left to do), and training draws the
    same dropout masks as with Keras' own validation (the same numbers)."""
    keras = use()
    x = np.ascontiguousarray(x, dtype="float32")
    batches = -(-len(x) // batch_size)
    calls = predict_calls(len(x))

    class Validation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seeds = [] if calls == batches else [  # else predict has drawn them as far
                v for v in self.model.variables if v.path.endswith("seed_generator_state")]
            before = [np.asarray(v.value) for v in seeds]
            pred = predict(self.model, x)
            for var, old in zip(seeds, before, strict=True):
                drawn = (np.asarray(var.value) - old) // calls  # by one predict call
                var.assign(old + batches * drawn)
            if logs is not None:
                logs["val_loss"] = loss_value(loss, pred, y)

    return Validation()


@functools.cache
def on_host(callback_class):
    """``callback_class`` (Keras' EarlyStopping or ReduceLROnPlateau) comparing the monitored
    value with the best on the host: Keras (from 3.11) compares them with ``keras.ops.less``
    (or ``greater``), a backend op on two numbers whose result it then waits for, every epoch
    (a few tenths of a millisecond on JAX). This compares the same two float32 numbers in
    NumPy: the same decisions, to the last bit of float32. (Older Keras compares on the host
    already, in its own way, and is left as it is.)"""
    keras = use()
    host = {keras.ops.less: lambda a, b: np.float32(a) < np.float32(b),
            keras.ops.greater: lambda a, b: np.float32(a) > np.float32(b)}

    class OnHost(callback_class):
        def _set_monitor_op(self):
            super()._set_monitor_op()
            self.monitor_op = host.get(self.monitor_op, self.monitor_op)

    OnHost.__name__ = OnHost.__qualname__ = callback_class.__name__
    return OnHost


def shuffle_seed(seed: int, windows: int):
    """Puts NumPy's global RNG where a new model's training finds it when training begins. On
    JAX, Keras shuffles the training windows with it, and its first build of a new model
    (inside ``fit``, before this) shuffles them once to take a batch's shapes: a model reused
    by ``compiled_model`` skips that build, so the RNG is seeded here again and that one
    shuffle drawn, and both are shuffled as a new model always was."""
    keras = use()

    class ShuffleSeed(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            np.random.seed(seed)
            np.random.permutation(windows)

    return ShuffleSeed()


def batches(x, y, batch_size: int, seed: int, model=None):
    """Training inputs for ``model.fit`` (the validation windows are scored by ``validation``).

    TensorFlow: a cached ``tf.data`` pipeline (copied into the runtime once, reshuffled each
    epoch with a fixed seed, pre-batched), which with ``steps_per_execution`` removes most of
    the per-step Python overhead. JAX: plain arrays, which Keras shuffles and batches itself,
    in batches of ``steps_per_execution`` training batches when ``model`` runs them as one
    compiled loop (``jaxsteps``)."""
    keras = use()
    x = np.ascontiguousarray(x)
    if keras.backend.backend() != "tensorflow":
        size = batch_size if model is None else jaxsteps.keras_batch_size(model, batch_size)
        return {"x": x, "y": y, "batch_size": size, "shuffle": True}
    import tensorflow as tf

    train = (tf.data.Dataset.from_tensor_slices((x, y)).cache()
             .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
             .batch(batch_size).prefetch(2))
    return {"x": train, "shuffle": False}  # the pipeline shuffles


def run_keeper(run: RunDir, *, resume: bool, threshold: float, every_s: float = 0.0):
    """The callback that keeps a run safe to stop: the best epoch, ``history.csv`` and the
    ``--resume`` backup, written together at most every ``every_s`` seconds (0: after every
    epoch), at the end, and when training is stopped by an exception (``flush()``).

    In between it keeps them in memory (``jaxsteps.snapshot``: on a model with jaxsteps'
    looped functions the arrays themselves, else host copies): each epoch's logged values
    (history), the weights of the best epoch so far (``best_weights``, an epoch beating
    ``threshold`` on val_loss is written to ``checkpoints/best.keras``) and the last finished
    epoch's model and optimizer state (for ``flush``). At the end it writes the history; ``fit``
    saves the best epoch as the model and copies that file to the checkpoint (``unsaved`` says
    it must). A write puts history.csv first, then the checkpoint, then the backup (Keras'
    BackupAndRestore: ``backup/``), so a kill in the middle leaves the backup at or behind the
    other two: ``--resume`` trains again what it lost, at most ``every_s`` seconds of epochs,
    and history.csv keeps one row per epoch.

    The backup keeps the previous one too (Keras writes its files in place, so a kill in the
    middle of a write leaves an unreadable weights or metadata file; the previous backup is
    used instead) and, when no backup is readable at all, the run's epochs start over instead
    of failing every later ``--resume``."""
    keras = use()
    best_path = run.checkpoints / "best.keras"

    class Keeper(keras.callbacks.BackupAndRestore):
        rows: dict[int, dict] = {}
        rows_changed = False
        pending = None       # (finished epochs, model + optimizer values) not yet written
        saved_at = 0.0
        best = threshold     # the val_loss an epoch must beat to be the run's best
        best_weights = None  # this session's best epoch beating it (weights), if any
        unsaved = False      # best_weights not yet in checkpoints/best.keras
        session_best = None  # (val_loss, weights) of this session's best epoch, beating or not

        def state(self):
            opt = self.model.optimizer
            return list(self.model.variables) + (list(opt.variables) if opt is not None else [])

        def on_train_begin(self, logs=None):
            self.saved_at, self.pending, self.rows = time.monotonic(), None, {}
            self.rows_changed, self.unsaved = False, False
            self.best, self.best_weights, self.session_best = threshold, None, None
            if resume and run.history.exists():
                import pandas as pd

                try:
                    old = pd.read_csv(run.history)
                    self.rows = {int(r["epoch"]): r for r in old.to_dict("records")}
                except (ValueError, KeyError, pd.errors.EmptyDataError):
                    self.rows = {}
            try:
                return super().on_train_begin(logs)
            except (OSError, ValueError) as exc:  # Keras itself falls back only on OSError
                problem = exc
            prev = (Path(self._prev_weights_path), Path(self._prev_training_metadata_path))
            if all(p.is_file() for p in prev):
                shutil.copyfile(prev[0], self._weights_path)
                shutil.copyfile(prev[1], self._training_metadata_path)
                try:
                    return super().on_train_begin(logs)
                except (OSError, ValueError) as exc:
                    problem = exc
            log.warning("backup in %s is unreadable (%s); training from the first epoch again",
                        self.backup_dir, problem)
            shutil.rmtree(self.backup_dir, ignore_errors=True)

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in sorted((logs or {}).items())}
            self.rows[epoch] = {"epoch": epoch, **logs}
            self.rows = {e: r for e, r in self.rows.items() if e <= epoch}  # an epoch redone
            self.rows_changed = True
            val = logs.get("val_loss")
            if val is not None and (self.session_best is None or val < self.session_best[0]):
                self.session_best = (val, jaxsteps.snapshot(self.model, self.model.weights))
                if val < self.best:
                    self.best, self.best_weights, self.unsaved = val, self.session_best[1], True
            self._current_epoch, self._last_batch_seen = epoch + 1, 0
            if time.monotonic() - self.saved_at >= every_s:
                self.pending = None
                self.write()
            else:
                self.pending = (epoch + 1, jaxsteps.snapshot(self.model, self.state()))

        def on_train_end(self, logs=None):
            self.write_history()  # the best epoch: fit saves it as the model, then copies it
            super().on_train_end(logs)  # removes the backup

        def write(self):
            """history.csv, the best checkpoint, then the backup of the current state."""
            self.write_history()
            self.write_checkpoint()
            self._save_model()
            self.saved_at = time.monotonic()

        def write_history(self):
            if not self.rows_changed:
                return
            rows = [r for _, r in sorted(self.rows.items())]
            cols = list(dict.fromkeys(k for r in rows for k in r))
            lines = [",".join(cols)] + [",".join("" if r.get(c) is None else repr(r[c])
                                                 for c in cols) for r in rows]
            atomic.write_text(run.history, "\n".join(lines) + "\n")
            self.rows_changed = False

        def write_checkpoint(self):
            if not self.unsaved:
                return
            current = jaxsteps.snapshot(self.model, self.model.weights)
            self.model.set_weights(self.best_weights)
            try:
                self.model.save(best_path)
            finally:
                self.model.set_weights(current)
            self.unsaved = False

        def flush(self):
            """Write the last finished epoch's state if it is newer than the backup."""
            if self.pending is None:
                return
            epoch, values = self.pending
            for var, value in zip(self.state(), values, strict=True):
                var.assign(value)
            self._current_epoch, self._last_batch_seen = epoch, 0
            self.pending = None
            self.write()

    return Keeper(str(run.backup), delete_checkpoint=True, double_checkpoint=True)


def previous_best(history: Path) -> float | None:
    if not history.exists():
        return None
    import pandas as pd

    try:
        h = pd.read_csv(history)
        return float(h["val_loss"].min()) if len(h) else None
    except (ValueError, KeyError, pd.errors.EmptyDataError):
        return None


# The last few compiled models, by what their compiled steps were built for: a later fit with
# the same model, input shape, optimizer, loss, batch size and steps per execution (a backtest's
# next fold, the next ticker of a batch, an ensemble's members for the next ticker or fold)
# trains that model again, with the initial weights and the fresh optimizer state a new build
# would have, instead of tracing (TensorFlow) or compiling (JAX) the same steps again. The
# numbers are the same as with a new model. The learning rate is not part of the key: it is
# one of the optimizer's variables, which the reused model takes from the new optimizer (a
# `tune` trial that changes only the rate trains the compiled model of the one before). Kept:
# the most recently used, enough for the distinct members of an ensemble.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_KEPT = 4


def compiled_model(model_cfg, train_cfg: TrainConfig, input_shape: tuple, horizon: int,
                   steps: int, batches: int | None = None):
    """A compiled model for this config, with fresh initial weights (seeded by the caller), for
    a training of ``batches`` batches in all (``models.recurrent.for_training``; None: long)."""
    keras = use()
    if batches is not None:
        model_cfg = for_training(model_cfg, batches)
    model = build_model(model_cfg, input_shape, horizon)
    key = (model_cfg.model_dump_json(), train_cfg.optimizer, train_cfg.loss,
           train_cfg.batch_size, steps, tuple(input_shape), horizon, keras.backend.backend())
    cached = _COMPILED.get(key)
    if cached is not None and _reset(cached, model, new_optimizer(train_cfg)):
        return _most_recent(_COMPILED, key, cached, _COMPILED_KEPT)
    model.compile(optimizer=new_optimizer(train_cfg), loss=LOSSES[train_cfg.loss],
                  steps_per_execution=steps)
    # The optimizer's variables now: Keras on TensorFlow would create them inside the first
    # traced step, and TensorFlow traces a step that creates variables twice (0.5-1 s more
    # for every new model; the smoke config's fit took 1.8-2.3 s, now 1.0-1.3 s).
    model.optimizer.build(model.trainable_variables)
    jaxsteps.install(model, train_cfg.batch_size, steps)
    return _most_recent(_COMPILED, key, model, _COMPILED_KEPT)


def _most_recent(cache: collections.OrderedDict, key, model, kept: int):
    """``model`` is the most recently used entry of ``cache``, which keeps the last ``kept``
    (``_COMPILED``, ``_MODELS``); returns it."""
    cache[key] = model
    cache.move_to_end(key)
    while len(cache) > kept:
        cache.popitem(last=False)
    return model


def new_optimizer(train_cfg: TrainConfig):
    keras = use()
    return keras.optimizers.get({"class_name": train_cfg.optimizer,
                                 "config": {"learning_rate": train_cfg.learning_rate}})


def _reset(compiled, model, optimizer) -> bool:
    """Give ``compiled`` the variables of ``model`` (a new build of the same config: initial
    weights and dropout seeds) and the state of a new ``optimizer``; False when they do not
    match one for one (then nothing is changed)."""
    optimizer.build(compiled.trainable_variables)
    old = [*compiled.variables, *compiled.optimizer.variables]
    new = [*model.variables, *optimizer.variables]
    if (len(compiled.variables) != len(model.variables) or len(old) != len(new)
            or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(old, new, strict=True))):
        return False
    _forget(compiled)  # a new model now: nothing may serve it as an earlier file's
    for var, value in zip(old, new, strict=True):
        var.assign(value.value)
    compiled._initial_epoch = None  # set by a resumed fit's BackupAndRestore
    compiled.stop_training = False
    return True


def fit(model_cfg, train_cfg: TrainConfig, ds: Dataset, run: RunDir, *, resume: bool = False,
        progress: str = "lines", backend: str | None = None) -> dict:
    """Train and write ``model.keras`` (the best epoch's weights). Returns training facts.
    An ensemble trains each of its members (``fit_ensemble``)."""
    if model_cfg.type == "ensemble":
        return fit_ensemble(model_cfg, train_cfg, ds, run, resume=resume, progress=progress,
                            backend=backend)
    keras = use(backend)
    seed_everything(train_cfg.seed)
    tr, va = ds.splits["train"], ds.splits["val"]
    per_epoch = -(-len(tr.x) // train_cfg.batch_size)
    steps = train_cfg.steps_per_execution
    if progress == "bar":  # the progress bar would count past an epoch's steps
        steps = min(steps, per_epoch)
    if per_epoch * train_cfg.epochs < SHORT_TRAINING:
        steps = 1  # the multi-batch loop would cost more to trace than it saves
    model = compiled_model(model_cfg, train_cfg, tuple(tr.x.shape[1:]), ds.horizon, steps,
                           batches=per_epoch * train_cfg.epochs)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    best_path = run.checkpoints / "best.keras"
    # The untrained model (zero output layer, see models.registry.head) is the starting point:
    # an epoch is kept only if it beats it on validation, else the starting point is the model.
    start_weights = model.get_weights()
    start_loss = loss_of_zero(train_cfg.loss, va.y)
    before = previous_best(run.history) if resume else None
    threshold = start_loss if before is None else min(before, start_loss)
    # EarlyStopping only stops: the keeper holds the best weights (and writes them, the
    # history and the backup together); the epoch logger goes last, so an epoch's time
    # includes the callbacks' work at its end.
    keeper = run_keeper(run, resume=resume, threshold=threshold, every_s=train_cfg.backup_every_s)
    callbacks = [
        shuffle_seed(train_cfg.seed, len(tr.x)),
        validation(train_cfg.loss, va.x, va.y, train_cfg.batch_size),
        on_host(keras.callbacks.EarlyStopping)(
            monitor="val_loss", patience=train_cfg.early_stopping.patience,
            min_delta=train_cfg.early_stopping.min_delta),
        keeper,
    ]
    if train_cfg.reduce_lr.patience:  # after the val_loss is computed, before the keeper (which
        # logs the rate in history.csv and saves it with the optimizer in the backup)
        callbacks.insert(2, on_host(keras.callbacks.ReduceLROnPlateau)(
            monitor="val_loss", factor=train_cfg.reduce_lr.factor,
            patience=train_cfg.reduce_lr.patience, min_lr=train_cfg.reduce_lr.min_lr))
    if progress == "lines":
        callbacks.append(epoch_logger(train_cfg.epochs))
    if train_cfg.tensorboard:  # <run dir>/tensorboard/
        from stockrnn import tracking

        callbacks.append(tracking.tensorboard_callback(run))
    started = time.perf_counter()
    data = batches(tr.x, tr.y, train_cfg.batch_size, train_cfg.seed, model)
    # Keras draws its progress bar on stdout; stdout carries results only (the run path)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            model.fit(**data, epochs=train_cfg.epochs, callbacks=callbacks,
                      verbose=1 if progress == "bar" else 0)
        except BaseException:  # Ctrl-C or an error: keep every finished epoch for --resume
            try:
                keeper.flush()
            except Exception as exc:
                log.warning("could not write the backup of the last finished epoch (%s)", exc)
            raise
    wall = time.perf_counter() - started
    history = read_history(run.history)
    kept_start = False
    if keeper.best_weights is not None:  # an epoch of this session is the best
        model.set_weights(keeper.best_weights)
    elif best_path.exists():  # the best epoch was before a --resume
        try:
            best = keras.models.load_model(best_path, compile=False)
            model.set_weights(best.get_weights())
        except Exception as exc:  # a checkpoint cut short by a kill: this session's best
            log.warning("checkpoint %s is unreadable (%s); using the best epoch trained since "
                        "the resume", best_path, type(exc).__name__)
            if keeper.session_best is not None:
                model.set_weights(keeper.session_best[1])
    elif not float(history["val_loss"].min()) < start_loss:
        kept_start = True
        log.warning("no epoch beat the untrained model (val_loss %.5f: the persistence forecast "
                    "under the log_return target) on validation; keeping the untrained model",
                    start_loss)
        model.set_weights(start_weights)
    elif keeper.session_best is not None:  # beaten before a --resume, its checkpoint lost
        model.set_weights(keeper.session_best[1])
    atomic.write_with(run.model, lambda tmp: model.save(tmp), suffix=".keras")
    if keeper.unsaved:  # the model is the best epoch, not yet in checkpoints/
        shutil.copyfile(run.model, best_path)
    remember(run.model, model)  # evaluate and predict in this process use it as it is

    return {"epochs_run": int(len(history)),
            "best_epoch": 0 if kept_start else int(history["val_loss"].idxmin()) + 1,
            "best_val_loss": start_loss if kept_start else float(history["val_loss"].min()),
            "start_val_loss": start_loss,
            "train_seconds": round(wall, 3),
            "parameters": int(model.count_params())}


MEMBERS = "members"          # <run>/members/<member name>/: one ordinary training per member
MEMBER_FILE = "member.json"  # written when the member is finished: its facts


def fit_ensemble(model_cfg, train_cfg: TrainConfig, ds: Dataset, run: RunDir, *,
                 resume: bool = False, progress: str = "lines", backend: str | None = None
                 ) -> dict:
    """Train an ensemble's members, then write ``model.keras``: the model that averages them.

    Each member (``models.ensemble.members``: every member once per seed) is an ordinary
    ``fit`` into ``<run>/members/<name>/`` (its own model.keras, history.csv, checkpoint and
    backup), with its own seed and early stopping on the validation split, on the same windows.
    ``member.json`` there marks it finished. With ``resume`` a finished member is kept as it is
    and an interrupted one continues from its backup. The run's history.csv holds every
    member's epochs (columns ``<name>/loss``, ``<name>/val_loss``); its facts are the
    ensemble's validation loss, the members' epochs and seconds summed, and ``members``: each
    member's facts."""
    from stockrnn.models import ensemble

    keras = use(backend)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing warnings between members
    todo = ensemble.members(model_cfg, train_cfg.seed)
    facts, networks = [], {}
    for i, m in enumerate(todo, 1):
        mrun = member_run(run, m.name)
        done = finished_member(mrun) if resume else None
        if done is not None:
            log.info("ensemble member %d/%d %s: finished before, kept", i, len(todo), m.name)
        else:
            log.info("ensemble member %d/%d: %s (seed %d)", i, len(todo), m.name, m.seed)
            mrun.path.mkdir(parents=True, exist_ok=True)
            done = {"name": m.name, "type": m.model.type, "seed": m.seed,
                    **fit(m.model, train_cfg.model_copy(update={"seed": m.seed}), ds, mrun,
                          resume=resume, progress=progress, backend=backend)}
            atomic.write_json(mrun.path / MEMBER_FILE, done)
        facts.append(done)
        # its own copy, from its file: the model a member trained on stays in _COMPILED, and
        # the next member of its shape (another seed, the next ticker or fold) trains it again
        networks[m.name] = keras.models.load_model(mrun.model, compile=False)
    va = ds.splits["val"]
    model = ensemble.combine(networks, tuple(va.x.shape[1:]))
    start_loss = loss_of_zero(train_cfg.loss, va.y)
    val_loss = loss_value(train_cfg.loss, predict(model, va.x), va.y)
    write_member_history(run.history, [(m.name, member_run(run, m.name)) for m in todo])
    atomic.write_with(run.model, lambda tmp: model.save(tmp), suffix=".keras")
    remember(run.model, model)
    best = min(facts, key=lambda f: f["best_val_loss"])
    log.info("ensemble of %d: val_loss %.5f (best member %s: %.5f)", len(facts), val_loss,
             best["name"], best["best_val_loss"])
    return {"epochs_run": sum(f["epochs_run"] for f in facts), "best_epoch": None,
            "best_val_loss": val_loss, "start_val_loss": start_loss,
            "train_seconds": round(sum(f["train_seconds"] for f in facts), 3),
            "parameters": int(model.count_params()), "members": facts}


def member_run(run: RunDir, name: str) -> RunDir:
    """Where an ensemble member trains: ``<run>/members/<name>/``."""
    return RunDir(run.path / MEMBERS / name)


def finished_member(mrun: RunDir) -> dict | None:
    """A member's facts when it finished training (member.json and its model), else None."""
    import json

    try:
        facts = json.loads((mrun.path / MEMBER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) and mrun.model.is_file() else None


def write_member_history(path: Path, members: list[tuple[str, RunDir]]) -> None:
    """One history.csv for an ensemble: a row per epoch, each member's columns under its
    name (``lstm_s42/val_loss``), empty where a member stopped earlier."""
    import pandas as pd

    parts = [read_history(m.history).set_index("epoch").add_prefix(f"{name}/")
             for name, m in members]
    frame = pd.concat(parts, axis=1).sort_index()
    frame.index.name = "epoch"
    atomic.write_with(path, lambda tmp: frame.to_csv(tmp), suffix=".csv")


def loss_value(loss: str, pred: np.ndarray, y: np.ndarray) -> float:
    """The training loss ``loss`` of the outputs ``pred`` for the targets ``y`` (Keras' formula,
    the mean over every window and horizon step, in float64)."""
    a = np.abs(np.asarray(y, dtype="float64") - np.asarray(pred, dtype="float64"))
    if loss == "mae":
        return float(a.mean())
    if loss == "mse":
        return float((a ** 2).mean())
    return float(np.where(a <= 1.0, 0.5 * a ** 2, a - 0.5).mean())  # Keras huber, delta 1


def loss_of_zero(loss: str, y: np.ndarray) -> float:
    """The training loss of predicting 0 for every target: the untrained model's val_loss."""
    return loss_value(loss, 0.0, y)


def read_history(path: Path):
    """history.csv as a frame: one row per epoch."""
    import pandas as pd

    return pd.read_csv(path)


SMALL, CHUNK = 256, 4096  # rows per predict call: inputs are padded to whole calls of these


def _call_rows(n: int) -> int:
    """The rows of each of ``predict``'s model calls for ``n`` windows."""
    return SMALL if n <= CHUNK else CHUNK


def predict_calls(n: int) -> int:
    """How many model calls ``predict`` makes for ``n`` windows."""
    if use().backend.backend() == "jax":
        return jaxsteps.calls(n)
    return -(-n // _call_rows(n))


def predict(model, x: np.ndarray) -> np.ndarray:
    """Model outputs for ``x`` without building a data pipeline (fast for the few hundred
    windows of a split or the one window of a forecast). On TensorFlow, inputs of up to
    ``CHUNK`` windows go in calls of exactly ``SMALL`` rows, larger ones in calls of exactly
    ``CHUNK`` rows (the last padded with zeros, whose outputs are dropped): the model's predict
    step is traced for one shape, not once per split and again for a forecast. A window's
    output does not depend on the rows beside it in its call (the same bits with 256, 512 or
    4096 rows a call, every family), and the validation split is predicted once per epoch:
    small calls waste little on padding. On JAX, calls of ``jaxsteps.ROWS`` windows in one
    compiled loop (``jaxsteps.predict``), which pads less."""
    x = np.ascontiguousarray(x, dtype="float32")
    n = len(x)
    if n == 0:
        return np.empty((0, model.output_shape[-1]), "float32")
    if use().backend.backend() == "jax":
        return jaxsteps.predict(model, x)
    size = _call_rows(n)
    parts = []
    for i in range(0, n, size):
        part = x[i:i + size]
        if len(part) < size:
            part = np.concatenate([part, np.zeros((size - len(part), *x.shape[1:]), "float32")])
        parts.append(np.asarray(model.predict_on_batch(part))[:min(size, n - i)])
    return np.concatenate(parts)


# Models this process saved or loaded, by the identity of their file (path, inode, mtime,
# size): loading an unchanged file again returns the same model, so `run` (train, evaluate,
# predict) builds and traces one model instead of one per stage. Any change to the file (an
# atomic replace, a damaged write) changes its identity, and it is loaded again.
_MODELS: collections.OrderedDict = collections.OrderedDict()
_MODELS_KEPT = 4


def _identity(path: Path) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_ino, st.st_mtime_ns, st.st_size)


def _forget(model) -> None:
    for key in [k for k, m in _MODELS.items() if m is model]:
        del _MODELS[key]


def remember(path: Path, model) -> None:
    """``model`` is what ``path`` (just written from it) holds."""
    _most_recent(_MODELS, _identity(path), model, _MODELS_KEPT)


def load_model(path: Path):
    """The Keras model in ``path`` (uncompiled: for predictions), shared while the file is
    unchanged. It may be the compiled model its training used, which a later training of the
    same shape in this process trains again (``compiled_model``): use it before the next
    training, or take a copy from the file (as ``fit_ensemble`` does for its members)."""
    keras = use()
    key = _identity(path)
    if key in _MODELS:
        return _most_recent(_MODELS, key, _MODELS[key], _MODELS_KEPT)
    model = keras.models.load_model(path, compile=False)
    remember(path, model)
    return model
