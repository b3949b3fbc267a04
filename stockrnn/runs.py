"""Run directories: layout, locks, metadata, the ``latest`` pointer, finding runs by name.

    runs/<run_name>/<UTC timestamp>/
        config.yaml  model.keras  scaler.json  series.csv  history.csv  meta.json
        intervals.json  checkpoints/best.keras   backup/ (while training)   plots/*.png
        metrics_<split>.json     forecast.csv (after evaluate / predict)
        members/<name>/  (an ensemble: each member's model.keras, history.csv, member.json)
    runs/<run_name>/latest      name of the newest complete run
    runs/<run_name>/.lock       held by whoever writes under runs/<run_name>/
    runs/<run_name>/<kind>-<UTC timestamp>/   batch, tune and backtest folders
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import socket
from pathlib import Path

from stockrnn import __version__, atomic, locking
from stockrnn.config import runs_dir as runs_root
from stockrnn.errors import LockError, RunError

log = logging.getLogger(__name__)

RUN_FORMAT = 1
LATEST = "latest"


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    config = property(lambda self: self.path / "config.yaml")
    model = property(lambda self: self.path / "model.keras")
    scaler = property(lambda self: self.path / "scaler.json")
    series = property(lambda self: self.path / "series.csv")
    history = property(lambda self: self.path / "history.csv")
    meta_file = property(lambda self: self.path / "meta.json")
    checkpoints = property(lambda self: self.path / "checkpoints")
    backup = property(lambda self: self.path / "backup")
    plots = property(lambda self: self.path / "plots")

    @property
    def name(self) -> str:
        return self.path.parent.name

    def meta(self) -> dict:
        try:
            return json.loads(self.meta_file.read_text())
        except FileNotFoundError:
            raise RunError(f"{self.path}: not a run directory (no meta.json)") from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.path}/meta.json is unreadable: {exc}") from None

    def update_meta(self, **fields) -> dict:
        meta = self.meta() if self.meta_file.exists() else {}
        meta.update(fields)
        atomic.write_json(self.meta_file, meta)
        return meta

    @property
    def status(self) -> str:
        """complete | running | incomplete (killed or failed)."""
        try:
            meta = self.meta()
        except RunError:
            return "incomplete"
        status = meta.get("status", "incomplete")
        if status == "running" and not _alive(meta.get("pid"), meta.get("host")):
            return "incomplete"
        return status

    def check_complete(self) -> None:
        meta = self.meta()
        fmt = meta.get("format")
        if fmt != RUN_FORMAT:
            raise RunError(f"{self.path}: run format {fmt!r} is not supported by stockrnn "
                           f"{__version__} (expects {RUN_FORMAT}); retrain with this version")
        if self.status != "complete":
            raise RunError(f"{self.path}: run is {self.status}, not complete; "
                           "finish it with `stockrnn train --resume` or pick another run")


def _alive(pid, host) -> bool:
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True  # cannot tell from here: assume the other machine is still working on it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_path(runs_dir: str | os.PathLike, name: str) -> Path:
    """The lock of a run name: held while anything writes under ``runs/<name>/``."""
    return Path(runs_dir) / name / ".lock"


def now() -> str:
    """The current UTC time as meta.json records it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def stamped_dir(base: str | os.PathLike, prefix: str = "") -> Path:
    """A new folder ``base/<prefix><UTC timestamp>[-i]`` (created; never an existing one)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = base / (f"{prefix}{stamp}" if i == 0 else f"{prefix}{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"cannot create a new folder under {base}")


def create(runs_dir: Path, name: str) -> RunDir:
    """A new, empty run directory ``runs/<name>/<UTC timestamp>/``."""
    return RunDir(stamped_dir(Path(runs_dir) / name))


def versions(backend: str) -> dict:
    """The library versions a run was trained with (imports keras: call from training code)."""
    import platform

    import numpy as np
    import pandas as pd

    from stockrnn.backend import use

    keras = use(backend)

    out = {"stockrnn": __version__, "python": platform.python_version(), "keras": keras.__version__,
           "numpy": np.__version__, "pandas": pd.__version__}
    if backend == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    else:
        import jax

        out["jax"] = jax.__version__
    return out


def start(run: RunDir, *, backend: str, seed: int, model_type: str, **fields) -> dict:
    """Write a new run's meta.json: format, status running, who trains it, when, with what."""
    return run.update_meta(format=RUN_FORMAT, **_running(), created=now(), backend=backend,
                           seed=seed, model_type=model_type, versions=versions(backend), **fields)


def mark_running(run: RunDir) -> dict:
    """Record that this process trains ``run`` now (``status`` tells a live run from one that
    was killed by this pid and host)."""
    return run.update_meta(**_running())


def _running() -> dict:
    return {"status": "running", "pid": os.getpid(), "host": socket.gethostname()}


def set_latest(run: RunDir) -> None:
    atomic.write_text(run.path.parent / LATEST, run.path.name + "\n")


def latest(runs_dir: Path, name: str) -> RunDir | None:
    pointer = Path(runs_dir) / name / LATEST
    try:
        target = pointer.read_text().strip()
    except OSError:
        return None
    return RunDir(pointer.parent / target) if target else None


def resolve(ref: str, runs_dir: str | os.PathLike | None = None) -> RunDir:
    """A run directory path, a run name (its latest), or a run name's folder."""
    path = Path(ref)
    if (path / "meta.json").is_file():
        return RunDir(path)
    for base in (path, runs_root(runs_dir) / ref):
        if base.is_dir():
            run = latest(base.parent, base.name)
            if run is not None and run.path.is_dir():
                return run
            raise RunError(f"{base}: no complete run yet (no '{LATEST}' pointer)")
    raise RunError(f"no run directory or run name {ref!r} (looked in {runs_root(runs_dir)}/)")


def list_runs(runs_dir: Path, name: str | None = None) -> list[RunDir]:
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    names = [root / name] if name else sorted(p for p in root.iterdir() if p.is_dir())
    out = []
    for base in names:
        if base.is_dir():
            out += [RunDir(p) for p in sorted(base.iterdir())
                    if p.is_dir() and (p / "meta.json").exists()]
    return out


def incomplete(runs_dir: Path, name: str) -> list[RunDir]:
    return [r for r in list_runs(runs_dir, name) if r.status == "incomplete"]


def remove(run: RunDir) -> None:
    shutil.rmtree(run.path)


def prune(runs_dir: Path, name: str | None = None, keep: int | None = None,
          incomplete_only: bool = False, lock: bool = True) -> list[RunDir]:
    """Remove old runs: per run name keep the newest ``keep`` complete runs and drop interrupted
    ones. Never removes the ``latest`` run or a run still in progress.

    Takes each run name's lock (no waiting) unless ``lock`` is False (the caller holds it): for
    the one ``name`` asked for a held lock raises LockError; over all names a locked one is
    skipped with a warning."""
    removed = []
    root = Path(runs_dir)
    names = [name] if name else sorted(p.name for p in root.iterdir() if p.is_dir()) \
        if root.is_dir() else []
    for nm in names:
        if not lock or not (root / nm).is_dir():
            removed += _prune_name(root, nm, keep, incomplete_only)
            continue
        try:
            with locking.hold(root / nm / ".lock"):
                removed += _prune_name(root, nm, keep, incomplete_only)
        except LockError:
            if name:
                raise
            log.warning("skipped %s: another stockrnn process holds its lock", root / nm)
    return removed


def _prune_name(root: Path, name: str, keep: int | None, incomplete_only: bool) -> list[RunDir]:
    pointer = latest(root, name)
    keep_path = pointer.path if pointer else None
    all_runs = list_runs(root, name)
    doomed = [r for r in all_runs if r.status == "incomplete"]
    if keep is not None and not incomplete_only:
        complete = [r for r in all_runs if r.status == "complete"]
        doomed += complete[:-keep] if keep > 0 else complete
    removed = []
    for run in doomed:
        if run.path == keep_path or run.status == "running":
            continue
        remove(run)
        removed.append(run)
    return removed


def best_line(meta: dict) -> str:
    """How training ended, in words: the best epoch, or that the untrained model was kept; for
    an ensemble, its validation loss beside its best member's."""
    members = meta.get("members")
    if members:
        best = min(members, key=lambda m: m["best_val_loss"])
        return (f"ensemble of {len(members)}: val_loss {meta['best_val_loss']:.5f}, best member "
                f"{best['name']} {best['best_val_loss']:.5f}")
    if meta.get("best_epoch") == 0:
        return (f"no epoch beat the untrained model (persistence) on validation, kept it "
                f"(val_loss {meta['best_val_loss']:.5f})")
    return f"best val_loss {meta['best_val_loss']:.5f} at epoch {meta['best_epoch']}"
