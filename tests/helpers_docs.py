"""Shared by the tests that run the README's shell examples (CI job, cron line)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
STOCKRNN = Path(sys.executable).parent / "stockrnn"


def localize(command: str) -> str:
    """A README command with this venv's stockrnn and the repo's configs/ in place of the
    relative paths it names."""
    command = command.replace(".venv/bin/stockrnn", str(STOCKRNN))
    return re.sub(r"(?<![\w/.-])configs/", f"{REPO / 'configs'}/", command)
