"""AutoARIMA and AutoETS (statsforecast) as baselines: they reach the oracle where it is known
(AR(1) log returns) and not beyond it (a random walk), they agree with statsforecast's own
``forward``, they never see a price after their origin nor fit on a row after the training
split, and without statsforecast they are left out with a note, never an error. Short
synthetic series, no training except the session's smoke run (evaluated here on a copy)."""

from __future__ import annotations

import importlib.util
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import (
    ar1_returns,
    config,
    copy_run,
    evaluate_json,
    meta,
    price_frame,
    prices_from_returns,
    random_walk,
    series,
)

from stockrnn import backtest, classical, dataset, evaluation, render

needs_stats = pytest.mark.skipif(importlib.util.find_spec("statsforecast") is None,
                                 reason="statsforecast (the stats extra) is not installed")
N, TRAIN = 1000, 700                 # rows, training rows: 299 one-step origins after them
ANCHORS = np.arange(TRAIN, N - 1)


def mase(forecast: np.ndarray, prices: np.ndarray, anchors: np.ndarray) -> float:
    actual = prices[anchors + 1]
    return float(np.abs(forecast - actual).mean() / np.abs(prices[anchors] - actual).mean())


def arma_prices(seed: int, phi: float, theta: float, integrated: bool, n: int = 400):
    """Log prices that are ARMA(1, 1) (or its cumulative sum): models with an intercept, MA
    terms, no differencing as well as the AR(1)-with-drift fits the return series give."""
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, 0.02, n + 1)
    w = np.zeros(n)
    for t in range(1, n):
        w[t] = phi * w[t - 1] + e[t] + theta * e[t - 1]
    return 50.0 * np.exp(0.5 * np.cumsum(w) if integrated else w)


# --------------------------------------------------------------------------- where answers are known


@needs_stats
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_arima_reaches_the_oracle_on_ar1_log_returns(seed):
    phi = 0.5
    prices = prices_from_returns(ar1_returns(N, phi, seed))
    fc, notes = classical.forecasts(prices, TRAIN, ANCHORS, np.array([1]), ("auto_arima",))
    assert notes == []
    last_return = np.log(prices[ANCHORS] / prices[ANCHORS - 1])
    oracle = prices[ANCHORS] * np.exp(phi * last_return)
    got, best = mase(fc["auto_arima"][:, 0], prices, ANCHORS), mase(oracle, prices, ANCHORS)
    assert best < 0.93  # the structure is there to find ...
    assert got == pytest.approx(best, rel=0.02)  # ... and AutoARIMA finds it


@needs_stats
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_edge_on_a_random_walk(seed):
    prices = random_walk(N, seed)
    fc, notes = classical.forecasts(prices, TRAIN, ANCHORS, np.array([1]))
    assert notes == [] and set(fc) == {"auto_arima", "auto_ets"}
    for name in classical.NAMES:
        assert mase(fc[name][:, 0], prices, ANCHORS) == pytest.approx(1.0, abs=0.05), name


# --------------------------------------------------------------------------- the same as statsforecast


@needs_stats
@pytest.mark.parametrize("prices", [
    prices_from_returns(ar1_returns(400, 0.5, 7)),      # ARIMA(1,1,0) + drift, ETS(A,Ad,N)
    arma_prices(1, 0.5, 0.0, integrated=False),         # ARIMA(0,0,1) + intercept, ETS(M,N,N)
    arma_prices(4, 0.0, -0.5, integrated=True),         # ARIMA(0,1,1) + drift
], ids=["ar1-returns", "stationary", "ma"])
@pytest.mark.parametrize("steps", [[1, 2, 3], [2, 3]], ids=["h3", "foresight1"])
def test_forecasts_equal_statsforecasts_forward_on_each_origins_history(prices, steps):
    train_end, anchors = 280, np.array([300, 350, 396])
    fc, _ = classical.forecasts(prices, train_end, anchors, np.array(steps))
    logp = np.log(prices)
    for name in classical.NAMES:
        model = classical.fitted(name, logp[:train_end])
        for i, a in enumerate(anchors):
            ref = np.exp(model.forward(logp[: a + 1], h=max(steps))["mean"])[np.array(steps) - 1]
            np.testing.assert_allclose(fc[name][i], ref, rtol=1e-9, err_msg=f"{name} at {a}")


# --------------------------------------------------------------------------- honesty


@needs_stats
def test_a_forecast_never_sees_a_price_after_its_origin():
    prices = prices_from_returns(ar1_returns(400, 0.5, 3))
    anchors, cut = np.arange(300, 399), 340
    steps = np.array([1, 2])
    before, _ = classical.forecasts(prices, 280, anchors, steps)
    changed = prices.copy()
    changed[cut + 1:] *= np.exp(np.random.default_rng(0).normal(0, 0.05, len(prices) - cut - 1))
    after, _ = classical.forecasts(changed, 280, anchors, steps)
    alone, _ = classical.forecasts(prices[: cut + 1], 280, anchors[anchors <= cut], steps)
    upto = anchors <= cut
    for name in classical.NAMES:
        np.testing.assert_allclose(after[name][upto], before[name][upto], rtol=1e-12)
        np.testing.assert_allclose(alone[name], before[name][upto], rtol=1e-12)
        assert not np.allclose(after[name][~upto], before[name][~upto])  # later ones do move


@needs_stats
def test_fitted_on_the_training_rows_only(monkeypatch):
    from statsforecast import models

    seen = []
    for cls in (models.AutoARIMA, models.AutoETS):
        fit = cls.fit

        def spy(self, y, *args, _fit=fit, **kwargs):
            seen.append(np.array(y, dtype="float64"))
            return _fit(self, y, *args, **kwargs)

        monkeypatch.setattr(cls, "fit", spy)

    def params(prices, train_end=280):
        monkeypatch.setattr(classical, "_fits", {})  # no cache: fit again
        seen.clear()
        classical.forecasts(prices, train_end, np.arange(300, 399), np.array([1]))
        assert len(seen) == 2
        for y in seen:
            np.testing.assert_array_equal(y, np.log(prices[:train_end]))
        arima, ets = (m.model_ for m in classical._fits.values())
        return arima["coef"], ets["par"]

    prices = prices_from_returns(ar1_returns(400, 0.5, 5))
    later = prices.copy()
    later[280:] *= 1.5                           # the val and test rows: the fits stay put
    same = params(later)
    first = params(prices)
    assert same[0] == first[0]
    np.testing.assert_array_equal(same[1], first[1])
    earlier = prices.copy()
    earlier[200:280] *= 1.1                      # a training row: they move
    assert params(earlier)[0] != first[0]


@needs_stats
def test_each_dataset_and_backtest_fold_fits_on_its_own_training_split(monkeypatch):
    """``evaluation.baselines_and_notes`` fits on the split's training rows, so a backtest fold's
    Dataset (its own train bounds) gets its own fits; folds sharing a model share them."""
    calls = []
    real = classical._fit

    def spy(sf, name, train):
        calls.append((name, len(train)))
        return real(sf, name, train)

    monkeypatch.setattr(classical, "_fit", spy)
    cfg = config("window.look_back=5")
    frame = price_frame(prices_from_returns(ar1_returns(420, 0.4, 9)))
    for train_end in (150, 230):
        ds = dataset.build(frame, cfg, {"train": (0, train_end), "val": (train_end, 260),
                                        "test": (260, 420)})
        base, notes = evaluation.baselines_and_notes(ds, "test")
        assert notes == [] and set(base) == set(evaluation.ALL_BASELINES)
        assert base["auto_arima"].shape == base["persistence"].shape == (len(ds.splits["test"]), 1)
    assert calls == [("auto_arima", 150), ("auto_ets", 150), ("auto_arima", 230),
                     ("auto_ets", 230)]


# --------------------------------------------------------------------------- left out, never an error


def test_without_statsforecast_they_are_left_out_with_a_note_logged_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)  # the import fails
    monkeypatch.setattr(classical, "_told", False)
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("stockrnn.classical")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for _ in range(2):
            fc, notes = classical.forecasts(random_walk(200, 1), 100, np.arange(150, 199),
                                            np.array([1]))
            assert fc == {} and notes == [classical.NOT_INSTALLED]
        assert not classical.available()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert len(records) == 1 and "stockrnn[stats]" in records[0].getMessage()


def test_odd_data_leaves_them_out_with_a_note():
    prices = random_walk(200, 2)
    prices[20] = -1.0  # no log price
    fc, notes = classical.forecasts(prices, 100, np.arange(150, 199), np.array([1]))
    assert fc == {} and len(notes) == 2 and all("left out" in n for n in notes)


@needs_stats
def test_a_failing_fit_is_a_note(monkeypatch):
    from statsforecast import models

    def boom(self, y, *args, **kwargs):
        raise ValueError("no convergence")

    monkeypatch.setattr(models.AutoETS, "fit", boom)
    monkeypatch.setattr(classical, "_fits", {})
    fc, notes = classical.forecasts(random_walk(300, 3), 200, np.arange(250, 299),
                                    np.array([1]))
    assert set(fc) == {"auto_arima"}
    assert notes == ["AutoETS baseline left out: it failed on 200 training rows "
                     "(ValueError: no convergence)"]


# --------------------------------------------------------------------------- evaluate on a run


@pytest.fixture(scope="module")
def run_copy(smoke_run, tmp_path_factory):
    return copy_run(smoke_run, tmp_path_factory.mktemp("classical") / smoke_run.name)


@needs_stats
def test_evaluate_json_scores_them_like_the_other_baselines(run_copy):
    m = evaluate_json(run_copy)
    base = m["baselines"]
    assert list(base) == ["persistence", "drift", "moving_average", "auto_arima", "auto_ets"]
    for name in classical.NAMES:
        assert set(base[name]) == set(base["persistence"])
    assert m["notes"] == []
    assert m["best_baseline"] == min(base, key=lambda b: base[b]["mae"])
    # recomputed here from series.csv: fitted on the run's training rows, scored on its points
    prices = series(run_copy).to_numpy()
    splits = meta(run_copy)["data"]["splits"]
    t0, t1 = splits["test"]["rows"]
    anchors = np.arange(t0 - 1, t1 - 1)
    assert len(anchors) == m["n"]
    fc, _ = classical.forecasts(prices, splits["train"]["rows"][1], anchors, np.array([1]))
    for name in classical.NAMES:
        mae = float(np.abs(fc[name][:, 0] - prices[anchors + 1]).mean())
        assert base[name]["mae"] == pytest.approx(mae, rel=1e-9)
    # the table names them and says how the model compares with the best of them
    text = render.evaluation(m)
    for name in classical.NAMES:
        assert f"\n{name} " in text
    verdict = next(ln for ln in text.splitlines() if ln.startswith("verdict: "))
    assert f"the best baseline's ({m['best_baseline']}, MAE " in verdict


def test_evaluate_without_statsforecast_still_works(run_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    m = evaluate_json(run_copy)
    assert list(m["baselines"]) == ["persistence", "drift", "moving_average"]
    assert m["notes"] == [classical.NOT_INSTALLED]
    assert "note: AutoARIMA and AutoETS baselines left out" in render.evaluation(m)


# --------------------------------------------------------------------------- backtest pooling


def fake_forecasts(n: int, seed: int, with_arima: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    last = 100 + rng.normal(0, 1, n)
    actual = last[:, None] + rng.normal(0, 1, (n, 1))
    fc = {"dates": np.asarray(pd.bdate_range(f"202{seed}-01-01", periods=n)),
          "last": last, "actual": actual, "model": actual + rng.normal(0, 0.9, (n, 1)),
          "persistence": last[:, None], "drift": last[:, None] + 0.01,
          "moving_average": last[:, None] - 0.5, "auto_ets": actual + rng.normal(0, 0.5, (n, 1)),
          "notes": ()}
    fc["origins"] = fc["dates"] - np.timedelta64(1, "D")
    fc["step_dates"] = fc["dates"][:, None]
    if with_arima:
        fc["auto_arima"] = last[:, None] + 0.02
    for lv in (80, 95):
        fc[f"lower_{lv}"], fc[f"upper_{lv}"] = fc["model"] - 1, fc["model"] + 1
    return fc


def test_pooled_results_keep_only_baselines_every_fold_has_and_test_the_best():
    parts = [fake_forecasts(60, 0), fake_forecasts(60, 1, with_arima=False)]
    fc = backtest._concat(parts)
    assert "auto_arima" not in fc
    p = backtest.pooled(fc)
    assert list(p["baselines"]) == ["persistence", "drift", "moving_average", "auto_ets"]
    assert p["notes"] == ["auto_arima left out of the pooled results: some folds have no "
                          "forecasts from it"]
    assert p["best_baseline"] == "auto_ets"
    assert p["versus_best"]["verdict"].startswith("worse than auto_ets (p ")  # it errs more
    assert p["versus_best"]["dm_p_value"] < 0.01
    assert p["verdict"].startswith(("better", "not distinguishable", "worse"))
    folds = [backtest.Fold(k, 0, 10, 20 + 60 * k, 80 + 60 * k, k) for k in range(2)]
    pred = backtest.predictions_frame(folds, [{"forecasts": f} for f in parts])
    assert list(pred.columns[-5:]) == list(backtest.PREDICTION_BASES)
    assert pred["auto_arima"].notna().sum() == 60 and pred["auto_ets"].notna().all()


PREFETCH = """
import json, os, sys, tempfile
import numpy as np
from stockrnn import classical, forked

def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False

out = {}
prices = 100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.01, 400)))
anchors, steps = np.arange(300, 399), np.array([1, 2])
out["started"] = classical.prefetch(prices, 280, anchors, steps)
[(pid, _)] = forked._pending.values()
fc, notes = classical.forecasts(prices, 280, anchors, steps)  # the child's
out["imported_here"] = "statsforecast" in sys.modules
try:
    os.waitpid(pid, os.WNOHANG)
    out["reaped"] = False
except ChildProcessError:
    out["reaped"] = True
own, own_notes = classical.forecasts(prices, 280, anchors, steps)  # this process's own
out["equal"] = sorted(fc) == sorted(own) == ["auto_arima", "auto_ets"] and all(
    np.array_equal(fc[k], own[k]) for k in own) and notes == own_notes == []
out["again"] = classical.prefetch(prices, 280, anchors, steps)  # imported now: no child
with tempfile.TemporaryFile() as fh:
    out["fd_started"] = forked.start("fd", is_open, fh.fileno())
    out["fd_open_in_child"] = forked.result("fd")
forked.start("fails", divmod, 1, 0)
out["failed"] = forked.result("fails")
forked.start("works", divmod, 7, 2)
out["works"] = forked.result("works")
forked.start("never asked", divmod, 7, 2)
sys.modules["tensorflow"] = None
out["with_tensorflow"] = forked.start("tf", divmod, 7, 2)
print(json.dumps(out))
"""


def test_prefetch_forecasts_in_a_child_process_give_the_same_numbers(tmp_path):
    """``run`` starts the test split's AutoARIMA/AutoETS forecasts in a forked child before
    it imports TensorFlow: the parent takes the child's forecasts (equal to its own, to the
    bit) without importing statsforecast, and reaps the child. The child holds none of the
    parent's files; a failed child gives None (the caller then does the work); nothing is
    forked once TensorFlow is loaded (in a fresh Python: this one has imported it)."""
    import json
    import subprocess

    proc = subprocess.run([sys.executable, "-c", PREFETCH], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["started"] and not out["imported_here"] and out["reaped"] and out["equal"]
    assert out["again"] is False
    assert out["fd_started"] and out["fd_open_in_child"] is False
    assert out["failed"] is None and out["works"] == [3, 1]
    assert out["with_tensorflow"] is False
