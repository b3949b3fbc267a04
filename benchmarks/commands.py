"""The command line as users run it: ``stockrnn --help``, ``stockrnn run --config
configs/smoke.yaml`` in an empty folder, ``stockrnn predict`` on that run, and the peak resident
memory of ``stockrnn train`` (each a fresh process, timed by ``benchmarks.rusage``)."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import targets
from benchmarks.subprocesses import REPO, child_env, timed_command

SMOKE = REPO / "configs" / "smoke.yaml"


def stockrnn_command() -> list[str]:
    script = Path(sys.executable).parent / "stockrnn"
    return [str(script)] if script.exists() else [sys.executable, "-m", "stockrnn"]


def env() -> dict[str, str]:
    e = child_env("tensorflow")
    for var in ("STOCKRNN_DATA_DIR", "STOCKRNN_RUNS_DIR"):
        e.pop(var, None)  # ./data and ./runs of the temp folder
    return e


def repeat(cmd: list[str], cwd: Path, times: int, label: str) -> dict:
    runs = []
    for _ in range(times):
        r = timed_command(cmd, cwd, env=env())
        r.pop("stdout", None)
        runs.append(r)
        if r.get("rc") != 0:
            break
    ok = [r for r in runs if r.get("rc") == 0]
    shown = " ".join(["stockrnn", *cmd[len(stockrnn_command()):]]).replace(f"{REPO}/", "")
    out = {"command": shown, "runs": runs}
    if ok:
        out["median_seconds"] = statistics.median(r["seconds"] for r in ok)
        out["max_rss_mib"] = max(r["max_rss_mib"] for r in ok)
        out["tree_peak_rss_mib"] = _max(r.get("tree_peak_rss_mib") for r in ok)
    else:
        out["error"] = runs[-1].get("error", "failed") if runs else "not run"
    print(f"  [commands] {label}: " + (f"{out['median_seconds']:.2f}s, peak RSS "
          f"{out['max_rss_mib']:.0f} MiB" if ok else f"ERROR {out['error']}"),
          file=sys.stderr, flush=True)
    return out


def _max(values):
    values = [v for v in values if isinstance(v, int | float)]
    return max(values) if values else None


def measure(mode) -> dict:
    exe = stockrnn_command()
    out: dict = {"executable": " ".join(exe), "checks": []}
    with tempfile.TemporaryDirectory(prefix="stockrnn-cmd-") as tmp:
        out["help"] = repeat([*exe, "--help"], Path(tmp), mode.help_runs, "--help")
    out["help"]["check"] = targets.check("stockrnn --help median seconds",
                                         out["help"].get("median_seconds"),
                                         at_most=targets.HELP_SECONDS)
    out["checks"].append(out["help"]["check"])
    if mode.smoke_runs <= 0:
        skipped = {"skipped": f"not measured in --{mode.name} mode"}
        out.update(run=skipped, predict=skipped, train=skipped)
        return out
    folders = [Path(tempfile.mkdtemp(prefix="stockrnn-cmd-")) for _ in range(mode.smoke_runs)]
    try:
        runs = [repeat([*exe, "run", "--config", str(SMOKE)], f, 1, "run smoke")
                for f in folders]
        good = [r for r in runs if "median_seconds" in r]
        out["run"] = {"command": runs[0]["command"], "runs": [x for r in runs for x in r["runs"]]}
        if good:
            out["run"]["median_seconds"] = statistics.median(r["median_seconds"] for r in good)
            out["run"]["max_rss_mib"] = max(r["max_rss_mib"] for r in good)
            out["run"]["tree_peak_rss_mib"] = _max(r.get("tree_peak_rss_mib") for r in good)
        else:
            out["run"]["error"] = runs[0].get("error")
        out["run"]["check"] = targets.check("stockrnn run --config configs/smoke.yaml seconds",
                                            out["run"].get("median_seconds"),
                                            at_most=targets.SMOKE_RUN_SECONDS)
        out["checks"].append(out["run"]["check"])
        # the sample ends in 2013, so it is stale by the data.max_age_days rule
        out["predict"] = repeat([*exe, "predict", "--run", "smoke", "--allow-stale"], folders[0],
                                mode.smoke_runs, "predict")
        out["train"] = repeat([*exe, "train", "--config", str(SMOKE), "-q"], folders[0],
                              mode.smoke_runs, "train smoke")
    finally:
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)
    return out
