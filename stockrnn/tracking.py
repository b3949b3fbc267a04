"""Experiment tracking: MLflow runs and TensorBoard logs (optional extras, imported lazily).

MLflow (``tracking.mlflow: true`` or ``--mlflow [URI]``) logs each finished command, read back
from the directories it wrote, so training itself is untouched (no per-epoch callback):

    train / run      one MLflow run per run directory: the resolved config.yaml flattened into
                     params (model.type, window.look_back, ...), history.csv's columns as
                     metrics per epoch (step = the epoch, from 0, as in history.csv), the
                     metrics_<split>.json it has as <split>_mae, <split>_rmse, <split>_mase, ...,
                     tags (ticker, model_type, backend, run_dir, stockrnn_version) and the
                     run's files as artifacts (model.keras, plots/, metrics, forecast.csv, ...)
    run (batch)      a parent run for the batch, one child per ticker
    backtest         a parent run with the pooled metrics, one child per fold (a multi-ticker
                     backtest: a child per ticker, a grandchild per fold)
    tune             a parent run for the study, one child per trial, and the retrained best
                     config as one more child

The store: tracking.mlflow_uri, else $MLFLOW_TRACKING_URI, else ``sqlite:///<runs_dir>/mlflow.db``
(MLflow's own default backend since 3.7 is a SQLite file) with artifacts in
``<runs_dir>/mlartifacts/``. The MLflow run id goes into the run directory's meta.json
(``mlflow_run_id``) and into a batch, backtest or tune summary.json.

Asking for MLflow without the package is a ConfigError (exit 2) before anything runs; a store
that cannot be reached or that fails is a warning: the run directory is complete either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from stockrnn import __version__, atomic
from stockrnn.config import Config
from stockrnn.errors import ConfigError
from stockrnn.runs import RunDir

log = logging.getLogger(__name__)

MLFLOW_MISSING = "MLflow tracking needs MLflow: pip install 'stockrnn[mlflow]'"
TENSORBOARD_MISSING = "train.tensorboard needs TensorBoard: pip install 'stockrnn[tensorboard]'"
TENSORBOARD_DIR = "tensorboard"
ARTIFACTS_DIR = "mlartifacts"  # beside a SQLite store
PROBE_TIMEOUT_S = 5.0
#: The files of a run directory logged as artifacts (plots/ too); series.csv (the data),
#: checkpoints/, backup/ and tensorboard/ stay local.
RUN_FILES = ("model.keras", "config.yaml", "meta.json", "history.csv", "scaler.json",
             "intervals.json", "metrics_test.json", "metrics_val.json", "forecast.csv")
#: Model metrics of a metrics_<split>.json logged as <split>_<name>
SPLIT_METRICS = ("mae", "rmse", "mape", "mase", "directional_accuracy", "direction_p_value")
#: Training facts of meta.json logged as metrics
FACTS = ("epochs_run", "best_epoch", "best_val_loss", "start_val_loss", "train_seconds",
         "parameters")


class Unreachable(Exception):
    """The tracking server does not answer."""


# --------------------------------------------------------------------------- the extras


def import_mlflow():
    """The ``mlflow`` module, or ConfigError (exit 2) saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError(MLFLOW_MISSING) from None
    return mlflow


def require_tensorboard() -> None:
    """ConfigError (exit 2) when TensorBoard, which Keras' TensorBoard callback writes with,
    is not installed (TensorFlow alone fails only at the end of the first epoch)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(TENSORBOARD_MISSING) from None


def require(cfg: Config) -> None:
    """Check, before anything runs or is written, that the packages the config's tracking asks
    for are installed (ConfigError, exit 2, with the install command)."""
    if cfg.tracking.mlflow:
        import_mlflow()
    if cfg.train.tensorboard:
        require_tensorboard()


def same_config(saved_yaml: str, cfg: Config) -> bool:
    """Whether a run's config.yaml is ``cfg`` apart from the tracking section (where a run is
    logged, not what it trains), so ``--resume`` may add or drop ``--mlflow``. The saved config
    is validated first, so a key added to stockrnn since the run started compares as its
    default."""
    import yaml
    from pydantic import ValidationError

    try:
        saved = yaml.safe_load(saved_yaml)
        saved = Config.model_validate(saved).to_dict() if isinstance(saved, dict) else None
    except (yaml.YAMLError, ValidationError):
        return False
    if saved is None:
        return False
    now = cfg.to_dict()
    for raw in (saved, now):
        raw.pop("tracking", None)
    return yaml.safe_dump(saved, sort_keys=False) == yaml.safe_dump(now, sort_keys=False)


def tensorboard_callback(run: RunDir):
    """Keras' TensorBoard callback writing into ``<run dir>/tensorboard/``."""
    from stockrnn.backend import use

    require_tensorboard()
    keras = use()
    return keras.callbacks.TensorBoard(log_dir=str(run.path / TENSORBOARD_DIR))


# --------------------------------------------------------------------------- entry points


def log_run(cfg: Config, run: RunDir) -> str | None:
    """Log a finished run directory (``train`` or ``run``) as one MLflow run; returns its id
    (None when tracking is off or failed: a warning, never an error)."""
    if not cfg.tracking.mlflow:
        return None
    return _safely(cfg, str(run.path), lambda s: s.run_dir(run))


def log_batch(cfg: Config, summary: dict) -> dict:
    """Log a batch: a parent run, one child per ticker. Returns ``summary`` (with
    ``mlflow_run_id`` when logged; summary.json is rewritten with it)."""
    if cfg.tracking.mlflow:
        rid = _safely(cfg, summary["batch_dir"], lambda s: s.batch(cfg, summary))
        _record(summary, "batch_dir", rid)
    return summary


def log_backtest(cfg: Config, summary: dict) -> dict:
    """Log a backtest: a parent run with the pooled metrics, a child per fold (per ticker, then
    per fold, for several tickers). Returns ``summary`` (see ``log_batch``)."""
    if cfg.tracking.mlflow:
        rid = _safely(cfg, summary["backtest_dir"], lambda s: s.backtest(cfg, summary))
        _record(summary, "backtest_dir", rid)
    return summary


def log_tune(cfg: Config, summary: dict) -> dict:
    """Log a tune study: a parent run, a child per trial and one for the retrained best
    config. Returns ``summary`` (see ``log_batch``)."""
    if cfg.tracking.mlflow:
        rid = _safely(cfg, summary["tune_dir"], lambda s: s.tune(cfg, summary))
        _record(summary, "tune_dir", rid)
    return summary


def _record(summary: dict, key: str, run_id: str | None) -> None:
    if run_id is None:
        return
    summary["mlflow_run_id"] = run_id
    path = Path(summary[key]) / "summary.json"
    if path.is_file():
        atomic.write_json(path, summary)


def _safely(cfg: Config, what: str, work: Callable[[Session], str]) -> str | None:
    uri = cfg.mlflow_uri
    started = time.perf_counter()
    # MLflow writes run links for a tracking server on stdout, which carries results only
    with contextlib.redirect_stdout(sys.stderr):
        try:
            run_id = work(Session(cfg, uri))
        except Exception as exc:  # a tracking failure must never lose the training
            text = str(exc).strip().splitlines()
            log.warning("MLflow: could not log %s to %s (%s%s); the results on disk are "
                        "complete", what, redact(uri), type(exc).__name__,
                        f": {text[0]}" if text else "")
            return None
    log.info("MLflow: logged %s as run %s to %s (%.1fs)", what, run_id, redact(uri),
             time.perf_counter() - started)
    return run_id


def redact(uri: str) -> str:
    """The URI without a password, for log lines."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- params


def flat_params(raw: dict, model: type[BaseModel] = Config, prefix: str = "") -> dict[str, str]:
    """A resolved config as MLflow params: one dotted key per setting (``model.type``,
    ``train.early_stopping.patience``), values as YAML/JSON text (lists ``[4]``, ``null``);
    the tracking section (where logs go, not what was trained) is left out."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not prefix and key == "tracking":
            continue
        field = model.model_fields.get(key)
        ann = getattr(field, "annotation", None)
        if isinstance(value, dict) and isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(flat_params(value, ann, f"{prefix}{key}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[f"{prefix}{key}"] = text if len(text) <= 6000 else text[:5997] + "..."
    return out


def _finite(value: Any) -> float | None:
    """A metric value: a finite real number (NumPy's too), else None (not logged)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ms(iso: str | None) -> int | None:
    """Milliseconds since the epoch of a meta.json timestamp."""
    if not iso:
        return None
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def split_metrics(result: dict, prefix: str) -> dict[str, float]:
    """An evaluation result (metrics_<split>.json) as ``<prefix>_mae``, ``<prefix>_mase``, ...,
    ``<prefix>_persistence_mae``, each other baseline's ``<prefix>_<baseline>_mase`` (drift,
    moving_average, auto_arima, auto_ets: those scored), ``<prefix>_best_baseline_mase``, an
    ensemble's ``<prefix>_best_member_mase``, and ``<prefix>_coverage_80``/``_95``."""
    out = {f"{prefix}_{k}": (result.get("model") or {}).get(k) for k in SPLIT_METRICS}
    base = result.get("baselines") or {}
    out[f"{prefix}_persistence_mae"] = (base.get("persistence") or {}).get("mae")
    out.update(baseline_mases(base, prefix, result.get("best_baseline")))
    best = (result.get("members") or {}).get(result.get("best_member"))
    if isinstance(best, dict):  # an ensemble: its best member on the same points
        out[f"{prefix}_best_member_mase"] = best.get("mase")
    for level, iv in (result.get("intervals") or {}).items():
        try:
            out[f"{prefix}_coverage_{round(float(level) * 100)}"] = iv.get("coverage")
        except (TypeError, ValueError, AttributeError):
            continue
    return out


def baseline_mases(baselines: dict, prefix: str, best: str | None = None) -> dict[str, float]:
    """``<prefix>_<baseline>_mase`` for each baseline but persistence (always 1) and
    ``<prefix>_best_baseline_mase`` (the lowest MAE's)."""
    from stockrnn.metrics import best_baseline

    out = {f"{prefix}_{name}_mase": m.get("mase") for name, m in baselines.items()
           if name != "persistence" and isinstance(m, dict)}
    best = best_baseline(baselines, best)
    if best is not None:
        out[f"{prefix}_best_baseline_mase"] = baselines[best].get("mase")
    return out


# --------------------------------------------------------------------------- the store


class Session:
    """One command's connection to the tracking store and its experiment."""

    def __init__(self, cfg: Config, uri: str):
        mlflow = import_mlflow()
        if not log.isEnabledFor(logging.DEBUG):  # "Creating initial MLflow database tables"
            logging.getLogger("mlflow").setLevel(logging.WARNING)
        from mlflow.entities import Metric, Param

        self.Metric, self.Param = Metric, Param
        self.uri = uri
        artifacts = None
        if uri.startswith("sqlite:///"):
            db = Path(urllib.parse.unquote(uri[len("sqlite:///"):]).split("?")[0])
            db.parent.mkdir(parents=True, exist_ok=True)
            # MLflow would put the artifacts of a new experiment in ./mlruns of the working
            # folder (for cron: anywhere); keep them beside the store instead
            artifacts = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
        elif uri.startswith(("http://", "https://")):
            probe(uri)
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment(cfg.tracking.experiment or cfg.run_name, artifacts)
        self._logged_dirs: dict[str, str] = {}

    def _experiment(self, name: str, artifacts: str | None) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name, artifact_location=artifacts)
            except MlflowException:  # created by another process meanwhile
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    # ---- primitives ----------------------------------------------------------------------

    def start(self, name: str, tags: dict, parent: str | None = None,
              start_ms: int | None = None) -> str:
        tags = {k: str(v)[:8000] for k, v in tags.items() if v is not None}
        tags.setdefault("stockrnn_version", __version__)
        if parent is not None:
            tags["mlflow.parentRunId"] = parent
        run = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags,
                                     run_name=name)
        return run.info.run_id

    def log(self, run_id: str, params: dict[str, str] | None = None,
            metrics: dict[str, Any] | None = None,
            series: dict[str, list[tuple[int, Any]]] | None = None) -> None:
        """Params, one-off metrics (step 0) and per-step series, in batches."""
        now = int(time.time() * 1000)
        points = [(k, 0, v) for k, v in (metrics or {}).items()]
        points += [(k, step, v) for k, steps in (series or {}).items() for step, v in steps]
        ms = [self.Metric(k, x, now, int(step)) for k, step, v in points
              if (x := _finite(v)) is not None]
        ps = [self.Param(k, v) for k, v in (params or {}).items()]
        self.client.log_batch(run_id, metrics=ms, params=ps)  # MLflow splits it in requests

    def files(self, run_id: str, folder: Path, names=None, under: str | None = None) -> None:
        """Files of ``folder`` (``names``, or all plain files) and its plots/ as artifacts."""
        if not folder.is_dir():
            return
        picked = [folder / n for n in names] if names is not None else sorted(folder.iterdir())
        for path in picked:
            if path.is_file():
                self.client.log_artifact(run_id, str(path), under)
        plots = folder / "plots"
        if plots.is_dir() and any(plots.iterdir()):
            self.client.log_artifacts(run_id, str(plots),
                                      "plots" if under is None else f"{under}/plots")

    def end(self, run_id: str, ok: bool = True, end_ms: int | None = None) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED", end_time=end_ms)

    def guarded(self, run_id: str, work: Callable[[], None]) -> str:
        """``work()``, then the run is FINISHED (FAILED, and the error raised, if it fails)."""
        try:
            work()
        except BaseException:
            with contextlib.suppress(Exception):
                self.end(run_id, ok=False)
            raise
        return run_id

    # ---- a run directory -----------------------------------------------------------------

    def run_dir(self, run: RunDir, parent: str | None = None, name: str | None = None,
                tags: dict | None = None, metrics: dict | None = None) -> str:
        """Log one run directory; record the MLflow run id in its meta.json."""
        meta = run.meta()
        try:
            import yaml

            raw = yaml.safe_load(run.config.read_text()) or {}
        except (OSError, ValueError, ImportError) as exc:
            log.debug("no params for %s: %s", run.path, exc)
            raw = {}
        rid = self.start(name or f"{run.name}/{run.path.name}", {
            "ticker": meta.get("ticker"), "model_type": meta.get("model_type"),
            "backend": meta.get("backend"), "run_dir": str(run.path.resolve()),
            "status": meta.get("status"), **(tags or {})}, parent, _ms(meta.get("created")))

        def work():
            series = {}
            if run.history.is_file():
                import pandas as pd

                h = pd.read_csv(run.history)
                steps = h["epoch"] if "epoch" in h else range(len(h))
                series = {c: list(zip(steps, h[c], strict=True)) for c in h.columns
                          if c != "epoch"}
            facts = {k: meta.get(k) for k in FACTS}
            for split in ("test", "val"):
                result = _read_json(run.path / f"metrics_{split}.json")
                if result is not None:
                    facts.update(split_metrics(result, split))
            facts.update(metrics or {})
            self.log(rid, params=flat_params(raw) if isinstance(raw, dict) else {},
                     metrics=facts, series=series)
            run.update_meta(mlflow_run_id=rid)
            self.files(rid, run.path, RUN_FILES)
            self.end(rid, end_ms=_ms(meta.get("finished")))

        self._logged_dirs[str(run.path)] = rid
        return self.guarded(rid, work)

    def _group_tags(self, cfg: Config, kind: str, folder: str) -> dict:
        return {"kind": kind, f"{kind}_dir": str(Path(folder).resolve()),
                "model_type": cfg.model.type, "backend": cfg.backend,
                "ticker": None if cfg.is_batch else cfg.data.ticker.upper()}

    # ---- batch ---------------------------------------------------------------------------

    def batch(self, cfg: Config, summary: dict) -> str:
        folder = Path(summary["batch_dir"])
        rows = summary["tickers"]
        pid = self.start(f"batch {folder.name}", {
            **self._group_tags(cfg, "batch", str(folder)), "scope": summary.get("scope"),
            "tickers": ",".join(r["ticker"] for r in rows)})

        def work():
            metrics = {"tickers_ok": summary.get("ok"), "tickers_failed": len(summary.get(
                "failed", [])), "seconds": summary.get("seconds")}
            series = {}
            if summary.get("global_run"):  # one global model: its history is the batch's
                grun = RunDir(summary["global_run"])
                if grun.history.is_file():
                    import pandas as pd

                    h = pd.read_csv(grun.history)
                    series = {c: list(zip(h["epoch"], h[c], strict=True)) for c in h.columns
                              if c != "epoch"}
                metrics.update({k: grun.meta().get(k) for k in FACTS})
            self.log(pid, params=flat_params(cfg.to_dict()), metrics=metrics, series=series)
            for row in rows:
                path = row.get("run_dir")
                if row.get("status") == "ok" and path and Path(path, "meta.json").is_file():
                    self.run_dir(RunDir(path), pid, row["ticker"])
                else:
                    cid = self.start(row["ticker"], {"ticker": row["ticker"],
                                                     "error": row.get("error"),
                                                     "run_dir": path}, pid)
                    self.end(cid, ok=False)
            self.files(pid, folder)
            self.end(pid)

        return self.guarded(pid, work)

    # ---- backtest ------------------------------------------------------------------------

    def backtest(self, cfg: Config, summary: dict) -> str:
        folder = Path(summary["backtest_dir"])
        if "tickers" not in summary:
            return self._backtest_ticker(cfg, summary, None)
        pid = self.start(f"backtest {folder.name}", {
            **self._group_tags(cfg, "backtest", str(folder)),
            "tickers": ",".join(summary["tickers"])})

        def work():
            self.log(pid, params=flat_params(cfg.to_dict()),
                     metrics={"seconds": summary.get("seconds")})
            for ticker, sub in summary["tickers"].items():
                self._backtest_ticker(cfg.for_ticker(ticker), sub, pid)
            self.files(pid, folder, ["config.yaml", "summary.json"])
            self.end(pid)

        return self.guarded(pid, work)

    def _backtest_ticker(self, cfg: Config, summary: dict, parent: str | None) -> str:
        folder = Path(summary["backtest_dir"])
        name = f"backtest {folder.name}" if parent is None else summary["ticker"]
        pid = self.start(name, {**self._group_tags(cfg, "backtest", str(folder)),
                                "refit": summary.get("refit"), "window": summary.get("window")},
                         parent)

        def work():
            pooled = summary.get("pooled") or {}
            metrics = {f"pooled_{k}": v for k, v in (pooled.get("model") or {}).items()}
            metrics["pooled_persistence_mae"] = (pooled.get("baselines", {})
                                                 .get("persistence", {}).get("mae"))
            metrics.update(baseline_mases(pooled.get("baselines") or {}, "pooled",
                                          pooled.get("best_baseline")))
            metrics["pooled_versus_best_dm_p_value"] = (pooled.get("versus_best")
                                                        or {}).get("dm_p_value")
            metrics.update({"pooled_n": pooled.get("n"), "folds": len(summary["folds"]),
                            "seconds": summary.get("seconds")})
            trading = summary.get("trading") or {}
            for who in ("strategy", "drift_strategy", "buy_and_hold"):
                for k, v in ((trading.get(who) or {}).get("net") or {}).items():
                    metrics[f"{who}_net_{k}"] = v
            self.log(pid, params=flat_params(cfg.to_dict()), metrics=metrics)
            for row in summary["folds"]:
                self._fold(row, pid)
            self.files(pid, folder, ["config.yaml", "summary.json", "folds.csv",
                                     "predictions.csv"])
            self.end(pid)

        return self.guarded(pid, work)

    def _fold(self, row: dict, parent: str) -> str:
        k = row["fold"]
        run = RunDir(row["run_dir"])
        tags = {"fold": k, "first": row.get("first"), "last": row.get("last")}
        metrics = {"test_mae": row["model"].get("mae"), "test_mase": row["model"].get("mase"),
                   "test_directional_accuracy": row["model"].get("directional_accuracy"),
                   "test_persistence_mae": row.get("persistence", {}).get("mae"),
                   **{f"test_{b}_mase": (row.get(b) or {}).get("mase")
                      for b in ("drift", "moving_average", "auto_arima", "auto_ets") if b in row},
                   "test_n": row.get("n"), "train_rows": row.get("train_rows")}
        own = run.path.name == f"{k:02d}" and str(run.path) not in self._logged_dirs
        if own and run.meta_file.is_file():  # the fold's own model: its whole run directory
            return self.run_dir(run, parent, f"fold {k}", tags, metrics)
        cid = self.start(f"fold {k}", {**tags, "model_run_dir": str(run.path.resolve()),
                                       "model_mlflow_run_id":
                                           self._logged_dirs.get(str(run.path))}, parent)
        return self.guarded(cid, lambda: (self.log(cid, metrics=metrics), self.end(cid)))

    # ---- tune ----------------------------------------------------------------------------

    def tune(self, cfg: Config, summary: dict) -> str:
        folder = Path(summary["tune_dir"])
        pid = self.start(f"tune {folder.name}", self._group_tags(cfg, "tune", str(folder)))

        def work():
            test = summary.get("test") or {}
            self.log(pid, params=flat_params(cfg.to_dict()), metrics={
                "trials": summary.get("trials"),
                "default_val_loss": (summary.get("default") or {}).get("val_loss"),
                "best_val_loss": (summary.get("best") or {}).get("val_loss"),
                "best_trial": (summary.get("best") or {}).get("trial"),
                "retrained_val_loss": summary.get("retrained_val_loss"),
                **{f"test_{k}": v for k, v in test.items()}})
            space = summary.get("space") or {}
            for row in summary.get("results", []):
                cid = self.start(f"trial {row['trial']}", {
                    "trial": row["trial"], "state": row.get("state"),
                    "best": str(row["trial"] == summary["best"]["trial"]).lower()}, pid)
                self.guarded(cid, lambda cid=cid, row=row: (self.log(
                    cid, params={k: json.dumps(row[k]) for k in space if k in row},
                    metrics={"val_loss": row.get("val_loss"), "epochs": row.get("epochs"),
                             "seconds": row.get("seconds")}), self.end(cid)))
            if summary.get("run_dir") and Path(summary["run_dir"], "meta.json").is_file():
                self.run_dir(RunDir(summary["run_dir"]), pid, "best (retrained)",
                             {"role": "retrained_best"})
            self.files(pid, folder, ["best.yaml", "trials.csv", "summary.json"])
            self.end(pid)

        return self.guarded(pid, work)


# --------------------------------------------------------------------------- reachability


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise Unreachable when nothing accepts a connection at the server of ``uri``, at once
    instead of after MLflow's retries (minutes)."""
    parts = urllib.parse.urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            pass
    except OSError as exc:
        raise Unreachable(f"no answer at {parts.hostname}:{port}: "
                          f"{exc.strerror or type(exc).__name__}") from None
