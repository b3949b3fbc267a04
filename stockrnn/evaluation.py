"""Evaluate a run on a split: model and baselines on exactly the same points, in price units.

Baselines: persistence (last observed value), drift (last value plus the training split's mean
change per bar, times the steps ahead), moving average (mean of the last ``look_back`` values),
and, with the ``stats`` extra, AutoARIMA and AutoETS on log prices (fitted on the training
rows only, parameters then fixed; see ``classical``). MASE = model MAE / persistence MAE on
the same points; the best baseline is the one with the lowest MAE on them. Intervals are
split-conformal on the validation split's log residuals, per horizon step; their coverage is
measured on the split.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from stockrnn import atomic, classical, metrics, plotting
from stockrnn.dataset import Dataset
from stockrnn.errors import RunError
from stockrnn.runs import RunDir

log = logging.getLogger(__name__)
LEVELS = (0.80, 0.95)
BASELINES = ("persistence", "drift", "moving_average")        # always there
ALL_BASELINES = BASELINES + classical.NAMES                    # the classical ones when available


def predict_split(model, ds: Dataset, split: str) -> np.ndarray:
    """Model forecasts in price units, shape (n, horizon)."""
    from stockrnn.training import predict

    y = predict(model, ds.splits[split].x)
    return ds.transform.invert(y, ds.last_prices(split))


def baselines_and_notes(ds: Dataset, split: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The baselines' (n, horizon) forecasts of a split in price units: ``BASELINES`` always,
    AutoARIMA and AutoETS when statsforecast is installed and they fit; notes on what was left
    out."""
    prices, train_end, anchors, steps = _classical_args(ds, split)
    last = prices[anchors]
    drift = (prices[train_end - 1] - prices[0]) / max(train_end - 1, 1)
    windows = np.lib.stride_tricks.sliding_window_view(prices, ds.look_back)
    moving = windows[anchors - ds.look_back + 1].mean(axis=1)
    h = ds.horizon
    out = {"persistence": np.repeat(last[:, None], h, axis=1),
           "drift": last[:, None] + drift * steps[None, :],
           "moving_average": np.repeat(moving[:, None], h, axis=1)}
    extra, notes = classical.forecasts(prices, train_end, anchors, steps)
    out.update(extra)
    return out, notes


def prefetch_baselines(ds: Dataset, split: str) -> bool:
    """Start the AutoARIMA and AutoETS forecasts of ``split`` in a child process, to be ready
    when ``baselines_and_notes`` asks for them (``classical.prefetch``)."""
    return classical.prefetch(*_classical_args(ds, split))


def _classical_args(ds: Dataset, split: str):
    """(every row's price, the training rows' end, the split's anchors, the bars ahead of an
    anchor each horizon step forecasts)."""
    return (ds.target_prices, ds.splits["train"].rows[1], ds.splits[split].anchors,
            1 + ds.foresight + np.arange(ds.horizon))


def present(fc: dict) -> list[str]:
    """The baselines ``fc`` (forecasts, or a metrics block's ``baselines``) has, in order."""
    return [b for b in ALL_BASELINES if b in fc]


def interval_quantiles(model, ds: Dataset) -> list[dict[str, float]]:
    """Per horizon step, the conformal quantile of |log(actual/forecast)| on the val split."""
    pred = predict_split(model, ds, "val")
    resid = np.abs(np.log(ds.actual_prices("val") / pred))
    return [{str(lv): metrics.conformal_quantile(resid[:, k], lv) for lv in LEVELS}
            for k in range(ds.horizon)]


def write_intervals(run: RunDir, model, ds: Dataset) -> None:
    """``intervals.json``: the conformal quantiles ``predict`` and ``evaluate`` widen by."""
    atomic.write_json(run.path / "intervals.json", {
        "method": "split-conformal on validation |log(actual/forecast)|, per horizon step",
        "quantiles": interval_quantiles(model, ds)})


def intervals(pred: np.ndarray, quantiles: list[dict[str, float]], level: float):
    q = np.array([qs[str(level)] for qs in quantiles])[None, : pred.shape[1]]
    return pred * np.exp(-q), pred * np.exp(q)


def forecasts(model, ds: Dataset, split: str, quantiles) -> dict[str, np.ndarray]:
    """Every forecast of a split, in price units: (n, horizon) arrays ``actual``, ``model``,
    the baselines, the interval bounds ``lower_80`` ... ``upper_95`` and ``step_dates`` (the
    date each step forecasts); (n,) arrays ``last`` (the price at each origin), ``origins``
    (each origin's date) and ``dates`` (each sample's first target date); ``notes`` (a
    tuple of strings) says which baselines were left out and why."""
    sp = ds.splits[split]
    rows = sp.anchors[:, None] + 1 + ds.foresight + np.arange(ds.horizon)[None, :]
    out = {"dates": np.asarray(ds.target_dates(split)), "last": ds.last_prices(split),
           "origins": np.asarray(ds.frame.index[sp.anchors]),
           "step_dates": np.asarray(ds.frame.index[rows.ravel()]).reshape(rows.shape),
           "actual": ds.actual_prices(split), "model": predict_split(model, ds, split)}
    base, notes = baselines_and_notes(ds, split)
    out.update(base)
    out["notes"] = tuple(notes)
    for lv in LEVELS:
        pct = int(round(lv * 100))
        out[f"lower_{pct}"], out[f"upper_{pct}"] = intervals(out["model"], quantiles, lv)
    return out


def score(fc: dict[str, np.ndarray]) -> dict:
    """Metrics of the model and every baseline on exactly the same points (MASE against the
    persistence MAE of those points), per horizon step when there are several, interval
    coverage, the best baseline (lowest MAE) and ``notes`` on baselines left out."""
    actual, last = fc["actual"], fc["last"]
    h = actual.shape[1]

    def block(forecast: np.ndarray) -> dict:
        return _block(actual, last, forecast)

    result = {"n": int(len(actual)), "horizon": h,
              "first": str(pd.Timestamp(fc["dates"][0]).date()),
              "last": str(pd.Timestamp(fc["dates"][-1]).date()),
              "model": block(fc["model"]),
              "baselines": {name: block(fc[name]) for name in present(fc)},
              "intervals": {}}
    result["best_baseline"] = metrics.best_baseline(result["baselines"])
    result["notes"] = list(dict.fromkeys(fc.get("notes", ())))
    for lv in LEVELS:
        pct = int(round(lv * 100))
        lo, hi = fc[f"lower_{pct}"], fc[f"upper_{pct}"]
        result["intervals"][str(lv)] = {
            "nominal": lv, "coverage": metrics.coverage(actual, lo, hi),
            "per_step": [metrics.coverage(actual[:, k], lo[:, k], hi[:, k]) for k in range(h)]}
    return result


def _block(actual: np.ndarray, last: np.ndarray, forecast: np.ndarray) -> dict:
    """The metrics of one forecast (n, horizon) of ``actual`` from ``last``: overall, and per
    step when the horizon is longer than 1."""
    h = actual.shape[1]
    steps = []
    for k in range(h):
        ref = metrics.mae(actual[:, k], last)
        steps.append(metrics.score(actual[:, k], forecast[:, k], last, ref))
    overall = metrics.score(actual.ravel(), forecast.ravel(), np.repeat(last, h),
                            metrics.mae(actual.ravel(), np.repeat(last, h)))
    if h > 1:
        overall["per_step"] = steps
    return overall


def member_forecasts(model, ds: Dataset, split: str) -> dict[str, np.ndarray]:
    """An ensemble's member networks' forecasts of a split in price units (name -> (n,
    horizon)); {} for any other model."""
    from stockrnn.models.ensemble import networks

    return {name: predict_split(net, ds, split) for name, net in networks(model).items()}


def member_scores(fc: dict[str, np.ndarray], members: dict[str, np.ndarray]) -> dict:
    """``members`` (each member's forecasts) scored on the points of ``fc`` like the model:
    ``{"members": {name: metrics}, "best_member": lowest MAE}``; {} without members."""
    if not members:
        return {}
    scored = {name: _block(fc["actual"], fc["last"], pred) for name, pred in members.items()}
    return {"members": scored, "best_member": min(scored, key=lambda n: scored[n]["mae"])}


def evaluate(run: RunDir, model, ds: Dataset, split: str, quantiles,
             plots: bool = True) -> dict:
    """Score a run on a split; writes metrics_<split>.json and (with ``plots``) the
    prediction plots. An ensemble's members are scored on the same points too (``members``,
    ``best_member``)."""
    return write_scores(run, split, forecasts(model, ds, split, quantiles),
                        member_forecasts(model, ds, split), plots=plots)


def write_scores(run: RunDir, split: str, fc: dict[str, np.ndarray],
                 members: dict[str, np.ndarray] | None = None, plots: bool = True) -> dict:
    """Score the forecasts ``fc`` of a run's split (see ``forecasts``) and an ensemble's
    ``members``' forecasts on the same points; writes metrics_<split>.json and (with
    ``plots``) the prediction plots, returns the metrics."""
    scored = score(fc)
    result = {"run": str(run.path), "split": split, **scored, **member_scores(fc, members or {})}
    atomic.write_json(run.path / f"metrics_{split}.json", result)
    if not plots:
        return result
    meta = run.meta()
    title = f"{meta.get('model_type', '')} on {meta.get('ticker', '')}, {split} split"
    dates = pd.DatetimeIndex(fc["dates"])
    plotting.predictions_plot(dates, fc["actual"][:, 0], fc["model"][:, 0],
                              fc["persistence"][:, 0], run.plots / f"predictions_{split}.png",
                              f"{title}: one step ahead (MASE {result['model']['mase']:.3f})")
    plotting.residuals_plot(dates, fc["actual"][:, 0] - fc["model"][:, 0],
                            run.plots / f"residuals_{split}.png", title)
    return result


def load_quantiles(run: RunDir) -> list[dict[str, float]]:
    try:
        return json.loads((run.path / "intervals.json").read_text())["quantiles"]
    except (OSError, ValueError, KeyError):
        raise RunError(f"{run.path}: intervals.json is missing or unreadable; retrain the run") from None
