"""``python -m benchmarks [--quick] [--tiny] [--out DIR] [--only SECTION ...]``: run the suite,
write the report. ``--only`` re-measures the named sections and merges them into the report
already in ``--out`` (the other sections' figures are kept and the report says which sections
were re-measured, when and how)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from benchmarks import (
    backtest,
    commands,
    covariates,
    machine,
    many,
    modes,
    multi,
    prepare,
    quality,
    ray_cluster,
    report,
    speed,
)
from benchmarks.subprocesses import REPO

SECTIONS = (("commands", commands.measure), ("prepare", prepare.measure),
            ("speed", speed.measure), ("quality", quality.measure),
            ("covariates", covariates.measure), ("multi", multi.measure),
            ("many", many.measure), ("backtest", backtest.measure),
            ("ray", ray_cluster.measure))


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="fewer epochs and repeats (make bench, a few minutes)")
    p.add_argument("--tiny", action="store_true",
                   help="seconds-long smoke mode: one family, TensorFlow only (for the tests)")
    p.add_argument("--out", type=Path, default=REPO / "docs",
                   help="folder for benchmarks.md and benchmarks.json (default: docs/)")
    p.add_argument("--only", nargs="+", choices=[name for name, _ in SECTIONS], default=None,
                   metavar="SECTION",
                   help="re-measure only these sections and merge them into the existing "
                        "benchmarks.json in --out (sections: "
                        + ", ".join(name for name, _ in SECTIONS) + ")")
    return p.parse_args(argv)


def checks_of(res: dict) -> list[dict]:
    out = []
    out += res.get("commands", {}).get("checks", [])
    out += res.get("prepare", {}).get("checks", [])
    out += [c for r in res.get("speed", {}).get("ratios", []) for c in r["checks"]]
    out += res.get("quality", {}).get("checks", [])
    out += res.get("covariates", {}).get("checks", [])
    out += res.get("multi", {}).get("checks", [])
    out += res.get("many", {}).get("checks", [])
    out += res.get("backtest", {}).get("checks", [])
    out += res.get("ray", {}).get("checks", [])
    return out


def errors_of(res: dict) -> list[str]:
    """Every "error" anywhere in the results (a crashed measurement, not a missed target)."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if isinstance(node.get("error"), str):
                found.append(f"{where}: {node['error']}")
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    for section, _ in SECTIONS:
        walk(res.get(section), section)
    return found


def merge_base(path: Path, fresh: dict) -> dict:
    """The existing results to merge re-measured sections into (a fresh report if none)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"no readable {path}: starting a new report", file=sys.stderr)
        return fresh


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    mode = modes.pick(args.quick, args.tiny)
    flags = " --tiny" if args.tiny else " --quick" if args.quick else ""
    started = time.perf_counter()
    res: dict = {"schema": 1, "mode": mode.name, "command": f"python -m benchmarks{flags}",
                 "machine": machine.describe(), "versions": machine.versions()}
    sections = SECTIONS
    if args.only:
        res = merge_base(args.out / "benchmarks.json", res)
        sections = [(n, m) for n, m in SECTIONS if n in args.only]
        res.setdefault("reruns", []).append({
            "sections": [n for n, _ in sections], "mode": mode.name,
            "command": f"python -m benchmarks{flags} --only {' '.join(args.only)}",
            "machine": machine.describe()})
    for name, measure in sections:
        print(f"== {name} ({mode.name})", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            res[name] = measure(mode)
        except Exception as exc:  # one broken section must not lose the others' figures
            traceback.print_exc()
            res[name] = {"error": f"{type(exc).__name__}: {exc}"}
        res.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t, 1)
    if args.only:
        res["reruns"][-1]["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    else:
        res["machine_end"] = machine.describe()
        res["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    res["targets"] = checks_of(res)
    res["errors"] = errors_of(res)
    md, js = report.write(res, args.out)
    passed = sum(c["status"] == "PASS" for c in res["targets"])
    print(f"wrote {md} and {js} in {time.perf_counter() - started:.0f}s: {passed} of "
          f"{len(res['targets'])} targets pass", flush=True)
    for c in res["targets"]:
        if c["status"] != "PASS":
            print(f"  MISS {c['name']}: {report.num(c['value'], '.3f')} (target {c['target']})")
    for e in res["errors"]:
        print(f"  ERROR {e}", file=sys.stderr)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
