"""AutoARIMA and AutoETS (statsforecast) as baselines, on log prices.

Each model is fitted once, on the log prices of the training rows only (the rows whose
targets train the network; per fold in a backtest), with ``season_length=1``. Its parameters
then stay fixed: the forecast from an origin is the fitted model run over the log prices up
to that origin, and nothing after it, forecasting the bars ``1 + foresight .. foresight +
horizon`` ahead (``exp`` of the log forecast, so in price units like every other baseline).

Running the fixed model over every origin's history is one pass over the series, not one
``forward`` per origin: AutoETS's states come from statsforecast's own state recursion over the
whole series (a state at a row depends only on the rows up to it) and its forecasts from its
own forecast function, so they equal ``forward``'s. AutoARIMA's innovations come from the
ARMA recursion with the fitted coefficients started at zero on the first row (the conditional,
CSS form; ``scipy.signal.lfilter``), its forecasts from the usual recursion with future
innovations at zero. ``forward`` runs the exact Kalman filter instead; the two differ only by
the filter's start-up, which dies out geometrically with the MA roots: to 1e-15 on the
synthetic series of tests/test_classical.py, about 3e-6 of the price at the first validation
origin of the GOOG sample, whose fit has an MA root of 0.993.

``prefetch`` starts the forecasts in a forked child process (``forked``) ahead of need, where
that is safe: ``run`` does so after ``prepare``, before it imports TensorFlow.

statsforecast is the optional extra ``stockrnn[stats]``. Without it, or when a fit or a
forecast fails on odd data, the baseline is left out with a note (logged, and returned for the
metrics' ``notes``), never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import sys
import warnings

import numpy as np

from stockrnn import forked

log = logging.getLogger(__name__)
NAMES = ("auto_arima", "auto_ets")
LABELS = {"auto_arima": "AutoARIMA", "auto_ets": "AutoETS"}
NOT_INSTALLED = ("AutoARIMA and AutoETS baselines left out: statsforecast is not installed "
                 "(pip install 'stockrnn[stats]')")
_CACHE_SIZE = 64
_fits: dict[tuple[str, str], object] = {}   # (name, hash of the training log prices) -> model
_told = False


def _import():
    """``statsforecast.models`` and ``statsforecast.ets`` (raises when not importable)."""
    from statsforecast import ets, models

    return models, ets


def _statsforecast():
    """``_import()``, or None when not installed (said once per process)."""
    global _told
    try:
        return _import()
    except Exception as exc:  # ImportError, or a broken install
        if not _told:
            log.info("%s (%s)", NOT_INSTALLED, exc)
            _told = True
        return None


def available() -> bool:
    return _statsforecast() is not None


def preload() -> None:
    """Import statsforecast's models now when it is installed (a fork server's preload,
    ``stockrnn.preload``); nothing is said when it is missing or broken: the job that needs
    it says so, as in any process."""
    if importlib.util.find_spec("statsforecast") is not None:
        with contextlib.suppress(Exception):
            _import()


def forecasts(prices: np.ndarray, train_end: int, anchors: np.ndarray, steps: np.ndarray,
              names: tuple[str, ...] = NAMES) -> tuple[dict[str, np.ndarray], list[str]]:
    """AutoARIMA and AutoETS forecasts in price units, ``{name: (len(anchors), len(steps))}``,
    and notes on what was left out.

    ``prices``: every row's price; the models are fitted on ``log(prices[:train_end])``.
    ``anchors``: the row of each origin; a forecast from ``a`` sees ``prices[:a + 1]`` only.
    ``steps``: the bars ahead of the origin each column forecasts (1 is the next row).
    ``names``: which of ``NAMES`` to forecast with.
    When ``prefetch`` started them with the same arguments, the child's forecasts are taken."""
    args, key = request(prices, train_end, anchors, steps, names)
    got = forked.result(key)
    out, notes, failed = got if got is not None else _forecasts(*args)
    for note in failed:
        log.warning("%s", note)
    return out, notes


def prefetch(prices: np.ndarray, train_end: int, anchors: np.ndarray, steps: np.ndarray,
             names: tuple[str, ...] = NAMES) -> bool:
    """Start ``forecasts`` of these arguments in a forked child process (``forked``), where
    statsforecast is installed and not imported yet: its import (1-2 s) and the fits then run
    beside this process's own work. Whether it started."""
    if "statsforecast" in sys.modules or importlib.util.find_spec("statsforecast") is None:
        return False
    args, key = request(prices, train_end, anchors, steps, names)
    _, _, origins, _, _ = args
    return len(origins) > 0 and forked.start(key, _forecasts, *args)


def request(prices, train_end: int, anchors, steps, names: tuple[str, ...] = NAMES
            ) -> tuple[tuple, str]:
    """``forecasts``' arguments as its work takes them (prices up to the last anchor, nothing
    later), and the key a prefetched result of them is found by: two calls with the same key
    forecast the same."""
    anchors = np.asarray(anchors, dtype=int)
    steps = np.asarray(steps, dtype=int)
    upto = int(anchors.max()) + 1 if len(anchors) else 0
    prices = np.asarray(prices, dtype="float64")[:upto]
    h = hashlib.sha256(f"{train_end}|{','.join(names)}".encode())
    for a in (prices, anchors, steps):
        h.update(np.ascontiguousarray(a).tobytes() + b"|")
    return (prices, train_end, anchors, steps, names), h.hexdigest()


def _forecasts(prices, train_end, anchors, steps, names):
    """``forecasts``' work on its checked inputs: (forecasts, notes, the notes to log as
    warnings)."""
    sf = _statsforecast()
    if sf is None:
        return {}, [NOT_INSTALLED], []
    if len(anchors) == 0:
        return {}, [], []
    out, notes, failed = {}, [], []
    if not (np.all(np.isfinite(prices)) and np.all(prices > 0)):
        for name in names:
            notes.append(f"{LABELS[name]} baseline left out: the prices are not all positive "
                         "and finite (it forecasts log prices)")
        return out, notes, failed
    logp = np.log(prices)
    train = logp[:train_end]
    for name in names:
        try:
            model = _fit(sf, name, train)
            f = (_arima if name == "auto_arima" else _ets)(sf, model, logp, anchors, steps)
            with np.errstate(all="ignore"):  # relative to the origin's price, so "no change"
                f = prices[anchors][:, None] * np.exp(f - logp[anchors][:, None])  # is exact
            if not np.all(np.isfinite(f)):
                raise ValueError("its forecasts are not finite")
            out[name] = f
        except Exception as exc:  # statsforecast raises many kinds on odd data
            note = (f"{LABELS[name]} baseline left out: it failed on {train_end} training rows "
                    f"({type(exc).__name__}: {exc})")
            notes.append(note)
            failed.append(note)
    return out, notes, failed


def fitted(name: str, train_log_prices: np.ndarray):
    """The statsforecast model ``name`` fitted on these log prices (cached), for tests and
    inspection; None without statsforecast."""
    sf = _statsforecast()
    return None if sf is None else _fit(sf, name, np.asarray(train_log_prices, dtype="float64"))


def _fit(sf, name: str, train: np.ndarray):
    key = (name, hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest())
    if key in _fits:
        return _fits[key]
    models, _ = sf
    cls = models.AutoARIMA if name == "auto_arima" else models.AutoETS
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        model = cls(season_length=1).fit(train)
    if len(_fits) >= _CACHE_SIZE:
        _fits.pop(next(iter(_fits)))
    _fits[key] = model
    return model


# --------------------------------------------------------------------------- AutoARIMA


def _arima(sf, model, logp: np.ndarray, anchors: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Log forecasts of the fitted ARIMA(p, d, q) (+ intercept/drift) from every anchor."""
    from scipy.signal import lfilter

    p, q, sp, sq, _, d, sd = (int(v) for v in model.model_["arma"])
    coef = dict(model.model_["coef"])
    ar = np.array([coef.pop(f"ar{i}") for i in range(1, p + 1)], dtype="float64")
    ma = np.array([coef.pop(f"ma{i}") for i in range(1, q + 1)], dtype="float64")
    intercept, drift = float(coef.pop("intercept", 0.0)), float(coef.pop("drift", 0.0))
    if sp or sq or sd or coef:
        raise ValueError(f"unexpected terms in the fitted model: {model.model_['arma']}, "
                         f"{sorted(coef)}")
    n = len(logp)
    rows = np.arange(n + int(steps.max()))
    xb = intercept + drift * (rows + 1.0)          # statsforecast's drift regressor is 1..n
    u = logp - xb[:n]
    diffs = [u]                                    # diffs[j][r - j] = (1 - B)^j u at row r
    for _ in range(d):
        diffs.append(np.diff(diffs[-1]))
    w = diffs[d]
    e = lfilter(np.r_[1.0, -ar], np.r_[1.0, ma], w)   # phi(B) w = theta(B) e, zero start

    def at(series: np.ndarray, r: np.ndarray) -> np.ndarray:  # by row, for lag j of diff d
        return series[r - d]

    k_max = int(steps.max())
    wf = np.empty((len(anchors), k_max))
    for k in range(k_max):                         # forecast of row a + 1 + k
        val = np.zeros(len(anchors))
        for i in range(p):                         # lag i + 1: row a + k - i
            val += ar[i] * (wf[:, k - i - 1] if k - i - 1 >= 0 else at(w, anchors + k - i))
        for j in range(k, q):                      # lag j + 1 still observed: row a + k - j
            val += ma[j] * at(e, anchors + k - j)
        wf[:, k] = val
    f = wf
    for j in range(d - 1, -1, -1):                 # integrate back to u
        f = diffs[j][anchors - j][:, None] + np.cumsum(f, axis=1)
    f = f + xb[anchors[:, None] + 1 + np.arange(k_max)[None, :]]
    return f[:, steps - 1]


# --------------------------------------------------------------------------- AutoETS


def _ets(sf, model, logp: np.ndarray, anchors: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Log forecasts of the fitted ETS model from every anchor: its states over the whole
    series (the state after row ``a`` has seen rows up to ``a`` only), forecast from each."""
    _, ets = sf
    fit = model.model_
    with np.errstate(all="ignore"):
        states = ets.forward_ets(fit, logp)["states"]   # (n + 1, nstate): row a + 1 is after a
    k_max = int(steps.max())
    out = np.empty((len(anchors), k_max))
    for i, a in enumerate(anchors):
        out[i] = ets.pegelsfcast_C(k_max, {**fit, "states": states[a + 1][None, :]})
    return out[:, steps - 1]
