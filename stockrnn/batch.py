"""``stockrnn run`` over several tickers: one ordinary run per ticker, a batch summary.

    runs/<run_name>-<TICKER>/<UTC timestamp>/     each ticker's run (a normal run directory:
                                                 evaluate, predict, compare, prune work on it;
                                                 no plots/ unless asked for: --plots)
    runs/<run_name>/batch-<UTC timestamp>/
        summary.json  summary.csv                per ticker: status, error, run dir, metrics

Tickers run as independent jobs (see ``jobs``: here one after another, in worker processes,
or as Ray tasks); every way runs the same per-ticker job, ``run_ticker``. A failing ticker is
recorded and the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from stockrnn import atomic, batchrow, jobs, locking, render, runs, tickers, tracking
from stockrnn.config import Config, validate_config
from stockrnn.errors import PipelineError, StockRNNError
from stockrnn.options import DEFAULT, RunOptions

log = logging.getLogger(__name__)

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"


def is_batch_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / SUMMARY_JSON).is_file()


def read_summary(path: str | os.PathLike) -> dict:
    import json

    try:
        return json.loads((Path(path) / SUMMARY_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise StockRNNError(f"{path}/{SUMMARY_JSON} is unreadable: {exc}") from None


# --------------------------------------------------------------------------- one ticker


def run_ticker(job: tuple[dict, str], opts: RunOptions) -> dict:
    """Run the whole pipeline for one ticker (``job``: the batch config as a dict, the
    ticker); never raises: returns the summary row."""
    from stockrnn import stages

    # tf.function "retracing" warnings: expected when one process trains several models
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    raw, ticker = job
    started = time.perf_counter()
    try:
        cfg = validate_config(raw, "<batch>").for_ticker(ticker)
        if opts.threads:
            jobs.tf_threads(cfg.backend, opts.threads)
        summary = stages.run_all(cfg, opts.replace(progress="none"), on_stage=lambda st: log.info(
            "%s %s", ticker, render.stage(st)), track=False)  # the batch logs its tickers
        row = batchrow.ok(ticker, summary.run_dir, summary.result)
    except Exception as exc:  # one ticker's bug or bad data must not stop the batch
        cause = exc.cause if isinstance(exc, PipelineError) else exc
        row = batchrow.failed(ticker, cause, getattr(exc, "run_dir", None))
        log.warning("%s failed: %s", ticker, row["error"])
    row["seconds"] = round(time.perf_counter() - started, 3)
    row.update(jobs.where())
    return row


# --------------------------------------------------------------------------- the batch


def run_batch(cfg: Config, opts: RunOptions = DEFAULT,
              on_ticker: Callable[[dict], None] = lambda row: None) -> dict:
    """Run every ticker of ``cfg``; write and return the batch summary (and log it to MLflow
    when the config's tracking asks for it: a parent run, a child per ticker). The tickers'
    runs draw no plots unless ``opts.plots`` is True."""
    tracking.require(cfg)
    scope = cfg.model.scope
    names = tickers.listed(cfg)
    job_opts = jobs.plan(opts.replace(plots=bool(opts.plots)), len(names))  # only on request
    if opts.executor == "ray" and scope == "per_ticker":
        jobs.import_ray()  # exit 2 with the install command before anything is written
    raw = cfg.to_dict()
    with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), opts.wait):
        batch_dir = runs.stamped_dir(cfg.runs_dir / cfg.run_name, "batch-")
        started = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        where = f"Ray at {opts.ray_address or 'a local instance'}" \
            if opts.executor == "ray" else "local"
        log.info("batch of %d tickers, %s, %d job(s) x %d thread(s) -> %s", len(names), where,
                 job_opts.jobs, job_opts.threads or os.cpu_count() or 1, batch_dir)
        extra: dict = {}
        if scope == "global":
            from stockrnn import globalmodel

            if opts.jobs > 1 or opts.executor != "local":
                log.warning("model.scope global trains one model in this process; --jobs and "
                            "--executor are not used")
            rows, extra = globalmodel.run(cfg, names, job_opts, on_ticker)
            ordered = [rows[t] for t in names]
        else:
            def row_of(i, result):
                if isinstance(result, jobs.JobFailed):
                    return {**batchrow.failed(names[i], result.error), **result.where()}
                return result

            results = jobs.run(run_ticker, [(raw, t) for t in names], job_opts,
                               lambda i, result: on_ticker(row_of(i, result)),
                               shared=(batch_dir,), backend=cfg.backend)
            ordered = [row_of(i, r) for i, r in enumerate(results)]
        failed = [r["ticker"] for r in ordered if r["status"] != "ok"]
        summary = {"batch_dir": str(batch_dir), "config": cfg.run_name, "jobs": job_opts.jobs,
                   "executor": opts.executor, "ray_address": opts.ray_address,
                   "threads_per_job": job_opts.threads or os.cpu_count() or 1,
                   "started": started.isoformat(timespec="seconds"),
                   "seconds": round(time.perf_counter() - t0, 3),
                   "scope": scope, **extra,
                   "tickers": ordered, "ok": len(ordered) - len(failed), "failed": failed}
        write_summary(batch_dir, summary)
    return tracking.log_batch(cfg, summary)


def write_summary(batch_dir: Path, summary: dict) -> None:
    atomic.write_text(batch_dir / SUMMARY_CSV, render.to_csv(summary["tickers"],
                                                             render.BATCH_COLUMNS))
    atomic.write_json(batch_dir / SUMMARY_JSON, summary)
