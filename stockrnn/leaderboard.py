"""``stockrnn compare``: a leaderboard of runs from their meta.json and metrics_test.json,
each beside its best baseline (the lowest MAE on its own test points: persistence, drift,
moving average, AutoARIMA or AutoETS)."""

from __future__ import annotations

import json
from pathlib import Path

from stockrnn import runs
from stockrnn.config import runs_dir as runs_root
from stockrnn.errors import RunError
from stockrnn.metrics import best_baseline


def collect(refs, runs_dir=None) -> list[dict]:
    """Rows for the runs named by ``refs`` (run dirs, run names, batch dirs: every run of the
    batch, backtest dirs: every fold's model), or for every complete run under the runs
    folder."""
    if refs:
        found = [run for r in refs for run in _expand(r, runs_dir)]
    else:
        found = [r for r in runs.list_runs(runs_root(runs_dir)) if r.status == "complete"]
    if not found:
        raise RunError(f"no complete runs to compare in {runs_root(runs_dir)}/")
    rows = []
    for run in found:
        meta = run.meta()
        row = {"run": str(run.path), "model": meta.get("model_type"), "ticker": meta.get("ticker"),
               "look_back": None, "epochs": meta.get("epochs_run"), "test_mae": None,
               "mase": None, "directional_accuracy": None,
               "train_seconds": meta.get("train_seconds"), "best_baseline": None,
               "best_baseline_mase": None}
        try:
            import yaml

            row["look_back"] = yaml.safe_load(run.config.read_text())["window"]["look_back"]
        except (OSError, KeyError, TypeError, ValueError):
            pass
        try:
            metrics = json.loads((run.path / "metrics_test.json").read_text())
            m = metrics["model"]
            row.update(test_mae=m["mae"], mase=m["mase"],
                       directional_accuracy=m["directional_accuracy"])
            base = metrics.get("baselines") or {}
            best = best_baseline(base, metrics.get("best_baseline"))
            if best is not None:
                row.update(best_baseline=best, best_baseline_mase=base[best].get("mase"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # not evaluated yet: shown as '-'
        rows.append(row)
    rows.sort(key=lambda r: (r["mase"] is None, r["mase"] or 0.0))
    return rows


def _expand(ref: str, runs_dir) -> list[runs.RunDir]:
    from stockrnn import batch

    if not batch.is_batch_dir(ref):
        return [runs.resolve(ref, runs_dir)]
    summary = batch.read_summary(ref)
    if "folds" in summary or isinstance(summary.get("tickers"), dict):  # a backtest
        per = summary["tickers"].values() if "tickers" in summary else [summary]
        return [runs.RunDir(p) for p in sorted({str(p) for bt in per for p in
                                                Path(bt["backtest_dir"]).glob("folds/*")
                                                if (p / "meta.json").is_file()})]
    rows = summary.get("tickers", [])
    found = [_locate(ref, r["run_dir"]) for r in rows
             if r.get("status") == "ok" and r.get("run_dir")]
    if not found:
        raise RunError(f"{ref}: the batch has no successful runs to compare")
    return found


def _locate(batch_dir: str, run_dir: str) -> runs.RunDir:
    """A batch member's run dir as written (relative to where the batch ran), else found beside
    the batch: ``<runs>/<name>/batch-X`` -> ``<runs>/<name>-<TICKER>/<stamp>``."""
    path = Path(run_dir)
    if not path.is_dir():
        path = Path(batch_dir).resolve().parent.parent.joinpath(*path.parts[-2:])
    return runs.RunDir(path)
