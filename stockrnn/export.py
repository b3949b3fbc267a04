"""Export a run as a self-contained model: raw prices in, forecast prices out.

The trained network is wrapped in a Keras functional model whose graph also holds everything
stockrnn does around it, with the run's fitted constants:

    log_return  prices -> one-bar log returns (log1p for Volume) -> (r - offset) / scale
                -> network -> last target price * exp(y * target_scale)
    level       prices -> the last look_back bars -> (p - offset) / scale
                -> network -> y * target_scale + target_offset

Input ``prices``: float32 ``[batch, look_back + 1, columns]``, the last ``look_back + 1`` bars,
oldest first; the columns are ``data.features`` (plus ``data.target`` last when it is not a
feature). Output ``forecast``: float32 ``[batch, horizon]``, the forecast price of each step.
The wrapper uses Keras built-in layers and ``keras.ops`` only, so its ``.keras`` file loads with
plain Keras on any backend. Formats:

    savedmodel  ``model.export(format="tf_saved_model")``: load with ``tf.saved_model.load``
    onnx        ``model.export(format="onnx")`` (tf2onnx): ``model.onnx`` for onnxruntime
    keras       ``model.keras``: ``keras.models.load_model``

Each export is a folder with the model and ``signature.json`` (inputs, outputs, columns,
window, horizon, transform, interval quantiles, the run it came from, versions, and a worked
example), written into a temp folder beside the output and renamed into place, after the
written model was loaded back and checked against the run's own forecasts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stockrnn import __version__, runs
from stockrnn.errors import ConfigError, RunError, StockRNNError
from stockrnn.forecasting import load_run

log = logging.getLogger(__name__)

FORMATS = ("savedmodel", "onnx", "keras")
INPUT, OUTPUT = "prices", "forecast"
SIGNATURE = "signature.json"
MODEL_FILE = {"savedmodel": None, "onnx": "model.onnx", "keras": "model.keras"}
RTOL = 1e-4          # the exported model must reproduce the run's forecasts this closely
CONVERTERS = {       # format -> modules it needs (on the TensorFlow backend) and how to get them
    "savedmodel": (("tensorflow",), "pip install tensorflow"),
    "onnx": (("tf2onnx", "onnx"), "pip install 'stockrnn[onnx]'  (or: pip install tf2onnx onnx)"),
    "keras": ((), ""),
}


@dataclasses.dataclass(frozen=True)
class Exported:
    path: Path          # the export folder
    format: str
    signature: dict
    verified: bool      # the written model was loaded back and matched the run's forecasts


# --------------------------------------------------------------------------- the graph


def columns(transform) -> list[str]:
    """The input columns: the features, then the target when it is not one of them."""
    cols = list(transform.features)
    return cols if transform.target in cols else [*cols, transform.target]


def wrap(model, transform, look_back: int):
    """The trained ``model`` inside a functional model from raw prices to forecast prices.

    Built from ``keras.ops`` and slicing only (no Lambda, no custom layer): it serializes to a
    ``.keras`` file that plain Keras loads on either backend."""
    import keras
    from keras import ops

    cols = columns(transform)
    n_feat = len(transform.features)
    offset = np.asarray(transform.scaler.offset, dtype="float32")
    scale = np.asarray(transform.scaler.scale, dtype="float32")
    prices = keras.Input((look_back + 1, len(cols)), dtype="float32", name=INPUT)
    feats = prices[:, :, :n_feat] if len(cols) > n_feat else prices
    if transform.kind == "log_return":
        now, before = feats[:, 1:, :], feats[:, :-1, :]
        shift = np.array([1.0 if f == "Volume" else 0.0 for f in transform.features], "float32")
        if shift.any():  # log1p(v_t) - log1p(v_t-1) = log((1 + v_t) / (1 + v_t-1))
            now, before = now + shift, before + shift
        # log of the ratio, not a difference of logs: no cancellation in float32
        raw = ops.log(ops.divide(now, before))
    elif transform.kind == "level":
        raw = feats[:, 1:, :]
    else:
        raise RunError(f"unknown target transform {transform.kind!r} in scaler.json")
    y = model(ops.divide(ops.subtract(raw, offset), scale))
    if transform.kind == "log_return":
        t = cols.index(transform.target)
        last = prices[:, -1, t:t + 1]
        out = ops.multiply(last, ops.exp(ops.multiply(y, np.float32(transform.target_scale))))
    else:
        out = ops.add(ops.multiply(y, np.float32(transform.target_scale)),
                      np.float32(transform.target_offset))
    return keras.Model(prices, {OUTPUT: out}, name="stockrnn_export")


def reference(model, transform, look_back: int, windows: np.ndarray) -> np.ndarray:
    """What ``stockrnn predict`` forecasts from each raw window ``(n, look_back + 1, columns)``:
    the numpy path (Transform.inputs, the network, Transform.invert), in float64."""
    from stockrnn.training import predict

    windows = np.asarray(windows, dtype="float64")
    n_feat = len(transform.features)
    x = np.stack([transform.inputs(w[:, :n_feat])[-look_back:] for w in windows])
    last = windows[:, -1, columns(transform).index(transform.target)]
    return transform.invert(predict(model, x), last)


# --------------------------------------------------------------------------- export


def export(run_ref: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None,
           force: bool = False, runs_dir=None) -> Exported:
    """Export a complete run as ``fmt`` into the folder ``output`` (default:
    ``<run>/export/<fmt>``). Refuses (ConfigError) an existing output unless ``force``, and then
    replaces only an earlier export or an empty folder."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    run = runs.resolve(str(run_ref), runs_dir)
    run.check_complete()
    target = Path(output) if output is not None else run.path / "export" / fmt
    check_target(target, run, force)
    backend = export_backend(fmt, run)
    check_converter(fmt, backend)
    cfg, transform, model, quantiles = load_run(run, backend)
    if cfg.data.covariates.any:
        raise ConfigError(f"{run.path} uses data.covariates: its inputs (aligned covariate "
                          "returns, indicators, calendar features) are computed outside the "
                          "network, so there is no graph from raw prices to export; serve it "
                          "with `stockrnn predict`")
    w = cfg.window
    wrapper = wrap(model, transform, w.look_back)
    example = last_window(run, transform, w.look_back)
    expected = reference(model, transform, w.look_back, example[None])
    got = _outputs(wrapper(example[None].astype("float32"), training=False))
    _check_close(got, expected, "the export graph")
    signature = make_signature(run, cfg, transform, quantiles, fmt, backend, example,
                               expected[0])
    verified = []

    def fill(folder: Path) -> None:
        WRITERS[fmt](wrapper, folder)
        if fmt == "onnx":
            signature["export"]["onnx_opset"] = _name_onnx(folder / MODEL_FILE[fmt])
        (folder / SIGNATURE).write_text(json.dumps(signature, indent=2) + "\n")
        loaded = load_exported(folder, fmt)
        if loaded is not None:
            _check_close(loaded(example[None].astype("float32")), expected,
                         f"the written {fmt} model")
            verified.append(True)

    with _quiet():
        write_folder(target, force, fill)
    log.info("exported %s as %s (%s backend%s) -> %s", run.path, fmt, backend,
             "" if verified else ", not loaded back: onnxruntime is not installed", target)
    return Exported(target, fmt, signature, bool(verified))


def export_backend(fmt: str, run: runs.RunDir) -> str:
    """The Keras backend to export with: the one already loaded in this process; else
    TensorFlow for savedmodel and onnx (both are TensorFlow graphs; a .keras model trained on
    JAX loads there unchanged), and the run's own for keras."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    if fmt != "keras":
        return "tensorflow"
    from stockrnn.config import load_config

    return load_config(run.config).backend


def check_converter(fmt: str, backend: str) -> None:
    if fmt == "onnx" and backend != "tensorflow":
        raise ConfigError(f"--format onnx converts a TensorFlow graph (tf2onnx), but Keras is "
                          f"loaded with the {backend} backend in this process: export from a "
                          "fresh process (stockrnn export picks TensorFlow; the model is the same)")
    modules, how = CONVERTERS[fmt]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"--format {fmt} needs {' and '.join(missing)}, not installed: {how}")


def check_target(target: Path, run: runs.RunDir, force: bool) -> None:
    """An output that does not exist yet; with ``force``, an earlier export or an empty folder
    (never the run itself, a folder holding it, or anything else)."""
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_dir() or target.is_symlink():
        raise ConfigError(f"{target} exists and is not a folder; choose another --output")
    resolved, run_path = target.resolve(), run.path.resolve()
    if resolved == run_path or resolved in run_path.parents:
        raise ConfigError(f"{target} holds the run itself; choose another --output")
    if not force:
        raise ConfigError(f"{target} exists; pass --force to replace it")
    if any(target.iterdir()) and not is_export(target):
        raise ConfigError(f"{target} is not an earlier stockrnn export (no {SIGNATURE}); "
                          "--force replaces only those: choose another --output")


def is_export(folder: Path) -> bool:
    try:
        return "stockrnn_version" in json.loads((folder / SIGNATURE).read_text())
    except (OSError, ValueError, TypeError):
        return False


def last_window(run: runs.RunDir, transform, look_back: int) -> np.ndarray:
    """The run's last ``look_back + 1`` bars (series.csv), as the export takes them."""
    from stockrnn.data import frames

    try:
        frame = frames.read_csv(run.series)
        values = frame[columns(transform)].to_numpy(dtype="float64")[-(look_back + 1):]
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{run.series}: unreadable ({exc})") from None
    if len(values) < look_back + 1:
        raise RunError(f"{run.series}: {len(values)} rows, fewer than look_back + 1")
    return values


def make_signature(run, cfg, transform, quantiles, fmt, backend, example, forecast) -> dict:
    import keras

    meta = run.meta()
    w = cfg.window
    cols = columns(transform)
    versions = {"keras": keras.__version__}
    for name in ("tensorflow", "jax", "tf2onnx", "onnx"):
        if name in sys.modules:
            versions[name] = getattr(sys.modules[name], "__version__", None)
    if fmt == "onnx":
        import onnx
        import tf2onnx

        versions.update(tf2onnx=tf2onnx.__version__, onnx=onnx.__version__)
    return {
        "stockrnn_version": __version__,
        "format": fmt,
        "model_file": MODEL_FILE[fmt] or ".",
        "inputs": [{"name": INPUT, "dtype": "float32", "shape": [None, w.look_back + 1, len(cols)],
                    "columns": cols,
                    "meaning": f"raw prices of the last look_back + 1 = {w.look_back + 1} bars, "
                               "oldest first, in data units"}],
        "outputs": [{"name": OUTPUT, "dtype": "float32", "shape": [None, w.horizon],
                     "meaning": f"forecast price of {transform.target} for bars "
                                f"t+{1 + w.foresight}..t+{w.foresight + w.horizon} "
                                "(t = the last input bar)"}],
        "features": list(transform.features),
        "target": transform.target,
        "look_back": w.look_back,
        "horizon": w.horizon,
        "foresight": w.foresight,
        "interval": cfg.data.interval,
        "ticker": meta.get("ticker", cfg.data.ticker),
        "target_transform": transform.kind,
        "transform": transform.to_dict(),
        "intervals": {"log_quantiles": quantiles,
                      "usage": "lower = forecast * exp(-q), upper = forecast * exp(q), q per "
                               "step and level (split-conformal, from the validation split)"},
        "run": {"path": str(run.path.resolve()), "name": run.name,
                "model_type": meta.get("model_type"), "backend": meta.get("backend"),
                "created": meta.get("created"), "finished": meta.get("finished"),
                "best_epoch": meta.get("best_epoch"), "config_hash": meta.get("config_hash"),
                "data_hash": meta.get("data", {}).get("data_hash"),
                "last_date": meta.get("data", {}).get("last")},
        "export": {"created": runs.now(), "backend": backend, "versions": versions},
        "example": {"prices": example.tolist(), "forecast": [float(v) for v in forecast]},
    }


# --------------------------------------------------------------------------- formats


def _save_keras(wrapper, folder: Path) -> None:
    wrapper.save(folder / MODEL_FILE["keras"])


def _save_savedmodel(wrapper, folder: Path) -> None:
    wrapper.export(str(folder), format="tf_saved_model", verbose=False)


def _save_onnx(wrapper, folder: Path) -> None:
    wrapper.export(str(folder / MODEL_FILE["onnx"]), format="onnx", verbose=False)


WRITERS: dict[str, Callable] = {"keras": _save_keras, "savedmodel": _save_savedmodel,
                                "onnx": _save_onnx}


def _name_onnx(path: Path) -> int:
    """Name the batch dimension ``batch`` (tf2onnx leaves ``unk__N``); returns the opset."""
    import onnx

    proto = onnx.load(str(path))
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def load_exported(folder: Path, fmt: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function from price windows to forecasts, through the exported files with the plain
    runtime a consumer would use; None when that runtime is not installed (onnxruntime)."""
    if fmt == "keras":
        import keras

        model = keras.models.load_model(folder / MODEL_FILE[fmt], compile=False)
        return lambda x: _outputs(model(x, training=False))
    if fmt == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
        return lambda x: serve(**{INPUT: tf.constant(x)})[OUTPUT].numpy()
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / MODEL_FILE[fmt]),
                                   providers=["CPUExecutionProvider"])
    return lambda x: session.run([OUTPUT], {INPUT: x})[0]


def _outputs(out) -> np.ndarray:
    return np.asarray(out[OUTPUT] if isinstance(out, dict) else out)


def _check_close(got, expected, what: str) -> None:
    got, expected = np.asarray(got, dtype="float64"), np.asarray(expected, dtype="float64")
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=RTOL, atol=0):
        raise StockRNNError(f"{what} does not reproduce the run's forecasts (got {got.ravel()[:4]}, "
                            f"expected {expected.ravel()[:4]}); nothing was written")


@contextlib.contextmanager
def _quiet():
    """The converters' own chatter (tf2onnx's INFO lines, TensorFlow's "Assets written",
    Keras's numpy-2 patch warnings)."""
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --------------------------------------------------------------------------- the folder


def write_folder(target: Path, force: bool, fill: Callable[[Path], None]) -> None:
    """Run ``fill(tmp)`` on a new temp folder beside ``target``, then rename it to ``target``
    (moving an existing ``target`` aside first and removing it after, with ``force``). A failed
    ``fill`` leaves ``target`` as it was and no temp folder behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        fill(tmp)
        _fsync_tree(tmp)
        if target.exists():
            if not force:  # created meanwhile by someone else
                raise ConfigError(f"{target} exists; pass --force to replace it")
            old = target.with_name(f"{tmp.name}.old")
            os.rename(target, old)
        os.rename(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.rename(old, target)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
