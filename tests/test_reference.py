"""The command and config reference (docs/reference.md) is generated from the code and cannot
drift: it equals ``stockrnn.reference.render()``, and it holds every command, every long option
(in its command's section) and every config key. Every command and option has help text and
every config key a description, so the generated reference says something about each."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest

from stockrnn import reference
from stockrnn.cli import cli

REFERENCE = reference.REFERENCE_PATH.read_text(encoding="utf-8") \
    if reference.REFERENCE_PATH.exists() else ""
RENDERED = reference.render()
COMMANDS = list(reference.walk_commands())
IDS = [ctx.command_path for ctx, _ in COMMANDS]


def test_reference_is_up_to_date():
    assert reference.REFERENCE_PATH.exists(), "docs/reference.md is missing: run `make docs`"
    assert REFERENCE == RENDERED, (
        "docs/reference.md differs from what the code generates: run `make docs` "
        "(python -m stockrnn.reference --write) and commit docs/reference.md")


def test_walk_finds_every_command():
    assert IDS[0] == "stockrnn" and COMMANDS[0][1] is cli
    assert {f"stockrnn {c}" for c in ("fetch", "prepare", "train", "evaluate", "predict", "run",
                                      "compare", "tune", "runs list", "runs prune",
                                      "config validate", "config show")} <= set(IDS)


@pytest.mark.parametrize(("ctx", "cmd"), COMMANDS, ids=IDS)
def test_command_has_help_text(ctx, cmd):
    assert (cmd.help or "").strip(), f"{ctx.command_path} has no help text"


def option_cases():
    for ctx, cmd in COMMANDS:
        for p in cmd.params:
            if isinstance(p, click.Option):
                yield pytest.param(p, id=f"{ctx.command_path} {p.opts[-1]}")


@pytest.mark.parametrize("param", option_cases())
def test_every_option_has_help_text(param):
    assert (param.help or "").strip()


def section(text: str, path: str) -> str:
    """The reference section of a command: its ``### `PATH` `` heading up to the next heading."""
    m = re.search(rf"^### `{re.escape(path)}`\n(.*?)(?=^#)", text + "\n#", re.M | re.S)
    return m.group(1) if m else ""


@pytest.mark.parametrize(("ctx", "cmd"), COMMANDS, ids=IDS)
def test_every_command_and_long_option_is_in_its_reference_section(ctx, cmd):
    text = section(RENDERED, ctx.command_path)
    assert text, f"no section for {ctx.command_path} in the reference"
    assert f"Usage: {ctx.command_path}" in text
    missing = [o for o in reference.long_options(ctx, cmd) if f"`{o}`" not in text]
    assert not missing, f"not in the reference section of {ctx.command_path}: {missing}"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.help:
            assert reference._escape(" ".join(p.help.split())) in text, p.opts


def test_config_keys_walk():
    keys = reference.config_keys()
    assert "train.early_stopping.patience" in keys and "window.look_back" in keys
    assert "train.early_stopping" not in keys and "train" not in keys and len(keys) > 30


@pytest.mark.parametrize("key", reference.config_keys())
def test_every_config_key_is_in_the_reference(key):
    assert re.search(rf"^\| `{re.escape(key)}` \|", RENDERED, re.M), \
        f"config key {key} has no row in the reference"


@pytest.mark.parametrize("key", [k for k, _ in reference.config_fields()])
def test_every_config_field_has_a_description(key):
    field = dict(reference.config_fields())[key]
    assert (field.description or "").strip(), \
        f"config key {key} has no description= in stockrnn/config.py"


def test_reference_shows_defaults_choices_and_constraints():
    text = RENDERED
    assert "| `window.look_back` | integer | `30` | > 0, <= 5000 |" in text
    assert "`simple_rnn` \\| `lstm` \\| `gru` \\| `conv1d`" in text
    assert re.search(r"^\| `--source` \| `yahoo` \\\| `csv`.*\| `yahoo` \|", text, re.M)
    assert re.search(r"^\| `--jobs` \| integer >= 1 \| `1` \|", text, re.M)
    assert "Sentinel" not in text and "UNSET" not in text


def test_importing_reference_does_not_import_keras():
    code = ("import sys, stockrnn.reference as r; r.render(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'tensorflow', 'jax', 'torch')]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_module_prints_the_reference():
    proc = subprocess.run([sys.executable, "-m", "stockrnn.reference"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == RENDERED
    assert reference.main(["--bogus"]) == 2
