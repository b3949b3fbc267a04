"""The benchmark's many-tickers-at-scale section (issue 17): its tickers, the per-ticker figures
and the extrapolation to 500 tickers, the targets (500 tickers in 600 s, 8 GiB for the
tree, every ticker ok, a batch equal to single runs), skipped when a mode lists no batch,
rendered with the global model beside the per-ticker models. Nothing is trained here: the
section starts real batches of hundreds of tickers, so --tiny leaves it out, and `make bench`
(`python -m benchmarks --quick --only many`) runs it for real."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch):
    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    importlib.import_module("benchmarks.__main__")
    from benchmarks import many, modes, targets

    return many, modes, targets


def fake_batch(backend: str, n: int, seconds: float, mase: float = 1.0, **extra) -> dict:
    rows = {t: {"status": "ok", "mase": mase, "error": None, "seconds": 2.0}
            for t in [f"{'RW' if i % 2 else 'AR'}{i}" for i in range(1, n + 1)]}
    return {"backend": backend, "n": n, "command": f"stockrnn -q run ... {backend}", "rc": 0,
            "seconds": seconds, "cpu_seconds": 2 * seconds, "max_rss_mib": 1100.0,
            "tree_peak_rss_mib": 2400.0, "tickers": rows, "batch_seconds": seconds - 5,
            "jobs": 2, **extra}


def test_tickers_alternate_random_walks_and_ar1(bench):
    many, _, _ = bench
    assert many.tickers(5) == ["RW1", "AR2", "RW3", "AR4", "RW5"]
    assert len(set(many.tickers(500))) == 500


def test_per_ticker_figures_and_extrapolation(bench):
    many, _, targets = bench
    full = many.per_ticker(fake_batch("jax", 500, 450.0))
    assert full["seconds_for_500"] == 450.0 and full["ok"] == 500  # measured, not scaled
    assert full["seconds_per_ticker"] == pytest.approx(0.9)
    assert full["cpu_seconds_per_ticker"] == pytest.approx(1.8)
    small = many.per_ticker(fake_batch("tensorflow", 50, 150.0, mase=0.95))
    # the 50 tickers' wall time, then 450 more at the median ticker's 2 s, 2 at once
    assert small["seconds_for_500"] == pytest.approx(150.0 + 450 * 2.0 / 2)
    assert small["mean_mase"] == pytest.approx(0.95) and small["median_ticker_seconds"] == 2.0
    failed = fake_batch("jax", 4, 10.0)
    failed["tickers"]["AR2"] = {"status": "failed", "mase": None, "error": "x", "seconds": 1.0}
    assert many.per_ticker(failed)["ok"] == 3
    assert targets.MANY_TICKERS == 500 and targets.MANY_SECONDS == 600


def test_checks_name_the_extrapolation_and_judge_each_target(bench):
    many, _, _ = bench
    r = fake_batch("jax", 500, 450.0)
    checks = {c["name"]: c for c in many._checks(r, many.per_ticker(r))}
    assert checks["many: 500 tickers, jax, --jobs 2: wall s"]["status"] == "PASS"
    assert checks["many: 500 tickers, jax, --jobs 2: tree peak RSS MiB"]["status"] == "PASS"
    assert checks["many: 500 tickers, jax, --jobs 2: tickers ok"]["status"] == "PASS"
    r = fake_batch("tensorflow", 50, 150.0, tree_peak_rss_mib=9000.0)
    for row in r["tickers"].values():
        row["seconds"] = 4.0
    r["tickers"]["RW1"]["status"] = "failed"
    checks = {c["name"]: c for c in many._checks(r, many.per_ticker(r))}
    wall = checks["many: 500 tickers, tensorflow, --jobs 2: wall s, extrapolated from 50 "
                  "tickers"]
    assert wall["value"] == pytest.approx(150.0 + 450 * 4.0 / 2) and wall["status"] == "MISS"
    assert checks["many: 50 tickers, tensorflow, --jobs 2: tree peak RSS MiB"]["status"] == \
        "MISS"
    assert checks["many: 50 tickers, tensorflow, --jobs 2: tickers ok"]["status"] == "MISS"


def test_skipped_without_batches_and_listed_in_every_mode(bench):
    many, modes, _ = bench
    off = dataclasses.replace(modes.TINY, many=())
    assert many.measure(off) == {"skipped": "not measured in --tiny mode"}
    assert modes.QUICK.many[0] == ("jax", 500) and modes.FULL.many[0] == ("jax", 500)
    assert all(n <= 3 for _, n in modes.TINY.many)  # the test's --tiny run stays short
    main = importlib.import_module("benchmarks.__main__")
    assert "many" in [name for name, _ in main.SECTIONS]


def test_measure_runs_the_batches_single_runs_and_the_global_model(bench, monkeypatch):
    """The order of the commands and what the section makes of their summaries."""
    many, modes, _ = bench
    calls = []

    def batch(backend, n, overrides, extra=()):
        calls.append(("batch", backend, n, tuple(extra)))
        if "model.scope=global" in extra:
            out = fake_batch(backend, n, 80.0, mase=0.99, global_train_seconds=40.0)
            out["tickers"]["RW1"]["mase"] = 1.01
            return out
        return fake_batch(backend, n, 400.0 if backend == "jax" else 100.0)

    def single(backend, ticker, overrides):
        calls.append(("single", backend, ticker))
        return {"ticker": ticker, "mase": 1.0 + (1e-9 if ticker == "AR4" else 0.0),
                "seconds": 12.0}

    monkeypatch.setattr(many, "batch", batch)
    monkeypatch.setattr(many, "single", single)
    mode = dataclasses.replace(modes.QUICK, many=(("jax", 6), ("tensorflow", 2)))
    res = many.measure(mode)
    assert calls == [("batch", "jax", 6, ("--jobs", "2")),
                     ("batch", "tensorflow", 2, ("--jobs", "2")),
                     ("single", "jax", "RW1"), ("single", "jax", "AR4"),
                     ("single", "jax", "AR6"),
                     ("batch", "jax", 6, ("--set", "model.scope=global"))]
    equal = res["checks"][-1]
    assert equal["status"] == "PASS" and equal["value"] == pytest.approx(1e-9)
    assert res["global"]["better_on"] == 5 and res["global"]["compared"] == 6
    md = "\n".join(many.lines(res))
    assert "| jax | 6 |" in md and "| tensorflow | 2 |" in md
    assert "| global | 80.0 | 40.0 |" in md
    assert "lower test MASE on 5 of 6 tickers" in md
    # the JSON keeps the figures and the failed tickers' errors, not a row per ticker
    assert all("tickers" not in r and r["failed"] == {} for r in [*res["batches"], res["global"]])


def test_compact_keeps_the_failed_tickers_errors(bench):
    many, _, _ = bench
    r = fake_batch("jax", 3, 9.0)
    r["tickers"]["AR2"].update(status="failed", mase=None, error="ValueError: x")
    assert many.compact(r)["failed"] == {"AR2": "ValueError: x"} and "tickers" not in r


def test_rendered_in_the_report(bench):
    many, _, _ = bench
    from benchmarks import machine, report

    r = fake_batch("jax", 3, 9.0)
    r["figures"] = many.per_ticker(r)
    section = {"config": "configs/lstm.yaml", "overrides": [], "batches": [r], "checks": [],
               "single": [{"ticker": "RW1", "mase": 1.0, "batch_mase": 1.0, "abs_diff": 0.0,
                           "seconds": 10.0}]}
    md = report.render({"mode": "quick", "command": "python -m benchmarks --quick",
                        "machine": machine.describe(), "versions": machine.versions(),
                        "many": section, "targets": []})
    assert "## Many tickers at scale" in md and "| RW1 | 1.000000 | 1.000000 |" in md
    body = md.split("## Many tickers at scale")[1].split("\n## ")[0]
    assert "model.scope=global" not in body  # not measured: no global table
