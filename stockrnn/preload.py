"""Imported once by the fork server of the worker processes (``jobs``): what every job needs,
TensorFlow (quietly, see ``backend.import_tensorflow``) and stockrnn's pipeline, so that each
worker forked from it starts with them instead of importing them again (TensorFlow alone is
about 5 s and 7 CPU-s a process on two cores). Keras is left to each job: its backend is the
job's config's."""

from stockrnn.backend import import_tensorflow

import_tensorflow()

from stockrnn import evaluation, forecasting, stages, training  # noqa: E402, F401
