"""Matplotlib (Agg) plots: data in, PNG path out; never ``plt.show()``. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stockrnn import atomic


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """The figure as a PNG at ``path``, drawn once: matplotlib's default margins (which fit
    these plots' labels) instead of a layout pass (``tight_layout`` measures every text first,
    a third of a plot's time), and fast PNG compression (zlib level 1: files about 10% larger,
    encoded several times faster). Plots are a large part of a small run's time (and of a
    batch's or a backtest's), so they are kept cheap."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                                    pil_kwargs={"compress_level": 1}))
    plt.close(fig)
    return path


def loss_plot(history: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Train and val loss per epoch; for an ensemble's history (``<member>/val_loss``
    columns) each member's val loss."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = np.arange(1, len(history) + 1)
    members = [c.removesuffix("/val_loss") for c in history.columns if c.endswith("/val_loss")]
    for name in members:
        ax.plot(epochs, history[f"{name}/val_loss"], label=f"{name} val loss")
    if "loss" in history:
        ax.plot(epochs, history["loss"], label="train loss")
    if "val_loss" in history:
        ax.plot(epochs, history["val_loss"], label="val loss")
        best = int(np.nanargmin(history["val_loss"].to_numpy()))
        ax.axvline(best + 1, color="grey", ls=":", label=f"best epoch {best + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units)")
    ax.set_title(title or "training")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def predictions_plot(dates, actual, model, persistence, path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(dates, actual, label="actual", color="black", lw=1.2)
    ax.plot(dates, persistence, label="persistence (last value)", color="tab:grey", lw=0.9, ls="--")
    ax.plot(dates, model, label="model", color="tab:blue", lw=1.0)
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def residuals_plot(dates, residuals, path: Path, title: str) -> Path:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]})
    # one filled outline, not 40 bar patches: the same picture, a sixth less of the plot's time
    ax1.hist(residuals, bins=40, color="tab:blue", alpha=0.8, histtype="stepfilled")
    ax1.set_xlabel("actual - forecast (price)")
    ax1.set_title("residual histogram")
    ax2.plot(dates, residuals, lw=0.8)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_title("residuals over time")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.autofmt_xdate()
    return _save(fig, path)


def forecast_plot(history: pd.Series, forecast: pd.DataFrame, path: Path, title: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(history.index, history.to_numpy(), color="black", lw=1.1, label="history")
    d = forecast.index
    ax.fill_between(d, forecast["lower_95"], forecast["upper_95"], color="tab:blue", alpha=0.15,
                    label="95% interval")
    ax.fill_between(d, forecast["lower_80"], forecast["upper_80"], color="tab:blue", alpha=0.3,
                    label="80% interval")
    ax.plot(d, forecast["forecast"], color="tab:blue", marker="o", ms=3, label="forecast")
    ax.set_title(title)
    ax.set_ylabel("price")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def fold_mase_plot(fold_labels_or_dates, mase_by_model: dict[str, list[float | None]], path: Path,
                   title: str) -> Path:
    """MASE of each model per backtest fold, in fold order; below the 1.0 line beats persistence.

    ``None`` values (a fold a model has no score for) leave a gap.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = list(fold_labels_or_dates)
    for name, values in mase_by_model.items():
        y = np.array([np.nan if v is None else v for v in values], dtype="float64")
        ax.plot(x, y, marker="o", ms=3.5, lw=1.0, label=name)
    ax.axhline(1.0, color="black", lw=0.9, ls="--", label="persistence (MASE = 1)")
    ax.set_title(title)
    ax.set_xlabel("fold")
    ax.set_ylabel("MASE (model MAE / persistence MAE)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def cumulative_error_plot(dates, abs_err_model, abs_err_persistence, path: Path,
                          title: str) -> Path:
    """Running sum of |e_model| - |e_persistence|: below 0, the model has beaten "tomorrow = today"."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    gap = np.cumsum(np.abs(np.asarray(abs_err_model, dtype="float64"))
                    - np.abs(np.asarray(abs_err_persistence, dtype="float64")))
    ax.plot(dates, gap, color="tab:blue", lw=1.1, label="model - persistence")
    ax.fill_between(dates, gap, 0, where=gap <= 0, color="tab:green", alpha=0.2,
                    label="model ahead", interpolate=True)
    ax.fill_between(dates, gap, 0, where=gap > 0, color="tab:red", alpha=0.2,
                    label="persistence ahead", interpolate=True)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title(title)
    ax.set_ylabel("cumulative |error| difference (price)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def equity_plot(dates, curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Growth of 1 for each strategy (e.g. model net, model gross, buy-and-hold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, curve in curves.items():
        ax.plot(dates, np.asarray(curve, dtype="float64"), lw=1.1, label=name)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set_title(title)
    ax.set_ylabel("growth of 1")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)
