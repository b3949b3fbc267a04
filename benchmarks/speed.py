"""Speed: steady-state ms/epoch and train wall time, stockrnn vs the lectures' recipe.

Each (backend, implementation) pair trains every family in its own worker process, so neither
inherits the other's process-wide state (TensorFlow op determinism, compiled graphs, caches).
With repeats, the order alternates (reference first, then stockrnn first, ...).
Steady state = median epoch time after the first two epochs (tracing/compilation).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import targets
from benchmarks.subprocesses import REPO, run_worker

CONFIGS = REPO / "configs"
LOOK_BACK, BATCH = 7, 32
WARMUP_EPOCHS = 2


def steady_ms(epoch_seconds: list[float]) -> float | None:
    tail = epoch_seconds[WARMUP_EPOCHS:] or epoch_seconds
    return 1000 * statistics.median(tail) if tail else None


# ---- in the worker ---------------------------------------------------------------------------

def family_config(family: str, epochs: int, backend: str, workdir: Path, seed: int = 42):
    """configs/<family>.yaml with the benchmark's window, batch and epochs; early stopping off."""
    from stockrnn.config import load_config

    return load_config(CONFIGS / f"{family}.yaml", [
        f"window.look_back={LOOK_BACK}", f"train.batch_size={BATCH}", f"train.epochs={epochs}",
        f"train.early_stopping.patience={epochs}", f"train.backend={backend}",
        f"train.seed={seed}", f"paths.data_dir={workdir / 'data'}",
        f"paths.runs_dir={workdir / 'runs'}", f"paths.run_name=bench-{family}"])


class EpochLog(logging.Handler):
    """Collects the seconds of stockrnn's per-epoch log line ("epoch %d/%d %s (%.2fs)"), and
    the process CPU time between two such lines (``cpu_seconds``, from the second epoch on)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._cpu = None
        self._logger = logging.getLogger("stockrnn.training")

    def emit(self, record):
        args = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("epoch") and args and isinstance(args[-1], float):
            self.seconds.append(args[-1])
            cpu = time.process_time()
            if self._cpu is not None:
                self.cpu_seconds.append(cpu - self._cpu)
            self._cpu = cpu

    def __enter__(self):
        self._level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def train_stockrnn(family: str, epochs: int, backend: str, workdir: Path, seed: int = 42) -> dict:
    from stockrnn import stages
    from stockrnn.options import RunOptions

    cfg = family_config(family, epochs, backend, workdir, seed)
    stages.load_frame(cfg)  # put the sample into the store before the clock starts
    with EpochLog() as log:
        started = time.perf_counter()
        run = stages.train(cfg, RunOptions(progress="lines"))
        total = time.perf_counter() - started
    meta = run.meta()
    out = {"epoch_seconds": log.seconds, "epoch_cpu_seconds": [None, *log.cpu_seconds],
           "fit_seconds": meta["train_seconds"],
           "total_seconds": total, "epochs_run": meta["epochs_run"],
           "train_samples": meta["data"]["splits"]["train"]["samples"],
           "val_samples": meta["data"]["splits"]["val"]["samples"],
           "parameters": meta["parameters"]}
    if len(log.seconds) != meta["epochs_run"]:
        out["note"] = "epoch log lines not found; ms/epoch estimated as fit time / epochs"
        out["epoch_seconds"] = [meta["train_seconds"] / max(meta["epochs_run"], 1)] * epochs
    return out


def train_core(family: str, epochs: int, backend: str, workdir: Path, seed: int = 42) -> dict:
    """Diagnostic: stockrnn's model, compile settings, input pipeline (``training.batches``)
    and validation fitted with no other callbacks, so the cost of the early stopping, the
    keeper (best epoch, history, backup) and the epoch lines shows by difference."""
    from benchmarks.reference import epoch_timer
    from stockrnn import dataset, stages, training
    from stockrnn.backend import seed_everything, use

    keras = use(backend)
    cfg = family_config(family, epochs, backend, workdir, seed)
    ds = dataset.build(stages.load_frame(cfg), cfg)
    seed_everything(seed)
    tr, va, t = ds.splits["train"], ds.splits["val"], cfg.train
    model = training.compiled_model(cfg.model, t, tuple(tr.x.shape[1:]), ds.horizon,
                                    t.steps_per_execution)
    timer = epoch_timer(keras)
    started = time.perf_counter()
    model.fit(**training.batches(tr.x, tr.y, t.batch_size, seed, model), epochs=epochs,
              callbacks=[training.validation(t.loss, va.x, va.y, t.batch_size), timer], verbose=0)
    return {"epoch_seconds": timer.seconds, "fit_seconds": time.perf_counter() - started,
            "steady_ms_per_epoch": steady_ms(timer.seconds)}


@contextlib.contextmanager
def plain_keras(backend: str):
    """What a plain Keras process has: TensorFlow op determinism off (stockrnn's seeding turns
    it on for its own runs); as it was afterwards."""
    if backend != "tensorflow":
        yield
        return
    from tensorflow.python.framework import config

    was = config.is_op_determinism_enabled()
    config.disable_op_determinism()
    try:
        yield
    finally:
        if was:
            config.enable_op_determinism()


def measure_one(impl: str, family: str, epochs: int, backend: str, workdir: Path) -> dict:
    """One training of one family by ``impl`` (reference or stockrnn) in this process."""
    import os
    import sys

    from benchmarks import floor, reference
    from stockrnn import training

    try:
        if impl == "reference":
            cfg = family_config(family, epochs, backend, workdir)
            with plain_keras(backend):
                r = reference.train(cfg.model, epochs, LOOK_BACK, BATCH)
        else:
            training._COMPILED.clear()  # a new model, traced or compiled anew, as in a new run
            r = train_stockrnn(family, epochs, backend, workdir / family)
            try:
                r["no_callbacks"] = train_core(family, epochs, backend, workdir / family)
            except Exception as exc:  # internals changed: the diagnostic is optional
                r["no_callbacks"] = {"failed": f"{type(exc).__name__}: {exc}"}
            if backend == "jax" and family in floor.FAMILIES:  # a diagnostic too
                try:
                    r["floor"] = floor.measure(family, r["train_samples"], r["val_samples"],
                                               LOOK_BACK, BATCH, epochs, WARMUP_EPOCHS)
                except Exception as exc:
                    r["floor"] = {"failed": f"{type(exc).__name__}: {exc}"}
        r["steady_ms_per_epoch"] = steady_ms(r["epoch_seconds"])
        r["load_average"] = list(os.getloadavg())
        print(f"{impl} {family}: {r['steady_ms_per_epoch']:.1f} ms/epoch, "
              f"fit {r['fit_seconds']:.2f}s (load {r['load_average'][0]:.2f})", file=sys.stderr,
              flush=True)
    except Exception as exc:  # reported, never fatal to the other families
        r = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{impl} {family}: ERROR {r['error']}", file=sys.stderr, flush=True)
    return r


def worker(args: dict) -> dict:
    """Both implementations on one backend (the process's), every family in ``args``,
    interleaved: ``{"reference": [{family: result} per repeat], "stockrnn": [...]}``."""
    from stockrnn.backend import use

    backend = args["backend"]
    use(backend)
    out: dict = {"reference": [], "stockrnn": []}
    with tempfile.TemporaryDirectory(prefix="stockrnn-speed-") as tmp:
        for rep in range(args.get("repeats", 1)):
            for impl in out:
                out[impl].append({})
            for i, family in enumerate(args["families"]):
                order = (("reference", "stockrnn") if (rep + i) % 2 == 0
                         else ("stockrnn", "reference"))
                for impl in order:
                    out[impl][rep][family] = measure_one(
                        impl, family, args["epochs"], backend, Path(tmp) / f"{impl}-{rep}")
    return out


# ---- in the parent ---------------------------------------------------------------------------

def measure(mode) -> dict:
    out: dict = {"look_back": LOOK_BACK, "batch_size": BATCH, "epochs": mode.speed_epochs,
                 "repeats": mode.speed_repeats, "warmup_epochs": WARMUP_EPOCHS, "backends": {}}
    for backend in mode.speed_backends:
        if backend == "jax" and importlib.util.find_spec("jax") is None:
            out["backends"][backend] = {"skipped": "jax not installed"}
            continue
        args = {"backend": backend, "families": list(mode.speed_families),
                "epochs": mode.speed_epochs, "repeats": mode.speed_repeats}
        raw = run_worker("speed", args, backend, label=f"speed {backend}")
        if "error" in raw:  # the worker died: every family says so
            raw = {impl: [{"error": raw["error"]}] for impl in ("reference", "stockrnn")}
        res = {impl: summarize(runs, mode.speed_families) for impl, runs in raw.items()}
        loads = [r["load_average"][0] for runs in raw.values() for rep in runs
                 for r in rep.values() if isinstance(r, dict) and "load_average" in r]
        res["load_1min"] = [min(loads), max(loads)] if loads else None
        out["backends"][backend] = res
    out["ratios"] = ratios(out["backends"], mode.speed_families)
    return out


def summarize(runs: list[dict], families) -> dict:
    """Per family: ms/epoch = median of every repeat's steady epochs pooled; wall times =
    medians over repeats; plus every repeat's raw figures."""
    out = {}
    for family in families:
        reps = [r.get(family) if "error" not in r else {"error": r["error"]} for r in runs]
        good = [r for r in reps if r and "error" not in r]
        if not good:
            out[family] = {"error": next((r["error"] for r in reps if r), "no result")}
            continue
        pooled = [t for r in good for t in r["epoch_seconds"][WARMUP_EPOCHS:]]
        cpu = [t for r in good for t in r.get("epoch_cpu_seconds", [])[WARMUP_EPOCHS:]
               if t is not None]
        out[family] = {
            "steady_ms_per_epoch": 1000 * statistics.median(pooled) if pooled else
            statistics.median(r["steady_ms_per_epoch"] for r in good),
            "steady_cpu_ms_per_epoch": 1000 * statistics.median(cpu) if cpu else None,
            "fit_seconds": statistics.median(r["fit_seconds"] for r in good),
            "total_seconds": statistics.median(r["total_seconds"] for r in good),
            "first_epoch_seconds": _median(r["epoch_seconds"][0] for r in good
                                           if r["epoch_seconds"]),
            "no_callbacks_ms_per_epoch": _median(r.get("no_callbacks", {})
                                                 .get("steady_ms_per_epoch") for r in good),
            "floor_ms_per_epoch": _median(r.get("floor", {}).get("steady_ms_per_epoch")
                                          for r in good),
            "steady_epochs": len(pooled),
            "parameters": good[0]["parameters"], "train_samples": good[0]["train_samples"],
            "repeats": reps}
    return out


def ratios(backends: dict, families) -> list[dict]:
    """stockrnn / reference per family: on the same backend (the target, issue 17: at most
    ``targets.SPEED_SAME_BACKEND`` on every backend) and against the TF reference (a figure)."""
    rows = []
    ref_tf = backends.get("tensorflow", {}).get("reference", {})
    for backend, res in backends.items():
        if "skipped" in res:
            continue
        for family in families:
            stk, ref = res["stockrnn"].get(family, {}), res["reference"].get(family, {})
            base = ref_tf.get(family, {})
            row = {"backend": backend, "family": family}
            for metric in ("steady_ms_per_epoch", "steady_cpu_ms_per_epoch", "fit_seconds"):
                row[f"{metric}_vs_same_backend"] = _ratio(stk, ref, metric)
                row[f"{metric}_vs_tf_reference"] = _ratio(stk, base, metric)
            row["floor_vs_same_backend"] = _ratio(  # a diagnostic (benchmarks/floor.py)
                stk, ref, "floor_ms_per_epoch", "steady_ms_per_epoch")
            limit = targets.SPEED_SAME_BACKEND
            # The target is the steady-state epoch; the fit wall time (first-epoch
            # tracing/compilation included) is reported beside it as a figure, not a target.
            row["checks"] = [targets.check(f"speed {backend} {family} ms/epoch",
                                           row["steady_ms_per_epoch_vs_same_backend"],
                                           at_most=limit,
                                           text=f"<= {limit:g}x plain Keras on {backend}")]
            rows.append(row)
    return rows


def _median(values):
    values = [v for v in values if isinstance(v, float | int)]
    return statistics.median(values) if values else None


def _ratio(a: dict, b: dict, key: str, b_key: str | None = None) -> float | None:
    """``a[key] / b[b_key or key]``, None where either is missing."""
    x, y = a.get(key), b.get(b_key or key)
    return x / y if isinstance(x, float | int) and isinstance(y, float | int) and y > 0 else None
