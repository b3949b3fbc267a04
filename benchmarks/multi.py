"""Many tickers: wall time of ``stockrnn run --config configs/multi.yaml`` serially, with
``--jobs 2`` and with ``--executor ray`` (a local Ray; skipped without the ray extra), and the
test MASE per ticker of per-ticker models vs one global model (``model.scope=global``).

Each variant is a fresh ``stockrnn -q run ... --json`` process in an empty folder (so the
fetch of the sample and synthetic series, and the TensorFlow import, are included)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import targets
from benchmarks.commands import env, stockrnn_command
from benchmarks.subprocesses import REPO, timed_command

MULTI = REPO / "configs" / "multi.yaml"
VARIANTS = (("serial", []), ("jobs 2", ["--jobs", "2"]),
            ("ray", ["--executor", "ray", "--jobs", "2"]),
            ("global", ["--set", "model.scope=global"]))


def summary_of(stdout: str) -> dict:
    """The --json summary (the first line that opens a JSON object onwards)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def json_command(section: str, name: str, cmd: list[str], shown: str,
                 read: Callable[[dict, dict], None], timeout: float = 1800,
                 files: dict[str, str] | None = None) -> dict:
    """Time ``cmd`` (a ``stockrnn ... --json`` command) in a fresh empty folder (holding only
    ``files``: name -> text); ``read`` copies what matters from its JSON summary into the
    result."""
    folder = Path(tempfile.mkdtemp(prefix=f"stockrnn-{section}-"))
    try:
        for file_name, text in (files or {}).items():
            (folder / file_name).write_text(text)
        r = timed_command(cmd, folder, timeout=timeout, env=env())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out = {"command": shown, "rc": r.get("rc"), "seconds": r.get("seconds"),
           "cpu_seconds": r.get("cpu_seconds"), "max_rss_mib": r.get("max_rss_mib"),
           "tree_peak_rss_mib": r.get("tree_peak_rss_mib")}
    try:
        read(summary_of(r.get("stdout", "")), out)
    except (StopIteration, ValueError, KeyError) as exc:
        out["error"] = r.get("error") or f"no summary ({type(exc).__name__})"
    if r.get("rc") != 0 and "error" not in out:
        out["error"] = r.get("error") or f"exit {r.get('rc')}"
    print(f"  [{section}] {name}: " + (f"{out['seconds']:.1f}s" if out.get("seconds") else
                                       f"ERROR {out.get('error')}"), file=sys.stderr, flush=True)
    return out


def variant(name: str, extra: list[str], config: Path) -> dict:
    if name == "ray" and importlib.util.find_spec("ray") is None:
        print(f"  [multi] {name}: skipped, ray not installed", file=sys.stderr, flush=True)
        return {"skipped": "ray not installed (pip install 'stockrnn[ray]')"}
    cmd = [*stockrnn_command(), "-q", "run", "--config", str(config), "--json", *extra]
    shown = " ".join(["stockrnn -q run --config", str(config.relative_to(REPO))
                      if config.is_relative_to(REPO) else str(config), *extra])

    def read(s: dict, out: dict) -> None:
        out["tickers"] = {t["ticker"]: {k: t[k] for k in ("status", "mase", "error")}
                          for t in s["tickers"]}
        out["batch_seconds"] = s.get("seconds")
        if s.get("train_seconds") is not None:
            out["global_train_seconds"] = s["train_seconds"]

    return json_command("multi", name, cmd, shown, read)


def measure(mode) -> dict:
    if not mode.multi:
        return {"skipped": f"not measured in --{mode.name} mode"}
    out: dict = {"config": str(MULTI.relative_to(REPO)), "variants": {}, "checks": []}
    for name, extra in VARIANTS:
        out["variants"][name] = variant(name, extra, MULTI)
    v = out["variants"]
    serial = v["serial"].get("tickers", {})
    rows = []
    for t, r in serial.items():
        row = {"ticker": t, "per_ticker_mase": r["mase"]}
        for name in ("jobs 2", "ray", "global"):
            row[f"{name}_mase"] = v[name].get("tickers", {}).get(t, {}).get("mase")
        g, p = row["global_mase"], row["per_ticker_mase"]
        row["global_better"] = None if g is None or p is None else g < p
        rows.append(row)
    out["quality"] = rows
    for name in ("jobs 2", "ray"):
        diffs = [abs(r[f"{name}_mase"] - r["per_ticker_mase"]) for r in rows
                 if r[f"{name}_mase"] is not None and r["per_ticker_mase"] is not None]
        if "skipped" in v[name]:
            continue
        out["checks"].append(targets.check(
            f"multi: {name} MASE equals serial (max abs difference)",
            max(diffs) if diffs and len(diffs) == len(rows) else None, at_most=1e-6))
    return out
