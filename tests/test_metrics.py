"""stockrnn.metrics on tiny arrays whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stockrnn import metrics

ACTUAL = np.array([1.0, 2.0, 3.0, 4.0])
PRED = np.array([2.0, 2.0, 2.0, 2.0])  # errors 1, 0, 1, 2


# --------------------------------------------------------------------------- point errors


def test_mae():
    assert metrics.mae(ACTUAL, PRED) == pytest.approx(1.0)
    assert metrics.mae([10.0], [7.5]) == pytest.approx(2.5)
    assert metrics.mae(ACTUAL, ACTUAL) == 0.0


def test_rmse():
    assert metrics.rmse(ACTUAL, PRED) == pytest.approx(math.sqrt((1 + 0 + 1 + 4) / 4))
    assert metrics.rmse([0.0, 0.0], [3.0, -4.0]) == pytest.approx(math.sqrt(12.5))
    # RMSE >= MAE, equal only when all errors have the same size
    assert metrics.rmse(ACTUAL, PRED) > metrics.mae(ACTUAL, PRED)
    assert metrics.rmse([1.0, 2.0], [2.0, 1.0]) == pytest.approx(metrics.mae([1.0, 2.0], [2.0, 1.0]))


def test_mape_in_percent():
    # |1-2|/1, 0, |3-2|/3, |4-2|/4  ->  (1 + 0 + 1/3 + 1/2) / 4 = 45.833..%
    assert metrics.mape(ACTUAL, PRED) == pytest.approx((1 + 0 + 1 / 3 + 0.5) / 4 * 100)
    assert metrics.mape([200.0], [190.0]) == pytest.approx(5.0)
    # relative to the actual, not the forecast
    assert metrics.mape([100.0], [200.0]) == pytest.approx(100.0)
    assert metrics.mape([200.0], [100.0]) == pytest.approx(50.0)


def test_integer_inputs_are_not_truncated():
    assert metrics.mape([3, 4], [2, 2]) == pytest.approx((1 / 3 + 2 / 4) / 2 * 100)
    assert metrics.mae([1, 2], [2, 4]) == pytest.approx(1.5)


# --------------------------------------------------------------------------- MASE via score


def test_mase_is_model_mae_over_persistence_mae():
    actual = np.array([10.0, 12.0, 11.0, 15.0])
    last = np.array([9.0, 10.0, 12.0, 13.0])  # persistence errors 1, 2, 1, 2 -> MAE 1.5
    pred = np.array([10.5, 11.0, 11.0, 14.0])  # errors 0.5, 1, 0, 1 -> MAE 0.625
    s = metrics.score(actual, pred, last)
    assert s["mae"] == pytest.approx(0.625)
    assert s["mase"] == pytest.approx(0.625 / 1.5)
    # an explicit persistence MAE is used as given
    assert metrics.score(actual, pred, last, persistence_mae=0.5)["mase"] == pytest.approx(1.25)


def test_persistence_scores_mase_one_exactly():
    actual = np.array([10.0, 12.0, 11.0, 15.0])
    last = np.array([9.0, 10.0, 12.0, 13.0])
    s = metrics.score(actual, last, last)
    assert s["mase"] == 1.0
    assert s["directional_accuracy"] is None
    assert s["direction_p_value"] is None


def test_mase_when_persistence_is_perfect():
    flat = np.array([5.0, 5.0, 5.0])
    assert metrics.score(flat, flat, flat)["mase"] == 0.0
    assert metrics.score(flat, flat + 1, flat)["mase"] == math.inf


def test_score_keys_and_values():
    actual = np.array([11.0, 9.0, 10.0, 12.0])
    last = np.array([10.0, 10.0, 10.0, 10.0])
    pred = np.array([10.5, 9.5, 10.2, 9.0])
    s = metrics.score(actual, pred, last)
    assert set(s) == {"mae", "rmse", "mape", "mase", "directional_accuracy", "direction_n",
                      "direction_p_value"}
    assert s["mae"] == pytest.approx(metrics.mae(actual, pred))
    assert s["rmse"] == pytest.approx(metrics.rmse(actual, pred))
    assert s["mape"] == pytest.approx(metrics.mape(actual, pred))
    # moves: +, -, 0 (left out), +; predicted: +, -, +, -  -> 2 of 3
    assert s["direction_n"] == 3
    assert s["directional_accuracy"] == pytest.approx(2 / 3)
    assert s["direction_p_value"] == pytest.approx(metrics.binomial_p_value(2, 3))


# --------------------------------------------------------------------------- direction


def test_directional_leaves_out_points_where_the_price_did_not_move():
    last = np.array([10.0, 10.0, 10.0, 10.0])
    actual = np.array([11.0, 10.0, 9.0, 10.0])   # +, 0, -, 0
    pred = np.array([12.0, 11.0, 8.0, 9.0])      # +, +, -, -  (the 0-move points don't count)
    acc, n = metrics.directional(actual, pred, last)
    assert n == 2
    assert acc == 1.0


def test_directional_zero_predicted_change_is_a_miss():
    last = np.array([10.0, 10.0, 10.0, 10.0])
    actual = np.array([11.0, 9.0, 12.0, 8.0])    # +, -, +, -
    pred = np.array([10.0, 9.5, 10.0, 9.0])      # 0 (miss), - (hit), 0 (miss), - (hit)
    acc, n = metrics.directional(actual, pred, last)
    assert n == 4
    assert acc == 0.5


def test_directional_all_wrong_and_ties_at_half():
    last = np.zeros(4)
    actual = np.array([1.0, -1.0, 1.0, -1.0])
    assert metrics.directional(actual, -actual, last) == (0.0, 4)
    assert metrics.directional(actual, actual, last) == (1.0, 4)
    # 2 of 4 right: a tie with a coin, p-value 1
    pred = np.array([1.0, 1.0, -1.0, -1.0])
    acc, n = metrics.directional(actual, pred, last)
    assert (acc, n) == (0.5, 4)
    s = metrics.score(actual, pred, last)
    assert s["direction_p_value"] == pytest.approx(1.0)


def test_directional_persistence_has_no_direction():
    last = np.array([10.0, 11.0, 12.0])
    actual = np.array([11.0, 10.0, 12.0])
    acc, n = metrics.directional(actual, last, last)
    assert acc is None
    assert n == 2  # the points that did move are still counted


def test_directional_no_moves_at_all():
    flat = np.array([3.0, 3.0])
    assert metrics.directional(flat, np.array([4.0, 2.0]), flat) == (None, 0)
    s = metrics.score(flat, np.array([4.0, 2.0]), flat)
    assert s["directional_accuracy"] is None and s["direction_p_value"] is None
    assert s["direction_n"] == 0


# --------------------------------------------------------------------------- binomial test


def test_binomial_p_value():
    assert metrics.binomial_p_value(5, 10) == pytest.approx(1.0)
    assert metrics.binomial_p_value(10, 10) == pytest.approx(2 * 0.5 ** 10)
    assert metrics.binomial_p_value(0, 10) == pytest.approx(2 * 0.5 ** 10)
    # P(X >= 8) + P(X <= 2) = 2 * (45 + 10 + 1) / 1024
    assert metrics.binomial_p_value(8, 10) == pytest.approx(2 * 56 / 1024)
    assert metrics.binomial_p_value(2, 10) == pytest.approx(2 * 56 / 1024)
    assert metrics.binomial_p_value(1, 1) == pytest.approx(1.0)
    assert metrics.binomial_p_value(0, 0) is None


@pytest.mark.parametrize("n", [1, 2, 3, 10, 57, 250, 251, 1000, 5003,
                               metrics.EXACT_BINOMIAL_MAX_N + 1, 60_000])
def test_binomial_p_value_is_scipys_binomtest(n, monkeypatch):
    """The exact integer sum (and scipy.special's CDF beyond EXACT_BINOMIAL_MAX_N points) gives
    scipy.stats.binomtest's two-sided p-value, on every count of hits up to 300 points and on a
    spread of them beyond; beyond EXACT_BINOMIAL_MAX_N also the exact sum's, within 1e-9."""
    from scipy.stats import binomtest

    def exact(k):  # the integer sum, whatever n
        with monkeypatch.context() as m:
            m.setattr(metrics, "EXACT_BINOMIAL_MAX_N", n)
            return metrics.binomial_p_value(k, n)

    hits = range(n + 1) if n <= 300 else sorted({0, 1, n // 3, n // 2 - 150, n // 2 - 1, n // 2,
                                                  n // 2 + 1, n // 2 + 97, n - 1, n})
    for k in hits:
        p = metrics.binomial_p_value(k, n)
        assert p == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-10, abs=1e-300), (k, n)
        assert p == metrics.binomial_p_value(n - k, n)  # two-sided: symmetric
        if n > metrics.EXACT_BINOMIAL_MAX_N and k in (n // 2 - 150, n // 2 + 97):
            assert p == pytest.approx(exact(k), rel=1e-9), (k, n)


def test_binomial_p_value_takes_numpy_counts_and_refuses_impossible_ones():
    assert metrics.binomial_p_value(np.int64(40), np.int64(100)) == metrics.binomial_p_value(40, 100)
    from scipy.stats import binomtest

    assert metrics.binomial_p_value(40, 100) == pytest.approx(binomtest(40, 100).pvalue, rel=1e-12)
    for hits, n in ((7, 5), (-1, 5), (1, 0)):
        with pytest.raises(ValueError, match="between 0 and n"):
            metrics.binomial_p_value(hits, n)
    with pytest.raises(TypeError):
        metrics.binomial_p_value(2.5, 10)


def test_metrics_and_significance_import_no_scipy_stats():
    """scipy.stats (0.8-1.9 s to import) stays out of an evaluation's process."""
    import subprocess
    import sys

    code = ("import sys; from stockrnn import metrics, significance; "
            "metrics.score([1.0, 2.0, 3.0], [1.5, 2.5, 2.0], [1.2, 1.8, 2.5]); "
            "significance.diebold_mariano([0.1, -0.2, 0.3, 0.1], [0.2, 0.1, -0.4, 0.3]); "
            "metrics.binomial_p_value(40_000, 70_000); print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_binomial_p_value_shrinks_with_more_evidence():
    # 55% over 100 points is not significant, over 10 000 it is
    assert metrics.binomial_p_value(55, 100) > 0.2
    assert metrics.binomial_p_value(5500, 10_000) < 1e-10


# --------------------------------------------------------------------------- conformal


def test_conformal_quantile_is_the_ceil_n_plus_one_level_th_smallest():
    r = np.array([9.0, 3.0, 7.0, 1.0, 5.0, 2.0, 8.0, 4.0, 6.0])  # 1..9 shuffled, n = 9
    assert metrics.conformal_quantile(r, 0.8) == 8.0                # ceil(10 * 0.8) = 8
    assert metrics.conformal_quantile(r, 0.5) == 5.0                # ceil(5) = 5
    assert metrics.conformal_quantile(r, 0.75) == 8.0               # ceil(7.5) = 8
    assert metrics.conformal_quantile(r, 0.1) == 1.0                # ceil(1) = 1


@pytest.mark.parametrize("n, level, k", [(19, 0.95, 19), (99, 0.8, 80), (99, 0.95, 95),
                                         (199, 0.95, 190), (4, 0.8, 4)])
def test_conformal_quantile_rank(n, level, k):
    rng = np.random.default_rng(n)
    values = rng.permutation(np.arange(1, n + 1, dtype=float))
    assert metrics.conformal_quantile(values, level) == float(k)


def test_conformal_quantile_with_too_few_points_is_at_least_the_largest():
    # ceil(10 * 0.95) = 10 > n = 9: no finite order statistic guarantees 95%
    r = np.arange(1.0, 10.0)
    assert metrics.conformal_quantile(r, 0.95) >= 9.0
    assert metrics.conformal_quantile([], 0.8) == math.inf


def test_conformal_quantile_covers_new_points_from_the_same_distribution():
    rng = np.random.default_rng(0)
    calib = np.abs(rng.standard_t(4, 999))
    fresh = rng.standard_t(4, 200_000)
    for level in (0.8, 0.95):
        q = metrics.conformal_quantile(calib, level)
        cov = metrics.coverage(fresh, -q, q)
        assert level - 0.03 < cov < level + 0.03


def test_coverage_counts_the_bounds_as_inside():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    lower = np.array([0.0, 2.5, 3.0, 5.0])
    upper = np.array([2.0, 3.0, 3.0, 6.0])
    assert metrics.coverage(actual, lower, upper) == 0.5
    assert metrics.coverage(actual, actual, actual) == 1.0
    assert metrics.coverage(actual, actual + 1, actual + 2) == 0.0


def test_best_baseline_is_the_recorded_one_else_the_lowest_mae():
    base = {"persistence": {"mae": 2.0}, "drift": {"mae": 1.5}, "auto_arima": {"mae": 1.5},
            "auto_ets": {"mae": float("nan")}, "moving_average": {"mae": None}}
    assert metrics.best_baseline(base) == "drift"                       # the first of equals
    assert metrics.best_baseline(base, "auto_arima") == "auto_arima"    # recorded in the file
    assert metrics.best_baseline(base, "gone") == "drift"               # not one of them
    assert metrics.best_baseline({"auto_ets": {"mae": float("nan")}}) is None
    assert metrics.best_baseline({}) is None
