"""Load a run and forecast the next bars from the latest stored data, with conformal intervals.

Everything comes from the run directory (config, scaler, model, interval quantiles) plus the
store's current prices: the scaler is the run's own, never refitted on newer data. Forecast
dates are the run's exchange calendar's next sessions (``data.calendars``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

import numpy as np
import pandas as pd

from stockrnn import dataset, evaluation
from stockrnn.backend import use
from stockrnn.config import Config
from stockrnn.data import calendars, frames
from stockrnn.data.store import Store
from stockrnn.errors import ConfigError, DataError, RunError
from stockrnn.features import covariates
from stockrnn.features.transforms import Transform
from stockrnn.runs import RunDir
from stockrnn.training import predict

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Forecast:
    table: pd.DataFrame     # index date; forecast, lower_80, upper_80, lower_95, upper_95, recursive
    as_of: pd.Timestamp     # date of the last observed bar
    last_price: float
    recursive: bool
    history: pd.Series      # recent target prices, for the plot


def run_dataset(run: RunDir, cfg: Config, transform: Transform) -> dataset.Dataset:
    """Rebuild the run's windows from its own saved prices and split rows (as meta.json
    recorded them), and check the scaler matches."""
    try:
        frame = frames.read_csv(run.series)
    except (OSError, ValueError) as exc:
        raise RunError(f"{run.series}: unreadable ({exc})") from None
    recorded = run.meta().get("data", {}).get("splits", {})
    bounds = {k: tuple(v["rows"]) for k, v in recorded.items()} \
        if set(recorded) == set(dataset.SPLITS) else None
    ds = dataset.build(frame, cfg, bounds)
    if ds.transform != transform:
        raise RunError(f"{run.path}: series.csv and scaler.json disagree; the run was modified")
    return ds


def load_run(run: RunDir, backend: str | None = None) -> tuple[Config, Transform, object, list]:
    """Config, transform, model and interval quantiles of a complete run, with Keras on
    ``backend`` (default: the run's own; the .keras file loads on either)."""
    from stockrnn.config import load_config
    from stockrnn.training import load_model

    run.check_complete()
    meta = run.meta()
    if meta.get("scope") == "global" and meta.get("ticker") is None:
        members = ", ".join(f"{run.path}/tickers/{t}" for t in meta.get("tickers", []))
        raise RunError(f"{run.path}: a global model over several tickers; use one ticker's "
                       f"run inside it: {members}")
    cfg = load_config(run.config)
    try:
        transform = Transform.from_dict(json.loads(run.scaler.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{run.scaler}: unreadable ({exc})") from None
    if not run.model.exists():
        raise RunError(f"{run.model}: missing")
    use(backend or cfg.backend)  # .keras files of built-in layers load on either backend
    try:
        model = load_model(run.model)
    except Exception as exc:  # keras raises many kinds on a damaged file
        raise RunError(f"{run.model}: cannot load the model ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); retrain the run") from None
    return cfg, transform, model, evaluation.load_quantiles(run)


def calendar_of(run: RunDir, cfg: Config) -> str:
    """The run's exchange calendar: data.calendar when the config names one, else the one
    meta.json recorded at training, else the ticker's default."""
    return cfg.data.calendar or run.meta().get("calendar") \
        or calendars.resolve(None, cfg.data.ticker)


def prefetch_calendar(run: RunDir) -> None:
    """Start building the calendar the run recorded at training in a child process
    (``calendars.prefetch``), before ``forecast`` loads the model (and TensorFlow). A run
    whose meta.json is unreadable is left to ``forecast`` to report."""
    try:
        name = run.meta().get("calendar")
    except RunError:
        return
    if isinstance(name, str) and name:  # else forecast's checks say what is wrong
        calendars.prefetch(name)


def current_prices(cfg: Config, as_of: dt.date | None, allow_stale: bool,
                   now: pd.Timestamp | None = None, calendar: str | None = None) -> pd.DataFrame:
    """The stored prices to forecast from, covariate tickers attached: up to ``as_of``, else
    all of them, checked for staleness: yahoo data (the target's or a covariate's) that lack
    more than data.max_age_days closed sessions of their calendar by ``now`` (tz-aware;
    default the clock) exit 1 unless ``allow_stale``."""
    store = Store(cfg.data_dir)
    d = cfg.data

    def read(ticker: str) -> pd.DataFrame:
        frame = store.read(ticker, d.interval)
        if as_of is not None:
            frame = frame[frame.index <= pd.Timestamp(as_of)]
            if frame.empty:
                raise DataError(f"no stored data for {ticker} on or before {as_of}")
        elif ticker.upper() != d.ticker.upper():
            _check_fresh(cfg, ticker, d.source_of(ticker), frame, allow_stale, now,
                         calendars.resolve(None, ticker))
        return frame

    target = read(d.ticker)
    if as_of is None:
        _check_fresh(cfg, d.ticker, d.source, target, allow_stale, now,
                     calendar or calendars.resolve(d.calendar, d.ticker))
    frame = covariates.attach(target, cfg, read)
    return dataset.select(frame, cfg.model_copy(update={"data": d.model_copy(update={"end": None})}))


def _check_fresh(cfg: Config, ticker: str, source: str, frame: pd.DataFrame, allow_stale: bool,
                 now: pd.Timestamp | None, cal: str) -> None:
    last = frame.index[-1].date()
    days = ((now.date() if now is not None else dt.date.today()) - last).days
    limit = cfg.data.max_age_days
    if days <= limit:  # at most one session a day: not stale, no calendar needed
        return
    age = calendars.closed_after(cal, last, now if now is not None
                                 else pd.Timestamp.now(tz="UTC"))
    if age <= limit:
        return
    if source == "yahoo" and not allow_stale:
        raise DataError(f"stored data for {ticker} end on {last} ({days} days ago, "
                        f"{age} {cal} sessions missing: more than data.max_age_days={limit}): "
                        f"run `stockrnn fetch {ticker}` first, or pass --as-of DATE "
                        "or --allow-stale")
    log.warning("forecasting from %s data of %s that end on %s (%d days ago, %d %s sessions "
                "missing)", source, ticker, last, days, age, cal)


def forecast(run: RunDir, steps: int | None = None, as_of: dt.date | None = None,
             allow_stale: bool = False, now: pd.Timestamp | None = None) -> Forecast:
    """The next ``steps`` bars (default: the run's horizon) after the last stored bar (up to
    ``as_of``), dated by the run's exchange calendar (its next sessions for daily bars)."""
    cfg, transform, model, quantiles = load_run(run)
    cal = calendar_of(run, cfg)
    w = cfg.window
    steps = steps or w.horizon
    if steps <= 0:
        raise ConfigError(f"`steps` must be > 0. Received: steps={steps}")
    recursive = steps > w.horizon
    if recursive and (w.foresight != 0 or list(transform.features) != [cfg.data.target]):
        raise ConfigError(f"--steps {steps} exceeds the trained horizon {w.horizon}; recursive "
                          "forecasting needs foresight 0, features == [target] and no "
                          "covariates")
    frame = current_prices(cfg, as_of, allow_stale, now, cal)
    need = w.look_back + transform.first_valid_row
    if len(frame) < need:
        raise DataError(f"{cfg.data.ticker}: {len(frame)} stored rows, need {need} for one window")
    table = covariates.input_table(frame, cfg, lambda last, n: calendars.future_dates(
        cal, last, n, cfg.data.interval))
    if list(table.columns) != list(transform.features):
        raise RunError(f"{run.path}: scaler.json's inputs ({', '.join(transform.features)}) are "
                       f"not the config's ({', '.join(table.columns)}); the run was modified")
    values = table.to_numpy(dtype="float64")
    prices = frame[cfg.data.target].to_numpy(dtype="float64")
    out: list[float] = []
    while len(out) < steps:
        x = transform.inputs(values)[-w.look_back:][None, ...]
        y = predict(model, x)
        p = transform.invert(y, prices[-1:])[0]
        out.extend(p.tolist())
        if len(out) >= steps:
            break
        values = np.concatenate([values, p[:, None]])
        prices = np.concatenate([prices, p])
    pred = np.array(out[:steps])
    table = _with_intervals(pred, quantiles, w.horizon)
    start = frame.index[-1]
    try:
        dates = calendars.future_dates(cal, start, steps + w.foresight,
                                       cfg.data.interval)[w.foresight:]
    except ValueError as exc:
        raise DataError(f"{cfg.data.ticker}: {exc}") from None
    table.index = pd.DatetimeIndex(dates, name="date")
    table["recursive"] = np.arange(steps) >= w.horizon
    hist = frame[cfg.data.target].iloc[-120:]
    return Forecast(table, start, float(frame[cfg.data.target].iloc[-1]), recursive, hist)


def _with_intervals(pred: np.ndarray, quantiles: list[dict], horizon: int) -> pd.DataFrame:
    cols = {"forecast": pred}
    for lv in evaluation.LEVELS:
        q = np.array([qs[str(lv)] for qs in quantiles], dtype="float64")
        k = np.arange(len(pred))
        # beyond the trained horizon, widen the last step's band like a random walk: sqrt(k/h)
        qk = np.where(k < horizon, q[np.minimum(k, horizon - 1)],
                      q[-1] * np.sqrt((k + 1) / horizon))
        pct = int(round(lv * 100))
        cols[f"lower_{pct}"] = pred * np.exp(-qk)
        cols[f"upper_{pct}"] = pred * np.exp(qk)
    return pd.DataFrame(cols)
