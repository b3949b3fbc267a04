"""The machine and library versions the figures were taken on (no keras import needed)."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata

PACKAGES = ("stockrnn", "keras", "tensorflow", "jax", "jaxlib", "numpy", "pandas",
            "scikit-learn")


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path) as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def describe() -> dict:
    mem_kib = _proc_field("/proc/meminfo", "MemTotal")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor()
            or "unknown", "cores": os.cpu_count(), "usable_cores": usable,
            "ram_gib": round(int(mem_kib.split()[0]) / 2 ** 20, 1) if mem_kib else None,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "os": platform.platform(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
