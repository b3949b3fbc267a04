"""`stockrnn tune`: Optuna over the tune: ranges, selected on validation loss only, the config as
written enqueued as trial 0 (so the best is never worse than the default on validation), the best
retrained once and evaluated on test."""

from __future__ import annotations

import json

import pytest
from helpers import SMOKE, in_folder, invoke, sets

from stockrnn.config import load_config

pytest.importorskip("optuna")

SPACE = {"tune.look_back": [5, 30], "tune.units": [4, 12], "tune.dropout": [0.0, 0.3],
         "tune.learning_rate": ["1.0e-4", "1.0e-2"]}
SMALL = {"data.source": "synthetic", "data.ticker": "AR1", "train.epochs": 2,
         "model.units": [6], "train.batch_size": 128, "train.seed": 7}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    base = tmp_path_factory.mktemp("tune")
    with in_folder(base):
        result = invoke("tune", "-c", SMOKE, *sets(**SMALL, **SPACE), "--trials", "3")
    return base, result


def test_best_is_at_least_as_good_as_the_default_on_validation(tuned):
    base, result = tuned
    out = base / result.stdout.strip().splitlines()[-1]
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["results"]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    default = rows[0]  # the config as written, enqueued first
    assert (default["look_back"], default["units"], default["dropout"],
            default["learning_rate"]) == (10, 6, 0.0, 0.001)
    assert summary["best"]["val_loss"] <= default["val_loss"]
    assert summary["best"]["val_loss"] == min(r["val_loss"] for r in rows)
    assert len({(r["look_back"], r["units"]) for r in rows}) > 1  # it did search
    assert f"default val_loss {default['val_loss']:.5f}" in result.stdout


def test_files_and_the_retrained_run(tuned):
    base, result = tuned
    out = base / result.stdout.strip().splitlines()[-1]
    assert out.parent.name == "smoke" and out.name.startswith("tune-")
    assert {p.name for p in out.iterdir()} == {"trials.csv", "trials.json", "best.yaml",
                                               "summary.json"}
    summary = json.loads((out / "summary.json").read_text())
    best_cfg = load_config(out / "best.yaml")
    best = summary["best"]
    assert best_cfg.window.look_back == best["look_back"]
    assert best_cfg.model.units == (best["units"],)
    assert best_cfg.train.learning_rate == pytest.approx(best["learning_rate"])
    assert best_cfg.run_name == "smoke-tuned"
    run = base / summary["run_dir"]
    assert run.parent.name == "smoke-tuned"
    # the retrained best reproduces its trial's validation loss (same seed, same data)
    assert summary["retrained_val_loss"] == pytest.approx(best["val_loss"], abs=1e-6)
    metrics = json.loads((run / "metrics_test.json").read_text())
    assert metrics["split"] == "test" and summary["test"]["mase"] == metrics["model"]["mase"]
    assert not (run / "metrics_val.json").exists()
    assert len((out / "trials.csv").read_text().strip().splitlines()) == 4


def test_tune_without_a_search_space_is_a_config_error():
    result = invoke("tune", "-c", SMOKE, *sets(**SMALL), code=2)
    assert "no search space" in result.stderr


@pytest.mark.parametrize(("key", "value", "message"), [
    ("tune.look_back", "[30, 5]", "low (30) must be <= high (5)"),
    ("tune.dropout", "[0.0, 1.5]", "out of range"),
    ("tune.units", "[8]", "tune.units"),
])
def test_bad_ranges(key, value, message):
    result = invoke("config", "validate", SMOKE, "--set", f"{key}={value}", code=2)
    assert message in result.stderr
