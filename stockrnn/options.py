"""The typed, frozen options a command passes down to the stages, batches, Ray workers and the
global model (one object instead of a dozen keyword arguments; picklable for worker processes).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Progress = Literal["bar", "lines", "none"]
Executor = Literal["local", "ray"]
EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How to run the pipeline for one ticker (and, for the batch fields, for many)."""

    resume: bool = False             # finish the newest interrupted run of the run name
    allow_stale: bool = False        # go on with stored data when the fetch fails
    steps: int | None = None         # bars to forecast (default: the run's horizon)
    keep: int | None = None          # after success keep only the newest N complete runs
    max_mase: float | None = None    # quality gate on the test MASE (exit 3)
    wait: float = 0.0                # seconds to wait for a lock before exiting 75
    progress: Progress = "lines"     # training progress: a bar, a line per epoch, or none
    threads: int | None = None       # math-library threads of a parallel job (None: all)
    jobs: int = 1                    # multi-ticker: tickers at once in local processes
    executor: Executor = "local"     # multi-ticker: local processes or Ray tasks
    ray_address: str | None = None   # multi-ticker with Ray: the cluster (None: a local Ray)
    allow_failures: int = 0          # multi-ticker: exit 0 when at most this many failed
    plots: bool | None = None        # draw the PNG plots (None: a single run does, a batch not)

    def replace(self, **changes) -> RunOptions:
        return dataclasses.replace(self, **changes)

    @property
    def draw_plots(self) -> bool:
        """Whether a run draws its plots: unless ``plots`` is False. A batch settles None to
        False for its tickers (``batch.run_batch``): plots only on request there."""
        return self.plots is not False


DEFAULT = RunOptions()
