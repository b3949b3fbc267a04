"""The command line: a click group of thin commands.

This is the only module that prints results and picks exit codes. Heavy libraries (keras,
tensorflow, pandas) are imported inside the commands that need them, so ``--help`` stays instant.
"""

from __future__ import annotations

import logging
import sys

import click

from stockrnn import __version__
from stockrnn import tickers as checked
from stockrnn.errors import StockRNNError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
log = logging.getLogger("stockrnn")


class App(click.Group):
    """Turns StockRNNError into ``Error: ...`` on stderr and its documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StockRNNError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(130)
        except OSError as exc:  # disk full, permissions, ... : a message, not a traceback
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)


def setup_logging(verbose: int, quiet: bool, log_file: str | None) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    root = logging.getLogger("stockrnn")
    root.handlers.clear()
    root.setLevel(min(level, logging.INFO) if log_file else level)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(message)s" if not verbose else
                                           "%(levelname)s %(name)s: %(message)s"))
    root.addHandler(console)
    if log_file:
        from pathlib import Path

        Path(log_file).parent.mkdir(parents=True, exist_ok=True)  # cron: logs/ may not exist yet
        fh = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        fh.setLevel(logging.DEBUG if verbose else logging.INFO)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)
    root.propagate = False
    # yfinance logs its own retries and failures at ERROR; stockrnn reports them itself.
    logging.getLogger("yfinance").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)


@click.group(cls=App, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="stockrnn")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr (for cron).")
@click.option("--log-file", type=click.Path(dir_okay=False), default=None,
              help="Also append timestamped log lines to this file.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, log_file: str | None) -> None:
    """Forecast stock prices with Keras SimpleRNN, LSTM, GRU and Conv1D models, honestly:
    no look-ahead, baselines side by side, metrics in price units.

    \b
    Pipeline:  fetch -> prepare -> train -> evaluate -> predict   (or all at once: run)
    Exit codes: 0 ok, 1 runtime/data error, 2 usage/config error,
                3 quality gate failed (--max-mase), 75 another run holds the lock.
    """
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    setup_logging(verbose, quiet, log_file)


def _date(ctx, param, value):
    if value is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None


@cli.command(context_settings=CONTEXT)
@click.argument("tickers", nargs=-1)
@click.option("--source", type=click.Choice(["yahoo", "csv", "sample", "synthetic"]),
              default="yahoo", show_default=True, help="Where prices come from.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="CSV file to read (with --source csv; implies it when given alone).")
@click.option("--column", default=None, help="Name of the close-price column in the CSV.")
@click.option("--start", callback=_date, default=None, help="First date (YYYY-MM-DD).")
@click.option("--end", callback=_date, default=None, help="Last date, inclusive (YYYY-MM-DD).")
@click.option("--interval", default="1d", show_default=True,
              help="Bar interval (yfinance names: 1d, 1wk, 1mo, 1h, ...).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Store folder [default: $STOCKRNN_DATA_DIR or ./data].")
@click.option("--full", is_flag=True, help="Refetch the whole history instead of only new bars.")
@click.option("--wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another run's lock before exiting 75.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Fetch the config's ticker(s) from their configured sources instead.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of --config (repeatable).")
@click.pass_context
def fetch(ctx, tickers, source, csv_path, column, start, end, interval, data_dir, full, wait,
          quiet, config_path, overrides):
    """Download or import daily prices into the store (one file per ticker and interval).

    Incremental: only bars after the last stored date are fetched (one overlapping bar),
    merged and de-duplicated. A failed fetch leaves the stored file unchanged. With --config:
    every ticker of the config (data.ticker, data.tickers or data.tickers_file) and its
    covariate tickers (data.covariates.tickers), each from its configured source, into the
    config's data dir.
    """
    from stockrnn import stages
    from stockrnn.data import intervals
    from stockrnn.data.sources import make_source
    from stockrnn.data.store import Store
    from stockrnn.errors import ConfigError

    quiet = quiet or ctx.obj.get("quiet")
    on_result = (lambda r: None) if quiet else (lambda r: click.echo(r.line()))

    def on_error(ticker, exc):
        click.echo(f"Error: {ticker}: {exc}", err=True)

    if config_path is not None or overrides:
        if tickers:
            raise ConfigError("give TICKER arguments or --config, not both")
        return stages.fetch_config(load(config_path, overrides), full, wait, on_result, on_error)
    if not tickers:
        raise click.UsageError("give one or more TICKER arguments, or --config FILE")
    try:
        intervals.get(interval)
        checked.check_all(tickers, "TICKER")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if csv_path and source == "yahoo":
        source = "csv"
    elif csv_path and source != "csv":
        raise ConfigError(f"--csv reads a file with --source csv, not --source {source}")
    store = Store(data_dir)
    src = make_source(source, csv_path=csv_path, column=column, cache_dir=store.cache_dir)
    stages.fetch_each(tickers, lambda t: store.update(src, t, interval, start, end, full=full,
                                                      wait=wait), on_result, on_error)


def config_options(f):
    """--config FILE and repeatable --set section.key=value."""
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config key, e.g. --set window.look_back=60 (repeatable).")(f)
    return click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                        default=None, help="YAML config file (see configs/).")(f)


def wait_option(f):
    return click.option("--wait", type=float, default=0.0, show_default=True,
                        help="Seconds to wait for another run's lock before exiting 75.")(f)


def mlflow_option(f):
    """--mlflow [URI]: tracking.mlflow on (and tracking.mlflow_uri when a URI is given)."""
    return click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="", default=None,
                        metavar="[URI]",
                        help="Log to MLflow (needs the mlflow extra; as tracking.mlflow: true): "
                             "to URI, else $MLFLOW_TRACKING_URI, else the local store "
                             "<runs_dir>/mlflow.db. See docs/tracking.md.")(f)


def tracking_sets(mlflow_uri: str | None) -> list[str]:
    """The --set overrides --mlflow [URI] stands for."""
    if mlflow_uri is None:
        return []
    return ["tracking.mlflow=true", *([f"tracking.mlflow_uri={mlflow_uri}"] if mlflow_uri
                                      else [])]


def load(config_path, overrides):
    from stockrnn.config import load_config

    return load_config(config_path, overrides)


def progress_mode(quiet: bool) -> str:
    if quiet:
        return "none"
    return "bar" if sys.stderr.isatty() else "lines"


@cli.command(context_settings=CONTEXT)
@config_options
@wait_option
@click.pass_context
def prepare(ctx, config_path, overrides, wait):
    """Split chronologically, fit scalers on the training split only, build windows, and write
    the dataset artifact that train and run use (fetching the ticker first when it is not
    stored; an artifact that is current for the config and the stored prices is kept)."""
    from stockrnn import render, stages

    prep = stages.prepare(load(config_path, overrides), wait=wait)
    click.echo(render.splits(prep.dataset), nl=False)
    click.echo(prep.path)


def plots_option(drawn: str):
    """``--plots/--no-plots`` of a stage command that draws ``drawn``."""
    return click.option("--plots/--no-plots", default=True, show_default=True,
                        help=f"Draw {drawn} into the run's plots/.")


@cli.command(context_settings=CONTEXT)
@config_options
@click.option("--resume", is_flag=True,
              help="Continue the newest interrupted run of this run name from its last epoch.")
@wait_option
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@mlflow_option
@plots_option("the loss plot (loss.png)")
@click.pass_context
def train(ctx, config_path, overrides, resume, wait, quiet, mlflow_uri, plots):
    """Train the configured model into runs/<run_name>/<UTC timestamp>/ and print that path
    (from the prepared dataset when it is current, else building it first)."""
    from stockrnn import runs, stages
    from stockrnn.options import RunOptions

    cfg = load(config_path, [*overrides, *tracking_sets(mlflow_uri)])
    run = stages.train(cfg, RunOptions(resume=resume, wait=wait, plots=plots,
                                       progress=progress_mode(quiet or ctx.obj.get("quiet"))))
    meta = run.meta()
    log.info("trained %s: %d epochs, %s, %.1fs", meta["model_type"], meta["epochs_run"],
             runs.best_line(meta), meta["train_seconds"])
    click.echo(run.path)


def run_options(f):
    f = click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
                     help="Where run names are looked up [default: $STOCKRNN_RUNS_DIR or ./runs].")(f)
    return click.option("--run", "run_ref", required=True, metavar="RUN",
                        help="A run directory, or a run name (its latest complete run).")(f)


@cli.command(context_settings=CONTEXT)
@run_options
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="Which held-out split to score.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--max-mase", type=float, default=None,
              help="Exit 3 when the model's MASE is above this (quality gate for CI/cron).")
@plots_option("the predictions and residuals plots (predictions_<split>.png, "
              "residuals_<split>.png)")
def evaluate(run_ref, runs_dir, split, as_json, max_mase, plots):
    """Score a run against the persistence, drift and moving-average baselines (and AutoARIMA
    and AutoETS with the stats extra) on the same points, in price units, with a verdict
    against the best of them; write metrics_<split>.json and plots."""
    from stockrnn import gates, render, stages

    run, result = stages.evaluate(run_ref, split, runs_dir, plots=plots)
    if as_json:
        click.echo(render.to_json(result), nl=False)
    else:
        click.echo(f"run {run.path}")
        click.echo(render.evaluation(result), nl=False)
    gates.check_mase(result, max_mase)


@cli.command(context_settings=CONTEXT)
@run_options
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Bars to forecast [default: the run's horizon]; more feeds forecasts back.")
@click.option("--as-of", callback=_date, default=None,
              help="Forecast as if today were this date (uses stored bars up to it).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the forecast to this file (atomically) instead of stdout.")
@click.option("--allow-stale", is_flag=True, help="Forecast even from stale stored data.")
@plots_option("the forecast plot (forecast.png, or forecast_asof_DATE.png with --as-of)")
def predict(run_ref, runs_dir, steps, as_of, fmt, output, allow_stale, plots):
    """Forecast the next bars with 80% and 95% conformal intervals from the latest stored data."""
    from stockrnn import atomic, render, stages

    run, fc = stages.predict(run_ref, steps, as_of, allow_stale, runs_dir, plots=plots)
    text = render.forecast(fc, fmt)
    if output:
        atomic.write_text(output, text)
        log.info("forecast written to %s", output)
    else:
        click.echo(text, nl=False)


@cli.command("export", context_settings=CONTEXT)
@run_options
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "onnx", "keras"]),
              required=True,
              help="savedmodel: TensorFlow SavedModel (tf.saved_model.load); onnx: model.onnx "
                   "for onnxruntime (needs the onnx extra); keras: model.keras (plain Keras).")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Folder to write [default: RUN/export/<format>]; it must not exist yet.")
@click.option("--force", is_flag=True,
              help="Replace --output when it holds an earlier export (atomically).")
def export_cmd(run_ref, runs_dir, fmt, output, force):
    """Export a run as one model from raw prices to forecast prices (SavedModel, ONNX, .keras).

    The model takes the raw prices of the last look_back + 1 bars and returns the forecast
    price of each horizon step, with the run's scaling and target transform inside the graph;
    signature.json beside it holds the inputs, outputs, columns, transform, intervals and the
    run it came from. Written atomically; prints the export folder."""
    from stockrnn import export

    click.echo(export.export(run_ref, fmt, output, force, runs_dir).path)


@cli.command("run", context_settings=CONTEXT)
@config_options
@click.option("--max-mase", type=float, default=None, help="Exit 3 when test MASE is above this.")
@click.option("--resume", is_flag=True, help="Finish the newest interrupted run of this name.")
@click.option("--allow-stale", is_flag=True,
              help="If the fetch fails, go on with the stored data (saying how old they are).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Bars to forecast.")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="After success, keep only the newest N complete runs of this run name.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON summary object (stages, durations, run dir, metrics, exit code).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Multi-ticker configs: train this many tickers at once, in parallel processes.")
@click.option("--allow-failures", type=click.IntRange(min=0), default=0, show_default=True,
              help="Multi-ticker configs: exit 0 when at most this many tickers failed.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="Multi-ticker configs: run the tickers here (--jobs processes) or as Ray tasks "
                   "(needs the ray extra).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --executor ray: the Ray cluster to use (e.g. ray://head:10001, auto) "
                   "[default: a local Ray started for the run].")
@click.option("--report", "write_report", is_flag=True,
              help="At the end, also write report.html (one self-contained HTML page, see "
                   "`stockrnn report`) into the run directory; for a multi-ticker config into "
                   "the batch directory and each ticker's run.")
@click.option("--plots/--no-plots", default=None,
              help="Draw the PNG plots (loss, predictions, residuals, forecast) into each run's "
                   "plots/ [default: yes for a one-ticker config, no for a multi-ticker one "
                   "unless --report].")
@wait_option
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@mlflow_option
@click.pass_context
def run_cmd(ctx, config_path, overrides, max_mase, resume, allow_stale, steps, keep, as_json,
            jobs, allow_failures, executor, ray_address, write_report, plots, wait, quiet,
            mlflow_uri):
    """The whole pipeline: fetch -> prepare -> train -> evaluate (test) -> predict, one line
    per stage; the run directory is printed last. With a multi-ticker config (data.tickers or
    data.tickers_file): one run per ticker (without plots unless --plots or --report), a
    summary table, the batch directory printed last."""
    from stockrnn import gates, render, stages
    from stockrnn.errors import ConfigError, PipelineError
    from stockrnn.options import RunOptions

    opts = RunOptions(resume=resume, allow_stale=allow_stale, steps=steps, keep=keep,
                      max_mase=max_mase, wait=wait, jobs=jobs, executor=executor,
                      ray_address=ray_address, allow_failures=allow_failures,
                      plots=True if plots is None and write_report else plots,
                      progress=progress_mode(quiet or ctx.obj.get("quiet")))
    try:
        cfg = load(config_path, [*overrides, *tracking_sets(mlflow_uri)])
    except StockRNNError as exc:
        if as_json:
            click.echo(render.run_json(error=exc), nl=False)
        raise
    if cfg.is_batch:
        return run_batch(cfg, opts, as_json, write_report)
    try:
        if executor != "local" or ray_address:
            raise ConfigError("--executor ray and --ray-address run the tickers of a "
                              "multi-ticker config (data.tickers or data.tickers_file); this "
                              "config has one")
        summary = stages.run_all(cfg, opts, on_stage=(lambda st: None) if as_json else
                                 lambda st: click.echo(render.stage(st)))
    except PipelineError as exc:
        if as_json:
            click.echo(render.run_json(error=exc, stages=exc.stages, run_dir=exc.run_dir),
                       nl=False)
        raise
    except StockRNNError as exc:
        if as_json:
            click.echo(render.run_json(error=exc), nl=False)
        raise
    if write_report:
        from stockrnn import report

        log.info("report: %s", report.write_report(summary.run_dir))
    try:
        gates.check_mase(summary.result, max_mase)
    except StockRNNError as exc:
        if as_json:
            click.echo(render.run_json(summary, error=exc), nl=False)
        else:
            click.echo(summary.run_dir)
        raise
    click.echo(render.run_json(summary) if as_json else summary.run_dir, nl=not as_json)


def run_batch(cfg, opts, as_json: bool, write_report: bool = False) -> None:
    """`run` over a multi-ticker config: a line per finished ticker on stderr, the table and
    the batch directory on stdout; exit 1 when more than --allow-failures tickers failed, 3
    when a ticker that ran is above --max-mase."""
    from stockrnn import batch, gates, render

    def done(row):
        if row["status"] == "ok":
            log.info("%s ok: test MASE %.4f (%.1fs)", row["ticker"], row["mase"], row["seconds"])

    try:
        summary = batch.run_batch(cfg, opts, on_ticker=done)
    except StockRNNError as exc:  # before any ticker ran: lock held, unreadable tickers_file
        if as_json:
            click.echo(render.to_json({"status": "error", "exit_code": exc.exit_code,
                                       "error": str(exc), "tickers": []}), nl=False)
        raise
    error = gates.batch_outcome(summary, opts.allow_failures, opts.max_mase)
    if write_report:
        from stockrnn import report

        log.info("report: %s", report.write_batch_reports(summary)[-1])
    if as_json:
        summary.update(status="ok" if error is None else "error",
                       exit_code=0 if error is None else error.exit_code,
                       **({"error": str(error)} if error else {}))
        click.echo(render.to_json(summary), nl=False)
    else:
        click.echo(render.batch_table(summary["tickers"]), nl=False)
        click.echo(render.batch_footer(summary), nl=False)
        click.echo(summary["batch_dir"])
    if error is not None:
        raise error


@cli.command(context_settings=CONTEXT)
@config_options
@click.option("--folds", type=click.IntRange(min=1), default=None,
              help="Consecutive test folds [default: backtest.folds, 5].")
@click.option("--refit", default=None, metavar="always|never|every:K",
              help="Train a model per fold, once, or every K folds [default: backtest.refit, "
                   "always].")
@click.option("--window", "train_window", default=None, metavar="expanding|rolling:L",
              help="Train on all earlier rows, or on the last L rows [default: "
                   "backtest.window, expanding].")
@click.option("--threshold", type=float, default=None,
              help="Trading: long when the forecast log return exceeds this [default: 0].")
@click.option("--short", is_flag=True, default=None,
              help="Trading: short instead of flat below -threshold.")
@click.option("--cost-bps", type=float, default=None,
              help="Trading: cost per unit of turnover in basis points [default: 5].")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train this many fold models at once, in parallel processes.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Run the fold models here or as Ray tasks (ray extra).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --executor ray: the Ray cluster [default: a local Ray].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--max-mase", type=float, default=None,
              help="Exit 3 when the pooled MASE is above this (after writing everything).")
@click.option("--plots", is_flag=True,
              help="Also draw each fold run's own plots (loss, predictions, residuals) into "
                   "folds/<k>/plots/ [default: only the backtest's plots].")
@wait_option
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@mlflow_option
@click.pass_context
def backtest(ctx, config_path, overrides, folds, refit, train_window, threshold, short, cost_bps,
             jobs, executor, ray_address, as_json, max_mase, plots, wait, quiet, mlflow_uri):
    """Walk-forward evaluation: train on the rows before each of N consecutive test folds,
    forecast every point of the fold from real past data, and pool the results against the
    persistence, drift and moving-average baselines (and AutoARIMA and AutoETS with the stats
    extra, fitted per fold), with Diebold-Mariano tests against persistence and the best
    baseline and what a sign strategy would have earned after costs. Writes
    runs/<run_name>/backtest-<UTC timestamp>/ and prints it last."""
    from stockrnn import backtest as bt
    from stockrnn import gates, render
    from stockrnn.options import RunOptions

    flags = {"folds": folds, "refit": refit, "window": train_window, "threshold": threshold,
             "short": short, "cost_bps": cost_bps}
    sets = [*overrides, *(f"backtest.{k}={v}" for k, v in flags.items() if v is not None),
            *tracking_sets(mlflow_uri)]
    cfg = load(config_path, sets)
    if quiet or ctx.obj.get("quiet"):
        logging.getLogger("stockrnn").setLevel(logging.WARNING)
    summary = bt.backtest(cfg, RunOptions(jobs=jobs, executor=executor, ray_address=ray_address,
                                          wait=wait, max_mase=max_mase, plots=plots,
                                          progress="none"))
    if as_json:
        click.echo(render.to_json(summary), nl=False)
    else:
        click.echo(render.backtest(summary), nl=False)
        click.echo(summary["backtest_dir"])
    gates.check_backtest(bt.pooled_mases(summary), max_mase, summary["backtest_dir"])


@cli.command(context_settings=CONTEXT)
@config_options
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Number of trials [default: tune.trials in the config, 20].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@wait_option
@mlflow_option
def tune(config_path, overrides, trials, as_json, wait, mlflow_uri):
    """Search the config's tune: ranges with Optuna on validation loss only (the config as
    written is trial 0), retrain the best as <run_name>-tuned and evaluate it on test once.
    Writes trials.csv/json, best.yaml and summary.json; prints the tune directory last."""
    from stockrnn import render, tuning

    cfg = load(config_path, [*overrides, *tracking_sets(mlflow_uri)])

    def done(row):
        log.info("trial %d: val_loss %.5f (%s)", row["trial"], row["val_loss"],
                 ", ".join(f"{k} {row[k]:g}" for k in cfg.tune.space))

    summary = tuning.tune(cfg, trials, wait=wait, on_trial=done)
    if as_json:
        click.echo(render.to_json(summary), nl=False)
        return
    click.echo(render.trials_table(summary["results"], summary["best"]["trial"]), nl=False)
    click.echo(render.tune_footer(summary), nl=False)
    click.echo(summary["tune_dir"])


@cli.command(context_settings=CONTEXT)
@click.argument("run_refs", nargs=-1, metavar="[RUN]...")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Compare every complete run under this folder [default: ./runs].")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format of the leaderboard.")
def compare(run_refs, runs_dir, fmt):
    """Leaderboard of runs: model, data, look_back, epochs, test MAE, MASE, direction, time,
    and each run's best baseline on its own test points."""
    from stockrnn import leaderboard, render

    click.echo(render.leaderboard(leaderboard.collect(run_refs, runs_dir), fmt), nl=False)


@cli.command("report", context_settings=CONTEXT)
@click.argument("target", metavar="RUN|BATCH_DIR|BACKTEST_DIR")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the page to this file [default: report.html inside the directory].")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Where a run name is looked up [default: $STOCKRNN_RUNS_DIR or ./runs].")
def report_cmd(target, output, runs_dir):
    """Write one self-contained HTML page to open in a browser (plots embedded, no network):
    for a run (a run directory or run name) what was trained on what data, the test table
    beside the baselines with a verdict, interval coverage, plots and the forecast (the run is
    evaluated first when it has no test metrics); for a batch directory the leaderboard and a
    section per ticker; for a backtest directory the folds, the pooled table, the
    Diebold-Mariano verdict, trading and plots. Prints the page's path last."""
    from stockrnn import report

    click.echo(report.write_report(target, output, runs_dir))


@cli.group("runs", context_settings=CONTEXT)
def runs_group():
    """List and prune run directories."""


@runs_group.command("list", context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Runs folder [default: $STOCKRNN_RUNS_DIR or ./runs].")
def runs_list(name, runs_dir):
    """One line per run: status (complete, running, incomplete), latest mark, path."""
    from stockrnn import render, runs
    from stockrnn.config import runs_dir as runs_root

    root = runs_root(runs_dir)

    def is_latest(run):
        cur = runs.latest(root, run.name)
        return cur is not None and cur.path == run.path

    click.echo(render.runs_list((r.status, is_latest(r), r.path)
                                for r in runs.list_runs(root, name)), nl=False)


@runs_group.command("prune", context_settings=CONTEXT)
@click.argument("name", required=False)
@click.option("--keep", type=click.IntRange(min=0), default=None,
              help="Keep the newest N complete runs per run name (latest is always kept).")
@click.option("--runs-dir", type=click.Path(file_okay=False), default=None,
              help="Runs folder [default: $STOCKRNN_RUNS_DIR or ./runs].")
def runs_prune(name, keep, runs_dir):
    """Remove interrupted runs and, with --keep N, all but the newest N complete runs.
    Never removes a run name's latest run or a run in progress."""
    from stockrnn import runs
    from stockrnn.config import runs_dir as runs_root

    for run in runs.prune(runs_root(runs_dir), name, keep):
        click.echo(f"removed {run.path}")


@cli.group(context_settings=CONTEXT)
def config():
    """Check and show configs."""


@config.command("validate", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
def config_validate(file, overrides):
    """Validate FILE; print 'ok' or one line per problem (exit 2)."""
    load(file, overrides)
    click.echo(f"{file}: ok")


@config.command("show", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
def config_show(file, overrides):
    """Print the resolved config (defaults filled in) as YAML."""
    click.echo(load(file, overrides).to_yaml(), nl=False)


def main() -> None:
    try:
        cli(prog_name="stockrnn")
    except SystemExit as exc:
        if "tensorflow" in sys.modules or "jax" in sys.modules:
            _exit_now(exc.code)
        raise


def _exit_now(code) -> None:
    """End the process as a normal exit would, without the interpreter's teardown of
    TensorFlow/JAX (1-2 s of freeing objects and joining their threads, after the work is
    done): the exit handlers run first (log files flushed and closed, MLflow runs ended, temp
    folders removed, worker pools joined), then stdout and stderr are flushed."""
    import atexit
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): the message, exit 1
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


if __name__ == "__main__":
    main()
