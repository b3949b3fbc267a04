"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes."""

from __future__ import annotations


class StockRNNError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(StockRNNError):
    """Bad configuration or usage (exit 2)."""

    exit_code = 2


class DataError(StockRNNError):
    """Missing, malformed or insufficient data (exit 1)."""


class FetchError(DataError):
    """A data source failed (network, rate limit, unknown ticker)."""


class NoDataError(FetchError):
    """A source answered, but with no rows for the ticker."""


class TickerMissingError(NoDataError):
    """The source does not know the ticker (unknown or delisted), or could not say so because
    it was unreachable: never read as "nothing new" for a ticker already stored."""


class RunError(StockRNNError):
    """A run directory is missing, incomplete or unreadable (exit 1)."""


class QualityGateError(StockRNNError):
    """The model failed a quality gate such as ``--max-mase`` (exit 3)."""

    exit_code = 3


class LockError(StockRNNError):
    """Another stockrnn process holds the lock (exit 75, EX_TEMPFAIL: try again later)."""

    exit_code = 75


class PipelineError(StockRNNError):
    """A stage of ``run`` failed; carries the stages that finished before it and the run
    directory (when training had created one). Exits like the error that caused it."""

    def __init__(self, cause: BaseException, stages: list, run_dir: str | None):
        text = str(cause) if isinstance(cause, StockRNNError) else \
            f"{type(cause).__name__}: {cause}"
        super().__init__(text)
        self.cause = cause
        self.stages = stages
        self.run_dir = run_dir
        self.exit_code = getattr(cause, "exit_code", 1)
