"""``python -m benchmarks.worker TASK ARGS.json RESULT.json``: one measurement task in its own
process (KERAS_BACKEND is set by the parent; a process can hold only one Keras backend)."""

from __future__ import annotations

import importlib
import json
import sys

TASKS = ("speed", "quality", "prepare", "covariates")  # modules of this package with a ``worker(args)``


def main(argv: list[str]) -> int:
    task, args_path, result_path = argv
    with open(args_path) as fh:
        args = json.load(fh)
    if task not in TASKS:
        raise SystemExit(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    result = importlib.import_module(f"benchmarks.{task}").worker(args)
    with open(result_path, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
