"""Running unattended (README "Running unattended"): runs list/prune and retention, `run --keep`,
`run --json`, `--log-file`, output without a terminal, `-q`, `--allow-stale`, never prompting.

Yahoo is the only thing faked (a client whose every call fails with ConnectionError).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stockrnn import locking, runs
from stockrnn.cli import cli
from stockrnn.data import sources

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
STAGES = ["fetch", "prepare", "train", "evaluate", "predict"]
SAMPLE_LAST = dt.date(2013, 3, 1)
DEAD_PID = 2 ** 22 + 12345  # above Linux's pid_max default: no such process


def invoke(*args, code: int | None = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if code is not None:
        assert result.exit_code == code, (
            f"exit {result.exit_code} != {code} for {args}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}\nexception: {result.exception!r}")
    return result


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A data dir holding the bundled GOOG sample, and one complete smoke run to copy."""
    base = tmp_path_factory.mktemp("unattended")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOCKRNN_DATA_DIR", str(base / "data"))
        mp.setenv("STOCKRNN_RUNS_DIR", str(base / "runs"))
        invoke("fetch", "GOOG", "--source", "sample")
        invoke("train", "-q", "-c", SMOKE)
    return base


@pytest.fixture
def base(seeded, tmp_path, monkeypatch) -> Path:
    """Private data dir (a copy) and an empty runs dir, through the environment."""
    shutil.copytree(seeded / "data", tmp_path / "data")
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def template(seeded: Path) -> Path:
    return runs.latest(seeded / "runs", "smoke").path


def make_run(seeded: Path, base: Path, stamp: str, state: str = "complete") -> Path:
    """A copy of the real complete run as runs/smoke/<stamp>, in one of the states a run can be
    in: complete, killed (status running, its process gone) or running (its process alive)."""
    dest = Path(shutil.copytree(template(seeded), base / "runs" / "smoke" / stamp))
    if state != "complete":
        meta = json.loads((dest / "meta.json").read_text())
        meta.update(status="running", host=socket.gethostname(),
                    pid=os.getpid() if state == "running" else DEAD_PID)
        for key in ("finished", "epochs_run", "best_epoch"):
            meta.pop(key, None)
        (dest / "meta.json").write_text(json.dumps(meta))
        (dest / "model.keras").unlink()
    return dest


@pytest.fixture
def zoo(seeded, base) -> dict[str, Path]:
    """runs/smoke with three complete runs (a < b < c), a killed one and a running one;
    latest -> c."""
    z = {"a": make_run(seeded, base, "20200101T000000Z"),
         "b": make_run(seeded, base, "20200102T000000Z"),
         "c": make_run(seeded, base, "20200103T000000Z"),
         "killed": make_run(seeded, base, "20200104T000000Z", "killed"),
         "running": make_run(seeded, base, "20200105T000000Z", "running")}
    runs.set_latest(runs.RunDir(z["c"]))
    return z


def listing(*args) -> dict[Path, tuple[str, bool]]:
    """`stockrnn runs list ARGS` as {path: (status, is_latest)}."""
    out = {}
    for line in invoke("runs", "list", *args).stdout.splitlines():
        m = re.fullmatch(r"(complete|running|incomplete) +(\*| ) (.+)", line)
        assert m, f"unexpected line: {line!r}"
        out[Path(m.group(3))] = (m.group(1), m.group(2) == "*")
    return out


def remaining(base: Path) -> set[str]:
    return {p.name for p in (base / "runs" / "smoke").iterdir() if p.is_dir()}


# --------------------------------------------------------------------------- runs list / prune


def test_runs_list_statuses_and_latest_mark(zoo, base):
    expected = {zoo["a"]: ("complete", False), zoo["b"]: ("complete", False),
                zoo["c"]: ("complete", True), zoo["killed"]: ("incomplete", False),
                zoo["running"]: ("running", False)}
    assert listing("smoke") == expected
    assert listing() == expected  # every run name
    assert listing("--runs-dir", base / "runs", "smoke") == expected
    assert invoke("runs", "list", "other").stdout == ""


def test_runs_prune_removes_only_incomplete_runs(zoo, base):
    out = invoke("runs", "prune", "smoke").stdout
    assert out.splitlines() == [f"removed {zoo['killed']}"]
    assert remaining(base) == {zoo[k].name for k in ("a", "b", "c", "running")}


def test_runs_prune_keep_never_removes_latest_or_running(zoo, base):
    runs.set_latest(runs.RunDir(zoo["a"]))  # latest is the oldest complete run
    out = invoke("runs", "prune", "--keep", "1").stdout
    assert sorted(out.splitlines()) == sorted(f"removed {zoo[k]}" for k in ("b", "killed"))
    assert remaining(base) == {zoo[k].name for k in ("a", "c", "running")}
    # --keep 0 keeps nothing but the latest (and the running one)
    invoke("runs", "prune", "smoke", "--keep", "0")
    assert remaining(base) == {zoo[k].name for k in ("a", "running")}
    assert invoke("evaluate", "--run", "smoke").exit_code == 0  # latest still works


def test_runs_prune_respects_a_held_run_lock(zoo, base, caplog):
    """A train/run of the name holds runs/<name>/.lock: pruning that name exits 75 and removes
    nothing; pruning every name skips it with a warning and prunes the others."""
    other = Path(shutil.copytree(zoo["killed"], base / "runs" / "other" / "20200104T000000Z"))
    with locking.hold(base / "runs" / "smoke" / ".lock"):
        result = invoke("runs", "prune", "smoke", "--keep", "0", code=75)
        assert "another stockrnn run holds" in result.stderr
        assert remaining(base) == {p.name for p in zoo.values()}
        result = invoke("runs", "prune", "--keep", "0")
        assert result.stdout.splitlines() == [f"removed {other}"]
        assert "skipped" in result.stderr and "smoke" in result.stderr
        assert remaining(base) == {p.name for p in zoo.values()}
    invoke("runs", "prune", "smoke")  # free again
    assert zoo["killed"].name not in remaining(base)


def test_run_keep_prunes_after_success(zoo, base):
    result = invoke("run", "-c", SMOKE, "--keep", "1")
    lines = result.stdout.splitlines()
    new = Path(lines[-1])
    assert [ln.split()[0] for ln in lines[:-1]] == [*STAGES, "prune"]
    assert "removed 4 old runs of smoke (keep 1)" in lines[5]
    assert remaining(base) == {new.name, zoo["running"].name}
    assert runs.latest(base / "runs", "smoke").path.resolve() == (base / new).resolve()


def test_run_keep_is_not_applied_when_the_run_fails(zoo, base):
    invoke("run", "-c", SMOKE, "--keep", "1", "--set", "window.look_back=5000", code=1)
    assert remaining(base) >= {zoo[k].name for k in ("a", "b", "c", "killed", "running")}


def test_run_keep_is_not_applied_when_the_quality_gate_fails(zoo, base):
    result = invoke("run", "-c", SMOKE, "--keep", "1", "--max-mase", "0.01", code=3)
    assert "prune" not in result.stdout
    assert remaining(base) >= {zoo[k].name for k in ("a", "b", "c", "killed", "running")}


# --------------------------------------------------------------------------- run --json


def test_run_json_success(base):
    result = invoke("run", "-c", SMOKE, "--json")
    summary = json.loads(result.stdout)  # the whole stdout is one JSON object
    assert [s["name"] for s in summary["stages"]] == STAGES
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


def test_run_json_quality_gate_failure(base):
    result = invoke("run", "-c", SMOKE, "--json", "--max-mase", "0.01", code=3)
    summary = json.loads(result.stdout)
    assert summary["status"] == "error" and summary["exit_code"] == 3
    assert "quality gate failed" in summary["error"] and "0.01" in summary["error"]
    assert [s["name"] for s in summary["stages"]] == STAGES  # everything ran and was written
    assert (Path(summary["run_dir"]) / "metrics_test.json").is_file()
    assert summary["metrics"]["model"]["mase"] > 0.01
    assert re.search(r"^Error: quality gate failed", result.stderr, re.M)


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


# --------------------------------------------------------------------------- -q


def test_quiet_keeps_only_warnings_and_errors(base):
    result = invoke("-q", "run", "-c", SMOKE)
    assert "epoch" not in result.stderr and "training" not in result.stderr, result.stderr
    # what is left on stderr are warnings (the sample's data are years old)
    for line in result.stderr.splitlines():
        assert "days ago" in line or "days old" in line, line
    lines = result.stdout.splitlines()  # results still go to stdout
    assert [ln.split()[0] for ln in lines[:-1]] == STAGES
    assert (base / lines[-1] / "model.keras").is_file()


# --------------------------------------------------------------------------- a cron-like run


@pytest.fixture(scope="module")
def cron_run(seeded, tmp_path_factory):
    """`stockrnn --log-file LOG run` as cron runs it: no terminal, stdin closed."""
    base = tmp_path_factory.mktemp("cron")
    shutil.copytree(seeded / "data", base / "data")
    log = base / "logs" / "stockrnn.log"
    log.parent.mkdir()
    log.write_text("an earlier line\n")
    env = dict(os.environ, STOCKRNN_DATA_DIR=str(base / "data"),
               STOCKRNN_RUNS_DIR=str(base / "runs"))
    env.pop("TERM", None)
    proc = subprocess.run([sys.executable, "-m", "stockrnn", "--log-file", str(log), "run",
                           "-c", str(SMOKE)], cwd=base, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=300)
    return base, proc, log


def test_nothing_prompts_with_stdin_closed(cron_run):
    base, proc, _ = cron_run
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = subprocess.run([sys.executable, "-m", "stockrnn", "runs", "prune", "--keep", "0",
                          "--runs-dir", str(base / "runs")], stdin=subprocess.DEVNULL,
                         capture_output=True, timeout=120)
    assert out.returncode == 0 and out.stdout == b"", out.stderr  # latest kept, no question


def test_no_ansi_or_carriage_returns_without_a_terminal(cron_run):
    _, proc, _ = cron_run
    for stream in (proc.stdout, proc.stderr):
        assert b"\x1b" not in stream and b"\r" not in stream
    err = proc.stderr.decode()
    assert re.search(r"^epoch 1/2 loss \d+\.\d+ val_loss \d+\.\d+ \(\d+\.\d+s\)$", err, re.M), err
    assert re.search(r"^epoch 2/2 ", err, re.M)


def test_stdout_has_results_only(cron_run):
    base, proc, _ = cron_run
    lines = proc.stdout.decode().splitlines()
    assert [ln.split()[0] for ln in lines[:-1]] == STAGES
    assert (base / lines[-1] / "meta.json").is_file()
    assert not re.search(r"^epoch \d", proc.stdout.decode(), re.M)  # progress is on stderr


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


def test_allow_stale_goes_on_with_stored_data(base, offline):
    result = invoke("run", "-c", SMOKE, "--set", "data.source=yahoo", "--allow-stale")
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
    assert (run / "forecast.csv").is_file()


def test_allow_stale_without_stored_data_still_fails(base, offline):
    result = invoke("run", "-c", SMOKE, "--set", "data.source=yahoo", "--set", "data.ticker=AAPL",
                    "--allow-stale", code=1)
    assert re.search(r"^Error: Yahoo Finance network error for AAPL", result.stderr, re.M)
