"""prepare: ``stockrnn.dataset.build`` on a synthetic random walk at 10^4..10^6 rows, look_back 60.

``build`` returns strided views (the windows are not materialised); training makes them
contiguous (``np.ascontiguousarray`` in ``training.batches``). Both are measured: build alone,
and materialising every split's windows afterwards. Memory: tracemalloc peak (numpy reports its
buffers to tracemalloc) and the process's peak RSS growth; each size runs in its own process.
"""

from __future__ import annotations

import resource
import statistics
import time

from benchmarks import targets
from benchmarks.subprocesses import run_worker

LOOK_BACK = 60
MIB = 2 ** 20


def worker(args: dict) -> dict:
    import tracemalloc

    import numpy as np

    from benchmarks.synthetic import random_walk
    from stockrnn import dataset
    from stockrnn.config import load_config

    rows, repeats = args["rows"], max(args["repeats"], 1)
    frame = random_walk(rows, seed=3, freq="min")  # minute bars: 10^6 business days overflow
    cfg = load_config(None, [f"window.look_back={LOOK_BACK}"])
    n_features = len(cfg.data.features)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        ds = dataset.build(frame, cfg)
        seconds.append(time.perf_counter() - t)
    views = {name: not sp.x.flags.owndata for name, sp in ds.splits.items()}
    t = time.perf_counter()
    dense = [np.ascontiguousarray(sp.x) for sp in ds.splits.values()]
    materialise_seconds = time.perf_counter() - t
    windows = sum(len(sp) for sp in ds.splits.values())
    del ds, dense

    tracemalloc.start()
    ds = dataset.build(frame, cfg)
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    dense = [np.ascontiguousarray(sp.x) for sp in ds.splits.values()]
    _, with_dense_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del ds, dense
    window_bytes = rows * LOOK_BACK * n_features * 4
    return {"rows": rows, "look_back": LOOK_BACK, "features": n_features, "windows": windows,
            # the first build pays one-time imports, as a fresh `stockrnn prepare` does
            "build_seconds": seconds[0], "warm_build_seconds": statistics.median(seconds[1:])
            if len(seconds) > 1 else None, "build_seconds_all": seconds,
            "materialise_seconds": materialise_seconds,
            "windows_are_views": views, "window_array_mib": window_bytes / MIB,
            "build_peak_mib": build_peak / MIB,
            "build_and_materialise_peak_mib": with_dense_peak / MIB,
            "rss_growth_mib": rss_after - rss_before}


def measure(mode) -> dict:
    out: dict = {"look_back": LOOK_BACK, "rows": {}, "checks": []}
    for rows, repeats in mode.prepare_rows:
        r = run_worker("prepare", {"rows": rows, "repeats": repeats}, label=f"prepare {rows}")
        out["rows"][str(rows)] = r
        if "error" in r:
            continue
        total = r["build_seconds"] + r["materialise_seconds"]
        factor = r["build_and_materialise_peak_mib"] / r["window_array_mib"]
        r["build_and_materialise_seconds"] = total
        r["peak_over_window_array"] = factor
        if rows == 1_000_000:
            out["checks"].append(targets.check("prepare 10^6 rows: first build seconds",
                                               r["build_seconds"],
                                               at_most=targets.PREPARE_SECONDS_1M))
            out["checks"].append(targets.check("prepare 10^6 rows: build + materialise seconds",
                                               total, at_most=targets.PREPARE_SECONDS_1M))
        out["checks"].append(targets.check(
            f"prepare {rows} rows: peak memory / window array", factor,
            at_most=targets.PREPARE_MEMORY_FACTOR,
            text=f"<= {targets.PREPARE_MEMORY_FACTOR:g}x"))
    return out
