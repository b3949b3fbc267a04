"""stages: ``fetch_each`` (several tickers: a data error is reported and the others fetched;
one ticker, or a usage or lock error, raises at once) and ``run_all`` (the stages in order, its
summary, and a PipelineError that carries the stages that finished and the run directory).

``run_all`` is exercised here with ``train`` replaced by a copy of the session's trained run,
so fetch, prepare, evaluate and predict run for real without training a model again."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import SMOKE, copy_run

from stockrnn import locking, runs, stages
from stockrnn.config import load_config
from stockrnn.data.store import UpdateResult
from stockrnn.errors import (
    ConfigError,
    DataError,
    FetchError,
    LockError,
    PipelineError,
    StockRNNError,
)
from stockrnn.options import RunOptions

# --------------------------------------------------------------------------- fetch_each


def fake_update(errors: dict[str, Exception]):
    calls = []

    def update_one(ticker):
        calls.append(ticker)
        if ticker in errors:
            raise errors[ticker]
        return UpdateResult(ticker, "1d", 1, 10, dt.date(2024, 1, 2), dt.date(2024, 1, 15),
                            Path(f"data/{ticker}_1d.csv"))

    return update_one, calls


def collect():
    results, errors = [], []
    return results, errors, results.append, lambda t, e: errors.append((t, e))


def test_fetch_each_all_ok():
    update, calls = fake_update({})
    results, errors, on_result, on_error = collect()
    stages.fetch_each(["A", "B"], update, on_result, on_error)
    assert calls == ["A", "B"] and [r.ticker for r in results] == ["A", "B"] and errors == []


def test_fetch_each_reports_a_data_error_fetches_the_rest_then_fails():
    boom = FetchError("no such ticker")
    update, calls = fake_update({"B": boom, "D": DataError("bad rows")})
    results, errors, on_result, on_error = collect()
    with pytest.raises(StockRNNError) as info:
        stages.fetch_each(["A", "B", "C", "D"], update, on_result, on_error)
    assert calls == ["A", "B", "C", "D"]                 # every ticker was tried
    assert [r.ticker for r in results] == ["A", "C"]      # the others were fetched
    assert [t for t, _ in errors] == ["B", "D"] and errors[0][1] is boom
    assert type(info.value) is StockRNNError and info.value.exit_code == 1
    assert str(info.value) == "2 of 4 tickers failed: B, D"


def test_fetch_each_one_ticker_raises_its_own_error():
    boom = FetchError("no such ticker")
    update, _ = fake_update({"A": boom})
    results, errors, on_result, on_error = collect()
    with pytest.raises(FetchError) as info:
        stages.fetch_each(["A"], update, on_result, on_error)
    assert info.value is boom and errors == [] and results == []


@pytest.mark.parametrize("error", [ConfigError("bad interval"), LockError("held")])
def test_fetch_each_usage_and_lock_errors_stop_at_once(error):
    update, calls = fake_update({"B": error})
    results, errors, on_result, on_error = collect()
    with pytest.raises(type(error)) as info:
        stages.fetch_each(["A", "B", "C"], update, on_result, on_error)
    assert info.value is error and info.value.exit_code in (2, 75)
    assert calls == ["A", "B"] and errors == []  # C never tried


# --------------------------------------------------------------------------- run_all


@pytest.fixture
def pipeline(work, sample_data, smoke_run, monkeypatch):
    """The smoke config on a private copy of the sample store, with ``stages.train`` replaced
    by copying the session's trained run into this test's runs folder."""
    data = Path(shutil.copytree(sample_data, work / "data"))
    cfg = load_config(SMOKE, [f"paths.data_dir={data}", f"paths.runs_dir={work / 'runs'}",
                              "data.start=2010-05-03"])
    trained = []

    def train(cfg_, opts, *, lock=True, prepared=None, on_run=lambda run: None, **kwargs):
        assert lock is False and prepared is not None  # run_all holds the lock, built windows
        run = runs.create(cfg_.runs_dir, cfg_.run_name)
        on_run(run)
        if getattr(opts, "steps", None) == 99:  # a training that fails after its run dir exists
            raise KeyError("simulated")
        run.path.rmdir()
        copy_run(smoke_run, run.path)
        runs.set_latest(run)
        trained.append(run)
        return run

    monkeypatch.setattr(stages, "train", train)
    return cfg, trained


def test_run_all_runs_the_stages_in_order_and_sums_up(pipeline):
    cfg, trained = pipeline
    seen = []
    summary = stages.run_all(cfg, RunOptions(steps=3), on_stage=seen.append)
    assert [s.name for s in summary.stages] == ["fetch", "prepare", "train", "evaluate",
                                                "predict"]
    assert seen == summary.stages and all(s.seconds >= 0 for s in seen)
    assert summary.run_dir == str(trained[0].path) and summary.config == "smoke"
    assert summary.metrics["model"] == summary.result["model"]
    assert summary.metrics["persistence"] == summary.result["baselines"]["persistence"]
    assert len(summary.forecast["rows"]) == 3
    assert (trained[0].path / "metrics_test.json").is_file()
    assert (trained[0].path / "forecast.csv").is_file()
    assert set(summary.to_dict()) == {"config", "stages", "run_dir", "metrics", "forecast"}


def test_run_all_keep_prunes_only_when_the_gate_passes(pipeline):
    cfg, trained = pipeline
    summary = stages.run_all(cfg, RunOptions(keep=1, max_mase=100.0))
    assert summary.stages[-1].name == "prune"
    assert summary.stages[-1].summary == "removed 0 old runs of smoke (keep 1)"
    summary = stages.run_all(cfg, RunOptions(keep=1, max_mase=0.01))  # the gate will fail
    assert [s.name for s in summary.stages][-1] == "predict"
    assert len(runs.list_runs(cfg.runs_dir, "smoke")) == 2  # nothing pruned


def test_a_failing_stage_raises_pipeline_error_with_the_finished_stages(pipeline, monkeypatch):
    cfg, trained = pipeline
    boom = DataError("no stored data for GOOG")

    def predict(*args, **kwargs):
        raise boom

    monkeypatch.setattr(stages, "predict", predict)
    seen = []
    with pytest.raises(PipelineError) as info:
        stages.run_all(cfg, on_stage=seen.append)
    err = info.value
    assert [s.name for s in err.stages] == ["fetch", "prepare", "train", "evaluate"]
    assert err.stages == seen
    assert err.run_dir == str(trained[0].path)
    assert err.cause is boom and err.__cause__ is boom
    assert err.exit_code == 1 and str(err) == "no stored data for GOOG"
    # an error that is not stockrnn's is named with its type, and exits 1
    monkeypatch.setattr(stages, "predict", lambda *a, **k: 1 / 0)
    with pytest.raises(PipelineError) as info:
        stages.run_all(cfg)
    assert info.value.exit_code == 1 and str(info.value) == "ZeroDivisionError: division by zero"


def test_a_failing_training_names_its_incomplete_run_dir(pipeline):
    cfg, trained = pipeline
    with pytest.raises(PipelineError) as info:
        stages.run_all(cfg, RunOptions(steps=99))
    assert [s.name for s in info.value.stages] == ["fetch", "prepare"]
    run_dir = info.value.run_dir
    assert run_dir is not None and Path(run_dir).parent == cfg.runs_dir / "smoke"
    assert str(info.value) == "KeyError: 'simulated'"


def test_a_held_lock_fails_before_any_stage(pipeline):
    cfg, trained = pipeline
    with locking.hold(runs.lock_path(cfg.runs_dir, cfg.run_name)):
        with pytest.raises(PipelineError) as info:
            stages.run_all(cfg)
    assert info.value.exit_code == 75 and isinstance(info.value.cause, LockError)
    assert info.value.stages == [] and info.value.run_dir is None and trained == []


def test_a_failing_prepare_has_no_run_dir(pipeline):
    cfg, trained = pipeline
    cfg = load_config(SMOKE, [f"paths.data_dir={cfg.data_dir}", f"paths.runs_dir={cfg.runs_dir}",
                              "window.look_back=5000"])
    with pytest.raises(PipelineError) as info:
        stages.run_all(cfg)
    assert [s.name for s in info.value.stages] == ["fetch"]
    assert info.value.run_dir is None and "too few" in str(info.value) and trained == []


def test_a_model_file_is_loaded_once_while_it_is_unchanged(smoke_run, work):
    """training.load_model shares the model of an unchanged file (train, evaluate and predict
    in one process trace one model); a replaced or damaged file is read again."""
    from stockrnn import training

    run = copy_run(smoke_run, work / "run")
    path = run / "model.keras"
    first = training.load_model(path)
    assert training.load_model(path) is first
    blob = path.read_bytes()
    tmp = path.with_name("replacement.keras")
    tmp.write_bytes(blob)
    tmp.replace(path)  # same bytes, a new file: loaded again
    again = training.load_model(path)
    assert again is not first
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    path.write_bytes(blob[: len(blob) // 2])  # damaged in place
    with pytest.raises(Exception):  # noqa: B017 (Keras raises several kinds)
        training.load_model(path)
