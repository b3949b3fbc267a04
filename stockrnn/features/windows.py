"""Sliding windows in pure numpy, without Python loops over rows.

Vocabulary: the *anchor* ``t`` of a sample is the row of its last input. Its inputs are rows
``t-look_back+1 .. t`` and its targets rows ``t+1+foresight .. t+foresight+horizon``. A sample
belongs to a split when all its target rows lie inside that split; its inputs may reach back into
earlier rows (context) but never forward, so no window's inputs reach its target.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from stockrnn.errors import ConfigError


def split_bounds(n_rows: int, train: float, val: float) -> tuple[int, int]:
    """Row indices where val and test start (chronological split)."""
    val_start = int(round(n_rows * train))
    test_start = int(round(n_rows * (train + val)))
    return val_start, test_start


def anchor_range(row_start: int, row_end: int, look_back: int, foresight: int, horizon: int,
                 first_valid_row: int = 0) -> tuple[int, int]:
    """Half-open range of anchors whose targets all lie in rows ``[row_start, row_end)``.

    ``first_valid_row`` is the first row with defined inputs (1 for log returns).
    """
    lo = max(row_start - 1 - foresight, first_valid_row + look_back - 1)
    hi = row_end - foresight - horizon  # last anchor + 1
    return lo, max(lo, hi)


def input_windows(x: np.ndarray, look_back: int, lo: int, hi: int) -> np.ndarray:
    """Inputs for anchors ``lo..hi-1`` as an (n, look_back, features) strided view (no copy)."""
    if x.ndim != 2:
        raise ConfigError(f"`x` must be 2-D (rows, features). Received: x.ndim={x.ndim}")
    if look_back <= 0:
        raise ConfigError(f"`look_back` must be > 0. Received: look_back={look_back}")
    view = sliding_window_view(x, look_back, axis=0)  # (rows-look_back+1, features, look_back)
    return view[lo - look_back + 1: hi - look_back + 1].transpose(0, 2, 1)


def target_windows(series: np.ndarray, foresight: int, horizon: int, lo: int, hi: int) -> np.ndarray:
    """Target rows ``t+1+foresight .. t+foresight+horizon`` for anchors ``lo..hi-1``: (n, horizon)."""
    view = sliding_window_view(series, horizon)
    return view[lo + 1 + foresight: hi + 1 + foresight]
