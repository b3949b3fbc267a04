"""Imported once by the fork server of the worker processes (``jobs``): what every job needs,
TensorFlow (quietly, see ``backend.import_tensorflow``), stockrnn's pipeline and, when the
``stats`` extra is installed, statsforecast (the AutoARIMA and AutoETS baselines every job's
evaluation fits), so that each worker forked from it starts with them instead of importing
them again (TensorFlow alone is about 5 s and 7 CPU-s a process on two cores, statsforecast
with statsmodels about 2 CPU-s). Keras is left to each job: its backend is the job's
config's."""

from stockrnn.backend import import_tensorflow

import_tensorflow()

from stockrnn import classical, evaluation, forecasting, stages, training  # noqa: E402, F401

classical.preload()
