"""The README documents the whole interface: every command has help text and appears in the
README, every long option appears there (and in its command's section), and so does every
config key."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from stockrnn.cli import cli
from stockrnn.config import Config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS = list(walk(cli))
IDS = [" ".join(p) or "stockrnn" for p, _ in COMMANDS]


def long_options(cmd: click.Command) -> list[str]:
    ctx = click.Context(cmd, info_name=cmd.name)
    params = [*cmd.params, cmd.get_help_option(ctx)]
    return sorted({o for p in params if isinstance(p, click.Option)
                   for o in [*p.opts, *p.secondary_opts] if o.startswith("--")})


def section(path: tuple[str, ...]) -> str:
    """The README section of a command: from its `### `stockrnn CMD` heading to the next one."""
    m = re.search(rf"^###[^\n]*`stockrnn {re.escape(' '.join(path))}\b.*?(?=^##)", README,
                  re.M | re.S)
    return m.group(0) if m else ""


def test_walk_finds_every_command():
    assert {"fetch", "prepare", "train", "evaluate", "predict", "run", "compare", "runs list",
            "runs prune", "config validate", "config show"} <= set(IDS)
    assert len(SECTIONED) == len(COMMANDS) - 1  # all but the top level  # the per-section check sees the commands' README sections


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_command_has_help_text_and_is_in_readme(path, cmd):
    assert (cmd.help or "").strip(), f"{IDS[COMMANDS.index((path, cmd))]} has no help text"
    assert f"stockrnn {' '.join(path)}".strip() in README


def option_cases():
    for path, cmd in COMMANDS:
        for p in cmd.params:
            if isinstance(p, click.Option):
                name = f"{' '.join(path) or 'stockrnn'} {p.opts[-1]}"
                yield pytest.param(p, id=name)


@pytest.mark.parametrize("param", option_cases())
def test_every_option_has_help_text(param):
    assert (param.help or "").strip()


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_every_long_option_is_in_readme(path, cmd):
    missing = [o for o in long_options(cmd) if o not in README]
    assert not missing, f"not in README.md: {missing}"


SECTIONED = [(p, c) for p, c in COMMANDS if p and section(p)]


@pytest.mark.parametrize(("path", "cmd"), SECTIONED, ids=[" ".join(p) for p, _ in SECTIONED])
def test_options_are_in_their_commands_section(path, cmd):
    """Each option of a command (its long or short form; -h/--help aside) is named in the
    command's own README section, not only somewhere in the README."""
    text = section(path)
    ctx = click.Context(cmd, info_name=cmd.name)
    missing = []
    for p in [*cmd.params, cmd.get_help_option(ctx)]:
        if not isinstance(p, click.Option) or "--help" in p.opts:
            continue
        if not any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text) for o in p.opts):
            missing.append("/".join(p.opts))
    assert not missing, f"not in the README section of stockrnn {' '.join(path)}: {missing}"


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += config_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_config_keys_walk():
    keys = config_keys()
    assert "train.early_stopping.patience" in keys and "window.look_back" in keys
    assert "train.early_stopping" not in keys and len(keys) > 30


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_in_readme(key):
    assert f"`{key}`" in README, f"config key {key} is not in README.md's key table"
