"""Forecast quality of the default configs (configs/<family>.yaml, and configs/ensemble.yaml),
test split, TensorFlow, beside AutoARIMA, AutoETS and the oracle on exactly the same test points;
for the ensemble, also whether it beats its best member (the member with the lowest test MAE
in the same run, on the same points: chosen with hindsight).

Data: the bundled GOOG sample (no oracle is known); a random walk (persistence is the oracle,
MASE ~1 expected: below that is a leak); AR(1) log returns (phi 0.5), oracle
P_t * exp(phi * r_t); threshold-AR log returns (persistence after a rise, reversal after a
fall), oracle P_t * exp(c + phi(r_t) * r_t), which a linear model such as AutoARIMA cannot
reach. See ``synthetic``.

Each seed is the training seed and, on the synthetic data, the seed of the series too, so the
mean and spread over seeds cover both. AutoARIMA and AutoETS are read from the very evaluation
of each run (``stages.evaluate``'s ``baselines``: fitted on the run's training rows, scored on
its test points); the oracle is scored on the same points by ``metrics.score``.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synthetic, targets
from benchmarks.subprocesses import REPO, run_worker

CONFIGS = REPO / "configs"
CLASSICAL = {"auto_arima": "AutoARIMA", "auto_ets": "AutoETS"}
REFERENCES = (*CLASSICAL, "oracle")
LABELS = {**CLASSICAL, "oracle": "oracle"}


def dataset_overrides(name: str, seed: int, folder: Path, rows: int) -> list[str]:
    """Config overrides that point a run at the data set ``name`` (its series ``seed``)."""
    if name == "sample":
        return []
    path = synthetic.write_csv(synthetic.series(name, rows, seed), folder / f"{name}-{seed}.csv")
    return ["data.source=csv", f"data.path={path}", f"data.ticker={name.upper()}"]


def _score(block: dict) -> dict:
    return {"mase": block["mase"], "mae": block["mae"],
            "directional_accuracy": block["directional_accuracy"]}


def train_and_score(family: str, data: str, seed: int, overrides: list[str], folder: Path):
    from stockrnn import dataset, metrics, stages
    from stockrnn.config import load_config
    from stockrnn.options import RunOptions

    cfg = load_config(CONFIGS / f"{family}.yaml", [
        *overrides, f"train.seed={seed}", "train.backend=tensorflow",
        f"paths.data_dir={folder / f'data-{data}-{seed}'}", f"paths.runs_dir={folder / 'runs'}",
        f"paths.run_name={family}-{data}-{seed}"])
    started = time.perf_counter()
    run = stages.train(cfg, RunOptions(progress="none"))
    _, res = stages.evaluate(str(run.path), "test")
    meta = run.meta()
    out = {"family": family, "dataset": data, "seed": seed, "n": res["n"],
           "first": res["first"], "last": res["last"],
           "mase": res["model"]["mase"], "mae": res["model"]["mae"],
           "directional_accuracy": res["model"]["directional_accuracy"],
           "direction_p_value": res["model"]["direction_p_value"],
           "persistence_mae": res["baselines"]["persistence"]["mae"],
           "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
           "seconds": time.perf_counter() - started, "notes": res.get("notes", [])}
    if res.get("members"):  # an ensemble: each member scored on the same points
        best = res["best_member"]
        out["members"] = {n: m["mase"] for n, m in res["members"].items()}
        out["best_member"] = {"name": best, "mase": res["members"][best]["mase"]}
        out["beats_best_member"] = res["model"]["mae"] < res["members"][best]["mae"]
        out["members_kept_untrained"] = sum(m.get("best_epoch") == 0 for m in meta["members"])
    for name in CLASSICAL:  # from the same evaluation: the same training rows and test points
        if name in res["baselines"]:
            out[name] = _score(res["baselines"][name])
    if data in synthetic.ORACLES:
        ds = dataset.build(stages.load_frame(cfg), cfg)
        anchors = ds.splits["test"].anchors
        actual, last = ds.actual_prices("test")[:, 0], ds.last_prices("test")
        oracle = synthetic.ORACLES[data](ds.target_prices, anchors)
        out["oracle"] = {**_score(metrics.score(actual, oracle, last)), "n": len(anchors)}
    return out


def worker(args: dict) -> list[dict]:
    import logging

    from stockrnn.backend import use

    if args.get("threads"):  # one of several workers: its share of the cores, as --jobs does
        from stockrnn import jobs

        jobs.limit_threads(args["threads"])
        jobs.tf_threads("tensorflow", args["threads"])
    use("tensorflow")
    # each run's predict_on_batch traces anew; in one process that is expected, not a problem
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    results = []
    with tempfile.TemporaryDirectory(prefix="stockrnn-quality-") as tmp:
        folder = Path(tmp)
        extra: dict[tuple[str, int], list[str]] = {}
        for t in args["tasks"]:
            label = f"{t['family']} on {t['dataset']} (seed {t['seed']})"
            try:
                key = (t["dataset"], t["seed"])
                if key not in extra:
                    extra[key] = dataset_overrides(*key, folder, args["synthetic_rows"])
                r = train_and_score(t["family"], t["dataset"], t["seed"],
                                    [*args["overrides"], *extra[key]], folder)
                refs = "".join(f", {LABELS[k]} {r[k]['mase']:.4f}" for k in REFERENCES if k in r)
                print(f"{label}: MASE {r['mase']:.4f}{refs}, {r['epochs_run']} epochs, "
                      f"{r['seconds']:.1f}s", file=sys.stderr, flush=True)
            except Exception as exc:  # reported, never fatal to the other runs
                r = {**t, "error": f"{type(exc).__name__}: {exc}"}
                print(f"{label}: ERROR {r['error']}", file=sys.stderr, flush=True)
            results.append(r)
    return results


# ---- in the parent ---------------------------------------------------------------------------

def plan(mode) -> list[list[dict]]:
    """The runs, as one task list per worker process: whole (data, seed) groups (every family
    on one series) go to one worker, so its AutoARIMA/AutoETS fits are made once and cached."""
    groups = [[{"family": f, "dataset": d, "seed": s} for f in mode.quality_families]
              for d in mode.quality_datasets for s in mode.quality_seeds]
    jobs = max(1, min(mode.quality_jobs, len(groups)))
    return [[t for g in groups[i::jobs] for t in g] for i in range(jobs)]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def measure(mode) -> dict:
    shares = plan(mode)
    base = {"overrides": list(mode.quality_overrides), "synthetic_rows": mode.synthetic_rows,
            "threads": max(1, _cores() // len(shares)) if len(shares) > 1 else None}

    def one(i: int, tasks: list[dict]):
        label = "quality" if len(shares) == 1 else f"quality {i + 1}/{len(shares)}"
        return run_worker("quality", {**base, "tasks": tasks}, "tensorflow",
                          timeout=4 * 3600, label=label)

    started = time.perf_counter()
    if len(shares) == 1:
        answers = [one(0, shares[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(len(shares)) as pool:
            answers = list(pool.map(one, range(len(shares)), shares))
    seconds = time.perf_counter() - started
    raw: list[dict] = []
    for tasks, answer in zip(shares, answers, strict=True):
        if isinstance(answer, dict):  # that worker failed as a whole: its runs are errors
            raw += [{**t, "error": answer.get("error", "no result")} for t in tasks]
        else:
            raw += answer
    if all("error" in r for r in raw):
        return {"error": raw[0]["error"] if raw else "no runs"}
    return {"datasets": list(mode.quality_datasets), "families": list(mode.quality_families),
            "seeds": list(mode.quality_seeds), "jobs": len(shares),
            "threads_per_job": base["threads"],
            "overrides": list(mode.quality_overrides), "synthetic_rows": mode.synthetic_rows,
            "ar1_phi": synthetic.AR1_PHI,
            "threshold_ar": {"phi_pos": synthetic.TAR_PHI_POS, "phi_neg": synthetic.TAR_PHI_NEG,
                             "intercept": synthetic.TAR_INTERCEPT},
            "sigma": synthetic.SIGMA, "seconds": round(seconds, 1), "runs": raw,
            **summarize_all(raw, mode.quality_datasets, mode.quality_families,
                            mode.quality_seeds)}


def summarize_all(raw: list[dict], datasets, families, seeds) -> dict:
    """The table (a row per family and data set), the reference rows (AutoARIMA, AutoETS and
    the oracle per data set) and every target, from the runs."""
    table, references, checks = [], [], []
    for data in datasets:
        on_data = [r for r in raw if r["dataset"] == data]
        for family in families:
            row, row_checks = summarize(family, data, [r for r in on_data
                                                       if r["family"] == family])
            table.append(row)
            checks += row_checks
        for name in REFERENCES:
            row, row_checks = summarize_reference(name, data, on_data, seeds)
            references.append(row)
            checks += row_checks
    return {"table": table, "references": references, "checks": checks}


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value), min and max, or {} for none."""
    values = [v for v in values if isinstance(v, int | float)]
    if not values:
        return {}
    return {"mean": statistics.mean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values)}


def _ratios(runs: list[dict], ref: str) -> list[float]:
    """Per run: its MASE over the reference's MASE on the same points (same run, same seed)."""
    return [r["mase"] / r[ref]["mase"] for r in runs
            if ref in r and r[ref].get("mase") and r.get("mase") is not None]


def _direction(runs: list[dict], key: str | None = None) -> dict:
    blocks = [r[key] if key else r for r in runs if key is None or key in r]
    return spread([b["directional_accuracy"] for b in blocks
                   if b.get("directional_accuracy") is not None])


def _over_seeds(per_seed: list[dict]) -> dict:
    """The figures of a row over its seeds' results (each with ``n``, ``mase`` and the
    direction fields ``_direction`` reads): points, MASE per seed, mean and spread."""
    mase = [r["mase"] for r in per_seed]
    figures, direction = spread(mase), _direction(per_seed)
    return {"n": sorted({r["n"] for r in per_seed}), "mase_per_seed": mase,
            "mase_spread": figures, "mase": figures["mean"], "direction": direction,
            "directional_accuracy": direction.get("mean")}


def summarize(family: str, data: str, runs: list[dict]) -> tuple[dict, list[dict]]:
    """One family on one data set over its seeds, and its targets."""
    good = sorted((r for r in runs if "error" not in r), key=lambda r: r["seed"])
    row = {"family": family, "dataset": data, "runs": len(good),
           "seeds": [r["seed"] for r in good],
           "errors": [r["error"] for r in runs if "error" in r]}
    if good:
        row.update(_over_seeds(good))
        # best epoch 0: no epoch beat the untrained model (persistence), which training kept
        row["kept_untrained"] = sum(r.get("best_epoch") == 0 for r in good)
        if all("members" in r for r in good):  # an ensemble: its members, over the seeds
            row["kept_untrained"] = sum(r["members_kept_untrained"] for r in good)
            row["kept_of"] = sum(len(r["members"]) for r in good)
        row["epochs_run"] = [r.get("epochs_run") for r in good]
        for ref in REFERENCES:
            ratios = _ratios(good, ref)
            if ratios:
                row[f"over_{ref}"] = spread(ratios)
        row["mase_over_oracle"] = row.get("over_oracle", {}).get("mean")
        row["mase_over_auto_arima"] = row.get("over_auto_arima", {}).get("mean")
        row.update(versus_best_member(good))
    mase = row.get("mase")
    name = f"quality {family} on {data}"
    checks = []
    if data == "random_walk":
        checks.append(targets.check(f"{name}: test MASE", mase, between=targets.RANDOM_WALK_MASE))
    elif data in ("ar1", "threshold_ar"):
        tol = (targets.AR1_ORACLE_TOLERANCE if data == "ar1" else targets.TAR_ORACLE_TOLERANCE)
        checks.append(targets.check(f"{name}: test MASE / oracle MASE",
                                    row.get("mase_over_oracle"), between=(1 - tol, 1 + tol),
                                    text=f"within {tol:.0%} of the oracle"))
        if data == "threshold_ar":
            checks.append(targets.check(f"{name}: test MASE / AutoARIMA MASE",
                                        row.get("mase_over_auto_arima"),
                                        below=targets.TAR_OVER_ARIMA,
                                        text="< 1 (beats AutoARIMA)"))
    else:
        checks.append(targets.check(f"{name}: test MASE", mase, at_most=targets.SAMPLE_MASE))
    row["checks"] = checks
    row["status"] = next((c["status"] for c in checks if c["status"] != "PASS"), "PASS")
    return row, checks


def versus_best_member(runs: list[dict]) -> dict:
    """An ensemble's runs against their best members (per seed: the member with the lowest
    test MAE on the same points): the best members' MASE, the per-seed ratio ensemble MASE /
    best member MASE, in how many seeds the ensemble beat it, and ``beats_best_member``: on
    the mean over the seeds. {} for runs that are not an ensemble's."""
    have = [r for r in runs if "best_member" in r]
    if not have:
        return {}
    best = spread([r["best_member"]["mase"] for r in have])
    return {"best_member": {"names": [r["best_member"]["name"] for r in have],
                            "mase": best, "mase_per_seed": [r["best_member"]["mase"]
                                                            for r in have]},
            "over_best_member": spread([r["mase"] / r["best_member"]["mase"] for r in have]),
            "beats_best_member_seeds": sum(bool(r["beats_best_member"]) for r in have),
            "beats_best_member": statistics.mean(r["mase"] for r in have) < best["mean"]}


def summarize_reference(name: str, data: str, runs: list[dict],
                        seeds) -> tuple[dict, list[dict]]:
    """AutoARIMA, AutoETS or the oracle on one data set over the seeds. Every family's run of
    a seed scores it on that seed's test points; the first family's run of each seed is
    taken, and ``same_points`` says whether all the families' runs had the same points and
    figures (the shipped configs share look_back and split, so they do)."""
    row: dict = {"model": name, "dataset": data, "errors": []}
    per_seed, agree = [], True
    for seed in seeds:
        have = [r for r in runs if r["seed"] == seed and "error" not in r and name in r]
        if not have:
            continue
        per_seed.append({**have[0][name], "seed": seed, "n": have[0]["n"]})
        agree &= all(r["n"] == have[0]["n"]
                     and abs(r[name]["mase"] - have[0][name]["mase"]) < 1e-9 for r in have)
    row["runs"] = len(per_seed)
    row["seeds"] = [p["seed"] for p in per_seed]
    if per_seed:
        row["same_points"] = agree
        row.update(_over_seeds(per_seed))
        for ref in ("oracle", "auto_arima"):
            if ref == name:
                continue
            theirs = {r["seed"]: r[ref]["mase"] for r in runs if "error" not in r and ref in r}
            ratios = [p["mase"] / theirs[p["seed"]] for p in per_seed if theirs.get(p["seed"])]
            if ratios:
                row[f"over_{ref}"] = spread(ratios)
        row["mase_over_oracle"] = row.get("over_oracle", {}).get("mean")
        row["mase_over_auto_arima"] = row.get("over_auto_arima", {}).get("mean")
    elif data in synthetic.ORACLES or name != "oracle":
        row["errors"].append(f"no {LABELS[name]} figure (see the runs' notes)")
    checks = []
    if data == "random_walk" and name in CLASSICAL:
        checks.append(targets.check(f"quality {LABELS[name]} on {data}: test MASE",
                                    row.get("mase"), between=targets.RANDOM_WALK_MASE))
    row["checks"] = checks
    row["status"] = next((c["status"] for c in checks if c["status"] != "PASS"),
                         "PASS" if checks else None)
    return row, checks
