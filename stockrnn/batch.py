"""``stockrnn run`` over several tickers: one ordinary run per ticker, a batch summary.

    runs/<run_name>-<TICKER>/<UTC timestamp>/     each ticker's run (a normal run directory:
                                                 evaluate, predict, compare, prune work on it)
    runs/<run_name>/batch-<UTC timestamp>/
        summary.json  summary.csv                per ticker: status, error, run dir, metrics

Tickers run one after another in this process (``jobs=1``), in ``jobs`` worker processes
(``spawn`` start method, each limited to its share of the CPU threads, set before Keras is
imported in the worker), or as Ray tasks (``executor="ray"``: on the cluster at
``ray_address``, or on a local Ray started for the batch and shut down after). Every way runs the
same per-ticker job, ``run_ticker``. A failing ticker is recorded and the others go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

from stockrnn import atomic, batchrow, locking, render, runs, tickers
from stockrnn.config import Config, validate_config
from stockrnn.errors import ConfigError, PipelineError, StockRNNError
from stockrnn.options import DEFAULT, EXECUTORS, RunOptions

log = logging.getLogger(__name__)

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"
RAY_MISSING = "--executor ray needs Ray: pip install 'stockrnn[ray]'"
#: Environment a Ray task takes from the driver (a worker's environment is the raylet's).
RAY_ENV = ("STOCKRNN_DATA_DIR", "STOCKRNN_RUNS_DIR", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")
#: Inside a parallel batch, sibling jobs hold the data store's lock for a moment each; a job
#: waits this long for it (and for its own run name's lock) instead of failing at once.
JOB_LOCK_WAIT = 600.0




def is_batch_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / SUMMARY_JSON).is_file()


def read_summary(path: str | os.PathLike) -> dict:
    import json

    try:
        return json.loads((Path(path) / SUMMARY_JSON).read_text())
    except (OSError, ValueError) as exc:
        raise StockRNNError(f"{path}/{SUMMARY_JSON} is unreadable: {exc}") from None


# --------------------------------------------------------------------------- one ticker


def limit_threads(threads: int) -> None:
    """Cap the math libraries' threads; effective when called before TensorFlow/JAX load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def _init_worker(threads: int, log_level: int) -> None:
    limit_threads(threads)
    root = logging.getLogger("stockrnn")
    root.handlers.clear()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(log_level)
    root.propagate = False


def run_ticker(raw: dict, ticker: str, opts: RunOptions) -> dict:
    """Run the whole pipeline for one ticker; never raises: returns the summary row."""
    from stockrnn import stages

    # tf.function "retracing" warnings: expected when one process trains several models
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    try:
        cfg = validate_config(raw, "<batch>").for_ticker(ticker)
        if opts.threads:
            _tf_threads(cfg.backend, opts.threads)
        summary = stages.run_all(cfg, opts.replace(progress="none"), on_stage=lambda st: log.info(
            "%s %s", ticker, render.stage(st)))
        row = batchrow.ok(ticker, summary.run_dir, summary.result)
    except Exception as exc:  # one ticker's bug or bad data must not stop the batch
        cause = exc.cause if isinstance(exc, PipelineError) else exc
        row = batchrow.failed(ticker, cause, getattr(exc, "run_dir", None))
        log.warning("%s failed: %s", ticker, row["error"])
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _tf_threads(backend: str, threads: int) -> None:
    from stockrnn.backend import use

    use(backend)
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised (the env variables have done it)
            pass


# --------------------------------------------------------------------------- the batch


def run_batch(cfg: Config, opts: RunOptions = DEFAULT,
              on_ticker: Callable[[dict], None] = lambda row: None) -> dict:
    """Run every ticker of ``cfg``; write and return the batch summary."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {opts.executor!r}; valid: {', '.join(EXECUTORS)}")
    if opts.ray_address and opts.executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    scope = cfg.model.scope
    ray = import_ray() if opts.executor == "ray" and scope == "per_ticker" else None
    names = tickers.listed(cfg)
    jobs = max(1, min(opts.jobs, len(names)))
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    raw = cfg.to_dict()
    with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), opts.wait):
        batch_dir = runs.stamped_dir(cfg.runs_dir / cfg.run_name, "batch-")
        started = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        log.info("batch of %d tickers, %s, %d job(s) x %d thread(s) -> %s", len(names),
                 "local" if ray is None else f"Ray at {opts.ray_address or 'a local instance'}",
                 jobs, threads, batch_dir)
        parallel = jobs > 1 or ray is not None
        job_opts = opts.replace(wait=max(opts.wait, JOB_LOCK_WAIT) if parallel else opts.wait,
                                threads=threads if parallel else None, jobs=jobs)
        rows: dict[str, dict] = {}
        extra: dict = {}
        if scope == "global":
            from stockrnn import globalmodel

            if jobs > 1 or opts.executor != "local":
                log.warning("model.scope global trains one model in this process; --jobs and "
                            "--executor are not used")
            rows, extra = globalmodel.run(cfg, names, job_opts, on_ticker)
        elif ray is not None:
            rows = run_on_ray(ray, raw, names, job_opts, threads, on_ticker)
        elif jobs == 1:
            for t in names:
                rows[t] = run_ticker(raw, t, job_opts)
                on_ticker(rows[t])
        else:
            ctx = multiprocessing.get_context("spawn")
            level = logging.getLogger("stockrnn").getEffectiveLevel()
            with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                        initargs=(threads, level)) as pool:
                futures = {pool.submit(run_ticker, raw, t, job_opts): t for t in names}
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    try:
                        rows[t] = fut.result()
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        rows[t] = batchrow.failed(t, f"worker process failed: "
                                                     f"{type(exc).__name__}: {exc}")
                    on_ticker(rows[t])
        ordered = [rows[t] for t in names]
        failed = [r["ticker"] for r in ordered if r["status"] != "ok"]
        summary = {"batch_dir": str(batch_dir), "config": cfg.run_name, "jobs": jobs,
                   "executor": opts.executor, "ray_address": opts.ray_address,
                   "threads_per_job": threads if parallel else cores,
                   "started": started.isoformat(timespec="seconds"),
                   "seconds": round(time.perf_counter() - t0, 3),
                   "scope": scope, **extra,
                   "tickers": ordered, "ok": len(ordered) - len(failed), "failed": failed}
        write_summary(batch_dir, summary)
    return summary


# --------------------------------------------------------------------------- Ray


def import_ray():
    """The ``ray`` module, or ConfigError (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _ray_job(raw: dict, ticker: str, opts: RunOptions, env: dict, cwd: str,
             log_level: int) -> dict:
    """One ticker as a Ray task: the driver's STOCKRNN_*/Keras environment and working folder
    (when the worker's machine has it: on a remote cluster give absolute shared paths), then
    the same ``run_ticker`` as a local job."""
    os.environ.update(env)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    _init_worker(opts.threads, log_level)
    return run_ticker(raw, ticker, opts)


def run_on_ray(ray, raw: dict, names: list[str], opts: RunOptions, threads: int,
               on_ticker: Callable[[dict], None]) -> dict[str, dict]:
    """Each ticker as a Ray task asking for ``threads`` CPUs, on the cluster at
    ``opts.ray_address`` or on a local Ray of ``jobs * threads`` CPUs started here (and shut
    down after)."""
    address, jobs = opts.ray_address, opts.jobs
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, log_to_driver=True)
            else:  # the workers import the driver's stockrnn, whatever else is installed
                here = str(Path(__file__).resolve().parents[1])
                path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
                ray.init(num_cpus=jobs * threads, include_dashboard=False, log_to_driver=True,
                         object_store_memory=128 * 1024 ** 2,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        except Exception as exc:  # ConnectionError, timeouts, bad address: Ray raises many kinds
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise StockRNNError(f"cannot start or reach {where}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        env = {k: os.environ[k] for k in RAY_ENV if k in os.environ}
        level = logging.getLogger("stockrnn").getEffectiveLevel()
        task = ray.remote(num_cpus=threads, max_retries=0)(_ray_job)
        refs = {task.remote(raw, t, opts, env, os.getcwd(), level): t for t in names}
        rows: dict[str, dict] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            t = refs[done[0]]
            try:
                rows[t] = ray.get(done[0])
            except Exception as exc:  # the task's worker died (killed, out of memory, node lost)
                cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the task's error
                text = str(cause).strip().splitlines()
                rows[t] = batchrow.failed(t, f"Ray task failed: {type(cause).__name__}: "
                                             f"{text[-1] if text else ''}")
            on_ticker(rows[t])
        return rows
    finally:
        if started_here:
            ray.shutdown()


def write_summary(batch_dir: Path, summary: dict) -> None:
    atomic.write_text(batch_dir / SUMMARY_CSV, render.to_csv(summary["tickers"],
                                                             render.BATCH_COLUMNS))
    atomic.write_json(batch_dir / SUMMARY_JSON, summary)
