"""The GitHub Actions example in docs/operations.md works: its `run:` steps after `make test`
are run here as real shell commands in an empty folder (with this venv's stockrnn and the
repo's configs/), and each must exit 0."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from helpers_docs import OPERATIONS, STOCKRNN, localize


def ci_workflow() -> dict:
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", OPERATIONS, re.M | re.S)
    found = [b for b in blocks if "runs-on" in b]
    assert len(found) == 1, (f"{len(found)} GitHub Actions blocks (with runs-on) in "
                             "docs/operations.md")
    return yaml.safe_load(found[0])


def steps_after_make_test() -> list[str]:
    runs = [step["run"] for job in ci_workflow()["jobs"].values() for step in job["steps"]
            if "run" in step]
    assert "make test" in runs, runs
    return runs[runs.index("make test") + 1:]


def test_workflow_shape():
    wf = ci_workflow()
    assert set(wf["jobs"]["smoke"]) >= {"runs-on", "steps"}
    assert steps_after_make_test(), "nothing after make test"
    assert all("stockrnn" in s for s in steps_after_make_test())


def test_ci_steps_after_make_test_run(tmp_path):
    assert STOCKRNN.is_file(), f"{STOCKRNN} missing (pip install -e . into this venv)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKRNN_")}
    for step in steps_after_make_test():
        cmd = localize(step)
        proc = subprocess.run(["bash", "-e", "-c", cmd], cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{step!r} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    # what the steps leave behind
    if (tmp_path / "smoke.json").exists():
        summary = json.loads((tmp_path / "smoke.json").read_text())
        assert summary["status"] == "ok" and summary["exit_code"] == 0
    assert (tmp_path / "runs").is_dir() and (tmp_path / "data").is_dir()


@pytest.mark.parametrize("step", steps_after_make_test())
def test_ci_step_uses_only_paths_the_test_can_replace(step):
    """Every path in a step is the venv's stockrnn, configs/, or a file the steps create."""
    for word in step.split():
        if "/" in word:
            assert word.startswith((".venv/bin/", "configs/")), word
