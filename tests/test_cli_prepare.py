"""``stockrnn prepare``: the dataset artifact it writes (windows, transform, hashes), what
changes its name, and a series too short to window. Reusing and rebuilding the artifact is in
test_dataset.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from helpers import (
    SMOKE,
    error_line,
    explain,
    invoke,
    sample_frame,
    seed_store,
    set_args,
    stdout_lines,
)

from stockrnn import dataset
from stockrnn.config import load_config
from stockrnn.features.transforms import Transform
from stockrnn.features.windows import split_bounds

TINY = ("model.units=[4]",)


def test_prepare_writes_the_artifact(work):
    data = seed_store(work / "data")
    over = [*TINY, f"paths.data_dir={data}", "window.horizon=2"]
    result = invoke("prepare", "-c", SMOKE, *set_args(over), code=None)
    assert result.exit_code == 0, explain(result)
    lines = stdout_lines(result)
    path = Path(lines[-1])
    cfg = load_config(SMOKE, over)
    assert path == dataset.artifact_path(cfg)
    assert path == data / "prepared" / f"GOOG_1d-{cfg.dataset_hash()}.npz"
    assert [line.split()[0] for line in lines[:-1]] == ["train", "val", "test"]
    assert path.is_file() and path.with_suffix(".json").is_file()

    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config_hash"] == cfg.dataset_hash()
    frame = dataset.select(sample_frame(), cfg)
    assert meta["data_hash"] == dataset.frame_hash(frame)
    vs, ts = split_bounds(len(frame), 0.70, 0.15)
    assert {k: s["rows"] for k, s in meta["splits"].items()} == \
        {"train": [0, vs], "val": [vs, ts], "test": [ts, len(frame)]}
    assert Transform.from_dict(meta["transform"]) == dataset.build(frame, cfg).transform
    assert (meta["ticker"], meta["interval"], meta["rows"]) == ("GOOG", "1d", len(frame))

    ds = dataset.build(frame, cfg)
    with np.load(path) as npz:
        assert sorted(npz.files) == sorted(f"{s}_{k}" for s in ("train", "val", "test")
                                           for k in ("x", "y", "anchors"))
        for name, sp in ds.splits.items():
            np.testing.assert_array_equal(npz[f"{name}_x"], sp.x)
            np.testing.assert_array_equal(npz[f"{name}_y"], sp.y)
            np.testing.assert_array_equal(npz[f"{name}_anchors"], sp.anchors)
            assert meta["splits"][name]["samples"] == len(sp)
            assert f"x{tuple(sp.x.shape)}" in lines[list(ds.splits).index(name)]

    # model/training keys leave the artifact's name alone; window keys change it
    same = load_config(SMOKE, [*over, "model.units=[32]", "train.epochs=50"])
    assert dataset.artifact_path(same) == path
    other = load_config(SMOKE, [*over, "window.look_back=12"])
    assert dataset.artifact_path(other) != path


def test_prepare_too_short_series_exits_1(work):
    data = seed_store(work / "data")
    result = invoke("prepare", "-c", SMOKE, *set_args([f"paths.data_dir={data}",
                                                        "data.start=2013-02-15"]), code=None)
    assert result.exit_code == 1, explain(result)
    assert result.stderr.startswith("Error: GOOG: ") and "rows is too few" in result.stderr
    assert "need at least" in result.stderr


def test_series_shorter_than_one_window(work):
    path = work / "short.csv"
    dates = pd.bdate_range("2020-01-01", periods=25)
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"),
                  "Close": np.linspace(10, 20, 25)}).to_csv(path, index=False)
    result = invoke("prepare", "-c", SMOKE, "--set", "data.source=csv",
                    "--set", f"data.path={path}", "--set", "data.ticker=SHORT",
                    "--set", "window.look_back=30", code=1)
    msg = error_line(result)
    assert re.search(r"25 rows is too few for look_back=30.*need at least (\d+) rows", msg), msg
    need = int(re.search(r"need at least (\d+) rows", msg).group(1))
    assert need > 30
