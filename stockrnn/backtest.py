"""``stockrnn backtest``: walk-forward evaluation over many forecast origins, a significance
test against persistence, and what the forecasts would have earned.

The rows after a minimum training length (``backtest.min_train``; default the split's
train+val fractions of the history) are cut into ``folds`` consecutive test folds. A fold's
model is trained only on rows before the fold's first target: the last part of those rows
(the split's val share) is its validation split, for early stopping and the conformal
intervals, and every scaler and statistic is fitted on its training rows only. It then
forecasts every point of the fold one origin at a time from real past data, without
retraining. Each fold's rows are cut at its last target, so nothing after a fold can reach
its forecasts.

Refit policy: ``always`` trains a model per fold, ``never`` once before the first fold,
``every:K`` every K folds (a fold between refits uses the last model and its scaler).
Window: ``expanding`` trains on all earlier rows, ``rolling:L`` on the last L rows only.
A model and the folds it serves are one job; jobs run like a batch's tickers (``jobs``).

    runs/<run_name>/backtest-<UTC timestamp>/
        config.yaml  summary.json  folds.csv  predictions.csv
        plots/fold_mase.png  plots/cumulative_error.png  plots/equity.png
        folds/<k>/        the model trained for fold k: an ordinary run directory (its own
                          plots/ only with ``--plots``: the backtest's plots cover the folds)
    (a multi-ticker config: tickers/<TICKER>/ holds these per ticker; summary.json all)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from stockrnn import (
    atomic,
    classical,
    dataset,
    jobs,
    locking,
    render,
    runs,
    significance,
    stages,
    tickers,
)
from stockrnn.config import Config, refit_every, rolling_rows, validate_config
from stockrnn.errors import ConfigError, StockRNNError
from stockrnn.options import DEFAULT, RunOptions

log = logging.getLogger(__name__)
LEVELS = ("0.8", "0.95")
# the baselines a backtest scores and writes; the classical ones when statsforecast is installed
# and they fit (on each model's training rows, like the model)
PREDICTION_BASES = ("persistence", "drift", "moving_average", *classical.NAMES)


@dataclasses.dataclass(frozen=True)
class Fold:
    """Row positions (in the ticker's selected rows) of one test fold and its model's data."""

    index: int
    start: int        # first row its model trains on
    val_start: int    # first validation target row of its model
    test_start: int   # first target row of the fold
    test_end: int     # one past its last target row
    model_fold: int   # the fold whose model forecasts it (itself when it refits)


# --------------------------------------------------------------------------- the plan


def rows_for_training(cfg: Config) -> int:
    """The fewest rows one fold's model can train on: a training window with its inputs
    inside the training part, and one validation target window."""
    w, s = cfg.window, cfg.split
    from stockrnn.features.covariates import warm_up

    first_valid = warm_up(cfg)
    sample, span = first_valid + w.look_back + w.foresight + w.horizon, w.foresight + w.horizon
    share = s.val / (s.train + s.val)
    rows = sample + span
    while rows - _val_rows(rows, share, span) < sample:
        rows += 1
    return rows


def _val_rows(train_rows: int, share: float, span: int) -> int:
    return max(span, int(round(train_rows * share)))


def plan(n_rows: int, cfg: Config) -> list[Fold]:
    """The folds of a backtest over ``n_rows`` rows; ConfigError (exit 2) saying how many rows
    are needed when the data, the folds, the window or the refit policy do not fit."""
    w, s, bt = cfg.window, cfg.split, cfg.backtest
    every, rolling = refit_every(bt.refit), rolling_rows(bt.window)
    span = w.foresight + w.horizon
    need = rows_for_training(cfg)
    where = (f"look_back={w.look_back}, foresight={w.foresight}, horizon={w.horizon}")
    if rolling is not None and rolling < need:
        raise ConfigError(f"backtest.window rolling:{rolling} is shorter than one training "
                          f"window and its validation ({where}): need at least {need} rows")
    min_train = bt.min_train or int(round(n_rows * (s.train + s.val)))
    if min_train < need:
        raise ConfigError(f"the minimum training length ({min_train} rows) is too short for "
                          f"one training window and its validation ({where}): need at least "
                          f"{need} rows before the first fold")
    test_rows = n_rows - min_train
    if test_rows < bt.folds * span:
        raise ConfigError(
            f"{n_rows} rows leave {max(test_rows, 0)} rows after the minimum training length "
            f"({min_train}): too few for {bt.folds} folds of at least {span} rows each (one "
            f"target window); need at least {min_train + bt.folds * span} rows, or fewer folds")
    size = test_rows // bt.folds
    share = s.val / (s.train + s.val)
    folds: list[Fold] = []
    for k in range(bt.folds):
        t0 = min_train + k * size
        t1 = t0 + size if k < bt.folds - 1 else n_rows
        m = k if every == 1 else (0 if every is None else k - k % every)
        if m == k:
            start = 0 if rolling is None else max(0, t0 - rolling)
            val_start = t0 - _val_rows(t0 - start, share, span)
        else:
            start, val_start = folds[m].start, folds[m].val_start
        folds.append(Fold(k, start, val_start, t0, t1, m))
    return folds


# --------------------------------------------------------------------------- one model's job


@dataclasses.dataclass(frozen=True)
class Job:
    """One model and the folds it forecasts (picklable for worker processes and Ray)."""

    config: dict
    frame: pd.DataFrame
    folds: tuple[Fold, ...]
    out_dir: str


def fold_dataset(cfg: Config, frame: pd.DataFrame, model_fold: Fold, fold: Fold,
                 transform=None) -> dataset.Dataset:
    """The windows of ``fold`` for the model of ``model_fold``: rows from the model's first
    training row to the fold's last target (nothing later), its train/val split, and the
    fold's points as the test split."""
    m = model_fold
    bounds = {"train": (0, m.val_start - m.start), "val": (m.val_start - m.start,
                                                          m.test_start - m.start),
              "test": (fold.test_start - m.start, fold.test_end - m.start)}
    return dataset.build(frame.iloc[m.start:fold.test_end], cfg, bounds, transform)


def run_job(job: Job, opts: RunOptions) -> list[dict]:
    """Train the job's model as an ordinary run in ``folds/<k>/`` and forecast each of its
    folds; returns per fold the forecasts (see ``evaluation.forecasts``) and facts."""
    from stockrnn import evaluation, training
    from stockrnn.backend import use

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing between folds
    cfg = validate_config(job.config, "<backtest>")
    use(cfg.backend)
    if opts.threads:
        jobs.tf_threads(cfg.backend, opts.threads)
    m = job.folds[0]
    ds = fold_dataset(cfg, job.frame, m, m)
    run = runs.RunDir(Path(job.out_dir) / "folds" / f"{m.index:02d}")
    run.path.mkdir(parents=True, exist_ok=False)
    started = time.perf_counter()
    stages.start_run(run, cfg, ds, backtest_fold=m.index)
    stages.fit_run(run, cfg, ds, opts.replace(resume=False, progress="none"))
    model = training.load_model(run.model)
    quantiles = evaluation.load_quantiles(run)
    out = []
    for f in job.folds:
        fds = ds if f is m else fold_dataset(cfg, job.frame, m, f, ds.transform)
        fc = evaluation.forecasts(model, fds, "test", quantiles)
        if f is m:  # the fold run's own metrics_test.json, for evaluate and compare
            evaluation.write_scores(run, "test", fc,
                                    evaluation.member_forecasts(model, fds, "test"),
                                    plots=opts.draw_plots)
        out.append({"fold": f.index, "run_dir": str(run.path),
                    "train_rows": m.test_start - m.start, "forecasts": fc, **jobs.where()})
    meta = run.meta()
    log.info("%s fold %d: trained on %d rows, %d epochs (%.1fs)", cfg.data.ticker, m.index,
             m.test_start - m.start, meta["epochs_run"], time.perf_counter() - started)
    return out


# --------------------------------------------------------------------------- scoring


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The folds' forecasts as one set; a baseline some fold lacks is left out (with a note),
    so every pooled row is scored on the same points."""
    notes = [n for p in parts for n in p.get("notes", ())]
    out = {}
    for k in parts[0]:
        if k == "notes":
            continue
        if all(k in p for p in parts):
            out[k] = np.concatenate([p[k] for p in parts])
        else:
            notes.append(f"{k} left out of the pooled results: some folds have no forecasts "
                         "from it")
    extra = [k for p in parts for k in p if k not in parts[0] and k != "notes"]
    notes += [f"{k} left out of the pooled results: some folds have no forecasts from it"
              for k in dict.fromkeys(extra)]
    out["notes"] = tuple(dict.fromkeys(notes))
    return out


def _dm(fc: dict[str, np.ndarray], reference: str = "persistence"):
    """Diebold-Mariano on each origin's mean absolute error over the horizon steps (a loss
    differential that overlaps for horizon - 1 origins: HAC variance with horizon - 1 lags)."""
    err_model = np.abs(fc["actual"] - fc["model"]).mean(axis=1)
    err_ref = np.abs(fc["actual"] - fc[reference]).mean(axis=1)
    return significance.diebold_mariano(err_model, err_ref, horizon=fc["actual"].shape[1])


def fold_row(fold: Fold, result: dict) -> dict:
    from stockrnn import evaluation

    sc = evaluation.score(result["forecasts"])
    m = sc["model"]
    return {"fold": fold.index, "first": sc["first"], "last": sc["last"], "n": sc["n"],
            "train_rows": result["train_rows"], "run_dir": result["run_dir"],
            "model": {"mae": m["mae"], "mase": m["mase"],
                      "directional_accuracy": m["directional_accuracy"]},
            "persistence": {"mae": sc["baselines"]["persistence"]["mae"]},
            **{b: {"mase": sc["baselines"][b]["mase"]} for b in PREDICTION_BASES[1:]
               if b in sc["baselines"]},
            "best_baseline": sc["best_baseline"],
            "coverage": {lv: sc["intervals"][lv]["coverage"] for lv in LEVELS},
            "host": result.get("host"), "node": result.get("node")}


def pooled(fc: dict[str, np.ndarray]) -> dict:
    from stockrnn import evaluation

    sc = evaluation.score(fc)
    dm = _dm(fc)
    keep = ("mae", "rmse", "mape", "mase", "directional_accuracy", "direction_p_value")
    model = {k: sc["model"][k] for k in keep}
    model.update(dm_statistic=_finite(dm.statistic), dm_p_value=_finite(dm.p_value))
    best = sc["best_baseline"]
    dm_best = dm if best == "persistence" else _dm(fc, best)
    return {"n": sc["n"], "horizon": sc["horizon"], "first": sc["first"], "last": sc["last"],
            "model": model,
            "baselines": {b: {k: sc["baselines"][b][k] for k in keep} for b in PREDICTION_BASES
                          if b in sc["baselines"]},
            "intervals": {lv: {"coverage": sc["intervals"][lv]["coverage"]} for lv in LEVELS},
            "verdict": significance.verdict(dm),
            "best_baseline": best,
            "versus_best": {"dm_statistic": _finite(dm_best.statistic),
                            "dm_p_value": _finite(dm_best.p_value),
                            "verdict": significance.verdict(dm_best, reference=best)},
            "notes": sc["notes"]}


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def trading_result(fc: dict[str, np.ndarray], cfg: Config) -> dict:
    """The sign strategy on the one-step forecasts, the same strategy driven by the drift
    baseline, and buy-and-hold, on the same days (gross and net of costs)."""
    from stockrnn import trading

    bt = cfg.backtest
    out = {"cost_bps": bt.cost_bps, "threshold": bt.threshold, "short": bt.short}
    if cfg.window.foresight != 0:
        return {**out, "note": "not evaluated: window.foresight > 0, so no forecast is of the "
                               "next bar"}
    ppy = trading.periods_per_year(cfg.data.interval)
    last, actual = fc["last"], fc["actual"][:, 0]

    def strategy(forecast):
        r = trading.evaluate_strategy(last, forecast, actual, bt.threshold, bt.short,
                                      bt.cost_bps, ppy)
        return r, {"gross": r["gross"], "net": r["net"]}

    model_raw, out["strategy"] = strategy(fc["model"][:, 0])
    drift_raw, out["drift_strategy"] = strategy(fc["drift"][:, 0])
    hold = trading.buy_and_hold(last, actual, ppy, bt.cost_bps)
    out["buy_and_hold"] = {"gross": hold["gross"], "net": hold["net"]}
    out["periods_per_year"] = ppy
    out["_curves"] = {"strategy (net)": model_raw["equity_net"],
                      "strategy (gross)": model_raw["equity_gross"],
                      "drift strategy (net)": drift_raw["equity_net"],
                      "buy and hold (net)": hold["equity_net"]}
    return out


# --------------------------------------------------------------------------- files


def predictions_frame(folds: list[Fold], results: list[dict]) -> pd.DataFrame:
    """One row per test point and step: the long frame every metric and plot can read."""
    frames = []
    for fold, res in zip(folds, results, strict=True):
        fc = res["forecasts"]
        n, h = fc["actual"].shape
        cols = {"date": pd.DatetimeIndex(fc["step_dates"].ravel()).strftime("%Y-%m-%d"),
                "origin": np.repeat(pd.DatetimeIndex(fc["origins"]).strftime("%Y-%m-%d"), h),
                "fold": fold.index, "step": np.tile(np.arange(1, h + 1), n),
                "actual": fc["actual"].ravel(), "model": fc["model"].ravel()}
        for lv in (80, 95):
            cols[f"lower_{lv}"] = fc[f"lower_{lv}"].ravel()
            cols[f"upper_{lv}"] = fc[f"upper_{lv}"].ravel()
        for b in PREDICTION_BASES:
            if b in fc:  # a classical baseline left out of a fold: empty there
                cols[b] = fc[b].ravel()
        frames.append(pd.DataFrame(cols))
    out = pd.concat(frames, ignore_index=True)
    order = [c for c in out.columns if c not in PREDICTION_BASES]
    return out[order + [b for b in PREDICTION_BASES if b in out.columns]]


def _plots(out: Path, cfg: Config, folds_rows: list[dict], fc, trading: dict) -> None:
    from stockrnn import plotting

    name = f"{cfg.model.type} on {cfg.data.ticker}"
    labels = [pd.Timestamp(r["first"]) for r in folds_rows]
    series = {"model": [r["model"]["mase"] for r in folds_rows]}
    for b in PREDICTION_BASES[1:]:
        if any(b in r for r in folds_rows):
            label = classical.LABELS.get(b, b.replace("_", " "))
            series[label] = [(r.get(b) or {}).get("mase") for r in folds_rows]
    plotting.fold_mase_plot(labels, series, out / "plots" / "fold_mase.png",
                            f"{name}: test MASE per fold")
    dates = pd.DatetimeIndex(fc["dates"])
    plotting.cumulative_error_plot(dates, np.abs(fc["actual"][:, 0] - fc["model"][:, 0]),
                                   np.abs(fc["actual"][:, 0] - fc["persistence"][:, 0]),
                                   out / "plots" / "cumulative_error.png",
                                   f"{name}: cumulative |error| minus persistence's")
    if "_curves" in trading:
        plotting.equity_plot(dates, trading["_curves"], out / "plots" / "equity.png",
                             f"{name}: growth of 1 (cost {cfg.backtest.cost_bps:g} bps)")


# --------------------------------------------------------------------------- one ticker


def backtest_ticker(cfg: Config, out: Path, opts: RunOptions) -> dict:
    """Backtest one ticker's config into ``out``; returns its summary object."""
    started = time.perf_counter()
    stages.fetch(cfg, allow_stale=True, wait=opts.wait)
    frame = dataset.select(stages.load_frame(cfg, opts.wait), cfg)
    folds = plan(len(frame), cfg)
    groups: dict[int, list[Fold]] = {}
    for f in folds:
        groups.setdefault(f.model_fold, []).append(f)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "config.yaml", cfg.to_yaml())
    job_list = [Job(cfg.to_dict(), frame, tuple(g), str(out)) for g in groups.values()]
    job_opts = jobs.plan(opts, len(job_list))
    log.info("%s: %d folds of %d points after %d training rows, refit %s, window %s, "
             "%d model(s), %d job(s)", cfg.data.ticker, len(folds),
             folds[0].test_end - folds[0].test_start, folds[0].test_start, cfg.backtest.refit,
             cfg.backtest.window, len(job_list), job_opts.jobs)
    done = jobs.run(run_job, job_list, job_opts, shared=(out,), backend=cfg.backend)
    failed = [r.error for r in done if isinstance(r, jobs.JobFailed)]
    if failed:
        raise StockRNNError(f"{cfg.data.ticker}: a backtest job failed: {failed[0]}")
    by_fold = {r["fold"]: r for group in done for r in group}
    results = [by_fold[f.index] for f in folds]
    fc = _concat([r["forecasts"] for r in results])
    folds_rows = [fold_row(f, r) for f, r in zip(folds, results, strict=True)]
    trading = trading_result(fc, cfg)
    summary = {"backtest_dir": str(out), "config": cfg.run_name, "ticker": cfg.data.ticker,
               "refit": cfg.backtest.refit, "window": cfg.backtest.window,
               "folds": folds_rows, "pooled": pooled(fc),
               "trading": {k: v for k, v in trading.items() if not k.startswith("_")},
               "seconds": round(time.perf_counter() - started, 3)}
    _plots(out, cfg, folds_rows, fc, trading)
    atomic.write_text(out / "predictions.csv",
                      predictions_frame(folds, results).to_csv(index=False, float_format="%.10g"))
    atomic.write_text(out / "folds.csv", render.to_csv(
        [render.fold_csv_row(r) for r in folds_rows], render.FOLD_COLUMNS))
    atomic.write_json(out / "summary.json", summary)
    return summary


def backtest(cfg: Config, opts: RunOptions = DEFAULT) -> dict:
    """Backtest the config (every ticker of a multi-ticker config) into a new
    ``runs/<run_name>/backtest-<UTC timestamp>/``; returns the summary (also summary.json).
    The fold runs draw their own plots only when ``opts.plots`` is True.
    Logs it to MLflow when the config's tracking asks for it (a parent, a child per fold)."""
    from stockrnn import tracking

    tracking.require(cfg)
    opts = opts.replace(plots=bool(opts.plots))  # the fold runs' plots: only on request
    with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name), opts.wait):
        out = runs.stamped_dir(cfg.runs_dir / cfg.run_name, "backtest-")
        if not cfg.is_batch:
            return tracking.log_backtest(cfg, backtest_ticker(cfg, out, opts))
        started = time.perf_counter()
        atomic.write_text(out / "config.yaml", cfg.to_yaml())
        per = {t: backtest_ticker(cfg.for_ticker(t), out / "tickers" / tickers.run_part(t), opts)
               for t in tickers.listed(cfg)}
        summary = {"backtest_dir": str(out), "config": cfg.run_name, "tickers": per,
                   "seconds": round(time.perf_counter() - started, 3)}
        atomic.write_json(out / "summary.json", summary)
        return tracking.log_backtest(cfg, summary)


def pooled_mases(summary: dict) -> dict[str, float]:
    """The pooled model MASE of each ticker of a backtest summary (for the quality gate)."""
    per = summary.get("tickers") or {summary["ticker"]: summary}
    return {t: s["pooled"]["model"]["mase"] for t, s in per.items()}
