"""`stockrnn fetch` through click's CliRunner (and a few real subprocesses)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MULTI, REPO, error_line, invoke

import stockrnn
from stockrnn import locking
from stockrnn.data.sources import SAMPLE_DIR


def sample_facts() -> tuple[int, str, str]:
    lines = (SAMPLE_DIR / "GOOG.csv").read_text().splitlines()[1:]
    return len(lines), lines[0].split(",")[0], lines[-1].split(",")[0]


ROWS, FIRST, LAST = sample_facts()


def run(*args: str, env: dict | None = None):
    return invoke(*args, code=None, env=env)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def data(tmp_path) -> Path:
    """A data dir that already holds the sample GOOG (so 'unchanged' means something)."""
    d = tmp_path / "data"
    result = run("fetch", "GOOG", "--source", "sample", "--data-dir", str(d))
    assert result.exit_code == 0, result.output
    return d


def test_fetch_sample(tmp_path):
    d = tmp_path / "data"
    result = run("fetch", "GOOG", "--source", "sample", "--data-dir", str(d))
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"GOOG 1d: +{ROWS} rows, {ROWS} rows {FIRST}..{LAST} -> "
                             f"{d / 'GOOG_1d.csv'}\n")
    assert result.stderr == ""
    assert (d / "GOOG_1d.csv").is_file()
    meta = json.loads((d / "GOOG_1d.json").read_text())
    assert (meta["rows"], meta["first"], meta["last"]) == (ROWS, FIRST, LAST)


def test_second_fetch_is_up_to_date(data):
    before = snapshot(data)
    result = run("fetch", "GOOG", "--source", "sample", "--data-dir", str(data))
    assert result.exit_code == 0
    assert result.stdout == (f"GOOG 1d: up to date ({ROWS} rows, {FIRST}..{LAST}) "
                             f"{data / 'GOOG_1d.csv'}\n")
    assert snapshot(data) == before


def test_quiet_prints_nothing(tmp_path):
    for args in (["fetch", "-q"], ["-q", "fetch"]):
        result = run(*args, "GOOG", "--source", "sample", "--data-dir", str(tmp_path / "d"))
        assert result.exit_code == 0 and result.stdout == ""


def test_csv_import(tmp_path):
    src = tmp_path / "acme.csv"
    src.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                   "2024-01-02,10,11,9,10.5,10.0,100\n"
                   "2024-01-03,10.5,12,10,11.5,11.0,200\n"
                   "2024-01-04,11.5,12,11,12.0,11.5,300\n")
    d = tmp_path / "data"
    result = run("fetch", "acme", "--csv", str(src), "--data-dir", str(d))  # --csv implies csv
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ACME 1d: +3 rows, 3 rows 2024-01-02..2024-01-04 -> ")
    meta = json.loads((d / "ACME_1d.json").read_text())
    assert meta["source"] == "csv" and meta["rows"] == 3
    assert (d / "ACME_1d.csv").read_text().splitlines()[-1].split(",")[4] == "11.5"


def test_csv_import_with_column(tmp_path):
    src = tmp_path / "f.csv"
    src.write_text("Date,Settle\n2024-01-02,5.5\n2024-01-03,6.5\n")
    d = tmp_path / "data"
    result = run("fetch", "FUT", "--source", "csv", "--csv", str(src), "--column", "Settle",
                 "--data-dir", str(d))
    assert result.exit_code == 0, result.output
    assert (d / "FUT_1d.csv").read_text().splitlines() == ["Date,Close", "2024-01-02,5.5",
                                                           "2024-01-03,6.5"]


BAD_FILES = {
    "missing-close": ("Date,Open,Volume\n2024-01-02,1,2\n", r"no close-price column"),
    "bad-date": ("Date,Close\n2024-01-02,1\n2024-01-33,2\n",
                 r"line 3: cannot parse date '2024-01-33'"),
    "bad-number": ("Date,Close\n2024-01-02,1\n2024-01-03,2\n2024-01-04,1.2.3\n",
                   r"line 4: cannot parse number '1.2.3'"),
    "empty": ("", r"file is empty"),
    "header-only": ("Date,Close\n", r"no data rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_exits_1_and_changes_nothing(data, tmp_path, case):
    text, problem = BAD_FILES[case]
    src = tmp_path / f"{case}.csv"
    src.write_text(text)
    before = snapshot(data)
    result = run("fetch", "GOOG", "--csv", str(src), "--data-dir", str(data))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {src}: ")
    assert result.stderr.count("\n") == 1  # one line, no traceback
    assert re.search(problem, result.stderr)
    assert snapshot(data) == before


def test_missing_csv_file(data, tmp_path):
    before = snapshot(data)
    missing = tmp_path / "nope.csv"
    result = run("fetch", "GOOG", "--csv", str(missing), "--data-dir", str(data))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {missing}: no such file\n"
    assert snapshot(data) == before


def test_unknown_sample_ticker(data):
    before = snapshot(data)
    result = run("fetch", "AAPL", "--source", "sample", "--data-dir", str(data))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the bundled sample has no 'AAPL'")
    assert "GOOG" in result.stderr
    assert snapshot(data) == before


def test_failed_fetch_into_new_dir_writes_no_data(tmp_path):
    d = tmp_path / "fresh"
    result = run("fetch", "NOPE", "--source", "sample", "--data-dir", str(d))
    assert result.exit_code == 1
    assert not d.exists() or not [p for p in d.iterdir() if p.suffix in (".csv", ".json")]


def test_usage_errors_exit_2(tmp_path):
    d = tmp_path / "data"
    result = run("fetch", "GOOG", "--source", "bloomberg", "--data-dir", str(d))
    assert result.exit_code == 2 and "'--source'" in result.stderr and "bloomberg" in result.stderr
    result = run("fetch", "GOOG", "--source", "sample", "--start", "2020-13-01",
                 "--data-dir", str(d))
    assert result.exit_code == 2
    assert "--start" in result.stderr and "expected YYYY-MM-DD, got '2020-13-01'" in result.stderr
    result = run("fetch", "GOOG", "--source", "sample", "--interval", "2d", "--data-dir", str(d))
    assert result.exit_code == 2 and "Error: unknown interval '2d'" in result.stderr
    result = run("fetch", "--source", "sample", "--data-dir", str(d))  # no ticker
    assert result.exit_code == 2
    result = run("fetch", "GOOG", "--source", "csv", "--data-dir", str(d))  # csv without --csv
    assert result.exit_code == 2 and "--csv" in result.stderr
    assert not d.exists() or not list(d.glob("*.csv"))


def test_start_and_end_clip_the_sample(tmp_path):
    d = tmp_path / "data"
    result = run("fetch", "GOOG", "--source", "sample", "--start", "2013-01-01",
                 "--end", "2013-01-31", "--data-dir", str(d))
    assert result.exit_code == 0, result.output
    rows = (d / "GOOG_1d.csv").read_text().splitlines()[1:]
    assert rows[0].startswith("2013-01-02,") and rows[-1].startswith("2013-01-31,")
    sample = [r for r in (SAMPLE_DIR / "GOOG.csv").read_text().splitlines()[1:]
              if "2013-01-01" <= r[:10] <= "2013-01-31"]
    assert len(rows) == len(sample)


def test_data_dir_from_environment(tmp_path):
    env_dir = tmp_path / "from-env"
    result = run("fetch", "GOOG", "--source", "sample", env={"STOCKRNN_DATA_DIR": str(env_dir)})
    assert result.exit_code == 0, result.output
    assert (env_dir / "GOOG_1d.csv").is_file()
    assert not (tmp_path / "data").exists()
    # --data-dir wins over the environment
    flag_dir = tmp_path / "flag"
    result = run("fetch", "GOOG", "--source", "sample", "--data-dir", str(flag_dir),
                 env={"STOCKRNN_DATA_DIR": str(env_dir)})
    assert result.exit_code == 0 and (flag_dir / "GOOG_1d.csv").is_file()


def test_default_data_dir_is_cwd_data(tmp_path):
    # (the suite's `work` fixture runs every test in tmp_path without $STOCKRNN_DATA_DIR)
    result = run("fetch", "GOOG", "--source", "sample")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "GOOG_1d.csv").is_file()


def test_several_tickers_one_fails(tmp_path):
    d = tmp_path / "data"
    result = run("fetch", "NOPE", "GOOG", "--source", "sample", "--data-dir", str(d))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"GOOG 1d: +{ROWS} rows")
    assert "Error: NOPE: the bundled sample has no 'NOPE'" in result.stderr
    assert result.stderr.rstrip().endswith("Error: 1 of 2 tickers failed: NOPE")
    assert (d / "GOOG_1d.csv").is_file() and not (d / "NOPE_1d.csv").exists()


def test_lock_held_exits_75(data):
    with locking.hold(data / ".stockrnn.lock"):
        result = run("fetch", "GOOG", "--source", "sample", "--data-dir", str(data))
    assert result.exit_code == 75
    assert result.stderr.startswith("Error: another stockrnn run holds")
    assert f"pid {os.getpid()}" in result.stderr and "--wait" in result.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"stockrnn, version {stockrnn.__version__}\n"


def test_fetch_over_a_config(work):
    result = invoke("fetch", "-c", MULTI, "--set", f"paths.data_dir={work / 'd'}")
    lines = result.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["GOOG", "RW1", "RW2", "AR1"]
    assert (work / "d" / "AR1_1d.csv").is_file() and (work / "d" / "GOOG_1d.csv").is_file()
    result = invoke("fetch", "-c", MULTI, "--set", f"paths.data_dir={work / 'd'}",
                    "--set", "data.tickers=[RW1, NOPE]", code=1)
    assert "up to date" in result.stdout and "NOPE" in result.stderr
    invoke("fetch", "GOOG", "-c", MULTI, code=2)  # TICKER arguments or --config
    invoke("fetch", code=2)


# --------------------------------------------------------------------------- messages (exit 1)


def test_unknown_ticker_in_sample(work):
    msg = error_line(invoke("fetch", "NOPE", "--source", "sample", code=1))
    assert msg == "the bundled sample has no 'NOPE'; it has: GOOG"
    assert list((work / "data").glob("*.csv")) == []


def test_csv_without_close_column(work):
    path = work / "prices.csv"
    path.write_text("Date,Open,Volume\n2020-01-01,1,2\n2020-01-02,1,2\n")
    msg = error_line(invoke("fetch", "X", "--csv", path, code=1))
    assert msg.startswith(f"{path}: no close-price column") and "--column" in msg, msg
    assert "columns: Date, Open, Volume" in msg


def test_csv_with_text_in_price_column(work):
    path = work / "prices.csv"
    path.write_text("Date,Close\n2020-01-01,10.5\n2020-01-02,11\n\n2020-01-03,n/a?\n")
    msg = error_line(invoke("fetch", "X", "--csv", path, code=1))
    assert msg == f"{path}: line 5: cannot parse number 'n/a?' in column 'Close'"
    assert list((work / "data").glob("*.csv")) == []



# --------------------------------------------------------------------------- real processes


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def test_module_help(tmp_path):
    proc = python("-m", "stockrnn", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fetch" in proc.stdout and "Exit codes" in proc.stdout
    proc = python("-m", "stockrnn", "--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(stockrnn.__version__)


HEAVY_CHECK = """
import json, sys
from stockrnn.cli import cli
try:
    cli(sys.argv[1:], prog_name="stockrnn")
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"keras", "tensorflow", "pandas"})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_fetch_help_imports_no_heavy_libraries(tmp_path):
    proc = python("-c", HEAVY_CHECK, "fetch", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report == {"code": 0, "heavy": []}
    assert "--source" in proc.stdout


def test_sample_fetch_imports_no_keras(tmp_path):
    proc = python("-c", HEAVY_CHECK, "fetch", "GOOG", "--source", "sample", "--data-dir",
                  str(tmp_path / "d"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["code"] == 0
    assert report["heavy"] == ["pandas"]
    assert (tmp_path / "d" / "GOOG_1d.csv").is_file()
