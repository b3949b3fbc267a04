"""Independent jobs (a batch's tickers, a backtest's folds): run here one after another, in
``jobs`` spawned worker processes, or as Ray tasks. Every way calls the same module-level
function with the same options (and so the same seeds), so every way gives the serial results.

A worker process is limited to its share of the CPU threads before Keras is imported in it;
a Ray task asks Ray for that many CPUs and takes the driver's STOCKRNN_*/Keras environment and
working folder.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stockrnn.errors import ConfigError, StockRNNError
from stockrnn.options import EXECUTORS, RunOptions

log = logging.getLogger(__name__)
RAY_MISSING = "--executor ray needs Ray: pip install 'stockrnn[ray]'"
#: Environment a Ray task takes from the driver (a worker's environment is the raylet's).
RAY_ENV = ("STOCKRNN_DATA_DIR", "STOCKRNN_RUNS_DIR", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")
#: Parallel jobs hold the data store's lock for a moment each; a job waits this long for it
#: (and for its own run name's lock) instead of failing at once.
JOB_LOCK_WAIT = 600.0


@dataclasses.dataclass(frozen=True)
class JobFailed:
    """A job whose worker process or Ray task died (killed, out of memory, node lost)."""

    error: str


def plan(opts: RunOptions, n_items: int) -> RunOptions:
    """The options each job runs with: ``jobs`` capped at the number of items, each parallel
    job limited to its share of the cores (``threads``) and waiting for locks."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {opts.executor!r}; valid: {', '.join(EXECUTORS)}")
    if opts.ray_address and opts.executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    jobs = max(1, min(opts.jobs, n_items))
    parallel = jobs > 1 or opts.executor == "ray"
    threads = max(1, (os.cpu_count() or 1) // jobs)
    return opts.replace(jobs=jobs, threads=threads if parallel else None,
                        wait=max(opts.wait, JOB_LOCK_WAIT) if parallel else opts.wait)


def run(fn: Callable[[Any, RunOptions], Any], items: Sequence, opts: RunOptions,
        on_done: Callable[[int, Any], None] = lambda i, result: None) -> list:
    """``fn(item, opts)`` for every item (``opts`` from ``plan``), results in item order. An
    exception raised by ``fn`` here or in a worker process is raised again; a job whose
    process or task died gives ``JobFailed``."""
    results: list = [None] * len(items)
    if opts.executor == "ray":
        return _run_on_ray(import_ray(), fn, items, opts, results, on_done)
    if opts.jobs <= 1:
        for i, item in enumerate(items):
            results[i] = fn(item, opts)
            on_done(i, results[i])
        return results
    ctx = multiprocessing.get_context("spawn")
    level = logging.getLogger("stockrnn").getEffectiveLevel()
    with cf.ProcessPoolExecutor(opts.jobs, mp_context=ctx, initializer=init_worker,
                                initargs=(opts.threads, level)) as pool:
        futures = {pool.submit(fn, item, opts): i for i, item in enumerate(items)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except cf.process.BrokenProcessPool as exc:
                results[i] = JobFailed(f"worker process failed: {type(exc).__name__}: {exc}")
            on_done(i, results[i])
    return results


def limit_threads(threads: int) -> None:
    """Cap the math libraries' threads; effective when called before TensorFlow/JAX load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def init_worker(threads: int, log_level: int) -> None:
    """A worker process: its share of the threads, and stockrnn's log lines on stderr."""
    limit_threads(threads)
    root = logging.getLogger("stockrnn")
    root.handlers.clear()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(log_level)
    root.propagate = False


def tf_threads(backend: str, threads: int) -> None:
    """Limit TensorFlow's thread pools in a job that shares the machine."""
    from stockrnn.backend import use

    use(backend)
    if backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised (the env variables have done it)
            pass


# --------------------------------------------------------------------------- Ray


def import_ray():
    """The ``ray`` module, or ConfigError (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _ray_job(fn, item, opts: RunOptions, env: dict, cwd: str, log_level: int):
    """One job as a Ray task: the driver's environment and working folder (when the worker's
    machine has it: on a remote cluster give absolute shared paths), then ``fn``."""
    os.environ.update(env)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    init_worker(opts.threads, log_level)
    return fn(item, opts)


def _run_on_ray(ray, fn, items, opts: RunOptions, results: list, on_done) -> list:
    """Each job as a Ray task asking for ``opts.threads`` CPUs, on the cluster at
    ``opts.ray_address`` or on a local Ray of ``jobs * threads`` CPUs started here (and shut
    down after)."""
    address = opts.ray_address
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if address:
                ray.init(address=address, log_to_driver=True)
            else:  # the workers import the driver's stockrnn, whatever else is installed
                here = str(Path(__file__).resolve().parents[1])
                path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
                ray.init(num_cpus=opts.jobs * opts.threads, include_dashboard=False,
                         log_to_driver=True, object_store_memory=128 * 1024 ** 2,
                         runtime_env={"env_vars": {"PYTHONPATH": path}})
        except Exception as exc:  # ConnectionError, timeouts, bad address: Ray raises many kinds
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise StockRNNError(f"cannot start or reach {where}: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        env = {k: os.environ[k] for k in RAY_ENV if k in os.environ}
        level = logging.getLogger("stockrnn").getEffectiveLevel()
        task = ray.remote(num_cpus=opts.threads, max_retries=0)(_ray_job)
        refs = {task.remote(fn, item, opts, env, os.getcwd(), level): i
                for i, item in enumerate(items)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i = refs[done[0]]
            try:
                results[i] = ray.get(done[0])
            except Exception as exc:  # the task failed or its worker died
                cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the task's error
                if isinstance(cause, StockRNNError):
                    raise cause from None
                text = str(cause).strip().splitlines()
                results[i] = JobFailed(f"Ray task failed: {type(cause).__name__}: "
                                       f"{text[-1] if text else ''}")
            on_done(i, results[i])
        return results
    finally:
        if started_here:
            ray.shutdown()
