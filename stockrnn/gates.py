"""Quality gates and exit rules: when a finished command still exits non-zero.

The CLI calls these after it has printed and written everything, so a failed gate never loses
a result.
"""

from __future__ import annotations

from stockrnn.errors import QualityGateError, StockRNNError


def check_mase(result: dict, max_mase: float | None) -> None:
    """QualityGateError (exit 3) when the model's MASE in an evaluation ``result`` is above
    ``max_mase`` (or not a number)."""
    mase = result["model"]["mase"]
    if max_mase is not None and not mase <= max_mase:
        raise QualityGateError(f"quality gate failed: model MASE {mase:.4f} > --max-mase "
                               f"{max_mase:g} on the {result['split']} split "
                               f"(metrics written to {result['run']}/metrics_{result['split']}.json)")


def batch_outcome(summary: dict, allow_failures: int,
                  max_mase: float | None) -> StockRNNError | None:
    """The error a batch exits with, or None: more than ``allow_failures`` failed tickers is a
    runtime error (exit 1), and otherwise a ticker that ran with a test MASE above ``max_mase``
    fails the quality gate (exit 3)."""
    rows, failed = summary["tickers"], summary["failed"]
    if len(failed) > allow_failures:
        return StockRNNError(f"{len(failed)} of {len(rows)} tickers failed: {', '.join(failed)} "
                             f"(--allow-failures {allow_failures}); see "
                             f"{summary['batch_dir']}/summary.json")
    above = [r["ticker"] for r in rows if r["status"] == "ok" and max_mase is not None
             and not r["mase"] <= max_mase]
    if above:
        return QualityGateError(f"quality gate failed: test MASE above --max-mase {max_mase:g} "
                                f"for {', '.join(above)} (see {summary['batch_dir']})")
    return None


def check_backtest(mases: dict[str, float], max_mase: float | None, where: str) -> None:
    """QualityGateError (exit 3) when a ticker's pooled backtest MASE is above ``max_mase``."""
    if max_mase is None:
        return
    above = {t: m for t, m in mases.items() if not m <= max_mase}
    if above:
        worst = ", ".join(f"{t} {m:.4f}" for t, m in above.items())
        raise QualityGateError(f"quality gate failed: pooled backtest MASE above --max-mase "
                               f"{max_mase:g}: {worst} (see {where}/summary.json)")
