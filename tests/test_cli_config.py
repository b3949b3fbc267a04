"""The ``config validate`` / ``config show`` commands, and bad configs given to ``stockrnn run``:
exit 2, one `Error: ...` line per problem naming the file and the key, never a traceback, and
nothing created in the data or runs folders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helpers import CONFIG_FILES, SMOKE, error_line, explain, invoke

from stockrnn.config import Config, load_config


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- CLI


LINE = re.compile(r"^(?:Error: )?(?P<file>[^:]+): (?P<key>[A-Za-z_][\w.]*|\(top level\)): (?P<msg>.+)$")


def test_cli_validate_ok():
    result = invoke("config", "validate", SMOKE, code=None)
    assert result.exit_code == 0, explain(result)
    assert result.stdout == f"{SMOKE}: ok\n"


def test_cli_validate_every_shipped_config():
    for path in CONFIG_FILES:
        result = invoke("config", "validate", path, code=None)
        assert result.exit_code == 0, explain(result)


def test_cli_validate_error_lines(tmp_path):
    path = write(tmp_path, "window:\n  look_bak: 5\n  horizon: 0\nmodel:\n  type: gru\n")
    result = invoke("config", "validate", path, code=None)
    assert result.exit_code == 2, explain(result)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Error: ")
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert {m["file"] for m in parsed} == {str(path)}
    by_key = {m["key"]: m["msg"] for m in parsed}
    assert by_key["window.look_bak"] == "unknown key (did you mean look_back?)"
    assert by_key["window.horizon"].startswith("Input should be greater than 0")


def test_cli_validate_with_set_and_errors():
    result = invoke("config", "validate", SMOKE, "--set", "window.look_bak=5", code=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {SMOKE}: window.look_bak: unknown key (did you mean look_back?)\n"
    result = invoke("config", "validate", SMOKE, "--set", "model.type=conv1d",
                     "--set", "window.look_back=3", code=None)
    assert result.exit_code == 2
    m = LINE.match(result.stderr.strip())
    assert m and m["key"] == "model.kernel_size", result.stderr


def test_cli_validate_missing_and_broken_files(tmp_path):
    result = invoke("config", "validate", tmp_path / "nope.yaml", code=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nope.yaml'}: no such config file\n"
    path = write(tmp_path, "a: [1\nb: 2\n")
    result = invoke("config", "validate", path, code=None)
    assert result.exit_code == 2
    assert re.match(rf"Error: {re.escape(str(path))}: line \d+: YAML syntax error: ", result.stderr)


def test_cli_show_resolves_defaults_and_overrides():
    result = invoke("config", "show", SMOKE, "--set", "model.units=[16,8]", code=None)
    assert result.exit_code == 0, explain(result)
    shown = yaml.safe_load(result.stdout)
    assert shown["model"]["units"] == [16, 8]
    assert shown["window"]["look_back"] == 10          # from smoke.yaml
    assert shown["window"]["horizon"] == 1             # a default filled in
    assert shown["train"]["early_stopping"]["patience"] == 10
    assert set(shown) == set(Config.model_fields)
    # what show prints is a complete config that loads back to the same thing
    assert Config.model_validate(shown) == load_config(SMOKE, ["model.units=[16,8]"])


def test_cli_show_without_file_prints_defaults():
    result = invoke("config", "show", code=None)
    assert result.exit_code == 0, explain(result)
    assert Config.model_validate(yaml.safe_load(result.stdout)) == Config()


def test_cli_show_bad_override_exits_2():
    result = invoke("config", "show", "--set", "window.look_back=-1", code=None)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: <defaults>: window.look_back: ")


# --------------------------------------------------------------------------- bad configs given to run


@pytest.fixture
def folders(tmp_path, monkeypatch) -> Path:
    """Empty data and runs folders; nothing a bad config does may create anything in them."""
    for name in ("data", "runs"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("STOCKRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCKRNN_RUNS_DIR", str(tmp_path / "runs"))
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


def test_tickers_and_tickers_file_are_exclusive(work):
    bad = work / "bad.yaml"
    bad.write_text("data:\n  tickers: [RW1, AR1]\n  tickers_file: t.txt\n")
    result = invoke("config", "validate", bad, code=2)
    assert "data.tickers or data.tickers_file, not both" in result.stderr
    bad.write_text("data:\n  tickers: [RW1, rw1]\n")
    assert "listed twice" in invoke("config", "validate", bad, code=2).stderr
    bad.write_text("data:\n  tickers: []\n")
    invoke("config", "validate", bad, code=2)
