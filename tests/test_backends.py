"""The JAX backend: the config key picks it, the smoke pipeline trains on it, runs load across
backends with the same numbers, and an interrupted JAX training backs up and resumes on JAX.

A process holds one Keras backend (this test process: TensorFlow), so all the JAX work runs in
one child process (``DRIVER``), started with KERAS_BACKEND=tensorflow:

1. ``run --json`` of the smoke config with ``--set train.backend=jax``: the config key must win
   over the environment (Keras is imported with JAX, and the environment says jax from then on),
   then of configs/lstm_covariates.yaml (small) on JAX;
2. ``train`` of the smoke config (which names no backend: JAX now) interrupted by Ctrl-C at the
   third epoch, then ``train --resume``;
3. ``predict`` from that run, on JAX.

The tests then read what it did, and predict from the same run here, on TensorFlow (a run whose
config pins JAX would refuse to load in a TensorFlow process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import CONFIGS, EXPORT_LOADERS, REPO, SMOKE, forecasts_on_the_test_split, invoke

from stockrnn.config import load_config

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax not installed (pip install 'stockrnn[jax]')")

DRIVER = """
import json, os, pathlib, sys
from click.testing import CliRunner
from stockrnn import training
from stockrnn.backend import use
from stockrnn.cli import cli

smoke = sys.argv[1]
out = {}
# statsforecast now, as in a test process: else the first run fits its baselines in a forked
# child that imports it, and the covariates run (JAX loaded: no fork) imports it again
from stockrnn import classical
classical.preload()

def call(name, *args):
    r = CliRunner().invoke(cli, list(args))
    out[name] = {"code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr,
                 "env": os.environ.get("KERAS_BACKEND")}

call("run", "run", "-c", smoke, "--set", "train.backend=jax", "--set", "paths.run_name=jaxrun",
     "--json")
out["loaded"] = {m: m in sys.modules for m in ("jax", "tensorflow", "keras", "sklearn")}
call("covariates", "run", "-c", sys.argv[2], "--json", *[a for kv in (
     "train.backend=jax", "model.units=[4]", "train.epochs=2", "window.look_back=10")
     for a in ("--set", kv)])

# steps_per_execution batches in one compiled loop (default), the same on a reused compiled
# model, and Keras' own step per batch (steps_per_execution 1): the same histories
from stockrnn import dataset, jaxsteps, runs, stages
from stockrnn.config import load_config

def history_of(name, *sets):
    # batches of 2: enough steps (over 256) for steps_per_execution batches per call
    cfg = load_config(smoke, ["model.units=[4]", "model.dropout=0.1", "train.epochs=2",
                              "train.batch_size=2", "data.start=2010-05-04", *sets])
    run = runs.RunDir(pathlib.Path(os.environ["STOCKRNN_RUNS_DIR"]) / "loops" / name)
    run.path.mkdir(parents=True)
    ds = dataset.build(stages.load_frame(cfg), cfg)
    out["loops"]["windows"] = len(ds.splits["train"].x)
    training.fit(cfg.model, cfg.train, ds, run, progress="none")
    return training.read_history(run.history)[["loss", "val_loss"]].to_numpy().tolist()

out["loops"] = {}
out["loops"]["looped"] = history_of("looped")
# the compiled model it trained on: the most recently used of those the process keeps
looped = next(reversed(training._COMPILED.values()))
out["loops"]["installed"] = jaxsteps.loop_of(looped)

# jaxsteps.snapshot: a looped model's arrays, kept as they are while it trains on; Keras' own
# train function deletes the arrays it is given (so a model without the loop gets copies)
import numpy as np
keras = use()
rng = np.random.default_rng(3)
x = rng.normal(size=(9, *looped.input_shape[1:])).astype("float32")
y = rng.normal(size=(9, looped.output_shape[-1])).astype("float32")
snap = jaxsteps.snapshot(looped, looped.trainable_variables)
copies = [np.array(a) for a in snap]
looped.fit(x, y, batch_size=jaxsteps.keras_batch_size(looped, 2), epochs=1, verbose=0)
plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
plain.compile("adam", "mse")
given = plain.trainable_variables[0].value
plain_snap = jaxsteps.snapshot(plain, plain.trainable_variables)
plain.fit(rng.normal(size=(4, 3)), rng.normal(size=(4, 1)), verbose=0)
out["snapshot"] = {
    "kept": all(np.array_equal(np.asarray(a), c) for a, c in zip(snap, copies, strict=True)),
    "trained": not all(np.array_equal(v.numpy(), c)
                       for v, c in zip(looped.trainable_variables, copies, strict=True)),
    "keras_deletes": given.is_deleted(),
    "plain_copies": all(isinstance(a, np.ndarray) for a in plain_snap)}
# the loop runs the first size of smaller last batch it meets in its compiled call, others
# (and a last batch alone) in a call of their own: batches of 3 and 4 per loop, Keras batches
# of 12 cut into 3+1, then 4 | 0+1, then 4 | 1+2 batches: Keras' own weights, step by step
def dense():
    keras.utils.set_random_seed(4)
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    m.compile(keras.optimizers.Adam(0.1), "mse")
    return m

mine, own = dense(), dense()
jaxsteps.install(mine, 3, 4)
xs, ys = rng.normal(size=(17, 3)).astype("float32"), rng.normal(size=(17, 1)).astype("float32")
out["rests"] = []
for n in (10, 13, 17):
    mine.fit(xs[:n], ys[:n], batch_size=jaxsteps.keras_batch_size(mine, 3), shuffle=False,
             verbose=0)
    own.fit(xs[:n], ys[:n], batch_size=3, shuffle=False, verbose=0)
    out["rests"].append(all(np.array_equal(a, b) for a, b in
                            zip(mine.get_weights(), own.get_weights(), strict=True)))
out["loops"].update(reused=history_of("reused"),
                    per_batch=history_of("per_batch", "train.steps_per_execution=1"))

# the loops' model and batches of 2 (its compiled loop reused): over 256 steps, so the epochs
# run in jaxsteps' loop and the keeper holds the model's arrays themselves (jaxsteps.snapshot),
# which the Ctrl-C backup writes
resume = ["train", "-c", smoke, *[a for kv in (
          "train.epochs=4", "train.batch_size=2", "model.units=[4]", "model.dropout=0.1",
          "model.unroll=false", "train.early_stopping.patience=50") for a in ("--set", kv)]]
logger = training.epoch_logger

def interrupted(total):
    class Interrupt(use().callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt
    return Interrupt()

training.epoch_logger = interrupted
call("interrupted", *resume)
out["interrupted_loop"] = jaxsteps.loop_of(next(reversed(training._COMPILED.values())))
[run] = [p for p in (pathlib.Path(os.environ["STOCKRNN_RUNS_DIR"]) / "smoke").iterdir()
         if p.is_dir()]
out["backup"] = json.loads((run / "backup" / "training_metadata.json").read_text())
training.epoch_logger = logger
call("resumed", *resume, "--resume")
call("predict", "predict", "--run", str(run), "--format", "json")
# Keras on JAX exports keras (as is) and savedmodel (jax2tf); the test loads both in TensorFlow
for fmt in ("keras", "savedmodel"):
    call(f"export_{fmt}", "export", "--run", str(run), "--format", fmt, "--output",
         str(pathlib.Path.cwd() / "exported" / fmt))
from stockrnn.data.store import Store
out["latest"] = Store(os.environ["STOCKRNN_DATA_DIR"]).read("GOOG", "1d")["Close"].tolist()[-11:]

# predictions on JAX: 32-window calls in one compiled loop (jaxsteps.predict), against Keras'
# own predict_on_batch of the same calls; the LSTM's dropout seed advances once per call
m = keras.Sequential([keras.Input((5, 1)), keras.layers.LSTM(4, dropout=0.2),
                      keras.layers.Dense(1)])
[seed] = [v for v in m.non_trainable_variables if v.path.endswith("seed_generator_state")]
rng = np.random.default_rng(2)
out["predictions"] = {}
for n in (1, 40, 600):
    x = rng.normal(size=(n, 5, 1)).astype("float32")
    before = np.asarray(seed.value).copy()
    mine = training.predict(m, x)
    drawn = (np.asarray(seed.value) - before).tolist()
    padded = np.concatenate([x, np.zeros((-n % 32, 5, 1), "float32")])
    own = np.concatenate([np.asarray(m.predict_on_batch(padded[i:i + 32]))
                          for i in range(0, len(padded), 32)])[:n]
    out["predictions"][n] = {"shape": list(mine.shape), "equal": bool(np.array_equal(mine, own)),
                             "drawn": drawn, "calls": training.predict_calls(n)}
out["predictions"]["compiled"] = getattr(m, jaxsteps._PREDICT)._cache_size()

# benchmarks/floor.py's hand-written network (the per-epoch compute floor in docs/benchmarks.md)
# is Keras' own: one epoch of one batch there and Keras' train_on_batch from the same weights
# (any random recurrent kernel: Keras' orthogonal one would compile a QR decomposition first)
sys.path.insert(0, sys.argv[3])
from benchmarks import floor
out["floor"] = {}
for family, layer in (("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU)):
    model = keras.Sequential([keras.Input((5, 1)),
                              layer(floor.UNITS, recurrent_initializer="glorot_uniform"),
                              keras.layers.Dense(floor.DENSE, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.Huber())
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 8, 5, 1)).astype("float32"), rng.normal(size=(2, 8, 1)).astype("float32")
    w = model.get_weights()
    bias = w[2] if w[2].ndim == 2 else np.stack([w[2], np.zeros_like(w[2])])  # GRU: (2, 3u)
    params = dict(zip(("W", "U", "b", "D1", "d1", "D2", "d2"), [w[0], w[1], bias, *w[3:]]))
    zeros = {k: np.zeros_like(v) for k, v in params.items()}
    state, _ = floor.epoch_function(family, 1)((params, zeros, dict(zeros), np.float32(0)),
                                                 x[:1], y[:1], x[1:], y[1:])
    model.train_on_batch(x[0], y[0])
    mine = {k: np.asarray(v) for k, v in state[0].items()}
    mine["b"] = mine["b"] if family == "gru" else mine["b"][0]
    after = [mine[k] for k in ("W", "U", "b", "D1", "d1", "D2", "d2")]
    out["floor"][family] = max(float(np.abs(a - b).max())
                               for a, b in zip(after, model.get_weights(), strict=True))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def jax(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("jax")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "STOCKRNN_DATA_DIR": str(cwd / "data"),
           "STOCKRNN_RUNS_DIR": str(cwd / "runs")}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(SMOKE),
                           str(CONFIGS / "lstm_covariates.yaml"), str(REPO)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["runs"], out["data"], out["stderr"] = cwd / "runs", cwd / "data", proc.stderr
    return out


def meta_of(run_dir) -> dict:
    return json.loads((Path(run_dir) / "meta.json").read_text())


def test_config_backend_key_selects_jax(jax):
    assert jax["run"]["code"] == 0, jax["run"]["stderr"]
    assert jax["run"]["env"] == "jax"  # the process started with KERAS_BACKEND=tensorflow
    meta = meta_of(json.loads(jax["run"]["stdout"])["run_dir"])
    assert meta["backend"] == "jax" and "jax" in meta["versions"]
    assert "tensorflow" not in meta["versions"]  # recorded from the backend that trained it
    # Keras (and TensorFlow, which Keras on JAX imports to save a model) loaded without
    # scikit-learn, which Keras imports when installed, for its wrappers only
    assert jax["loaded"] == {"jax": True, "tensorflow": True, "keras": True, "sklearn": False}
    # TensorFlow's native start-up lines (its CUDA probe) stay out of the process's stderr,
    # though Keras on JAX loads TensorFlow too (to save a model)
    assert "cudart_stub" not in jax["stderr"] and "absl::InitializeLog" not in jax["stderr"]


def test_smoke_pipeline_on_jax_and_predict_on_tensorflow(jax):
    assert jax["run"]["code"] == 0, jax["run"]["stderr"]
    summary = json.loads(jax["run"]["stdout"])
    assert summary["status"] == "ok"
    assert [s["name"] for s in summary["stages"]] == ["fetch", "prepare", "train", "evaluate",
                                                     "predict"]
    assert summary["metrics"]["model"]["mase"] > 0
    assert len(summary["forecast"]["rows"]) == 1

    # a .keras file trained on JAX predicts on the other backend (this process) with the same
    # numbers as on JAX
    assert jax["predict"]["code"] == 0, jax["predict"]["stderr"]
    on_jax = json.loads(jax["predict"]["stdout"])
    [run] = [p for p in (jax["runs"] / "smoke").iterdir() if p.is_dir()]
    assert meta_of(run)["backend"] == "jax"
    fc = json.loads(invoke("predict", "--run", run, "--format", "json",
                           env={"STOCKRNN_DATA_DIR": str(jax["data"])}).stdout)
    assert fc["as_of"] == on_jax["as_of"]
    assert fc["forecast"][0]["forecast"] == pytest.approx(on_jax["forecast"][0]["forecast"],
                                                          rel=1e-5)


def test_the_covariates_config_runs_on_jax(jax):
    """configs/lstm_covariates.yaml (LEAD1 as a covariate of FOLLOW1, indicators, the weekday)
    end to end on JAX."""
    assert jax["covariates"]["code"] == 0, jax["covariates"]["stderr"]
    summary = json.loads(jax["covariates"]["stdout"])
    run = Path(summary["run_dir"])
    run = run if run.is_absolute() else jax["runs"].parent / run
    assert meta_of(run)["backend"] == "jax"
    scaler = json.loads((run / "scaler.json").read_text())
    assert scaler["features"] == ["Close", "cov:LEAD1", "rsi_14", "volatility_20",
                                  "day_of_week_sin", "day_of_week_cos"]
    assert 0 < summary["metrics"]["model"]["mase"] < 1.0  # LEAD1 leads FOLLOW1


def test_jax_steps_in_one_loop_and_a_reused_model_give_keras_own_numbers(jax):
    """On JAX stockrnn runs steps_per_execution batches in one compiled loop and reuses a
    compiled model for the next training of the same shape: both give exactly the history of
    Keras' own step per batch on a new model. A smaller last batch runs in the loop's call
    (the first size a model meets) or alone (a later size, or no full batch before it): Keras'
    own weights after each."""
    loops = jax["loops"]
    assert loops["installed"] == [2, 64]  # batches of 2, 64 per compiled loop
    last = loops["windows"] % 128  # the last Keras batch: full batches and a smaller one
    assert last % 2 == 1 and last > 2
    assert jax["rests"] == [True, True, True]
    assert loops["looped"] == loops["per_batch"]
    assert loops["reused"] == loops["per_batch"]
    assert len(loops["looped"]) == 2


def test_jax_snapshots_of_a_looped_model_are_its_arrays_kept_through_training(jax):
    """``jaxsteps.snapshot`` (the keeper's best weights and last finished epoch) holds a looped
    model's arrays themselves, which stay readable and unchanged while it trains on; on a model
    with Keras' own train function, which deletes the arrays it is given, it copies them."""
    assert jax["snapshot"] == {"kept": True, "trained": True, "keras_deletes": True,
                               "plain_copies": True}


def test_jax_predictions_are_keras_own_in_one_compiled_loop(jax):
    """On JAX ``training.predict`` runs 32-window model calls in one compiled loop (every
    number of windows, one compiled function, padding of at most 31 rows): the numbers of
    Keras' own ``predict_on_batch`` of the same calls, and a recurrent layer's dropout seed
    advanced once per call, as Keras' loop does (validation counts on it)."""
    pred = jax["predictions"]
    assert pred.pop("compiled") == 1
    for n, r in pred.items():
        assert r["shape"] == [int(n), 1] and r["equal"], (n, r)
        assert r["calls"] == -(-int(n) // 32) and r["drawn"] == [0, r["calls"]], (n, r)


def test_a_jax_run_exports_models_that_tensorflow_loads_with_the_same_forecasts(jax):
    """``export`` in a JAX process writes keras (as is) and savedmodel (jax2tf); both load here,
    in TensorFlow, and forecast what ``predict`` gave on JAX for the latest bars and what the
    run's model gives on every test-split window. (onnx on JAX would need jax2onnx:
    tests/test_export.py checks that it says how.)"""
    [run] = [p for p in (jax["runs"] / "smoke").iterdir() if p.is_dir()]
    on_jax = json.loads(jax["predict"]["stdout"])
    latest = np.asarray(jax["latest"]).reshape(1, -1, 1)
    assert latest.shape[1] == load_config(SMOKE).window.look_back + 1
    raw, from_model = forecasts_on_the_test_split(run)
    for fmt in ("keras", "savedmodel"):
        assert jax[f"export_{fmt}"]["code"] == 0, jax[f"export_{fmt}"]["stderr"]
        path = jax["runs"].parent / "exported" / fmt
        sig = json.loads((path / "signature.json").read_text())
        assert sig["export"]["backend"] == "jax" and sig["format"] == fmt
        forecast = EXPORT_LOADERS[fmt](path)
        np.testing.assert_allclose(forecast(latest)[0], [r["forecast"] for r in
                                                          on_jax["forecast"]], rtol=1e-4)
        np.testing.assert_allclose(forecast(raw), from_model, rtol=1e-4)


def test_interrupted_jax_training_backs_up_and_resumes_on_jax(jax):
    """Ctrl-C on JAX writes the last finished epoch's backup (the throttled backup had written
    none yet) and --resume finishes the run on JAX."""
    first = jax["interrupted"]
    assert first["code"] == 130 and "Error: interrupted" in first["stderr"], first["stderr"]
    assert jax["backup"]["epoch"] == 2
    assert jax["interrupted_loop"] == [2, 64]  # the backup of arrays kept, not copied
    resumed = jax["resumed"]
    assert resumed["code"] == 0, resumed["stderr"]
    [run] = [p for p in (jax["runs"] / "smoke").iterdir() if p.is_dir()]
    assert Path(resumed["stdout"].strip().splitlines()[-1]) == run
    assert "epoch 3/4" in resumed["stderr"] and "epoch 1/4" not in resumed["stderr"]
    meta = meta_of(run)
    assert meta["status"] == "complete" and meta["epochs_run"] == 4 and meta["backend"] == "jax"
    assert "jax" in meta["versions"]
    assert (run / "history.csv").read_text().count("\n") == 5  # header + 4 epochs, no repeats


def test_the_benchmarks_hand_written_floor_network_is_keras_own(jax):
    """docs/benchmarks.md's per-epoch floor on JAX (benchmarks/floor.py) trains the benchmark's
    LSTM and GRU written by hand: from the same weights, its one-batch epoch gives the weights
    of Keras' ``train_on_batch`` with Adam and Huber loss (the same forward pass, gradients and
    update; a gate in the wrong order is off by about 2e-3)."""
    assert set(jax["floor"]) == {"lstm", "gru"}
    for family, largest_difference in jax["floor"].items():
        assert largest_difference < 1e-5, family
