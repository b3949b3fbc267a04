"""``model.scope: global``: one model on every ticker's windows, scored per ticker on its own
test split against its own persistence baseline; each ticker scaled on its own training split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import in_folder, invoke, sets

from stockrnn import dataset, globalmodel
from stockrnn.config import load_config
from stockrnn.data.store import Store
from stockrnn.features.transforms import Transform

TINY = {"window.look_back": 10, "model.units": [4], "train.epochs": 2, "train.batch_size": 128,
        "data.source": "synthetic", "paths.run_name": "g", "model.scope": "global",
        "data.tickers": ["RW1", "AR2"]}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The global batch, counting the models it loads back from files."""
    from stockrnn.backend import use

    keras = use()
    loaded = []
    base = tmp_path_factory.mktemp("global")
    with in_folder(base), pytest.MonkeyPatch.context() as mp:
        real = keras.models.load_model
        mp.setattr(keras.models, "load_model",
                   lambda path, *a, **k: loaded.append(path) or real(path, *a, **k))
        out = json.loads(invoke("run", *sets(**TINY), "--json").stdout)
    out["loaded_models"] = loaded
    return base, out


def test_one_row_per_ticker_with_finite_mase(batch):
    base, out = batch
    assert out["status"] == "ok" and out["scope"] == "global" and out["failed"] == []
    rows = out["tickers"]
    assert [r["ticker"] for r in rows] == ["RW1", "AR2"]
    grun = base / out["global_run"]
    assert grun.parent.name == "g-global" and (grun / "model.keras").is_file()
    meta = json.loads((grun / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["tickers"] == ["RW1", "AR2"]
    for r in rows:
        assert r["status"] == "ok" and math.isfinite(r["mase"]) and r["mase"] > 0
        member = base / r["run_dir"]
        assert member == grun / "tickers" / r["ticker"]
        m = json.loads((member / "metrics_test.json").read_text())
        assert m["model"]["mase"] == r["mase"]  # scored on its own test split ...
        assert m["baselines"]["persistence"]["mae"] == r["persistence_mae"]  # ... own baseline
        assert (member / "forecast.csv").is_file()
        assert not list(member.glob("plots/*.png"))  # a batch draws plots only with --plots
    assert not list(grun.glob("plots/*.png"))


def test_tickers_are_scored_and_forecast_with_the_model_in_memory(batch):
    """Every ticker's evaluation and forecast use the trained global model as it is (its run's
    model.keras is a copy of it): no model is loaded back from a file, so the prediction step
    is compiled once, not once per ticker."""
    _, out = batch
    assert out["loaded_models"] == []


def test_scalers_are_per_ticker(batch):
    base, out = batch
    grun = base / out["global_run"]
    scalers = {t: json.loads((grun / "tickers" / t / "scaler.json").read_text())
               for t in ("RW1", "AR2")}
    assert scalers["RW1"] != scalers["AR2"]
    cfg = load_config(None, [f"{k}={v}" for k, v in TINY.items() if k != "data.tickers"]
                      + ["data.tickers=[RW1, AR2]", f"paths.data_dir={base / 'data'}"])
    store = Store(cfg.data_dir)
    frames = {t: store.read(t, "1d") for t in ("RW1", "AR2")}
    def build_all(frames):
        return {t: dataset.build(f, cfg.for_ticker(t)) for t, f in frames.items()}

    before = build_all(frames)
    for t in ("RW1", "AR2"):  # what the global run saved is each ticker's own fit
        assert before[t].transform == Transform.from_dict(scalers[t])
    # a test-split price of RW1 moves: no scaler moves, and neither do the training windows
    changed = frames["RW1"].copy()
    changed.iloc[-5, changed.columns.get_loc("Close")] *= 3.0
    after = build_all({**frames, "RW1": changed})
    for t in ("RW1", "AR2"):
        assert after[t].transform == before[t].transform
    a, b = globalmodel.combine(before), globalmodel.combine(after)
    assert (a.splits["train"].x == b.splits["train"].x).all()
    assert len(a.splits["train"]) == sum(len(d.splits["train"]) for d in before.values())


def test_member_runs_work_with_evaluate_and_compare(batch, monkeypatch):
    base, out = batch
    monkeypatch.chdir(base)
    member = out["tickers"][1]["run_dir"]
    res = json.loads(invoke("evaluate", "--run", member, "--json").stdout)
    assert res["model"]["mase"] == pytest.approx(out["tickers"][1]["mase"])
    rows = json.loads(invoke("compare", out["batch_dir"], "--format", "json").stdout)
    assert sorted(r["ticker"] for r in rows) == ["AR2", "RW1"]
    result = invoke("predict", "--run", out["global_run"], code=1)
    assert "global model over several tickers" in result.stderr
    assert str(Path(out["global_run"]) / "tickers" / "RW1") in result.stderr
