"""Imported once by the fork server of the worker processes (``jobs``): what every job needs,
TensorFlow (quietly, see ``backend.import_tensorflow``), stockrnn's pipeline and, when the
``stats`` extra is installed, statsforecast (the AutoARIMA and AutoETS baselines every job's
evaluation fits), so that each worker forked from it starts with them instead of importing
them again (TensorFlow alone is about 4-5 CPU-s a process on two cores, statsforecast with
statsmodels about 2 CPU-s). Keras is left to each job: its backend is the job's
config's."""

from stockrnn.backend import collector_paused, import_tensorflow

# all of it without the cycle collector, then frozen: each worker forked from this server
# starts with these objects out of its collector's passes (which, as Python's gc documentation
# notes, then leave the pages it shares with the server unwritten)
with collector_paused():
    import_tensorflow()

    from stockrnn import classical, evaluation, forecasting, stages, training  # noqa: F401

    classical.preload()
