"""Run measurements in child processes: workers (one Keras backend each) and timed commands."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child_env(backend: str | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if backend:
        env["KERAS_BACKEND"] = backend
    env.update(extra)
    return env


def run_worker(task: str, args: dict, backend: str | None = None, timeout: float = 1800,
               label: str = "") -> dict:
    """``python -m benchmarks.worker TASK`` with ``args``; its JSON result, or {"error": ...}.

    The worker's stderr (its progress lines) is passed through with a ``[label]`` prefix.
    """
    with tempfile.TemporaryDirectory(prefix="stockrnn-bench-") as tmp:
        inp, out = Path(tmp) / "args.json", Path(tmp) / "result.json"
        inp.write_text(json.dumps(args))
        cmd = [sys.executable, "-m", "benchmarks.worker", task, str(inp), str(out)]
        rc, tail = _stream(cmd, child_env(backend), timeout, label or task)
        if rc == 0 and out.exists():
            return json.loads(out.read_text())
        why = "timed out" if rc is None else f"exit {rc}"
        return {"error": f"worker {task} ({backend or 'no backend'}) {why}: "
                         + " | ".join(tail[-6:])}


def _stream(cmd, env, timeout: float, label: str) -> tuple[int | None, list[str]]:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    tail: collections.deque[str] = collections.deque(maxlen=30)
    try:
        for line in proc.stderr:
            line = line.rstrip()
            if line:
                tail.append(line)
                print(f"  [{label}] {line}", file=sys.stderr, flush=True)
        rc = proc.wait()
    finally:
        expired = not timer.is_alive()
        timer.cancel()
    return (None if expired and rc != 0 else rc), list(tail)


def timed_command(cmd: list[str], cwd: Path, timeout: float = 600,
                  env: dict[str, str] | None = None) -> dict:
    """Wall seconds, peak RSS (MiB) and exit code of ``cmd``, measured by a small wrapper
    process (``benchmarks.rusage``) so that RUSAGE_CHILDREN covers this one command only."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        report = Path(fh.name)
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.rusage", str(report), *cmd],
                              cwd=cwd, env=env or child_env(), capture_output=True, text=True,
                              timeout=timeout)
        if not report.stat().st_size:
            return {"rc": proc.returncode, "error": proc.stderr.strip()[-500:]}
        out = json.loads(report.read_text())
        if out["rc"] != 0:
            out["error"] = proc.stderr.strip()[-500:]
        out["stdout"] = proc.stdout
        return out
    except subprocess.TimeoutExpired:
        return {"rc": None, "error": f"timed out after {timeout:g}s"}
    finally:
        report.unlink(missing_ok=True)
