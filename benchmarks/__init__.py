"""stockrnn's benchmark suite: ``python -m benchmarks [--quick] [--tiny] [--out DIR]``.

Writes ``<out>/benchmarks.md`` (tables, targets with PASS/MISS) and ``<out>/benchmarks.json``
(every raw figure). Sections, one module each:

    reference   the lectures' recipe (Python-loop windows, MinMaxScaler, keras.Sequential, fit)
    speed       ms/epoch and train wall time, stockrnn vs the reference, per family and backend
    commands    wall time and peak memory of the ``stockrnn`` command line
    prepare     dataset.build time and memory at 10^4..10^6 rows
    quality     test MASE and direction of the default configs beside AutoARIMA, AutoETS and
                the oracle, on the sample and synthetic series, over several seeds

Anything that imports keras runs in a worker subprocess (``benchmarks.worker``), one Keras
backend per process; this process only plans, runs the workers and writes the report.
"""
