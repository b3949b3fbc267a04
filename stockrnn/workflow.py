"""``stockrnn run``: fetch -> prepare -> train -> evaluate (test) -> predict, under one lock.

Returns a summary (stages with durations, run dir, metrics, forecast) for the one-line-per-stage
output and for ``run --json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from stockrnn import locking, pipeline, runs
from stockrnn.config import Config


def run_all(cfg: Config, *, resume: bool = False, allow_stale: bool = False,
            steps: int | None = None, wait: float = 0.0, progress: str = "lines",
            keep: int | None = None, max_mase: float | None = None,
            on_stage: Callable[[str, str], None] = lambda name, line: None,
            summary: dict | None = None) -> dict:
    """Run the pipeline; returns the summary. Pass ``summary`` (a dict) to have it filled in
    place, so the stages that finished are known also when a later stage raises."""
    cfg.require_single("run_all")
    summary = {} if summary is None else summary
    summary.update(config=cfg.run_name, stages=[], run_dir=None)

    def stage(name: str, line: str, started: float) -> None:
        summary["stages"].append({"name": name, "seconds": round(time.perf_counter() - started, 3),
                                  "summary": line})
        on_stage(name, line)

    with locking.hold(pipeline.run_lock(cfg), wait):
        t = time.perf_counter()
        stage("fetch", pipeline.fetch_for(cfg, allow_stale, wait), t)

        t = time.perf_counter()
        ds, path = pipeline.prepare(cfg, wait=wait)
        n = {k: len(v) for k, v in ds.splits.items()}
        stage("prepare", f"{n['train']}/{n['val']}/{n['test']} train/val/test windows -> {path}", t)

        t = time.perf_counter()
        run = pipeline.train(cfg, resume=resume, wait=wait, progress=progress, lock=False)
        summary["run_dir"] = str(run.path)
        meta = run.meta()
        stage("train", f"{meta['model_type']}: {meta['epochs_run']} epochs, "
              f"{runs.best_line(meta)} ({meta['train_seconds']:.1f}s)", t)

        t = time.perf_counter()
        _, result = pipeline.evaluate(str(run.path), "test")
        m, p = result["model"], result["baselines"]["persistence"]
        acc = m["directional_accuracy"]
        summary["metrics"] = {"split": "test", "n": result["n"], "model": m, "persistence": p}
        stage("evaluate", f"test MASE {m['mase']:.4f} (MAE {m['mae']:.4f} vs persistence "
              f"{p['mae']:.4f}), direction {'-' if acc is None else f'{acc:.1%}'}", t)

        t = time.perf_counter()
        _, fc = pipeline.predict(str(run.path), steps, None, allow_stale=True)
        first = fc.table.iloc[0]
        summary["forecast"] = {"as_of": str(fc.as_of.date()), "rows": [
            {"date": str(d.date()), **{c: float(r[c]) for c in
                                       ("forecast", "lower_80", "upper_80", "lower_95", "upper_95")}}
            for d, r in fc.table.iterrows()]}
        stage("predict", f"{fc.table.index[0].date()} {first['forecast']:.4f} "
              f"[80%: {first['lower_80']:.4f}..{first['upper_80']:.4f}] ({len(fc.table)} steps, "
              f"as of {fc.as_of.date()}) -> {run.path}/forecast.csv", t)

        # old runs are pruned only after a success: never when the quality gate will fail
        if keep is not None and (max_mase is None or m["mase"] <= max_mase):
            t = time.perf_counter()
            removed = runs.prune(cfg.runs_dir, cfg.run_name, keep, lock=False)
            stage("prune", f"removed {len(removed)} old runs of {cfg.run_name} (keep {keep})", t)
    summary["result"] = result
    return summary
