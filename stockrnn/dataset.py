"""The prepared dataset: chronological split, train-only scaling, windows per split.

``build(frame, cfg)`` is deterministic, so ``evaluate`` and ``predict`` rebuild exactly the same
windows from the price rows a run saved. ``save`` writes the artifact ``prepare`` leaves:
``<data_dir>/prepared/<TICKER>_<interval>-<config hash>.npz`` plus a ``.json`` of metadata;
``load`` returns it only when it was built from the same config and the same price rows, and
``current`` loads it or builds (and saves) it anew, so ``prepare`` then ``train`` builds the
windows once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from stockrnn import atomic, locking, tickers
from stockrnn.config import Config
from stockrnn.data.store import Store
from stockrnn.errors import DataError
from stockrnn.features import covariates
from stockrnn.features.transforms import Transform, first_valid, raw_inputs
from stockrnn.features.windows import anchor_range, input_windows, split_bounds, target_windows

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Split:
    name: str
    rows: tuple[int, int]       # [start, end) rows whose targets belong to this split
    anchors: np.ndarray         # row index of each sample's last input
    x: np.ndarray               # (n, look_back, features) float32
    y: np.ndarray               # (n, horizon) float32, scaled targets

    def __len__(self) -> int:
        return len(self.anchors)


@dataclasses.dataclass
class Dataset:
    frame: pd.DataFrame         # the rows used, Date index
    transform: Transform
    splits: dict[str, Split]
    foresight: int
    horizon: int
    look_back: int

    @functools.cached_property
    def data_hash(self) -> str:
        """Hash of the price rows used (what a prepared dataset and a run are checked by)."""
        return frame_hash(self.frame)

    @property
    def target_prices(self) -> np.ndarray:
        return self.frame[self.transform.target].to_numpy(dtype="float64")

    def last_prices(self, split: str) -> np.ndarray:
        return self.target_prices[self.splits[split].anchors]

    def actual_prices(self, split: str) -> np.ndarray:
        """(n, horizon) true prices at the target rows of each sample."""
        a = self.splits[split].anchors
        rows = a[:, None] + 1 + self.foresight + np.arange(self.horizon)[None, :]
        return self.target_prices[rows]

    def target_dates(self, split: str) -> pd.DatetimeIndex:
        """Date of each sample's first target row."""
        return self.frame.index[self.splits[split].anchors + 1 + self.foresight]

    def meta(self) -> dict:
        idx = self.frame.index
        out = {"rows": len(self.frame), "first": str(idx[0].date()), "last": str(idx[-1].date()),
               "data_hash": self.data_hash, "splits": {}}
        for name, s in self.splits.items():
            out["splits"][name] = {"rows": list(s.rows), "samples": len(s),
                                   "first": str(idx[s.rows[0]].date()),
                                   "last": str(idx[s.rows[1] - 1].date())}
        return out


def select(frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The columns and dates the config uses (covariate tickers already attached, see
    ``covariates.attach``); NaNs in them are an error, not silently dropped."""
    d = cfg.data
    cols = covariates.frame_columns(cfg)
    missing = [c for c in cols if c not in frame.columns]
    unattached = [c for c in missing if c.startswith(covariates.PREFIX)]
    if unattached:
        raise DataError(f"{d.ticker}: the covariates {', '.join(unattached)} are not attached "
                        "to these prices")
    if missing:
        raise DataError(f"{d.ticker}: stored data has no column {', '.join(missing)} "
                        f"(has {', '.join(frame.columns)}); change data.features/data.target")
    out = frame[cols]
    if d.start is not None:
        out = out[out.index >= pd.Timestamp(d.start)]
    if d.end is not None:
        out = out[out.index <= pd.Timestamp(d.end)]
    nan_rows = out.isna().any(axis=1)
    if nan_rows.any():
        col = out.columns[out.isna().any()].tolist()
        raise DataError(f"{d.ticker}: {int(nan_rows.sum())} rows have NaN in {', '.join(col)} "
                        f"(first on {out.index[nan_rows.to_numpy()][0].date()}); "
                        "choose other data.features or clean the data")
    return out


def build(frame: pd.DataFrame, cfg: Config, bounds: dict[str, tuple[int, int]] | None = None,
          transform: Transform | None = None) -> Dataset:
    """Split ``frame`` chronologically, fit the transform on the training rows only, and cut
    every split's windows.

    ``bounds`` gives each split's target rows ``[start, end)`` (default: the config's split
    fractions; a backtest fold passes its own, a run records them in meta.json). ``transform``
    is an already fitted transform to use instead of fitting one (a backtest fold that reuses
    an earlier fold's model)."""
    frame = select(frame, cfg)
    w, s = cfg.window, cfg.split
    table = covariates.input_table(frame, cfg)
    names, values = list(table.columns), table.to_numpy(dtype="float64")
    prices = frame[cfg.data.target].to_numpy(dtype="float64")
    kind = cfg.scaling.target_transform
    first = transform.first_valid_row if transform is not None \
        else first_valid(raw_inputs(kind, values, names), names)
    # the warm-up of covariates and indicators (rows before every input is defined) is
    # dropped before the split: the fractions apply to the rows after it
    warm_up = max(0, first - (1 if kind == "log_return" else 0))
    n = len(frame) - warm_up
    need = _rows_needed(w.look_back, w.foresight, w.horizon, first - warm_up, s)
    if bounds is None:
        # each split needs >= 1 sample; the training split also needs its inputs inside it
        if n < need:
            more = f" after {warm_up} warm-up rows of the covariates" if warm_up else ""
            raise DataError(f"{cfg.data.ticker}: {n} rows{more} is too few for "
                            f"look_back={w.look_back}, foresight={w.foresight}, "
                            f"horizon={w.horizon} and a {s.train:g}/{s.val:g}/{s.test:g} "
                            f"split: need at least {need} rows")
        val_start, test_start = (warm_up + b for b in split_bounds(n, s.train, s.val))
        bounds = {"train": (0, val_start), "val": (val_start, test_start),
                  "test": (test_start, len(frame))}
    bounds = {k: (int(a), int(b)) for k, (a, b) in bounds.items()}
    if transform is None:
        transform = Transform.fit(kind, cfg.scaling.scaler, names, cfg.data.target, values,
                                  prices, bounds["train"][1])
    elif list(transform.features) != names:
        raise DataError(f"{cfg.data.ticker}: the transform was fitted on the inputs "
                        f"{', '.join(transform.features)}, not {', '.join(names)}")
    x = transform.inputs(values)
    base = transform.target_base(prices)
    splits = {}
    for name, (r0, r1) in bounds.items():
        lo, hi = anchor_range(r0, r1, w.look_back, w.foresight, w.horizon,
                              transform.first_valid_row)
        if hi <= lo:
            raise DataError(f"{cfg.data.ticker}: the {name} split ({r1 - r0} rows) is too short for "
                            f"one window (look_back={w.look_back}, foresight={w.foresight}, "
                            f"horizon={w.horizon}); need at least {need} rows in all")
        xs = input_windows(x, w.look_back, lo, hi)
        ys = target_windows(base, w.foresight, w.horizon, lo, hi)
        ys = ys - transform.target_reference(base[lo:hi])[:, None]
        splits[name] = Split(name, (r0, r1), np.arange(lo, hi), xs, ys.astype("float32"))
    return Dataset(frame, transform, splits, w.foresight, w.horizon, w.look_back)


def _rows_needed(look_back, foresight, horizon, first_valid, s) -> int:
    per_sample = first_valid + look_back + foresight + horizon
    # the shortest split (by fraction) must hold one target window; train also its inputs
    smallest = min(s.val, s.test)
    return int(np.ceil(max(per_sample / s.train, (foresight + horizon) / smallest))) + 1


def frame_hash(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf)
    return hashlib.sha256(buf.getvalue().encode()).hexdigest()[:16]


# ---- the artifact `prepare` writes -----------------------------------------------------------

def artifact_path(cfg: Config) -> Path:
    ticker = tickers.file_part(cfg.data.ticker)
    return cfg.data_dir / "prepared" / f"{ticker}_{cfg.data.interval}-{cfg.dataset_hash()}.npz"


def save(ds: Dataset, cfg: Config) -> Path:
    path = artifact_path(cfg)
    arrays = {}
    for name, sp in ds.splits.items():
        arrays[f"{name}_x"] = np.ascontiguousarray(sp.x)
        arrays[f"{name}_y"] = sp.y
        arrays[f"{name}_anchors"] = sp.anchors
    meta = {"config_hash": cfg.dataset_hash(), "ticker": cfg.data.ticker,
            "interval": cfg.data.interval, "transform": ds.transform.to_dict(), **ds.meta()}
    text = json.dumps(meta, indent=2, default=str) + "\n"

    def save_arrays(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic.write_all([(path, save_arrays),
                      (path.with_suffix(".json"), lambda tmp: tmp.write_text(text))])
    return path


def load(cfg: Config, frame: pd.DataFrame) -> Dataset | None:
    """The prepared dataset for ``cfg`` when it was built from these price rows (``frame``, as
    stored: the config's columns and dates are selected here); None when it is missing or stale
    (the store got new bars). One that is unreadable or was built for another config is
    reported with a warning and never used."""
    path = artifact_path(cfg)
    meta_path = path.with_suffix(".json")
    if not path.is_file() and not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("config_hash") != cfg.dataset_hash():
            log.warning("%s was built for another config (hash %s, expected %s); rebuilding it",
                        path, meta.get("config_hash"), cfg.dataset_hash())
            return None
        frame = select(frame, cfg)
        data_hash = frame_hash(frame)
        if meta.get("data_hash") != data_hash:
            log.info("%s is stale (the stored prices changed since it was built); rebuilding it",
                     path)
            return None
        transform = Transform.from_dict(meta["transform"])
        w = cfg.window
        with np.load(path, allow_pickle=False) as arrays:
            splits = {name: Split(name, tuple(meta["splits"][name]["rows"]),
                                  arrays[f"{name}_anchors"], arrays[f"{name}_x"],
                                  arrays[f"{name}_y"]) for name in SPLITS}
        for sp in splits.values():
            if not (len(sp.anchors) == len(sp.x) == len(sp.y)
                    and sp.x.shape[1:] == (w.look_back, len(transform.features))
                    and sp.y.shape[1:] == (w.horizon,)):
                raise ValueError(f"the {sp.name} arrays have the wrong shape")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        log.warning("%s is unreadable (%s); rebuilding it", path, exc)
        return None
    ds = Dataset(frame, transform, splits, w.foresight, w.horizon, w.look_back)
    ds.__dict__["data_hash"] = data_hash  # checked above: the cached hash, not computed again
    return ds


def current(cfg: Config, frame: pd.DataFrame, wait: float = 0.0) -> tuple[Dataset, Path, bool]:
    """The prepared dataset for ``cfg`` and these price rows: loaded when current, else built
    and saved (holding the store's lock). Returns (dataset, artifact path, whether it was
    loaded)."""
    ds = load(cfg, frame)
    if ds is not None:
        return ds, artifact_path(cfg), True
    ds = build(frame, cfg)
    with locking.hold(Store(cfg.data_dir).lock_path, wait):
        path = save(ds, cfg)
    return ds, path, False
