"""stockrnn.significance: Diebold-Mariano (HLN-corrected) against hand and loop computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stockrnn import metrics, significance
from stockrnn.significance import DMResult, diebold_mariano, long_run_variance, verdict


def _t4_p(t: float) -> float:
    """Two-sided p of Student's t with 4 df from its closed-form CDF (independent of scipy)."""
    x = abs(t)
    u = x / math.sqrt(1 + x * x / 4)
    cdf = 0.5 + 3 / 8 * u * (1 - x * x / (12 * (1 + x * x / 4)))
    return 2 * (1 - cdf)


def _dm_loop(e1, e2, h: int, power: float) -> float:
    """The HLN-corrected DM statistic written out with plain loops."""
    d = [abs(a) ** power - abs(b) ** power for a, b in zip(e1, e2, strict=True)]
    n = len(d)
    mean = sum(d) / n
    gamma = []
    for k in range(h):
        s = 0.0
        for t in range(k, n):
            s += (d[t] - mean) * (d[t - k] - mean)
        gamma.append(s / n)
    v = gamma[0] + 2 * sum(gamma[1:])
    if v <= 0:
        v = gamma[0] + 2 * sum((1 - k / h) * gamma[k] for k in range(1, h))
    return mean / math.sqrt(v / n) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)


# Absolute errors chosen so that d = |model| - |ref| = [1, -1, 2, 0, 3]:
# mean 1, deviations [0, -2, 1, -1, 2], gamma_0 = 10/5 = 2, gamma_1 = (0 - 2 - 1 - 2)/5 = -1.
MODEL = np.array([2.0, -1.0, 3.0, -2.0, 4.0])
REF = np.array([1.0, 2.0, -1.0, 2.0, 1.0])


# --------------------------------------------------------------------------- by hand


def test_horizon_1_by_hand():
    # DM = 1 / sqrt(2/5) = sqrt(5/2); HLN factor sqrt((5 + 1 - 2)/5) = sqrt(4/5) -> DM* = sqrt(2)
    r = diebold_mariano(MODEL, REF)
    assert r.statistic == pytest.approx(math.sqrt(2))
    assert r.mean_difference == pytest.approx(1.0)
    assert r.n == 5
    assert r.p_value == pytest.approx(_t4_p(math.sqrt(2)))
    assert r.p_value == pytest.approx(0.2302, abs=1e-4)


def test_horizon_2_falls_back_to_bartlett_by_hand():
    # rectangular: V = 2 + 2(-1) = 0, not positive -> Bartlett: V = 2 + 2(1 - 1/2)(-1) = 1
    assert long_run_variance(np.abs(MODEL) - np.abs(REF), 2) == pytest.approx(1.0)
    # DM = 1 / sqrt(1/5) = sqrt(5); HLN factor sqrt((5 + 1 - 4 + 2/5)/5) = sqrt(0.48)
    r = diebold_mariano(MODEL, REF, horizon=2)
    assert r.statistic == pytest.approx(math.sqrt(2.4))
    assert r.p_value == pytest.approx(_t4_p(math.sqrt(2.4)))


def test_long_run_variance_rectangular_by_hand():
    # d = [1, 2, 3, 2, 1]: mean 1.8, gamma_0 = 2.8/5 = 0.56, gamma_1 = 0.16/5 = 0.032
    assert long_run_variance([1, 2, 3, 2, 1], 1) == pytest.approx(0.56)
    assert long_run_variance([1, 2, 3, 2, 1], 2) == pytest.approx(0.56 + 2 * 0.032)


def test_squared_loss_by_hand():
    # power 2: d = [4-1, 1-4, 9-1, 4-4, 16-1] = [3, -3, 8, 0, 15], mean 4.6
    d = np.array([3.0, -3.0, 8.0, 0.0, 15.0])
    dm = d.mean() / math.sqrt(np.mean((d - d.mean()) ** 2) / 5) * math.sqrt(4 / 5)
    r = diebold_mariano(MODEL, REF, power=2)
    assert r.mean_difference == pytest.approx(4.6)
    assert r.statistic == pytest.approx(dm)


@pytest.mark.parametrize("h", [1, 2, 3, 5])
@pytest.mark.parametrize("power", [1, 2, 1.5])
def test_matches_a_plain_loop(h, power):
    rng = np.random.default_rng(h * 10 + int(power * 2))
    e1, e2 = rng.normal(0, 1.0, 60), rng.normal(0, 1.1, 60)
    r = diebold_mariano(e1, e2, horizon=h, power=power)
    stat = _dm_loop(e1.tolist(), e2.tolist(), h, power)
    assert r.statistic == pytest.approx(stat, rel=1e-10)
    from scipy.stats import t

    assert r.p_value == pytest.approx(2 * t.sf(abs(stat), 59), rel=1e-10)


def test_swapping_model_and_reference_flips_the_sign_only():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=80), rng.normal(size=80) * 1.2
    ab, ba = diebold_mariano(a, b, horizon=2), diebold_mariano(b, a, horizon=2)
    assert ab.statistic == pytest.approx(-ba.statistic)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.mean_difference == pytest.approx(-ba.mean_difference)


def test_only_the_size_of_errors_matters():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=50), rng.normal(size=50)
    signs = rng.choice([-1.0, 1.0], size=50)
    assert diebold_mariano(a * signs, b) == diebold_mariano(a, b)


# --------------------------------------------------------------------------- behaviour


def test_identical_errors_give_p_1():
    e = np.random.default_rng(0).normal(size=100)
    r = diebold_mariano(e, e)
    assert r == DMResult(0.0, 1.0, 100, 0.0)
    assert diebold_mariano(e, -e, horizon=3).p_value == 1.0  # same sizes


def test_constant_nonzero_differential_is_degenerate():
    e = np.random.default_rng(1).normal(size=30)
    r = diebold_mariano(np.abs(e) + 0.5, e)  # d = 0.5 at every point: zero variance
    assert math.isnan(r.statistic)
    assert r.p_value == 1.0
    assert r.mean_difference == pytest.approx(0.5)
    assert r.to_dict()["statistic"] is None


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_points(n):
    r = diebold_mariano([2.0] * n, [1.0] * n)
    assert r.p_value == 1.0 and r.n == n
    assert (n == 0 and r.statistic == 0.0) or math.isnan(r.statistic)


def test_horizon_not_below_n_is_degenerate():
    r = diebold_mariano([1.0, 2.0, 0.5], [0.5, 0.1, 2.0], horizon=3)
    assert r.p_value == 1.0 and math.isnan(r.statistic)


def test_clearly_smaller_errors_are_detected():
    rng = np.random.default_rng(42)
    model, ref = rng.normal(0, 0.8, 500), rng.normal(0, 1.2, 500)
    r = diebold_mariano(model, ref)
    assert r.statistic < 0 and r.p_value < 0.01
    assert verdict(r).startswith("better than persistence (p ")
    worse = diebold_mariano(ref, model)
    assert worse.statistic > 0 and worse.p_value < 0.01
    assert verdict(worse, reference="drift").startswith("worse than drift (p ")


def test_size_under_the_null_is_about_alpha():
    # two iid error series from one distribution: p should be ~uniform, rejecting ~5% at 5%
    ps = []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        ps.append(diebold_mariano(rng.normal(size=250), rng.normal(size=250)).p_value)
    ps = np.array(ps)
    assert 0.01 <= np.mean(ps < 0.05) <= 0.10
    assert 0.15 <= np.mean(ps < 0.25) <= 0.35
    assert 0.4 <= np.median(ps) <= 0.6


def test_horizon_uses_the_autocovariances_of_an_ma_differential():
    # d_t = u_t + 0.8 u_{t-1} + 0.5 u_{t-2}: long-run variance (1 + 0.8 + 0.5)^2 = 5.29,
    # while gamma_0 alone is 1 + 0.64 + 0.25 = 1.89
    u = np.random.default_rng(7).normal(size=20_002)
    d = u[2:] + 0.8 * u[1:-1] + 0.5 * u[:-2]
    v1, v3 = long_run_variance(d, 1), long_run_variance(d, 3)
    assert v1 == pytest.approx(1.89, rel=0.05)
    assert v3 == pytest.approx(5.29, rel=0.08)
    # as losses: a positive mean differential is less significant once the overlap is counted
    ref = np.ones_like(d) * 10.0
    model = ref + 0.03 + d
    r1, r3 = diebold_mariano(model, ref, 1), diebold_mariano(model, ref, 3)
    assert r1.mean_difference == r3.mean_difference
    assert 0 < r3.statistic < r1.statistic
    assert r3.statistic / r1.statistic == pytest.approx(math.sqrt(v1 / v3), rel=1e-3)
    assert r3.p_value > r1.p_value


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("model", "ref", "kwargs", "match"), [
    ([1.0, 2.0, 3.0], [1.0, 2.0], {}, "same length. Received: 3 and 2"),
    ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], {}, "errors_model` has 1 NaN or infinite value.*index 1"),
    ([1.0, 2.0, 3.0], [1.0, 2.0, np.inf], {}, "errors_ref` has 1 NaN"),
    ([[1.0, 2.0]], [[1.0, 2.0]], {}, "must be 1-D"),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], {"horizon": 0}, "horizon` must be an integer >= 1"),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], {"horizon": 1.5}, "horizon=1.5"),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], {"horizon": True}, "horizon=True"),
    ([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], {"power": 0}, "power` must be > 0"),
])
def test_bad_input_is_a_clear_value_error(model, ref, kwargs, match):
    with pytest.raises(ValueError, match=match):
        diebold_mariano(model, ref, **kwargs)


def test_numpy_integer_horizon_is_accepted():
    assert diebold_mariano(MODEL, REF, horizon=np.int64(2)) == diebold_mariano(MODEL, REF, 2)


# --------------------------------------------------------------------------- verdict, direction


@pytest.mark.parametrize(("p", "mean", "text"), [
    (0.003, -1.0, "better than persistence (p = 0.003)"),
    (0.0456, -1.0, "better than persistence (p = 0.046)"),
    (0.0004, 2.0, "worse than persistence (p < 0.001)"),
    (0.41, -1.0, "not distinguishable from persistence (p = 0.41)"),
    (0.05, -1.0, "not distinguishable from persistence (p = 0.05)"),
    (1.0, 0.0, "not distinguishable from persistence (p = 1.00)"),
])
def test_verdict_text(p, mean, text):
    assert verdict(DMResult(-2.0 if mean < 0 else 2.0, p, 100, mean)) == text


def test_verdict_alpha_and_reference():
    r = DMResult(-2.0, 0.03, 100, -0.1)
    assert verdict(r, alpha=0.01) == "not distinguishable from persistence (p = 0.03)"
    assert verdict(r, reference="ETS") == "better than ETS (p = 0.03)"


def test_direction_test_reuses_metrics():
    assert significance.binomial_p_value is metrics.binomial_p_value
    assert significance.direction_test(60, 100) == metrics.binomial_p_value(60, 100)
    assert significance.direction_test(0, 0) is None
    with pytest.raises(ValueError, match="between 0 and n"):
        significance.direction_test(5, 3)


def test_result_is_json_friendly_and_frozen():
    r = diebold_mariano(MODEL, REF)
    assert json.loads(json.dumps(r.to_dict())) == r.to_dict()
    assert all(type(v) in (float, int) for v in r.to_dict().values())
    with pytest.raises(AttributeError):
        r.p_value = 0.0  # type: ignore[misc]
