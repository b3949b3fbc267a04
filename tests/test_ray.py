"""``run --executor ray``: the per-ticker jobs as Ray tasks.

The Ray run itself is opt-in (starting a local Ray takes seconds and Ray is an optional extra):
``STOCKRNN_TEST_RAY=1 .venv/bin/python -m pytest tests/test_ray.py``. The checks of the
options (no Ray installed, wrong combinations) always run and start nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from helpers import invoke, sets

TINY = {"window.look_back": 10, "model.units": [4], "train.epochs": 2, "train.batch_size": 128,
        "data.source": "synthetic", "paths.run_name": "b", "data.tickers": ["RW1", "AR2"]}
RAY_OPT_IN = os.environ.get("STOCKRNN_TEST_RAY") == "1"
HAVE_RAY = importlib.util.find_spec("ray") is not None


def test_executor_ray_without_ray_exits_2(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = invoke("run", *sets(**TINY), "--executor", "ray", code=2)
    assert "pip install 'stockrnn[ray]'" in result.stderr
    assert not (tmp_path / "runs").exists()  # refused before any batch folder or training
    out = json.loads(invoke("run", *sets(**TINY), "--executor", "ray", "--json", code=2).stdout)
    assert out["exit_code"] == 2 and "stockrnn[ray]" in out["error"]


def test_ray_options_need_a_batch_and_each_other(tmp_path):
    result = invoke("run", *sets(**TINY), "--ray-address", "auto", code=2)
    assert "--ray-address needs --executor ray" in result.stderr
    one = {k: v for k, v in TINY.items() if k != "data.tickers"}
    result = invoke("run", *sets(**one), "--executor", "ray", code=2)
    assert "multi-ticker" in result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (RAY_OPT_IN and HAVE_RAY),
                    reason="opt-in: STOCKRNN_TEST_RAY=1 and the ray extra installed")
def test_ray_batch_equals_serial(tmp_path):
    serial = json.loads(invoke("run", *sets(**TINY), "--json").stdout)
    on_ray = json.loads(invoke("run", *sets(**TINY), "--executor", "ray", "--jobs", "2",
                               "--json").stdout)
    assert on_ray["status"] == "ok" and on_ray["executor"] == "ray" and on_ray["failed"] == []
    one = {r["ticker"]: r for r in serial["tickers"]}
    two = {r["ticker"]: r for r in on_ray["tickers"]}
    assert list(two) == ["RW1", "AR2"]  # config order
    for t in ("RW1", "AR2"):
        assert two[t]["status"] == "ok"
        run = Path(two[t]["run_dir"])
        assert run.parent.name == f"b-{t}" and run != Path(one[t]["run_dir"])
        assert json.loads((run / "meta.json").read_text())["status"] == "complete"
        assert (run / "metrics_test.json").is_file() and (run / "forecast.csv").is_file()
        assert two[t]["mase"] == pytest.approx(one[t]["mase"], abs=1e-6)
        assert two[t]["test_mae"] == pytest.approx(one[t]["test_mae"], abs=1e-6)
    assert (Path(on_ray["batch_dir"]) / "summary.csv").is_file()
