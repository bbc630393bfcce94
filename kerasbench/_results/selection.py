"""Which results to show: argument checks, groups, and the runs of each
configuration (its repeats: their mean and 95 % interval).

Shared by `tables`, `chart`, `report` and `compare`. Pure Python.
"""

from __future__ import annotations

import dataclasses
import os

from kerasbench import _validate
from kerasbench._results.formatting import device_name, machine_label, status_counts


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


def latest(results):
    """The result that finished last: compared by ``finished_at`` (ISO 8601
    strings; a missing time counts as oldest), the later in the list on a tie."""
    chosen = None
    for r in results:
        if chosen is None or (r.finished_at or "") >= (chosen.finished_at or ""):
            chosen = r
    return chosen


@dataclasses.dataclass(frozen=True)
class Runs:
    """Every run of one configuration (its repeats) and the figure they give.

    Attributes:
        results: The runs, in the order given (failures included).
        latest: The one that finished last (see `latest`).
        status: ``"ok"`` when at least one run succeeded, else the latest's.
        images_per_sec: The mean images/sec of the successful runs, or ``None``.
        interval: The 95 % `Interval` of ``images_per_sec``: across runs
            (Student's t) with two successful runs or more, the run's own
            (batch means of its steps) with one, ``None`` when unknown.
    """

    results: tuple
    latest: object
    status: str
    images_per_sec: float | None
    interval: object

    @property
    def ok_count(self):
        """How many runs succeeded (with a figure)."""
        return sum(_succeeded(r) for r in self.results)

    @property
    def failed_statuses(self):
        """``"1 oom, 1 error"``: the other runs by status, or ``""``."""
        return status_counts([r for r in self.results if not _succeeded(r)])


def _succeeded(result):
    return result.ok and result.images_per_sec is not None


def run_interval(result):
    """The interval stored with one run (``images_per_sec_ci_low``,
    ``_ci_high`` and ``ci_df`` in its stats; ``_ci_high`` is None when the
    interval has no upper end), or ``None`` without one."""
    import math

    from kerasbench._timing.intervals import BATCH_MEANS, Interval

    stats = result.stats
    low, high, df = (stats.get(k) for k in ("images_per_sec_ci_low",
                                             "images_per_sec_ci_high", "ci_df"))
    if not result.ok or result.images_per_sec is None or low is None or df is None or df < 1:
        return None
    return Interval(estimate=result.images_per_sec, low=low,
                    high=math.inf if high is None else high, df=df,
                    method=stats.get("ci_method") or BATCH_MEANS)


def summarize_runs(results):
    """The `Runs` of a non-empty list of results of one configuration."""
    from kerasbench._timing.intervals import mean_interval

    results = tuple(results)
    ok = [r for r in results if _succeeded(r)]
    if len(ok) >= 2:
        interval = mean_interval(r.images_per_sec for r in ok)
        figure = interval.estimate
    else:
        interval = run_interval(ok[0]) if ok else None
        figure = ok[0].images_per_sec if ok else None
    last = latest(results)
    return Runs(results=results, latest=last, status="ok" if ok else last.status,
                images_per_sec=figure, interval=interval)


def group_runs(results, key):
    """Gathers the runs of each configuration.

    Args:
        results: A list of `BenchmarkResult`.
        key: A function of a result giving its configuration's key.

    Returns:
        A dict key -> `Runs`, in order of first appearance.
    """
    groups = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {k: summarize_runs(group) for k, group in groups.items()}
