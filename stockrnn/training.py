"""Compile and fit a model into a run directory, with checkpoints, resume and progress.

Callbacks: EarlyStopping (restore best weights), ModelCheckpoint of the best model
(``checkpoints/best.keras``), BackupAndRestore (``backup/``, so ``--resume`` continues from the
last finished epoch), and a history logger (``history.csv``: one row per epoch, rewritten
atomically after each epoch, so an epoch trained again after ``--resume`` replaces its row).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from stockrnn import atomic
from stockrnn.backend import seed_everything, use
from stockrnn.config import TrainConfig
from stockrnn.dataset import Dataset
from stockrnn.models.registry import build_model
from stockrnn.runs import RunDir

log = logging.getLogger(__name__)
LOSSES = {"mae": "mean_absolute_error", "mse": "mean_squared_error", "huber": "huber"}


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


def batches(x, y, vx, vy, batch_size: int, seed: int):
    """Training and validation inputs for ``fit``.

    TensorFlow: a cached ``tf.data`` pipeline (copied into the runtime once, reshuffled each
    epoch with a fixed seed, pre-batched), which with ``steps_per_execution`` removes most of
    the per-step Python overhead. JAX: plain arrays (Keras batches them itself).
    """
    keras = use()
    x, vx = np.ascontiguousarray(x), np.ascontiguousarray(vx)
    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "validation_data": (vx, vy), "batch_size": batch_size,
                "shuffle": True}
    import tensorflow as tf

    train = (tf.data.Dataset.from_tensor_slices((x, y)).cache()
             .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
             .batch(batch_size).prefetch(2))
    val = tf.data.Dataset.from_tensor_slices((vx, vy)).batch(batch_size).cache()
    return {"x": train, "validation_data": val, "shuffle": False}  # the pipeline shuffles


def backup_and_restore(backup: Path, every_s: float = 0.0):
    """BackupAndRestore that keeps the previous backup too (its files are written in place, so a
    kill in the middle of a write leaves an unreadable weights or metadata file; the previous
    backup is used instead) and, when no backup is readable at all, starts the run's epochs
    over instead of failing every later ``--resume``.

    It writes at most every ``every_s`` seconds (0: after every epoch): writing the weights and
    optimizer state takes about a quarter of a short epoch. In between it keeps the last
    finished epoch's state in memory, and ``flush()`` writes that when training is interrupted by an exception
    (Ctrl-C, an error), so only a kill loses epochs: at most ``every_s`` seconds of them."""
    keras = use()

    class Backup(keras.callbacks.BackupAndRestore):
        pending = None  # (finished epochs, model + optimizer variable values) not yet written
        saved_at = 0.0

        def state(self):
            opt = self.model.optimizer
            return list(self.model.variables) + (list(opt.variables) if opt is not None else [])

        def on_epoch_end(self, epoch, logs=None):
            self._current_epoch, self._last_batch_seen = epoch + 1, 0
            if time.monotonic() - self.saved_at >= every_s:
                self.write()
            else:
                self.pending = (epoch + 1, [v.numpy() for v in self.state()])

        def write(self):
            self._save_model()
            self.saved_at, self.pending = time.monotonic(), None

        def flush(self):
            """Write the last finished epoch's state if it is newer than the backup."""
            if self.pending is None:
                return
            epoch, values = self.pending
            for var, value in zip(self.state(), values, strict=True):
                var.assign(value)
            self._current_epoch, self._last_batch_seen = epoch, 0
            self.write()

        def on_train_begin(self, logs=None):
            self.saved_at, self.pending = time.monotonic(), None
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

    return Backup(str(backup), delete_checkpoint=True, double_checkpoint=True)


def history_logger(path: Path, resume: bool):
    """Keeps ``history.csv`` at exactly one row per finished epoch (``epoch`` from 0, then the
    logged metrics). On resume it starts from the rows written before; an epoch trained again
    replaces its row and rows after it are dropped, so the file always ends at the last epoch."""
    keras = use()

    class History(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.rows: dict[int, dict] = {}
            if resume and path.exists():
                import pandas as pd

                try:
                    old = pd.read_csv(path)
                    self.rows = {int(r["epoch"]): r for r in old.to_dict("records")}
                except (ValueError, KeyError, pd.errors.EmptyDataError):
                    self.rows = {}

        def on_epoch_end(self, epoch, logs=None):
            self.rows[epoch] = {"epoch": epoch, **{k: float(v) for k, v in
                                                   sorted((logs or {}).items())}}
            rows = [r for e, r in sorted(self.rows.items()) if e <= epoch]
            cols = list(dict.fromkeys(k for r in rows for k in r))
            lines = [",".join(cols)] + [",".join("" if r.get(c) is None else repr(r[c])
                                                 for c in cols) for r in rows]
            atomic.write_text(path, "\n".join(lines) + "\n")

    return History()


def previous_best(history: Path) -> float | None:
    if not history.exists():
        return None
    import pandas as pd

    try:
        h = pd.read_csv(history)
        return float(h["val_loss"].min()) if len(h) else None
    except (ValueError, KeyError, pd.errors.EmptyDataError):
        return None


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
    model = build_model(model_cfg, tuple(tr.x.shape[1:]), ds.horizon)
    optimizer = keras.optimizers.get({"class_name": train_cfg.optimizer,
                                      "config": {"learning_rate": train_cfg.learning_rate}})
    model.compile(optimizer=optimizer, loss=LOSSES[train_cfg.loss],
                  # never more than an epoch's steps (the progress bar would count past them)
                  steps_per_execution=min(train_cfg.steps_per_execution,
                                          -(-len(tr.x) // train_cfg.batch_size)))
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    best_path = run.checkpoints / "best.keras"
    # The untrained model (zero output layer, see models.registry.head) is the starting point:
    # an epoch is kept only if it beats it on validation, else the starting point is the model.
    start_weights = model.get_weights()
    start_loss = loss_of_zero(train_cfg.loss, va.y)
    before = previous_best(run.history) if resume else None
    threshold = start_loss if before is None else min(before, start_loss)
    # The backup goes last: at an epoch's end the checkpoint and history.csv are written before
    # the backup moves on, so a run killed in between repeats that epoch on --resume (its row
    # is replaced) instead of leaving a hole in the history.
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=train_cfg.early_stopping.patience,
                                      min_delta=train_cfg.early_stopping.min_delta,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=threshold),
        history_logger(run.history, resume),
        backup := backup_and_restore(run.backup, train_cfg.backup_every_s),
    ]
    if progress == "lines":
        callbacks.append(epoch_logger(train_cfg.epochs))
    if train_cfg.tensorboard:  # <run dir>/tensorboard/
        from stockrnn import tracking

        callbacks.append(tracking.tensorboard_callback(run))
    started = time.perf_counter()
    data = batches(tr.x, tr.y, va.x, va.y, train_cfg.batch_size, train_cfg.seed)
    # Keras draws its progress bar on stdout; stdout carries results only (the run path)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            model.fit(**data, epochs=train_cfg.epochs, callbacks=callbacks,
                      verbose=1 if progress == "bar" else 0)
        except BaseException:  # Ctrl-C or an error: keep every finished epoch for --resume
            try:
                backup.flush()
            except Exception as exc:
                log.warning("could not write the backup of the last finished epoch (%s)", exc)
            raise
    wall = time.perf_counter() - started
    history = read_history(run.history)
    kept_start = not best_path.exists() and not float(history["val_loss"].min()) < start_loss
    if kept_start:
        log.warning("no epoch beat the untrained model (val_loss %.5f: the persistence forecast "
                    "under the log_return target) on validation; keeping the untrained model",
                    start_loss)
        model.set_weights(start_weights)
    elif best_path.exists():  # final = best epoch, also when training ran to the last epoch
        try:
            best = keras.models.load_model(best_path, compile=False)
            model.set_weights(best.get_weights())
        except Exception as exc:  # a checkpoint cut short by a kill: keep the restored weights
            log.warning("checkpoint %s is unreadable (%s); using EarlyStopping's best weights",
                        best_path, type(exc).__name__)
    atomic.write_with(run.model, lambda tmp: model.save(tmp), suffix=".keras")
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

    use(backend)
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
        networks[m.name] = load_model(mrun.model)
    va = ds.splits["val"]
    model = ensemble.combine(networks, tuple(va.x.shape[1:]))
    start_loss = loss_of_zero(train_cfg.loss, va.y)
    val_loss = loss_value(train_cfg.loss, va.y, predict(model, va.x))
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


def loss_value(loss: str, y: np.ndarray, pred: np.ndarray | float) -> float:
    """The training loss (``train.loss``) of the predictions ``pred`` of the targets ``y``."""
    a = np.abs(np.asarray(y, dtype="float64") - np.asarray(pred, dtype="float64"))
    if loss == "mae":
        return float(a.mean())
    if loss == "mse":
        return float((a ** 2).mean())
    return float(np.where(a <= 1.0, 0.5 * a ** 2, a - 0.5).mean())  # Keras huber, delta 1


def loss_of_zero(loss: str, y: np.ndarray) -> float:
    """The training loss of predicting 0 for every target: the untrained model's val_loss."""
    return loss_value(loss, y, 0.0)


def read_history(path: Path):
    """history.csv as a frame: one row per epoch."""
    import pandas as pd

    return pd.read_csv(path)


def predict(model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Model outputs for ``x`` in chunks, without building a data pipeline (fast for the few
    hundred windows of a split or the one window of a forecast)."""
    x = np.ascontiguousarray(x, dtype="float32")
    parts = [np.asarray(model.predict_on_batch(x[i:i + chunk])) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.empty((0, model.output_shape[-1]), "float32")


# Models this process saved or loaded, by the identity of their file (path, inode, mtime,
# size): loading an unchanged file again returns the same model, so `run` (train, evaluate,
# predict) builds and traces one model instead of one per stage. Any change to the file (an
# atomic replace, a damaged write) changes its identity, and it is loaded again.
_MODELS: collections.OrderedDict = collections.OrderedDict()
_MODELS_KEPT = 4


def _identity(path: Path) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_ino, st.st_mtime_ns, st.st_size)


def remember(path: Path, model) -> None:
    """``model`` is what ``path`` (just written from it) holds."""
    _MODELS[_identity(path)] = model
    while len(_MODELS) > _MODELS_KEPT:
        _MODELS.popitem(last=False)


def load_model(path: Path):
    """The Keras model in ``path`` (uncompiled: for predictions), shared while the file is
    unchanged."""
    keras = use()
    key = _identity(path)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model = keras.models.load_model(path, compile=False)
    remember(path, model)
    return model
