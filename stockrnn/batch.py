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
import csv
import datetime as dt
import io
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

from stockrnn import atomic, locking
from stockrnn.config import Config, check_tickers, validate_config
from stockrnn.errors import ConfigError, StockRNNError

log = logging.getLogger(__name__)

SUMMARY_JSON, SUMMARY_CSV = "summary.json", "summary.csv"
COLUMNS = ("ticker", "status", "error", "run_dir", "mase", "directional_accuracy", "test_mae",
           "persistence_mae", "seconds")
EXECUTORS = ("local", "ray")
RAY_MISSING = "--executor ray needs Ray: pip install 'stockrnn[ray]'"
#: Environment a Ray task takes from the driver (a worker's environment is the raylet's).
RAY_ENV = ("STOCKRNN_DATA_DIR", "STOCKRNN_RUNS_DIR", "KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL")
#: Inside a parallel batch, sibling jobs hold the data store's lock for a moment each; a job
#: waits this long for it (and for its own run name's lock) instead of failing at once.
JOB_LOCK_WAIT = 600.0


def tickers_of(cfg: Config) -> list[str]:
    """The batch's tickers: data.tickers, or the lines of data.tickers_file (# comments)."""
    if cfg.data.tickers is not None:
        return list(cfg.data.tickers)
    path = Path(cfg.data.tickers_file or "")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"data.tickers_file: cannot read {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    out = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    out = [t for t in out if t]
    if not out:
        raise ConfigError(f"data.tickers_file: {path} lists no tickers")
    try:
        check_tickers(out, f"data.tickers_file {path}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return out


def create_dir(cfg: Config, kind: str = "batch") -> Path:
    """A new ``runs/<run_name>/<kind>-<UTC timestamp>[-i]/`` folder (batch, tune, ...)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    base = cfg.runs_dir / cfg.run_name
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = base / (f"{kind}-{stamp}" if i == 0 else f"{kind}-{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise StockRNNError(f"cannot create a {kind} directory under {base}")


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


def run_ticker(raw: dict, ticker: str, opts: dict) -> dict:
    """Run the whole pipeline for one ticker; never raises: returns the summary row."""
    from stockrnn import workflow

    # tf.function "retracing" warnings: expected when one process trains several models
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    row = dict.fromkeys(COLUMNS)
    row.update(ticker=ticker)
    summary: dict = {}
    try:
        cfg = validate_config(raw, "<batch>").for_ticker(ticker)
        if opts.get("threads"):
            _tf_threads(cfg.backend, opts["threads"])
        workflow.run_all(
            cfg, resume=opts["resume"], allow_stale=opts["allow_stale"], steps=opts["steps"],
            wait=opts["wait"], keep=opts["keep"], progress="none", summary=summary,
            on_stage=lambda name, line: log.info("%s %-9s %s", ticker, name, line))
        m, p = summary["metrics"]["model"], summary["metrics"]["persistence"]
        row.update(status="ok", run_dir=summary["run_dir"], mase=m["mase"],
                   directional_accuracy=m["directional_accuracy"], test_mae=m["mae"],
                   persistence_mae=p["mae"])
    except StockRNNError as exc:
        row.update(status="failed", error=str(exc))
    except Exception as exc:  # one ticker's bug or bad data must not stop the batch
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    if row["status"] == "failed":
        log.warning("%s failed: %s", ticker, row["error"])
        row["run_dir"] = summary.get("run_dir")  # set when it failed after training
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


def run_batch(cfg: Config, *, jobs: int = 1, resume: bool = False, allow_stale: bool = False,
              steps: int | None = None, wait: float = 0.0, keep: int | None = None,
              executor: str = "local", ray_address: str | None = None,
              on_ticker: Callable[[dict], None] = lambda row: None) -> dict:
    """Run every ticker of ``cfg``; write and return the batch summary."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    scope = cfg.model.scope
    ray = import_ray() if executor == "ray" and scope == "per_ticker" else None
    tickers = tickers_of(cfg)
    jobs = max(1, min(jobs, len(tickers)))
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    raw = cfg.to_dict()
    with locking.hold(cfg.runs_dir / cfg.run_name / ".lock", wait):
        batch_dir = create_dir(cfg)
        started = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        log.info("batch of %d tickers, %s, %d job(s) x %d thread(s) -> %s", len(tickers),
                 "local" if ray is None else f"Ray at {ray_address or 'a local instance'}",
                 jobs, threads, batch_dir)
        parallel = jobs > 1 or ray is not None
        opts = {"resume": resume, "allow_stale": allow_stale, "steps": steps, "keep": keep,
                "wait": max(wait, JOB_LOCK_WAIT) if parallel else wait,
                "threads": threads if parallel else None}
        rows: dict[str, dict] = {}
        extra: dict = {}
        if scope == "global":
            from stockrnn import globalmodel

            if jobs > 1 or executor != "local":
                log.warning("model.scope global trains one model in this process; --jobs and "
                            "--executor are not used")
            rows, extra = globalmodel.run(cfg, tickers, opts, on_ticker)
        elif ray is not None:
            rows = run_on_ray(ray, raw, tickers, opts, jobs, threads, ray_address, on_ticker)
        elif jobs == 1:
            for t in tickers:
                rows[t] = run_ticker(raw, t, opts)
                on_ticker(rows[t])
        else:
            ctx = multiprocessing.get_context("spawn")
            level = logging.getLogger("stockrnn").getEffectiveLevel()
            with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                        initargs=(threads, level)) as pool:
                futures = {pool.submit(run_ticker, raw, t, opts): t for t in tickers}
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    try:
                        rows[t] = fut.result()
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        rows[t] = failed_row(t, f"worker process failed: {type(exc).__name__}: "
                                                f"{exc}")
                    on_ticker(rows[t])
        ordered = [rows[t] for t in tickers]
        failed = [r["ticker"] for r in ordered if r["status"] != "ok"]
        summary = {"batch_dir": str(batch_dir), "config": cfg.run_name, "jobs": jobs,
                   "executor": executor, "ray_address": ray_address,
                   "threads_per_job": threads if parallel else cores,
                   "started": started.isoformat(timespec="seconds"),
                   "seconds": round(time.perf_counter() - t0, 3),
                   "scope": scope, **extra,
                   "tickers": ordered, "ok": len(ordered) - len(failed), "failed": failed}
        write_summary(batch_dir, summary)
    return summary


def failed_row(ticker: str, error: str) -> dict:
    return {**dict.fromkeys(COLUMNS), "ticker": ticker, "status": "failed", "error": error}


# --------------------------------------------------------------------------- Ray


def import_ray():
    """The ``ray`` module, or ConfigError (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def _ray_job(raw: dict, ticker: str, opts: dict, env: dict, cwd: str, log_level: int) -> dict:
    """One ticker as a Ray task: the driver's STOCKRNN_*/Keras environment and working folder
    (when the worker's machine has it: on a remote cluster give absolute shared paths), then
    the same ``run_ticker`` as a local job."""
    os.environ.update(env)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    _init_worker(opts["threads"], log_level)
    return run_ticker(raw, ticker, opts)


def run_on_ray(ray, raw: dict, tickers: list[str], opts: dict, jobs: int, threads: int,
               address: str | None, on_ticker: Callable[[dict], None]) -> dict[str, dict]:
    """Each ticker as a Ray task asking for ``threads`` CPUs, on the cluster at ``address`` or on
    a local Ray of ``jobs * threads`` CPUs started here (and shut down after)."""
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
        refs = {task.remote(raw, t, opts, env, os.getcwd(), level): t for t in tickers}
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
                rows[t] = failed_row(t, f"Ray task failed: {type(cause).__name__}: "
                                        f"{text[-1] if text else ''}")
            on_ticker(rows[t])
        return rows
    finally:
        if started_here:
            ray.shutdown()


def write_summary(batch_dir: Path, summary: dict) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({k: r.get(k) for k in COLUMNS} for r in summary["tickers"])
    atomic.write_text(batch_dir / SUMMARY_CSV, buf.getvalue())
    atomic.write_json(batch_dir / SUMMARY_JSON, summary)


def format_table(rows: list[dict]) -> str:
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    width = max([6, *(len(r["ticker"]) for r in rows)])
    out = [f"{'ticker':{width}s} {'status':6s} {'MASE':>7s} {'dir.acc':>7s} {'test MAE':>9s} "
           f"{'seconds':>7s}  run / error"]
    for r in rows:
        tail = r["run_dir"] or "" if r["status"] == "ok" else f"error: {r['error']}"
        out.append(f"{r['ticker']:{width}s} {r['status']:6s} {f(r['mase'], '.4f'):>7s} "
                   f"{f(r['directional_accuracy'], '.1%'):>7s} {f(r['test_mae'], '.4f'):>9s} "
                   f"{f(r['seconds'], '.1f'):>7s}  {tail}")
    return "\n".join(out) + "\n"
