"""``model.scope: global``: one model trained on the windows of every ticker of a batch, then
evaluated per ticker on its own test split against its own baselines.

Each ticker's data are split and scaled exactly as for a one-ticker run (the scaler and target
scale fitted on that ticker's training split only); the model trains on the concatenated
training windows and selects its epoch on the concatenated validation windows.

    runs/<run_name>-global/<UTC timestamp>/      the global model's run
        config.yaml (the batch config)  model.keras  history.csv  meta.json  plots/loss.png
        tickers/<TICKER>/                        a complete one-ticker run directory: its own
            config.yaml  scaler.json  series.csv  intervals.json  meta.json
            model.keras (a copy of the global model)  metrics_test.json  forecast.csv  plots/
    runs/<run_name>/batch-<UTC timestamp>/       the batch summary, one row per ticker
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable

import numpy as np

from stockrnn import atomic, batchrow, dataset, locking, runs, stages, tickers
from stockrnn.config import Config
from stockrnn.data import calendars
from stockrnn.errors import ConfigError
from stockrnn.options import RunOptions

log = logging.getLogger(__name__)
MEMBERS = "tickers"


def global_name(cfg: Config) -> str:
    return f"{cfg.run_name}-global"


def combine(datasets: dict[str, dataset.Dataset]) -> dataset.Dataset:
    """The training and validation windows of every ticker, concatenated in ticker order (what
    ``training.fit`` reads); each ticker's targets are already in its own scaled units."""
    first = next(iter(datasets.values()))
    splits = {}
    for name in ("train", "val"):
        parts = [ds.splits[name] for ds in datasets.values()]
        splits[name] = dataset.Split(name, (0, 0), np.concatenate([p.anchors for p in parts]),
                                     np.concatenate([p.x for p in parts]),
                                     np.concatenate([p.y for p in parts]))
    return dataset.Dataset(first.frame, first.transform, splits, first.foresight, first.horizon,
                           first.look_back)


def run(cfg: Config, names: list[str], opts: RunOptions,
        on_ticker: Callable[[dict], None]) -> tuple[dict[str, dict], dict]:
    """Fetch and prepare every ticker, train the global model, evaluate and forecast per
    ticker. Returns the summary rows by ticker (a ticker whose data fail is a failed row and is
    left out of training) and facts for the batch summary."""
    if opts.resume:
        raise ConfigError("--resume is not supported with model.scope: global")
    rows, datasets, cfgs, took = {}, {}, {}, {}
    with locking.hold(runs.lock_path(cfg.runs_dir, global_name(cfg)), opts.wait):
        for t in names:
            started = time.perf_counter()
            try:
                cfgs[t] = tcfg = cfg.for_ticker(t)
                stages.fetch(tcfg, opts.allow_stale, opts.wait)
                datasets[t] = stages.prepare(tcfg, opts.wait).dataset
                n = {k: len(v) for k, v in datasets[t].splits.items()}
                log.info("%s prepare   %d/%d/%d train/val/test windows", t, n["train"],
                         n["val"], n["test"])
            except Exception as exc:  # one ticker's bad data must not stop the others
                rows[t] = _failed(t, exc, started)
                on_ticker(rows[t])
            took[t] = time.perf_counter() - started
        if not datasets:
            return rows, {"global_run": None}
        try:
            grun, facts = _train(cfg, datasets, opts.draw_plots)
        except Exception as exc:
            for t in datasets:
                rows[t] = _failed(t, exc, time.perf_counter())
                rows[t]["error"] = f"global model: {rows[t]['error']}"
                on_ticker(rows[t])
            return rows, {"global_run": None}
        from stockrnn import evaluation, training

        model = training.load_model(grun.model)
        for t, ds in datasets.items():
            started = time.perf_counter() - took[t]
            member = None
            try:
                member = _member(grun, cfgs[t], ds, facts, model)
                result = evaluation.evaluate(member, model, ds, "test",
                                             evaluation.load_quantiles(member),
                                             plots=opts.draw_plots)
                stages.predict(str(member.path), opts.steps, None, allow_stale=True,
                               plots=opts.draw_plots)
                row = batchrow.ok(t, str(member.path), result)
                log.info("%s evaluate  test MASE %.4f (MAE %.4f vs persistence %.4f)", t,
                         row["mase"], row["test_mae"], row["persistence_mae"])
            except Exception as exc:
                row = _failed(t, exc, started, None if member is None else str(member.path))
            row["seconds"] = round(time.perf_counter() - started, 3)
            rows[t] = row
            on_ticker(row)
        grun.update_meta(members={t: str(grun.path / MEMBERS / tickers.run_part(t))
                                  for t in datasets})
        if opts.keep is not None:
            runs.prune(cfg.runs_dir, global_name(cfg), opts.keep, lock=False)
    return rows, {"global_run": str(grun.path), "train_seconds": facts["train_seconds"],
                  "trained_on": list(datasets)}


def _failed(ticker: str, exc: Exception, started: float, run_dir: str | None = None) -> dict:
    row = batchrow.failed(ticker, exc, run_dir, round(time.perf_counter() - started, 3))
    log.warning("%s failed: %s", ticker, row["error"])
    return row


def _train(cfg: Config, datasets: dict[str, dataset.Dataset], plots: bool = True):
    from stockrnn import plotting, training
    from stockrnn.backend import use

    use(cfg.backend)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    grun = runs.create(cfg.runs_dir, global_name(cfg))
    atomic.write_text(grun.config, cfg.to_yaml())
    runs.start(grun, backend=cfg.backend, seed=cfg.train.seed, model_type=cfg.model.type,
               scope="global", ticker=None, tickers=list(datasets),
               data={t: ds.meta() for t, ds in datasets.items()})
    combined = combine(datasets)
    log.info("training one global %s on %d tickers: %d train / %d val windows -> %s",
             cfg.model.type, len(datasets), len(combined.splits["train"]),
             len(combined.splits["val"]), grun.path)
    started = time.perf_counter()
    try:
        facts = training.fit(cfg.model, cfg.train, combined, grun, progress="lines",
                             backend=cfg.backend)
    except BaseException as exc:
        grun.update_meta(status="incomplete", error=f"{type(exc).__name__}: {exc}")
        raise
    if plots:
        plotting.loss_plot(training.read_history(grun.history), grun.plots / "loss.png",
                           f"global {cfg.model.type} on {len(datasets)} tickers")
    grun.update_meta(status="complete", finished=runs.now(),
                     wall_seconds=round(time.perf_counter() - started, 3), **facts)
    runs.set_latest(grun)
    log.info("global model: %d epochs, %s (%.1fs)", facts["epochs_run"],
             runs.best_line(grun.meta()), facts["train_seconds"])
    return grun, facts


def _member(grun: runs.RunDir, tcfg: Config, ds: dataset.Dataset, facts: dict,
            model) -> runs.RunDir:
    """The ticker's complete run directory inside the global run (evaluate, predict and compare
    work on it as on any run). Its model.keras is a copy of the global model's, which ``model``
    is: this process's later loads of the copy (its forecast) use ``model`` as it is, not a new
    model whose prediction step would be compiled again for every ticker."""
    from stockrnn import evaluation, training

    member = runs.RunDir(grun.path / MEMBERS / tickers.run_part(tcfg.data.ticker))
    member.path.mkdir(parents=True, exist_ok=True)
    atomic.write_text(member.config, tcfg.to_yaml())
    atomic.write_with(member.series, lambda tmp: ds.frame.to_csv(tmp, index_label="Date"))
    atomic.write_json(member.scaler, ds.transform.to_dict())
    atomic.write_with(member.model, lambda tmp: shutil.copyfile(grun.model, tmp),
                      suffix=".keras")
    training.remember(member.model, model)
    evaluation.write_intervals(member, model, ds)
    meta = grun.meta()
    member.update_meta(format=runs.RUN_FORMAT, status="complete", created=meta["created"],
                       finished=runs.now(), backend=meta["backend"], seed=meta["seed"],
                       ticker=tcfg.data.ticker.upper(), model_type=tcfg.model.type,
                       scope="global", global_run=str(grun.path), tickers=meta["tickers"],
                       config_hash=tcfg.dataset_hash(), versions=meta["versions"],
                       data=ds.meta(),
                       calendar=calendars.resolve(tcfg.data.calendar, tcfg.data.ticker),
                       **facts)
    return member
