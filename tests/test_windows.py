"""Sliding windows and chronological splits: shapes, exact values on a hand-built series, the
foresight/horizon offsets, split boundaries, no look-ahead (property-tested), and the DataErrors
for series that cannot be windowed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import config, price_frame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stockrnn import dataset
from stockrnn.errors import DataError
from stockrnn.features.windows import anchor_range, input_windows, split_bounds, target_windows

# --------------------------------------------------------------------------- the numpy layer


def test_shapes_and_first_last_windows():
    n, lb = 20, 4
    x = np.stack([np.arange(n), 100 + np.arange(n)], axis=1).astype("float64")
    lo, hi = anchor_range(0, n, lb, foresight=0, horizon=1)
    assert (lo, hi) == (3, 19)
    xs = input_windows(x, lb, lo, hi)
    ys = target_windows(np.arange(n), 0, 1, lo, hi)
    assert xs.shape == (16, 4, 2)
    assert ys.shape == (16, 1)
    np.testing.assert_array_equal(xs[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(xs[0, :, 1], [100, 101, 102, 103])
    np.testing.assert_array_equal(xs[-1, :, 0], [15, 16, 17, 18])
    assert ys[0, 0] == 4 and ys[-1, 0] == 19
    # time runs along axis 1, features along axis 2
    np.testing.assert_array_equal(xs[:, -1, 0], np.arange(lo, hi))


def test_foresight_and_horizon_offsets():
    n, lb, f, h = 20, 4, 2, 3
    lo, hi = anchor_range(0, n, lb, f, h)
    assert (lo, hi) == (3, 15)           # the last anchor's last target is row 19
    ys = target_windows(np.arange(n), f, h, lo, hi)
    assert ys.shape == (12, 3)
    np.testing.assert_array_equal(ys[0], [6, 7, 8])       # anchor 3: skip rows 4, 5
    np.testing.assert_array_equal(ys[-1], [17, 18, 19])   # anchor 14
    np.testing.assert_array_equal(ys[:, 0] - np.arange(lo, hi), np.full(hi - lo, 1 + f))


def test_first_valid_row_delays_the_first_anchor():
    assert anchor_range(0, 20, 4, 0, 1, first_valid_row=1) == (4, 19)
    x = np.arange(20, dtype="float64")[:, None]
    xs = input_windows(x, 4, 4, 19)
    assert xs[0, 0, 0] == 1  # never starts on the undefined row 0


def test_split_anchor_range_reaches_back_not_forward():
    lo, hi = anchor_range(10, 15, 4, 0, 1)
    assert (lo, hi) == (9, 14)
    xs = input_windows(np.arange(20, dtype="float64")[:, None], 4, lo, hi)
    ys = target_windows(np.arange(20), 0, 1, lo, hi)
    assert ys.min() == 10 and ys.max() == 14
    assert xs.min() == 6      # context from before the split
    assert xs.max() == 13     # but never the split's last row, which only serves as a target
    # with foresight the first anchor lies further back
    assert anchor_range(10, 15, 4, 2, 1)[0] == 7


def test_empty_range_when_the_split_is_too_short():
    lo, hi = anchor_range(10, 12, 4, 0, 3)
    assert hi == lo


def test_input_windows_is_a_view():
    x = np.arange(40, dtype="float64").reshape(20, 2)
    xs = input_windows(x, 5, 4, 19)
    assert np.shares_memory(xs, x)


def test_split_bounds():
    assert split_bounds(100, 0.7, 0.15) == (70, 85)
    assert split_bounds(2148, 0.7, 0.15) == (1504, 1826)
    vs, ts = split_bounds(7, 0.5, 0.25)
    assert 0 < vs < ts < 7


@settings(max_examples=300, deadline=None)
@given(look_back=st.integers(1, 12), foresight=st.integers(0, 6), horizon=st.integers(1, 6),
       n=st.integers(1, 60), first_valid=st.integers(0, 1), data=st.data())
def test_no_window_reaches_its_target(look_back, foresight, horizon, n, first_valid, data):
    """For any split [r0, r1): every sample's inputs end strictly before its first target, its
    targets are exactly rows t+1+f .. t+f+h inside the split, and no valid anchor is missed."""
    r0 = data.draw(st.integers(0, n - 1))
    r1 = data.draw(st.integers(r0 + 1, n))
    lo, hi = anchor_range(r0, r1, look_back, foresight, horizon, first_valid)
    expected = [t for t in range(n)
                if t - look_back + 1 >= first_valid
                and t + 1 + foresight >= r0 and t + foresight + horizon <= r1 - 1]
    assert list(range(lo, hi)) == expected
    if hi == lo:
        return
    rows = np.arange(n)
    xs = input_windows(rows.astype("float64")[:, None], look_back, lo, hi)[:, :, 0]
    ys = target_windows(rows, foresight, horizon, lo, hi)
    anchors = np.arange(lo, hi)
    assert xs.shape == (hi - lo, look_back) and ys.shape == (hi - lo, horizon)
    np.testing.assert_array_equal(xs, anchors[:, None] - look_back + 1 + np.arange(look_back))
    np.testing.assert_array_equal(ys, anchors[:, None] + 1 + foresight + np.arange(horizon))
    assert (xs.max(axis=1) < ys.min(axis=1)).all()
    assert (xs.max(axis=1) == anchors).all()
    assert ys.min() >= r0 and ys.max() < r1
    assert xs.min() >= first_valid


# --------------------------------------------------------------------------- the dataset layer


def level_cfg(*extra):
    """Level targets and a min-max scaler: inputs and targets decode back to row numbers."""
    return config("scaling.target_transform=level", "scaling.scaler=minmax", *extra)


def decoded(ds, name):
    """Row numbers behind each sample's inputs and targets (the series is Close = 100 + row)."""
    sp = ds.splits[name]
    x_rows = ds.transform.scaler.inverse(sp.x.astype("float64"))[:, :, 0] - 100
    y_rows = ds.transform.invert(sp.y, ds.last_prices(name)) - 100
    return np.rint(x_rows).astype(int), np.rint(y_rows).astype(int)


def test_dataset_split_boundaries():
    n = 200
    cfg = level_cfg("window.look_back=5", "window.foresight=1", "window.horizon=3")
    ds = dataset.build(price_frame(100 + np.arange(n)), cfg)
    vs, ts = split_bounds(n, 0.7, 0.15)
    assert {k: s.rows for k, s in ds.splits.items()} == \
        {"train": (0, vs), "val": (vs, ts), "test": (ts, n)}
    for name, sp in ds.splits.items():
        x_rows, y_rows = decoded(ds, name)
        r0, r1 = sp.rows
        assert sp.x.shape == (len(sp), 5, 1) and sp.y.shape == (len(sp), 3)
        assert sp.x.dtype == np.float32 and sp.y.dtype == np.float32
        # every row of the split is a target (train: after its first full input window)
        assert y_rows.min() == (5 + 1 if name == "train" else r0)
        assert y_rows.max() == r1 - 1
        assert (x_rows[:, -1] == sp.anchors).all()
        assert (x_rows.max(axis=1) < y_rows.min(axis=1)).all()
        assert x_rows.max() < r1 - 1
        np.testing.assert_array_equal(ds.actual_prices(name), 100 + y_rows)
    # val and test inputs reach back into the previous split for context
    assert decoded(ds, "val")[0].min() < vs
    assert decoded(ds, "test")[0].min() < ts
    assert ds.target_dates("val")[0] == ds.frame.index[vs]
    assert ds.target_dates("test")[-1] == ds.frame.index[n - 1 - 2]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(look_back=st.integers(1, 15), foresight=st.integers(0, 4), horizon=st.integers(1, 5),
       extra=st.integers(0, 40), transform=st.sampled_from(["level", "log_return"]))
def test_dataset_never_looks_ahead(look_back, foresight, horizon, extra, transform):
    """Built from the smallest series the error message asks for (plus some), every split is
    non-empty, its targets are its own rows, and no input reaches a target row."""
    over = [f"window.look_back={look_back}", f"window.foresight={foresight}",
            f"window.horizon={horizon}", f"scaling.target_transform={transform}",
            "scaling.scaler=minmax"]
    need = rows_needed(config(*over))
    n = need + extra
    close = 100 * np.exp(0.01 * np.sin(np.arange(n)) + 0.001 * np.arange(n))
    ds = dataset.build(price_frame(close), config(*over))
    first_valid = 1 if transform == "log_return" else 0
    for name, sp in ds.splits.items():
        assert len(sp) > 0, name
        r0, r1 = sp.rows
        target_rows = sp.anchors[:, None] + 1 + foresight + np.arange(horizon)
        input_rows = sp.anchors[:, None] - look_back + 1 + np.arange(look_back)
        assert target_rows.min() >= r0 and target_rows.max() < r1
        assert input_rows.min() >= first_valid
        assert (input_rows.max(axis=1) < target_rows.min(axis=1)).all()
        # the values really are those rows: inputs from the scaled series, targets the prices
        x_all = ds.transform.inputs(ds.frame[["Close"]].to_numpy())
        np.testing.assert_allclose(sp.x[:, :, 0], x_all[input_rows, 0], rtol=1e-6)
        np.testing.assert_allclose(ds.transform.invert(sp.y, ds.last_prices(name)),
                                   close[target_rows], rtol=1e-5)


def rows_needed(cfg) -> int:
    with pytest.raises(DataError) as info:
        dataset.build(price_frame(100 + np.arange(3)), cfg)
    m = re.search(r"need at least (\d+) rows", str(info.value))
    assert m, str(info.value)
    return int(m.group(1))


@pytest.mark.parametrize("transform", ["level", "log_return"])
def test_too_short_series_names_the_rows_needed(transform):
    cfg = config("window.look_back=30", "window.horizon=2", "window.foresight=1",
                 f"scaling.target_transform={transform}")
    need = rows_needed(cfg)
    per_sample = 30 + 1 + 2 + (transform == "log_return")
    assert need > per_sample  # the training split alone needs a full window
    with pytest.raises(DataError) as info:
        dataset.build(price_frame(100 + np.arange(need - 1)), cfg)
    msg = str(info.value)
    assert f"{need - 1} rows is too few" in msg and f"need at least {need} rows" in msg
    assert "look_back=30" in msg and "horizon=2" in msg
    ds = dataset.build(price_frame(100 + np.arange(need)), cfg)  # exactly enough is enough
    assert all(len(sp) > 0 for sp in ds.splits.values())


def test_sample_is_long_enough_for_the_shipped_window():
    cfg = config("window.look_back=30")
    from helpers import sample_frame

    ds = dataset.build(sample_frame(), cfg)
    assert len(ds.frame) == 2148
    assert ds.splits["train"].x.shape == (1504 - 30 - 1, 30, 1)


def test_nan_in_a_selected_column():
    close = 100 + np.arange(100.0)
    close[40] = np.nan
    with pytest.raises(DataError) as info:
        dataset.build(price_frame(close), config("window.look_back=5"))
    msg = str(info.value)
    assert "NaN in Close" in msg and "1 rows" in msg
    assert str(price_frame(close).index[40].date()) in msg


def test_nan_in_an_unused_column_is_fine():
    close = 100 + np.arange(100.0)
    volume = np.full(100, 1e6)
    volume[10] = np.nan
    ds = dataset.build(price_frame(close, Volume=volume), config("window.look_back=5"))
    assert list(ds.frame.columns) == ["Close"]
    with pytest.raises(DataError, match="NaN in Volume"):
        dataset.build(price_frame(close, Volume=volume),
                      config("window.look_back=5", "data.features=[Close, Volume]"))


def test_missing_column():
    with pytest.raises(DataError, match="no column Open"):
        dataset.build(price_frame(100 + np.arange(100.0)), config("data.features=[Open]"))


@pytest.mark.parametrize("transform", ["level", "log_return"])
@pytest.mark.parametrize("scaler", ["minmax", "standard"])
def test_constant_series(transform, scaler):
    cfg = config("window.look_back=5", f"scaling.target_transform={transform}",
                 f"scaling.scaler={scaler}")
    with pytest.raises(DataError) as info:
        dataset.build(price_frame(np.full(100, 50.0)), cfg)
    assert "Close is constant" in str(info.value)
    assert "zero scale" in str(info.value)


def test_constant_only_on_the_training_split():
    close = np.full(100, 50.0)
    close[80:] += np.arange(20)  # moves after the training rows: the scaler still cannot fit
    with pytest.raises(DataError, match="constant on the training split"):
        dataset.build(price_frame(close), config("window.look_back=5"))


def test_date_range_selects_rows():
    frame = price_frame(100 + np.arange(300.0))
    start, end = frame.index[50].date(), frame.index[249].date()
    ds = dataset.build(frame, config("window.look_back=5", f"data.start={start}",
                                     f"data.end={end}"))
    assert len(ds.frame) == 200
    assert ds.frame.index[0].date() == start and ds.frame.index[-1].date() == end
