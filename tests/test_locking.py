"""locking: one writer at a time across processes (exit 75 for the others unless they wait),
the holder named in the message, no stale lock after a kill; concurrent fetches leave a valid
store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers import REPO

from stockrnn import locking
from stockrnn.data.sources import SampleSource
from stockrnn.data.store import Store
from stockrnn.errors import LockError


def sample_frame() -> pd.DataFrame:
    return SampleSource().fetch("GOOG", None, None, "1d")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


HOLDER = """
import sys, time
from stockrnn import locking
with locking.hold(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_holder(tmp_path):
    """Start another process that holds ``tmp_path/data/.stockrnn.lock``; yield (proc, path)."""
    lock = tmp_path / "data" / ".stockrnn.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE,
                            text=True, env=child_env(), cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc, lock
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_lock_held_by_another_process(lock_holder):
    proc, lock = lock_holder
    with pytest.raises(LockError) as err:
        with locking.hold(lock, wait=0):
            pytest.fail("got a lock another process holds")
    assert err.value.exit_code == 75
    assert f"pid {proc.pid}" in str(err.value) and str(lock) in str(err.value)

    t0 = time.monotonic()
    with pytest.raises(LockError):
        with locking.hold(lock, wait=0.5):
            pass
    assert time.monotonic() - t0 >= 0.45

    store = Store(lock.parent)
    with pytest.raises(LockError):
        store.update(SampleSource(), "GOOG")
    assert not store.exists("GOOG")

    proc.kill()  # the OS drops the lock of a killed process: no stale lock
    proc.wait(timeout=10)
    with locking.hold(lock, wait=5):
        info = json.loads(lock.with_name(lock.name + ".info").read_text())
        assert info["pid"] == os.getpid()
    assert not lock.with_name(lock.name + ".info").exists()


def test_concurrent_cli_fetches_leave_a_valid_store(tmp_path):
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "stockrnn", "fetch", "GOOG", "--source", "sample",
           "--data-dir", str(data), "--full", "--wait", "30"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=child_env(), cwd=tmp_path) for _ in range(4)]
    store = Store(data)
    seen = 0
    while any(p.poll() is None for p in procs):  # readers never see a half-written file
        if store.exists("GOOG"):
            assert len(pd.read_csv(store.path("GOOG"))) == 2148
            seen += 1
        time.sleep(0.01)
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.startswith("GOOG 1d: ") and " 2148 rows 2004-08-19..2013-03-01 " in out
    df = store.read("GOOG")
    pd.testing.assert_frame_equal(df, sample_frame(), check_index_type=False)
    assert store.meta("GOOG")["rows"] == 2148
    names = {p.name for p in data.iterdir()} - {".stockrnn.lock"}
    assert names == {"GOOG_1d.csv", "GOOG_1d.json"}  # no temp or .info files left


