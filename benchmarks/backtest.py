"""Backtest cost: wall time of ``stockrnn backtest --config configs/lstm.yaml`` (5 folds,
refit always) serially and with ``--jobs 2``, against one ``stockrnn run`` of the same config
(target, issue 17: serial at most ``targets.BACKTEST_OVER_RUN`` times the run), and the pooled
verdict it reaches on the bundled sample.

Each command is a fresh ``stockrnn -q ... --json`` process in an empty folder (the fetch of the
sample and the TensorFlow import are included)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import targets
from benchmarks.commands import stockrnn_command
from benchmarks.multi import json_command
from benchmarks.subprocesses import REPO

LSTM = REPO / "configs" / "lstm.yaml"
VARIANTS = (("run", ["run"]), ("backtest serial", ["backtest"]),
            ("backtest --jobs 2", ["backtest", "--jobs", "2"]))


def variant(name: str, args: list[str], config: Path, extra: list[str]) -> dict:
    cmd = [*stockrnn_command(), "-q", *args, "--config", str(config), "--json", *extra]
    shown = " ".join(["stockrnn -q", *args, "--config", str(config.relative_to(REPO)), *extra])

    def read(s: dict, out: dict) -> None:
        if "pooled" not in s:  # stockrnn run
            out["mase"] = s["metrics"]["model"]["mase"]
            return
        p = s["pooled"]
        out.update(pooled=p["model"], n=p["n"], verdict=p["verdict"],
                   folds=[f["model"]["mase"] for f in s["folds"]],
                   sharpe_net=s["trading"]["strategy"]["net"]["sharpe"],
                   hold_sharpe_net=s["trading"]["buy_and_hold"]["net"]["sharpe"])

    return json_command("backtest", name, cmd, shown, read)


def measure(mode) -> dict:
    if not mode.backtest:
        return {"skipped": f"not measured in --{mode.name} mode"}
    extra = list(mode.backtest_overrides)
    out: dict = {"config": str(LSTM.relative_to(REPO)), "overrides": extra, "variants": {},
                 "checks": []}
    for name, args in VARIANTS:
        out["variants"][name] = variant(name, args, LSTM, extra)
    v = out["variants"]
    run_s, serial, jobs2 = (v[k].get("seconds") for k in ("run", "backtest serial",
                                                          "backtest --jobs 2"))
    out["serial_over_run"] = serial / run_s if serial and run_s else None
    out["jobs2_over_serial"] = jobs2 / serial if serial and jobs2 else None
    out["checks"].append(targets.check(
        "backtest: 5 folds (refit always, serial) / one run, wall time", out["serial_over_run"],
        at_most=targets.BACKTEST_OVER_RUN, text=f"<= {targets.BACKTEST_OVER_RUN:g}x"))
    a, b = v["backtest serial"].get("pooled"), v["backtest --jobs 2"].get("pooled")
    out["checks"].append(targets.check(
        "backtest: --jobs 2 pooled MASE equals serial (abs difference)",
        abs(a["mase"] - b["mase"]) if a and b else None, at_most=1e-9))
    return out
