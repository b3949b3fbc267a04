"""Scalers and target transforms: fitted on the training rows only, equal to scikit-learn's,
invertible back to the true prices, and JSON round-trippable."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import config, price_frame, sample_frame

from stockrnn import dataset
from stockrnn.errors import DataError
from stockrnn.features.transforms import Scaler, Transform

TRANSFORMS = ["level", "log_return"]
SCALERS = ["minmax", "standard"]


def sklearn_preprocessing():
    """scikit-learn's preprocessing module, imported by the tests that compare with it (not at
    collection, which every test process does for every file)."""
    import importlib

    return importlib.import_module("sklearn.preprocessing")


def ohlcv(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    return price_frame(close, Open=close * (1 + rng.normal(0, 0.005, n)),
                       Volume=rng.integers(1_000, 1_000_000, n))


def cfg_for(transform: str, scaler: str, *extra: str):
    return config("window.look_back=5", f"scaling.target_transform={transform}",
                  f"scaling.scaler={scaler}", *extra)


# --------------------------------------------------------------------------- train-only fitting


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("scaler", SCALERS)
def test_scaler_is_fitted_on_the_training_rows_only(transform, scaler):
    cfg = cfg_for(transform, scaler, "data.features=[Close, Open]")
    frame = ohlcv()
    base = dataset.build(frame, cfg)
    train_end = base.splits["train"].rows[1]

    for row in (train_end, base.splits["test"].rows[0] + 3, len(frame) - 1):  # val and test rows
        changed = frame.copy()
        changed.iloc[row, changed.columns.get_loc("Close")] *= 3.0
        changed.iloc[row, changed.columns.get_loc("Open")] *= 0.2
        ds = dataset.build(changed, cfg)
        assert ds.transform == base.transform, row
        # the training windows are untouched as well
        np.testing.assert_array_equal(ds.splits["train"].x, base.splits["train"].x)
        np.testing.assert_array_equal(ds.splits["train"].y, base.splits["train"].y)

    for row in (train_end - 1, train_end // 2):                           # training rows
        changed = frame.copy()
        changed.iloc[row, changed.columns.get_loc("Close")] *= 3.0
        ds = dataset.build(changed, cfg)
        assert ds.transform.scaler != base.transform.scaler, row
        assert ds.transform != base.transform


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("kind, sk_name", [("minmax", "MinMaxScaler"),
                                           ("standard", "StandardScaler")])
def test_scaler_matches_sklearn_on_the_training_rows(transform, kind, sk_name):
    sk_cls = getattr(sklearn_preprocessing(), sk_name)
    frame = ohlcv()
    cols = ["Close", "Open", "Volume"]
    cfg = cfg_for(transform, kind, "data.features=[Close, Open, Volume]")
    ds = dataset.build(frame, cfg)
    train_end = ds.splits["train"].rows[1]
    values = frame[cols].to_numpy()
    if transform == "level":
        raw = values
        fit_rows = raw[:train_end]
    else:  # one-bar log returns; log1p for Volume; row 0 undefined
        logs = np.column_stack([np.log(values[:, 0]), np.log(values[:, 1]), np.log1p(values[:, 2])])
        raw = np.vstack([np.full((1, 3), np.nan), np.diff(logs, axis=0)])
        fit_rows = raw[1:train_end]
    # in rows (C order), as the pipeline holds them: the order of a sum, so its last bits,
    # follows the memory layout
    sk = sk_cls().fit(np.ascontiguousarray(fit_rows))
    # stockrnn computes them in NumPy with scikit-learn's arithmetic: the same bits
    if kind == "minmax":
        np.testing.assert_array_equal(ds.transform.scaler.offset, sk.data_min_)
        np.testing.assert_array_equal(ds.transform.scaler.scale, sk.data_range_)
    else:
        np.testing.assert_array_equal(ds.transform.scaler.offset, sk.mean_)
        np.testing.assert_array_equal(ds.transform.scaler.scale, sk.scale_)
    ours = ds.transform.inputs(values)
    theirs = sk.transform(raw[1:])  # every row after the first, val and test included
    np.testing.assert_allclose(ours[1:], theirs, rtol=1e-5, atol=1e-5)
    if transform == "log_return":
        assert np.isnan(ours[0]).all()
    assert ours.dtype == np.float32
    if kind == "minmax":  # the training rows span exactly [0, 1]; later rows may leave it
        assert np.nanmin(ours[:train_end], axis=0) == pytest.approx(0, abs=1e-6)
        assert np.nanmax(ours[:train_end], axis=0) == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_scaler_has_sklearns_bits_on_hard_columns(seed):
    """Large offsets with tiny spreads (where a naive variance loses digits), a single column,
    many rows: the NumPy fit equals scikit-learn's to the bit."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(2, 5000))
    x = (rng.normal(size=(rows, 4)) * [1e-3, 1.0, 1e4, 0.5] + [1e4, 0.0, -3e6, 1.0])
    x = x[:, : 1 + seed % 4]
    names = [f"c{j}" for j in range(x.shape[1])]
    sk = sklearn_preprocessing()
    std, mm = sk.StandardScaler().fit(x), sk.MinMaxScaler().fit(x)
    ours = Scaler.fit("standard", x, names)
    np.testing.assert_array_equal(ours.offset, std.mean_)
    np.testing.assert_array_equal(ours.scale, std.scale_)
    ours = Scaler.fit("minmax", x, names)
    np.testing.assert_array_equal(ours.offset, mm.data_min_)
    np.testing.assert_array_equal(ours.scale, mm.data_range_)


def test_preparing_a_dataset_imports_no_scikit_learn():
    """A fresh process that builds the smoke config's dataset (fits its scalers) imports
    neither scikit-learn nor SciPy: they cost 1.5 s of each such process."""
    code = ("import sys\n"
            "from stockrnn import dataset\n"
            "from stockrnn.config import load_config\n"
            "from stockrnn.data.csvfile import read_price_csv\n"
            "from stockrnn.data.sources import SAMPLE_DIR\n"
            "for scaler in ('standard', 'minmax'):\n"
            "    cfg = load_config(None, [f'scaling.scaler={scaler}'])\n"
            "    ds = dataset.build(read_price_csv(SAMPLE_DIR / 'GOOG.csv'), cfg)\n"
            "    assert ds.transform.scaler.kind == scaler\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]"]


def test_scaler_fit_inverse_and_errors():
    x = np.array([[1.0, 10.0], [3.0, 30.0], [np.nan, 5.0], [5.0, 20.0]])
    s = Scaler.fit("minmax", x, ["a", "b"])
    assert s.offset == (1.0, 10.0) and s.scale == (4.0, 20.0)  # the NaN row is skipped
    z = s.transform(x[[0, 1, 3]])
    np.testing.assert_allclose(s.inverse(z), x[[0, 1, 3]])
    with pytest.raises(DataError, match="need at least 2"):
        Scaler.fit("standard", x[:1], ["a", "b"])
    with pytest.raises(DataError, match="column b is constant"):
        Scaler.fit("standard", np.array([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]]), ["a", "b"])


# --------------------------------------------------------------------------- inversion


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("scaler", SCALERS)
@pytest.mark.parametrize("foresight, horizon", [(0, 1), (2, 4)])
def test_targets_invert_to_the_true_prices(transform, scaler, foresight, horizon):
    cfg = cfg_for(transform, scaler, f"window.foresight={foresight}", f"window.horizon={horizon}")
    ds = dataset.build(sample_frame(), cfg)
    close = sample_frame()["Close"].to_numpy()
    for name, sp in ds.splits.items():
        prices = ds.transform.invert(sp.y, ds.last_prices(name))
        actual = ds.actual_prices(name)
        assert prices.shape == actual.shape == (len(sp), horizon)
        np.testing.assert_allclose(prices, actual, rtol=1e-5)
        # and actual_prices are the raw Close rows the windows claim
        rows = sp.anchors[:, None] + 1 + foresight + np.arange(horizon)
        np.testing.assert_array_equal(actual, close[rows])
        np.testing.assert_array_equal(ds.last_prices(name), close[sp.anchors])


def test_log_return_targets_are_scaled_log_returns():
    cfg = cfg_for("log_return", "standard", "window.horizon=2")
    ds = dataset.build(sample_frame(), cfg)
    close = sample_frame()["Close"].to_numpy()
    train_end = ds.splits["train"].rows[1]
    scale = np.std(np.diff(np.log(close[:train_end])))
    assert ds.transform.target_scale == pytest.approx(scale)
    sp = ds.splits["val"]
    expected = np.log(close[sp.anchors[:, None] + 1 + np.arange(2)] / close[sp.anchors, None]) / scale
    np.testing.assert_allclose(sp.y, expected, rtol=1e-4, atol=1e-6)


def test_zero_log_return_is_persistence():
    ds = dataset.build(sample_frame(), cfg_for("log_return", "standard", "window.horizon=3"))
    for name in ("val", "test"):
        last = ds.last_prices(name)
        prices = ds.transform.invert(np.zeros((len(last), 3), dtype="float32"), last)
        np.testing.assert_array_equal(prices, np.repeat(last[:, None], 3, axis=1))


def test_level_inversion_is_affine():
    ds = dataset.build(sample_frame(), cfg_for("level", "minmax"))
    t = ds.transform
    train_close = sample_frame()["Close"].to_numpy()[: ds.splits["train"].rows[1]]
    assert t.target_offset == pytest.approx(train_close.min())
    assert t.target_scale == pytest.approx(train_close.max() - train_close.min())
    # a level forecast ignores the last price
    np.testing.assert_allclose(t.invert(np.array([[0.0], [1.0]]), np.array([1.0, 2.0])),
                               [[train_close.min()], [train_close.max()]])


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("scaler", SCALERS)
def test_transform_round_trips_through_json(transform, scaler):
    ds = dataset.build(ohlcv(), cfg_for(transform, scaler, "data.features=[Close, Volume]"))
    t = ds.transform
    d = json.loads(json.dumps(t.to_dict()))
    assert d["kind"] == transform and d["scaler"]["kind"] == scaler
    assert d["features"] == ["Close", "Volume"] and d["target"] == "Close"
    back = Transform.from_dict(d)
    assert back == t
    values = ohlcv()[["Close", "Volume"]].to_numpy()
    np.testing.assert_array_equal(back.inputs(values), t.inputs(values))
    y = ds.splits["test"].y
    np.testing.assert_array_equal(back.invert(y, ds.last_prices("test")),
                                  t.invert(y, ds.last_prices("test")))
