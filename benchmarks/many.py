"""Many tickers at scale (issue 17): ``stockrnn run`` over N synthetic tickers of 1,500 daily
bars (the synthetic source's RW<n> random walks and AR<n> AR(1) series, alternating) with the
shipped ``configs/lstm.yaml`` (LSTM(32), early stopping), one model per ticker, ``--jobs 2``.

Each command is a fresh ``stockrnn -q run ... --json`` process in an empty folder (Python and
Keras start-up, the fetch of the series included), timed by ``benchmarks.rusage``: wall and CPU
time, peak RSS of the largest process and of the whole tree, tickers ok. ``mode.many`` lists
the batches, ``(backend, N)``; the first one is the measured target (500 tickers in at most
600 s, the tree's peak RSS at most 8 GiB), and a smaller one is extrapolated to 500 tickers: its
wall time plus the other 500 - N tickers at its median ticker's time, ``--jobs`` at once. For
the first batch, ``mode.many_single`` of its tickers (first, middle, last) also run alone as a
one-ticker ``stockrnn run`` (same config, backend and seeds): their test MASE must equal the
batch's to 1e-6. The global model (``model.scope=global``, one process) then trains on the same
tickers: its time and mean test MASE beside the per-ticker models'.
"""

from __future__ import annotations

import statistics
import sys

from benchmarks import targets
from benchmarks.commands import stockrnn_command
from benchmarks.multi import json_command
from benchmarks.report import NONE, num, table
from benchmarks.subprocesses import REPO

CONFIG = REPO / "configs" / "lstm.yaml"
TICKERS_FILE = "tickers.txt"
TIMEOUT = 4 * 3600.0


def tickers(n: int) -> list[str]:
    """``n`` synthetic tickers: RW1, AR2, RW3, AR4, ... (each series seeded by its number)."""
    return [f"{'RW' if i % 2 else 'AR'}{i}" for i in range(1, n + 1)]


def _sets(backend: str, overrides: tuple[str, ...]) -> list[str]:
    out = []
    for s in ("data.source=synthetic", "paths.run_name=many", f"train.backend={backend}",
              *overrides):
        out += ["--set", s]
    return out


def _command(args: list[str]) -> tuple[list[str], str]:
    cmd = [*stockrnn_command(), "-q", "run", "--config", str(CONFIG), "--json", *args]
    return cmd, " ".join(["stockrnn -q run --config", str(CONFIG.relative_to(REPO)), *args])


def batch(backend: str, n: int, overrides: tuple[str, ...], extra: tuple[str, ...] = ()) -> dict:
    """One batch of the first ``n`` tickers, from a tickers file in the fresh folder."""
    names = tickers(n)
    cmd, shown = _command([*_sets(backend, overrides), "--set",
                           f"data.tickers_file={TICKERS_FILE}", *extra])

    def read(s: dict, out: dict) -> None:
        rows = s["tickers"]
        out["tickers"] = {t["ticker"]: {"status": t["status"], "mase": t["mase"],
                                        "error": t["error"], "seconds": t["seconds"]}
                          for t in rows}
        out["batch_seconds"] = s.get("seconds")
        out["jobs"] = s.get("jobs")
        if s.get("train_seconds") is not None:
            out["global_train_seconds"] = s["train_seconds"]

    out = json_command("many", f"{backend} {n} tickers{' ' + ' '.join(extra) if extra else ''}",
                       cmd, shown, read, timeout=TIMEOUT,
                       files={TICKERS_FILE: "\n".join(names) + "\n"})
    out.update(backend=backend, n=n)
    return out


def single(backend: str, ticker: str, overrides: tuple[str, ...]) -> dict:
    """One ticker alone: a one-ticker ``stockrnn run`` of the same config."""
    cmd, shown = _command([*_sets(backend, overrides), "--set", f"data.ticker={ticker}"])

    def read(s: dict, out: dict) -> None:
        out["mase"] = s["metrics"]["model"]["mase"]

    return {"ticker": ticker, **json_command("many", f"{backend} {ticker} alone", cmd, shown,
                                             read)}


def per_ticker(r: dict) -> dict:
    """A batch's figures per ticker: wall and CPU seconds per ticker, the median ticker's own
    seconds (fetch to forecast in its worker: the first ticker of each worker, which pays for
    compiling the steps, does not move it), the mean test MASE of its ok tickers, and the wall
    time of 500 tickers: measured, or for a smaller batch its wall time plus the other tickers
    at the median ticker's time, ``jobs`` at once."""
    rows = r.get("tickers") or {}
    ok = [t for t in rows.values() if t["status"] == "ok"]
    n = r["n"]
    out = {"ok": len(ok),
           "mean_mase": statistics.fmean(t["mase"] for t in ok) if ok else None,
           "median_ticker_seconds": statistics.median(t["seconds"] for t in ok) if ok else None}
    for key in ("seconds", "cpu_seconds"):
        v = r.get(key)
        out[f"{key}_per_ticker"] = v / n if isinstance(v, int | float) else None
    wall, each = r.get("seconds"), out["median_ticker_seconds"]
    if n == targets.MANY_TICKERS or not isinstance(wall, int | float):
        out["seconds_for_500"] = wall
    else:
        out["seconds_for_500"] = None if each is None else \
            wall + (targets.MANY_TICKERS - n) * each / (r.get("jobs") or 1)
    return out


def _checks(r: dict, figures: dict) -> list[dict]:
    n, backend = r["n"], r["backend"]
    where = f"{n} tickers, {backend}, --jobs 2"
    extrapolated = "" if n == targets.MANY_TICKERS else f", extrapolated from {n} tickers"
    return [
        targets.check(f"many: {targets.MANY_TICKERS} tickers, {backend}, --jobs 2: wall s"
                      + extrapolated, figures["seconds_for_500"],
                      at_most=targets.MANY_SECONDS),
        targets.check(f"many: {where}: tree peak RSS MiB", r.get("tree_peak_rss_mib"),
                      at_most=targets.MANY_TREE_RSS_MIB,
                      text=f"<= {targets.MANY_TREE_RSS_MIB:g} (8 GiB)"),
        targets.check(f"many: {where}: tickers ok", figures["ok"], between=(n, n),
                      text=f"all {n}")]


def measure(mode) -> dict:
    if not mode.many:
        return {"skipped": f"not measured in --{mode.name} mode"}
    out: dict = {"config": str(CONFIG.relative_to(REPO)), "overrides": list(mode.many_overrides),
                 "batches": [], "checks": []}
    for backend, n in mode.many:
        r = batch(backend, n, mode.many_overrides, ("--jobs", "2"))
        r["figures"] = per_ticker(r)
        out["batches"].append(r)
        out["checks"] += _checks(r, r["figures"])
    first = out["batches"][0]
    backend, n = first["backend"], first["n"]
    names = tickers(n)
    picked = list(dict.fromkeys(names[i] for i in
                                (0, n // 2, n - 1)[: mode.many_single]))
    rows = []
    for t in picked:
        alone = single(backend, t, mode.many_overrides)
        got = (first.get("tickers") or {}).get(t, {}).get("mase")
        alone["batch_mase"] = got
        alone["abs_diff"] = abs(got - alone["mase"]) if isinstance(got, float) and \
            isinstance(alone.get("mase"), float) else None
        rows.append(alone)
    out["single"] = rows
    diffs = [r["abs_diff"] for r in rows]
    out["checks"].append(targets.check(
        f"many: {len(rows)} tickers of the {backend} batch alone (one-ticker run): test MASE "
        "equals the batch's (max abs difference)",
        max(diffs) if diffs and None not in diffs else None, at_most=targets.EQUAL_MASE))
    if mode.many_global:
        g = batch(backend, n, mode.many_overrides, ("--set", "model.scope=global"))
        g["figures"] = per_ticker(g)
        both = [t for t, row in (g.get("tickers") or {}).items()
                if row["status"] == "ok" and (first.get("tickers") or {}).get(t, {})
                .get("status") == "ok"]
        g["better_on"] = sum(g["tickers"][t]["mase"] < first["tickers"][t]["mase"]
                             for t in both)
        g["compared"] = len(both)
        out["global"] = g
    print(f"  [many] checks: {', '.join(c['status'] for c in out['checks'])}", file=sys.stderr,
          flush=True)
    for r in [*out["batches"], *([out["global"]] if "global" in out else [])]:
        compact(r)
    return out


def compact(r: dict) -> dict:
    """A batch's record as kept in benchmarks.json: its figures, and of its rows only the
    failed tickers' errors (500 rows of MASE and seconds would make the report's JSON large)."""
    rows = r.pop("tickers", None) or {}
    r["failed"] = {t: row["error"] for t, row in rows.items() if row["status"] != "ok"}
    return r


# --------------------------------------------------------------------------- rendering


def _mib(v) -> str:
    return num(v, ".0f")


def lines(m: dict) -> list[str]:
    """The section in Markdown."""
    how = ", ".join(m["overrides"]) or "as shipped"
    rows = []
    for r in m["batches"]:
        f = r.get("figures", {})
        note = f" (**ERROR** {r['error']})" if "error" in r else ""
        rows.append([r["backend"], str(r["n"]), f"`{r.get('command')}`{note}",
                     num(r.get("seconds"), ".1f"), num(f.get("seconds_per_ticker"), ".2f"),
                     num(f.get("cpu_seconds_per_ticker"), ".2f"),
                     num(f.get("median_ticker_seconds"), ".2f"),
                     num(f.get("seconds_for_500"), ".0f"), _mib(r.get("max_rss_mib")),
                     _mib(r.get("tree_peak_rss_mib")), f"{f.get('ok', 0)}/{r['n']}",
                     num(f.get("mean_mase"), ".4f")])
    single = [[r["ticker"], num(r.get("batch_mase"), ".6f"), num(r.get("mase"), ".6f"),
               num(r.get("abs_diff"), ".1e"), num(r.get("seconds"), ".1f")
               + (f" (**ERROR** {r['error']})" if "error" in r else "")]
              for r in m.get("single", [])]
    out = [f"`{m['config']}` ({how}) on N synthetic tickers of 1,500 daily bars (RW1, AR2, RW3, "
           "... of the synthetic source: random walks and AR(1) log returns, each seeded by its "
           "number), one model per ticker, `--jobs 2`; each batch a fresh `stockrnn -q run ... "
           "--json` process in an empty folder (start-up, the fetch and each worker's Keras "
           "import included), its tickers listed in a `data.tickers_file`. s/ticker: wall / N; "
           "CPU s/ticker: the CPU time of the command and its worker processes / N; median "
           "ticker s: a ticker's own time in its worker (fetch to forecast); 500 tickers s: "
           "the wall time, or for a smaller N its wall time plus the other 500 - N tickers at "
           "the median ticker's time, 2 at once. Peak RSS: the largest single "
           "process, and the whole tree at once (the command and its workers, sampled every "
           "0.1 s). A batch draws no plots (`--plots` would).", "",
           *table(["backend", "N", "command", "wall s", "s/ticker", "CPU s/ticker",
                   "median ticker s", "500 tickers s", "peak RSS MiB (process)",
                   "peak RSS MiB (tree)", "ok", "mean MASE"], rows), "",
           "Per-ticker results equal single runs: tickers of the first batch run alone as a "
           "one-ticker `stockrnn run` of the same config, backend and seed (target: test MASE "
           "equal to 1e-6).", "",
           *table(["ticker", "batch MASE", "alone MASE", "abs diff", "alone wall s"], single)]
    g = m.get("global")
    if g:
        gf, first = g.get("figures", {}), m["batches"][0]
        note = f" (**ERROR** {g['error']})" if "error" in g else ""
        out += ["", f"The global model (`model.scope=global`: one model on all {first['n']} "
                "tickers' windows, one process) on the same tickers and backend: "
                f"`{g.get('command')}`{note}", "",
                *table(["model", "wall s", "training s", "peak RSS MiB (tree)", "ok",
                        "mean test MASE"],
                       [["per ticker (--jobs 2)", num(first.get("seconds"), ".1f"), NONE,
                         _mib(first.get("tree_peak_rss_mib")),
                         f"{first.get('figures', {}).get('ok', 0)}/{first['n']}",
                         num(first.get("figures", {}).get("mean_mase"), ".4f")],
                        ["global", num(g.get("seconds"), ".1f"),
                         num(g.get("global_train_seconds"), ".1f"),
                         _mib(g.get("tree_peak_rss_mib")), f"{gf.get('ok', 0)}/{g['n']}",
                         num(gf.get("mean_mase"), ".4f")]]), "",
                f"The global model has the lower test MASE on {g.get('better_on', 0)} of "
                f"{g.get('compared', 0)} tickers."]
    return out
