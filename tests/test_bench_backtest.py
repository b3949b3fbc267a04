"""The benchmark's backtest section: skipped in --tiny mode, its checks (serial / one run, the
--jobs 2 equality), and its rendering (wall times, ratios, the verdict). Nothing is trained
here."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _benchmarks(monkeypatch):
    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.__main__")


def fake_variant(seconds: float, mase: float) -> dict:
    return {"command": "stockrnn -q backtest --config configs/lstm.yaml", "rc": 0,
            "seconds": seconds, "max_rss_mib": 800,
            "pooled": {"mase": mase, "dm_p_value": 0.89}, "n": 322,
            "verdict": "not distinguishable from persistence (p = 0.89)",
            "folds": [1.0, 0.99], "sharpe_net": 0.98, "hold_sharpe_net": 1.04}


def test_skipped_in_tiny_mode_and_rendered(monkeypatch):
    main = _benchmarks(monkeypatch)
    from benchmarks import backtest, machine, modes, report

    assert backtest.measure(modes.TINY) == {"skipped": "not measured in --tiny mode"}
    assert any(name == "backtest" for name, _ in main.SECTIONS)
    section = {"config": "configs/lstm.yaml", "overrides": [], "checks": [],
               "serial_over_run": 2.5, "jobs2_over_serial": 0.6,
               "variants": {"run": {"command": "stockrnn -q run --config configs/lstm.yaml",
                                    "rc": 0, "seconds": 20.0, "mase": 0.998},
                            "backtest serial": fake_variant(50.0, 0.9996),
                            "backtest --jobs 2": fake_variant(30.0, 0.9996)}}
    md = report.render({"mode": "quick", "command": "python -m benchmarks --quick",
                        "machine": machine.describe(), "versions": machine.versions(),
                        "backtest": section, "targets": []})
    assert "## Backtest: 5 folds of configs/lstm.yaml beside one run" in md
    assert "Backtest serial / one run: 2.50x" in md and "--jobs 2 / serial: 0.60x" in md
    assert "not distinguishable from persistence (p = 0.89) over 322 points" in md
    assert "| backtest --jobs 2 |" in md and "0.9996" in md


def test_the_jobs_check_compares_the_pooled_mase(monkeypatch):
    _benchmarks(monkeypatch)
    from benchmarks import backtest, modes

    seen = []

    def fake(name, args, config, extra):
        seen.append(args)
        return {"run": {"seconds": 10.0, "mase": 1.0},
                "backtest serial": fake_variant(30.0, 0.99),
                "backtest --jobs 2": fake_variant(20.0, 0.98)}[name]

    monkeypatch.setattr(backtest, "variant", fake)
    out = backtest.measure(modes.QUICK)
    assert seen == [["run"], ["backtest"], ["backtest", "--jobs", "2"]]
    ratio, check = out["checks"]
    assert check["status"] == "MISS" and abs(check["value"] - 0.01) < 1e-12
    assert out["serial_over_run"] == 3.0 and abs(out["jobs2_over_serial"] - 2 / 3) < 1e-12
    # issue 17: the serial backtest at most 3x one run (3.0 is on the line)
    assert ratio["status"] == "PASS" and ratio["value"] == 3.0 and ratio["target"] == "<= 3x"
