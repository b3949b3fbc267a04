"""Every table, CSV and JSON that stockrnn prints or writes, in one place.

One rule for missing values: ``-`` in a table, an empty field in CSV, ``null`` in JSON.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence

from stockrnn import metrics

MISSING = "-"


def cell(value, spec: str = "") -> str:
    """``value`` formatted for a table, or ``-`` when it is missing."""
    return MISSING if value is None else format(value, spec)


def percent(value) -> str:
    return cell(value, ".1%")


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, default=str) + "\n"


def to_csv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n",
                       extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)  # None is written as an empty field
    return buf.getvalue()


# --------------------------------------------------------------------------- prepare


def splits(ds) -> str:
    """One line per split of a prepared dataset: windows, rows, shapes."""
    meta = ds.meta()["splits"]
    return "".join(f"{name:5s} {len(sp):6d} windows  rows {meta[name]['first']}.."
                   f"{meta[name]['last']}  x{tuple(sp.x.shape)} y{tuple(sp.y.shape)}\n"
                   for name, sp in ds.splits.items())


# --------------------------------------------------------------------------- evaluate


def versus_best(model: dict, baselines: dict, best: str | None = None) -> str | None:
    """How the model's MAE compares with the best baseline's on the same points, in words:
    "0.42% lower than the best baseline's (auto_arima, MAE 6.5398)"; None without
    baselines."""
    best = metrics.best_baseline(baselines, best)
    if best is None or model.get("mae") is None:
        return None
    ref, mae = baselines[best]["mae"], model["mae"]
    if ref > 0:
        change = (1.0 - mae / ref) * 100.0
        how = (f"{abs(change):.2f}% {'lower' if change > 0 else 'higher'} than" if abs(change)
               >= 0.005 else "the same as")
    else:
        how = "the same as" if mae == ref else "higher than"
    return f"{how} the best baseline's ({best}, MAE {ref:.4f})"


def versus_member(result: dict) -> str:
    """How an ensemble's MAE compares with its best member's on the same points, in words."""
    best = result["best_member"]
    ref, mae = result["members"][best]["mae"], result["model"]["mae"]
    change = (1.0 - mae / ref) * 100.0 if ref > 0 else 0.0
    how = (f"{abs(change):.2f}% {'lower' if change > 0 else 'higher'} than" if abs(change) >= 0.005
           else "the same as")
    verdict = "beats" if mae < ref else "does not beat"
    return (f"MAE {mae:.4f} is {how} the best member's ({best}, MAE {ref:.4f}): it {verdict} "
            "its best member")


def evaluation(result: dict) -> str:
    """``evaluate``'s table: the model and every baseline on the same points."""
    def pct(v):
        return f"{MISSING:>6s}" if v is None else f"{100 * v:5.1f}%"

    lines = [f"{result['split']} split: {result['n']} points, {result['first']}..{result['last']}"
             f", horizon {result['horizon']}  (prices in data units)",
             f"{'forecast':15s} {'MAE':>9s} {'RMSE':>9s} {'MAPE':>7s} {'MASE':>7s} "
             f"{'dir.acc':>7s} {'p':>6s}"]
    rows = [("model", result["model"])] + [(f"  {name}", m) for name, m in
                                           (result.get("members") or {}).items()]
    rows += list(result["baselines"].items())
    for name, m in rows:
        lines.append(f"{name:15s} {m['mae']:9.4f} {m['rmse']:9.4f} {m['mape']:6.2f}% "
                     f"{m['mase']:7.4f} {pct(m['directional_accuracy'])} "
                     f"{cell(m['direction_p_value'], '6.3f'):>6s}")
    if result["horizon"] > 1:
        steps = result["model"]["per_step"]
        lines.append("model MASE per step: " + " ".join(f"{s['mase']:.3f}" for s in steps))
    lines += [f"note: {n}" for n in result.get("notes") or []]
    vs = versus_best(result["model"], result["baselines"], result.get("best_baseline"))
    if vs is not None:
        lines.append(f"verdict: the model's MAE ({result['model']['mae']:.4f}) is {vs}")
    if result.get("best_member"):
        lines.append(f"ensemble: {versus_member(result)}")
    cov = result["intervals"]
    lines.append("interval coverage: " + ", ".join(
        f"{float(k) * 100:.0f}% -> {v['coverage'] * 100:.1f}%" for k, v in cov.items()))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- predict

FORECAST_COLUMNS = ("forecast", "lower_80", "upper_80", "lower_95", "upper_95")


def forecast_rows(fc) -> dict:
    """A forecast as JSON-ready rows (``run --json``)."""
    return {"as_of": str(fc.as_of.date()), "rows": [
        {"date": str(d.date()), **{c: float(r[c]) for c in FORECAST_COLUMNS}}
        for d, r in fc.table.iterrows()]}


def forecast(fc, fmt: str) -> str:
    """A forecast as ``table``, ``csv`` or ``json``."""
    t = fc.table.copy()
    t.index = t.index.strftime("%Y-%m-%d")
    if fmt == "csv":
        return t.round(4).to_csv(index_label="date")
    if fmt == "json":
        rows = [{"date": d, **{c: round(float(r[c]), 4) for c in FORECAST_COLUMNS},
                 "recursive": bool(r["recursive"])} for d, r in t.iterrows()]
        return to_json({"as_of": str(fc.as_of.date()), "last_price": fc.last_price,
                        "recursive": fc.recursive, "forecast": rows})
    lines = [f"as of {fc.as_of.date()} (last price {fc.last_price:.4f})"
             + ("; steps past the trained horizon are fed back recursively (marked *)"
                if fc.recursive else ""),
             f"{'date':10s} {'forecast':>10s} {'80% interval':>23s} {'95% interval':>23s}"]
    for d, r in t.iterrows():
        mark = " *" if r["recursive"] else ""
        lines.append(f"{d:10s} {r['forecast']:10.4f} {r['lower_80']:11.4f}..{r['upper_80']:<11.4f}"
                     f" {r['lower_95']:11.4f}..{r['upper_95']:<11.4f}{mark}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- run, batch


def stage(stage) -> str:
    return f"{stage.name:9s} {stage.summary}"


def run_json(summary=None, error=None, stages=(), run_dir=None) -> str:
    """``run --json``: the summary (or, when a stage failed, the stages that finished and the
    run directory), its status and exit code, and the error if any."""
    import dataclasses

    out = summary.to_dict() if summary is not None else {
        "stages": [dataclasses.asdict(s) for s in stages], "run_dir": run_dir}
    out.update(status="ok" if error is None else "error",
               exit_code=0 if error is None else error.exit_code)
    if error is not None:
        out["error"] = str(error)
    return to_json(out)


BATCH_COLUMNS = ("ticker", "status", "error", "run_dir", "mase", "directional_accuracy",
                 "test_mae", "persistence_mae", "seconds", "host", "node")


def batch_table(rows: list[dict]) -> str:
    """One line per ticker of a batch: status, test metrics, seconds, run or error."""
    width = max([6, *(len(r["ticker"]) for r in rows)])
    out = [f"{'ticker':{width}s} {'status':6s} {'MASE':>7s} {'dir.acc':>7s} {'test MAE':>9s} "
           f"{'seconds':>7s}  run / error"]
    for r in rows:
        tail = r["run_dir"] or "" if r["status"] == "ok" else f"error: {r['error']}"
        out.append(f"{r['ticker']:{width}s} {r['status']:6s} {cell(r['mase'], '.4f'):>7s} "
                   f"{percent(r['directional_accuracy']):>7s} {cell(r['test_mae'], '.4f'):>9s} "
                   f"{cell(r['seconds'], '.1f'):>7s}  {tail}")
    return "\n".join(out) + "\n"


def batch_footer(summary: dict) -> str:
    how = "Ray" if summary.get("executor") == "ray" else f"{summary['jobs']} job(s)"
    return (f"{summary['ok']} ok, {len(summary['failed'])} failed in {summary['seconds']:.1f}s "
            f"({how}); summary: {summary['batch_dir']}/summary.json\n")


# --------------------------------------------------------------------------- compare

LEADERBOARD_COLUMNS = ("run", "model", "ticker", "look_back", "epochs", "test_mae", "mase",
                       "directional_accuracy", "train_seconds", "best_baseline",
                       "best_baseline_mase")


def leaderboard(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return to_json(rows)
    if fmt == "csv":
        return to_csv(rows, LEADERBOARD_COLUMNS)
    out = [f"{'model':10s} {'ticker':6s} {'look_back':>9s} {'epochs':>6s} {'test MAE':>9s} "
           f"{'MASE':>7s} {'dir.acc':>7s} {'train s':>7s}  {'best baseline (MASE)':25s}  run"]
    for r in rows:
        best = (f"{r['best_baseline']} ({cell(r.get('best_baseline_mase'), '.4f')})"
                if r.get("best_baseline") else MISSING)
        out.append(f"{r['model'] or MISSING:10s} {r['ticker'] or MISSING:6s} "
                   f"{cell(r['look_back'], 'd'):>9s} {cell(r['epochs'], 'd'):>6s} "
                   f"{cell(r['test_mae'], '.4f'):>9s} {cell(r['mase'], '.4f'):>7s} "
                   f"{percent(r['directional_accuracy']):>7s} "
                   f"{cell(r['train_seconds'], '.1f'):>7s}  {best:25s}  {r['run']}")
    if any(r["mase"] is None for r in rows):
        out.append(f"('{MISSING}': run `stockrnn evaluate --run RUN` to score it)")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- tune

TRIAL_COLUMNS = ("trial", "look_back", "units", "dropout", "learning_rate", "val_loss", "epochs",
                 "seconds", "state")


def trials_table(rows: list[dict], best: int) -> str:
    out = [f"{'trial':>5s} {'look_back':>9s} {'units':>5s} {'dropout':>7s} {'lr':>9s} "
           f"{'val_loss':>9s} {'epochs':>6s} {'seconds':>7s}"]
    for r in rows:
        mark = "  best" if r["trial"] == best else ("  default" if r["trial"] == 0 else "")
        out.append(f"{r['trial']:5d} {r['look_back']:9d} {r['units']:5d} {r['dropout']:7.3f} "
                   f"{r['learning_rate']:9.2e} {r['val_loss']:9.5f} {r['epochs']:6d} "
                   f"{r['seconds']:7.1f}{mark}")
    return "\n".join(out) + "\n"


def tune_footer(summary: dict) -> str:
    d, b, t = summary["default"], summary["best"], summary["test"]
    return (f"default val_loss {d['val_loss']:.5f}, best val_loss {b['val_loss']:.5f} "
            f"(trial {b['trial']}) -> {summary['best_yaml']}\n"
            f"retrained {summary['run_dir']}: test MASE {t['mase']:.4f} (MAE {t['mae']:.4f} "
            f"vs persistence {t['persistence_mae']:.4f})\n")


# --------------------------------------------------------------------------- runs list


def runs_list(items: Iterable[tuple[str, bool, str]]) -> str:
    """``runs list``: status, ``*`` for a run name's latest, path."""
    return "".join(f"{status:10s} {'*' if latest else ' '} {path}\n"
                   for status, latest, path in items)


# --------------------------------------------------------------------------- backtest

FOLD_BASELINES = ("drift", "moving_average", "auto_arima", "auto_ets")  # a MASE each, if scored
FOLD_COLUMNS = ("fold", "first", "last", "n", "train_rows", "mae", "mase",
                "directional_accuracy", "persistence_mae", "coverage_80", "coverage_95",
                "run_dir", "best_baseline", "best_baseline_mase",
                *(f"{b}_mase" for b in FOLD_BASELINES), "host", "node")


def fold_best(r: dict) -> tuple[str | None, float | None]:
    """A fold row's best baseline and its MASE (persistence's is 1 by definition)."""
    best = r.get("best_baseline")
    if best is None:
        return None, None
    return best, 1.0 if best == "persistence" else (r.get(best) or {}).get("mase")


def fold_csv_row(r: dict) -> dict:
    best, best_mase = fold_best(r)
    return {"fold": r["fold"], "first": r["first"], "last": r["last"], "n": r["n"],
            "train_rows": r["train_rows"], "mae": r["model"]["mae"], "mase": r["model"]["mase"],
            "directional_accuracy": r["model"]["directional_accuracy"],
            "persistence_mae": r["persistence"]["mae"], "coverage_80": r["coverage"]["0.8"],
            "coverage_95": r["coverage"]["0.95"], "run_dir": r["run_dir"],
            "best_baseline": best, "best_baseline_mase": best_mase,
            **{f"{b}_mase": (r.get(b) or {}).get("mase") for b in FOLD_BASELINES},
            "host": r.get("host"), "node": r.get("node")}


def backtest(summary: dict) -> str:
    """``backtest``'s text: the fold table, the pooled table with the verdict, the trading
    table (per ticker for a multi-ticker backtest)."""
    per = summary.get("tickers")
    if per is None:
        return _backtest_one(summary)
    return "\n".join(f"== {t}\n{_backtest_one(s)}" for t, s in per.items())


def _backtest_one(s: dict) -> str:
    lines = [f"{s['ticker']}: {len(s['folds'])} folds, refit {s['refit']}, window {s['window']}",
             f"{'fold':>4s} {'first':10s} {'last':10s} {'n':>5s} {'train':>6s} {'MAE':>9s} "
             f"{'MASE':>7s} {'dir.acc':>7s} {'cov80':>6s} {'cov95':>6s}  best baseline (MASE)"]
    for r in s["folds"]:
        m = r["model"]
        best, best_mase = fold_best(r)
        lines.append(f"{r['fold']:4d} {r['first']:10s} {r['last']:10s} {r['n']:5d} "
                     f"{r['train_rows']:6d} {m['mae']:9.4f} {m['mase']:7.4f} "
                     f"{percent(m['directional_accuracy']):>7s} "
                     f"{percent(r['coverage']['0.8']):>6s} {percent(r['coverage']['0.95']):>6s}"
                     f"  {best or MISSING} ({cell(best_mase, '.4f')})")
    p = s["pooled"]
    lines.append("")
    lines.append(f"pooled: {p['n']} points, {p['first']}..{p['last']}, horizon {p['horizon']}"
                 "  (prices in data units)")
    lines.append(f"{'forecast':15s} {'MAE':>9s} {'RMSE':>9s} {'MAPE':>7s} {'MASE':>7s} "
                 f"{'dir.acc':>7s} {'p':>6s}")
    for name, m in [("model", p["model"]), *p["baselines"].items()]:
        lines.append(f"{name:15s} {m['mae']:9.4f} {m['rmse']:9.4f} {m['mape']:6.2f}% "
                     f"{m['mase']:7.4f} {percent(m['directional_accuracy']):>7s} "
                     f"{cell(m['direction_p_value'], '6.3f'):>6s}")
    lines += [f"note: {n}" for n in p.get("notes") or []]
    lines.append("interval coverage: " + ", ".join(
        f"{float(k) * 100:.0f}% -> {percent(v['coverage'])}" for k, v in p["intervals"].items()))
    dm = p["model"]
    lines.append(f"verdict: the model is {p['verdict']}: Diebold-Mariano on absolute errors, "
                 f"statistic {cell(dm['dm_statistic'], '.3f')}; direction right "
                 f"{percent(dm['directional_accuracy'])} (binomial p = "
                 f"{cell(dm['direction_p_value'], '.3f')})")
    vs = versus_best(p["model"], p["baselines"], p.get("best_baseline"))
    if vs is not None:
        line = f"against the best baseline: the model's MAE ({dm['mae']:.4f}) is {vs}"
        against = (p.get("versus_best") or {}).get("verdict")
        if against:
            line += f"; Diebold-Mariano finds it {against}"
        lines.append(line)
    lines.append("")
    lines.append(_trading(s["trading"]))
    return "\n".join(lines) + "\n"


def _trading(t: dict) -> str:
    mode = "long/short" if t["short"] else "long/flat"
    head = (f"trading ({mode}, threshold {t['threshold']:g}, cost {t['cost_bps']:g} bps per "
            "unit of turnover; position from the forecast at each close, held to the next):")
    if "note" in t:
        return f"{head}\n  {t['note']}"
    lines = [head, f"{'strategy':18s} {'':5s} {'total':>8s} {'annual':>8s} {'vol':>7s} "
                   f"{'Sharpe':>7s} {'max DD':>8s} {'turnover':>8s} {'in mkt':>7s}"]
    for name, key in (("model signal", "strategy"), ("drift signal", "drift_strategy"),
                      ("buy and hold", "buy_and_hold")):
        for kind in ("gross", "net"):
            r = t[key][kind]
            lines.append(f"{name:18s} {kind:5s} {percent(r['total_return']):>8s} "
                         f"{percent(r['annual_return']):>8s} "
                         f"{percent(r['annual_volatility']):>7s} {cell(r['sharpe'], '.2f'):>7s} "
                         f"{percent(r['max_drawdown']):>8s} {cell(r['turnover'], '.0f'):>8s} "
                         f"{percent(r['exposure']):>7s}")
    return "\n".join(lines)
