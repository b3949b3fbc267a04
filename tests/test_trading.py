"""stockrnn.trading: a sign strategy from forecasts, its costs and statistics, worked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stockrnn import trading
from stockrnn.trading import buy_and_hold, evaluate_strategy, performance

# four periods: every forecast gets the direction right (up, down, up, down)
LAST = np.array([100.0, 102.0, 101.0, 105.0])
FORECAST = np.array([103.0, 101.0, 101.5, 104.0])
ACTUAL = np.array([102.0, 101.0, 105.0, 104.0])
ASSET = ACTUAL / LAST - 1  # 0.02, -1/102, 4/101, -1/105


def _random_walk(seed: int, n: int, sigma: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(rng.normal(0, sigma, n))]))


# --------------------------------------------------------------------------- performance by hand


def test_performance_by_hand():
    s = performance([0.1, -0.2, 0.05], [1, 1, 1], [1, 0, 0], 252)
    # equity 1.1, 0.88, 0.924
    assert s["total_return"] == pytest.approx(-0.076)
    assert s["annual_return"] == pytest.approx(0.924 ** (252 / 3) - 1)
    # mean -0.05/3; deviations 0.35/3, -0.55/3, 0.2/3 -> variance (ddof 1) 0.465/18
    std = math.sqrt(0.465 / 18)
    assert s["annual_volatility"] == pytest.approx(std * math.sqrt(252))
    assert s["sharpe"] == pytest.approx(-0.05 / 3 / std * math.sqrt(252))
    assert s["sharpe"] == pytest.approx(-1.6461, abs=1e-4)
    assert s["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1)  # -0.2
    assert s["turnover"] == 1.0
    assert s["exposure"] == 1.0
    assert s["periods"] == 3


@pytest.mark.parametrize(("returns", "mdd"), [
    ([-0.1, 0.05], -0.1),                 # the starting capital is the first peak
    ([0.5, -0.5, 0.2], -0.5),             # 1.5 -> 0.75
    ([0.1, -0.1, 0.3, -0.2, 0.1], -0.2),  # peaks 1.1 then 1.287; worst 1.0296/1.287 - 1
    ([0.01, 0.02, 0.0], 0.0),
])
def test_max_drawdown_by_hand(returns, mdd):
    assert performance(returns, [1] * len(returns), [0] * len(returns), 252)["max_drawdown"] \
        == pytest.approx(mdd)


def test_turnover_is_the_total_and_exposure_the_share_in_the_market():
    s = performance([0.0, 0.01, -0.01, 0.02], [1, 0, -1, 1], [1, 1, 1, 2], 12)
    assert s["turnover"] == 5.0
    assert s["exposure"] == 0.75


def test_annual_return_is_geometric():
    # 12 monthly periods at +1% each: exactly 1.01**12 - 1 a year; 24 of them: the same rate
    assert performance([0.01] * 12, [1] * 12, [0] * 12, 12)["annual_return"] == \
        pytest.approx(1.01 ** 12 - 1)
    assert performance([0.01] * 24, [1] * 24, [0] * 24, 12)["annual_return"] == \
        pytest.approx(1.01 ** 12 - 1)


def test_undefined_statistics_are_none_never_nan():
    flat = performance([0.0] * 5, [0] * 5, [0] * 5, 252)
    assert flat["sharpe"] is None and flat["annual_volatility"] == 0.0
    assert flat["total_return"] == 0.0 and flat["annual_return"] == 0.0
    assert flat["max_drawdown"] == 0.0 and flat["exposure"] == 0.0
    const = performance([0.001] * 7, [1] * 7, [1] + [0] * 6, 252)  # no variation: no Sharpe
    assert const["sharpe"] is None and const["annual_volatility"] == 0.0
    one = performance([0.02], [1], [1], 252)
    assert one["sharpe"] is None and one["annual_volatility"] is None
    assert one["total_return"] == pytest.approx(0.02)
    for s in (flat, const, one):
        json.dumps(s, allow_nan=False)


def test_wiped_out_equity():
    # a short through a +150% move loses 150%: equity -0.5
    s = performance([-1.5, 0.1], [-1, -1], [1, 0], 252)
    assert s["annual_return"] == -1.0
    assert s["max_drawdown"] == pytest.approx(-1.55)
    json.dumps(s, allow_nan=False)


def test_performance_rejects_nothing_to_measure():
    with pytest.raises(ValueError, match="at least one period"):
        performance([], [], [], 252)
    with pytest.raises(ValueError, match="periods_per_year"):
        performance([0.1], [1], [1], 0)


# --------------------------------------------------------------------------- strategy by hand


def test_long_only_by_hand():
    r = evaluate_strategy(LAST, FORECAST, ACTUAL, cost_bps=10)
    assert r["positions"].tolist() == [1, 0, 1, 0]
    assert r["turnover"].tolist() == [1, 1, 1, 1]
    assert r["returns_gross"] == pytest.approx([0.02, 0.0, 4 / 101, 0.0])
    assert r["returns_net"] == pytest.approx([0.019, -0.001, 4 / 101 - 0.001, -0.001])
    assert r["costs"] == pytest.approx(0.004)
    assert r["gross"]["total_return"] == pytest.approx(1.02 * 105 / 101 - 1)
    assert r["net"]["total_return"] == pytest.approx(
        1.019 * 0.999 * (105 / 101 - 0.001) * 0.999 - 1)
    assert r["gross"]["exposure"] == 0.5 and r["gross"]["turnover"] == 4.0
    assert r["equity_gross"] == pytest.approx([1.02, 1.02, 1.02 * 105 / 101, 1.02 * 105 / 101])
    assert r["equity_net"][-1] == pytest.approx(1 + r["net"]["total_return"])


def test_short_mode_by_hand():
    r = evaluate_strategy(LAST, FORECAST, ACTUAL, short=True, cost_bps=10)
    assert r["positions"].tolist() == [1, -1, 1, -1]
    assert r["turnover"].tolist() == [1, 2, 2, 2]  # a flip is two units of turnover
    assert r["returns_gross"] == pytest.approx([0.02, 1 / 102, 4 / 101, 1 / 105])
    assert r["costs"] == pytest.approx(0.007)
    assert r["gross"]["exposure"] == 1.0
    assert r["gross"]["max_drawdown"] == 0.0  # every call was right


@pytest.mark.parametrize(("threshold", "short", "expected"), [
    # signals: ln(1.03) = 0.0296, ln(101/102) = -0.00985, ln(101.5/101) = 0.00494,
    #          ln(104/105) = -0.00957
    (0.0, False, [1, 0, 1, 0]),
    (0.005, False, [1, 0, 0, 0]),
    (0.005, True, [1, -1, 0, -1]),
    (0.0096, True, [1, -1, 0, 0]),
    (0.01, True, [1, 0, 0, 0]),
    (0.03, True, [0, 0, 0, 0]),
])
def test_threshold(threshold, short, expected):
    assert trading.positions(LAST, FORECAST, threshold, short).tolist() == expected
    r = evaluate_strategy(LAST, FORECAST, ACTUAL, threshold=threshold, short=short)
    assert r["positions"].tolist() == expected


def test_a_forecast_of_no_change_stays_out():
    assert trading.positions([100.0, 50.0], [100.0, 50.0], short=True).tolist() == [0, 0]


def test_no_look_ahead():
    rng = np.random.default_rng(0)
    p = _random_walk(1, 300)
    last, actual = p[:-1], p[1:]
    forecast = last * np.exp(rng.normal(0, 0.01, 300))
    base = evaluate_strategy(last, forecast, actual, short=True, threshold=0.002)
    # the actual outcome never moves a position
    for k in rng.integers(0, 300, 20):
        changed = actual.copy()
        changed[k] *= rng.choice([0.5, 2.0])
        other = evaluate_strategy(last, forecast, changed, short=True, threshold=0.002)
        assert np.array_equal(other["positions"], base["positions"])
        differs = np.flatnonzero(other["returns_gross"] != base["returns_gross"])
        assert set(differs) <= {k}
    # nor does anything known only after the origin
    for k in rng.integers(1, 300, 20):
        later_last, later_fc = last.copy(), forecast.copy()
        later_last[k:] *= 1.3
        later_fc[k:] *= 0.7
        pos = trading.positions(later_last, later_fc, 0.002, True)
        assert np.array_equal(pos[:k], base["positions"][:k])


def test_net_is_gross_minus_exactly_the_costs_paid():
    p = _random_walk(2, 500)
    rng = np.random.default_rng(2)
    forecast = p[:-1] * np.exp(rng.normal(0, 0.01, 500))
    r = evaluate_strategy(p[:-1], forecast, p[1:], short=True, cost_bps=7.5)
    paid = r["turnover"] * 7.5 / 1e4
    assert np.allclose(r["returns_gross"] - r["returns_net"], paid, rtol=0, atol=1e-15)
    assert r["costs"] == pytest.approx(paid.sum())
    assert r["net"]["turnover"] == r["gross"]["turnover"] == pytest.approx(r["turnover"].sum())
    assert r["net"]["total_return"] < r["gross"]["total_return"]
    free = evaluate_strategy(p[:-1], forecast, p[1:], short=True, cost_bps=0)
    assert free["net"] == free["gross"]
    assert np.array_equal(free["equity_net"], free["equity_gross"])
    assert free["costs"] == 0.0


def test_buy_and_hold_is_the_price_ratio():
    p = np.array([100.0, 102.0, 101.0, 105.0, 104.0])
    r = buy_and_hold(p[:-1], p[1:], 252, cost_bps=5)
    assert r["positions"].tolist() == [1, 1, 1, 1]
    assert r["turnover"].tolist() == [1, 0, 0, 0]  # one entry, never an exit
    assert r["gross"]["total_return"] == pytest.approx(104 / 100 - 1)
    assert r["net"]["total_return"] == pytest.approx((1.02 - 0.0005) * 104 / 102 - 1)
    assert r["costs"] == pytest.approx(0.0005)
    long = _random_walk(3, 1000)
    assert buy_and_hold(long[:-1], long[1:])["gross"]["total_return"] == \
        pytest.approx(long[-1] / long[0] - 1)
    # buy-and-hold is what an always-up forecast earns
    up = evaluate_strategy(long[:-1], long[:-1] * 1.01, long[1:])
    assert up["net"] == buy_and_hold(long[:-1], long[1:])["net"]


# --------------------------------------------------------------------------- behaviour


def test_perfect_foresight_earns():
    p = _random_walk(4, 1000)
    long_only = evaluate_strategy(p[:-1], p[1:], p[1:])
    assert (long_only["returns_gross"] >= 0).all()
    assert long_only["gross"]["sharpe"] > 5 and long_only["net"]["sharpe"] > 5
    assert long_only["gross"]["max_drawdown"] == 0.0
    both = evaluate_strategy(p[:-1], p[1:], p[1:], short=True)
    assert both["gross"]["sharpe"] > long_only["gross"]["sharpe"]


def test_oracle_on_ar1_returns_has_a_clearly_positive_sharpe():
    rng = np.random.default_rng(5)
    n, phi = 2000, 0.5
    r = np.zeros(n + 1)
    for t in range(1, n + 1):
        r[t] = phi * r[t - 1] + rng.normal(0, 0.01)
    p = 100.0 * np.exp(np.cumsum(r))
    last, actual = p[:-1], p[1:]
    forecast = last * np.exp(phi * r[:-1])  # E[r_{t+1} | r_t]: known at the origin
    res = evaluate_strategy(last, forecast, actual, short=True)
    assert res["gross"]["sharpe"] > 3
    assert res["gross"]["total_return"] > 0
    # against the noise alone (a shuffled forecast) there is nothing
    shuffled = evaluate_strategy(last, rng.permutation(forecast / last) * last, actual, short=True)
    assert abs(shuffled["gross"]["sharpe"]) < 1.5


def test_random_forecast_on_a_random_walk_earns_nothing():
    gross, net = [], []
    for seed in range(20):
        p = _random_walk(100 + seed, 2520)  # ten years of days
        rng = np.random.default_rng(200 + seed)
        forecast = p[:-1] * np.exp(rng.normal(0, 0.01, 2520))
        r = evaluate_strategy(p[:-1], forecast, p[1:], short=True)
        gross.append(r["gross"]["sharpe"])
        net.append(r["net"]["sharpe"])
    assert abs(np.mean(gross)) < 0.3  # the standard error of one ten-year Sharpe is ~0.32
    assert max(abs(g) for g in gross) < 1.5
    assert np.mean(net) < np.mean(gross) - 0.3  # ~1 unit of turnover a day at 5 bps costs


def test_results_are_json_friendly():
    r = evaluate_strategy(LAST, FORECAST, ACTUAL)
    for key in ("gross", "net"):
        text = json.dumps(r[key], allow_nan=False)
        assert json.loads(text) == r[key]
        assert all(v is None or type(v) in (float, int) for v in r[key].values())
    assert type(r["costs"]) is float


# --------------------------------------------------------------------------- intervals, validation


@pytest.mark.parametrize(("interval", "ppy"), [
    ("1d", 252), ("5d", 50.4), ("1wk", 52), ("1mo", 12), ("3mo", 4),
    ("1h", 6.5 * 252), ("60m", 6.5 * 252), ("30m", 13 * 252), ("1m", 390 * 252),
])
def test_periods_per_year(interval, ppy):
    assert trading.periods_per_year(interval) == pytest.approx(ppy)


def test_unknown_interval_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown interval '2d'; valid: .*1d.*1wk"):
        trading.periods_per_year("2d")


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (([100.0, 101.0], [101.0], [102.0, 100.0]), {}, "same length"),
    (([100.0, 0.0], [101.0, 99.0], [102.0, 100.0]), {}, "`last` must hold finite prices > 0"),
    (([100.0, 101.0], [101.0, np.nan], [102.0, 100.0]), {}, "`forecast`.*first at index 1: nan"),
    (([100.0, 101.0], [101.0, 99.0], [-1.0, 100.0]), {}, "`actual` must hold finite prices"),
    (([], [], []), {}, "non-empty 1-D"),
    (([[100.0]], [[101.0]], [[102.0]]), {}, "non-empty 1-D"),
    ((LAST, FORECAST, ACTUAL), {"threshold": -0.01}, "threshold` must be >= 0"),
    ((LAST, FORECAST, ACTUAL), {"cost_bps": -1}, "cost_bps` must be >= 0"),
])
def test_bad_input_is_a_clear_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate_strategy(*args, **kwargs)
