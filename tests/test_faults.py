"""Fault injection: SIGKILL at every stage, two runs at once, a full disk, a read-only data dir.

Each fault is its own test. After every fault the same checks run (``check_world``):

* the store's CSV and JSON are byte-identical to before, or valid (``Store.read`` works);
* no file under a final name is half-written (every CSV, JSON, NPZ and .keras file parses);
* every run name's ``latest`` points at a complete run, and every complete run still
  evaluates (``stockrnn evaluate --run DIR`` exits 0) and its model loads;
* the next command succeeds.

Real processes running the command line are killed with SIGKILL. They are forked from the
tests' fork server (``helpers.Child``), which has imported TensorFlow once, instead of each
paying that import: own pid, own files, locks released by the OS when killed, like
``python -m stockrnn ...``. Kill points that timing cannot hit reliably (inside an atomic write,
inside a Keras save) are reached with a small driver (``DRIVER``) that patches one call to hang,
so the test can kill the process right there.

``STOCKRNN_FAULT_ITERATIONS=N`` (default 1) raises the number of random kill points per stage.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SMOKE, Child, fork_server, invoke, saved_logging

from stockrnn import runs
from stockrnn.data.store import Store

ITERATIONS = max(1, int(os.environ.get("STOCKRNN_FAULT_ITERATIONS", "1")))
SEED = int(os.environ.get("STOCKRNN_FAULT_SEED", "20240611"))  # kill delays
# the smoke config on the last two years of the store (2011-2012, about 500 rows): the faults
# are the same on any length, and shorter data make the resumes and evaluations cheaper
SMOKE_ARGS = ["-c", SMOKE, "--set", "data.start=2011-01-03"]
# enough epochs that training is still going when the test kills it
# backups after every epoch (train.backup_every_s=0): these tests kill inside and between them
EVERY = ["--set", "train.backup_every_s=0"]
LONG = ["--set", "train.epochs=20", "--set", "train.early_stopping.patience=20", *EVERY]
SIX = ["--set", "train.epochs=6", "--set", "train.early_stopping.patience=6", *EVERY]
TEMP = re.compile(r"^\..+\.tmp")  # atomic.py's temp files: .<name>.<random>.tmp[.suffix]

# A `stockrnn` process that hangs (so the test can SIGKILL it) at one chosen call:
#   FAULT_MODE=before-replace  os.replace(src, dst) with dst matching FAULT_TARGET: the temp
#                              file is complete, the final name not yet replaced
#   FAULT_MODE=truncate-save   keras Model.save(path) with path matching FAULT_TARGET: the file
#                              is cut to half its size first (killed while Keras was writing)
#   FAULT_MODE=truncate-weights  the same for Model.save_weights (BackupAndRestore's weights)
#   FAULT_MODE=truncate-open   Keras' file_utils.File(path, "w") (BackupAndRestore's
#                              training_metadata.json): opened, so emptied, not yet written
# The first FAULT_SKIP matching calls go through. It writes the path it stopped at to
# FAULT_MARKER before hanging.
DRIVER = r"""
import os, re, sys, time
target, mode, marker = (os.environ["FAULT_TARGET"], os.environ["FAULT_MODE"],
                        os.environ["FAULT_MARKER"])
skip = [int(os.environ.get("FAULT_SKIP", "0"))]

def hit(path):
    if not re.search(target, str(path)):
        return False
    skip[0] -= 1
    return skip[0] < 0

def hang(where):
    with open(marker + ".part", "w") as fh:
        fh.write(str(where))
    os.replace(marker + ".part", marker)
    time.sleep(600)

if mode == "before-replace":
    _replace = os.replace
    def replace(src, dst, *a, **k):
        if hit(dst):
            hang(src)
        return _replace(src, dst, *a, **k)
    os.replace = replace
elif mode == "truncate-open":
    from stockrnn.backend import use
    use()
    from keras.src.utils import file_utils
    _File = file_utils.File
    def File(path, mode="r"):
        fh = _File(path, mode)
        if "w" in mode and hit(path):
            hang(path)
        return fh
    file_utils.File = File
else:
    from stockrnn.backend import use
    keras = use()
    name = {"truncate-save": "save", "truncate-weights": "save_weights"}[mode]
    original = getattr(keras.Model, name)
    def patched(self, filepath, *a, **k):
        out = original(self, filepath, *a, **k)
        if hit(filepath):
            with open(filepath, "r+b") as fh:
                fh.truncate(os.path.getsize(filepath) // 2)
            hang(filepath)
        return out
    setattr(keras.Model, name, patched)

from stockrnn.cli import main
sys.argv = ["stockrnn", *sys.argv[1:]]
main()
"""


# --------------------------------------------------------------------------- helpers


def child_env(base: Path, **extra) -> dict:
    env = dict(os.environ, STOCKRNN_DATA_DIR=str(base / "data"),
               STOCKRNN_RUNS_DIR=str(base / "runs"), PYTHONUNBUFFERED="1", **extra)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def spawn(base: Path, *args, driver: bool = False, **extra_env) -> Child:
    """A real `stockrnn ARGS` process (under DRIVER with ``driver``), forked from the tests' fork
    server (helpers.Child: it has imported TensorFlow already), stdin closed."""
    return Child(args, base, child_env(base, **extra_env), code=DRIVER if driver else None)


def sigkill(proc: Child) -> tuple[str, str]:
    """SIGKILL ``proc`` (it must still be running: otherwise nothing was tested)."""
    still_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert still_running, f"the process ended (exit {proc.returncode}) before the kill:\n{err}"
    assert proc.returncode == -signal.SIGKILL
    return out, err


def wait_for(predicate, proc: Child, timeout: float = 120.0, what: str = ""):
    """Poll ``predicate`` until it is truthy; fail if ``proc`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (exit {proc.returncode}) before {what}\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    pytest.fail(f"timed out waiting for {what}")


def kill_at_injected_fault(base: Path, tmp_path: Path, mode: str, target: str, *args,
                           skip: int = 0):
    """Run ``stockrnn ARGS`` under DRIVER, wait until it hangs at the fault (after ``skip``
    matching calls went through), SIGKILL it. Returns the path it hung at."""
    marker = tmp_path / "fault-marker"
    marker.unlink(missing_ok=True)
    proc = spawn(base, *args, driver=True, FAULT_MODE=mode, FAULT_TARGET=target,
                 FAULT_MARKER=str(marker), FAULT_SKIP=str(skip))
    wait_for(marker.exists, proc, what=f"the injected fault ({mode} {target})")
    sigkill(proc)
    return Path(marker.read_text())


def store_files(base: Path) -> dict[str, bytes]:
    data = base / "data"
    return {p.name: p.read_bytes() for p in data.glob("GOOG_1d.*")}


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if TEMP.match(p.name))


def history_rows(run: Path) -> int:
    path = run / "history.csv"
    if not path.exists() or path.stat().st_size == 0:
        return 0
    return len(pd.read_csv(path))


def run_dirs(base: Path, name: str = "smoke") -> list[Path]:
    root = base / "runs" / name
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def newest_run(base: Path, name: str = "smoke") -> Path | None:
    dirs = [d for d in run_dirs(base, name) if (d / "meta.json").exists()]
    return dirs[-1] if dirs else None


def status(run: Path) -> str:
    return runs.RunDir(run).status


def load_keras(path: Path):
    from stockrnn.training import load_model

    return load_model(path)


# what `evaluate` reads: a run whose files are byte-identical to one that evaluated has the same
# outcome, so each distinct run is evaluated once (the world's run, copied into every test, is
# not evaluated again after every fault that left it alone)
EVALUATE_READS = ("meta.json", "config.yaml", "model.keras", "scaler.json", "series.csv",
                  "intervals.json")
_EVALUATED: set[str] = set()


def evaluates(run: Path) -> None:
    """`stockrnn evaluate --run RUN` exits 0 and the model loads."""
    h = hashlib.sha256()
    for name in EVALUATE_READS:
        path = run / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"-") + b"\0")
    if h.hexdigest() in _EVALUATED:
        return
    invoke("evaluate", "--run", run)
    load_keras(run / "model.keras")
    _EVALUATED.add(h.hexdigest())


def check_world(base: Path, before: dict[str, bytes] | None = None,
                allow_temp: bool = True) -> None:
    """The invariants every fault must leave intact (see the module docstring)."""
    data, runs_root = base / "data", base / "runs"
    # the store: unchanged, or a valid newer version
    store = Store(data)
    after = store_files(base)
    if before is not None and after != before:
        frame = store.read("GOOG")
        meta = json.loads(after["GOOG_1d.json"])
        assert meta["ticker"] == "GOOG" and meta["rows"] >= 1
        assert len(frame) >= 1
    else:
        store.read("GOOG")
    # nothing half-written under a final name (temp files have their own names)
    for path in list(data.rglob("*")) + list(runs_root.rglob("*")):
        if not path.is_file() or TEMP.match(path.name) or path.name.startswith(".lock") \
                or path.name.startswith(".stockrnn.lock"):
            continue
        if "backup" in path.parts or "checkpoints" in path.parts:
            continue  # Keras' own files; their faults have their own tests below
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as npz:
                assert {"train_x", "val_x", "test_x"} <= set(npz.files), path
                for key in npz.files:
                    npz[key]
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                assert zf.testzip() is None, path
        elif path.name == "history.csv":  # empty when killed before the first epoch ended
            if not path.stat().st_size:
                continue
            h = pd.read_csv(path)
            assert {"epoch", "loss", "val_loss"} <= set(h.columns), path
            assert not h[["epoch", "loss", "val_loss"]].isna().any().any(), path
        elif path.suffix == ".csv" and path.parent != data:
            pd.read_csv(path)
    if not allow_temp:
        assert temp_files(base) == [], "temp files left behind"
    # latest points at a complete run; every complete run evaluates and loads
    for name_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()) \
            if runs_root.is_dir() else []:
        cur = runs.latest(runs_root, name_dir.name)
        if cur is not None:
            assert cur.status == "complete", f"latest -> {cur.path} is {cur.status}"
        for run in runs.list_runs(runs_root, name_dir.name):
            if run.status == "complete":
                evaluates(run.path)
            else:
                assert run.path != (cur.path if cur else None)


# --------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A data dir with GOOG stored up to 2012-12-31 and one complete smoke run.

    The store stops early so that a full fetch changes the files (a kill can then leave old or
    new bytes, and the test tells them apart)."""
    base = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp, saved_logging():
        mp.setenv("STOCKRNN_DATA_DIR", str(base / "data"))
        mp.setenv("STOCKRNN_RUNS_DIR", str(base / "runs"))
        invoke("fetch", "GOOG", "--source", "sample", "--end", "2012-12-31")
        invoke("train", "-q", *SMOKE_ARGS)
    fork_server()  # started now, so that no test times (or waits for) its imports
    return base


@pytest.fixture
def base(world, tmp_path, monkeypatch) -> Path:
    """A private copy of the world; in-process commands use it through the environment."""
    b = tmp_path / "w"
    shutil.copytree(world, b)
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(b / "data"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(b / "runs"))
    monkeypatch.chdir(b)
    return b


# --------------------------------------------------------------------------- SIGKILL


def restore_store(base: Path, files: dict[str, bytes]) -> None:
    for name, blob in files.items():
        (base / "data" / name).write_bytes(blob)


def timed_run(base: Path, *args) -> float:
    """Seconds one uninterrupted ``stockrnn ARGS`` takes here (to spread kills over it)."""
    started = time.monotonic()
    proc = spawn(base, *args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return time.monotonic() - started


def kill_after(base: Path, delay: float, *args) -> str:
    """SIGKILL `stockrnn ARGS` ``delay`` seconds after it started, unless it has finished by then
    (or was finishing: a process that is exiting when the signal comes ends with its own
    code). Says which."""
    proc = spawn(base, *args)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    if proc.returncode == -signal.SIGKILL:
        return f"{delay:.2f}s: killed"
    return f"{delay:.2f}s: finished first (exit {proc.returncode})"


def test_sigkill_during_fetch(base):
    """`fetch --full` killed at random short delays: the store is old or new, never half."""
    args = ("fetch", "GOOG", "--source", "sample", "--full")
    before = store_files(base)
    took = timed_run(base, *args)
    rng = random.Random(SEED)
    outcomes = []
    for _ in range(3 * ITERATIONS):
        restore_store(base, before)
        outcomes.append(kill_after(base, rng.uniform(0.2, 0.9) * took, *args))
        check_world(base, before)
        after = store_files(base)
        assert after == before or len(Store(base / "data").read("GOOG")) == 2148, outcomes
    assert any("killed" in o for o in outcomes), outcomes
    # the next fetch succeeds and completes the store
    line = invoke("fetch", "GOOG", "--source", "sample", "--full").stdout
    assert "2148 rows" in line
    check_world(base)


def test_sigkill_between_store_csv_and_sidecar(base, tmp_path):
    """Killed after the new CSV is in place but before its JSON sidecar is: the CSV is valid,
    and the next fetch leaves CSV and sidecar agreeing."""
    before = store_files(base)
    where = kill_at_injected_fault(base, tmp_path, "before-replace", r"GOOG_1d\.json$",
                                   "fetch", "GOOG", "--source", "sample", "--full")
    assert TEMP.match(where.name)
    check_world(base, before)
    assert len(Store(base / "data").read("GOOG")) == 2148  # the new CSV landed
    invoke("fetch", "GOOG", "--source", "sample")
    meta = json.loads((base / "data" / "GOOG_1d.json").read_text())
    assert (meta["rows"], meta["last"]) == (2148, "2013-03-01"), (
        "the sidecar still describes the old CSV after the next successful fetch")


def test_sigkill_during_prepare(base):
    """`prepare` killed at random delays: store untouched, artifacts absent or complete."""
    before = store_files(base)
    took = timed_run(base, "prepare", *SMOKE_ARGS)
    shutil.rmtree(base / "data" / "prepared")
    rng = random.Random(SEED + 1)
    outcomes = []
    for _ in range(ITERATIONS):
        outcomes.append(kill_after(base, rng.uniform(0.3, 0.95) * took, "prepare", *SMOKE_ARGS))
        assert store_files(base) == before  # prepare only reads a stored ticker
        check_world(base, before)
    result = invoke("prepare", *SMOKE_ARGS)
    artifact = Path(result.stdout.strip().splitlines()[-1])
    with np.load(artifact) as npz:
        assert len(npz["train_x"]) > 0
    check_world(base, before)


def test_sigkill_during_prepare_artifact_write(base, tmp_path):
    """Killed between the .npz and its .json: the next prepare rewrites a matching pair."""
    before = store_files(base)
    shutil.rmtree(base / "data" / "prepared")  # the world's run left a current one: none to write
    kill_at_injected_fault(base, tmp_path, "before-replace", r"prepared/.*\.json$",
                           "prepare", *SMOKE_ARGS)
    check_world(base, before)
    result = invoke("prepare", *SMOKE_ARGS)
    artifact = Path(result.stdout.strip().splitlines()[-1])
    meta = json.loads(artifact.with_suffix(".json").read_text())
    with np.load(artifact) as npz:
        assert len(npz["test_x"]) == meta["splits"]["test"]["samples"]
    check_world(base, before)


def backup_epoch(run: Path) -> int | None:
    """Epochs finished according to BackupAndRestore's metadata (None: none or unreadable)."""
    try:
        return json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return None


def epoch_lines(result) -> list[tuple[int, int]]:
    """The (epoch, of) of every "epoch N/M ..." progress line a command logged."""
    return [(int(a), int(b)) for a, b in re.findall(r"^epoch (\d+)/(\d+) ", result.stderr, re.M)]


def resumed_at(result, epochs: int) -> int:
    """The first epoch (0-based) a `train --resume` trained, checking it ran to the end."""
    lines = epoch_lines(result)
    assert lines and lines[-1] == (epochs, epochs), lines
    assert [e for e, _ in lines] == list(range(lines[0][0], epochs + 1)), lines
    return lines[0][0] - 1


def resume(*args):
    """`stockrnn train ARGS --resume` in-process, with its epoch lines on stderr."""
    return invoke("train", *args, "--resume")


@pytest.mark.parametrize("epochs_before_kill", [2, 5, 1][:ITERATIONS])
def test_sigkill_during_train_then_resume(base, epochs_before_kill):
    """`train` killed with SIGKILL after N finished epochs (between epochs): the run is
    incomplete (its meta.json still says running, by a pid that is gone), latest still points at
    the earlier complete run, and `train --resume` finishes it in the same folder from its last
    finished epoch, with one history row per epoch."""
    total = 20
    before = store_files(base)
    old = runs.latest(base / "runs", "smoke").path
    proc = spawn(base, "train", *SMOKE_ARGS, *LONG)

    def killed_run():
        run = newest_run(base)
        return run if run != old and history_rows(run) >= epochs_before_kill and \
            (backup_epoch(run) or 0) >= epochs_before_kill else None

    run = wait_for(killed_run, proc, what=f"{epochs_before_kill} epochs in history.csv")
    sigkill(proc)
    killed, finished = pd.read_csv(run / "history.csv"), backup_epoch(run)
    k = len(killed)

    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "running" and meta["pid"] == proc.pid  # it never got to say more
    assert status(run) == "incomplete"                               # but it is dead
    assert not (run / "model.keras").exists()
    assert (run / "backup").is_dir()
    assert runs.latest(base / "runs", "smoke").path == old
    assert epochs_before_kill <= k < total, "the process finished before it could be killed"
    assert killed["epoch"].tolist() == list(range(k))
    # history.csv is written before the backup, so it may be one epoch ahead of the backup
    # (that epoch is trained again) but never behind it
    assert finished in (k - 1, k)
    listing = invoke("runs", "list", "smoke").stdout
    assert re.search(rf"^incomplete\s+{re.escape(str(run))}$", listing, re.M), listing
    assert re.search(rf"^complete\s+\*\s+{re.escape(str(old))}$", listing, re.M), listing
    check_world(base, before)

    result = resume(*SMOKE_ARGS, *LONG)
    assert Path(result.stdout.strip().splitlines()[-1]) == run
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == total
    # continued from the backup's last finished epoch, not from epoch 0
    assert resumed_at(result, total) == finished
    raw = pd.read_csv(run / "history.csv")
    assert raw["epoch"].tolist() == list(range(total))  # one row per epoch, none twice
    # the epochs before the backup's are kept as logged; the one trained again is replaced
    pd.testing.assert_frame_equal(raw.iloc[:finished], killed.iloc[:finished])
    assert not (run / "backup").exists()
    assert runs.latest(base / "runs", "smoke").path == run
    check_world(base, before)


def test_sigkill_with_throttled_backups_resumes_from_the_last_backup(base):
    """With throttled writes (train.backup_every_s=0.5) history.csv, the best checkpoint and the
    backup are written together at most every 0.5 s, not after every epoch: a run killed
    between two writes loses the epochs since the last one (history.csv is never behind the
    backup), and --resume trains them again and ends with every epoch in its history once."""
    total = 30
    args = ["--set", f"train.epochs={total}", "--set", f"train.early_stopping.patience={total}",
            "--set", "train.backup_every_s=0.5"]
    old = runs.latest(base / "runs", "smoke").path
    proc = spawn(base, "train", *SMOKE_ARGS, *args)

    def written():
        run = newest_run(base)
        return run if run != old and (backup_epoch(run) or 0) >= 1 else None

    run = wait_for(written, proc, what="a first backup")
    sigkill(proc)
    killed_rows, finished = history_rows(run), backup_epoch(run)
    assert finished is not None and finished <= killed_rows < total

    result = resume(*SMOKE_ARGS, *args)
    assert resumed_at(result, total) == finished  # the epochs after the backup are trained again
    from stockrnn.training import read_history

    assert read_history(run / "history.csv")["epoch"].tolist() == list(range(total))
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"


def test_sigkill_while_model_is_replaced(base, tmp_path):
    """Killed inside the atomic write of model.keras (temp file done, not yet renamed): no
    model.keras, the run is incomplete, and `train --resume` finishes it."""
    before = store_files(base)
    old = runs.latest(base / "runs", "smoke").path
    where = kill_at_injected_fault(base, tmp_path, "before-replace", r"/model\.keras$",
                                   "train", "-q", *SMOKE_ARGS)
    run = where.parent
    assert TEMP.match(where.name) and run != old
    assert not (run / "model.keras").exists()
    assert status(run) == "incomplete"
    assert runs.latest(base / "runs", "smoke").path == old
    check_world(base, before)

    result = invoke("train", "-q", *SMOKE_ARGS, "--resume")
    assert Path(result.stdout.strip().splitlines()[-1]) == run
    assert status(run) == "complete"
    assert runs.latest(base / "runs", "smoke").path == run
    check_world(base, before)


def test_sigkill_while_keras_writes_the_model(base, tmp_path):
    """Killed while Keras is writing model.keras' temp file (half written)."""
    before = store_files(base)
    old = runs.latest(base / "runs", "smoke").path
    where = kill_at_injected_fault(base, tmp_path, "truncate-save", r"\.model\.keras\..*\.tmp",
                                   "train", "-q", *SMOKE_ARGS)
    run = where.parent
    assert not (run / "model.keras").exists()
    assert status(run) == "incomplete"
    assert runs.latest(base / "runs", "smoke").path == old
    check_world(base, before)
    invoke("train", "-q", *SMOKE_ARGS, "--resume")
    assert status(run) == "complete"
    check_world(base, before)


def test_sigkill_during_backup_write_then_resume(base, tmp_path):
    """Killed while BackupAndRestore writes its weights after epoch 3 (latest.weights.h5 half
    written): `train --resume` finishes the run, from the previous backup (epoch 2), not from
    epoch 0 and not failing for good."""
    before = store_files(base)
    where = kill_at_injected_fault(base, tmp_path, "truncate-weights", r"backup/",
                                   "train", "-q", *SMOKE_ARGS, *SIX, skip=2)
    run = where.parent.parent
    assert status(run) == "incomplete"
    killed_rows = history_rows(run)
    assert killed_rows == 3
    check_world(base, before)
    result = invoke("train", *SMOKE_ARGS, *SIX, "--resume", code=None)
    assert result.exit_code == 0, result.stderr
    assert status(run) == "complete"
    assert resumed_at(result, 6) == 2
    check_world(base, before)


def test_sigkill_during_backup_metadata_write_then_resume(base, tmp_path):
    """Killed while BackupAndRestore rewrites training_metadata.json after epoch 3 (emptied,
    not yet written): `train --resume` continues from epoch 2 or 3, not from epoch 0."""
    before = store_files(base)
    where = kill_at_injected_fault(base, tmp_path, "truncate-open",
                                   r"backup/training_metadata\.json$",
                                   "train", "-q", *SMOKE_ARGS, *SIX, skip=2)
    run = where.parent.parent
    killed_rows = history_rows(run)
    assert killed_rows == 3 and (run / "backup" / "training_metadata.json").read_text() == ""
    check_world(base, before)
    result = resume(*SMOKE_ARGS, *SIX)
    assert status(run) == "complete"
    assert resumed_at(result, 6) in (2, 3)
    check_world(base, before)


def test_sigkill_during_checkpoint_write_then_resume(base, tmp_path):
    """Killed while Keras writes checkpoints/best.keras (here after the only epoch, with the
    writes after every epoch): `train --resume` must finish the run or fail with a message,
    never a traceback."""
    before = store_files(base)
    args = ["train", "-q", *SMOKE_ARGS, "--set", "train.epochs=1", *EVERY]
    where = kill_at_injected_fault(base, tmp_path, "truncate-save", r"checkpoints/best\.keras$",
                                   *args)
    run = where.parent.parent
    assert status(run) == "incomplete"
    check_world(base, before)
    result = invoke(*args, "--resume", code=None)
    assert result.exit_code == 0, f"{result.stderr}\n{result.exception!r}"
    assert status(run) == "complete"
    check_world(base, before)


# --------------------------------------------------------------------------- two at once


def test_a_second_run_of_the_same_name_exits_75_or_waits(base):
    """While a `stockrnn run` process holds the run name's lock, another `run` of that name
    exits 75 at once naming the holder's pid and creating nothing; with --wait it waits for the
    first to finish, then runs in its own folder. Nothing is corrupted.

    (The second and third runs are in this process: what is tested is the lock between them and
    a real process, not how they start.)"""
    before_runs = set(run_dirs(base))
    first = spawn(base, "run", *SMOKE_ARGS)
    info = base / "runs" / "smoke" / ".lock.info"
    wait_for(lambda: info.exists() and f'"pid": {first.pid}' in info.read_text(), first,
             what="the first run to take the lock")

    loser = invoke("run", *SMOKE_ARGS, code=75)
    assert first.poll() is None, "the first run ended before the second tried the lock"
    assert "another stockrnn run holds" in loser.stderr, loser.stderr
    assert f"pid {first.pid}," in loser.stderr, loser.stderr
    assert re.search(r"^Error: another stockrnn run holds \S*runs/smoke/\.lock \(pid \d+, "
                     r"started \d{4}-\d\d-\d\dT", loser.stderr, re.M), loser.stderr
    assert "Traceback" not in loser.output and loser.stdout == ""
    assert len(set(run_dirs(base)) - before_runs) <= 1  # the first's, if it got that far

    waiter = invoke("run", *SMOKE_ARGS, "--wait", "300")
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1[-2000:]
    run1 = base / out1.strip().splitlines()[-1]
    run2 = base / waiter.stdout.strip().splitlines()[-1]
    assert set(run_dirs(base)) - before_runs == {run1, run2}  # the loser created nothing
    assert run1.resolve() != run2.resolve()
    m1 = json.loads((run1 / "meta.json").read_text())
    m2 = json.loads((run2 / "meta.json").read_text())
    assert m2["created"] >= m1["finished"], (m1, m2)  # it really waited
    assert runs.latest(base / "runs", "smoke").path.resolve() == run2.resolve()
    check_world(base, allow_temp=False)


# --------------------------------------------------------------------------- disk full


def enospc(path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_disk_full_while_writing_store_csv(base, monkeypatch):
    """ENOSPC half-way through the store's CSV: exit 1, `Error:`, old files intact, no temps."""
    before = store_files(base)
    real = pd.DataFrame.to_csv

    def full(self, path_or_buf=None, *a, **k):
        if isinstance(path_or_buf, str | os.PathLike) and ".GOOG_1d.csv." in str(path_or_buf):
            Path(path_or_buf).write_text(real(self, None, *a, **k)[:5000])
            raise enospc(path_or_buf)
        return real(self, path_or_buf, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    result = invoke("fetch", "GOOG", "--source", "sample", "--full", code=1)
    assert re.match(r"^Error: .*No space left on device", result.stderr), result.stderr
    assert "Traceback" not in result.output
    assert store_files(base) == before
    check_world(base, before, allow_temp=False)


def test_disk_full_while_writing_store_sidecar(base, monkeypatch):
    """ENOSPC on the JSON sidecar, after the CSV is written: the failed fetch must leave the
    stored files byte-for-byte unchanged."""
    before = store_files(base)
    real = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".GOOG_1d.json."):
            real(self, data[:20])
            raise enospc(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    result = invoke("fetch", "GOOG", "--source", "sample", "--full", code=1)
    assert re.match(r"^Error: .*No space left on device", result.stderr), result.stderr
    assert temp_files(base) == []
    assert store_files(base) == before


def test_disk_full_while_saving_model(base, monkeypatch):
    """ENOSPC while Keras writes model.keras: exit 1 with `Error: cannot write ...model.keras`,
    no temp file, the run incomplete, latest unchanged; the next run succeeds."""
    from stockrnn.backend import use

    keras = use()
    before = store_files(base)
    old = runs.latest(base / "runs", "smoke").path
    real = keras.Model.save

    def full(self, filepath, *a, **k):
        if ".model.keras." in str(filepath):
            Path(filepath).write_bytes(b"PK\x03\x04 half a zip")
            raise enospc(filepath)
        return real(self, filepath, *a, **k)

    monkeypatch.setattr(keras.Model, "save", full)
    result = invoke("train", "-q", *SMOKE_ARGS, code=1)
    assert re.search(r"^Error: cannot write \S+/model\.keras: No space left on device$",
                     result.stderr, re.M), result.stderr
    assert "Traceback" not in result.output
    run = newest_run(base)
    assert run != old and not (run / "model.keras").exists()
    assert status(run) == "incomplete"
    assert "No space left" in json.loads((run / "meta.json").read_text()).get("error", "")
    assert runs.latest(base / "runs", "smoke").path == old
    check_world(base, before, allow_temp=False)
    monkeypatch.setattr(keras.Model, "save", real)
    invoke("train", "-q", *SMOKE_ARGS, "--resume")
    assert status(run) == "complete"
    check_world(base, before, allow_temp=False)


# --------------------------------------------------------------------------- read-only


def test_read_only_data_dir(base, monkeypatch):
    """A data dir that cannot be written: exit 1 with a message naming it, no traceback, the
    stored files unchanged. As root (permissions ignored) the denial is simulated at the
    temp-file creation every store write goes through."""
    data = base / "data"
    before = store_files(base)
    data.chmod(0o555)
    try:
        simulated = os.access(data, os.W_OK)
        if simulated:  # root: chmod does not stop us, so deny the way the kernel would
            real = tempfile.mkstemp

            def denied(*a, dir=None, **k):
                if dir is not None and Path(dir).resolve() == data.resolve():
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES),
                                          str(Path(dir) / "tmpXXXX"))
                return real(*a, dir=dir, **k)

            monkeypatch.setattr(tempfile, "mkstemp", denied)
        result = invoke("fetch", "GOOG", "--source", "sample", "--full", code=1)
    finally:
        data.chmod(0o755)
    assert result.stderr == f"Error: cannot write {data / 'GOOG_1d.csv'}: Permission denied\n", \
        result.stderr
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert store_files(base) == before
    check_world(base, before, allow_temp=False)
