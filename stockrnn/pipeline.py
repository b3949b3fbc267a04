"""The stages behind the CLI commands: prepare, train (evaluate and predict live in their own
modules). Each stage reads only what the one before it wrote."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import socket
import time
from pathlib import Path

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
    cfg.require_single("prepare")
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


def run_lock(cfg: Config) -> Path:
    return cfg.runs_dir / cfg.run_name / ".lock"


def train(cfg: Config, resume: bool = False, progress: str = "lines",
          wait: float = 0.0, lock: bool = True) -> runs.RunDir:
    """Train into a new run directory (or finish an interrupted one with ``resume``).

    Holds the run name's lock unless ``lock`` is False (the caller holds it already)."""
    from stockrnn import evaluation, plotting, training
    from stockrnn.backend import use

    cfg.require_single("train")
    use(cfg.backend)
    root = cfg.runs_dir
    with locking.hold(run_lock(cfg), wait) if lock else contextlib.nullcontext():
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
        model = training.load_model(run.model)
        atomic.write_json(run.path / "intervals.json", {
            "method": "split-conformal on validation |log(actual/forecast)|, per horizon step",
            "quantiles": evaluation.interval_quantiles(model, ds)})
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

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_config(run: runs.RunDir) -> Config:
    from stockrnn.config import load_config

    return load_config(run.config)



def evaluate(run_ref: str, split: str = "test", runs_dir=None) -> tuple[runs.RunDir, dict]:
    from stockrnn import evaluation, forecasting

    run = runs.resolve(run_ref, runs_dir)
    cfg, transform, model, quantiles = forecasting.load_run(run)
    ds = forecasting.run_dataset(run, cfg, transform)
    return run, evaluation.evaluate(run, model, ds, split, quantiles)


def predict(run_ref: str, steps: int | None = None, as_of=None, allow_stale: bool = False,
            runs_dir=None):
    """Forecast from a run; also writes ``forecast.csv`` and ``plots/forecast.png`` into it
    (``forecast_asof_DATE.csv``/``.png`` for a forecast ``as_of`` a past date, so a check on
    the past never replaces the run's current forecast)."""
    from stockrnn import forecasting, plotting

    run = runs.resolve(run_ref, runs_dir)
    fc = forecasting.forecast(run, steps, as_of, allow_stale)
    name = "forecast" if as_of is None else f"forecast_asof_{as_of:%Y-%m-%d}"
    atomic.write_text(run.path / f"{name}.csv", format_forecast(fc, "csv"))
    meta = run.meta()
    plotting.forecast_plot(fc.history, fc.table, run.plots / f"{name}.png",
                           f"{meta.get('model_type', '')} forecast for {meta.get('ticker', '')} "
                           f"from {fc.as_of.date()}")
    return run, fc


def format_forecast(fc, fmt: str) -> str:
    t = fc.table.copy()
    t.index = t.index.strftime("%Y-%m-%d")
    cols = ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    if fmt == "csv":
        return t.round(4).to_csv(index_label="date")
    if fmt == "json":
        import json

        rows = [{"date": d, **{c: round(float(r[c]), 4) for c in cols},
                 "recursive": bool(r["recursive"])} for d, r in t.iterrows()]
        return json.dumps({"as_of": str(fc.as_of.date()), "last_price": fc.last_price,
                           "recursive": fc.recursive, "forecast": rows}, indent=2) + "\n"
    lines = [f"as of {fc.as_of.date()} (last price {fc.last_price:.4f})"
             + ("; steps past the trained horizon are fed back recursively (marked *)"
                if fc.recursive else ""),
             f"{'date':10s} {'forecast':>10s} {'80% interval':>23s} {'95% interval':>23s}"]
    for d, r in t.iterrows():
        mark = " *" if r["recursive"] else ""
        lines.append(f"{d:10s} {r['forecast']:10.4f} {r['lower_80']:11.4f}..{r['upper_80']:<11.4f}"
                     f" {r['lower_95']:11.4f}..{r['upper_95']:<11.4f}{mark}")
    return "\n".join(lines) + "\n"


def fetch_for(cfg: Config, allow_stale: bool = False, wait: float = 0.0) -> str:
    """The `run` pipeline's fetch stage: incremental update, or stored data if allowed."""
    from stockrnn.errors import FetchError

    d = cfg.data
    store = Store(cfg.data_dir)
    src = make_source(d.source, csv_path=d.path, column=d.column, cache_dir=store.cache_dir)
    try:
        return store.update(src, d.ticker, d.interval, d.start, d.end, wait=wait).line()
    except FetchError as exc:
        if not (allow_stale and store.exists(d.ticker, d.interval)):
            raise
        last = store.read(d.ticker, d.interval).index[-1].date()
        import datetime as dt

        age = (dt.date.today() - last).days
        log.warning("fetch failed (%s); going on with stored data ending %s (%d days old)",
                    exc, last, age)
        return f"{d.ticker} {d.interval}: fetch failed, using stored data ending {last} ({age} days old)"
