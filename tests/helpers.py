"""Plain helpers shared by the test modules (the fixtures are in conftest.py).

The CLI invoker, synthetic price series and CSV files, config and override builders, and the
checks several modules make on run directories."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from stockrnn.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SMOKE = CONFIGS / "smoke.yaml"
MULTI = CONFIGS / "multi.yaml"
CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# the fuzz tests' settings; STOCKRNN_FUZZ_EXAMPLES raises the examples per test (default 150)
FUZZ = settings(max_examples=int(os.environ.get("STOCKRNN_FUZZ_EXAMPLES", "150")), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])
STAGES = ["fetch", "prepare", "train", "evaluate", "predict"]
# the session's smoke_run (conftest.py) trains on the bundled sample from this date: about 710
# rows, which keeps it cheap
SHORT = "data.start=2010-05-03"
# the session's horizon_run: a dated AR(1) series, horizon 2, look_back 10
HORIZON_LAST_DAY = "2024-03-08"   # a Friday
HORIZON = 2
HORIZON_LOOK_BACK = 10


# --------------------------------------------------------------------------- the CLI


def invoke(*args, code: int | None = 0, env: dict | None = None):
    """Run the CLI in-process (stdout and stderr come back separately); check the exit code
    unless ``code`` is None."""
    from stockrnn.cli import cli

    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    if code is not None:
        assert result.exit_code == code, f"{args}: {explain(result)}"
    return result


def explain(result) -> str:
    """Everything needed to understand a failed CLI call in an assertion message."""
    return (f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"exception: {result.exception!r}")


def stdout_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def last_line(result) -> str:
    """The last line of stdout (the run or batch directory the command printed last)."""
    return result.stdout.strip().splitlines()[-1]


def sets(**kv) -> list[str]:
    """``sets(**{"window.look_back": 10})`` -> ["--set", "window.look_back=10"]."""
    out = []
    for key, value in kv.items():
        if isinstance(value, list | tuple):
            value = "[" + ", ".join(str(v) for v in value) + "]"
        out += ["--set", f"{key}={value}"]
    return out


def set_args(items) -> list[str]:
    """``["a.b=1", "c.d=2"]`` -> ["--set", "a.b=1", "--set", "c.d=2"]."""
    return [a for item in items for a in ("--set", item)]


@contextlib.contextmanager
def saved_logging(names=("stockrnn", "yfinance")):
    """The CLI's setup_logging reconfigures these loggers (handlers on the streams of the call
    that ran it); give every later test the state from before."""
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level,
                 logging.getLogger(n).propagate) for n in names}
    try:
        yield
    finally:
        for n, (handlers, level, propagate) in saved.items():
            lg = logging.getLogger(n)
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@contextlib.contextmanager
def in_folder(base: Path):
    """For module fixtures that run the CLI: ``base`` as the working directory, no
    ``STOCKRNN_DATA_DIR``/``STOCKRNN_RUNS_DIR`` (so ./data and ./runs), the loggers restored
    after; yields the MonkeyPatch for more changes."""
    import pytest

    with pytest.MonkeyPatch.context() as mp, saved_logging():
        mp.chdir(base)
        mp.delenv("STOCKRNN_DATA_DIR", raising=False)
        mp.delenv("STOCKRNN_RUNS_DIR", raising=False)
        yield mp


def interrupt_at(epoch: int, exc: type[BaseException]):
    """Stand-in for training.epoch_logger that raises when ``epoch`` (0-based) begins."""
    def factory(total):
        from stockrnn.backend import use

        keras = use()

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                if e == epoch:
                    raise exc("boom")

        return Interrupt()

    return factory


# --------------------------------------------------------------------------- configs


def config(*overrides: str, base: Path | None = None) -> Config:
    """A validated Config from ``base`` (default: built-in defaults) plus ``--set`` overrides."""
    return load_config(base, list(overrides))


@functools.cache
def sample_frame() -> pd.DataFrame:
    """The bundled GOOG sample as the store keeps it (read once per session)."""
    from stockrnn.data.csvfile import read_price_csv
    from stockrnn.data.sources import SAMPLE_DIR

    return read_price_csv(SAMPLE_DIR / "GOOG.csv")


def seed_store(data_dir: Path) -> Path:
    """Fetch the bundled sample into ``data_dir`` the way ``stockrnn fetch --source sample`` does."""
    from stockrnn.data.sources import SampleSource
    from stockrnn.data.store import Store

    Store(data_dir).update(SampleSource(), "GOOG")
    return data_dir


def price_frame(close, **columns) -> pd.DataFrame:
    """A price frame on business days from a Close array (and optional other columns)."""
    close = np.asarray(close, dtype="float64")
    idx = pd.bdate_range("2020-01-01", periods=len(close), name="Date")
    data = {"Close": close, **{k: np.asarray(v, dtype="float64") for k, v in columns.items()}}
    return pd.DataFrame(data, index=idx)


# --------------------------------------------------------------------------- synthetic series


def random_walk(n: int, seed: int, sigma: float = 0.01, start: float = 100.0) -> np.ndarray:
    """Prices whose log is a driftless Gaussian random walk: no forecast beats persistence."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma, n - 1)
    return start * np.exp(np.concatenate([[0.0], np.cumsum(steps)]))


def ar1_returns(n: int, phi: float, seed: int, sigma: float = 0.01) -> np.ndarray:
    """Log returns r_t = phi * r_{t-1} + eps_t (n - 1 of them; r[0] is the first return)."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma, n - 1)
    r = np.empty(n - 1)
    r[0] = eps[0] / np.sqrt(1 - phi ** 2)
    for t in range(1, n - 1):
        r[t] = phi * r[t - 1] + eps[t]
    return r


def threshold_ar_returns(n: int, seed: int, phi_pos: float = 0.7, phi_neg: float = -0.3,
                         intercept: float = -0.0063, sigma: float = 0.015,
                         burn_in: int = 200) -> np.ndarray:
    """Threshold-AR log returns r_t = c + phi(r_{t-1}) * r_{t-1} + eps_t, with phi = phi_pos
    after a rise and phi_neg after a fall (n - 1 of them, after ``burn_in`` draws): the
    persistence of a return depends on its sign, which a linear model (AutoARIMA) can only
    average. The defaults are benchmarks/synthetic.py's (c keeps the mean return about 0)."""
    eps = np.random.default_rng(seed).normal(0.0, sigma, n - 1 + burn_in)
    r = np.zeros_like(eps)
    for t in range(1, len(eps)):
        r[t] = intercept + (phi_pos if r[t - 1] > 0 else phi_neg) * r[t - 1] + eps[t]
    return r[burn_in:]


def prices_from_returns(r: np.ndarray, start: float = 100.0) -> np.ndarray:
    return start * np.exp(np.concatenate([[0.0], np.cumsum(r)]))


def business_dates(n: int, start: str = "2015-01-05") -> pd.DatetimeIndex:
    return pd.bdate_range(start, periods=n)


def write_close_csv(path: Path, prices: np.ndarray, dates=None) -> Path:
    """A two-column ``Date,Close`` file (business days unless ``dates`` given)."""
    dates = business_dates(len(prices)) if dates is None else pd.DatetimeIndex(dates)
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": np.round(prices, 6)})
    frame.to_csv(path, index=False)
    return path


def csv_overrides(csv_path: Path, ticker: str, data_dir: Path, runs_dir: Path,
                  run_name: str) -> list[str]:
    return set_args(["data.source=csv", f"data.path={csv_path}", f"data.ticker={ticker}",
                     f"paths.data_dir={data_dir}", f"paths.runs_dir={runs_dir}",
                     f"paths.run_name={run_name}"])


def train_run(*args) -> Path:
    """``stockrnn train -q ARGS`` in-process; returns the run directory it printed last."""
    with saved_logging():
        result = invoke("train", "-q", *args)
    path = Path(last_line(result))
    assert (path / "model.keras").is_file(), explain(result)
    return path


def train_csv(tmp: Path, prices: np.ndarray, ticker: str = "SYN", run_name: str = "syn",
              config: Path | None = SMOKE, dates=None, plots: bool = True, **overrides) -> Path:
    """Write ``prices`` as a CSV in ``tmp`` and train a run on it (smoke settings + overrides;
    ``plots=False``: ``train --no-plots``, for tests that read no plot)."""
    tmp.mkdir(parents=True, exist_ok=True)
    csv_path = write_close_csv(tmp / f"{ticker}.csv", prices, dates)
    args = ["-c", str(config)] if config is not None else []
    args += csv_overrides(csv_path, ticker, tmp / "data", tmp / "runs", run_name)
    args += sets(**overrides)
    return train_run(*args, *([] if plots else ["--no-plots"]))


# --------------------------------------------------------------------------- run directories


def evaluate_json(run: Path | str, *extra: str, code: int = 0) -> dict:
    result = invoke("evaluate", "--run", run, "--json", *extra, code=code)
    return json.loads(result.stdout)


def series(run: Path) -> pd.Series:
    """The target prices a run saved (series.csv), by date."""
    return pd.read_csv(run / "series.csv", index_col="Date", parse_dates=["Date"])["Close"]


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "history.csv")


def meta(run: Path) -> dict:
    return json.loads((run / "meta.json").read_text())


def copy_run(run: Path, dest: Path) -> Path:
    """A private copy of a run directory, for tests that change or damage it."""
    return Path(shutil.copytree(run, dest))


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def split_anchors(n: int, look_back: int, horizon: int = 1, train: float = 0.70,
                  val: float = 0.15, log_return: bool = True) -> dict[str, np.ndarray]:
    """Anchors (row of the last input) of each split, computed from the documented rules:
    chronological split at round(n*train) and round(n*(train+val)); a sample belongs to the split
    that holds all its target rows; its inputs need ``look_back`` defined rows (log returns
    leave row 0 undefined)."""
    val_start, test_start = int(round(n * train)), int(round(n * (train + val)))
    first_input = (1 if log_return else 0) + look_back - 1
    out = {}
    for name, (r0, r1) in {"train": (0, val_start), "val": (val_start, test_start),
                           "test": (test_start, n)}.items():
        lo = max(r0 - 1, first_input)
        hi = r1 - horizon
        out[name] = np.arange(lo, hi)
    return out


def error_line(result) -> str:
    """The one `Error: ...` message of a failed command (may span lines for several config
    problems); checks it is a clean exit, never a traceback."""
    import re

    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    match = re.search(r"^Error: (.+)", result.stderr, re.M | re.S)
    assert match, f"no 'Error:' line on stderr:\n{result.stderr}"
    return match.group(1).strip()


# --------------------------------------------------------------------------- real processes, cheaply
# A `stockrnn` process pays about 8 s of CPU to import TensorFlow and Keras before it does
# anything. The tests that need real processes (killed with SIGKILL, holding locks, with no
# terminal) start them as children of one fork server that imported those once: each child is
# an ordinary process of its own (own pid, its files and locks released by the OS when it dies)
# that runs the command line as `python -m stockrnn` would, from the point where the imports are
# done. `python -m stockrnn` and the installed script themselves are run as written by the
# documented-examples tests and test_cli_fetch.py.

# what stockrnn's own fork server preloads (TensorFlow and Keras as stockrnn imports them, the
# pipeline), and the CLI, the plots and these helpers
FORK_PRELOAD = ("helpers", "stockrnn.preload", "stockrnn.cli", "stockrnn.plotting")
_FORKSERVER = None


def fork_server(wait: bool = True):
    """The multiprocessing context whose fork server has imported FORK_PRELOAD (started with the
    TensorFlow backend, whatever the calling test's environment says). ``wait=False`` starts
    the server and returns while it imports (the first child then waits for it).

    A process has one fork server, which ``stockrnn.jobs`` uses too (``--jobs`` workers):
    conftest starts this one first, so that it has these preloads whichever comes first."""
    global _FORKSERVER
    if _FORKSERVER is not None:
        return _FORKSERVER
    from stockrnn.jobs import start_fork_server

    ctx = start_fork_server(FORK_PRELOAD)
    if wait:
        warm = ctx.Process(target=os.getpid)  # returns once the server has imported all
        warm.start()
        warm.join()
        _FORKSERVER = ctx
    return ctx


def _child(argv: list[str], cwd: str, env: dict, out: str, err: str, code: str | None) -> None:
    """In the forked child: the working directory, environment and standard streams of a fresh
    `stockrnn ARGV` process (stdin closed, stdout/stderr to files), then the CLI (or ``code``,
    a driver script that ends by calling it, with ``sys.argv[1:]`` = ARGV)."""
    import io
    import sys

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        new = os.open(path, flags, 0o644)
        os.dup2(new, fd)
        os.close(new)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    if code is None:
        from stockrnn.cli import main

        sys.argv = ["stockrnn", *argv]
        main()
    else:
        sys.argv = ["-c", *argv]
        exec(compile(code, "<driver>", "exec"), {"__name__": "__main__"})


class Child:
    """A `stockrnn` process forked from the fork server, with the parts of subprocess.Popen's
    interface the tests use (pid, poll, send_signal, kill, wait, communicate, returncode)."""

    def __init__(self, args, cwd: Path, env: dict, code: str | None = None):
        import tempfile

        self._dir = Path(tempfile.mkdtemp(prefix="child-"))
        self._out, self._err = self._dir / "stdout", self._dir / "stderr"
        self.args = [str(a) for a in args]
        ctx = fork_server()
        self._process = ctx.Process(target=_child, args=(self.args, str(cwd), dict(env),
                                                         str(self._out), str(self._err), code))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        """The exit code, or None while the process runs. (The fork server reports an exit a
        moment after it happens, so an exited process, a zombie until then, is waited for.)"""
        if self._process.exitcode is None:
            try:
                with open(f"/proc/{self.pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                state = "gone"
            if state not in ("Z", "X", "gone"):
                return None
            self._process.join(30)
        return self._process.exitcode

    def send_signal(self, sig) -> None:
        if self._process.exitcode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        import subprocess

        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        out = tuple(p.read_text(errors="replace") if p.exists() else ""  # killed before it began
                    for p in (self._out, self._err))
        shutil.rmtree(self._dir, ignore_errors=True)
        return out


def run_child(args, cwd: Path, env: dict, timeout: float = 300):
    """``Child(args)`` run to its end: a CompletedProcess (text stdout and stderr)."""
    import subprocess

    child = Child(args, cwd, env)
    try:
        out, err = child.communicate(timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


# --------------------------------------------------------------------------- run directories

DEAD_PID = 2 ** 22 + 12345  # above Linux's pid_max default: no such process


def fake_run(root: Path, name: str, stamp: str, state: str = "complete") -> Path:
    """runs/<name>/<stamp>/meta.json in one of the states a run can be in: complete, killed
    (status running, its process gone), running (its process alive: this one), failed."""
    from stockrnn import runs

    path = root / name / stamp
    path.mkdir(parents=True)
    meta = {"format": runs.RUN_FORMAT, "status": "complete", "created": "2020-01-01T00:00:00+00:00",
            "model_type": "lstm", "ticker": "GOOG"}
    if state in ("killed", "running"):
        meta.update(status="running", host=socket.gethostname(),
                    pid=os.getpid() if state == "running" else DEAD_PID)
    elif state == "failed":
        meta.update(status="incomplete", error="RuntimeError: boom")
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def run_zoo(root: Path, first: Path | None = None) -> dict[str, Path]:
    """runs/smoke with three complete runs (a < b < c), a killed one and a running one
    (meta.json only, unless ``first``: a real run copied as ``a``); latest -> c."""
    from stockrnn import runs

    smoke = root / "smoke"
    z = {"a": copy_run(first, smoke / "20200101T000000Z") if first is not None
         else fake_run(root, "smoke", "20200101T000000Z"),
         "b": fake_run(root, "smoke", "20200102T000000Z"),
         "c": fake_run(root, "smoke", "20200103T000000Z"),
         "killed": fake_run(root, "smoke", "20200104T000000Z", "killed"),
         "running": fake_run(root, "smoke", "20200105T000000Z", "running")}
    runs.set_latest(runs.RunDir(z["c"]))
    return z


# ---- exported models (stockrnn export): load one and forecast, as its consumer would

def savedmodel_fn(path: Path):
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda x: serve(prices=tf.constant(x, tf.float32))["forecast"].numpy()


def onnx_fn(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["forecast"], {"prices": x.astype("float32")})[0]


def keras_fn(path: Path):
    import keras

    model = keras.models.load_model(path / "model.keras")  # no custom_objects: built-ins only
    return lambda x: np.asarray(model(x.astype("float32"))["forecast"])


EXPORT_LOADERS = {"savedmodel": savedmodel_fn, "onnx": onnx_fn, "keras": keras_fn}


def forecasts_on_the_test_split(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(the raw price windows of a run's test-split samples, what its model forecasts for them
    in prices), rebuilt from the run's own saved prices: what an export of it must give."""
    from stockrnn import forecasting
    from stockrnn.runs import RunDir
    from stockrnn.training import predict

    rd = RunDir(run)
    cfg, transform, model, _ = forecasting.load_run(rd)
    ds = forecasting.run_dataset(rd, cfg, transform)
    test, look_back = ds.splits["test"], cfg.window.look_back
    closes = ds.frame[cfg.data.target].to_numpy()
    raw = np.stack([closes[a - look_back:a + 1] for a in test.anchors])[..., None]
    return raw, transform.invert(predict(model, test.x), ds.last_prices("test"))


def job_surroundings(item, opts) -> dict:
    """A job for ``jobs.run`` that reports where it ran: its process, folder and environment."""
    return {"item": item, "pid": os.getpid(), "cwd": os.getcwd(),
            "probe": os.environ.get("STOCKRNN_TEST_PROBE"),
            "threads": os.environ.get("OMP_NUM_THREADS"), "xla": os.environ.get("XLA_FLAGS")}
