"""Bad inputs: each one its own test, through the CLI, checking the exit code and the message.

Exit codes (README "Exit codes"): 2 for usage and config errors, 1 for runtime and data errors;
always one `Error: ...` line on stderr, never a traceback. The read-only data dir is tested in
test_faults.py (test_read_only_data_dir). At the end: hypothesis fuzzing of the config loader and
the CSV reader, whose every failure must be a StockRNNError with a message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stockrnn.cli import cli
from stockrnn.config import Config, load_config
from stockrnn.data.csvfile import read_price_csv
from stockrnn.errors import ConfigError, StockRNNError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


def invoke(*args, code: int):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (
        f"exit {result.exit_code} != {code} for {args}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}\nexception: {result.exception!r}")
    return result


def error_line(result) -> str:
    """The one `Error: ...` message (may span lines for several config problems)."""
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    match = re.search(r"^Error: (.+)", result.stderr, re.M | re.S)
    assert match, f"no 'Error:' line on stderr:\n{result.stderr}"
    return match.group(1).strip()


@pytest.fixture
def folders(tmp_path, monkeypatch) -> Path:
    """Empty data and runs folders; nothing a bad config does may create anything in them."""
    for name in ("data", "runs"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_with_config(folders: Path, text: str, code: int = 2) -> str:
    """`stockrnn run --config FILE` with ``text`` as FILE: must fail before anything runs."""
    cfg = folders / "bad.yaml"
    cfg.write_text(text)
    msg = error_line(invoke("run", "--config", cfg, code=code))
    assert list((folders / "data").iterdir()) == [] and list((folders / "runs").iterdir()) == []
    return msg


# --------------------------------------------------------------------------- config (exit 2)


def test_missing_config_file(folders):
    msg = error_line(invoke("run", "--config", folders / "nope.yaml", code=2))
    assert msg == f"{folders / 'nope.yaml'}: no such config file"


def test_yaml_syntax_error_names_the_line(folders):
    msg = run_with_config(folders, "data:\n  source: sample\nwindow:\n  look_back: 10: 20\n")
    assert re.search(r"bad\.yaml: line 4: YAML syntax error: mapping values are not allowed",
                     msg), msg


def test_unknown_key_suggests_the_right_one(folders):
    msg = run_with_config(folders, "window:\n  look_bak: 10\n")
    assert msg.endswith("bad.yaml: window.look_bak: unknown key (did you mean look_back?)"), msg


def test_unknown_section_suggests_the_right_one(folders):
    msg = run_with_config(folders, "trian:\n  epochs: 3\n")
    assert "trian: unknown key (did you mean train?)" in msg, msg


def test_wrong_type(folders):
    msg = run_with_config(folders, "window:\n  look_back: ten\n")
    assert "window.look_back: Input should be a valid integer" in msg, msg
    assert "look_back='ten'" in msg


def test_negative_look_back(folders):
    msg = run_with_config(folders, "window:\n  look_back: -5\n")
    assert "window.look_back: Input should be greater than 0" in msg and "-5" in msg, msg


def test_split_fractions_not_summing_to_one(folders):
    msg = run_with_config(folders, "split:\n  train: 0.6\n  val: 0.1\n  test: 0.1\n")
    assert "split: split fractions must sum to 1" in msg and "0.8" in msg, msg


def test_unknown_model_type(folders):
    msg = run_with_config(folders, "model:\n  type: transformer\n")
    assert "model.type" in msg and "transformer" in msg, msg
    for valid in ("simple_rnn", "lstm", "gru", "conv1d"):
        assert valid in msg


def test_several_problems_one_line_each(folders):
    msg = run_with_config(folders, "window:\n  look_bak: 10\nsplit:\n  train: 0.5\n")
    lines = msg.splitlines()
    assert len(lines) == 2 and all(ln.startswith(str(folders / "bad.yaml")) for ln in lines), msg


def test_bad_set_override(folders):
    msg = error_line(invoke("run", "-c", SMOKE, "--set", "window.look_back", code=2))
    assert "expected section.key=value" in msg


@pytest.mark.parametrize("text", [
    "data:\n  start: 2020-02-30\n",
    "window:\n  2020-01-01: 5\n",
    "window: &w\n  look_back: *w\n",
    "window:\n  look_back: !!int abc\n",
    "model:\n  bidirectional: !!bool maybe\n",
    "data:\n  start: !!timestamp x\n",
    "window: " + "[" * 1500 + "]" * 1500 + "\n",
], ids=["impossible-date", "date-key", "recursive-alias", "bad-int-tag", "bad-bool-tag", "bad-timestamp-tag",
        "deep-nesting"])
def test_yaml_that_breaks_the_loader(folders, text):
    msg = run_with_config(folders, text)
    assert "bad.yaml" in msg


@pytest.mark.parametrize("override", ["data.end=2020-02-30", "window.look_back=!!int abc",
                                      "data.start=!!timestamp x",
                                      "window.look_back=" + "[" * 1500],
                         ids=["impossible-date", "bad-int-tag", "bad-timestamp-tag",
                              "deep-nesting"])
def test_set_override_that_breaks_the_loader(folders, override):
    msg = error_line(invoke("run", "-c", SMOKE, "--set", override, code=2))
    assert "window" in msg or "data" in msg


# --------------------------------------------------------------------------- data (exit 1)


def test_unknown_ticker_in_sample(folders):
    msg = error_line(invoke("fetch", "NOPE", "--source", "sample", code=1))
    assert msg == "the bundled sample has no 'NOPE'; it has: GOOG"
    assert list((folders / "data").glob("*.csv")) == []


def test_csv_without_close_column(folders):
    path = folders / "prices.csv"
    path.write_text("Date,Open,Volume\n2020-01-01,1,2\n2020-01-02,1,2\n")
    msg = error_line(invoke("fetch", "X", "--csv", path, code=1))
    assert msg.startswith(f"{path}: no close-price column") and "--column" in msg, msg
    assert "columns: Date, Open, Volume" in msg


def test_csv_with_text_in_price_column(folders):
    path = folders / "prices.csv"
    path.write_text("Date,Close\n2020-01-01,10.5\n2020-01-02,11\n\n2020-01-03,n/a?\n")
    msg = error_line(invoke("fetch", "X", "--csv", path, code=1))
    assert msg == f"{path}: line 5: cannot parse number 'n/a?' in column 'Close'"
    assert list((folders / "data").glob("*.csv")) == []


def test_series_shorter_than_one_window(folders):
    path = folders / "short.csv"
    dates = pd.bdate_range("2020-01-01", periods=25)
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"),
                  "Close": np.linspace(10, 20, 25)}).to_csv(path, index=False)
    result = invoke("prepare", "-c", SMOKE, "--set", "data.source=csv",
                    "--set", f"data.path={path}", "--set", "data.ticker=SHORT",
                    "--set", "window.look_back=30", code=1)
    msg = error_line(result)
    assert re.search(r"25 rows is too few for look_back=30.*need at least (\d+) rows", msg), msg
    need = int(re.search(r"need at least (\d+) rows", msg).group(1))
    assert need > 30


def test_run_dir_that_does_not_exist(folders):
    missing = folders / "runs" / "lstm" / "20990101T000000Z"
    msg = error_line(invoke("evaluate", "--run", missing, code=1))
    assert str(missing) in msg and "no run directory" in msg, msg
    msg = error_line(invoke("predict", "--run", "nosuchname", code=1))
    assert "'nosuchname'" in msg


# --------------------------------------------------------------------------- damaged runs


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("badruns")
    result = CliRunner().invoke(cli, ["train", "-q", "-c", str(SMOKE),
                                      "--set", f"paths.data_dir={base / 'data'}",
                                      "--set", f"paths.runs_dir={base / 'runs'}"])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def run_copy(complete_run, tmp_path) -> Path:
    return Path(shutil.copytree(complete_run, tmp_path / "run"))


def test_run_from_an_incompatible_version(run_copy):
    meta = json.loads((run_copy / "meta.json").read_text())
    meta["format"] = 99
    (run_copy / "meta.json").write_text(json.dumps(meta))
    for cmd in ("evaluate", "predict"):
        msg = error_line(invoke(cmd, "--run", run_copy, code=1))
        assert "run format 99 is not supported" in msg and "retrain" in msg, msg


def test_unreadable_meta_json(run_copy):
    (run_copy / "meta.json").write_text('{"format": 1, "status": "comp')
    msg = error_line(invoke("evaluate", "--run", run_copy, code=1))
    assert "meta.json is unreadable" in msg, msg


def test_corrupted_model_file(run_copy):
    model = run_copy / "model.keras"
    blob = model.read_bytes()
    model.write_bytes(blob[: len(blob) // 2])
    for cmd in ("evaluate", "predict"):
        msg = error_line(invoke(cmd, "--run", run_copy, code=1))
        assert msg.startswith(f"{model}: cannot load the model") and "retrain" in msg, msg


def test_missing_model_file(run_copy):
    (run_copy / "model.keras").unlink()
    msg = error_line(invoke("evaluate", "--run", run_copy, code=1))
    assert msg == f"{run_copy / 'model.keras'}: missing"


def test_incomplete_run(run_copy):
    meta = json.loads((run_copy / "meta.json").read_text())
    meta.update(status="running", pid=2 ** 22 + 12345)  # no such process
    (run_copy / "meta.json").write_text(json.dumps(meta))
    msg = error_line(invoke("evaluate", "--run", run_copy, code=1))
    assert "run is incomplete" in msg and "--resume" in msg, msg


# --------------------------------------------------------------------------- fuzzing

FIELDS = sorted({name for model in [Config, *[f.annotation for f in Config.model_fields.values()]]
                 for name in model.model_fields} | {"patience", "min_delta"})
WORD = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10)
# keys: field names or words
KEY = st.one_of(st.sampled_from(FIELDS), WORD,
                st.sampled_from(["1", "null", "true", "-", "~", "2020-01-01", "? [a]"]))
SCALAR = st.one_of(
    st.sampled_from(["", "~", "null", "true", "no", "1", "-3", "0.5", "1e400", ".nan", "-.inf",
                     "2020-01-01", "[]", "{}", "[1, 2", "{a: 1", "'", '"', "|", ">",
                     "&a 1", "*a", "*zz", "!!python/name:os.system", "!!binary AAA", "!!set {a}",
                     "@", "`", "%YAML", "[10, 20]", "{type: gru}", "lstm",
                     "sample", "yahoo", "csv", "- 1", "0x1F", "0o17", "1_000", "9" * 40,
                     "2020-02-30", "2020-13-45", "!!int abc", "!!bool maybe", "!!timestamp x",
                     "&r [*r]"]),
    WORD, st.integers(), st.floats().map(repr))


@st.composite
def yamlish(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 8))):
        indent = "  " * draw(st.integers(0, 2))
        sep = draw(st.sampled_from([": ", ":", " : ", ": ", "\t: ", "= "]))
        lines.append(f"{indent}{draw(KEY)}{sep}{draw(SCALAR)}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n---\n", "\n...\n"]))


VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
              st.dates().map(str)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(KEY, inner, max_size=4)),
    max_leaves=12)
CONFIG_DICT = st.dictionaries(
    st.one_of(st.sampled_from(list(Config.model_fields)), WORD),
    st.one_of(st.dictionaries(KEY, VALUE, max_size=5), VALUE), max_size=5)

# STOCKRNN_FUZZ_EXAMPLES raises the number of examples per fuzz test (default 150).
FUZZ = settings(max_examples=int(os.environ.get("STOCKRNN_FUZZ_EXAMPLES", "150")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def load_config_bytes(blob: bytes) -> None:
    """load_config on a file holding ``blob``: a Config, or a ConfigError with a message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(blob)
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            assert str(exc).strip(), "empty message"
            assert all(line.startswith(str(path)) for line in str(exc).splitlines()), str(exc)
        else:
            assert isinstance(cfg, Config)


@FUZZ
@given(text=st.one_of(yamlish(), st.text(max_size=200)))
@example(text="window: [1, 2]\n")
@example(text="- a\n- b\n")
@example(text="data:\n  source: sample\n  start: 2020-01-01\n  end: 2019-01-01\n")
def test_fuzz_load_config_text(text):
    load_config_bytes(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(blob=st.binary(max_size=300))
@example(blob=b"\xff\xfe\x00w\x00i")
@example(blob=b"window:\x00 1")
def test_fuzz_load_config_bytes(blob):
    load_config_bytes(blob)


@FUZZ
@given(raw=CONFIG_DICT)
@example(raw={"window": {"look_back": 10 ** 30}})
@example(raw={"model": {"units": [0, -1]}})
@example(raw={"paths": {"run_name": "../x"}})
@example(raw={"model": {"type": "conv1d", "kernel_size": 50}})
def test_fuzz_load_config_dicts(raw):
    load_config_bytes(yaml.safe_dump(raw).encode())


@FUZZ
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}",
              st.lists(KEY, min_size=1, max_size=3).map(".".join), SCALAR),
    st.text(max_size=20)), max_size=4))
def test_fuzz_set_overrides(overrides):
    try:
        load_config(SMOKE, overrides)
    except ConfigError as exc:
        assert str(exc).strip()


def read_csv_bytes(blob: bytes) -> None:
    """read_price_csv on a file holding ``blob``: a price frame, or a StockRNNError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_bytes(blob)
        try:
            frame = read_price_csv(path)
        except StockRNNError as exc:
            assert str(exc).strip(), "empty message"
            assert str(path) in str(exc), str(exc)
        else:
            assert "Close" in frame.columns
            assert isinstance(frame.index, pd.DatetimeIndex)
            assert frame.index.is_monotonic_increasing


CSV_HEADER = st.lists(st.sampled_from(
    ["Date", "date", "Close", "close", "Adj Close", "Open", "High", "Low", "Volume", "Name",
     "price", "closed_price", "", "Unnamed: 0", "x", "Close "]), min_size=1, max_size=6)
CSV_CELL = st.one_of(
    st.sampled_from(["2020-01-02", "2021/5/6", "06/05/2021", "2020-01-02 09:30:00-05:00",
                     "2020-01-02T14:30:00Z", "1.5", '"29,331.37"', "$12", "-", "", "nan", "1e999",
                     "-0", "0", "abc", "GOOG", "2020-02-30", "99999-01-01", '"', "'", "1,2"]),
    st.text(string.printable, max_size=8), st.floats().map(str))


@st.composite
def csvish(draw) -> bytes:
    header = draw(CSV_HEADER)
    sep = draw(st.sampled_from([",", ";", "\t", ", "]))
    rows = [sep.join(header)]
    for _ in range(draw(st.integers(0, 6))):
        n = draw(st.integers(max(0, len(header) - 1), len(header) + 1))
        rows.append(sep.join(draw(CSV_CELL) for _ in range(n)))
    end = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return end.join(rows).encode("utf-8", "surrogatepass") + end.encode()


@FUZZ
@given(blob=st.one_of(st.binary(max_size=400), csvish()))
@example(blob=b"")
@example(blob=b"\n\n")
@example(blob=b"Date,Close\n")
@example(blob=b"Date,Close\n2020-01-02,1\n2020-01-02,2\n")
@example(blob=b"Date,Close\n2020-01-02,1e999\n")
@example(blob=b"Date,Close,Close\n2020-01-02,1,2\n")
@example(blob=b'Date,Close\n"2020-01-02,1\n')
@example(blob=b"\xef\xbb\xbfDate,Close\n2020-01-02,1\n")
@example(blob=b"Date,Close\n2020-01-02 09:30-05:00,1\n2020-06-02 09:30-04:00,2\n")
def test_fuzz_read_price_csv(blob):
    read_csv_bytes(blob)


def test_fuzz_targets_accept_good_inputs(tmp_path):
    """The fuzzed functions accept good inputs (so the fuzzing tells good from bad)."""
    assert load_config(SMOKE).window.look_back == 10
    path = tmp_path / "ok.csv"
    path.write_bytes(b"Date,Close\n2020-01-02,10\n2020-01-03,11\n")
    assert read_price_csv(path)["Close"].tolist() == [10.0, 11.0]
