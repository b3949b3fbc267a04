"""`stockrnn export`: a self-contained model from raw prices to forecast prices.

One tiny run is trained for the module (synthetic AR(1), look_back 5, LSTM(4), 2 epochs,
horizon 2) and exported once per format; the exported SavedModel (plain TensorFlow), ONNX file
(onnxruntime) and .keras file (plain Keras) must give what `stockrnn predict` gives and what the
run's model gives on every test-split window. The graph itself is also checked without
training for the cases the run does not cover: the level target, several features with
Volume, a target that is not a feature."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    EXPORT_LOADERS,
    explain,
    forecasts_on_the_test_split,
    invoke,
    last_line,
    meta,
    savedmodel_fn,
    set_args,
    train_run,
)

from stockrnn.errors import ConfigError

LOOK_BACK, HORIZON = 5, 2
RTOL = 1e-4
HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("tf2onnx", "onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="the onnx extra is not installed "
                                "(pip install tf2onnx onnx onnxruntime)")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("export")
    path = train_run(*set_args(["data.source=synthetic", "data.ticker=AR1",
                                f"window.look_back={LOOK_BACK}", f"window.horizon={HORIZON}",
                                "model.units=[4]", "train.epochs=2", "paths.run_name=ex",
                                f"paths.data_dir={base / 'data'}",
                                f"paths.runs_dir={base / 'runs'}"]))
    assert meta(path)["best_epoch"] > 0, "the network must not be the untrained (zero) one"
    return path


@pytest.fixture(scope="module")
def exports(run, tmp_path_factory) -> dict[str, Path]:
    """Each format exported once through the CLI (onnx only with the extra)."""
    out = tmp_path_factory.mktemp("exported")
    paths = {}
    for fmt in ("savedmodel", "keras", *(("onnx",) if HAS_ONNX else ())):
        result = invoke("export", "--run", run, "--format", fmt, "--output", out / fmt)
        paths[fmt] = Path(last_line(result))
        assert paths[fmt] == out / fmt, explain(result)
    return paths


@pytest.fixture(scope="module")
def windows(run):
    """(raw windows of the latest stored bars and of every test-split sample, what predict
    and the model forecast for them)."""
    from stockrnn.config import load_config
    from stockrnn.data.store import Store
    from stockrnn.runs import RunDir

    cfg = load_config(RunDir(run).config)
    assert cfg.scaling.target_transform == "log_return"
    stored = Store(cfg.data_dir).read("AR1", "1d")["Close"].to_numpy()
    latest = stored[-(LOOK_BACK + 1):].reshape(1, LOOK_BACK + 1, 1)
    fc = json.loads(invoke("predict", "--run", run, "--format", "json").stdout)
    from_predict = np.array([[row["forecast"] for row in fc["forecast"]]])
    raw, from_model = forecasts_on_the_test_split(run)
    return latest, from_predict, raw, from_model




@pytest.mark.parametrize("fmt", ["savedmodel", pytest.param("onnx", marks=needs_onnx), "keras"])
def test_exported_model_equals_predict_and_the_model_on_the_test_split(fmt, exports, windows):
    latest, from_predict, raw, from_model = windows
    forecast = EXPORT_LOADERS[fmt](exports[fmt])
    np.testing.assert_allclose(forecast(latest), from_predict, rtol=RTOL)
    got = forecast(raw)
    assert got.shape == (len(raw), HORIZON) and got.dtype == np.float32
    np.testing.assert_allclose(got, from_model, rtol=RTOL)
    # the forecasts move: the exported network is not the persistence forecast
    assert np.abs(got[:, 0] / raw[:, -1, 0] - 1).max() > 1e-5


def test_signature_describes_everything_a_consumer_needs(run, exports):
    sig = json.loads((exports["savedmodel"] / "signature.json").read_text())
    assert sig["inputs"] == [{"name": "prices", "dtype": "float32",
                              "shape": [None, LOOK_BACK + 1, 1], "columns": ["Close"],
                              "meaning": sig["inputs"][0]["meaning"]}]
    assert sig["outputs"][0]["name"] == "forecast"
    assert sig["outputs"][0]["shape"] == [None, HORIZON]
    assert (sig["look_back"], sig["horizon"], sig["foresight"]) == (LOOK_BACK, HORIZON, 0)
    assert (sig["interval"], sig["target"], sig["features"]) == ("1d", "Close", ["Close"])
    assert sig["target_transform"] == "log_return" == sig["transform"]["kind"]
    assert sig["transform"] == json.loads((run / "scaler.json").read_text())
    assert sig["run"]["path"] == str(run.resolve()) and sig["run"]["name"] == "ex"
    assert sig["stockrnn_version"] and sig["format"] == "savedmodel"
    assert len(sig["intervals"]["log_quantiles"]) == HORIZON
    ex = sig["example"]
    assert np.asarray(ex["prices"]).shape == (LOOK_BACK + 1, 1)
    got = savedmodel_fn(exports["savedmodel"])(np.asarray([ex["prices"]], "float32"))
    np.testing.assert_allclose(got[0], ex["forecast"], rtol=RTOL)
    for fmt, path in exports.items():
        names = {p.name for p in path.iterdir()}
        assert "signature.json" in names, fmt
        assert {"savedmodel": "saved_model.pb", "keras": "model.keras",
                "onnx": "model.onnx"}[fmt] in names
    leftovers = [p.name for p in next(iter(exports.values())).parent.iterdir()
                 if p.name.startswith(".")]
    assert not leftovers, "temp folders left beside the exports"


@needs_onnx
def test_onnx_batch_dimension_is_named(exports):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exports["onnx"] / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    [inp], [out] = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("prices", ["batch", LOOK_BACK + 1, 1],
                                               "tensor(float)")
    assert (out.name, out.shape) == ("forecast", ["batch", HORIZON])


# --------------------------------------------------------------------------- the graph alone


def fake_transform(kind: str, scaler: str, features, target: str, values, prices):
    from stockrnn.features.transforms import Transform

    return Transform.fit(kind, scaler, list(features), target, values, prices, len(values))


@pytest.mark.parametrize("kind, scaler, features, target", [
    ("level", "minmax", ("Close",), "Close"),
    ("level", "standard", ("Open", "Volume"), "Close"),
    ("log_return", "standard", ("Open", "Volume"), "Close"),   # target not a feature, Volume
    ("log_return", "minmax", ("Close", "High"), "High"),
])
def test_graph_equals_the_numpy_path(kind, scaler, features, target):
    """wrap() (keras.ops) against reference() (Transform.inputs, the network,
    Transform.invert), with a network whose weights are all non-zero."""
    from stockrnn import export
    from stockrnn.backend import use
    from stockrnn.config import ModelConfig
    from stockrnn.models.registry import build_model

    use()
    rng = np.random.default_rng(3)
    n = 200
    cols = {"Close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))}
    cols["Open"] = cols["Close"] * np.exp(rng.normal(0, 0.003, n))
    cols["High"] = cols["Close"] * np.exp(np.abs(rng.normal(0, 0.005, n)))
    cols["Volume"] = rng.integers(1e5, 5e6, n).astype("float64")
    values = np.stack([cols[f] for f in features], axis=1)
    transform = fake_transform(kind, scaler, features, target, values, cols[target])
    model = build_model(ModelConfig(type="gru", units=(3,)), (LOOK_BACK, len(features)), HORIZON)
    model.set_weights([rng.normal(0, 0.5, w.shape) for w in model.get_weights()])
    table = np.stack([cols[c] for c in export.columns(transform)], axis=1)
    assert table.shape[1] == len(features) + (target not in features)
    windows = np.stack([table[i:i + LOOK_BACK + 1] for i in range(0, n - LOOK_BACK, 7)])
    expected = export.reference(model, transform, LOOK_BACK, windows)
    got = export.wrap(model, transform, LOOK_BACK)(windows.astype("float32"))["forecast"]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=RTOL)
    assert np.ptp(expected) > 0


# --------------------------------------------------------------------------- bad input


def test_incomplete_run_exits_1(run, tmp_path):
    broken = Path(shutil.copytree(run, tmp_path / "broken"))
    m = meta(broken)
    (broken / "meta.json").write_text(json.dumps({**m, "status": "incomplete"}))
    result = invoke("export", "--run", broken, "--format", "keras", code=1)
    assert "not complete" in result.stderr
    assert not (broken / "export").exists()


def test_missing_converter_exits_2_with_the_pip_command(run, tmp_path, monkeypatch):
    from stockrnn import export

    real = importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    result = invoke("export", "--run", run, "--format", "onnx", "--output", tmp_path / "o",
                    code=2)
    assert "tf2onnx" in result.stderr and "pip install" in result.stderr
    assert not (tmp_path / "o").exists()


def test_existing_output_is_refused_without_force(run, exports, tmp_path):
    target = Path(shutil.copytree(exports["keras"], tmp_path / "k"))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    result = invoke("export", "--run", run, "--format", "keras", "--output", target, code=2)
    assert "--force" in result.stderr
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_force_replaces_an_export_but_nothing_else(run, exports, tmp_path):
    target = Path(shutil.copytree(exports["keras"], tmp_path / "k"))
    invoke("export", "--run", run, "--format", "keras", "--output", target, "--force")
    assert json.loads((target / "signature.json").read_text())["format"] == "keras"
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    result = invoke("export", "--run", run, "--format", "keras", "--output", other, "--force",
                    code=2)
    assert "not an earlier stockrnn export" in result.stderr
    assert (other / "keep.txt").read_text() == "mine"
    result = invoke("export", "--run", run, "--format", "keras", "--output", run.parent,
                    "--force", code=2)
    assert "holds the run" in result.stderr


def test_a_failed_export_leaves_the_old_one_and_no_temp_folder(run, exports, tmp_path,
                                                               monkeypatch):
    from stockrnn import export

    target = Path(shutil.copytree(exports["keras"], tmp_path / "k"))
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def half_written(wrapper, folder):
        (folder / "model.keras").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(export.WRITERS, "keras", half_written)
    result = invoke("export", "--run", run, "--format", "keras", "--output", target, "--force",
                    code=1)
    assert "No space left" in result.stderr
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_onnx_on_a_jax_process_says_how(run):
    from stockrnn import export

    with pytest.raises(ConfigError, match="fresh process"):
        export.check_converter("onnx", "jax")
