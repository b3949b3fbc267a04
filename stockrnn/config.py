"""Typed configuration: YAML -> ``--set`` overrides -> frozen pydantic models, validated once.

Errors are reported one per line as ``FILE: dotted.key: message`` (ConfigError, exit 2), with the
closest valid key suggested for a typo.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from stockrnn import tickers
from stockrnn.data import calendars, intervals
from stockrnn.errors import ConfigError

Column = Literal["Open", "High", "Low", "Close", "Volume"]
SourceName = Literal["yahoo", "csv", "sample", "synthetic"]
MemberType = Literal["simple_rnn", "lstm", "gru", "conv1d"]
ModelType = Literal["simple_rnn", "lstm", "gru", "conv1d", "ensemble"]
MEMBER_TYPES = ("simple_rnn", "lstm", "gru", "conv1d")
# model.* keys that belong to the ensemble as a whole, not to one member
ENSEMBLE_KEYS = ("members", "seeds", "scope")


class KeyedValueError(ValueError):
    """A cross-section check that belongs to one dotted key; it is reported under that key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CovariatesConfig(Section):
    """Inputs beside the target's own columns (docs/data.md#covariates says what a window sees)."""

    tickers: tuple[str, ...] = Field((), description="Other tickers as inputs (SPY, ^VIX, ...): fetched and stored like the target (from data.sources or data.source; with csv, from the same file's Name/symbol/ticker rows), aligned to the target's bars by close time (the last bar closed by the target's close; a later-closing exchange is lagged one bar), entered as one-bar log returns. Daily bars only.")
    indicators: tuple[str, ...] = Field((), description="Technical indicators of the target's own OHLCV, each from bars up to the anchor only: rsi_<n>, atr_<n>, volatility_<n>, volume_z_<n>, momentum_<n> (n = 2..250) or macd; their warm-up rows are dropped before the split.")
    calendar: tuple[Literal["day_of_week", "month", "days_since_previous"], ...] = Field((), description="Calendar features of the day being forecast (known in advance): day_of_week and month (as sine/cosine pairs), days_since_previous (calendar days since the session before it).")
    max_fill: int = Field(5, ge=0, le=250, description="Target bars a covariate ticker's last bar may be carried forward (days it did not trade); a longer gap is a data error naming the ticker and dates.")

    @field_validator("indicators")
    @classmethod
    def _indicators(cls, value):
        from stockrnn.features.covariates import check_indicator

        for name in value:
            check_indicator(name)
        if len(set(value)) != len(value):
            raise ValueError("an indicator is listed twice")
        return value

    @field_validator("calendar")
    @classmethod
    def _calendar_once(cls, value):
        if len(set(value)) != len(value):
            raise ValueError("a calendar feature is listed twice")
        return value

    @model_validator(mode="after")
    def _tickers(self):
        _under("data.covariates.tickers", tickers.check_all, self.tickers,
               "data.covariates.tickers")
        return self

    @property
    def any(self) -> bool:
        return bool(self.tickers or self.indicators or self.calendar)


class DataConfig(Section):
    source: SourceName = Field("sample", description="Where prices come from: yahoo (Yahoo Finance), csv (the file data.path), sample (the bundled GOOG prices) or synthetic (seeded RW<n>/AR<n> series).")
    ticker: str = Field("GOOG", min_length=1, description="Ticker symbol: letters, digits and ^ . - = _ only (ignored when data.tickers or data.tickers_file is given).")
    tickers: tuple[str, ...] | None = Field(None, min_length=1,
                                            description="Several tickers ([GOOG, RW1]): `run` trains them as a batch, one run per ticker (or one global model, model.scope); no ticker twice.")
    tickers_file: str | None = Field(None, min_length=1,
                                     description="File with one ticker per line (# starts a comment, blank lines ignored; relative to the working directory), instead of data.tickers.")
    sources: dict[str, SourceName] = Field(default_factory=dict,
                                           description="Per-ticker source overriding data.source, e.g. {GOOG: sample}.")
    path: str | None = Field(None, description="CSV file to read (required with source: csv).")
    column: str | None = Field(None, description="Close-price column of the CSV, when it is not found by name.")
    start: dt.date | None = Field(None, description="First date used (inclusive).")
    end: dt.date | None = Field(None, description="Last date used (inclusive).")
    interval: str = Field("1d", description="Bar interval (yfinance names): 1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 1d, 5d, 1wk, 1mo or 3mo.")
    features: tuple[Column, ...] = Field(("Close",), min_length=1, description="Input columns, any of Open, High, Low, Close, Volume (each once).")
    target: Literal["Open", "High", "Low", "Close"] = Field("Close", description="Predicted column (need not be an input).")
    max_age_days: int = Field(7, ge=0, description="predict: stored yahoo data that lack more than this many closed sessions of data.calendar (the latest bars missing, counted in sessions, not calendar days) are stale (exit 1 unless --allow-stale).")
    covariates: CovariatesConfig = Field(default_factory=CovariatesConfig, description="Other tickers, indicators and calendar features as further inputs.")
    calendar: str | None = Field(None, description="Exchange calendar of the ticker's bars: its sessions date forecasts, the stale-data and store-gap rules count them, and its close (early closes included) ends today's bar. An exchange_calendars name (XNYS, XTKS, XLON, XETR, ...; aliases like NYSE too), 24/7 (crypto: every day) or 24/5 (FX: weekdays, no holidays). Default (null or auto): from the ticker's suffix: none or ^index: XNYS, .T: XTKS, .L: XLON, .DE: XETR, .PA: XPAR, .TO: XTSE, .HK: XHKG, .AX: XASX, -USD: 24/7, =X: 24/5 (docs/data.md lists them all).")

    @field_validator("calendar")
    @classmethod
    def _calendar_name(cls, value):
        return calendars.check(value)

    @model_validator(mode="after")
    def _check(self):
        if "csv" in (self.source, *self.sources.values()) and not self.path:
            raise ValueError("data.path is required when data.source is csv")
        if self.tickers is not None and self.tickers_file is not None:
            raise ValueError("give data.tickers or data.tickers_file, not both")
        _under("data.ticker", tickers.check, self.ticker, "data.ticker")
        if self.tickers is not None:
            _under("data.tickers", tickers.check_all, self.tickers, "data.tickers")
        for t in self.sources:
            _under("data.sources", tickers.check, t, "data.sources")
        _under("data.interval", intervals.get, self.interval)
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"data.start ({self.start}) must be before data.end ({self.end})")
        if len(set(self.features)) != len(self.features):
            raise ValueError("data.features lists a column twice")
        cov = {t.upper() for t in self.covariates.tickers}
        clash = sorted(cov & {t.upper() for t in (self.ticker, *(self.tickers or ()))})
        if clash:
            raise KeyedValueError("data.covariates.tickers",
                                  f"{', '.join(clash)} is a target ticker of this config")
        if cov and self.interval != "1d":
            raise KeyedValueError("data.covariates.tickers", "covariate tickers need daily "
                                  f"bars (data.interval 1d), not {self.interval}")
        if self.covariates.calendar and self.interval != "1d":
            raise KeyedValueError("data.covariates.calendar", "calendar features need daily "
                                  f"bars (data.interval 1d), not {self.interval}")
        return self


    def source_of(self, ticker: str) -> str:
        """The source of data.ticker (data.source) or of another ticker, a covariate (its
        data.sources entry, else data.source)."""
        if ticker.upper() == self.ticker.upper():
            return self.source
        return {k.upper(): v for k, v in self.sources.items()}.get(ticker.upper(), self.source)


class WindowConfig(Section):
    look_back: int = Field(30, gt=0, le=5000, description="Past bars fed to the model (the window length).")
    foresight: int = Field(0, ge=0, description="Bars skipped between the last input and the first target (0 = next bar).")
    horizon: int = Field(1, gt=0, le=250, description="Future bars predicted at once.")


class SplitConfig(Section):
    train: float = Field(0.70, gt=0, lt=1, description="Fraction of the rows, the earliest, for training; every scaler and statistic is fitted on these only. train + val + test = 1.")
    val: float = Field(0.15, gt=0, lt=1, description="Fraction of the rows after the training rows for validation: early stopping, the kept epoch, conformal intervals, tune's selection.")
    test: float = Field(0.15, gt=0, lt=1, description="Fraction of the rows, the latest, held out for evaluate (scored once, never used to choose anything).")

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1. Received: train+val+test={total:g}")
        return self


class ScalingConfig(Section):
    scaler: Literal["minmax", "standard"] = Field("standard", description="Input scaler (standard: mean/sd, minmax: to [0, 1]), fitted on the training split only.")
    target_transform: Literal["log_return", "level"] = Field("log_return", description="What the network predicts: log_return (the log return from the last price; 0 is the persistence forecast) or level (the scaled price, as in the lectures).")


class ModelConfig(Section):
    type: ModelType = Field("lstm", description="Model family: simple_rnn, lstm, gru or conv1d; or ensemble: the mean of the model.members' forecasts (docs/pipeline.md#ensembles).")
    units: tuple[int, ...] = Field((32,), min_length=1, description="Recurrent units per stacked layer ([64, 32]: two layers).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate on the inputs of each recurrent layer (conv1d: a Dropout layer before the head).")
    recurrent_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate on the recurrent state of each recurrent layer (not used by conv1d).")
    bidirectional: bool = Field(False, description="Wrap each recurrent layer in Bidirectional (not used by conv1d).")
    unroll: Literal["auto"] | bool = Field(
        "auto", description="Unroll recurrent layers over the window: auto unrolls them on "
                            "TensorFlow when look_back <= 32 (SimpleRNN) or <= 7 (LSTM, GRU, in "
                            "trainings of at least 1000 batches: epochs x batches per epoch): "
                            "faster epochs, same outputs (docs/pipeline.md); never on JAX; "
                            "true/false force it.")
    filters: int = Field(64, gt=0, description="conv1d: filters per convolution layer.")
    kernel_size: int = Field(5, gt=0, description="conv1d: kernel width in bars (<= window.look_back).")
    pool_size: int = Field(1, gt=0, description="conv1d: max-pooling width (1 = none).")
    conv_layers: int = Field(1, gt=0, le=8, description="conv1d: number of conv+pool blocks.")
    dense_units: tuple[int, ...] = Field((), description="Hidden Dense layers (ReLU) of the head before the linear output.")
    scope: Literal["per_ticker", "global"] = Field(
        "per_ticker", description="Multi-ticker configs: one model per ticker, or one global "
                                  "model trained on every ticker's windows.")
    members: tuple[MemberType | dict[str, Any], ...] = Field(
        (), description="ensemble: its members, each a family name (lstm: the model.* settings "
                        "here with that type) or a mapping of that member's own model.* keys "
                        "over them ({type: conv1d, filters: 32}). Each member is trained on its "
                        "own, once per seed of model.seeds; the ensemble forecasts the mean of "
                        "their outputs (the mean log return under the log_return target).")
    seeds: tuple[int, ...] | None = Field(
        None, min_length=1, description="ensemble: the training seeds; every member is trained "
                                        "once per seed (default: [train.seed]). One member and "
                                        "several seeds make a seed ensemble.")

    @field_validator("members", mode="before")
    @classmethod
    def _member_entries(cls, value):
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of members: family names or mappings of model keys "
                             f"(e.g. [lstm, gru, conv1d]). Received: members={value!r}")
        for i, member in enumerate(value):
            key = f"model.members.{i}"
            if isinstance(member, dict):
                valid = [k for k in cls.model_fields if k not in ENSEMBLE_KEYS]
                for k in member:
                    if k not in valid:
                        close = difflib.get_close_matches(str(k), valid, n=1, cutoff=0.6)
                        hint = f" (did you mean {close[0]}?)" if close else \
                            f" (valid: {', '.join(valid)})"
                        raise KeyedValueError(f"{key}.{k}", f"unknown member key{hint}")
                if "type" not in member:
                    raise KeyedValueError(f"{key}.type", "a member mapping needs its type, one "
                                          f"of {', '.join(MEMBER_TYPES)}")
                _member_type(f"{key}.type", member["type"])
            else:
                _member_type(key, member)
        return tuple(value)

    @model_validator(mode="after")
    def _check(self):
        if any(u <= 0 for u in self.units) or any(u <= 0 for u in self.dense_units):
            raise ValueError("units and dense_units must be > 0")
        if self.type != "ensemble":
            for key in ("members", "seeds"):
                if getattr(self, key):
                    raise KeyedValueError(f"model.{key}", f"only for model.type: ensemble "
                                          f"(model.type is {self.type})")
            return self
        if not self.members:
            raise KeyedValueError("model.members", "model.type ensemble needs members, e.g. "
                                  "[lstm, gru, conv1d]")
        seeds = self.seeds or ()
        if any(s < 0 for s in seeds):
            raise KeyedValueError("model.seeds", f"seeds must be >= 0. Received: "
                                  f"seeds={list(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise KeyedValueError("model.seeds", f"lists a seed twice: {list(seeds)}")
        if len(self.members) * max(len(seeds), 1) < 2:
            raise KeyedValueError("model.members", "an ensemble of one model: list two or more "
                                  "members, or two or more model.seeds")
        resolved = self.member_configs()
        for i, m in enumerate(resolved):
            if m in resolved[:i]:
                raise KeyedValueError(f"model.members.{i}", f"the same model as member "
                                      f"{resolved.index(m)}: with the same seeds it trains "
                                      "the same network")
        return self

    def member_configs(self) -> tuple[ModelConfig, ...]:
        """An ensemble's members as complete model configs: the ensemble's own model.*
        settings with the member's type and keys over them (empty for any other type)."""
        shared = {k: v for k, v in self.model_dump().items() if k not in ENSEMBLE_KEYS}
        out = []
        for i, member in enumerate(self.members):
            own = member if isinstance(member, dict) else {"type": member}
            try:
                out.append(ModelConfig.model_validate({**shared, **own}))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err.get("loc", ()))
                key = getattr((err.get("ctx") or {}).get("error"), "key", None) or \
                    f"model.members.{i}" + (f".{loc}" if loc else "")
                msg = err.get("msg", "invalid value").removeprefix("Value error, ")
                if err.get("type") != "value_error" and "input" in err:
                    msg += f". Received: {key.split('.')[-1]}={err['input']!r}"
                raise KeyedValueError(key, msg) from None
        return tuple(out)


def _member_type(key: str, value) -> None:
    if value == "ensemble":
        raise KeyedValueError(key, "a member cannot itself be an ensemble")
    if value not in MEMBER_TYPES:
        raise KeyedValueError(key, f"unknown member type {value!r}; valid: "
                              f"{', '.join(MEMBER_TYPES)}")


class EarlyStoppingConfig(Section):
    patience: int = Field(10, ge=0, description="Epochs without val_loss improvement before training stops.")
    min_delta: float = Field(0.0, ge=0, description="Smallest val_loss decrease that counts as an improvement.")


class ReduceLRConfig(Section):
    patience: int = Field(0, ge=0, description="Epochs without val_loss improvement before the learning rate is multiplied by factor (Keras ReduceLROnPlateau); 0: off, a constant learning rate.")
    factor: float = Field(0.5, gt=0, lt=1, description="What the learning rate is multiplied by after each plateau.")
    min_lr: float = Field(1e-5, ge=0, description="The learning rate never goes below this.")


class TrainConfig(Section):
    epochs: int = Field(100, gt=0, description="Maximum epochs (early stopping usually ends training sooner).")
    batch_size: int = Field(32, gt=0, description="Windows per training batch.")
    learning_rate: float = Field(1e-3, gt=0, description="Learning rate of the optimizer.")
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = Field("adam", description="Keras optimizer.")
    loss: Literal["mae", "mse", "huber"] = Field("mae", description="Training loss on the scaled targets.")
    early_stopping: EarlyStoppingConfig = Field(EarlyStoppingConfig(), description="EarlyStopping on val_loss (the best epoch's weights are kept).")
    reduce_lr: ReduceLRConfig = Field(ReduceLRConfig(), description="Lower the learning rate when val_loss stops improving (off unless reduce_lr.patience > 0).")
    seed: int = Field(42, ge=0, description="Seeds Python, NumPy and Keras (TensorFlow op determinism on): the same config twice gives the same history.")
    backend: Literal["tensorflow", "jax"] | None = Field(None, description="Keras backend, tensorflow or jax (default: $KERAS_BACKEND, else tensorflow); picked before Keras is imported.")
    steps_per_execution: int = Field(64, gt=0, description="Batches per compiled call, on TensorFlow and on JAX (speed only; the results are the same). A training of fewer than 256 steps in all (epochs x batches per epoch) runs one batch per call, which is traced faster.")
    backup_every_s: float = Field(5.0, ge=0, description="history.csv, the best epoch (checkpoints/best.keras) and the --resume backup are written together at most once per this many seconds, at the end and on Ctrl-C or an error (0: after every epoch); a kill loses at most this much training.")
    tensorboard: bool = Field(False, description="Write Keras TensorBoard logs into <run dir>/tensorboard/ (needs the tensorboard package: pip install 'stockrnn[tensorboard]'; view with tensorboard --logdir).")


class PathsConfig(Section):
    data_dir: str | None = Field(None, description="The data store folder (default: $STOCKRNN_DATA_DIR, else ./data).")
    runs_dir: str | None = Field(None, description="Where runs go (default: $STOCKRNN_RUNS_DIR, else ./runs).")
    run_name: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]+$", description="Run name: runs go to <runs_dir>/<run_name>/ (default: the model type).")


class TrackingConfig(Section):
    """Experiment tracking with MLflow (an optional extra; see docs/tracking.md)."""

    mlflow: bool = Field(False, description="Log every train, run, backtest and tune to MLflow (needs pip install 'stockrnn[mlflow]'; --mlflow turns it on too).")
    mlflow_uri: str | None = Field(None, min_length=1, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the local store sqlite:///<runs_dir>/mlflow.db).")
    experiment: str | None = Field(None, min_length=1, description="MLflow experiment name (default: the run name).")


IntRange = tuple[int, int]
FloatRange = tuple[float, float]


class TuneConfig(Section):
    """``stockrnn tune``: the search space ([low, high], both inclusive; a key left out is not
    tuned) and the number of trials."""

    trials: int = Field(20, gt=0, le=10000, description="stockrnn tune: number of trials (--trials overrides).")
    look_back: IntRange | None = Field(None, description="Integer range [low, high] searched for window.look_back.")
    units: IntRange | None = Field(None, description="Integer range [low, high] searched for model.units (every layer the same width).")
    dropout: FloatRange | None = Field(None, description="Range [low, high] searched for model.dropout.")
    learning_rate: FloatRange | None = Field(None, description="Range [low, high] searched for train.learning_rate, on a log scale.")

    @model_validator(mode="after")
    def _ranges(self):
        for key in ("look_back", "units", "dropout", "learning_rate"):
            rng = getattr(self, key)
            if rng is None:
                continue
            lo, hi = rng
            if not lo <= hi:
                raise KeyedValueError(f"tune.{key}", f"low ({lo}) must be <= high ({hi})")
            ok = {"look_back": lo > 0, "units": lo > 0, "dropout": 0 <= lo and hi < 1,
                  "learning_rate": lo > 0}[key]
            if not ok:
                raise KeyedValueError(f"tune.{key}", f"{list(rng)} is out of range "
                                      "(look_back, units, learning_rate > 0; 0 <= dropout < 1)")
        return self

    @property
    def space(self) -> dict:
        """The tuned keys and their ranges."""
        return {k: getattr(self, k) for k in ("look_back", "units", "dropout", "learning_rate")
                if getattr(self, k) is not None}


class BacktestConfig(Section):
    """``stockrnn backtest``: walk-forward folds, the refit policy, the training window, and
    the trading evaluation (flags of the same names override these)."""

    folds: int = Field(5, gt=0, le=1000, description="Consecutive test folds after the minimum "
                       "training length (default for --folds).")
    refit: str = Field("always", description="always: train a new model per fold; never: "
                       "train once before the first fold; every:K: retrain every K folds.")
    window: str = Field("expanding", description="expanding: train on all earlier rows; "
                        "rolling:L: on the last L rows before the fold only.")
    min_train: int | None = Field(None, gt=0, description="Rows before the first fold "
                                  "(default: the split's train+val fractions of the history).")
    threshold: float = Field(0.0, ge=0, description="Trading: go long when the forecast log "
                             "return over the next bar exceeds this.")
    short: bool = Field(False, description="Trading: short (instead of flat) when the forecast "
                        "log return is below -threshold.")
    cost_bps: float = Field(5.0, ge=0, description="Trading: cost per unit of turnover, in "
                            "basis points.")

    @model_validator(mode="after")
    def _policies(self):
        refit_every(self.refit)
        rolling_rows(self.window)
        return self


def _under(key: str, check, *args):
    """``check(*args)``, its ValueError reported under the dotted ``key``."""
    try:
        return check(*args)
    except ValueError as exc:
        raise KeyedValueError(key, str(exc).removeprefix(f"{key}: ")) from None


def _count_policy(value: str, fixed: dict, kind: str, key: str, expected: str) -> int | None:
    """A policy that is one of ``fixed`` or ``<kind>:N`` with N >= 1 (KeyedValueError else)."""
    if value in fixed:
        return fixed[value]
    name, _, n = value.partition(":")
    if name == kind and n.isdigit() and int(n) >= 1:
        return int(n)
    raise KeyedValueError(key, f"must be {expected}. Received: {key.split('.')[-1]}={value!r}")


def refit_every(refit: str) -> int | None:
    """Folds between refits: always -> 1, never -> None, every:K -> K."""
    return _count_policy(refit, {"always": 1, "never": None}, "every", "backtest.refit",
                         "always, never or every:K with K >= 1")


def rolling_rows(window: str) -> int | None:
    """Training rows of a rolling window (None: expanding)."""
    return _count_policy(window, {"expanding": None}, "rolling", "backtest.window",
                         "expanding or rolling:L with L >= 1 rows")


class Config(Section):
    data: DataConfig = Field(DataConfig(), description="Which prices: source, ticker(s), dates, interval, input and target columns.")
    window: WindowConfig = Field(WindowConfig(), description="How samples are cut: look_back past bars, a foresight gap, horizon future bars.")
    split: SplitConfig = Field(SplitConfig(), description="Chronological train/val/test fractions of the rows.")
    scaling: ScalingConfig = Field(ScalingConfig(), description="Input scaling and the target transform, fitted on the training split only.")
    model: ModelConfig = Field(ModelConfig(), description="The network: family, layer sizes, dropout, conv1d shape, head, multi-ticker scope.")
    train: TrainConfig = Field(TrainConfig(), description="Training: epochs, batch, optimizer, loss, early stopping, seed, backend, backups.")
    paths: PathsConfig = Field(PathsConfig(), description="Where the store and the runs live, and the run name.")
    tune: TuneConfig = Field(TuneConfig(), description="stockrnn tune: the number of trials and the ranges searched.")
    backtest: BacktestConfig = Field(BacktestConfig(), description="stockrnn backtest: folds, refit policy, training window, trading evaluation.")
    tracking: TrackingConfig = Field(TrackingConfig(), description="Experiment tracking: MLflow on or off, its tracking URI and experiment.")

    @model_validator(mode="after")
    def _cross_checks(self):
        w = self.window
        models = [("model.", self.model)] if self.model.type != "ensemble" else [
            (f"model.members.{i}." if isinstance(own, dict) and "kernel_size" in own
             else "model.", m)
            for i, (own, m) in enumerate(zip(self.model.members, self.model.member_configs(),
                                             strict=True))]
        for prefix, m in models:
            if m.type != "conv1d":
                continue
            if m.kernel_size > w.look_back:
                raise KeyedValueError(f"{prefix}kernel_size", f"{prefix}kernel_size "
                                      f"({m.kernel_size}) must be <= window.look_back "
                                      f"({w.look_back})")
            if w.look_back // (m.pool_size ** m.conv_layers) < 1:
                raise KeyedValueError("window.look_back",
                                      f"window.look_back ({w.look_back}) is too short for "
                                      f"{m.conv_layers} pooling layers of size {m.pool_size}")
        return self

    # ---- resolved values -------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return data_dir(self.paths.data_dir)

    @property
    def runs_dir(self) -> Path:
        return runs_dir(self.paths.runs_dir)

    @property
    def run_name(self) -> str:
        return self.paths.run_name or self.model.type

    @property
    def is_batch(self) -> bool:
        """Whether the config lists several tickers (data.tickers or data.tickers_file)."""
        return self.data.tickers is not None or self.data.tickers_file is not None

    def require_single(self, what: str) -> None:
        """Raise ConfigError when a one-ticker command gets a multi-ticker config."""
        if self.is_batch:
            raise ConfigError(f"{what} works on one ticker; this config lists several "
                              "(data.tickers / data.tickers_file): use `stockrnn run` for the "
                              "batch, or pick one with --set data.tickers=null "
                              "--set data.ticker=TICKER")

    def for_ticker(self, ticker: str) -> Config:
        """The one-ticker config of a batch member: data.ticker set, its source picked from
        data.sources, and run name ``<run_name>-<TICKER>``."""
        raw = self.to_dict()
        d = raw["data"]
        sources = {k.upper(): v for k, v in d.pop("sources").items()}
        d.update(ticker=ticker, tickers=None, tickers_file=None, sources={},
                 source=sources.get(ticker.upper(), d["source"]))
        raw["paths"]["run_name"] = f"{self.run_name}-{tickers.run_part(ticker)}"
        return validate_config(raw, f"<{ticker}>")

    @property
    def mlflow_uri(self) -> str:
        """The MLflow tracking URI: tracking.mlflow_uri, else $MLFLOW_TRACKING_URI, else the
        local store ``sqlite:///<runs_dir>/mlflow.db``."""
        return (self.tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
                or "sqlite:///" + (self.runs_dir / "mlflow.db").resolve().as_posix())

    @property
    def backend(self) -> str:
        from stockrnn.backend import resolve

        return resolve(self.train.backend)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def dataset_hash(self) -> str:
        """Hash of everything that shapes the prepared dataset (not the model or training)."""
        keys = ("data", "window", "split", "scaling")
        raw = {k: self.to_dict()[k] for k in keys}
        raw["data"].pop("calendar")  # dates forecasts and staleness, not the windows
        blob = json.dumps(raw, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The store folder: ``explicit``, else $STOCKRNN_DATA_DIR, else ./data."""
    return Path(explicit or os.environ.get("STOCKRNN_DATA_DIR") or "data")


def runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The runs folder: ``explicit``, else $STOCKRNN_RUNS_DIR, else ./runs."""
    return Path(explicit or os.environ.get("STOCKRNN_RUNS_DIR") or "runs")


# ---- loading ---------------------------------------------------------------------------------

def load_config(path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read YAML (or start from defaults when ``path`` is None), apply overrides, validate."""
    name = str(path) if path is not None else "<defaults>"
    raw: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{name}: no such config file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{name}: cannot read: {exc}") from None
        raw = _parse_yaml(text, name)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: top level must be a mapping of sections "
                              f"({', '.join(Config.model_fields)})")
    raw = apply_overrides(raw, overrides, name)
    return validate_config(raw, name)


# What PyYAML raises besides YAMLError: bad explicit tags (``!!int abc``) and impossible dates
# (``2020-02-30``) raise ValueError/TypeError/KeyError/AttributeError; deep nesting recurses.
YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, RecursionError)


def _parse_yaml(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{name}: {where}YAML syntax error: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{name}: YAML nested too deeply") from None
    except YAML_FAILURES as exc:
        raise ConfigError(f"{name}: YAML value error: {exc}") from None


def _plain(node: Any, name: str, seen: tuple[int, ...] = ()) -> Any:
    """A deep copy of YAML data with string keys (a date key becomes its text, then an unknown
    key), refusing an alias that contains itself."""
    if isinstance(node, dict | list):
        if id(node) in seen:
            raise ConfigError(f"{name}: a YAML alias refers to itself")
        seen = (*seen, id(node))
        if isinstance(node, list):
            return [_plain(v, name, seen) for v in node]
        return {str(k): _plain(v, name, seen) for k, v in node.items()}
    return node


def apply_overrides(raw: dict, overrides, name: str) -> dict:
    try:
        out = _plain(raw, name)
    except RecursionError:
        raise ConfigError(f"{name}: YAML nested too deeply") from None
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except YAML_FAILURES:  # not YAML: the text itself, for validation to judge
            parsed = value
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = nxt
        if parsed is not None and not isinstance(parsed, str) and _is_text_field(parts):
            parsed = value.strip()  # a ticker like ON or 7203 is text, not YAML's bool/int
        node[parts[-1]] = parsed
    return out


def validate_config(raw: dict, name: str = "<config>") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(name, err) for err in exc.errors())) from None


def _format_error(name: str, err: dict) -> str:
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    key = (getattr((err.get("ctx") or {}).get("error"), "key", None)
           or ".".join(loc) or "(top level)")
    if err.get("type") == "extra_forbidden":
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.6) if loc else []
        hint = f" (did you mean {close[0]}?)" if close else f" (valid: {', '.join(valid)})"
        return f"{name}: {key}: unknown key{hint}"
    msg = err.get("msg", "invalid value")
    msg = msg.removeprefix("Value error, ")
    if err.get("type") not in ("value_error",) and "input" in err:
        msg += f". Received: {key.split('.')[-1]}={err['input']!r}"
    return f"{name}: {key}: {msg}"


def _is_text_field(parts: list[str]) -> bool:
    """Whether the dotted key ``parts`` names a plain string setting (str or str | None)."""
    model: type[BaseModel] = Config
    for part in parts[:-1]:
        ann = getattr(model.model_fields.get(part), "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return False
        model = ann
    field = model.model_fields.get(parts[-1])
    return field is not None and field.annotation in (str, str | None)


def _fields_at(loc: list[str]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)
