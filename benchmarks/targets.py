"""Targets and their PASS/MISS verdicts (a missing figure is a MISS too, never hidden)."""

from __future__ import annotations

import math

SPEED_SAME_BACKEND = 0.5  # stockrnn's steady epoch / plain Keras's on the same backend, at most
HELP_SECONDS = 0.5
SMOKE_RUN_SECONDS = 8.0   # `stockrnn run --config configs/smoke.yaml`, a fresh process (issue 17)
BACKTEST_OVER_RUN = 3.0   # 5 folds, refit always, serial / one `stockrnn run` (issue 17)
PREPARE_SECONDS_1M = 2.0
PREPARE_MEMORY_FACTOR = 2.0   # peak memory / window array bytes, at most
RANDOM_WALK_MASE = (0.97, 1.03)
AR1_ORACLE_TOLERANCE = 0.02   # |model MASE / oracle MASE - 1|, at most (issue 18)
TAR_ORACLE_TOLERANCE = 0.03   # the same on the threshold-AR series (issue 18)
TAR_OVER_ARIMA = 1.0          # threshold AR: model MASE / AutoARIMA MASE, below (beats it)
SAMPLE_MASE = 1.00
MANY_TICKERS = 500            # synthetic tickers of 1,500 bars, configs/lstm.yaml (issue 17)
MANY_SECONDS = 600.0          # ... per-ticker models, --jobs 2, wall time at most
MANY_TREE_RSS_MIB = 8192.0    # ... the whole process tree's peak RSS at most (8 GiB)
EQUAL_MASE = 1e-6             # a batch's test MASE vs the same ticker's one-ticker run


def check(name: str, value: float | None, *, at_most: float | None = None,
          below: float | None = None, between: tuple[float, float] | None = None,
          text: str | None = None) -> dict:
    """One verdict: ``{"name", "value", "target", "status"}``."""
    if below is not None:
        target = text or f"< {below:g}"
        ok = _finite(value) and value < below
    elif at_most is not None:
        target = text or f"<= {at_most:g}"
        ok = _finite(value) and value <= at_most
    elif between is not None:
        target = text or f"{between[0]:g}..{between[1]:g}"
        ok = _finite(value) and between[0] <= value <= between[1]
    else:
        raise ValueError("check needs at_most, below or between")
    status = "PASS" if ok else ("MISS" if _finite(value) else "MISS (no figure)")
    return {"name": name, "value": value, "target": target, "status": status}


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
