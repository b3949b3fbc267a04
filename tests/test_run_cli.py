"""`stockrnn run` end to end on the bundled sample, and `stockrnn compare` over its runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers_eval import REPO, SMOKE, copy_run, invoke, is_png, isolate

STAGES = ("fetch", "prepare", "train", "evaluate", "predict")
PLOTS = ("loss.png", "predictions_test.png", "residuals_test.png", "forecast.png")


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    """Nothing a test writes lands in the repository."""
    isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with two `run`s of the smoke config: one plain, one gated with --max-mase 0.01."""
    base = tmp_path_factory.mktemp("runcli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.delenv("STOCKRNN_DATA_DIR", raising=False)
        mp.delenv("STOCKRNN_RUNS_DIR", raising=False)
        plain = invoke("run", "-c", SMOKE)
        gated = invoke("run", "-c", SMOKE, "--max-mase", "0.01", "--set", "paths.run_name=gated",
                       code=3)
    return base, plain, gated


def run_dir(base: Path, result) -> Path:
    return base / result.stdout.strip().splitlines()[-1]


def test_stage_lines_and_run_dir_last(workdir):
    base, plain, _ = workdir
    lines = plain.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:5]] == list(STAGES)
    assert len(lines) == 6
    run = Path(lines[-1])
    assert not run.is_absolute() and run.parts[:2] == ("runs", "smoke")
    assert (base / run).is_dir()
    assert (base / "runs" / "smoke" / "latest").read_text().strip() == run.name
    assert "GOOG 1d" in lines[0] and "2148 rows" in lines[0]
    assert str(run) in lines[4] and "forecast.csv" in lines[4]
    # nothing landed outside the working folder's data/ and runs/
    assert sorted(p.name for p in base.iterdir()) == ["data", "runs"]


def test_run_dir_contents(workdir):
    base, plain, _ = workdir
    run = run_dir(base, plain)
    for name in ("model.keras", "metrics_test.json", "forecast.csv", "config.yaml", "meta.json",
                 "series.csv", "scaler.json", "intervals.json", "history.csv"):
        assert (run / name).is_file(), name
    for name in PLOTS:
        assert is_png(run / "plots" / name), name
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    fc = pd.read_csv(run / "forecast.csv")
    assert list(fc.columns[:6]) == ["date", "forecast", "lower_80", "upper_80", "lower_95",
                                    "upper_95"]
    assert len(fc) == 1 and fc["date"][0] == "2013-03-04"  # the Monday after the last bar


def test_evaluate_line_matches_metrics_file(workdir):
    base, plain, _ = workdir
    m = json.loads((run_dir(base, plain) / "metrics_test.json").read_text())
    line = plain.stdout.splitlines()[3]
    assert f"test MASE {m['model']['mase']:.4f}" in line
    assert f"MAE {m['model']['mae']:.4f}" in line
    assert f"persistence {m['baselines']['persistence']['mae']:.4f}" in line


def test_max_mase_exits_3_after_writing_everything(workdir):
    base, _, gated = workdir
    lines = gated.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:5]] == list(STAGES)
    run = base / lines[-1]
    assert run.parts[-2] == "gated"
    m = json.loads((run / "metrics_test.json").read_text())
    assert m["model"]["mase"] > 0.01
    assert "quality gate failed" in gated.stderr
    assert (run / "forecast.csv").is_file()
    assert (base / "runs" / "gated" / "latest").read_text().strip() == run.name


def test_run_as_a_subprocess(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("STOCKRNN_DATA_DIR", "STOCKRNN_RUNS_DIR")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "stockrnn", "-q", "run", "-c", str(SMOKE),
                           "--set", "train.epochs=1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:5]] == list(STAGES)
    run = tmp_path / lines[-1]
    assert (run / "model.keras").is_file() and (run / "metrics_test.json").is_file()
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- compare


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics_test.json").read_text())["model"]


def test_compare_table(workdir):
    base, plain, gated = workdir
    out = invoke("compare", "--runs-dir", base / "runs").stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["model", "ticker", "look_back"]
    assert len(lines) == 3
    for result in (plain, gated):
        run = run_dir(base, result)
        line = next(ln for ln in lines if ln.endswith(str(run.relative_to(base))))
        assert line.split()[:4] == ["lstm", "GOOG", "10", "2"]
        assert f"{metrics_of(run)['mase']:.4f}" in line


def test_compare_json_and_csv(workdir):
    base, plain, gated = workdir
    rows = json.loads(invoke("compare", "--runs-dir", base / "runs", "--format", "json").stdout)
    assert len(rows) == 2
    runs = {Path(r["run"]).name: r for r in rows}
    for result in (plain, gated):
        run = run_dir(base, result)
        row = runs[run.name]
        m = metrics_of(run)
        assert row["mase"] == m["mase"] and row["test_mae"] == m["mae"]
        assert row["directional_accuracy"] == m["directional_accuracy"]
        assert row["model"] == "lstm" and row["ticker"] == "GOOG" and row["look_back"] == 10
        assert row["epochs"] == json.loads((run / "meta.json").read_text())["epochs_run"]
    assert [r["mase"] for r in rows] == sorted(r["mase"] for r in rows)
    text = invoke("compare", "--runs-dir", base / "runs", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["run"] for r in table] == [r["run"] for r in rows]
    assert [float(r["mase"]) for r in table] == pytest.approx([r["mase"] for r in rows])
    assert set(table[0]) >= {"run", "model", "ticker", "look_back", "epochs", "test_mae", "mase",
                             "directional_accuracy", "train_seconds"}


def test_compare_named_runs_and_unevaluated(workdir, tmp_path):
    base, plain, _ = workdir
    runs = tmp_path / "runs"
    fresh = copy_run(run_dir(base, plain), runs / "copy" / "20000101T000000Z")
    (fresh / "metrics_test.json").unlink()
    out = invoke("compare", "--runs-dir", runs).stdout
    assert "-" in out.splitlines()[1].split()
    assert "stockrnn evaluate --run RUN" in out
    rows = json.loads(invoke("compare", str(fresh), str(run_dir(base, plain)),
                             "--format", "json").stdout)
    assert [Path(r["run"]).resolve() for r in rows] == [run_dir(base, plain).resolve(),
                                                        fresh.resolve()]  # unscored last
    assert rows[1]["mase"] is None


def test_compare_without_runs_exits_1(tmp_path):
    result = invoke("compare", "--runs-dir", tmp_path / "nothing", code=1)
    assert "no complete runs" in result.stderr
