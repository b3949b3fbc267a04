"""Forecast quality of the default configs (configs/<family>.yaml), test split, TensorFlow.

Data: the bundled GOOG sample; a random walk (log price, fixed seed; persistence is the best
forecast, so MASE should be ~1); AR(1) log returns (phi 0.6), where the oracle
P_t * exp(phi * r_t) on the same test points gives the MASE to match.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synthetic, targets
from benchmarks.subprocesses import REPO, run_worker

CONFIGS = REPO / "configs"


def dataset_overrides(name: str, folder: Path, rows: int) -> list[str]:
    if name == "sample":
        return []
    frame = synthetic.random_walk(rows) if name == "random_walk" else synthetic.ar1(rows)
    path = synthetic.write_csv(frame, folder / f"{name}.csv")
    return ["data.source=csv", f"data.path={path}", f"data.ticker={name.upper()}"]


def train_and_score(family: str, data: str, seed: int, overrides: list[str], folder: Path):
    from stockrnn import dataset, metrics, stages
    from stockrnn.config import load_config
    from stockrnn.options import RunOptions

    cfg = load_config(CONFIGS / f"{family}.yaml", [
        *overrides, f"train.seed={seed}", "train.backend=tensorflow",
        f"paths.data_dir={folder / ('data-' + data)}", f"paths.runs_dir={folder / 'runs'}",
        f"paths.run_name={family}-{data}-{seed}"])
    started = time.perf_counter()
    run = stages.train(cfg, RunOptions(progress="none"))
    _, res = stages.evaluate(str(run.path), "test")
    meta = run.meta()
    out = {"family": family, "dataset": data, "seed": seed, "n": res["n"],
           "mase": res["model"]["mase"], "mae": res["model"]["mae"],
           "directional_accuracy": res["model"]["directional_accuracy"],
           "direction_p_value": res["model"]["direction_p_value"],
           "persistence_mae": res["baselines"]["persistence"]["mae"],
           "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
           "seconds": time.perf_counter() - started}
    if data == "ar1":
        ds = dataset.build(stages.load_frame(cfg), cfg)
        anchors = ds.splits["test"].anchors
        actual, last = ds.actual_prices("test")[:, 0], ds.last_prices("test")
        oracle = synthetic.ar1_oracle(ds.target_prices, anchors)
        score = metrics.score(actual, oracle, last)
        out["oracle"] = {"mase": score["mase"], "mae": score["mae"], "n": len(anchors),
                         "directional_accuracy": score["directional_accuracy"]}
    return out


def worker(args: dict) -> list[dict]:
    import logging

    from stockrnn.backend import use

    use("tensorflow")
    # each run's predict_on_batch traces anew; in one process that is expected, not a problem
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory(prefix="stockrnn-quality-") as tmp:
        folder = Path(tmp)
        data_sets = {t["dataset"] for t in args["tasks"]}
        extra = {d: dataset_overrides(d, folder, args["synthetic_rows"]) for d in data_sets}
        for t in args["tasks"]:
            label = f"{t['family']} on {t['dataset']} (seed {t['seed']})"
            try:
                r = train_and_score(t["family"], t["dataset"], t["seed"],
                                    [*args["overrides"], *extra[t["dataset"]]], folder)
                oracle = f", oracle {r['oracle']['mase']:.4f}" if "oracle" in r else ""
                print(f"{label}: MASE {r['mase']:.4f}{oracle}, {r['epochs_run']} epochs, "
                      f"{r['seconds']:.1f}s", file=sys.stderr, flush=True)
            except Exception as exc:  # reported, never fatal to the other runs
                r = {**t, "error": f"{type(exc).__name__}: {exc}"}
                print(f"{label}: ERROR {r['error']}", file=sys.stderr, flush=True)
            results.append(r)
    return results


# ---- in the parent ---------------------------------------------------------------------------

def measure(mode) -> dict:
    tasks = [{"family": f, "dataset": d, "seed": s} for d in mode.quality_datasets
             for f in mode.quality_families for s in mode.quality_seeds]
    args = {"tasks": tasks, "overrides": list(mode.quality_overrides),
            "synthetic_rows": mode.synthetic_rows}
    raw = run_worker("quality", args, "tensorflow", timeout=4 * 3600, label="quality")
    if isinstance(raw, dict):  # the worker failed as a whole
        return {"error": raw.get("error", "no result")}
    table, checks = [], []
    for data in mode.quality_datasets:
        for family in mode.quality_families:
            runs = [r for r in raw if r["family"] == family and r["dataset"] == data]
            row, check = summarize(family, data, runs)
            table.append(row)
            checks.append(check)
    return {"datasets": list(mode.quality_datasets), "seeds": list(mode.quality_seeds),
            "overrides": list(mode.quality_overrides), "synthetic_rows": mode.synthetic_rows,
            "ar1_phi": synthetic.AR1_PHI, "runs": raw, "table": table, "checks": checks}


def summarize(family: str, data: str, runs: list[dict]) -> tuple[dict, dict]:
    good = [r for r in runs if "error" not in r]
    row = {"family": family, "dataset": data, "runs": len(good),
           "errors": [r["error"] for r in runs if "error" in r]}
    if good:
        row["mase"] = statistics.mean(r["mase"] for r in good)
        accs = [r["directional_accuracy"] for r in good if r["directional_accuracy"] is not None]
        row["directional_accuracy"] = statistics.mean(accs) if accs else None
        row["n"] = good[0]["n"]
        if "oracle" in good[0]:
            row["oracle_mase"] = good[0]["oracle"]["mase"]
            row["oracle_directional_accuracy"] = good[0]["oracle"]["directional_accuracy"]
    mase = row.get("mase")
    name = f"quality {family} on {data}: test MASE"
    if data == "random_walk":
        check = targets.check(name, mase, between=targets.RANDOM_WALK_MASE)
    elif data == "ar1":
        ratio = mase / row["oracle_mase"] if mase is not None and row.get("oracle_mase") else None
        row["mase_over_oracle"] = ratio
        tol = targets.AR1_ORACLE_TOLERANCE
        check = targets.check(f"{name} / oracle MASE", ratio, between=(1 - tol, 1 + tol),
                              text=f"within {tol:.0%} of the oracle")
    else:
        check = targets.check(name, mase, at_most=targets.SAMPLE_MASE)
    row["status"] = check["status"]
    return row, check
