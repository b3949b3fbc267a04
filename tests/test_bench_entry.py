"""`python -m benchmarks --tiny --out DIR` writes benchmarks.md and benchmarks.json with every
section. Structure only: no timing is asserted (timings depend on the machine).

The benchmark's ``main`` runs in this process. Its light worker (prepare) runs in its own
process as the benchmark starts it; the TensorFlow workers (speed, quality) run the same worker
functions here, where TensorFlow is loaded already (a worker process costs a TensorFlow import,
about 8 s of CPU each, and the figures are not what these tests check). The many-tickers
section runs its real `stockrnn run` processes, kept small (2 tickers, one epoch)."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from pathlib import Path

import pytest
from helpers import saved_logging

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("commands", "prepare", "speed", "quality", "many")
HEADINGS = ("# stockrnn benchmarks (tiny mode)", "## Machine",
            "## Speed: stockrnn vs the lectures' recipe", "## Command line",
            "## prepare: dataset.build", "## Forecast quality", "## Many tickers at scale",
            "## Targets")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as mp, saved_logging(("stockrnn", "tensorflow")):
        if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository
            mp.syspath_prepend(str(REPO))
        main = importlib.import_module("benchmarks.__main__")
        from benchmarks import quality, speed, subprocesses

        real = subprocesses.run_worker

        def run_worker(task, args, backend=None, timeout=1800, label=""):
            if task not in ("speed", "quality"):
                return real(task, args, backend, timeout, label)
            assert backend in (None, "tensorflow"), backend  # this process's backend
            worker = importlib.import_module(f"benchmarks.{task}").worker
            try:  # what benchmarks.worker does, with the same JSON in and out
                return json.loads(json.dumps(worker(json.loads(json.dumps(args)))))
            except Exception as exc:
                return {"error": f"worker {task} (in-process) failed: {exc!r}"}

        mp.setattr(speed, "run_worker", run_worker)
        mp.setattr(quality, "run_worker", run_worker)
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main.main(["--tiny", "--out", str(out)])
    return rc, stdout.getvalue(), stderr.getvalue(), out


def report(bench) -> dict:
    return json.loads((bench[-1] / "benchmarks.json").read_text())


def test_exits_zero_and_writes_both_files(bench):
    rc, stdout, stderr, out = bench
    assert rc == 0, f"stdout:\n{stdout}\nstderr:\n{stderr[-4000:]}"
    assert (out / "benchmarks.md").is_file()
    assert (out / "benchmarks.json").is_file()
    assert not list(out.glob(".*.tmp")), "temp files of the atomic writes were left behind"


def test_markdown_has_every_section(bench):
    md = (bench[-1] / "benchmarks.md").read_text()
    for heading in HEADINGS:
        assert heading in md, heading
    assert "cores" in md and "RAM" in md
    for word in ("python", "keras", "tensorflow", "jax", "numpy"):
        assert word in md, word


def test_json_has_machine_versions_and_sections(bench):
    res = report(bench)
    assert res["mode"] == "tiny"
    assert {"cpu_model", "cores", "ram_gib", "date"} <= res["machine"].keys()
    assert {"python", "keras", "tensorflow", "jax", "numpy"} <= res["versions"].keys()
    for section in SECTIONS:
        assert section in res and "error" not in res[section], section
    assert res["errors"] == []


def test_speed_compares_stockrnn_with_the_reference(bench):
    speed = report(bench)["speed"]
    tf = speed["backends"]["tensorflow"]
    for impl in ("reference", "stockrnn"):
        fam = tf[impl]["conv1d"]
        assert fam["steady_ms_per_epoch"] > 0 and fam["fit_seconds"] > 0
        assert len(fam["repeats"][0]["epoch_seconds"]) == speed["epochs"]
    # same architecture on both sides
    assert tf["reference"]["conv1d"]["parameters"] == tf["stockrnn"]["conv1d"]["parameters"]
    (row,) = speed["ratios"]
    assert row["backend"] == "tensorflow" and row["family"] == "conv1d"
    assert row["steady_ms_per_epoch_vs_tf_reference"] > 0


def test_every_target_has_a_verdict(bench):
    res = report(bench)
    assert res["targets"], "no targets were checked"
    for check in res["targets"]:
        assert {"name", "value", "target", "status"} <= check.keys()
        assert check["status"] in ("PASS", "MISS", "MISS (no figure)")
    md = (bench[-1] / "benchmarks.md").read_text()
    for check in res["targets"]:
        assert check["name"] in md


def test_prepare_and_quality_figures(bench):
    res = report(bench)
    (prep,) = res["prepare"]["rows"].values()
    assert {"build_seconds", "build_peak_mib", "window_array_mib", "windows_are_views"} <= prep.keys()
    (row,) = res["quality"]["table"]
    assert row["dataset"] == "random_walk" and row["status"] in ("PASS", "MISS")
    assert row["mase"] > 0
    assert res["commands"]["help"]["median_seconds"] > 0


def test_many_tickers_is_skipped_in_tiny_mode(bench):
    """The many-tickers section starts real `stockrnn run` processes (a batch with --jobs 2,
    single runs, the global model): like the multi, backtest and Ray sections it is left out
    of --tiny (tests/test_bench_many.py checks its figures, targets and report on fakes)."""
    res = report(bench)
    assert res["many"] == {"skipped": "not measured in --tiny mode"}
    assert "many tickers" in (bench[-1] / "benchmarks.md").read_text().lower()


def test_missing_jax_is_reported_not_fatal(monkeypatch):
    """Without jax the JAX speed rows are skipped with a reason; nothing runs or crashes."""
    import dataclasses
    import importlib.util

    if str(REPO) not in sys.path:  # `benchmarks` is a folder of the repository, not installed
        monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import machine, modes, report, speed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    result = speed.measure(dataclasses.replace(modes.TINY, speed_backends=("jax",)))
    assert result["backends"] == {"jax": {"skipped": "jax not installed"}}
    assert result["ratios"] == []
    md = report.render({"mode": "tiny", "command": "python -m benchmarks --tiny",
                        "machine": machine.describe(), "versions": machine.versions(),
                        "speed": result, "targets": []})
    assert "jax not installed" in md
