"""The JAX backend: the smoke pipeline trains on it, and runs load across backends."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax not installed (pip install 'stockrnn[jax]')")


def stockrnn(args, cwd, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "STOCKRNN_DATA_DIR": str(cwd / "data"),
           "STOCKRNN_RUNS_DIR": str(cwd / "runs")}
    return subprocess.run([sys.executable, "-m", "stockrnn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_smoke_pipeline_on_jax_and_predict_on_tensorflow(tmp_path):
    cfg = str(REPO / "configs" / "smoke.yaml")
    trained = stockrnn(["run", "-c", cfg, "--set", "paths.run_name=jaxrun", "--json"],
                       tmp_path, "jax")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    run_dir = Path(summary["run_dir"])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["backend"] == "jax" and "jax" in meta["versions"]
    assert summary["metrics"]["model"]["mase"] > 0

    # the same .keras file predicts on the other backend, with the same numbers
    jax_fc = stockrnn(["predict", "--run", str(run_dir), "--format", "json"], tmp_path, "jax")
    tf_fc = stockrnn(["predict", "--run", str(run_dir), "--format", "json"], tmp_path,
                     "tensorflow")
    assert jax_fc.returncode == 0 and tf_fc.returncode == 0, tf_fc.stderr
    a = json.loads(jax_fc.stdout)["forecast"][0]["forecast"]
    b = json.loads(tf_fc.stdout)["forecast"][0]["forecast"]
    assert a == pytest.approx(b, rel=1e-5)


def test_config_backend_key_selects_jax(tmp_path):
    cfg = str(REPO / "configs" / "smoke.yaml")
    out = stockrnn(["train", "-c", cfg, "--set", "train.backend=jax", "--set", "train.epochs=1"],
                   tmp_path, "tensorflow")
    assert out.returncode == 0, out.stderr
    run_dir = Path(out.stdout.strip().splitlines()[-1])
    assert json.loads((run_dir / "meta.json").read_text())["backend"] == "jax"


INTERRUPT_AT_EPOCH_2 = """
import sys
from stockrnn import training
from stockrnn.backend import use
from stockrnn.cli import main

def interrupted(total):
    class Interrupt(use().callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt
    return Interrupt()

training.epoch_logger = interrupted
sys.argv = ["stockrnn", *sys.argv[1:]]
main()
"""


def test_interrupted_jax_training_backs_up_and_resumes_on_jax(tmp_path):
    """Ctrl-C on JAX writes the last finished epoch's backup (the throttled backup had written
    none yet) and --resume finishes the run on JAX."""
    args = ["train", "-c", str(REPO / "configs" / "smoke.yaml"), "--set", "train.epochs=4",
            "--set", "train.early_stopping.patience=50"]
    env = {**os.environ, "KERAS_BACKEND": "jax", "STOCKRNN_DATA_DIR": str(tmp_path / "data"),
           "STOCKRNN_RUNS_DIR": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-c", INTERRUPT_AT_EPOCH_2, *args], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 130, out.stderr
    [run] = [p for p in (tmp_path / "runs" / "smoke").iterdir() if p.is_dir()]
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    resumed = stockrnn([*args, "--resume"], tmp_path, "jax")
    assert resumed.returncode == 0, resumed.stderr
    assert Path(resumed.stdout.strip().splitlines()[-1]) == run
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["epochs_run"] == 4 and meta["backend"] == "jax"
    assert (run / "history.csv").read_text().count("\n") == 5  # header + 4 epochs, no repeats
