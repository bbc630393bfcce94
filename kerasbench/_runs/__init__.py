"""Benchmark runs: what to run (`RunConfig`), running it (`reference`), many of
them (`sweep`), each in its own process (the worker protocol).

Layers: ``config`` (pure, validated settings) <- ``reference`` (one run in this
process: model, synthetic data, `model.fit` + `ThroughputCallback`) <-
``worker`` (one run in a child process, JSON in and out) <- ``sweep`` (a list
of configurations, results appended to a file as they finish; ``progress``
shows where it is). The package imports nothing itself (``reference`` and
``sweep`` are modules here; the public functions of the same names are
reached through ``kerasbench``).
"""
