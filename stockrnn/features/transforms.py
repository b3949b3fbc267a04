"""Target transforms and scalers, fitted on the training rows only, JSON round-trippable.

``level``      the lectures' recipe: inputs and target are scaled prices.
``log_return`` inputs are scaled one-bar log returns of each price feature; the target of step k is the
               log return from the last observed price, ``log(P[t+1+f+k] / P[t])``, divided by the
               training split's standard deviation of one-bar log returns. Inverse:
               ``P[t] * exp(y * scale)``, so predicting 0 is exactly the persistence forecast.

Covariate tickers (``cov:<TICKER>`` columns) always enter as one-bar log returns; indicators
and calendar features as they are; then every input column is scaled by the one scaler.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from stockrnn.errors import DataError


@dataclasses.dataclass(frozen=True)
class Scaler:
    kind: str               # minmax | standard
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, names: list[str]) -> Scaler:
        """Fit on ``x`` (rows, features) — the training rows and nothing else. Rows with a
        non-finite value are skipped.

        The arithmetic of scikit-learn's ``MinMaxScaler`` (``data_min_``, ``data_range_``) and
        ``StandardScaler`` (``mean_``, ``scale_``: the corrected two-pass variance of its
        ``_incremental_mean_and_var``), written out in NumPy: the same bits (tests/
        test_transforms.py compares them), without importing scikit-learn, which took 1.5 s
        of every fresh process that prepares a dataset (a fifth of a smoke run)."""
        x = np.asarray(x, dtype="float64")
        x = x[np.isfinite(x).all(axis=1)]
        if len(x) < 2:
            raise DataError("not enough training rows to fit the scaler (need at least 2)")
        if kind == "minmax":
            offset = x.min(axis=0)
            scale = x.max(axis=0) - offset
        else:
            n = float(len(x))
            offset = x.sum(axis=0) / n
            centred = x - offset
            correction = centred.sum(axis=0)
            scale = np.sqrt((np.square(centred).sum(axis=0) - correction ** 2 / n) / n)
        for name, s in zip(names, scale, strict=True):
            if not s > 1e-12:
                from stockrnn.features.covariates import config_key

                raise DataError(f"column {name} is constant on the training split (zero scale); "
                                f"it cannot be scaled: drop it from {config_key(name)}")
        return cls(kind, tuple(map(float, offset)), tuple(map(float, scale)))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.offset)) / np.asarray(self.scale)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * np.asarray(self.scale) + np.asarray(self.offset)


@dataclasses.dataclass(frozen=True)
class Transform:
    kind: str                       # level | log_return
    features: tuple[str, ...]
    target: str
    scaler: Scaler                  # inputs
    target_offset: float
    target_scale: float
    first_valid_row: int = -1       # first row whose inputs are all defined (-1: from kind)

    def __post_init__(self):
        if self.first_valid_row < 0:  # runs saved before covariates: 1 for log returns
            object.__setattr__(self, "first_valid_row", 1 if self.kind == "log_return" else 0)

    @classmethod
    def fit(cls, kind: str, scaler_kind: str, features: list[str], target: str,
            values: np.ndarray, target_prices: np.ndarray, train_end: int) -> Transform:
        raw = raw_inputs(kind, values, features)
        first = first_valid(raw, features)
        scaler = Scaler.fit(scaler_kind, raw[first:train_end], list(features))
        tp = target_prices[:train_end]
        if kind == "level":
            t_scaler = Scaler.fit(scaler_kind, tp[:, None], [target])
            offset, scale = t_scaler.offset[0], t_scaler.scale[0]
        else:
            r = np.diff(np.log(tp))
            scale = float(np.std(r))
            if not scale > 1e-12:
                raise DataError(f"column {target} is constant on the training split")
            offset = 0.0
        return cls(kind, tuple(features), target, scaler, float(offset), float(scale), first)

    def inputs(self, values: np.ndarray) -> np.ndarray:
        """Scaled model inputs for every row (NaN before ``first_valid_row``), float32."""
        return self.scaler.transform(raw_inputs(self.kind, values, self.features)).astype("float32")

    def target_base(self, target_prices: np.ndarray) -> np.ndarray:
        """Per-row value whose window differences/levels give the scaled targets."""
        if self.kind == "level":
            return (target_prices - self.target_offset) / self.target_scale
        return np.log(target_prices) / self.target_scale

    def target_reference(self, base_at_anchor: np.ndarray) -> np.ndarray:
        return base_at_anchor if self.kind == "log_return" else np.zeros_like(base_at_anchor)

    def invert(self, y: np.ndarray, last_price: np.ndarray) -> np.ndarray:
        """Model outputs (n, horizon) -> prices, given the last observed price of each sample."""
        y = np.asarray(y, dtype="float64")
        if self.kind == "level":
            return y * self.target_scale + self.target_offset
        return np.asarray(last_price, dtype="float64")[:, None] * np.exp(y * self.target_scale)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transform:
        s = d["scaler"]
        return cls(d["kind"], tuple(d["features"]), d["target"],
                   Scaler(s["kind"], tuple(s["offset"]), tuple(s["scale"])),
                   float(d["target_offset"]), float(d["target_scale"]),
                   int(d.get("first_valid_row", -1)))


PRICES = ("Open", "High", "Low", "Close")


def raw_inputs(kind: str, values: np.ndarray, features) -> np.ndarray:
    """Per column: a price feature's level or one-bar log return (``kind``), Volume's log1p
    difference (log_return), a covariate ticker's log return (always), anything else as is."""
    from stockrnn.features.covariates import PREFIX

    values = np.asarray(values, dtype="float64")
    out = values.copy()
    for j, name in enumerate(features):
        if name.startswith(PREFIX) or (kind == "log_return" and name in PRICES):
            log = np.log(values[:, j])
        elif kind == "log_return" and name == "Volume":
            log = np.log1p(values[:, j])
        else:
            continue
        out[0, j] = np.nan
        out[1:, j] = np.diff(log)
    return out


def first_valid(raw: np.ndarray, features) -> int:
    """The first row from which every input is defined (the warm-up of log returns and
    indicators before it); DataError when an input is undefined later on."""
    ok = np.isfinite(raw)
    first = int(max((np.argmax(ok[:, j]) if ok[:, j].any() else len(raw))
                    for j in range(raw.shape[1]))) if raw.size else 0
    bad = ~ok[first:].all(axis=1)
    if bad.any():
        j = int(np.flatnonzero(~ok[first:][np.argmax(bad)])[0])
        raise DataError(f"input {features[j]} is undefined on row {first + int(np.argmax(bad))} "
                        "after its warm-up (a zero or missing price?)")
    return first
