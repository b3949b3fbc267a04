"""``stockrnn tune``: hyperparameter search with Optuna over the config's ``tune:`` ranges.

Trials are scored on the validation loss only (the kept model's val_loss, see training.fit); the
test split is not looked at until the best config has been retrained, once, as an ordinary run.
The config as written is enqueued as trial 0, so the best trial's val_loss is never worse than
the default config's (the search can only add better candidates).

    runs/<run_name>/tune-<UTC timestamp>/
        trials.csv  trials.json   one row per trial: number, params, val_loss, epochs, seconds
        best.yaml                 the best config (run name <run_name>-tuned), ready for `run`
        summary.json              default and best val_loss, the retrained run, its test metrics
    runs/<run_name>-tuned/<UTC timestamp>/   the best config retrained and evaluated on test
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stockrnn import atomic, dataset, locking, render, runs, stages, tracking
from stockrnn.config import Config, validate_config
from stockrnn.errors import ConfigError
from stockrnn.options import RunOptions

log = logging.getLogger(__name__)
KEYS = {"look_back": ("window", "look_back"), "units": ("model", "units"),
        "dropout": ("model", "dropout"), "learning_rate": ("train", "learning_rate")}


def params_of(cfg: Config) -> dict:
    """The tuned keys' values in ``cfg`` (trial 0 enqueues these)."""
    return {"look_back": cfg.window.look_back, "units": cfg.model.units[0],
            "dropout": cfg.model.dropout, "learning_rate": cfg.train.learning_rate}


def with_params(cfg: Config, params: dict, run_name: str | None = None) -> Config:
    raw = cfg.to_dict()
    for key, value in params.items():
        section, field = KEYS[key]
        if key == "units":
            value = [int(value)] * len(cfg.model.units)
        raw[section][field] = value
    if run_name is not None:
        raw["paths"]["run_name"] = run_name
    return validate_config(raw, "<tune>")


def _suggest(trial, space: dict) -> dict:
    out = {}
    for key, (lo, hi) in space.items():
        if key in ("look_back", "units"):
            out[key] = trial.suggest_int(key, int(lo), int(hi))
        elif key == "learning_rate":
            out[key] = trial.suggest_float(key, float(lo), float(hi), log=True)
        else:
            out[key] = trial.suggest_float(key, float(lo), float(hi))
    return out


def tune(cfg: Config, trials: int | None = None, wait: float = 0.0,
         on_trial: Callable[[dict], None] = lambda row: None) -> dict:
    """Search, retrain the best, evaluate it on test once; returns (and writes) the summary."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("stockrnn tune needs Optuna: pip install 'stockrnn[tune]'") from None
    from stockrnn import training
    from stockrnn.backend import use

    cfg.require_single("tune")
    tracking.require(cfg)
    space = cfg.tune.space
    if not space:
        raise ConfigError("tune: no search space; give ranges such as tune.look_back: [10, 60], "
                          "tune.units: [8, 64], tune.dropout: [0.0, 0.3], "
                          "tune.learning_rate: [1.0e-4, 1.0e-2]")
    n_trials = trials or cfg.tune.trials
    use(cfg.backend)
    # tf.function "retracing" warnings: expected when one process trains many models
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), wait):
        frame = stages.load_frame(cfg, wait=wait)
        out = runs.stamped_dir(cfg.runs_dir / cfg.run_name, "tune-")
        rows: list[dict] = []
        default = {k: params_of(cfg)[k] for k in space}

        def objective(trial) -> float:
            params = _suggest(trial, space)
            tcfg = with_params(cfg, params)
            started = time.perf_counter()
            ds = dataset.build(frame, tcfg)
            with tempfile.TemporaryDirectory(dir=out, prefix=".trial-") as tmp:
                facts = training.fit(tcfg.model, tcfg.train, ds, runs.RunDir(tmp),
                                     progress="none", backend=tcfg.backend)
            row = {"trial": trial.number, **params_of(tcfg), "val_loss": facts["best_val_loss"],
                   "epochs": facts["epochs_run"],
                   "seconds": round(time.perf_counter() - started, 3), "state": "complete"}
            rows.append(row)
            on_trial(row)
            return facts["best_val_loss"]

        sampler = optuna.samplers.TPESampler(seed=cfg.train.seed)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.enqueue_trial(default)  # trial 0: the config as written
        study.optimize(objective, n_trials=n_trials, catch=())
        best = min(rows, key=lambda r: (r["val_loss"], r["trial"]))
        best_cfg = with_params(cfg, {k: best[k] for k in space}, f"{cfg.run_name}-tuned")
        atomic.write_text(out / "best.yaml", best_cfg.to_yaml())
        _write_trials(out, rows)

    log.info("best trial %d (val_loss %.5f); retraining it as %s and evaluating on test",
             best["trial"], best["val_loss"], best_cfg.run_name)
    run = stages.train(best_cfg, RunOptions(wait=wait, progress="none"), track=False)
    _, result = stages.evaluate(str(run.path), "test")
    summary = {"tune_dir": str(out), "trials": len(rows), "space": {k: list(v) for k, v in
                                                                    space.items()},
               "default": rows[0], "best": best, "results": rows, "best_yaml": str(out / "best.yaml"),
               "run_dir": str(run.path), "retrained_val_loss": run.meta()["best_val_loss"],
               "test": {"mase": result["model"]["mase"], "mae": result["model"]["mae"],
                        "directional_accuracy": result["model"]["directional_accuracy"],
                        "persistence_mae": result["baselines"]["persistence"]["mae"]}}
    atomic.write_json(out / "summary.json", summary)
    return tracking.log_tune(cfg, summary)  # a parent run, a child per trial and the best


def _write_trials(out: Path, rows: list[dict]) -> None:
    atomic.write_text(out / "trials.csv", render.to_csv(rows, render.TRIAL_COLUMNS))
    atomic.write_json(out / "trials.json", rows)
    for leftover in out.glob(".trial-*"):  # a trial dir left by a crash
        shutil.rmtree(leftover, ignore_errors=True)
