"""Evaluate a run on a split: model and baselines on exactly the same points, in price units.

Baselines: persistence (last observed value), drift (last value plus the training split's mean
change per bar, times the steps ahead), moving average (mean of the last ``look_back`` values).
MASE = model MAE / persistence MAE on the same points. Intervals are split-conformal on the
validation split's log residuals, per horizon step; their coverage is measured on the split.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from stockrnn import atomic, metrics, plotting
from stockrnn.dataset import Dataset
from stockrnn.errors import RunError
from stockrnn.runs import RunDir

log = logging.getLogger(__name__)
LEVELS = (0.80, 0.95)
BASELINES = ("persistence", "drift", "moving_average")


def predict_split(model, ds: Dataset, split: str) -> np.ndarray:
    """Model forecasts in price units, shape (n, horizon)."""
    from stockrnn.training import predict

    y = predict(model, ds.splits[split].x)
    return ds.transform.invert(y, ds.last_prices(split))


def baselines(ds: Dataset, split: str) -> dict[str, np.ndarray]:
    prices = ds.target_prices
    anchors = ds.splits[split].anchors
    last = prices[anchors]
    steps = 1 + ds.foresight + np.arange(ds.horizon)           # bars ahead of the anchor
    train_end = ds.splits["train"].rows[1]
    drift = (prices[train_end - 1] - prices[0]) / max(train_end - 1, 1)
    windows = np.lib.stride_tricks.sliding_window_view(prices, ds.look_back)
    moving = windows[anchors - ds.look_back + 1].mean(axis=1)
    h = ds.horizon
    return {"persistence": np.repeat(last[:, None], h, axis=1),
            "drift": last[:, None] + drift * steps[None, :],
            "moving_average": np.repeat(moving[:, None], h, axis=1)}


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


def evaluate(run: RunDir, model, ds: Dataset, split: str, quantiles) -> dict:
    actual = ds.actual_prices(split)
    last = ds.last_prices(split)
    pred = predict_split(model, ds, split)
    base = baselines(ds, split)
    dates = ds.target_dates(split)
    h = ds.horizon

    def block(forecast: np.ndarray) -> dict:
        steps = []
        for k in range(h):
            ref = metrics.mae(actual[:, k], last)
            steps.append(metrics.score(actual[:, k], forecast[:, k], last, ref))
        overall = metrics.score(actual.ravel(), forecast.ravel(), np.repeat(last, h),
                                metrics.mae(actual.ravel(), np.repeat(last, h)))
        if h > 1:
            overall["per_step"] = steps
        return overall

    result = {
        "run": str(run.path), "split": split, "n": int(len(actual)), "horizon": h,
        "first": str(dates[0].date()), "last": str(dates[-1].date()),
        "model": block(pred),
        "baselines": {name: block(b) for name, b in base.items()},
        "intervals": {},
    }
    for lv in LEVELS:
        lo, hi = intervals(pred, quantiles, lv)
        result["intervals"][str(lv)] = {
            "nominal": lv, "coverage": metrics.coverage(actual, lo, hi),
            "per_step": [metrics.coverage(actual[:, k], lo[:, k], hi[:, k]) for k in range(h)]}
    atomic.write_json(run.path / f"metrics_{split}.json", result)
    title = f"{run.meta().get('model_type', '')} on {run.meta().get('ticker', '')}, {split} split"
    plotting.predictions_plot(dates, actual[:, 0], pred[:, 0], base["persistence"][:, 0],
                              run.plots / f"predictions_{split}.png",
                              f"{title}: one step ahead (MASE {result['model']['mase']:.3f})")
    plotting.residuals_plot(dates, actual[:, 0] - pred[:, 0], run.plots / f"residuals_{split}.png",
                            title)
    return result


def load_quantiles(run: RunDir) -> list[dict[str, float]]:
    try:
        return json.loads((run.path / "intervals.json").read_text())["quantiles"]
    except (OSError, ValueError, KeyError):
        raise RunError(f"{run.path}: intervals.json is missing or unreadable; retrain the run") from None
