"""The dataset artifact is real: ``prepare`` writes it, ``train`` and ``run`` read it when it
was built for the same config and the same stored prices, and rebuild it (never use it) when
it is missing, stale, corrupt or from another config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import explain, invoke, stdout_lines

from stockrnn import dataset
from stockrnn.config import load_config
from stockrnn.data.store import Store

SETS = ["data.source=synthetic", "data.ticker=RW3", "window.look_back=5", "model.units=[4]",
        "train.epochs=1", "paths.run_name=art"]


@pytest.fixture
def builds(monkeypatch) -> list:
    """Counts the times windows are built from prices."""
    calls = []
    real = dataset.build

    def counting(frame, cfg):
        calls.append(cfg.data.ticker)
        return real(frame, cfg)

    monkeypatch.setattr(dataset, "build", counting)
    return calls


def cli(*args):
    return invoke(*args, *[a for s in SETS for a in ("--set", s)], code=None)


def cfg():
    return load_config(None, SETS)


def test_load_gives_back_exactly_what_was_built(work):
    c = cfg()
    prep = cli("prepare")
    assert prep.exit_code == 0, explain(prep)
    frame = Store(c.data_dir).read("RW3")
    loaded, built = dataset.load(c, frame), dataset.build(frame, c)
    assert loaded is not None and loaded.transform == built.transform
    for name in dataset.SPLITS:
        a, b = loaded.splits[name], built.splits[name]
        assert a.rows == b.rows
        np.testing.assert_array_equal(a.anchors, b.anchors)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    assert loaded.frame.equals(built.frame)


def test_prepare_then_train_builds_windows_once(work, builds, caplog):
    assert cli("prepare").exit_code == 0
    assert builds == ["RW3"]
    again = cli("prepare")  # current: nothing rebuilt
    assert again.exit_code == 0 and builds == ["RW3"]
    assert Path(stdout_lines(again)[-1]) == dataset.artifact_path(cfg())
    result = cli("train")
    assert result.exit_code == 0, explain(result)
    assert builds == ["RW3"], "train rebuilt the windows prepare had written"
    assert f"using the prepared dataset {dataset.artifact_path(cfg())}" in result.stderr


def test_run_builds_windows_once(work, builds):
    result = cli("run")
    assert result.exit_code == 0, explain(result)
    assert builds == ["RW3"]
    prepare_line = next(x for x in result.stdout.splitlines() if x.startswith("prepare"))
    assert "(up to date)" not in prepare_line
    again = cli("run")  # nothing new in the store: the artifact is reused
    assert again.exit_code == 0, explain(again)
    assert builds == ["RW3"]
    assert "(up to date)" in next(x for x in again.stdout.splitlines() if x.startswith("prepare"))


def test_new_bars_in_the_store_make_it_stale(work, builds):
    assert cli("prepare").exit_code == 0
    c = cfg()
    store = Store(c.data_dir)
    frame = store.read("RW3")
    store.write("RW3", "1d", frame.iloc[:-10], "synthetic")  # the store changed
    result = cli("train")
    assert result.exit_code == 0, explain(result)
    assert builds == ["RW3", "RW3"]
    assert "is stale" in result.stderr and "built the prepared dataset" in result.stderr
    meta = json.loads(dataset.artifact_path(c).with_suffix(".json").read_text())
    assert meta["rows"] == len(frame) - 10  # rewritten for the new rows


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "other_config", "wrong_shape"])
def test_a_damaged_or_foreign_artifact_is_rebuilt_never_used(work, builds, damage):
    assert cli("prepare").exit_code == 0
    c = cfg()
    path = dataset.artifact_path(c)
    meta_path = path.with_suffix(".json")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage_json":
        meta_path.write_text("{not json")
    elif damage == "other_config":
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()),
                                         "config_hash": "0" * 16}))
    else:
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["train_x"] = arrays["train_x"][:, :2]
        np.savez(path, **arrays)
    assert dataset.load(c, Store(c.data_dir).read("RW3")) is None
    # train goes through prepare's check (one case trains; the others stop after prepare)
    result = cli("train" if damage == "truncate" else "prepare")
    assert result.exit_code == 0, explain(result)
    assert builds == ["RW3", "RW3"]
    if damage != "other_config":
        assert "unreadable" in result.stderr
    else:
        assert "another config" in result.stderr
    assert dataset.load(c, Store(c.data_dir).read("RW3")) is not None  # repaired
