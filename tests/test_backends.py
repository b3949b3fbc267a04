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
