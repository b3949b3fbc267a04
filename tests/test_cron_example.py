"""The cron line of docs/operations.md works: it is run here as the shell command it is (cd,
mkdir -p logs, the venv's stockrnn, `>> logs/summary.txt`) in an empty folder standing in for
/srv/stockrnn.

Only Yahoo is faked: a stand-in ``yfinance`` package first on PYTHONPATH whose
``Ticker(...).history(...)`` returns the bundled GOOG sample shaped as yfinance returns it
(tz-aware index, OHLCV columns), from FIRST_BAR on: Yahoo's history of a ticker is whatever it
is, and a shorter one keeps the documented GRU config's training short. The systemd unit's
ExecStart must run the same arguments.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import textwrap

from helpers_docs import OPERATIONS, STOCKRNN, localize

FAKE_YFINANCE = textwrap.dedent('''
    """Stand-in for yfinance in the cron test: every ticker is the bundled GOOG sample since
    FIRST_BAR."""
    import pandas as pd

    from stockrnn.data.sources import SAMPLE_DIR

    CALLS = []
    FIRST_BAR = "2010-06-01"


    def set_tz_cache_location(path):
        pass


    class Ticker:
        def __init__(self, symbol):
            self.symbol = symbol

        def history(self, start=None, end=None, period=None, interval="1d", **kwargs):
            df = pd.read_csv(SAMPLE_DIR / "GOOG.csv", index_col=0, parse_dates=True)
            df.index = df.index.tz_localize("America/New_York").rename("Date")
            df = df[df.index.date >= pd.Timestamp(FIRST_BAR).date()]
            if start is not None:
                df = df[df.index.date >= pd.Timestamp(start).date()]
            if end is not None:  # exclusive, as in yfinance
                df = df[df.index.date < pd.Timestamp(end).date()]
            return df
''')


def block(lang: str) -> str:
    found = re.findall(rf"^```{lang}\n(.*?)^```", OPERATIONS, re.M | re.S)
    assert len(found) >= 1, f"no ```{lang} block in docs/operations.md"
    return found[0]


def cron_command() -> str:
    lines = [ln for ln in block("cron").splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1, lines
    return lines[0].split(None, 5)[5]


def stockrnn_args(command: str) -> list[str]:
    words = shlex.split(command)
    i = next(i for i, w in enumerate(words) if w.endswith("/bin/stockrnn"))
    args = words[i + 1:]
    for stop in (">>", ">", "&&", "|", "2>&1"):
        if stop in args:
            args = args[:args.index(stop)]
    return args


def test_cron_line_runs_and_appends_its_summary(tmp_path):
    assert STOCKRNN.is_file(), f"{STOCKRNN} missing (pip install -e . into this venv)"
    fake = tmp_path / "fake"
    (fake / "yfinance").mkdir(parents=True)
    (fake / "yfinance" / "__init__.py").write_text(FAKE_YFINANCE)
    home = tmp_path / "srv"
    home.mkdir()
    cmd = cron_command()
    assert cmd.startswith("cd /srv/stockrnn && "), cmd
    cmd = localize(cmd.replace("cd /srv/stockrnn", f"cd {shlex.quote(str(home))}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKRNN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(fake), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("TERM", None)

    proc = subprocess.run(["sh", "-c", cmd], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.stdout == ""  # the summary went to logs/summary.txt

    summary = (home / "logs" / "summary.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in summary[:-1]] == ["fetch", "prepare", "train", "evaluate",
                                                      "predict", "prune"]
    assert "AAPL 1d" in summary[0]
    run = home / summary[-1]
    assert json.loads((run / "meta.json").read_text())["status"] == "complete"
    assert (run / "forecast.csv").is_file() and (run / "metrics_test.json").is_file()
    assert (home / "data" / "AAPL_1d.csv").is_file()
    log = (home / "logs" / "stockrnn.log").read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d", log, re.M), log[:500]


def test_systemd_unit_runs_the_cron_line_arguments():
    service = block("ini")
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", service, re.M)
    assert stockrnn_args(exec_start) == stockrnn_args(cron_command())
    assert re.search(r"^WorkingDirectory=/srv/stockrnn$", service, re.M)
