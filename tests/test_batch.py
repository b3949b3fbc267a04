"""Multi-ticker configs through `stockrnn run`: one ordinary run per ticker, a batch summary
(JSON and CSV, config order), failing tickers and --allow-failures, --jobs 2 giving the serial
results, plots only with --plots, compare over a batch directory; one-ticker commands refuse a
batch config."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from helpers import MULTI, in_folder, invoke, job_surroundings, sets

TINY = {"window.look_back": 10, "model.units": [4], "train.epochs": 2, "train.batch_size": 128,
        "data.source": "synthetic", "paths.run_name": "b"}


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """The same three-ticker batch (BAD1 fails: no such synthetic series) run serially with
    --allow-failures 1 (no plots: a batch's default), and with --jobs 2 --plots without it."""
    base = tmp_path_factory.mktemp("multi")
    with in_folder(base):
        args = sets(**TINY, **{"data.tickers": ["RW1", "BAD1", "AR2"]})
        serial = invoke("run", *args, "--allow-failures", "1")
        parallel = invoke("run", *args, "--jobs", "2", "--plots", "--json", code=1)
    return base, serial, parallel


def summary_of(base: Path, result) -> dict:
    batch_dir = base / result.stdout.strip().splitlines()[-1]
    return json.loads((batch_dir / "summary.json").read_text())


def test_batch_layout_and_summary_files(batches):
    base, serial, _ = batches
    batch_dir = Path(serial.stdout.strip().splitlines()[-1])
    assert batch_dir.parts[:2] == ("runs", "b") and batch_dir.name.startswith("batch-")
    summary = summary_of(base, serial)
    rows = {r["ticker"]: r for r in summary["tickers"]}
    assert list(rows) == ["RW1", "BAD1", "AR2"]  # config order, whatever finished first
    for t in ("RW1", "AR2"):
        r = rows[t]
        assert r["status"] == "ok" and r["error"] is None
        run = base / r["run_dir"]
        assert run.parent.name == f"b-{t}" and (run / "metrics_test.json").is_file()
        m = json.loads((run / "metrics_test.json").read_text())["model"]
        assert r["mase"] == m["mase"] and r["directional_accuracy"] == m["directional_accuracy"]
        assert json.loads((run / "meta.json").read_text())["status"] == "complete"
        assert (base / "runs" / f"b-{t}" / "latest").is_file()  # (the --jobs 2 batch's run)
        assert r["seconds"] > 0
    assert rows["BAD1"]["status"] == "failed" and "BAD1" in rows["BAD1"]["error"]
    assert summary["failed"] == ["BAD1"] and summary["ok"] == 2
    table = list(csv.DictReader((base / batch_dir / "summary.csv").open()))
    assert [r["ticker"] for r in table] == ["RW1", "BAD1", "AR2"]
    assert set(table[0]) >= {"ticker", "status", "error", "run_dir", "mase",
                             "directional_accuracy", "seconds"}
    assert float(table[0]["mase"]) == pytest.approx(rows["RW1"]["mase"])


def test_table_on_stdout_and_allow_failures(batches):
    _, serial, _ = batches
    lines = serial.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["ticker", "status", "MASE"]
    assert lines[1].split()[:2] == ["RW1", "ok"]
    assert lines[2].split()[:2] == ["BAD1", "failed"] and "error:" in lines[2]
    assert "2 ok, 1 failed" in lines[-2]
    assert serial.exit_code == 0  # one failure tolerated by --allow-failures 1


def test_failure_exits_1_and_json(batches):
    base, _, parallel = batches
    out = json.loads(parallel.stdout)
    assert out["status"] == "error" and out["exit_code"] == 1 and out["jobs"] == 2
    assert "1 of 3 tickers failed: BAD1" in out["error"] and "BAD1" in parallel.stderr
    assert (Path(base / out["batch_dir"]) / "summary.json").is_file()


def test_jobs_2_gives_the_serial_results(batches):
    base, serial, parallel = batches
    one = {r["ticker"]: r for r in summary_of(base, serial)["tickers"]}
    two = {r["ticker"]: r for r in json.loads(parallel.stdout)["tickers"]}
    for t in ("RW1", "AR2"):
        assert two[t]["status"] == "ok"
        assert two[t]["run_dir"] != one[t]["run_dir"]
        assert two[t]["mase"] == pytest.approx(one[t]["mase"], abs=1e-6)
        assert two[t]["test_mae"] == pytest.approx(one[t]["test_mae"], abs=1e-6)


PLOTS = ("loss.png", "predictions_test.png", "residuals_test.png", "forecast.png")


def test_plots_only_on_request(batches):
    """A batch draws no plots unless --plots; the metrics are the same either way (above)."""
    base, serial, parallel = batches
    one = {r["ticker"]: r for r in summary_of(base, serial)["tickers"]}
    two = {r["ticker"]: r for r in json.loads(parallel.stdout)["tickers"]}
    for t in ("RW1", "AR2"):
        plain, plotted = base / one[t]["run_dir"], base / two[t]["run_dir"]
        assert (plain / "forecast.csv").is_file() and (plain / "metrics_test.json").is_file()
        assert not list(plain.glob("plots/*.png"))
        assert sorted(p.name for p in plotted.glob("plots/*.png")) == sorted(PLOTS)


def test_compare_accepts_a_batch_dir(batches, monkeypatch):
    base, serial, _ = batches
    monkeypatch.chdir(base)
    batch_dir = serial.stdout.strip().splitlines()[-1]
    rows = json.loads(invoke("compare", batch_dir, "--format", "json").stdout)
    assert sorted(r["ticker"] for r in rows) == ["AR2", "RW1"]
    monkeypatch.chdir(base.parent)  # run dirs in the summary are relative: found from anywhere
    rows = json.loads(invoke("compare", base / batch_dir, "--format", "json").stdout)
    assert sorted(r["ticker"] for r in rows) == ["AR2", "RW1"]


def test_all_failed_exits_1_even_with_allowance_below():
    result = invoke("run", *sets(**TINY, **{"data.tickers": ["NOPE", "BAD2"]}),
                    "--allow-failures", "1", code=1)
    assert "2 of 2 tickers failed" in result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("runs/b/batch-")


def test_one_ticker_commands_refuse_a_batch_config():
    for cmd in ("train", "prepare"):
        result = invoke(cmd, "-c", MULTI, code=2)
        assert "use `stockrnn run`" in result.stderr


def test_workers_take_the_environment_and_folder_of_the_process_that_starts_them(
        batches, monkeypatch, tmp_path):
    """TensorFlow jobs run in workers forked from a fork server (which imported TensorFlow
    once): each takes this process's environment and working folder as it is now, not the
    server's, and its share of the threads. JAX jobs are spawned (importing TensorFlow would
    fix Keras' backend before the job chose JAX)."""
    from stockrnn import jobs
    from stockrnn.options import RunOptions

    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the server's start sets its own, then these
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert jobs.worker_context("tensorflow").get_start_method() == "forkserver"
    assert os.environ["KERAS_BACKEND"] == "jax" and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert jobs.worker_context("jax").get_start_method() == "spawn"
    monkeypatch.setenv("STOCKRNN_TEST_PROBE", "now")
    monkeypatch.chdir(tmp_path)
    opts = jobs.plan(RunOptions(jobs=2), 3)
    got = jobs.run(job_surroundings, ["a", "b", "c"], opts, backend="tensorflow")
    assert [g["item"] for g in got] == ["a", "b", "c"]
    assert all(g["probe"] == "now" and g["cwd"] == str(tmp_path) for g in got)
    assert all(g["pid"] != os.getpid() for g in got) and all(g["threads"] == str(opts.threads)
                                                        for g in got)


def test_one_thread_limits_xla_too_and_keeps_the_users_flags(monkeypatch):
    """A job of one thread gets XLA's (JAX's) one-thread flags as well; a flag the user set in
    XLA_FLAGS stays as set, and a flag of its own is not added twice."""
    from stockrnn import jobs

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=true")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(var, raising=False)
    jobs.limit_threads(1)
    jobs.limit_threads(1)
    assert os.environ["XLA_FLAGS"].split() == [
        "--xla_dump_to=/tmp/x", "--xla_cpu_multi_thread_eigen=true",
        "intra_op_parallelism_threads=1"]
    assert os.environ["OMP_NUM_THREADS"] == os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
    monkeypatch.delenv("XLA_FLAGS")
    jobs.limit_threads(2)
    assert "XLA_FLAGS" not in os.environ and os.environ["OMP_NUM_THREADS"] == "2"
