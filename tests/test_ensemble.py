"""``model.type: ensemble``: members trained on their own, one saved model that averages them.

One ensemble is trained for the module (the smoke config on the short sample: an LSTM(4) and
a Conv1D(4), 2 epochs each) and shared read-only: its forecast is the mean of its members'
(loaded from their own files), its intervals are its own, and evaluate, predict, export and
compare work on it. A seed ensemble (one Conv1D, seeds 1 and 2) interrupted in its second
member resumes without retraining the first, and its seeds give different members. Config
errors name their key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import SHORT, SMOKE, explain, invoke, meta

from stockrnn import evaluation, export, forecasting, render, report, runs, stages, training
from stockrnn.config import load_config
from stockrnn.errors import ConfigError
from stockrnn.options import RunOptions

MEMBERS = "[lstm, {type: conv1d, filters: 4, kernel_size: 3}]"
NAMES = ["lstm_s42", "conv1d_s42"]
ENSEMBLE = ("model.type=ensemble", "model.units=[4]", f"model.members={MEMBERS}",
            "paths.run_name=ens", SHORT)


def config(base: Path, data: Path, *extra: str):
    return load_config(SMOKE, [*ENSEMBLE, f"paths.data_dir={data}",
                               f"paths.runs_dir={base / 'runs'}", *extra])


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_data) -> Path:
    base = tmp_path_factory.mktemp("ensemble")
    return stages.train(config(base, sample_data), RunOptions(progress="none")).path


@pytest.fixture(scope="module")
def loaded(run):
    """The run's config, dataset and model (as evaluate and predict load them)."""
    rd = runs.RunDir(run)
    cfg, transform, model, quantiles = forecasting.load_run(rd)
    return cfg, forecasting.run_dataset(rd, cfg, transform), model, quantiles


def test_members_are_trained_and_recorded(run):
    m = meta(run)
    assert m["status"] == "complete" and m["model_type"] == "ensemble"
    assert [x["name"] for x in m["members"]] == NAMES
    assert [(x["type"], x["seed"]) for x in m["members"]] == [("lstm", 42), ("conv1d", 42)]
    assert m["epochs_run"] == sum(x["epochs_run"] for x in m["members"])
    assert m["best_epoch"] is None and m["best_val_loss"] <= m["start_val_loss"]
    for name in NAMES:
        folder = run / "members" / name
        assert (folder / "model.keras").is_file() and (folder / "history.csv").is_file()
        assert json.loads((folder / "member.json").read_text())["name"] == name
    hist = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert hist[0] == "epoch" and "lstm_s42/val_loss" in hist and "conv1d_s42/loss" in hist
    assert "ensemble of 2: val_loss" in runs.best_line(m)


def test_forecast_is_the_mean_of_the_members(run, loaded):
    import keras

    cfg, ds, model, _ = loaded
    x = ds.splits["val"].x
    members = [keras.models.load_model(run / "members" / n / "model.keras", compile=False)
               for n in NAMES]
    outs = [training.predict(m, x) for m in members]
    np.testing.assert_allclose(training.predict(model, x), np.mean(outs, axis=0), atol=1e-6)
    assert not np.allclose(outs[0], outs[1])
    # the validation loss in meta.json is the averaged model's
    loss = training.loss_value(cfg.train.loss, training.predict(model, x), ds.splits["val"].y)
    assert meta(run)["best_val_loss"] == pytest.approx(loss, rel=1e-6)


def test_intervals_are_the_ensembles_own(loaded):
    _, ds, model, quantiles = loaded
    got = evaluation.interval_quantiles(model, ds)
    assert [q[lv] for q in got for lv in q] == pytest.approx([q[lv] for q in quantiles
                                                              for lv in q])


def test_evaluate_scores_the_members_on_the_same_points(run, loaded, tmp_path):
    result = json.loads(invoke("evaluate", "--run", run, "--json").stdout)
    assert list(result["members"]) == NAMES
    assert result["best_member"] == min(NAMES, key=lambda n: result["members"][n]["mae"])
    _, ds, model, _ = loaded
    lstm = evaluation.member_forecasts(model, ds, "test")["lstm_s42"]
    mae = float(np.mean(np.abs(ds.actual_prices("test") - lstm)))
    assert result["members"]["lstm_s42"]["mae"] == pytest.approx(mae)
    table = render.evaluation(result)
    assert "\n  conv1d_s42 " in table and "\nensemble: MAE " in table
    assert "its best member" in table
    page = report.run_context(run, with_plots=False)  # the HTML report's run page
    assert [r["name"] for r in page["rows"][:3]] == ["model", "member lstm_s42",
                                                     "member conv1d_s42"]
    assert dict(page["facts"])["model"].startswith("ensemble, the mean of 2 members (lstm_s42")
    assert any("best member" in line for line in page["verdict"]["lines"])
    assert "epochs over 2 members" in dict(page["facts"])["training"]


def test_predict_export_and_compare_work_on_an_ensemble(run, tmp_path):
    fc = json.loads(invoke("predict", "--run", run, "--format", "json").stdout)
    assert fc["forecast"][0]["lower_80"] < fc["forecast"][0]["forecast"] \
        < fc["forecast"][0]["upper_80"]
    out = export.export(run, "keras", tmp_path / "keras")
    assert out.verified and out.signature["run"]["model_type"] == "ensemble"
    rows = json.loads(invoke("compare", run, "--format", "json").stdout)
    assert rows[0]["model"] == "ensemble" and rows[0]["epochs"] == meta(run)["epochs_run"]


def interrupt_member(member: int, epoch: int, begun: list):
    """Stand-in for training.epoch_logger: Ctrl-C when ``epoch`` (0-based) of the ``member``-th
    trained member (1-based) begins; every epoch begun is recorded in ``begun``."""
    calls = []

    def factory(total):
        import keras

        calls.append(total)
        mine = len(calls)

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                begun.append((mine, e))
                if mine == member and e == epoch:
                    raise KeyboardInterrupt

        return Interrupt()

    return factory


def test_seed_ensemble_resumes_keeping_finished_members(tmp_path, sample_data, monkeypatch):
    cfg = config(tmp_path, sample_data, "model.members=[{type: conv1d, filters: 4, "
                 "kernel_size: 3}]", "model.seeds=[1, 2]", "train.early_stopping.patience=50")
    begun: list = []
    with monkeypatch.context() as m:
        m.setattr(training, "epoch_logger", interrupt_member(2, 1, begun))
        with pytest.raises(KeyboardInterrupt):
            stages.train(cfg, RunOptions(progress="lines"))
    [run] = runs.incomplete(cfg.runs_dir, "ens")
    first = run.path / "members" / "conv1d_s1"
    assert (first / "member.json").is_file() and not (run.path / "model.keras").exists()
    assert not (run.path / "members" / "conv1d_s2" / "member.json").exists()
    kept = (first / "model.keras").stat().st_mtime_ns
    begun.clear()
    monkeypatch.setattr(training, "epoch_logger", interrupt_member(0, 0, begun))
    resumed = stages.train(cfg, RunOptions(progress="lines", resume=True))
    assert resumed.path == run.path and resumed.status == "complete"
    # the first member was not trained again; the second went on from its backup (epoch 1)
    assert begun == [(1, 1)]
    assert (first / "model.keras").stat().st_mtime_ns == kept
    assert [x["name"] for x in resumed.meta()["members"]] == ["conv1d_s1", "conv1d_s2"]
    second = resumed.path / "members" / "conv1d_s2" / "history.csv"
    assert second.read_text().splitlines()[1].startswith("0,")
    # the seeds give different members of the same family
    one, two = (training.load_model(resumed.path / "members" / n / "model.keras")
                for n in ("conv1d_s1", "conv1d_s2"))
    assert not all(np.array_equal(a, b) for a, b in zip(one.get_weights(), two.get_weights(),
                                                        strict=True))


def test_a_seed_ensemble_averages_its_own_members(tmp_path, sample_data):
    """Members of one shape (one family, two seeds) train one after another on the same
    compiled model (``training._COMPILED``); each is still its own network in the ensemble: the
    ensemble, as this process holds it and as loaded from its file, is the mean of the members'
    files."""
    import keras

    cfg = config(tmp_path, sample_data, "model.members=[{type: conv1d, filters: 4, "
                 "kernel_size: 3}]", "model.seeds=[1, 2]", "train.epochs=1")
    rd = stages.train(cfg, RunOptions(progress="none"))
    run = rd.path
    x = forecasting.run_dataset(rd, cfg, forecasting.load_run(rd)[1]).splits["val"].x
    outs = [training.predict(keras.models.load_model(run / "members" / n / "model.keras",
                                                     compile=False), x)
            for n in ("conv1d_s1", "conv1d_s2")]
    assert not np.allclose(outs[0], outs[1])
    for model in (training.load_model(run / "model.keras"),
                  keras.models.load_model(run / "model.keras", compile=False)):
        np.testing.assert_allclose(training.predict(model, x), np.mean(outs, axis=0), atol=1e-6)


@pytest.mark.parametrize("overrides, key, says", [
    (["model.type=ensemble"], "model.members", "needs members"),
    (["model.type=ensemble", "model.members=[lstm]"], "model.members", "ensemble of one model"),
    (["model.type=ensemble", "model.members=[lstm, ensemble]"], "model.members.1",
     "cannot itself be an ensemble"),
    (["model.type=ensemble", "model.members=[lstm, {type: ensemble}]"], "model.members.1.type",
     "cannot itself be an ensemble"),
    (["model.type=ensemble", "model.members=[lstm, rnn]"], "model.members.1",
     "unknown member type 'rnn'"),
    (["model.type=ensemble", "model.members=[lstm, {units: [4]}]"], "model.members.1.type",
     "needs its type"),
    (["model.type=ensemble", "model.members=[lstm, {type: gru, unitz: [4]}]"],
     "model.members.1.unitz", "did you mean units?"),
    (["model.type=ensemble", "model.members=[lstm, {type: gru, dropout: 2}]"],
     "model.members.1.dropout", "less than 1"),
    (["model.type=ensemble", "model.members=[gru, {type: gru}]"], "model.members.1",
     "the same model as member 0"),
    (["model.type=ensemble", "model.members=[lstm]", "model.seeds=[3, 3]"], "model.seeds",
     "a seed twice"),
    (["model.type=ensemble", "model.members=[lstm, {type: conv1d, kernel_size: 40}]"],
     "model.members.1.kernel_size", "must be <= window.look_back (30)"),
    (["model.members=[lstm, gru]"], "model.members", "only for model.type: ensemble"),
    (["model.seeds=[1, 2]"], "model.seeds", "only for model.type: ensemble"),
])
def test_config_errors_name_the_key(overrides, key, says):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert str(err.value).startswith(f"<defaults>: {key}: ") and says in str(err.value), \
        str(err.value)


def test_members_inherit_the_ensembles_settings():
    cfg = load_config(None, ["model.type=ensemble", "model.units=[8]", "model.dropout=0.2",
                             "model.members=[lstm, {type: gru, units: [4]}, conv1d]",
                             "model.seeds=[5, 6]"])
    lstm, gru, conv = cfg.model.member_configs()
    assert (lstm.type, lstm.units, lstm.dropout) == ("lstm", (8,), 0.2)
    assert (gru.type, gru.units, gru.dropout) == ("gru", (4,), 0.2)
    assert conv.type == "conv1d" and not conv.members and conv.seeds is None
    from stockrnn.models.ensemble import members

    assert [m.name for m in members(cfg.model, 42)] == [
        "lstm_s5", "lstm_s6", "gru_s5", "gru_s6", "conv1d_s5", "conv1d_s6"]
    two = load_config(None, ["model.type=ensemble", "model.members=[lstm, {type: lstm, "
                                                    "units: [4]}]"])
    assert [m.name for m in members(two.model, 42)] == ["lstm_1_s42", "lstm_2_s42"]


def test_cli_validate_shows_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  type: ensemble\n  members: [lstm, {type: gru, unitz: [4]}]\n")
    result = invoke("config", "validate", bad, code=2)
    assert f"{bad}: model.members.1.unitz: unknown member key (did you mean units?)" \
        in result.stderr, explain(result)


def test_the_shipped_ensemble_config_runs_end_to_end(tmp_path, sample_data):
    """configs/ensemble.yaml as shipped (its three members and their settings), through the
    whole `stockrnn run`, on the short sample for two epochs per member."""
    from helpers import CONFIGS

    out = json.loads(invoke("run", "-c", CONFIGS / "ensemble.yaml", "--json", "--set", SHORT,
                            "--set", "train.epochs=2", "--set",
                            f"paths.data_dir={sample_data}", "--set",
                            f"paths.runs_dir={tmp_path / 'runs'}").stdout)
    assert out["status"] == "ok"
    assert [s["name"] for s in out["stages"]] == ["fetch", "prepare", "train", "evaluate",
                                                 "predict"]
    m = meta(Path(out["run_dir"]))
    assert [(x["type"], x["seed"]) for x in m["members"]] == [("lstm", 42), ("gru", 42),
                                                              ("conv1d", 42)]
    assert out["metrics"]["model"]["mase"] > 0 and len(out["forecast"]["rows"]) == 1
