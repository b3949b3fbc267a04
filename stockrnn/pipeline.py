"""The stages behind the CLI commands: prepare, train (evaluate and predict live in their own
modules). Each stage reads only what the one before it wrote."""

from __future__ import annotations

import logging
import os
import platform
import socket
import time

import numpy as np
import pandas as pd

from stockrnn import __version__, atomic, dataset, locking, runs
from stockrnn.config import Config
from stockrnn.data.sources import make_source
from stockrnn.data.store import Store
from stockrnn.errors import RunError

log = logging.getLogger(__name__)


def load_frame(cfg: Config, fetch_missing: bool = True, wait: float = 0.0) -> pd.DataFrame:
    """The stored prices for the config's ticker, fetching them first when missing."""
    d = cfg.data
    store = Store(cfg.data_dir)
    if not store.exists(d.ticker, d.interval) and fetch_missing:
        log.info("%s is not in %s/: fetching from %s", d.ticker, store.dir, d.source)
        src = make_source(d.source, csv_path=d.path, column=d.column, cache_dir=store.cache_dir)
        store.update(src, d.ticker, d.interval, d.start, d.end, wait=wait)
    return store.read(d.ticker, d.interval)


def prepare(cfg: Config, wait: float = 0.0) -> tuple[dataset.Dataset, str]:
    frame = load_frame(cfg, wait=wait)
    ds = dataset.build(frame, cfg)
    with locking.hold(cfg.data_dir / ".stockrnn.lock", wait):
        path = dataset.save(ds, cfg)
    return ds, str(path)


def versions(backend: str) -> dict:
    import keras

    out = {"stockrnn": __version__, "python": platform.python_version(), "keras": keras.__version__,
           "numpy": np.__version__, "pandas": pd.__version__}
    if backend == "tensorflow":
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    else:
        import jax

        out["jax"] = jax.__version__
    return out


def train(cfg: Config, resume: bool = False, progress: str = "lines",
          wait: float = 0.0) -> runs.RunDir:
    """Train into a new run directory (or finish an interrupted one with ``resume``)."""
    from stockrnn import plotting, training
    from stockrnn.backend import use

    use(cfg.backend)
    root = cfg.runs_dir
    with locking.hold(root / cfg.run_name / ".lock", wait):
        run = _resumable(cfg, root) if resume else None
        if run is not None:
            log.info("resuming %s", run.path)
            frame = pd.read_csv(run.series, index_col="Date", parse_dates=["Date"])
        else:
            frame = load_frame(cfg, wait=wait)
        ds = dataset.build(frame, cfg)
        if run is None:
            run = runs.create(root, cfg.run_name)
            atomic.write_text(run.config, cfg.to_yaml())
            atomic.write_with(run.series, lambda tmp: ds.frame.to_csv(tmp, index_label="Date"))
            atomic.write_json(run.scaler, ds.transform.to_dict())
            run.update_meta(format=runs.RUN_FORMAT, status="running", pid=os.getpid(),
                            host=socket.gethostname(), created=_now(), backend=cfg.backend,
                            seed=cfg.train.seed, ticker=cfg.data.ticker.upper(),
                            model_type=cfg.model.type, config_hash=cfg.dataset_hash(),
                            versions=versions(cfg.backend), **{"data": ds.meta()})
        else:
            run.update_meta(status="running", pid=os.getpid(), host=socket.gethostname())
        log.info("training %s on %s: %d train / %d val / %d test windows -> %s",
                 cfg.model.type, cfg.data.ticker, len(ds.splits["train"]), len(ds.splits["val"]),
                 len(ds.splits["test"]), run.path)
        started = time.perf_counter()
        try:
            facts = training.fit(cfg.model, cfg.train, ds, run, resume=resume, progress=progress,
                                 backend=cfg.backend)
        except KeyboardInterrupt:
            run.update_meta(status="incomplete", error="interrupted")
            raise
        except Exception as exc:
            run.update_meta(status="incomplete", error=f"{type(exc).__name__}: {exc}")
            raise
        plotting.loss_plot(training.read_history(run.history), run.plots / "loss.png",
                           f"{cfg.model.type} on {cfg.data.ticker}")
        run.update_meta(status="complete", finished=_now(),
                        wall_seconds=round(time.perf_counter() - started, 3), **facts)
        runs.set_latest(run)
        return run


def _resumable(cfg: Config, root) -> runs.RunDir | None:
    candidates = runs.incomplete(root, cfg.run_name)
    if not candidates:
        log.info("nothing to resume for %s: starting a new run", cfg.run_name)
        return None
    run = candidates[-1]
    if not run.config.exists() or run.config.read_text() != cfg.to_yaml():
        raise RunError(f"{run.path}: was started with a different config; resume it with the "
                       "same config, or remove it with `stockrnn runs prune`")
    if not run.series.exists():
        raise RunError(f"{run.path}: interrupted before its data was saved; nothing to resume "
                       "(remove it with `stockrnn runs prune`)")
    return run


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_config(run: runs.RunDir) -> Config:
    from stockrnn.config import load_config

    return load_config(run.config)

