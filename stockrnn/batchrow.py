"""One ticker's row in a batch summary (``summary.json`` / ``summary.csv``), for every way a
batch runs its tickers: per-ticker jobs, Ray tasks and the global model."""

from __future__ import annotations

from stockrnn.errors import StockRNNError
from stockrnn.render import BATCH_COLUMNS


def empty(ticker: str) -> dict:
    return {**dict.fromkeys(BATCH_COLUMNS), "ticker": ticker}


def ok(ticker: str, run_dir: str, result: dict, seconds: float | None = None) -> dict:
    """The row of a ticker whose run finished, from its test evaluation ``result``."""
    m, p = result["model"], result["baselines"]["persistence"]
    return {**empty(ticker), "status": "ok", "run_dir": run_dir, "mase": m["mase"],
            "directional_accuracy": m["directional_accuracy"], "test_mae": m["mae"],
            "persistence_mae": p["mae"], "seconds": seconds}


def failed(ticker: str, error: BaseException | str, run_dir: str | None = None,
           seconds: float | None = None) -> dict:
    """The row of a ticker that failed: a StockRNNError's message, else the exception's type
    and message."""
    if isinstance(error, BaseException):
        error = str(error) if isinstance(error, StockRNNError) else \
            f"{type(error).__name__}: {error}"
    return {**empty(ticker), "status": "failed", "error": error, "run_dir": run_dir,
            "seconds": seconds}
