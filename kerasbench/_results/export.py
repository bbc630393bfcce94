"""CSV export of results: one flat row per result, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import os

from kerasbench import _validate
from kerasbench._results import efficiency
from kerasbench._results.files import replace_atomically
from kerasbench._results.formatting import device_name
from kerasbench._results.selection import check_results

_RESULT_COLUMNS = ("model", "mode", "batch_size", "precision", "device", "machine",
                   "status", "error")
#: The figures, named as in `ThroughputResult`: images/sec with its 95 %
#: confidence interval (``ci_method``, ``ci_df``: how it was computed) and the
#: classic standard error, then the step times; last how an adaptive run
#: (``target_precision``) ended.
_STATS_COLUMNS = (
    "images_per_sec", "images_per_sec_ci_low", "images_per_sec_ci_high", "ci_method",
    "ci_df", "images_per_sec_sem", "images_per_sec_jitter",
    "steps_per_sec", "step_time_s", "step_time_sd_s", "step_time_p50_s",
    "step_time_p90_s", "step_time_p99_s", "step_time_min_s", "step_time_max_s",
    "steps", "samples", "time_s", "warmup_steps", "first_step_s",
    "target_reached", "stop_reason",
)
_CONFIG_COLUMNS = ("image_size", "num_classes", "optimizer", "jit_compile", "data_format",
                   "steps_per_execution", "target_precision")
_VERSION_COLUMNS = ("keras", "tensorflow", "kerasbench")

#: Columns of the CSV export, in order: the configuration, the outcome, the
#: figures, then settings and provenance. The efficiency figures
#: (`kerasbench._results.efficiency.CSV_COLUMNS`: FLOPs, MFU, peak memory,
#: energy) follow the figures, each only when some result has it.
CSV_COLUMNS = (_RESULT_COLUMNS + _STATS_COLUMNS + _CONFIG_COLUMNS
               + ("backend", "params") + _VERSION_COLUMNS
               + ("source", "started_at", "finished_at"))


def csv_columns(results):
    """The columns of the CSV export of ``results``: `CSV_COLUMNS`, with the
    efficiency figures some result has after the throughput figures."""
    split = len(_RESULT_COLUMNS) + len(_STATS_COLUMNS)
    return CSV_COLUMNS[:split] + efficiency.csv_columns(results) + CSV_COLUMNS[split:]

#: How a cell that a spreadsheet would run as a formula begins (OWASP's
#: list: ``=``, ``+``, ``-``, ``@``, tab and carriage return).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_row(result, columns=CSV_COLUMNS):
    """The flat figures of one result, keyed by ``columns`` (``None`` where
    absent; the device ``"auto"`` when it was never resolved)."""
    row = {name: getattr(result, name) for name in
           ("model", "mode", "batch_size", "precision", "machine", "status",
            "error", "backend", "params", "source", "started_at", "finished_at")}
    row["device"] = device_name(result)
    row.update({name: result.stats.get(name) for name in
                _STATS_COLUMNS + efficiency.CSV_COLUMNS})
    row.update({name: getattr(result.config, name) for name in _CONFIG_COLUMNS})
    versions = result.versions
    row.update({name: versions.get(name) or versions.get(f"{name}-cpu")
                for name in _VERSION_COLUMNS})
    return {name: row.get(name) for name in columns}


def csv_cell(value):
    """A value as CSV cell text: ``""`` for None, and text a spreadsheet
    would run as a formula (``=cmd|...``) prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(results, path):
    """Writes the flat figures of results as CSV, one row per result.

    The columns are `csv_columns`: the efficiency figures (MFU, peak
    memory, energy, ...) appear only when some result has them. Texts that
    a spreadsheet would take for a formula (a machine label
    ``=HYPERLINK(...)``) are prefixed with ``'``. The file is written through
    a temporary file renamed into place: a link planted at ``path`` is
    replaced, not followed.

    Args:
        results: `BenchmarkResult`s (failures included: their figures are empty).
        path: The ``.csv`` file to write (its folder is created).

    Returns:
        ``path``.
    """
    results = check_results(results, allow_empty=True)
    folder = os.path.dirname(_validate.path("path", path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with replace_atomically(path) as f:
        columns = csv_columns(results)
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for result in results:
            writer.writerow({k: csv_cell(v) for k, v in csv_row(result, columns).items()})
    return path
