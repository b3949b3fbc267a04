"""Covariates: test MASE of configs/lstm_covariates.yaml with and without data.covariates,
beside the oracle, on exactly the same test points.

The config's data are the synthetic pair FOLLOW<n>/LEAD<n> (``SyntheticSource``): FOLLOW's log
return on day t is 0.5 x LEAD's of day t-1 plus noise, so without covariates no model can beat
persistence (MASE about 1.0) and with LEAD the best possible forecast is
P_t * exp(0.5 * r_lead_t) (the oracle). Each seed is the training seed and the pair's seed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.subprocesses import REPO, run_worker

CONFIG = REPO / "configs" / "lstm_covariates.yaml"
WITHOUT = ["data.covariates.tickers=[]", "data.covariates.indicators=[]",
           "data.covariates.calendar=[]"]
TARGET = 1.05   # with covariates: within 5% of the oracle's MASE


def train_and_score(seed: int, overrides: list[str], folder: Path) -> dict:
    import numpy as np

    from stockrnn import dataset, metrics, stages
    from stockrnn.config import load_config
    from stockrnn.data.sources import SyntheticSource
    from stockrnn.options import RunOptions

    cfg = load_config(CONFIG, [
        f"data.ticker=FOLLOW{seed}", f"data.covariates.tickers=[LEAD{seed}]", *overrides,
        f"train.seed={seed}", "train.backend=tensorflow", f"paths.data_dir={folder / 'data'}",
        f"paths.runs_dir={folder / 'runs'}"])
    started = time.perf_counter()
    run = stages.train(cfg, RunOptions(progress="none"))
    _, res = stages.evaluate(str(run.path), "test")
    ds = dataset.build(stages.load_frame(cfg), cfg)
    a = ds.splits["test"].anchors
    lead = SyntheticSource().fetch(f"LEAD{seed}", None, None, "1d")["Close"]
    lead = lead.reindex(ds.frame.index).to_numpy()
    last, actual = ds.last_prices("test"), ds.actual_prices("test")[:, 0]
    oracle = last * np.exp(SyntheticSource.BETA * np.log(lead[a] / lead[a - 1]))
    return {"seed": seed, "n": res["n"], "mase": res["model"]["mase"],
            "directional_accuracy": res["model"]["directional_accuracy"],
            "inputs": len(ds.transform.features), "epochs_run": run.meta()["epochs_run"],
            "oracle_mase": metrics.score(actual, oracle, last)["mase"],
            "seconds": round(time.perf_counter() - started, 1)}


def worker(args: dict) -> list[dict]:
    import logging

    from stockrnn.backend import use

    use("tensorflow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # a trace per run is expected
    out = []
    with tempfile.TemporaryDirectory(prefix="stockrnn-covariates-") as tmp:
        for seed in args["seeds"]:
            for variant, overrides in (("with", []), ("without", WITHOUT)):
                try:
                    r = {"variant": variant,
                         **train_and_score(seed, overrides, Path(tmp) / f"{variant}-{seed}")}
                    print(f"{variant} covariates, seed {seed}: MASE {r['mase']:.4f} (oracle "
                          f"{r['oracle_mase']:.4f}), {r['seconds']}s", file=sys.stderr,
                          flush=True)
                except Exception as exc:  # reported, never fatal to the other runs
                    r = {"variant": variant, "seed": seed,
                         "error": f"{type(exc).__name__}: {exc}"}
                out.append(r)
    return out


def _mean(values) -> float | None:
    """The mean of the figures that exist (the untrained model has no direction)."""
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def measure(mode) -> dict:
    if not mode.covariates:
        return {"skipped": f"not measured in {mode.name} mode"}
    started = time.perf_counter()
    raw = run_worker("covariates", {"seeds": list(mode.quality_seeds)}, "tensorflow",
                     timeout=3600, label="covariates")
    if isinstance(raw, dict):
        return raw
    out = {"config": str(CONFIG.relative_to(REPO)), "seeds": list(mode.quality_seeds),
           "runs": raw, "seconds": round(time.perf_counter() - started, 1), "checks": []}
    for variant in ("with", "without"):
        ok = [r for r in raw if r["variant"] == variant and "error" not in r]
        if ok:
            out[variant] = {k: _mean(r.get(k) for r in ok)
                            for k in ("mase", "oracle_mase", "directional_accuracy")}
            out[variant]["over_oracle"] = statistics.mean(r["mase"] / r["oracle_mase"]
                                                          for r in ok)
    if "with" in out:
        worst = max(r["mase"] / r["oracle_mase"] for r in raw
                    if r["variant"] == "with" and "error" not in r)
        out["checks"].append({"name": "covariates: MASE with LEAD / oracle (worst seed)",
                              "value": worst, "target": f"<= {TARGET}",
                              "status": "PASS" if worst <= TARGET else "MISS"})
    if "without" in out:
        m = out["without"]["mase"]
        out["checks"].append({"name": "covariates: MASE without them (no leak, no edge)",
                              "value": m, "target": "1.00 +- 0.03",
                              "status": "PASS" if abs(m - 1) <= 0.03 else "MISS"})
    return out
