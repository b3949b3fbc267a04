"""The pipeline's stages, one function each, and ``run_all``, which runs them in order.

    fetch     source -> store             data/<TICKER>_<interval>.csv (incremental, locked)
    prepare   store -> dataset artifact   data/prepared/<TICKER>_<interval>-<hash>.npz/.json
                                          (left as it is when it is current)
    train     artifact -> run directory   runs/<run_name>/<UTC timestamp>/ (uses the artifact
                                          when it matches the config and the stored prices,
                                          else builds and saves it first)
    evaluate  run directory -> metrics_<split>.json and plots
    predict   run directory + store -> forecast.csv and plots/forecast.png

Each stage reads only what the stage before it wrote, so any stage can run alone (cron can
retrain without refetching). ``run_all`` holds the run name's lock across all of them, builds
the windows once, and returns a ``RunSummary``; a failing stage raises ``PipelineError``
carrying the stages that finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from stockrnn import atomic, dataset, locking, render, runs, tickers, tracking
from stockrnn.config import Config
from stockrnn.data import calendars, frames
from stockrnn.data.sources import make_source
from stockrnn.data.store import Store, UpdateResult
from stockrnn.errors import FetchError, PipelineError, RunError, StockRNNError
from stockrnn.options import DEFAULT, RunOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    summary: str


@dataclasses.dataclass
class RunSummary:
    """What ``run_all`` did: its stages (with durations), the run directory, the test metrics
    (model and persistence), the forecast rows, and the full evaluation result."""

    config: str
    stages: list[Stage]
    run_dir: str
    metrics: dict
    forecast: dict
    result: dict

    def to_dict(self) -> dict:
        return {"config": self.config, "stages": [dataclasses.asdict(s) for s in self.stages],
                "run_dir": self.run_dir, "metrics": self.metrics, "forecast": self.forecast}


@dataclasses.dataclass(frozen=True)
class Prepared:
    dataset: dataset.Dataset
    path: Path
    reused: bool     # the artifact was current: nothing was rebuilt


# --------------------------------------------------------------------------- fetch


def update(cfg: Config, full: bool = False, wait: float = 0.0,
           ticker: str | None = None) -> UpdateResult:
    """Fetch the new bars of a one-ticker config's ticker (or of ``ticker``, one of its
    covariates: from its data.sources entry, else data.source, on its own calendar) from its
    source into the store."""
    d = cfg.data
    store = Store(cfg.data_dir)
    ticker = ticker or d.ticker
    calendar = d.calendar if ticker.upper() == d.ticker.upper() else None
    src = make_source(d.source_of(ticker), csv_path=d.path, column=d.column,
                      cache_dir=store.cache_dir, calendar=calendar)
    return store.update(src, ticker, d.interval, d.start, d.end, full=full, wait=wait,
                        calendar=calendar)


def fetch(cfg: Config, allow_stale: bool = False, wait: float = 0.0) -> str:
    """The pipeline's fetch stage: an incremental update of the config's covariate tickers,
    then of its ticker (a covariate that fails leaves the target as it was); with
    ``allow_stale`` a failed fetch goes on with the stored data (saying how old they are)."""
    lines = [_fetch_one(cfg, t, allow_stale, wait) for t in cfg.data.covariates.tickers]
    return "; ".join([*lines, _fetch_one(cfg, cfg.data.ticker, allow_stale, wait)])


def _fetch_one(cfg: Config, ticker: str, allow_stale: bool, wait: float) -> str:
    try:
        return update(cfg, wait=wait, ticker=ticker).line()
    except FetchError as exc:
        store = Store(cfg.data_dir)
        if not (allow_stale and store.exists(ticker, cfg.data.interval)):
            raise
        last = store.read(ticker, cfg.data.interval).index[-1].date()
        age = (dt.date.today() - last).days
        log.warning("fetch failed (%s); going on with stored data ending %s (%d days old)",
                    exc, last, age)
        return (f"{ticker} {cfg.data.interval}: fetch failed, using stored data ending "
                f"{last} ({age} days old)")


def fetch_each(tickers: Sequence[str], update_one: Callable[[str], UpdateResult],
               on_result: Callable[[UpdateResult], None],
               on_error: Callable[[str, StockRNNError], None]) -> None:
    """``update_one(ticker)`` for each ticker. With several tickers a data error (exit 1) is
    passed to ``on_error`` and the others are still fetched, then StockRNNError at the end;
    with one ticker, or for a usage/lock error, the error is raised at once."""
    failed = []
    for ticker in tickers:
        try:
            result = update_one(ticker)
        except StockRNNError as exc:
            if len(tickers) == 1 or exc.exit_code != 1:
                raise
            on_error(ticker, exc)
            failed.append(ticker)
            continue
        on_result(result)
    if failed:
        raise StockRNNError(f"{len(failed)} of {len(tickers)} tickers failed: {', '.join(failed)}")


def fetch_config(cfg: Config, full: bool, wait: float,
                 on_result: Callable[[UpdateResult], None],
                 on_error: Callable[[str, StockRNNError], None]) -> None:
    """``fetch --config``: every ticker of the config and its covariate tickers (first), each
    from its configured source."""
    names = tickers.listed(cfg) if cfg.is_batch else [cfg.data.ticker]
    one = cfg.for_ticker(names[0]) if cfg.is_batch else cfg
    cov = list(cfg.data.covariates.tickers)

    def update_one(t: str) -> UpdateResult:
        if t in cov:
            return update(one, full, wait, ticker=t)
        return update(cfg.for_ticker(t) if cfg.is_batch else cfg, full, wait)

    fetch_each([*cov, *names], update_one, on_result, on_error)


def load_frame(cfg: Config, wait: float = 0.0) -> pd.DataFrame:
    """The stored prices of the config's ticker with its covariate tickers attached
    (``covariates.attach``), fetching any ticker that is not stored yet first."""
    from stockrnn.features import covariates

    store = Store(cfg.data_dir)

    def read(ticker: str) -> pd.DataFrame:
        if not store.exists(ticker, cfg.data.interval):
            log.info("%s is not in %s/: fetching from %s", ticker, store.dir,
                     cfg.data.source_of(ticker))
            update(cfg, wait=wait, ticker=ticker)
        return store.read(ticker, cfg.data.interval)

    for t in cfg.data.covariates.tickers:  # a covariate that fails leaves the target unfetched
        read(t)
    return covariates.attach(read(cfg.data.ticker), cfg, read)


# --------------------------------------------------------------------------- prepare


def prepare(cfg: Config, wait: float = 0.0) -> Prepared:
    """The dataset artifact for the config and the stored prices: kept when current, else
    built and saved (fetching the ticker first when it is not stored)."""
    cfg.require_single("prepare")
    ds, path, reused = dataset.current(cfg, load_frame(cfg, wait=wait), wait)
    log.info("%s the prepared dataset %s", "using" if reused else "built", path)
    return Prepared(ds, path, reused)


# --------------------------------------------------------------------------- train


def train(cfg: Config, opts: RunOptions = DEFAULT, *, lock: bool = True,
          prepared: dataset.Dataset | None = None, track: bool = True,
          on_run: Callable[[runs.RunDir], None] = lambda run: None) -> runs.RunDir:
    """Train into a new run directory (or finish an interrupted one with ``opts.resume``).

    The windows come from ``prepared``, else from the prepared dataset when it is current,
    else they are built (and saved) from the stored prices. Holds the run name's lock unless
    ``lock`` is False (the caller holds it already). Logs the run to MLflow when the config's
    tracking asks for it, unless ``track`` is False (the caller logs it). ``on_run`` is called
    with the run directory as soon as it exists (before training)."""
    from stockrnn.backend import use

    cfg.require_single("train")
    if track:
        tracking.require(cfg)
    use(cfg.backend)
    hold = locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), opts.wait) if lock \
        else contextlib.nullcontext()
    with hold:
        run = _resumable(cfg) if opts.resume else None
        if run is not None:
            log.info("resuming %s", run.path)
            frame = frames.read_csv(run.series)
            ds = dataset.load(cfg, frame) or dataset.build(frame, cfg)
        elif prepared is not None:
            ds = prepared
        else:
            ds = prepare(cfg, opts.wait).dataset
        if run is None:
            run = runs.create(cfg.runs_dir, cfg.run_name)
            start_run(run, cfg, ds)
        else:
            runs.mark_running(run)
        on_run(run)
        fit_run(run, cfg, ds, opts)
        runs.set_latest(run)
    if track:
        tracking.log_run(cfg, run)
    return run


def start_run(run: runs.RunDir, cfg: Config, ds: dataset.Dataset, **meta) -> None:
    """Write what a new run directory holds before training: the resolved config, the price
    rows, the fitted transform, and meta.json (status running)."""
    atomic.write_text(run.config, cfg.to_yaml())
    atomic.write_with(run.series, lambda tmp: ds.frame.to_csv(tmp, index_label="Date"))
    atomic.write_json(run.scaler, ds.transform.to_dict())
    runs.start(run, backend=cfg.backend, seed=cfg.train.seed, model_type=cfg.model.type,
               ticker=cfg.data.ticker.upper(), config_hash=cfg.dataset_hash(), data=ds.meta(),
               calendar=calendars.resolve(cfg.data.calendar, cfg.data.ticker), **meta)


def fit_run(run: runs.RunDir, cfg: Config, ds: dataset.Dataset, opts: RunOptions = DEFAULT):
    """Train the run's model on ``ds``, then write its interval quantiles and (unless
    ``opts.plots`` is False) its loss plot, and mark it complete (incomplete, with the error,
    when training fails)."""
    from stockrnn import evaluation, plotting, training

    log.info("training %s on %s: %d train / %d val / %d test windows -> %s",
             cfg.model.type, cfg.data.ticker, len(ds.splits["train"]), len(ds.splits["val"]),
             len(ds.splits["test"]), run.path)
    started = time.perf_counter()
    try:
        facts = training.fit(cfg.model, cfg.train, ds, run, resume=opts.resume,
                             progress=opts.progress, backend=cfg.backend)
    except KeyboardInterrupt:
        run.update_meta(status="incomplete", error="interrupted")
        raise
    except Exception as exc:
        run.update_meta(status="incomplete", error=f"{type(exc).__name__}: {exc}")
        raise
    evaluation.write_intervals(run, training.load_model(run.model), ds)
    if opts.draw_plots:
        plotting.loss_plot(training.read_history(run.history), run.plots / "loss.png",
                           f"{cfg.model.type} on {cfg.data.ticker}")
    run.update_meta(status="complete", finished=runs.now(),
                    wall_seconds=round(time.perf_counter() - started, 3), **facts)


def _resumable(cfg: Config) -> runs.RunDir | None:
    candidates = runs.incomplete(cfg.runs_dir, cfg.run_name)
    if not candidates:
        log.info("nothing to resume for %s: starting a new run", cfg.run_name)
        return None
    run = candidates[-1]
    if not run.config.exists() or not tracking.same_config(run.config.read_text(), cfg):
        raise RunError(f"{run.path}: was started with a different config; resume it with the "
                       "same config, or remove it with `stockrnn runs prune`")
    if not run.series.exists():
        raise RunError(f"{run.path}: interrupted before its data was saved; nothing to resume "
                       "(remove it with `stockrnn runs prune`)")
    return run


# --------------------------------------------------------------------------- evaluate, predict


def evaluate(run_ref: str, split: str = "test", runs_dir=None,
             prepared: dataset.Dataset | None = None,
             plots: bool = True) -> tuple[runs.RunDir, dict]:
    """Score a run on a split against the baselines; writes metrics_<split>.json and (with
    ``plots``) its plots. The windows are rebuilt from the run's own saved prices, unless
    ``prepared`` (the dataset the run was just trained on, with the run's transform) is
    given."""
    from stockrnn import evaluation, forecasting

    run = runs.resolve(run_ref, runs_dir)
    cfg, transform, model, quantiles = forecasting.load_run(run)
    if (prepared is not None and prepared.transform == transform
            and prepared.data_hash == run.meta().get("data", {}).get("data_hash")):
        ds = prepared  # the very rows and windows the run was trained on
    else:
        ds = forecasting.run_dataset(run, cfg, transform)
    return run, evaluation.evaluate(run, model, ds, split, quantiles, plots=plots)


def predict(run_ref: str, steps: int | None = None, as_of: dt.date | None = None,
            allow_stale: bool = False, runs_dir=None, plots: bool = True):
    """Forecast from a run; also writes ``forecast.csv`` and (with ``plots``)
    ``plots/forecast.png`` into it (``forecast_asof_DATE.csv``/``.png`` for a forecast
    ``as_of`` a past date, so a check on the past never replaces the run's current
    forecast)."""
    from stockrnn import forecasting, plotting

    run = runs.resolve(run_ref, runs_dir)
    forecasting.prefetch_calendar(run)
    fc = forecasting.forecast(run, steps, as_of, allow_stale)
    name = "forecast" if as_of is None else f"forecast_asof_{as_of:%Y-%m-%d}"
    atomic.write_text(run.path / f"{name}.csv", render.forecast(fc, "csv"))
    if plots:
        meta = run.meta()
        plotting.forecast_plot(fc.history, fc.table, run.plots / f"{name}.png",
                               f"{meta.get('model_type', '')} forecast for "
                               f"{meta.get('ticker', '')} from {fc.as_of.date()}")
    return run, fc


# --------------------------------------------------------------------------- run


def run_all(cfg: Config, opts: RunOptions = DEFAULT,
            on_stage: Callable[[Stage], None] = lambda stage: None, *,
            track: bool = True) -> RunSummary:
    """fetch -> prepare -> train -> evaluate (test) -> predict under the run name's lock (the
    plots unless ``opts.plots`` is False), then
    prune old runs (``opts.keep``, never when the ``opts.max_mase`` gate will fail), then log
    the run to MLflow when the config's tracking asks for it (unless ``track`` is False).

    Returns the summary; a failing stage raises PipelineError with the stages that finished."""
    cfg.require_single("run")
    if track:
        tracking.require(cfg)
    stages: list[Stage] = []
    run_dir: str | None = None

    def stage(name: str, started: float, line: str) -> None:
        stages.append(Stage(name, round(time.perf_counter() - started, 3), line))
        on_stage(stages[-1])

    try:
        with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), opts.wait):
            t = time.perf_counter()
            stage("fetch", t, fetch(cfg, opts.allow_stale, opts.wait))

            t = time.perf_counter()
            prep = prepare(cfg, opts.wait)
            from stockrnn import evaluation

            # the test split's AutoARIMA/AutoETS forecasts and the exchange calendar that
            # dates the forecast, in child processes while this one imports Keras and trains
            # (where a fork is safe: see stockrnn.forked)
            evaluation.prefetch_baselines(prep.dataset, "test")
            calendars.prefetch(calendars.resolve(cfg.data.calendar, cfg.data.ticker))
            n = {k: len(v) for k, v in prep.dataset.splits.items()}
            stage("prepare", t, f"{n['train']}/{n['val']}/{n['test']} train/val/test windows "
                  f"-> {prep.path}" + (" (up to date)" if prep.reused else ""))

            t = time.perf_counter()
            def opened(run: runs.RunDir) -> None:
                nonlocal run_dir
                run_dir = str(run.path)

            run = train(cfg, opts, lock=False, prepared=prep.dataset, track=False,
                        on_run=opened)
            meta = run.meta()
            stage("train", t, f"{meta['model_type']}: {meta['epochs_run']} epochs, "
                  f"{runs.best_line(meta)} ({meta['train_seconds']:.1f}s)")

            t = time.perf_counter()
            _, result = evaluate(run_dir, "test", prepared=prep.dataset,
                                 plots=opts.draw_plots)
            m, p = result["model"], result["baselines"]["persistence"]
            stage("evaluate", t, f"test MASE {m['mase']:.4f} (MAE {m['mae']:.4f} vs persistence "
                  f"{p['mae']:.4f}), direction {render.percent(m['directional_accuracy'])}")

            t = time.perf_counter()
            _, fc = predict(run_dir, opts.steps, None, allow_stale=True,
                            plots=opts.draw_plots)
            first = fc.table.iloc[0]
            stage("predict", t, f"{fc.table.index[0].date()} {first['forecast']:.4f} "
                  f"[80%: {first['lower_80']:.4f}..{first['upper_80']:.4f}] ({len(fc.table)} "
                  f"steps, as of {fc.as_of.date()}) -> {run_dir}/forecast.csv")

            if opts.keep is not None and (opts.max_mase is None or m["mase"] <= opts.max_mase):
                t = time.perf_counter()
                removed = runs.prune(cfg.runs_dir, cfg.run_name, opts.keep, lock=False)
                stage("prune", t, f"removed {len(removed)} old runs of {cfg.run_name} "
                      f"(keep {opts.keep})")
    except Exception as exc:
        raise PipelineError(exc, stages, run_dir) from exc
    if track:
        tracking.log_run(cfg, runs.RunDir(run_dir))
    return RunSummary(config=cfg.run_name, stages=stages, run_dir=run_dir,
                      metrics={"split": "test", "n": result["n"], "model": m, "persistence": p},
                      forecast=render.forecast_rows(fc), result=result)
