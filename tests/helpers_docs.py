"""Shared by the tests that run the documented shell examples (CI job, cron line, systemd
unit): they live in docs/operations.md and are executed as written there."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
OPERATIONS_PATH = REPO / "docs" / "operations.md"
OPERATIONS = OPERATIONS_PATH.read_text(encoding="utf-8")
STOCKRNN = Path(sys.executable).parent / "stockrnn"


def localize(command: str) -> str:
    """A documented command with this venv's stockrnn and the repo's configs/ in place of the
    relative paths it names."""
    command = command.replace(".venv/bin/stockrnn", str(STOCKRNN))
    return re.sub(r"(?<![\w/.-])configs/", f"{REPO / 'configs'}/", command)
