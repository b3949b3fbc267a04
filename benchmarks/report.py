"""Render the results as Markdown and write benchmarks.md / benchmarks.json atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

NONE = "–"


def num(v, spec: str = ".2f", suffix: str = "") -> str:
    return NONE if not isinstance(v, int | float) else f"{v:{spec}}{suffix}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def render(res: dict) -> str:
    m, v = res["machine"], res["versions"]
    out = [f"# stockrnn benchmarks ({res['mode']} mode)", "",
           f"`{res['command']}` on {m['date']}, {num(res.get('elapsed_seconds'), '.0f')} s in "
           f"all. Load average at start {_load(m)}, at end {_load(res.get('machine_end', {}))} "
           f"(other processes on the machine make every timing noisier and slower).", "",
           "## Machine", "",
           *table(["CPU", "cores (usable)", "RAM", "OS"],
                  [[m["cpu_model"], f"{m['cores']} ({m['usable_cores']})",
                    f"{num(m['ram_gib'], '.1f')} GiB", m["os"]]]), "",
           "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    for r in res.get("reruns", []):
        out += [f"Re-measured later: section(s) {', '.join(r['sections'])} by "
                f"`{r['command']}` on {r['machine']['date']} "
                f"({num(r.get('elapsed_seconds'), '.0f')} s, load average at start "
                f"{_load(r['machine'])}); their figures replace that run's, the other sections "
                "are from the run above.", ""]
    for title, section, fn in (("Speed: stockrnn vs the lectures' recipe", "speed", _speed),
                               ("Command line", "commands", _commands),
                               ("prepare: dataset.build", "prepare", _prepare),
                               ("Forecast quality: every family beside AutoARIMA, AutoETS and the "
                                "oracle (default configs, test split)", "quality", _quality),
                               ("Covariates: configs/lstm_covariates.yaml with and without them",
                                "covariates", _covariates),
                               ("Many tickers: serial, --jobs 2, Ray; per-ticker vs global model",
                                "multi", _multi),
                               ("Many tickers at scale: 500 synthetic tickers, per-ticker models "
                                "and the global model", "many", _many),
                               ("Backtest: 5 folds of configs/lstm.yaml beside one run",
                                "backtest", _backtest),
                               ("Ray on two nodes: a head and a worker node on this machine",
                                "ray", _ray)):
        out += [f"## {title}", ""]
        data = res.get(section)
        if data is None:
            out += ["Not run.", ""]
        elif "skipped" in data:
            out += [f"Skipped: {data['skipped']}.", ""]
        elif "error" in data:
            out += [f"**ERROR**: {data['error']}", ""]
        else:
            out += fn(data) + [""]
    out += ["## Targets", ""] + _targets(res.get("targets", []))
    if res.get("errors"):
        out += ["", "## Errors", "", "Measurements that crashed (a bug to fix, not a miss):", "",
                *[f"- {e}" for e in res["errors"]]]
    return "\n".join(out).rstrip() + "\n"


def _load(m: dict) -> str:
    la = m.get("load_average")
    return "/".join(f"{x:.2f}" for x in la) if la else NONE


def _speed(s: dict) -> list[str]:
    out = [f"Same data (bundled GOOG sample, closing prices), look_back {s['look_back']}, "
           f"batch {s['batch_size']}, 70/15/15 split, {s['epochs']} epochs, early stopping off "
           f"(patience = epochs), {s['repeats']} repeat(s) (medians). Reference: the lectures' "
           "recipe, plain Keras (Python-loop windows, MinMaxScaler on the train split, "
           "`keras.Sequential`, `compile('adam', 'mae')`, `fit(X, y, validation_data=..., "
           "batch_size=32)`). stockrnn: `stages.train` with configs/<family>.yaml and all its "
           "callbacks (early stopping, best epoch, history, `--resume` backup, epoch log lines; "
           "log-return target, standard scaler, cached tf.data + `steps_per_execution` on "
           "TensorFlow, `steps_per_execution` batches in one compiled loop on JAX, recurrent "
           "layers unrolled on TensorFlow at this window (`model.unroll: auto`), the best epoch, history and backup "
           "kept in memory and written every `train.backup_every_s` = 5 s, which these short "
           "trainings never reach before their end). "
           f"ms/epoch: median of epochs after the first {s['warmup_epochs']} (begin to end "
           "of epoch, validation and callbacks included); CPU ms/epoch the same for the "
           "process's CPU time (all its threads), which other processes' load disturbs less. "
           "One worker process per backend runs both, interleaved: for each repeat and family "
           "the reference and stockrnn back to back, the order alternating (the reference with "
           "TensorFlow op determinism off, as in a plain process; stockrnn builds and compiles "
           "a new model each time). Target (issue 17): stockrnn at most "
           f"{_limit()}x plain Keras on the same backend, every family, TensorFlow and JAX.", ""]
    for backend, res in s["backends"].items():
        if "skipped" in res:
            out += [f"**{backend}**: skipped ({res['skipped']}).", ""]
        elif res.get("load_1min"):
            lo, hi = res["load_1min"]
            out += [f"{backend}: 1-minute load average {lo:.2f}..{hi:.2f} during its runs.", ""]
    rows_ms, rows_wall = [], []
    for r in s["ratios"]:
        b, f = r["backend"], r["family"]
        ref, stk = s["backends"][b]["reference"].get(f, {}), s["backends"][b]["stockrnn"].get(f, {})
        err = "; ".join(x["error"] for x in (ref, stk) if "error" in x)
        c_ms = next(c for c in r["checks"] if c["name"].endswith("ms/epoch"))
        rows_ms.append([f, b, num(stk.get("parameters"), "d"),
                        num(ref.get("steady_ms_per_epoch"), ".1f"),
                        num(stk.get("steady_ms_per_epoch"), ".1f"),
                        num(stk.get("no_callbacks_ms_per_epoch"), ".1f"),
                        num(stk.get("floor_ms_per_epoch"), ".1f"),
                        num(r.get("floor_vs_same_backend"), ".3f", "x"),
                        num(r["steady_ms_per_epoch_vs_same_backend"], ".3f", "x"),
                        num(r.get("steady_cpu_ms_per_epoch_vs_same_backend"), ".3f", "x"),
                        num(r["steady_ms_per_epoch_vs_tf_reference"], ".3f", "x"),
                        c_ms["target"], _status(c_ms) + (f" ({err})" if err else "")])
        rows_wall.append([f, b, num(ref.get("first_epoch_seconds")), num(ref.get("fit_seconds")),
                          num(ref.get("total_seconds")), num(stk.get("first_epoch_seconds")),
                          num(stk.get("fit_seconds")), num(stk.get("total_seconds")),
                          num(r["fit_seconds_vs_same_backend"], ".3f", "x"),
                          num(r["fit_seconds_vs_tf_reference"], ".3f", "x")])
    out += ["Steady-state time per epoch (ms). \"stockrnn, no callbacks\" is a diagnostic: "
            "stockrnn's model, compile settings and input pipeline fitted without its "
            "callbacks (not a target; the difference is their cost). \"floor\" is a "
            "diagnostic too: the same network (LSTM or GRU) trained by hand in JAX "
            "(benchmarks/floor.py: Keras' cell equations, Huber loss, Adam, every batch of an "
            "epoch and its validation in one compiled call, no Keras, no callbacks), the "
            "arithmetic alone; \"floor / plain Keras\" is about the lowest ratio an "
            "implementation of that model in XLA could reach on this machine. \"CPU ratio\" is the "
            "same ratio in CPU time, \"/ TF ref\" stockrnn against plain Keras on "
            "TensorFlow (figures, not targets):",
            "",
            *table(["family", "backend", "params", "plain Keras", "stockrnn",
                    "stockrnn, no callbacks", "floor", "floor / plain Keras",
                    "stockrnn / plain Keras", "CPU ratio",
                    "/ TF ref", "target", "status"], rows_ms), "",
            "Train wall time (s). Reference total = windows + scaling + model + fit; stockrnn "
            "total = `stages.train` (load, windows, fit with its callbacks, model save, "
            "conformal intervals, loss plot). The 1st epoch includes tracing (TensorFlow) or "
            "XLA compilation (JAX), which dominates the fit time of a short run. A figure, "
            "not a target (the targets are per steady-state epoch, above): over a short "
            "benchmark the one-off compilation outweighs the per-epoch gains, so the ratios "
            "here are closer to 1 than the steady-state ones; they approach those over longer "
            "trainings.", "",
            *table(["family", "backend", "ref 1st epoch", "ref fit", "ref total",
                    "stockrnn 1st epoch", "stockrnn fit", "stockrnn total", "fit / same-backend ref",
                    "fit / TF ref"], rows_wall)]
    return out


def _limit() -> str:
    from benchmarks import targets

    return f"{targets.SPEED_SAME_BACKEND:g}"


def _mib(r: dict, key: str) -> str:
    return num(r.get(key), ".0f")


def _commands(c: dict) -> list[str]:
    rows = []
    for key in ("help", "run", "predict", "train"):
        r = c.get(key, {})
        if "skipped" in r:
            rows.append([key, r["skipped"], NONE, NONE, NONE, NONE, NONE])
            continue
        note = f" ({r['error']})" if "error" in r else ""
        check = r.get("check")
        rows.append([f"`{r.get('command', key)}`", len(r.get("runs", [])),
                     num(r.get("median_seconds"), ".3f"), _mib(r, "max_rss_mib"),
                     _mib(r, "tree_peak_rss_mib"),
                     check["target"] + " s" if check else NONE,
                     (_status(check) if check else NONE) + note])
    return ["Each command a fresh process in an empty folder (`run` fetches the sample into "
            "./data), end to end (Python start, imports, the work, exit); wall time is the "
            "median of the runs. Peak RSS: of the largest single process of the command's tree "
            "(getrusage), and of the whole tree at once (the summed RSS of the command and its "
            "descendants, sampled every 0.1 s); both the largest over the runs. Target (issue "
            "17): `stockrnn run --config configs/smoke.yaml` at most 8 s.", "",
            *table(["command", "runs", "median s", "peak RSS MiB (process)",
                    "peak RSS MiB (tree)", "target", "status"], rows)]


def _prepare(p: dict) -> list[str]:
    rows, views = [], set()
    for n, r in p["rows"].items():
        if "error" in r:
            rows.append([n, f"ERROR: {r['error']}"] + [NONE] * 9)
            continue
        views.add(all(r["windows_are_views"].values()))
        rows.append([f"{int(n):,}", f"{r['windows']:,}", num(r["build_seconds"], ".3f"),
                     num(r.get("warm_build_seconds"), ".3f"), num(r["materialise_seconds"], ".3f"),
                     num(r["window_array_mib"], ".1f"), num(r["build_peak_mib"], ".1f"),
                     num(r["build_and_materialise_peak_mib"], ".1f"),
                     num(r["peak_over_window_array"], ".2f", "x"), num(r["rss_growth_mib"], ".0f")])
    said = ("`build` returns strided views: the windows are **not** materialised by build"
            if views == {True} else "`build` returned materialised (owning) window arrays"
            if views == {False} else "window materialisation differs between sizes")
    return [f"Synthetic random walk (Close only), look_back {p['look_back']}, default config. "
            f"{said}; training materialises them (`np.ascontiguousarray`), so memory is "
            "checked on build + materialise against the window array "
            "(rows x look_back x features x 4 bytes). First build = a fresh process's first "
            "call (pays its one-time imports); warm = median of the later calls. Peak memory "
            "by tracemalloc; RSS growth = the process's peak RSS increase over the whole "
            "measurement. Targets: first build <= 2 s at 10^6 rows; peak <= 2x the window "
            "array.", "",
            *table(["rows", "windows", "first build s", "warm build s", "materialise s",
                    "window array MiB", "build peak MiB", "build+materialise peak MiB",
                    "peak / array", "RSS growth MiB"], rows), "",
            *[f"- {c['name']}: {num(c['value'], '.3f')} (target {c['target']}): "
              f"{_status(c)}" for c in p["checks"]]]


def _quality(q: dict) -> list[str]:
    seeds = q.get("seeds", [])
    rows = []
    for data in q.get("datasets", sorted({r["dataset"] for r in q.get("table", [])})):
        for r in [r for r in q.get("table", []) if r["dataset"] == data]:
            rows.append(_quality_row(data, r["family"], r, seeds))
        for r in [r for r in q.get("references", []) if r["dataset"] == data]:
            rows.append(_quality_row(data, _REF_LABELS.get(r["model"], r["model"]), r, seeds))
    extra = f" with overrides {', '.join(q['overrides'])}" if q.get("overrides") else ""
    rw = q.get("synthetic_rows")
    tar = q.get("threshold_ar") or {}
    jobs = q.get("jobs", 1)
    threads = (f" ({q['threads_per_job']} TensorFlow thread(s) each, as `--jobs` does)"
               if q.get("threads_per_job") else "")
    return [f"configs/<family>.yaml as shipped{extra}, TensorFlow (ensemble: "
            "configs/ensemble.yaml, the mean of the lstm, gru and conv1d configs' networks): "
            "each run is `stages.train`, "
            "then `stages.evaluate` on the test split (the last 15% of rows, one step ahead). "
            f"{len(seeds)} seed(s), {seeds}: the training seed and, on the synthetic series, the "
            "seed of the series too, so the spread covers both; "
            f"{jobs} worker process(es) side by side{threads}, section wall time "
            f"{num(q.get('seconds'), '.0f')} s. AutoARIMA and AutoETS (statsforecast, on log "
            "prices, fitted on each run's training rows) are read from that same evaluation, so "
            "they are scored on exactly the network's test points; the oracle (the true "
            "conditional forecast of the process) is scored on them too.", "",
            f"Data: the GOOG sample (no oracle is known for real prices); a random walk of {rw} "
            "bars (the oracle is persistence: MASE 1 by definition, and anything honestly "
            f"lands near 1); AR(1) log returns, phi {q.get('ar1_phi')}, {rw} bars, oracle "
            "P_t·exp(phi·r_t); threshold-AR log returns, "
            "r_t = c + phi(r_{t-1})·r_{t-1} + e_t with phi "
            f"{tar.get('phi_pos')} after a rise and {tar.get('phi_neg')} after a fall, "
            f"c = {tar.get('intercept')} (mean return about 0), {rw} bars, oracle "
            "P_t·exp(c + phi(r_t)·r_t), which a linear model such as AutoARIMA cannot reach. "
            f"Innovations e_t ~ N(0, {q.get('sigma')}).", "",
            "MASE = MAE / persistence MAE on the same points: mean ± standard deviation over "
            "the seeds, and each seed's figure in the order of the seeds (– where it "
            "failed). The ratios to the oracle and to AutoARIMA are taken per seed (same "
            "points) and given as mean (min..max). Direction: the share "
            "of test points where the forecast moves the way the price moved, mean ± sd (a "
            "no-change forecast counts as a miss; persistence has none). Untrained kept: the "
            "runs where no epoch beat the untrained model (whose forecast is persistence) on "
            "validation, so training kept it (MASE 1 exactly, no direction; for the "
            "ensemble: members, over all seeds).", "",
            *table(["data", "model", "n", "MASE", "MASE per seed", "untrained kept",
                    "MASE / oracle", "MASE / AutoARIMA", "direction", "target", "status"],
                   rows), "",
            *_ensemble_lines(q),
            "Targets (issue 18): random walk 0.97..1.03 for every family, AutoARIMA and "
            f"AutoETS; AR(1): every family within {_pct(_tol(q, 'ar1')):.0f}% of the oracle's "
            f"MASE; threshold AR: every family beats AutoARIMA and is within "
            f"{_pct(_tol(q, 'threshold_ar')):.0f}% of the oracle's MASE; sample: every family "
            "MASE <= 1.00 (no worse than persistence). Each target is checked on the mean "
            "over the seeds; the spread is beside it. " + _quality_verdict(q)]


_REF_LABELS = {"auto_arima": "AutoARIMA", "auto_ets": "AutoETS", "oracle": "oracle"}


def _ensemble_lines(q: dict) -> list[str]:
    """The ensemble against its best member, per data set (none without ensemble rows)."""
    seeds = q.get("seeds", [])
    rows = []
    for r in q.get("table", []):
        b = r.get("best_member")
        if not b:
            continue
        got = dict(zip(r.get("seeds", []), b["mase_per_seed"], strict=False))
        rows.append([r["dataset"], _mean_sd(r.get("mase_spread") or {}, ".4f"),
                     _mean_sd(b["mase"], ".4f"),
                     " / ".join(num(got.get(s), ".4f") for s in seeds),
                     ", ".join(dict.fromkeys(b["names"])), _ratio(r.get("over_best_member")),
                     f"{r['beats_best_member_seeds']} of {r['runs']}",
                     "yes" if r["beats_best_member"] else "no"])
    if not rows:
        return []
    return ["Ensemble against its best member: per seed, the member with the lowest test MAE in "
            "that very run, on the same points (picked with hindsight, so a hard bar); beats "
            "best member compares the means over the seeds.", "",
            *table(["data", "ensemble MASE", "best member MASE", "best member per seed",
                    "best members", "ensemble / best member", "seeds beaten",
                    "beats best member"], rows), ""]


def _tol(q: dict, data: str) -> float:
    from benchmarks import targets

    return (targets.AR1_ORACLE_TOLERANCE if data == "ar1" else targets.TAR_ORACLE_TOLERANCE)


def _quality_row(data: str, model: str, r: dict, seeds: list) -> list[str]:
    err = f" ({'; '.join(r['errors'])})" if r.get("errors") else ""
    if not r.get("runs") and model == "oracle" and data == "sample":
        return [data, model, NONE, "not known for real prices", NONE, NONE, NONE, NONE, NONE,
                NONE, NONE]
    ms = r.get("mase_spread") or {}
    got = dict(zip(r.get("seeds", []), r.get("mase_per_seed", []), strict=False))
    per_seed = " / ".join(num(got.get(s), ".4f") for s in seeds) if got else NONE
    d = r.get("direction") or {}
    checks = r.get("checks") or []
    kept = (f"{r['kept_untrained']}/{r.get('kept_of', r['runs'])}" if "kept_untrained" in r
            else NONE)
    return [data, model, ", ".join(str(n) for n in r.get("n", [])) or NONE,
            _mean_sd(ms, ".4f"), per_seed, kept, _ratio(r.get("over_oracle")),
            _ratio(r.get("over_auto_arima")),
            NONE if not d else _mean_sd({k: _pct(v) for k, v in d.items()}, ".1f", "%"),
            "; ".join(c["target"] for c in checks) or NONE,
            (", ".join(_status(c) for c in checks) or NONE) + err]


def _mean_sd(s: dict, spec: str, suffix: str = "") -> str:
    if not s:
        return NONE
    sd = s.get("sd")
    return num(s["mean"], spec, suffix) + ("" if sd is None else f" ± {sd:{spec}}")


def _ratio(s: dict | None) -> str:
    if not s:
        return NONE
    if s["min"] == s["max"]:
        return num(s["mean"], ".3f")
    return f"{s['mean']:.3f} ({s['min']:.3f}..{s['max']:.3f})"


def _quality_verdict(q: dict) -> str:
    checks = q.get("checks", [])
    if not checks:
        return ""
    missed = [c["name"].removeprefix("quality ") for c in checks if c["status"] != "PASS"]
    return (f"{len(checks) - len(missed)} of {len(checks)} quality targets pass"
            + (f"; missed: {'; '.join(missed)}." if missed else "."))


def _multi(m: dict) -> list[str]:
    v = m["variants"]
    rows = []
    for name, r in v.items():
        if "skipped" in r:
            rows.append([name, f"skipped: {r['skipped']}", NONE, NONE, NONE, NONE, NONE])
            continue
        ok = sum(t["status"] == "ok" for t in r.get("tickers", {}).values())
        note = f" (**ERROR** {r['error']})" if "error" in r else ""
        rows.append([name, f"`{r.get('command', name)}`", num(r.get("seconds"), ".1f"),
                     num(r.get("batch_seconds"), ".1f"), _mib(r, "max_rss_mib"),
                     _mib(r, "tree_peak_rss_mib"), f"{ok}/{len(r.get('tickers', {}))}{note}"])
    q = m.get("quality", [])
    qrows = [[r["ticker"], num(r["per_ticker_mase"], ".4f"), num(r["jobs 2_mase"], ".4f"),
              num(r["ray_mase"], ".4f"), num(r["global_mase"], ".4f"),
              NONE if r["global_better"] is None else ("yes" if r["global_better"] else "no")]
             for r in q]
    better = [r for r in q if r["global_better"]]
    known = [r for r in q if r["global_better"] is not None]
    mean = {k: (sum(r[k] for r in q) / len(q) if q and all(r[k] is not None for r in q)
                else None) for k in ("per_ticker_mase", "global_mase")}
    verdict = (f"The global model beats the per-ticker models on {len(better)} of {len(known)} "
               f"tickers (mean test MASE {num(mean['global_mase'], '.4f')} global vs "
               f"{num(mean['per_ticker_mase'], '.4f')} per ticker)." if known else
               "No per-ticker vs global comparison (a variant failed).")
    return [f"`{m['config']}` (the bundled GOOG sample and synthetic RW1, RW2, AR1; GRU(16), "
            "early stopping), each variant a fresh `stockrnn -q run ... --json` process in an "
            "empty folder: wall time includes Python and TensorFlow start-up, the fetch and, "
            "for Ray, starting and stopping a local Ray instance; batch s is the batch's own "
            "timer (after start-up). Peak RSS: of the largest single process of the tree "
            "(getrusage; for Ray the driver's side only), and of the whole tree at once (the "
            "summed RSS of the command and every descendant, the parallel workers and, for Ray, "
            "the local Ray processes the driver starts, sampled every 0.1 s).", "",
            *table(["variant", "command", "wall s", "batch s", "peak RSS MiB (process)",
                    "peak RSS MiB (tree)", "tickers ok"], rows), "",
            "Test MASE per ticker (model MAE / that ticker's persistence MAE on its own test "
            "split). serial, --jobs 2 and Ray train the same per-ticker models (equal to 1e-6 "
            "is a target); global is one model trained on all four tickers' windows "
            "(`model.scope=global`, each ticker scaled on its own training split).", "",
            *table(["ticker", "per-ticker (serial)", "--jobs 2", "Ray", "global",
                    "global better"], qrows), "", verdict]


def _many(m: dict) -> list[str]:
    from benchmarks import many  # imports this module: rendered there, beside its measurement

    return many.lines(m)


def _backtest(b: dict) -> list[str]:
    rows = []
    for name, r in b["variants"].items():
        note = f" (**ERROR** {r['error']})" if "error" in r else ""
        p = r.get("pooled") or {}
        rows.append([name, f"`{r.get('command', name)}`{note}", num(r.get("seconds"), ".1f"),
                     _mib(r, "max_rss_mib"), _mib(r, "tree_peak_rss_mib"),
                     num(p.get("mase", r.get("mase")), ".4f"),
                     num(p.get("dm_p_value"), ".3f"), num(r.get("sharpe_net"), ".2f")])
    s = b["variants"].get("backtest serial", {})
    how = ", ".join(b["overrides"]) or "as shipped"
    return [f"`{b['config']}` on the bundled GOOG sample ({how}): one `stockrnn run` (one model, one test window) beside `stockrnn "
            "backtest` (5 folds, refit always: 5 models), each a fresh `stockrnn -q ... --json` "
            "process in an empty folder (TensorFlow import and fetch included). MASE is the "
            "run's test MASE or the backtest's pooled MASE; DM p is the Diebold-Mariano p-value "
            "against persistence; Sharpe is the sign strategy's, net of 5 bps costs.", "",
            *table(["variant", "command", "wall s", "peak RSS MiB (process)",
                    "peak RSS MiB (tree)", "MASE", "DM p", "Sharpe net"], rows), "",
            "Peak RSS as in the command-line section: the largest single process, and the "
            "whole tree at once (with --jobs 2 the worker processes together).", "",
            f"Backtest serial / one run: {num(b.get('serial_over_run'), '.2f')}x (target, issue "
            "17: at most 3x, " + _backtest_status(b) + "); --jobs 2 / "
            f"serial: {num(b.get('jobs2_over_serial'), '.2f')}x. Verdict on the sample: the "
            f"model is {s.get('verdict', NONE)} over {s.get('n', NONE)} points; MASE per fold "
            + ", ".join(num(x, ".4f") for x in s.get("folds", [])) + "; buy-and-hold net "
            f"Sharpe {num(s.get('hold_sharpe_net'), '.2f')}."]


def _ray(r: dict) -> list[str]:
    names = {node_id: name for name, node_id in r.get("nodes", {}).items()}
    b, bt = r["batch"], r["backtest"]

    def row(name: str, command: str, part: dict, rows_of) -> list[str]:
        ray = part.get("ray", {})
        used = sorted({names.get(x["node"], x["node"] or NONE)
                       for x in rows_of(ray.get("result", {}))})
        return [name, f"`{command}`", num(part["serial"].get("seconds"), ".1f"),
                num(ray.get("seconds"), ".1f"),
                num(_over(ray.get("seconds"), part["serial"].get("seconds")), ".2f"),
                ", ".join(used) or NONE]

    sets = " ".join(f"--set {s}" for s in r["backtest_sets"])
    table_rows = [
        row("batch", f"stockrnn -q run --config {r['config']}", b,
            lambda res: res.values()),
        row("backtest", f"stockrnn -q backtest --config {r['config']} {sets} --folds "
            f"{r['folds']}", bt, lambda res: res.get("folds", []))]
    one, two = b["serial"]["result"], b.get("ray", {}).get("result", {})
    tick = [[t, num(one[t]["mase"], ".6f"), num(two.get(t, {}).get("mase"), ".6f"),
             names.get(two.get(t, {}).get("node"), NONE)] for t in one]
    s_bt, r_bt = bt["serial"]["result"], bt.get("ray", {}).get("result", {})
    return [f"`python -m benchmarks.ray_cluster` (`make ray-demo`): a head and a worker node "
            "started with `ray start` (one CPU each, their own temp folders and ports) on this "
            f"machine in {num(r.get('cluster_start_seconds'), '.1f')} s and stopped in "
            f"{num(r.get('cluster_stop_seconds'), '.1f')} s; each command a fresh "
            "`stockrnn -q ... --json` process, serially (no Ray) and with `--executor ray "
            "--ray-address HEAD`. Wall times include TensorFlow's start-up in the command and, "
            "on Ray, in each node's worker; the runs are written to the command's folder, "
            "which both nodes see (shared storage).", "",
            *table(["job", "command", "serial s", "two nodes s", "two nodes / serial",
                    "nodes used"], table_rows), "",
            "Test MASE per ticker, serial and on the two nodes (the same seeds: equal to 1e-6 "
            "is a target), and the node that trained it:", "",
            *table(["ticker", "serial", "two nodes", "node"], tick), "",
            f"Backtest pooled MASE: serial {num(s_bt.get('pooled_mase'), '.6f')}, two nodes "
            f"{num(r_bt.get('pooled_mase'), '.6f')}; folds on "
            + ", ".join(f"{f['fold']}: {names.get(f['node'], NONE)}"
                        for f in r_bt.get("folds", [])) + "."]


def _over(a, b):
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def _covariates(c: dict) -> list[str]:
    rows = []
    for r in sorted(c["runs"], key=lambda r: (r["seed"], r["variant"] != "with")):
        if "error" in r:
            rows.append([r["variant"], str(r["seed"]), f"**ERROR** {r['error']}", "", "", ""])
            continue
        rows.append([r["variant"], str(r["seed"]), num(r["mase"], ".4f"),
                     num(r["oracle_mase"], ".4f"), num(r["mase"] / r["oracle_mase"], ".3f"),
                     num(_pct(r.get("directional_accuracy")), ".1f", "%")])
    w, wo = c.get("with", {}), c.get("without", {})
    return [f"`{c['config']}` (LSTM(32), shipped settings) on the synthetic pair FOLLOW<seed> / "
            "LEAD<seed>, where LEAD's log return of one day moves FOLLOW the next: **with** "
            "LEAD as a covariate plus the config's indicators and weekday, and **without** "
            "any covariate (the same config with data.covariates emptied). The oracle "
            "forecasts P_t * exp(0.5 r_lead,t) on the same test points.", "",
            *table(["covariates", "seed", "test MASE", "oracle MASE", "/ oracle", "direction"],
                   rows), "",
            f"Mean MASE with covariates {num(w.get('mase'), '.4f')} "
            f"({num(w.get('over_oracle'), '.3f')} x the oracle's), without "
            f"{num(wo.get('mase'), '.4f')}."]


def _backtest_status(b: dict) -> str:
    c = next((c for c in b.get("checks", []) if "/ one run" in c["name"]), None)
    return _status(c) if c else NONE


def _pct(v):
    return None if v is None else 100 * v


def _status(check: dict) -> str:
    return check["status"] if check["status"] == "PASS" else f"**{check['status']}**"


def _targets(checks: list[dict]) -> list[str]:
    if not checks:
        return ["No targets were checked."]
    passed = sum(c["status"] == "PASS" for c in checks)
    return [f"{passed} of {len(checks)} targets pass; {len(checks) - passed} miss.", "",
            *table(["target", "value", "goal", "status"],
                   [[c["name"], num(c["value"], ".3f"), c["target"], _status(c)]
                    for c in checks])]


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(res: dict, out_dir: Path) -> tuple[Path, Path]:
    md, js = out_dir / "benchmarks.md", out_dir / "benchmarks.json"
    write_atomic(js, json.dumps(res, indent=2, default=str) + "\n")
    write_atomic(md, render(res))
    return md, js
