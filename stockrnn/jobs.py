"""Independent jobs (a batch's tickers, a backtest's folds): run here one after another, in
``jobs`` worker processes, or as Ray tasks. Every way calls the same module-level
function with the same options (and so the same seeds), so every way gives the serial results.

Worker processes are forked from a fork server that imported TensorFlow and the pipeline once
(``stockrnn.preload``; spawned where the platform cannot fork), and take this process's
environment and working folder. A worker process is limited to its share of the CPU threads
before Keras is imported in it;
a Ray task asks Ray for that many CPUs (no more than the cluster's largest node has) and takes the
driver's STOCKRNN_*/Keras environment and working folder. Every job can say where it ran
(``where``: the host name and, in a Ray task, the Ray node id).

On a Ray cluster the run folders travel through shared storage, not through Ray: a job first
checks that the folders the driver names (``shared``: the batch or backtest folder) are visible
on its node, and is a failed job saying so when they are not. A job whose worker or node dies
is a failed job (``JobFailed``; Ray does not retry it): the finished jobs' results are kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import re
import socket
import sys
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
#: The Ray node this process runs jobs on: set in a Ray task, None elsewhere.
_RAY_NODE: str | None = None


@dataclasses.dataclass(frozen=True)
class JobFailed:
    """A job whose worker process or Ray task died (killed, out of memory, node lost), or a Ray
    task on a node that cannot see the shared folders (``node``/``host``: where, when known)."""

    error: str
    node: str | None = None
    host: str | None = None

    def where(self) -> dict:
        return {"host": self.host, "node": self.node}


def where() -> dict:
    """Where the calling job runs: ``host`` (the machine's host name) and ``node`` (the Ray
    node id inside a Ray task, else None)."""
    return {"host": socket.gethostname(), "node": _RAY_NODE}


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
        on_done: Callable[[int, Any], None] = lambda i, result: None,
        shared: Sequence[str | os.PathLike] = (), backend: str | None = None) -> list:
    """``fn(item, opts)`` for every item (``opts`` from ``plan``), results in item order. An
    exception raised by ``fn`` here or in a worker process is raised again; a job whose
    process or task died gives ``JobFailed``. ``shared``: folders the jobs write into, which a
    Ray task checks it can see on its node (a ``JobFailed`` when it cannot). ``backend``: the
    jobs' Keras backend (``worker_context``)."""
    results: list = [None] * len(items)
    if opts.executor == "ray":
        folders = tuple(str(Path(p).resolve()) for p in shared)
        return _run_on_ray(import_ray(), fn, items, opts, results, on_done, folders)
    if opts.jobs <= 1:
        for i, item in enumerate(items):
            results[i] = fn(item, opts)
            on_done(i, results[i])
        return results
    level = logging.getLogger("stockrnn").getEffectiveLevel()
    with cf.ProcessPoolExecutor(opts.jobs, mp_context=worker_context(backend), initializer=init_worker,
                                initargs=(opts.threads, level, dict(os.environ),
                                          os.getcwd())) as pool:
        futures = {pool.submit(fn, item, opts): i for i, item in enumerate(items)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except cf.process.BrokenProcessPool as exc:
                results[i] = JobFailed(f"worker process failed: {type(exc).__name__}: {exc}")
            on_done(i, results[i])
    return results


#: XLA's (JAX's) CPU flags for one compute thread: Eigen single-threaded in the compiled code
XLA_ONE_THREAD = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")


def limit_threads(threads: int) -> None:
    """Cap the math libraries' threads; effective when called before TensorFlow/JAX load. With
    one thread, XLA (JAX's CPU backend) too: its flags are added to XLA_FLAGS (a flag already
    there is kept)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "").split()
        named = {f.lstrip("-").split("=")[0] for f in flags}
        flags += [f for f in XLA_ONE_THREAD if f.lstrip("-").split("=")[0] not in named]
        os.environ["XLA_FLAGS"] = " ".join(flags)


def _limit_loaded_pools(threads: int) -> None:
    """The BLAS and OpenMP thread pools already loaded (in a forked worker, NumPy's OpenBLAS
    came from the fork server, before ``limit_threads`` set the environment) limited to
    ``threads`` too (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def worker_context(backend: str | None = None):
    """The multiprocessing context of the worker processes of jobs on Keras ``backend``: for
    TensorFlow the fork server, which imports ``stockrnn.preload`` when this process starts it
    (with Keras on TensorFlow: importing TensorFlow imports Keras, whose backend is then fixed;
    a server already running in this process is used as it is). Spawn for JAX and where the
    platform has no fork server."""
    from stockrnn.backend import resolve

    if resolve(backend) != "tensorflow" or \
            "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return start_fork_server(["stockrnn.preload"])


def start_fork_server(preload: Sequence[str]):
    """This process's fork server context, the server started (when not running yet) to import
    ``preload`` with Keras on TensorFlow and TensorFlow's start-up lines off (the server takes
    this environment, which is left as it was); returns while the server imports."""
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    with _environ(KERAS_BACKEND="tensorflow",
                  TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")):
        forkserver.ensure_running()
    return ctx


@contextlib.contextmanager
def _environ(**values: str):
    """These environment variables set inside the block, as they were after it."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def init_worker(threads: int, log_level: int, env: dict[str, str] | None = None,
                cwd: str | None = None) -> None:
    """A worker process: the environment and working folder of the process that started the
    jobs (a forked worker has its fork server's), its share of the threads, and stockrnn's log
    lines on stderr."""
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    limit_threads(threads)
    _limit_loaded_pools(threads)
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


def _ray_job(fn, item, opts: RunOptions, env: dict, cwd: str, log_level: int,
             shared: tuple[str, ...] = ()):
    """One job as a Ray task: notes its Ray node, checks that the ``shared`` folders are
    visible here (else a ``JobFailed`` saying so), takes the driver's environment and working
    folder (when the worker's machine has it: on a remote cluster give absolute shared
    paths), then ``fn``."""
    import ray

    global _RAY_NODE
    _RAY_NODE = ray.get_runtime_context().get_node_id()
    missing = [p for p in shared if not os.path.isdir(p)]
    if missing:
        return JobFailed(f"{missing[0]} is not visible on Ray node {_RAY_NODE} "
                         f"({socket.gethostname()}): give paths.runs_dir (and paths.data_dir) "
                         "as absolute paths on storage every node shares (docs/scale.md)",
                         **where())
    os.environ.update(env)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    init_worker(opts.threads, log_level)
    return fn(item, opts)


def connect(ray, opts: RunOptions) -> bool:
    """Connect this process to the Ray cluster at ``opts.ray_address`` as a driver, or start a
    local Ray of ``jobs * threads`` CPUs; nothing when already connected. Whether it connected
    (and so must ``ray.shutdown()`` after); StockRNNError when Ray cannot start or the cluster
    cannot be reached."""
    if ray.is_initialized():
        return False
    address = opts.ray_address
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
        else:  # the workers import the driver's stockrnn, whatever else is installed
            here = str(Path(__file__).resolve().parents[1])
            path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
            # in the environment the raylet starts with (and passes to its workers), not as a
            # runtime_env: a job with one starts each worker through Ray's setup process
            # (another Python importing Ray) and cannot use the workers Ray starts ahead
            with _environ(PYTHONPATH=path):
                ray.init(num_cpus=opts.jobs * opts.threads, include_dashboard=False,
                         log_to_driver=True, object_store_memory=128 * 1024 ** 2)
    except Exception as exc:  # ConnectionError, timeouts, bad address: Ray raises many kinds
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise StockRNNError(f"cannot start or reach {where}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return True


def task_cpus(ray, threads: int) -> int:
    """The CPUs a task asks for: ``threads``, but no more than the largest live node of the
    cluster has (a task no node can hold would wait forever). StockRNNError when no live node
    has a CPU."""
    biggest = max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes()
                   if n.get("Alive")), default=0)
    if biggest < 1:
        raise StockRNNError("the Ray cluster has no live node with a CPU to run the jobs on")
    return max(1, min(threads, int(biggest)))


def _run_on_ray(ray, fn, items, opts: RunOptions, results: list, on_done,
                shared: tuple[str, ...] = ()) -> list:
    """Each job as a Ray task asking for ``opts.threads`` CPUs (at most the largest node's),
    on the cluster at ``opts.ray_address`` or on a local Ray of ``jobs * threads`` CPUs started
    here (and shut down after). No retries: a task whose worker or node dies is a
    ``JobFailed``, the others go on."""
    started_here = connect(ray, opts)
    # Ray prints its own messages (a lost raylet's) and the workers' stdout on this process's
    # stdout: they go to stderr, so stdout keeps only what the command prints (its --json)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return _tasks(ray, fn, items, opts, results, on_done, shared)
        finally:
            if started_here:
                ray.shutdown()


def _tasks(ray, fn, items, opts: RunOptions, results: list, on_done, shared) -> list:
    """Submit one task per item, collect the results as they finish."""
    env = {k: os.environ[k] for k in RAY_ENV if k in os.environ}
    level = logging.getLogger("stockrnn").getEffectiveLevel()
    cpus = task_cpus(ray, opts.threads)
    if cpus != opts.threads:
        log.info("each Ray task asks for %d CPU(s): the largest node of the cluster has "
                 "no more", cpus)
        opts = opts.replace(threads=cpus)
    task = ray.remote(num_cpus=cpus, max_retries=0)(_ray_job)
    refs = {task.remote(fn, item, opts, env, os.getcwd(), level, shared): i
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
            lost = re.search(r"node ID: ([0-9a-f]{16,})", str(cause))  # NodeDiedError
            results[i] = JobFailed(f"Ray task failed: {type(cause).__name__}: "
                                   f"{text[-1] if text else ''}",
                                   node=lost.group(1) if lost else None)
        on_done(i, results[i])
    return results
