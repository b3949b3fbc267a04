"""runs: run directories, their status (complete, running, incomplete = killed or failed), the
``latest`` pointer, finding runs by name, and ``stockrnn runs list`` / ``runs prune``
(retention: never the latest run or one in progress; a run name's held lock is respected).

The runs here are meta.json files written directly (what list and prune read); only the one
that must still evaluate after pruning is a real trained run (a copy of the session's)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import fake_run, invoke, run_child, run_zoo

from stockrnn import locking, runs
from stockrnn.errors import LockError, RunError


@pytest.fixture
def zoo(work, smoke_run) -> dict[str, Path]:
    """The run zoo (helpers.run_zoo) with ``a`` a real trained run."""
    return run_zoo(work / "runs", first=smoke_run)


def listing(*args) -> dict[Path, tuple[str, bool]]:
    """`stockrnn runs list ARGS` as {path: (status, is_latest)}."""
    out = {}
    for line in invoke("runs", "list", *args).stdout.splitlines():
        m = re.fullmatch(r"(complete|running|incomplete) +(\*| ) (.+)", line)
        assert m, f"unexpected line: {line!r}"
        out[Path(m.group(3))] = (m.group(1), m.group(2) == "*")
    return out


def remaining(work: Path, name: str = "smoke") -> set[str]:
    return {p.name for p in (work / "runs" / name).iterdir() if p.is_dir()}


# --------------------------------------------------------------------------- status, latest


def test_status_of_a_run(work):
    root = work / "runs"
    assert runs.RunDir(fake_run(root, "x", "1")).status == "complete"
    assert runs.RunDir(fake_run(root, "x", "2", "running")).status == "running"
    assert runs.RunDir(fake_run(root, "x", "3", "killed")).status == "incomplete"
    assert runs.RunDir(fake_run(root, "x", "4", "failed")).status == "incomplete"
    other_host = fake_run(root, "x", "5", "killed")
    runs.RunDir(other_host).update_meta(host="another-machine")
    assert runs.RunDir(other_host).status == "running"  # cannot tell: assume it is alive
    broken = root / "x" / "6"
    broken.mkdir()
    (broken / "meta.json").write_text('{"status": "comp')
    assert runs.RunDir(broken).status == "incomplete"
    with pytest.raises(RunError, match="meta.json is unreadable"):
        runs.RunDir(broken).meta()
    with pytest.raises(RunError, match="not a run directory"):
        runs.RunDir(root / "x").meta()
    # only a complete run of this format passes check_complete
    runs.RunDir(root / "x" / "1").check_complete()
    with pytest.raises(RunError, match="run is incomplete"):
        runs.RunDir(root / "x" / "3").check_complete()
    runs.RunDir(root / "x" / "1").update_meta(format=99)
    with pytest.raises(RunError, match="run format 99 is not supported"):
        runs.RunDir(root / "x" / "1").check_complete()


def test_latest_and_resolve(work):
    root = work / "runs"
    a, b = fake_run(root, "smoke", "20200101T000000Z"), fake_run(root, "smoke", "20200102T000000Z")
    assert runs.latest(root, "smoke") is None
    with pytest.raises(RunError, match="no complete run yet"):
        runs.resolve("smoke", root)
    runs.set_latest(runs.RunDir(a))  # the pointer decides, not the name order
    assert (root / "smoke" / "latest").read_text() == f"{a.name}\n"
    assert runs.latest(root, "smoke").path == a
    assert runs.resolve("smoke", root).path == a
    assert runs.resolve(str(b)).path == b                 # a run directory
    assert runs.resolve(str(root / "smoke")).path == a    # a run name's folder
    assert runs.resolve("smoke").path == Path("runs/smoke") / a.name  # ./runs by default
    with pytest.raises(RunError, match="no run directory or run name 'nope'"):
        runs.resolve("nope", root)


def test_stamped_dirs_are_new_even_within_one_second(work):
    made = [runs.stamped_dir(work / "x", "batch-") for _ in range(3)]
    assert len(set(made)) == 3 and all(p.is_dir() for p in made)
    assert all(re.fullmatch(r"batch-\d{8}T\d{6}Z(-\d+)?", p.name) for p in made)


def test_best_line():
    assert runs.best_line({"best_epoch": 3, "best_val_loss": 0.5}) == \
        "best val_loss 0.50000 at epoch 3"
    assert runs.best_line({"best_epoch": 0, "best_val_loss": 0.6}).startswith(
        "no epoch beat the untrained model (persistence) on validation, kept it")


# --------------------------------------------------------------------------- runs list / prune


def test_runs_list_statuses_and_latest_mark(zoo, work):
    expected = {zoo["a"]: ("complete", False), zoo["b"]: ("complete", False),
                zoo["c"]: ("complete", True), zoo["killed"]: ("incomplete", False),
                zoo["running"]: ("running", False)}
    assert listing("--runs-dir", work / "runs", "smoke") == expected
    assert listing("--runs-dir", work / "runs") == expected  # every run name
    rel = {Path("runs/smoke") / p.name: v for p, v in expected.items()}
    assert listing("smoke") == rel  # ./runs by default
    assert invoke("runs", "list", "other").stdout == ""
    assert invoke("runs", "list", "--runs-dir", work / "nothing").stdout == ""


def test_runs_list_uses_the_environment(zoo, work, monkeypatch):
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(work / "runs"))
    monkeypatch.chdir(work / "runs" / "smoke")
    assert set(listing()) == set(zoo.values())


def test_runs_prune_removes_only_incomplete_runs(zoo, work):
    out = invoke("runs", "prune", "smoke").stdout
    assert out.splitlines() == [f"removed {Path('runs/smoke') / zoo['killed'].name}"]
    assert remaining(work) == {zoo[k].name for k in ("a", "b", "c", "running")}


def test_runs_prune_keep_never_removes_latest_or_running(zoo, work):
    runs.set_latest(runs.RunDir(zoo["a"]))  # latest is the oldest complete run
    out = invoke("runs", "prune", "--keep", "1", "--runs-dir", work / "runs").stdout
    assert sorted(out.splitlines()) == sorted(f"removed {zoo[k]}" for k in ("b", "killed"))
    assert remaining(work) == {zoo[k].name for k in ("a", "c", "running")}
    # --keep 0 keeps nothing but the latest (and the running one)
    invoke("runs", "prune", "smoke", "--keep", "0")
    assert remaining(work) == {zoo[k].name for k in ("a", "running")}
    assert invoke("evaluate", "--run", "smoke").exit_code == 0  # latest still works


def test_runs_prune_respects_a_held_run_lock(zoo, work):
    """A train/run of the name holds runs/<name>/.lock: pruning that name exits 75 and removes
    nothing; pruning every name skips it with a warning and prunes the others."""
    other = fake_run(work / "runs", "other", "20200104T000000Z", "killed")
    with locking.hold(work / "runs" / "smoke" / ".lock"):
        result = invoke("runs", "prune", "smoke", "--keep", "0", code=75)
        assert "another stockrnn run holds" in result.stderr
        assert remaining(work) == {p.name for p in zoo.values()}
        with pytest.raises(LockError):
            runs.prune(work / "runs", "smoke")
        result = invoke("runs", "prune", "--keep", "0", "--runs-dir", work / "runs")
        assert result.stdout.splitlines() == [f"removed {other}"]
        assert "skipped" in result.stderr and "smoke" in result.stderr
        assert remaining(work) == {p.name for p in zoo.values()}
        # the caller that holds the lock prunes without taking it again
        assert [r.path for r in runs.prune(work / "runs", "smoke", lock=False)] == [zoo["killed"]]
    invoke("runs", "prune", "smoke")  # free again
    assert zoo["killed"].name not in remaining(work)


def test_prune_never_asks_with_stdin_closed(zoo, work):
    """A real process with stdin closed (cron): prunes without a question."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKRNN_")}
    proc = run_child(["runs", "prune", "--keep", "0", "--runs-dir", str(work / "runs")], work,
                     env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.splitlines()) == sorted(f"removed {zoo[k]}"
                                                      for k in ("a", "b", "killed"))
    assert remaining(work) == {zoo[k].name for k in ("c", "running")}


def test_prune_of_a_missing_folder_removes_nothing(work):
    assert runs.prune(work / "nothing") == [] and runs.prune(work / "nothing", "smoke") == []
    assert invoke("runs", "prune", "--runs-dir", work / "nothing").stdout == ""
