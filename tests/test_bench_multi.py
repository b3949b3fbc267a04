"""The benchmark's many-tickers section: skipped in --tiny mode, rendered (Ray skipped when not
installed, per-ticker vs global verdict), and ``--only`` merging into an existing report.
Nothing is trained here."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _benchmarks(monkeypatch):
    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.__main__")


def fake_multi() -> dict:
    tick = {"GOOG": 0.99, "RW1": 1.0}
    run = {"command": "stockrnn -q run --config configs/multi.yaml", "rc": 0, "seconds": 20.0,
           "batch_seconds": 15.0, "max_rss_mib": 700,
           "tickers": {t: {"status": "ok", "mase": m, "error": None} for t, m in tick.items()}}
    return {"config": "configs/multi.yaml", "checks": [],
            "variants": {"serial": run, "jobs 2": run,
                         "ray": {"skipped": "ray not installed (pip install 'stockrnn[ray]')"},
                         "global": {**run, "tickers": {"GOOG": {"status": "ok", "mase": 0.98},
                                                       "RW1": {"status": "ok", "mase": 1.01}}}},
            "quality": [{"ticker": "GOOG", "per_ticker_mase": 0.99, "jobs 2_mase": 0.99,
                         "ray_mase": None, "global_mase": 0.98, "global_better": True},
                        {"ticker": "RW1", "per_ticker_mase": 1.0, "jobs 2_mase": 1.0,
                         "ray_mase": None, "global_mase": 1.01, "global_better": False}]}


def test_skipped_in_tiny_mode_and_rendered(monkeypatch):
    main = _benchmarks(monkeypatch)
    from benchmarks import machine, modes, multi, report

    assert multi.measure(modes.TINY) == {"skipped": "not measured in --tiny mode"}
    assert any(name == "multi" for name, _ in main.SECTIONS)
    md = report.render({"mode": "quick", "command": "python -m benchmarks --quick",
                        "machine": machine.describe(), "versions": machine.versions(),
                        "multi": fake_multi(), "targets": []})
    assert "## Many tickers" in md and "skipped: ray not installed" in md
    assert "beats the per-ticker models on 1 of 2 tickers" in md


def test_only_merges_into_the_existing_report(monkeypatch, tmp_path):
    main = _benchmarks(monkeypatch)
    from benchmarks import machine

    old = {"schema": 1, "mode": "quick", "command": "python -m benchmarks --quick",
           "machine": machine.describe(), "versions": machine.versions(),
           "quality": {"table": [], "checks": [], "seeds": [42], "synthetic_rows": 2000,
                       "ar1_phi": 0.6}, "multi": fake_multi()}
    (tmp_path / "benchmarks.json").write_text(json.dumps(old))
    assert main.main(["--tiny", "--only", "multi", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "benchmarks.json").read_text())
    assert res["quality"] == old["quality"] and res["command"] == old["command"]
    assert res["multi"] == {"skipped": "not measured in --tiny mode"}
    (rerun,) = res["reruns"]
    assert rerun["sections"] == ["multi"] and "--only multi" in rerun["command"]
    md = (tmp_path / "benchmarks.md").read_text()
    assert "Re-measured later: section(s) multi" in md and "Skipped: not measured" in md
