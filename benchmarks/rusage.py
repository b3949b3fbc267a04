"""``python -m benchmarks.rusage REPORT.json CMD...``: run CMD, write its wall time, exit code
and peak resident memory (this wrapper's RUSAGE_CHILDREN, i.e. CMD and its own children)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    report, cmd = argv[0], argv[1:]
    started = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    with open(report, "w") as fh:
        json.dump({"rc": rc, "seconds": wall, "max_rss_mib": peak_kib / 1024}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
