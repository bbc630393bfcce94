"""Which results to show: argument checks, groups, and the latest run of each.

Shared by `tables`, `chart`, `report` and `compare`. Pure Python.
"""

from __future__ import annotations

import os

from kerasbench import _validate
from kerasbench._results.formatting import device_name, machine_label


def check_results(results, name="results", *, allow_empty=False):
    """Returns ``results`` as a list of `BenchmarkResult`.

    Raises:
        TypeError: If it is not an iterable of `BenchmarkResult` (a path, say).
        ValueError: If it is empty (unless ``allow_empty``).
    """
    from kerasbench._results.result import BenchmarkResult

    if results is None or isinstance(results, (str, bytes, os.PathLike)) or \
            not hasattr(results, "__iter__"):
        raise TypeError(f"`{name}` must be a list of BenchmarkResult. "
                        f"Received: {name}={results!r:.200}")
    results = list(results)
    if not results and not allow_empty:
        raise ValueError(f"`{name}` is empty: there is nothing to report. Run a "
                         "benchmark first, or check the path of the results files.")
    for i, r in enumerate(results):
        if not isinstance(r, BenchmarkResult):
            raise TypeError(f"`{name}` must hold BenchmarkResult objects. "
                            f"Received: {name}[{i}] of type {type(r).__name__}")
    return results


def check_models(models, name="models"):
    """Returns ``models`` (registry names) as a list without repeats, or None.

    Raises:
        ValueError: If it is empty or holds something other than names.
    """
    if models is None:
        return None
    if isinstance(models, str):
        models = [models]
    models = list(models)
    if not models:
        raise ValueError(f"`{name}` must be a non-empty list of model names. "
                         f"Received: {name}={models!r}")
    for i, model in enumerate(models):
        _validate.text(f"{name}[{i}]", model, single_line=True)
    return first_seen(models)


def first_seen(values):
    """``values`` without repeats, in the order they first appear."""
    return list(dict.fromkeys(values))


def series_key(result):
    """What one table or one chart series holds: ``(machine, device,
    precision, mode, backend)``, with the labels of `formatting`."""
    return (machine_label(result), device_name(result), result.precision, result.mode,
            result.backend or "")


def latest_by(results, key):
    """Keeps one result per key: the one that finished last.

    Results are compared by ``finished_at`` (ISO 8601 strings; a missing time
    counts as oldest); on a tie the one later in the list wins.

    Args:
        results: A list of `BenchmarkResult`.
        key: A function of a result giving its key.

    Returns:
        ``(chosen, duplicates)``: a dict key -> the latest result, in order of
        first appearance, and a dict key -> how many results had that key,
        for the keys seen more than once.
    """
    chosen, counts = {}, {}
    for r in results:
        k = key(r)
        counts[k] = counts.get(k, 0) + 1
        old = chosen.get(k)
        if old is None or (r.finished_at or "") >= (old.finished_at or ""):
            chosen[k] = r
    return chosen, {k: n for k, n in counts.items() if n > 1}
