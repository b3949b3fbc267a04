"""Multi-ticker configs: `stockrnn run` over data.tickers / data.tickers_file, one run per ticker,
a batch summary, failing tickers, --allow-failures, --jobs (same results as serial), compare over
a batch, and the synthetic source."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers_eval import REPO, invoke, isolate, sets

from stockrnn.config import load_config
from stockrnn.data.sources import SyntheticSource
from stockrnn.errors import ConfigError, DataError
from stockrnn.tickers import listed as tickers_of

MULTI = REPO / "configs" / "multi.yaml"
TINY = {"window.look_back": 10, "model.units": [4], "train.epochs": 2, "train.batch_size": 128,
        "data.source": "synthetic", "paths.run_name": "b"}


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """The same three-ticker batch (BAD1 fails: no such synthetic series) run serially with
    --allow-failures 1, and with --jobs 2 without it."""
    base = tmp_path_factory.mktemp("multi")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.delenv("STOCKRNN_DATA_DIR", raising=False)
        mp.delenv("STOCKRNN_RUNS_DIR", raising=False)
        args = sets(**TINY, **{"data.tickers": ["RW1", "BAD1", "AR2"]})
        serial = invoke("run", *args, "--allow-failures", "1")
        parallel = invoke("run", *args, "--jobs", "2", "--json", code=1)
    return base, serial, parallel


def summary_of(base: Path, result) -> dict:
    batch_dir = base / result.stdout.strip().splitlines()[-1]
    return json.loads((batch_dir / "summary.json").read_text())


def test_batch_layout_and_summary_files(batches):
    base, serial, _ = batches
    batch_dir = Path(serial.stdout.strip().splitlines()[-1])
    assert batch_dir.parts[:2] == ("runs", "b") and batch_dir.name.startswith("batch-")
    summary = summary_of(base, serial)
    rows = {r["ticker"]: r for r in summary["tickers"]}
    assert list(rows) == ["RW1", "BAD1", "AR2"]  # config order, whatever finished first
    for t in ("RW1", "AR2"):
        r = rows[t]
        assert r["status"] == "ok" and r["error"] is None
        run = base / r["run_dir"]
        assert run.parent.name == f"b-{t}" and (run / "metrics_test.json").is_file()
        m = json.loads((run / "metrics_test.json").read_text())["model"]
        assert r["mase"] == m["mase"] and r["directional_accuracy"] == m["directional_accuracy"]
        assert json.loads((run / "meta.json").read_text())["status"] == "complete"
        assert (base / "runs" / f"b-{t}" / "latest").is_file()  # (the --jobs 2 batch's run)
        assert r["seconds"] > 0
    assert rows["BAD1"]["status"] == "failed" and "BAD1" in rows["BAD1"]["error"]
    assert summary["failed"] == ["BAD1"] and summary["ok"] == 2
    table = list(csv.DictReader((base / batch_dir / "summary.csv").open()))
    assert [r["ticker"] for r in table] == ["RW1", "BAD1", "AR2"]
    assert set(table[0]) >= {"ticker", "status", "error", "run_dir", "mase",
                             "directional_accuracy", "seconds"}
    assert float(table[0]["mase"]) == pytest.approx(rows["RW1"]["mase"])


def test_table_on_stdout_and_allow_failures(batches):
    _, serial, _ = batches
    lines = serial.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["ticker", "status", "MASE"]
    assert lines[1].split()[:2] == ["RW1", "ok"]
    assert lines[2].split()[:2] == ["BAD1", "failed"] and "error:" in lines[2]
    assert "2 ok, 1 failed" in lines[-2]
    assert serial.exit_code == 0  # one failure tolerated by --allow-failures 1


def test_failure_exits_1_and_json(batches):
    base, _, parallel = batches
    out = json.loads(parallel.stdout)
    assert out["status"] == "error" and out["exit_code"] == 1 and out["jobs"] == 2
    assert "1 of 3 tickers failed: BAD1" in out["error"] and "BAD1" in parallel.stderr
    assert (Path(base / out["batch_dir"]) / "summary.json").is_file()


def test_jobs_2_gives_the_serial_results(batches):
    base, serial, parallel = batches
    one = {r["ticker"]: r for r in summary_of(base, serial)["tickers"]}
    two = {r["ticker"]: r for r in json.loads(parallel.stdout)["tickers"]}
    for t in ("RW1", "AR2"):
        assert two[t]["status"] == "ok"
        assert two[t]["run_dir"] != one[t]["run_dir"]
        assert two[t]["mase"] == pytest.approx(one[t]["mase"], abs=1e-6)
        assert two[t]["test_mae"] == pytest.approx(one[t]["test_mae"], abs=1e-6)


def test_compare_accepts_a_batch_dir(batches, monkeypatch):
    base, serial, _ = batches
    monkeypatch.chdir(base)
    batch_dir = serial.stdout.strip().splitlines()[-1]
    rows = json.loads(invoke("compare", batch_dir, "--format", "json").stdout)
    assert sorted(r["ticker"] for r in rows) == ["AR2", "RW1"]
    monkeypatch.chdir(base.parent)  # run dirs in the summary are relative: found from anywhere
    rows = json.loads(invoke("compare", base / batch_dir, "--format", "json").stdout)
    assert sorted(r["ticker"] for r in rows) == ["AR2", "RW1"]


def test_all_failed_exits_1_even_with_allowance_below(tmp_path):
    result = invoke("run", *sets(**TINY, **{"data.tickers": ["NOPE", "BAD2"]}),
                    "--allow-failures", "1", code=1)
    assert "2 of 2 tickers failed" in result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("runs/b/batch-")


# --------------------------------------------------------------------------- config


def test_tickers_file_with_comments(tmp_path):
    f = tmp_path / "watch.txt"
    f.write_text("# my watch list\nRW1\n\n  AR2   # trending\nmsft\n")
    cfg = load_config(None, [f"data.tickers_file={f}"])
    assert cfg.is_batch and tickers_of(cfg) == ["RW1", "AR2", "msft"]
    sub = cfg.for_ticker("AR2")
    assert sub.data.ticker == "AR2" and not sub.is_batch and sub.run_name == "lstm-AR2"


def test_tickers_file_problems_are_config_errors(tmp_path):
    (tmp_path / "dup.txt").write_text("RW1\nrw1\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    for name, message in (("dup.txt", "listed twice"), ("empty.txt", "lists no tickers"),
                          ("missing.txt", "cannot read")):
        cfg = load_config(None, [f"data.tickers_file={tmp_path / name}"])
        with pytest.raises(ConfigError, match=message):
            tickers_of(cfg)
    result = invoke("run", "--set", f"data.tickers_file={tmp_path / 'missing.txt'}", code=2)
    assert "data.tickers_file" in result.stderr


def test_tickers_and_tickers_file_are_exclusive(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  tickers: [RW1, AR1]\n  tickers_file: t.txt\n")
    result = invoke("config", "validate", bad, code=2)
    assert "data.tickers or data.tickers_file, not both" in result.stderr
    bad.write_text("data:\n  tickers: [RW1, rw1]\n")
    assert "listed twice" in invoke("config", "validate", bad, code=2).stderr
    bad.write_text("data:\n  tickers: []\n")
    invoke("config", "validate", bad, code=2)


def test_per_ticker_source_and_bundled_multi_config():
    cfg = load_config(MULTI)
    assert tickers_of(cfg) == ["GOOG", "RW1", "RW2", "AR1"]
    assert cfg.for_ticker("GOOG").data.source == "sample"
    assert cfg.for_ticker("RW1").data.source == "synthetic"
    assert cfg.for_ticker("RW1").run_name == "multi-RW1"


def test_one_ticker_commands_refuse_a_batch_config():
    for cmd in ("train", "prepare"):
        result = invoke(cmd, "-c", MULTI, code=2)
        assert "use `stockrnn run`" in result.stderr


# --------------------------------------------------------------------------- synthetic source


def test_synthetic_series_are_seeded_and_named():
    src = SyntheticSource()
    a, b = src.fetch("RW1", None, None, "1d"), src.fetch("rw1", None, None, "1d")
    assert a.equals(b) and len(a) == SyntheticSource.ROWS and list(a.columns) == ["Close"]
    assert not a.equals(src.fetch("RW2", None, None, "1d"))
    r = np.diff(np.log(src.fetch("AR3", None, None, "1d")["Close"].to_numpy()))
    lag1 = np.corrcoef(r[:-1], r[1:])[0, 1]
    assert 0.3 < lag1 < 0.5  # phi 0.4
    r = np.diff(np.log(a["Close"].to_numpy()))
    assert abs(np.corrcoef(r[:-1], r[1:])[0, 1]) < 0.1
    with pytest.raises(DataError, match="RW<n>"):
        src.fetch("GOOG", None, None, "1d")


def test_fetch_over_a_config(tmp_path):
    result = invoke("fetch", "-c", MULTI, "--set", f"paths.data_dir={tmp_path / 'd'}")
    lines = result.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["GOOG", "RW1", "RW2", "AR1"]
    assert (tmp_path / "d" / "AR1_1d.csv").is_file() and (tmp_path / "d" / "GOOG_1d.csv").is_file()
    result = invoke("fetch", "-c", MULTI, "--set", f"paths.data_dir={tmp_path / 'd'}",
                    "--set", "data.tickers=[RW1, NOPE]", code=1)
    assert "up to date" in result.stdout and "NOPE" in result.stderr
    invoke("fetch", "GOOG", "-c", MULTI, code=2)  # TICKER arguments or --config
    invoke("fetch", code=2)
