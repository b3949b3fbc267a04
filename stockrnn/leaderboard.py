"""``stockrnn compare``: a leaderboard of runs from their meta.json and metrics_test.json."""

from __future__ import annotations

import json

from stockrnn import runs
from stockrnn.errors import RunError

COLUMNS = ("run", "model", "ticker", "look_back", "epochs", "test_mae", "mase",
           "directional_accuracy", "train_seconds")


def collect(refs, runs_dir=None) -> list[dict]:
    """Rows for the runs named by ``refs`` (run dirs, run names, or batch dirs: every run of
    the batch), or for every complete run under the runs folder."""
    if refs:
        found = [run for r in refs for run in _expand(r, runs_dir)]
    else:
        found = [r for r in runs.list_runs(runs.runs_root(runs_dir)) if r.status == "complete"]
    if not found:
        raise RunError(f"no complete runs to compare in {runs.runs_root(runs_dir)}/")
    rows = []
    for run in found:
        meta = run.meta()
        row = {"run": str(run.path), "model": meta.get("model_type"), "ticker": meta.get("ticker"),
               "look_back": None, "epochs": meta.get("epochs_run"), "test_mae": None,
               "mase": None, "directional_accuracy": None,
               "train_seconds": meta.get("train_seconds")}
        try:
            import yaml

            row["look_back"] = yaml.safe_load(run.config.read_text())["window"]["look_back"]
        except (OSError, KeyError, TypeError, ValueError):
            pass
        try:
            m = json.loads((run.path / "metrics_test.json").read_text())["model"]
            row.update(test_mae=m["mae"], mase=m["mase"],
                       directional_accuracy=m["directional_accuracy"])
        except (OSError, ValueError, KeyError):
            pass  # not evaluated yet: shown as '-'
        rows.append(row)
    rows.sort(key=lambda r: (r["mase"] is None, r["mase"] or 0.0))
    return rows


def _expand(ref: str, runs_dir) -> list[runs.RunDir]:
    from stockrnn import batch

    if not batch.is_batch_dir(ref):
        return [runs.resolve(ref, runs_dir)]
    rows = batch.read_summary(ref).get("tickers", [])
    found = [_locate(ref, r["run_dir"]) for r in rows
             if r.get("status") == "ok" and r.get("run_dir")]
    if not found:
        raise RunError(f"{ref}: the batch has no successful runs to compare")
    return found


def _locate(batch_dir: str, run_dir: str) -> runs.RunDir:
    """A batch member's run dir as written (relative to where the batch ran), else found beside
    the batch: ``<runs>/<name>/batch-X`` -> ``<runs>/<name>-<TICKER>/<stamp>``."""
    from pathlib import Path

    path = Path(run_dir)
    if not path.is_dir():
        path = Path(batch_dir).resolve().parent.parent.joinpath(*path.parts[-2:])
    return runs.RunDir(path)


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    out = [f"{'model':10s} {'ticker':6s} {'look_back':>9s} {'epochs':>6s} {'test MAE':>9s} "
           f"{'MASE':>7s} {'dir.acc':>7s} {'train s':>7s}  run"]
    for r in rows:
        out.append(f"{r['model'] or '-':10s} {r['ticker'] or '-':6s} {f(r['look_back'], 'd'):>9s} "
                   f"{f(r['epochs'], 'd'):>6s} {f(r['test_mae'], '.4f'):>9s} "
                   f"{f(r['mase'], '.4f'):>7s} {f(r['directional_accuracy'], '.1%'):>7s} "
                   f"{f(r['train_seconds'], '.1f'):>7s}  {r['run']}")
    if any(r["mase"] is None for r in rows):
        out.append("('-': run `stockrnn evaluate --run RUN` to score it)")
    return "\n".join(out) + "\n"
