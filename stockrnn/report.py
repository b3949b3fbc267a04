"""``stockrnn report``: one self-contained HTML page a person opens (no server, no network).

    stockrnn report RUN|BATCH_DIR|BACKTEST_DIR [--output FILE]    -> <that dir>/report.html

What the page holds, by the kind of directory it is given:

* a run (``meta.json``): what was trained on what data (ticker, dates, rows, config highlights,
  model, epochs, backend, library versions), the test table beside the baselines (from
  ``metrics_test.json``; the run is evaluated first when it is missing) with a plain-language
  verdict, interval coverage, the loss, predictions and residuals plots, and the forecast with
  its bands (``forecast.csv``, ``plots/forecast.png``);
* a batch (``summary.json`` with a ``tickers`` list): the leaderboard of its tickers, each
  linked to its own section (the run's page, as above);
* a backtest (``summary.json`` with ``folds``, or a ``tickers`` dict of those): the fold table,
  the pooled table, the Diebold-Mariano verdict, the trading table and the fold-MASE,
  cumulative-error and equity plots (per ticker for a multi-ticker backtest).

Everything is inline: the plots are base64 PNG data URIs, the CSS sits in a ``<style>``
element, there is no script, and a Content-Security-Policy meta tag forbids loading anything
else, so the file can be mailed, archived or opened offline on a phone. A missing piece (no
forecast yet, a plot that was never drawn, a failed ticker) is a note on the page, never an
error. The page is rendered from ``templates/report.html.j2`` (Jinja2, autoescaped) and written
atomically.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import logging
import os
import re
import struct
from pathlib import Path

from stockrnn import __version__, atomic, render, runs
from stockrnn.errors import RunError, StockRNNError
from stockrnn.metrics import best_baseline

log = logging.getLogger(__name__)

REPORT = "report.html"
SUMMARY = "summary.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# a batch page embeds the plots of this many tickers (about 250 KB each); the others show
# their tables, and each run's own report.html has its plots
MAX_TICKERS_WITH_PLOTS = 20
KINDS = ("run", "batch", "backtest")

RUN_PLOTS = (("loss", "loss.png", "Training and validation loss per epoch"),
             ("predictions", "predictions_test.png",
              "Test split: actual price, model and persistence, one step ahead"),
             ("residuals", "residuals_test.png", "Test split: residuals (actual - forecast)"))
BACKTEST_PLOTS = (("fold_mase", "fold_mase.png", "Test MASE per fold (below 1 beats persistence)"),
                  ("cumulative_error", "cumulative_error.png",
                   "Cumulative |error| of the model minus persistence's (below 0: the model is "
                   "ahead)"),
                  ("equity", "equity.png", "Growth of 1: the strategies, net and gross of costs"))


# --------------------------------------------------------------------------- what is it


def detect(ref: str | os.PathLike, runs_dir=None) -> tuple[str, Path]:
    """``("run" | "batch" | "backtest", directory)`` for a run directory or run name, a batch
    directory or a backtest directory; RunError (exit 1) for anything else."""
    path = Path(ref)
    if (path / "meta.json").is_file():
        return "run", path
    if (path / SUMMARY).is_file():
        summary = _read_json(path / SUMMARY)
        if "folds" in summary or isinstance(summary.get("tickers"), dict):
            return "backtest", path
        if isinstance(summary.get("tickers"), list):
            return "batch", path
        raise RunError(f"{path}/{SUMMARY} is neither a batch's (a 'tickers' list) nor a "
                       "backtest's ('folds'): `stockrnn report` takes a run directory or run "
                       "name, a batch directory or a backtest directory")
    try:
        return "run", runs.resolve(str(ref), runs_dir).path
    except RunError as exc:
        if path.is_dir() and not (path / runs.LATEST).exists():
            raise RunError(f"{path}: not a run, batch or backtest directory (no meta.json or "
                           f"{SUMMARY} in it)") from None
        raise RunError(f"{exc}; `stockrnn report` takes a run directory or run name, a batch "
                       "directory or a backtest directory") from None


# --------------------------------------------------------------------------- the page


def write_report(ref: str | os.PathLike, output: str | os.PathLike | None = None,
                 runs_dir=None) -> Path:
    """Render the page of ``ref`` (see ``detect``) and write it atomically to ``output``
    (default: ``report.html`` inside the directory); returns the path written."""
    kind, path = detect(ref, runs_dir)
    ctx = context(kind, path)
    out = Path(output) if output is not None else path / REPORT
    atomic.write_text(out, render_html(ctx))
    return out


def write_batch_reports(summary: dict) -> list[Path]:
    """After a batch: each successful ticker's run page, then the batch page (written last,
    also returned last)."""
    batch_dir = Path(summary["batch_dir"])
    written = []
    for row in summary.get("tickers", []):
        run_dir = _locate(row.get("run_dir"), batch_dir)
        if row.get("status") != "ok" or run_dir is None:
            continue
        try:
            written.append(write_report(run_dir))
        except StockRNNError as exc:  # one unreadable run must not cost the batch its page
            log.warning("%s: no report written: %s", row.get("ticker"), exc)
    written.append(write_report(batch_dir))
    return written


def context(kind: str, path: Path) -> dict:
    """Everything the template shows for a directory of ``kind``."""
    builders = {"run": run_context, "batch": batch_context, "backtest": backtest_context}
    try:
        body = builders[kind](path)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RunError(f"{path}: its files are not in the format this stockrnn "
                       f"({__version__}) writes ({type(exc).__name__}: {exc})") from None
    if kind == "run":
        body = {"title": body["title"], "run": body}
    return {"kind": kind, "path": str(path), "version": __version__,
            "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), **body}


def render_html(ctx: dict) -> str:
    return _environment().get_template("report.html.j2").render(**ctx)


def _environment():
    import jinja2

    # a key an older or newer file lacks renders as "-" (ChainableUndefined), never an error
    env = jinja2.Environment(loader=jinja2.PackageLoader("stockrnn", "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)

    def known(v):
        return None if isinstance(v, jinja2.Undefined) or isinstance(v, str) else v

    env.filters["num"] = lambda v, spec=".4f": render.cell(known(v), spec)
    env.filters["pct"] = lambda v: render.percent(known(v))
    env.filters["mape"] = lambda v: render.cell(known(v), ".2f") + ("%" if known(v) is not None
                                                                      else "")
    return env


# --------------------------------------------------------------------------- a run


def run_context(path: Path, *, with_plots: bool = True) -> dict:
    """A run's page: facts, the test evaluation (run first when missing), verdict, plots and
    forecast."""
    run = runs.RunDir(path)
    meta = run.meta()
    cfg = _read_yaml(run.config)
    notes = []
    if not cfg:
        notes.append(f"no readable config.yaml in {run.path}: config highlights are missing")
    metrics, eval_note = _metrics(run)
    ticker = meta.get("ticker") or ", ".join(meta.get("tickers") or []) or "?"
    model = meta.get("model_type") or _get(cfg, "model", "type") or "?"
    plots = {}
    for key, name, caption in RUN_PLOTS:
        plots[key] = _image(run.plots / name, caption) if with_plots else None
    forecast, forecast_note = _forecast(run)
    return {
        "title": f"{model} on {ticker}",
        "ticker": ticker, "model": model, "status": run.status, "run_dir": str(run.path),
        "facts": run_facts(meta, cfg), "versions": meta.get("versions") or {},
        "notes": notes, "metrics": metrics, "eval_note": eval_note,
        "eval_notes": (metrics.get("notes") or []) if metrics else [],
        "rows": _eval_rows(metrics) if metrics else [],
        "per_step": [s["mase"] for s in metrics["model"].get("per_step", [])] if metrics else [],
        "coverage": _coverage(metrics["intervals"]) if metrics else [],
        "verdict": run_verdict(metrics) if metrics else None,
        "plots": plots, "with_plots": with_plots,
        "forecast": forecast, "forecast_note": forecast_note,
        "forecast_plot": (_image(run.plots / "forecast.png", "Forecast with its 80% and 95% "
                                 "intervals") if with_plots and forecast else None),
    }


def run_facts(meta: dict, cfg: dict) -> list[tuple[str, str]]:
    """What was trained on what data, as (label, text) rows."""
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    facts = [("ticker", meta.get("ticker") or ", ".join(meta.get("tickers") or []) or "-")]
    source = _get(cfg, "data", "source")
    interval = _get(cfg, "data", "interval")
    if data.get("rows") is not None:
        facts.append(("data", f"{data['rows']} rows, {data.get('first')} .. {data.get('last')}"
                      + (f" ({interval} bars from {source})" if source else "")))
    elif meta.get("scope") == "global":
        facts.append(("data", f"one global model trained on {len(data)} tickers' windows"))
    splits = data.get("splits") or {}
    if splits:
        facts.append(("splits", "; ".join(
            f"{name} {s.get('samples', '-')} windows, {s.get('first')} .. {s.get('last')}"
            for name, s in splits.items())))
    w = cfg.get("window") or {}
    if w:
        facts.append(("windows", f"look_back {w.get('look_back')}, foresight "
                                 f"{w.get('foresight')}, horizon {w.get('horizon')}"))
    sc = cfg.get("scaling") or {}
    if sc:
        facts.append(("target", f"{sc.get('target_transform')} ({sc.get('scaler')} scaler "
                                f"fitted on the training split)"))
    facts.append(("model", _model_text(meta, cfg)))
    facts.append(("training", _training_text(meta, cfg)))
    if meta.get("backend"):
        facts.append(("backend", f"{meta['backend']}, seed {meta.get('seed', '-')}"))
    when = meta.get("finished") or meta.get("created")
    if when:
        facts.append(("trained", f"{when} ({meta.get('status', '?')})"))
    if meta.get("scope") == "global" and meta.get("global_run"):
        facts.append(("global model", str(meta["global_run"])))
    return facts


def _model_text(meta: dict, cfg: dict) -> str:
    m = cfg.get("model") or {}
    kind = meta.get("model_type") or m.get("type") or "?"
    if kind == "ensemble":
        names = [x.get("name", "?") for x in meta.get("members") or []]
        params = meta.get("parameters")
        return (f"ensemble, the mean of {len(names)} members ({', '.join(names)}"
                + (f"; {params} parameters)" if params else ")"))
    if "conv" in kind:
        shape = (f"filters {m.get('filters')}, kernel {m.get('kernel_size')}, "
                 f"{m.get('conv_layers')} conv layer(s)")
    else:
        shape = f"units {m.get('units')}"
        if m.get("bidirectional"):
            shape += ", bidirectional"
    if m.get("dropout"):
        shape += f", dropout {m.get('dropout')}"
    params = meta.get("parameters")
    return f"{kind} ({shape}" + (f"; {params} parameters)" if params else ")") if m else kind


def _training_text(meta: dict, cfg: dict) -> str:
    t = cfg.get("train") or {}
    parts = []
    members = meta.get("members") or []
    if meta.get("epochs_run") is not None and members:
        parts.append(f"{meta['epochs_run']} epochs over {len(members)} members (each at most "
                     f"{t.get('epochs', '?')})")
    elif meta.get("epochs_run") is not None:
        parts.append(f"{meta['epochs_run']} of {t.get('epochs', '?')} epochs")
    if meta.get("best_val_loss") is not None:
        parts.append(runs.best_line(meta))
    if t:
        parts.append(f"{t.get('optimizer')} lr {t.get('learning_rate')}, loss {t.get('loss')}, "
                     f"batch {t.get('batch_size')}")
    if meta.get("train_seconds") is not None:
        parts.append(f"{meta['train_seconds']:.1f}s")
    return "; ".join(parts) or "-"


def _metrics(run: runs.RunDir) -> tuple[dict | None, str | None]:
    """metrics_test.json, or the run evaluated now when it is missing (a note when that
    cannot be done)."""
    try:
        metrics = json.loads((run.path / "metrics_test.json").read_text())
        if _complete(metrics):
            return metrics, None
    except (OSError, ValueError):
        pass
    from stockrnn import stages

    log.info("%s has no test metrics yet: evaluating it", run.path)
    try:
        _, metrics = stages.evaluate(str(run.path), "test")
    except StockRNNError as exc:
        return None, f"not evaluated: {exc}"
    return metrics, None


def _complete(metrics) -> bool:
    """metrics_test.json has what the page shows (else the run is evaluated again)."""
    try:
        return all(k in metrics for k in ("n", "first", "last", "horizon", "intervals")) and \
            all(k in metrics["model"] for k in ("mae", "mase")) and \
            "mae" in metrics["baselines"]["persistence"]
    except (KeyError, TypeError):
        return False


def _eval_rows(metrics: dict) -> list[dict]:
    """The model, an ensemble's members, then the baselines."""
    members = [(f"member {n}", m) for n, m in (metrics.get("members") or {}).items()]
    return [{"name": name, **m} for name, m in
            [("model", metrics["model"]), *members, *metrics["baselines"].items()]]


def _coverage(intervals: dict) -> list[dict]:
    return [{"level": float(k), "coverage": v.get("coverage")} for k, v in intervals.items()]


def _forecast(run: runs.RunDir) -> tuple[dict | None, str | None]:
    path = run.path / "forecast.csv"
    if not path.is_file():
        return None, (f"no forecast yet: stockrnn predict --run {run.path} writes "
                      "forecast.csv and plots/forecast.png")
    try:
        with path.open(newline="") as fh:
            rows = [{"date": r["date"], **{c: _float(r.get(c)) for c in render.FORECAST_COLUMNS},
                     "recursive": (r.get("recursive") or "").strip().lower() == "true"}
                    for r in csv.DictReader(fh)]
    except (OSError, KeyError, csv.Error) as exc:
        return None, f"forecast.csv is unreadable: {exc}"
    if not rows:
        return None, "forecast.csv has no rows"
    return {"rows": rows, "recursive": any(r["recursive"] for r in rows)}, None


def run_verdict(metrics: dict) -> dict:
    """The test result in words: MASE against persistence, how the model compares with the
    best baseline (the lowest MAE on the same points), and the direction test."""
    m, p = metrics["model"], metrics["baselines"]["persistence"]
    mase, n = m["mase"], metrics["n"]
    change = (1.0 - mase) * 100.0
    if abs(change) < 0.5:
        tone, headline = "neutral", "About as good as \u201ctomorrow = today\u201d"
    elif mase < 1.0:
        tone, headline = "good", "Lower error than \u201ctomorrow = today\u201d on this test split"
    else:
        tone, headline = "bad", "Worse than \u201ctomorrow = today\u201d"
    base = metrics["baselines"]
    best = best_baseline(base, metrics.get("best_baseline"))
    if best not in (None, "persistence") and base[best]["mae"] > 0:
        gain = (1.0 - m["mae"] / base[best]["mae"]) * 100.0
        if abs(gain) < 0.5:
            tone, headline = "neutral", f"About as good as the best baseline, {best}"
        elif gain > 0:
            tone, headline = "good", "Lower error than every baseline on this test split"
        else:
            tone, headline = "bad", f"Worse than the best baseline, {best}"
    side = "lower" if mase < 1.0 else "higher"
    lines = [f"MASE {mase:.4f}: the model's mean absolute error ({m['mae']:.4f}) is "
             f"{abs(change):.2f}% {side} than the persistence forecast's ({p['mae']:.4f}) on the "
             f"same {n} test points ({metrics['first']} .. {metrics['last']})."]
    vs = render.versus_best(m, base, best)
    if vs is not None:
        lines.append(f"Against every baseline on those points ({', '.join(base)}): the "
                     f"model's MAE is {vs}.")
    if metrics.get("best_member"):
        lines.append(f"Against its members on those points: the ensemble's "
                     f"{render.versus_member(metrics)}.")
    lines.append(_direction_line(m))
    if mase < 1.0:
        lines.append("One test split cannot tell an edge from luck: a backtest (stockrnn "
                     "backtest) tests the difference from persistence with Diebold-Mariano over "
                     "many folds.")
    return {"tone": tone, "headline": headline, "lines": lines}


def _direction_line(m: dict) -> str:
    acc, pval = m.get("directional_accuracy"), m.get("direction_p_value")
    if acc is None or pval is None:
        return ("The model never forecast a move away from the last price, so there are no "
                "direction calls to test.")
    if pval < 0.05:
        how = "better" if acc > 0.5 else "worse"
        return (f"It called the direction of the move right {render.percent(acc)} of the time: "
                f"{how} than a coin flip (binomial p = {pval:.3g}).")
    return (f"It called the direction of the move right {render.percent(acc)} of the time, "
            f"which a coin flip does as well (binomial p = {pval:.3f}): no evidence of skill.")


# --------------------------------------------------------------------------- a batch


def batch_context(path: Path) -> dict:
    """A batch's page: the leaderboard, then a section per ticker."""
    summary = _read_json(path / SUMMARY)
    rows = summary.get("tickers") or []
    board = sorted(rows, key=lambda r: (r.get("status") != "ok", r.get("mase") is None,
                                        r.get("mase") or 0.0))
    order = {id(r): i for i, r in enumerate(board)}
    sections = []
    for row in rows:
        ticker = str(row.get("ticker"))
        section = {"ticker": ticker, "anchor": anchor(ticker), "status": row.get("status"),
                   "error": row.get("error"), "run": None, "note": None}
        run_dir = _locate(row.get("run_dir"), path)
        if row.get("status") != "ok":
            section["note"] = f"failed: {row.get('error') or 'no error recorded'}"
        elif run_dir is None:
            section["note"] = f"its run directory {row.get('run_dir')} is not there any more"
        else:
            try:
                section["run"] = run_context(
                    run_dir, with_plots=order[id(row)] < MAX_TICKERS_WITH_PLOTS)
            except StockRNNError as exc:
                section["note"] = str(exc)
        sections.append(section)
    ok = sum(r.get("status") == "ok" for r in rows)
    facts = [("config", summary.get("config", "-")),
             ("tickers", f"{len(rows)}: {ok} ok, {len(rows) - ok} failed"),
             ("scope", summary.get("scope") or "per_ticker"),
             ("ran", f"{summary.get('started', '-')}, {render.cell(summary.get('seconds'), '.1f')}"
                     f"s, {_how(summary)}")]
    if summary.get("global_run"):
        facts.append(("global model", str(summary["global_run"])))
    return {"title": f"batch {summary.get('config', path.name)}", "facts": facts,
            "board": [{**r, "anchor": anchor(str(r.get("ticker")))} for r in board],
            "sections": sections, "max_plots": MAX_TICKERS_WITH_PLOTS,
            "plots_capped": len([r for r in rows if r.get("status") == "ok"])
            > MAX_TICKERS_WITH_PLOTS}


def _how(summary: dict) -> str:
    if summary.get("executor") == "ray":
        return f"Ray at {summary.get('ray_address') or 'a local instance'}"
    return f"{summary.get('jobs', 1)} job(s) x {summary.get('threads_per_job', '-')} thread(s)"


def anchor(ticker: str) -> str:
    """The page id of a ticker's section (letters, digits, ``_-``)."""
    return "t-" + re.sub(r"[^A-Za-z0-9_-]", "_", ticker)


# --------------------------------------------------------------------------- a backtest


def backtest_context(path: Path) -> dict:
    """A backtest's page (a section per ticker for a multi-ticker backtest)."""
    summary = _read_json(path / SUMMARY)
    per = summary.get("tickers")
    if not isinstance(per, dict):
        one = backtest_one(summary, path)
        return {"title": f"backtest of {one['ticker']}", "backtests": [one], "overview": None}
    backtests = []
    for ticker, sub in per.items():
        sub_dir = path / "tickers" / re.sub(r"[^A-Za-z0-9._-]", "_", ticker)
        if not sub_dir.is_dir():
            sub_dir = _locate(sub.get("backtest_dir"), path) or sub_dir
        backtests.append(backtest_one(sub, sub_dir, prefix=anchor(ticker) + "-"))
    overview = [{"ticker": b["ticker"], "anchor": b["prefix"] + "backtest",
                 "folds": len(b["folds"]), "mase": b["pooled"]["model"]["mase"],
                 "dm_p_value": b["pooled"]["model"].get("dm_p_value"),
                 "verdict": b["pooled"].get("verdict"),
                 "strategy_net": _total(b["trading"], "strategy"),
                 "hold_net": _total(b["trading"], "buy_and_hold")} for b in backtests]
    return {"title": f"backtest of {summary.get('config', path.name)}: {len(per)} tickers",
            "backtests": backtests, "overview": overview}


def backtest_one(s: dict, path: Path, prefix: str = "") -> dict:
    """One ticker's backtest: facts, folds, pooled table, verdict, trading, plots."""
    cfg = _read_yaml(path / "config.yaml")
    fold_meta = _first_fold_meta(path)
    facts = [("ticker", s.get("ticker", "-")),
             ("folds", f"{len(s.get('folds', []))} folds, refit {s.get('refit')}, "
                       f"window {s.get('window')}")]
    if cfg:
        facts.append(("model", _model_text(fold_meta, cfg)))
        w = cfg.get("window") or {}
        facts.append(("windows", f"look_back {w.get('look_back')}, foresight "
                                 f"{w.get('foresight')}, horizon {w.get('horizon')}; target "
                                 f"{_get(cfg, 'scaling', 'target_transform')}"))
        facts.append(("data", f"{_get(cfg, 'data', 'interval')} bars from "
                              f"{_get(cfg, 'data', 'source')}"))
    if fold_meta.get("backend"):
        facts.append(("backend", f"{fold_meta['backend']}, seed {fold_meta.get('seed', '-')}"))
    facts.append(("ran", f"{render.cell(s.get('seconds'), '.1f')}s"))
    pooled = s["pooled"]
    trading = s.get("trading") or {}
    plots = {key: _image(path / "plots" / name, caption) for key, name, caption in BACKTEST_PLOTS}
    return {"ticker": s.get("ticker", "?"), "prefix": prefix, "dir": str(path), "facts": facts,
            "versions": fold_meta.get("versions") or {},
            "folds": [{**f, "best": render.fold_best(f)} for f in s.get("folds", [])],
            "pooled": pooled, "notes": pooled.get("notes") or [],
            "rows": _eval_rows(pooled), "coverage": _coverage(pooled.get("intervals", {})),
            "verdict": backtest_verdict(pooled, trading),
            "trading": trading, "trading_rows": _trading_rows(trading), "plots": plots}


def backtest_verdict(pooled: dict, trading: dict) -> dict:
    m = pooled["model"]
    verdict = pooled.get("verdict") or "not tested"
    tone = "good" if verdict.startswith("better") else \
        "bad" if verdict.startswith("worse") else "neutral"
    lines = [f"Pooled over {pooled['n']} forecast origins ({pooled['first']} .. "
             f"{pooled['last']}) the model's MASE is {render.cell(m.get('mase'), '.4f')}; the "
             f"Diebold-Mariano test on absolute errors (statistic "
             f"{render.cell(m.get('dm_statistic'), '.3f')}, p = "
             f"{render.cell(m.get('dm_p_value'), '.3f')}) finds it {verdict}.",
             _direction_line(m)]
    name = pooled.get("best_baseline")
    against = (pooled.get("versus_best") or {}).get("verdict") or ""
    vs = render.versus_best(m, pooled.get("baselines") or {}, name)
    if vs is not None:
        line = f"Against the best baseline: the model's MAE is {vs}"
        if against:
            line += f"; Diebold-Mariano finds it {against}"
        lines.append(line + ".")
    strat, hold = _total(trading, "strategy"), _total(trading, "buy_and_hold")
    if strat is not None and hold is not None:
        than = "more" if strat > hold else "less"
        lines.append(f"Net of costs, the model's sign strategy returned {render.percent(strat)}, "
                     f"{than} than buy-and-hold's {render.percent(hold)} on the same days.")
    headline = {"good": "An edge over \u201ctomorrow = today\u201d that is unlikely to be luck",
                "bad": "Worse than \u201ctomorrow = today\u201d, and not by luck",
                "neutral": "No edge over \u201ctomorrow = today\u201d that luck cannot explain"}
    if name not in (None, "persistence") and against:  # the best baseline decides
        tone = "good" if against.startswith("better") else \
            "bad" if against.startswith("worse") else "neutral"
        headline = {"good": "An edge over every baseline that is unlikely to be luck",
                    "bad": f"Worse than the best baseline, {name}, and not by luck",
                    "neutral": f"No edge over the best baseline, {name}, that luck cannot "
                               "explain"}
    return {"tone": tone, "headline": headline[tone], "lines": lines}


def _total(trading: dict, key: str) -> float | None:
    try:
        return trading[key]["net"]["total_return"]
    except (KeyError, TypeError):
        return None


def _trading_rows(t: dict) -> list[dict]:
    out = []
    for name, key in (("model signal", "strategy"), ("drift signal", "drift_strategy"),
                      ("buy and hold", "buy_and_hold")):
        for kind in ("gross", "net"):
            r = (t.get(key) or {}).get(kind)
            if r:
                out.append({"name": name, "kind": kind, **r})
    return out


def _first_fold_meta(path: Path) -> dict:
    for fold in sorted((path / "folds").glob("*")):
        try:
            return json.loads((fold / "meta.json").read_text())
        except (OSError, ValueError):
            continue
    return {}


# --------------------------------------------------------------------------- files


def _image(path: Path, caption: str) -> dict | None:
    """A PNG as a data URI with its pixel size, or None when it is missing or not a PNG."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(PNG_MAGIC) or len(data) < 24:
        log.warning("%s is not a PNG: left out of the report", path)
        return None
    width, height = struct.unpack(">II", data[16:24])
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode("ascii"),
            "width": width, "height": height, "caption": caption, "name": path.name}


def _locate(run_dir: str | None, near: Path) -> Path | None:
    """A path a summary recorded (relative to where that command ran), else the same path
    found under the runs folder ``near`` lives in (``<runs>/<name>/<kind>-X``)."""
    if not run_dir:
        return None
    path = Path(run_dir)
    if path.is_dir():
        return path
    root = near.resolve().parent.parent
    for i in range(len(path.parts)):
        candidate = root.joinpath(*path.parts[i:])
        if candidate.is_dir():
            return candidate
    return None


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} is not a JSON object")
    return obj


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        obj = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _get(cfg: dict, section: str, key: str):
    return (cfg.get(section) or {}).get(key)


def _float(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
