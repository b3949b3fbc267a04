"""``python -m benchmarks.rusage REPORT.json CMD...``: run CMD, write its wall time, exit code,
CPU time (user + system of CMD and every descendant: a ``--jobs`` worker's and its fork
server's too, through ``subreaper``; not a Ray worker's) and peak resident memory: of its largest single process (this wrapper's
RUSAGE_CHILDREN, i.e. CMD and its own children, each counted alone) and of its whole process
tree at once (the sum of the RSS of CMD and every descendant, sampled every ``INTERVAL``
seconds, so a short peak between two samples can be missed)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time

INTERVAL = 0.1
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, resident KiB) of every process now (from /proc/PID/stat)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            out[int(name)] = (int(fields[1]), int(fields[21]) * PAGE_KIB)  # ppid, rss pages
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return out


def tree_rss_kib(root: int) -> int:
    """The summed resident memory of ``root`` and its descendants now."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            total += procs[pid][1]
        todo += children.get(pid, [])
    return total


def subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux's
    PR_SET_CHILD_SUBREAPER), so that a descendant its own parent never waits for (the fork
    server of ``--jobs`` workers, which outlives the command by a moment) is waited for, and
    its CPU time counted, here. False where that is not available."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap(deadline_s: float = 30.0) -> None:
    """Wait for every remaining descendant (orphans handed to this subreaper), for at most
    ``deadline_s`` seconds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    report, cmd = argv[0], argv[1:]
    reaper = subreaper()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))
            done.wait(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    if os.path.isdir("/proc"):
        sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - started
    done.set()
    if sampler.is_alive():
        sampler.join()
    if reaper:
        reap()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = usage.ru_maxrss  # KiB on Linux
    with open(report, "w") as fh:
        json.dump({"rc": rc, "seconds": wall, "max_rss_mib": peak_kib / 1024,
                   "tree_peak_rss_mib": peak[0] / 1024 if peak[0] else None,
                   "cpu_seconds": usage.ru_utime + usage.ru_stime}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
