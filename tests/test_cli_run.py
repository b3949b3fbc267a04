"""`stockrnn run` end to end on the bundled sample (smoke config): the stage lines and the run
directory printed last, the --max-mase gate, --keep, --json, -q, --allow-stale with Yahoo
unreachable, a cron-like real process (no terminal, stdin closed, --log-file), and `stockrnn
compare` over the runs.

Yahoo is the only thing faked (a client whose every call fails with ConnectionError)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import SMOKE, STAGES, copy_run, in_folder, invoke, is_png, run_child, run_zoo

from stockrnn import classical, runs
from stockrnn.data import calendars, sources

PLOTS = ("loss.png", "predictions_test.png", "residuals_test.png", "forecast.png")
SAMPLE_LAST = dt.date(2013, 3, 1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with two `run`s of the smoke config: one plain, one gated with --max-mase 0.01
    and --no-plots."""
    base = tmp_path_factory.mktemp("runcli")
    prefetch, baselines, forecasts = calendars.prefetch, classical.prefetch, classical.forecasts

    def key(*args) -> str:
        return classical.request(*args)[1]

    with in_folder(base), pytest.MonkeyPatch.context() as mp:
        mp.setattr(calendars, "prefetch", lambda name: PREFETCHED.append(name) or prefetch(name))
        mp.setattr(classical, "prefetch",
                   lambda *a: BASELINES["asked"].append(key(*a)) or baselines(*a))
        mp.setattr(classical, "forecasts",
                   lambda *a: BASELINES["used"].append(key(*a)) or forecasts(*a))
        plain = invoke("run", "-c", SMOKE)
        gated = invoke("run", "-c", SMOKE, "--max-mase", "0.01", "--set", "paths.run_name=gated",
                       "--no-plots", code=3)
    return base, plain, gated


PREFETCHED: list[str] = []  # the calendars the module's two runs asked to prefetch
BASELINES: dict[str, list[str]] = {"asked": [], "used": []}  # classical.prefetch's and
# classical.forecasts' calls of those runs, by the key a prefetched result is taken by


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


def test_each_run_prefetches_its_forecast_calendar(workdir):
    """After prepare (before Keras is imported) and again in predict (already started or
    built by then): XNYS for GOOG. tests/test_calendars.py checks what a prefetch does."""
    assert PREFETCHED == ["XNYS"] * 4


def test_each_run_prefetches_the_baselines_evaluate_takes(workdir):
    """After prepare, each run asks for its test split's AutoARIMA/AutoETS forecasts ahead of
    need (in a forked child where that is safe: tests/test_classical.py checks what a prefetch
    does) with exactly the arguments evaluate then asks for, so the child's result is taken."""
    assert len(BASELINES["asked"]) == 2
    assert set(BASELINES["asked"]) <= set(BASELINES["used"])


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


def test_no_plots_draws_none_and_scores_the_same(workdir):
    """--no-plots: a one-ticker run without plots/ PNGs, its metrics those of the plain run
    (the same config and seed; only the run name differs)."""
    base, plain, gated = workdir
    run = base / gated.stdout.strip().splitlines()[-1]
    assert not list(run.glob("plots/*.png"))
    same = json.loads((run_dir(base, plain) / "metrics_test.json").read_text())
    got = json.loads((run / "metrics_test.json").read_text())
    assert got["model"] == same["model"] and got["baselines"] == same["baselines"]


# --------------------------------------------------------------------------- --keep


@pytest.fixture
def base(work, sample_data, monkeypatch) -> Path:
    """A private copy of the sample store and an empty runs dir, through the environment."""
    shutil.copytree(sample_data, work / "data")
    (work / "runs").mkdir()
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(work / "data"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(work / "runs"))
    return work


@pytest.fixture
def zoo(base) -> dict[str, Path]:
    """The run zoo of helpers.run_zoo (meta.json only: what --keep's pruning reads)."""
    return run_zoo(base / "runs")


def remaining(base: Path) -> set[str]:
    return {p.name for p in (base / "runs" / "smoke").iterdir() if p.is_dir()}


def test_run_keep_is_not_applied_when_the_run_fails(zoo, base):
    invoke("run", "-c", SMOKE, "--keep", "1", "--set", "window.look_back=5000", code=1)
    assert remaining(base) >= {zoo[k].name for k in ("a", "b", "c", "killed", "running")}


# --------------------------------------------------------------------------- run --json


def test_run_json_success_and_keep_prunes_after_success(zoo, base):
    result = invoke("run", "-c", SMOKE, "--json", "--keep", "1")
    summary = json.loads(result.stdout)  # the whole stdout is one JSON object
    assert [s["name"] for s in summary["stages"]] == [*STAGES, "prune"]
    for stage in summary["stages"]:
        assert isinstance(stage["seconds"], float) and stage["seconds"] >= 0
        assert isinstance(stage["summary"], str) and stage["summary"]
    assert summary["status"] == "ok" and summary["exit_code"] == 0 and "error" not in summary
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "model.keras").is_file()
    metrics = json.loads((run_dir / "metrics_test.json").read_text())
    assert summary["metrics"]["model"]["mase"] == pytest.approx(metrics["model"]["mase"])
    assert summary["metrics"]["persistence"]["mae"] == pytest.approx(
        metrics["baselines"]["persistence"]["mae"])
    assert summary["forecast"]["as_of"] == str(SAMPLE_LAST)
    assert len(summary["forecast"]["rows"]) == 1
    assert "2 epochs" in summary["stages"][2]["summary"]
    assert result.stdout.count("\n{") == 0 and result.stdout.startswith("{")
    # --keep 1 after success: the older complete runs and the killed one are gone; the new run
    # (latest) and the one still running are left
    assert summary["stages"][5]["summary"] == "removed 4 old runs of smoke (keep 1)"
    assert remaining(base) == {run_dir.name, zoo["running"].name}
    assert runs.latest(base / "runs", "smoke").path.resolve() == run_dir.resolve()


def test_run_json_quality_gate_failure_and_keep_is_not_applied(zoo, base):
    result = invoke("run", "-c", SMOKE, "--json", "--max-mase", "0.01", "--keep", "1", code=3)
    summary = json.loads(result.stdout)
    assert summary["status"] == "error" and summary["exit_code"] == 3
    assert "quality gate failed" in summary["error"] and "0.01" in summary["error"]
    # everything ran and was written, but nothing was pruned
    assert [s["name"] for s in summary["stages"]] == STAGES
    assert (Path(summary["run_dir"]) / "metrics_test.json").is_file()
    assert summary["metrics"]["model"]["mase"] > 0.01
    assert re.search(r"^Error: quality gate failed", result.stderr, re.M)
    assert remaining(base) >= {zoo[k].name for k in ("a", "b", "c", "killed", "running")}


def test_run_json_failure_in_a_stage(base):
    result = invoke("run", "-c", SMOKE, "--json", "--set", "window.look_back=5000", code=1)
    summary = json.loads(result.stdout)
    assert summary["status"] == "error" and summary["exit_code"] == 1
    assert "too few" in summary["error"]
    assert [s["name"] for s in summary["stages"]] == ["fetch"]  # prepare failed
    assert summary["run_dir"] is None


def test_run_json_config_error(base):
    result = invoke("run", "-c", SMOKE, "--json", "--set", "window.look_bak=5", code=2)
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["exit_code"], summary["stages"]) == ("error", 2, [])
    assert "did you mean look_back?" in summary["error"]


# --------------------------------------------------------------------------- a cron-like run


@pytest.fixture(scope="module")
def cron_run(sample_data, tmp_path_factory):
    """`stockrnn --log-file LOG run` as cron runs it: a real process (helpers.Child), no
    terminal, stdin closed, no STOCKRNN_* in the environment (./data, holding the sample, and
    ./runs)."""
    base = tmp_path_factory.mktemp("cron")
    shutil.copytree(sample_data, base / "data")
    log = base / "logs" / "stockrnn.log"
    log.parent.mkdir()
    log.write_text("an earlier line\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKRNN_")}
    env.pop("TERM", None)
    proc = run_child(["--log-file", str(log), "run", "-c", str(SMOKE)], base, env)
    return base, proc, log


def test_nothing_prompts_with_stdin_closed(cron_run):
    base, proc, _ = cron_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKRNN_")}
    out = run_child(["runs", "prune", "--keep", "0", "--runs-dir", str(base / "runs")], base, env)
    assert out.returncode == 0 and out.stdout == "", out.stderr  # latest kept, no question


def test_no_ansi_or_carriage_returns_without_a_terminal(cron_run):
    _, proc, _ = cron_run
    for stream in (proc.stdout, proc.stderr):
        assert "\x1b" not in stream and "\r" not in stream
    err = proc.stderr
    assert re.search(r"^epoch 1/2 loss \d+\.\d+ val_loss \d+\.\d+ \(\d+\.\d+s\)$", err, re.M), err
    assert re.search(r"^epoch 2/2 ", err, re.M)


def test_stdout_has_results_only(cron_run):
    base, proc, _ = cron_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == STAGES
    run = base / lines[-1]
    assert Path(lines[-1]).parts[:2] == ("runs", "smoke")  # ./runs without STOCKRNN_RUNS_DIR
    assert (run / "meta.json").is_file()
    assert (run / "model.keras").is_file() and (run / "metrics_test.json").is_file()
    assert not re.search(r"^epoch \d", proc.stdout, re.M)  # progress is on stderr
    assert "Traceback" not in proc.stderr


def test_log_file_appends_timestamped_lines(cron_run):
    _, proc, log = cron_run
    lines = log.read_text().splitlines()
    assert lines[0] == "an earlier line"
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")
    assert all(stamp.match(ln) for ln in lines[1:]), lines
    assert any("epoch 2/2" in ln for ln in lines)
    assert any("training lstm on GOOG" in ln for ln in lines)


# --------------------------------------------------------------------------- --allow-stale


class Unreachable:
    """A yfinance Ticker stand-in whose every request fails like a dead network."""

    calls = 0

    def __init__(self, symbol):
        self.symbol = symbol

    def history(self, **kwargs):
        Unreachable.calls += 1
        raise ConnectionError("Failed to establish a new connection: [Errno 101] "
                              "Network is unreachable")


@pytest.fixture
def offline(monkeypatch):
    """Yahoo unreachable: YahooSource gets the failing client and does not really sleep."""
    real_init = sources.YahooSource.__init__
    sleeps: list[float] = []

    def init(self, *args, **kwargs):
        kwargs.update(client=Unreachable, sleep=sleeps.append)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(sources.YahooSource, "__init__", init)
    Unreachable.calls = 0
    return sleeps


def test_fetch_failure_without_allow_stale_exits_1(base, offline):
    before = (base / "data" / "GOOG_1d.csv").read_bytes()
    result = invoke("run", "-c", SMOKE, "--set", "data.source=yahoo", code=1)
    assert re.search(r"^Error: Yahoo Finance network error for GOOG after 5 attempts",
                     result.stderr, re.M), result.stderr
    assert Unreachable.calls == 5 and offline == [1, 2, 4, 8]
    assert not (base / "runs" / "smoke").exists() or remaining(base) == set()
    assert (base / "data" / "GOOG_1d.csv").read_bytes() == before


def test_allow_stale_goes_on_with_stored_data_and_quiet_keeps_only_warnings(base, offline):
    """Yahoo unreachable: with --allow-stale the run goes on with the stored data, saying how
    old they are. With -q, what is left on stderr are such warnings (no progress, no info); the
    results still go to stdout."""
    result = invoke("-q", "run", "-c", SMOKE, "--set", "data.source=yahoo", "--allow-stale")
    age = (dt.date.today() - SAMPLE_LAST).days
    lines = result.stdout.splitlines()
    assert lines[0] == (f"fetch     GOOG 1d: fetch failed, using stored data ending {SAMPLE_LAST} "
                        f"({age} days old)")
    assert [ln.split()[0] for ln in lines[:-1]] == STAGES
    assert re.search(rf"fetch failed \(.*Network is unreachable.*\); going on with stored data "
                     rf"ending {SAMPLE_LAST} \({age} days old\)", result.stderr), result.stderr
    assert Unreachable.calls == 5
    run = base / lines[-1]
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    assert (run / "forecast.csv").is_file() and (run / "model.keras").is_file()
    # -q: only warnings on stderr (Yahoo's retries, the failed fetch, the years-old data)
    assert "epoch" not in result.stderr and "training" not in result.stderr, result.stderr
    for line in result.stderr.splitlines():
        assert "retrying in" in line or "days ago" in line or "days old" in line, line


def test_allow_stale_without_stored_data_still_fails(base, offline):
    result = invoke("run", "-c", SMOKE, "--set", "data.source=yahoo", "--set", "data.ticker=AAPL",
                    "--allow-stale", code=1)
    assert re.search(r"^Error: Yahoo Finance network error for AAPL", result.stderr, re.M)


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
