"""The report folder of ``kerasbench report``: ``report.md`` and ``report.png``."""

from __future__ import annotations

import os

from kerasbench import _validate
from kerasbench._results.chart import plot_results
from kerasbench._results.files import os_error, replace_atomically
from kerasbench._results.formatting import machine_label, status_counts
from kerasbench._results.selection import check_results, first_seen
from kerasbench._results.tables import markdown_tables


def write_report(results, out_dir, *, models=None, batch_size=None, baseline=None):
    """Writes ``report.md`` and ``report.png`` into a folder.

    ``report.md`` holds a title, the chart as an image link and
    `markdown_tables`; ``report.png`` is `plot_results`. When no run
    succeeded the tables (all ``OOM``/``error``) are still written, without
    a chart. Each file is written through a temporary file renamed into
    place: a reader never sees half a file, and a symbolic link planted at
    either name is replaced, not followed.

    Args:
        results: A non-empty list of `BenchmarkResult`.
        out_dir: The folder (created with its parents if missing).
        models: Optional list of registry names: the columns and bars, in
            this order.
        batch_size: Draw only this batch size in the chart.
        baseline: Series the chart's speedups are relative to (see
            `plot_results`).

    Returns:
        ``{"markdown": path of report.md, "png": path of report.png, or None
        when there is no successful run to draw}``.

    Raises:
        ValueError: If ``results`` is empty (see also `markdown_tables` and
            `plot_results`).
        OSError: If the folder cannot be created or written to; the message
            names it.

    Example:

    ```python
    paths = write_report(read_results("results/"), "report/")
    print(paths["markdown"])
    ```
    """
    results = check_results(results)
    out_dir = _validate.path("out_dir", out_dir)
    tables = markdown_tables(results, models=models)
    has_chart = any(r.ok and r.images_per_sec is not None
                    and (models is None or r.model in models) for r in results)
    md_path = os.path.join(out_dir, "report.md")
    png_path = os.path.join(out_dir, "report.png") if has_chart else None
    try:
        os.makedirs(out_dir, exist_ok=True)
        if png_path:
            plot_results(results, png_path, batch_size=batch_size, models=models,
                         baseline=baseline)
        with replace_atomically(md_path) as f:
            f.write(_markdown(results, tables, has_chart))
    except OSError as e:
        raise os_error(e.errno, f"Cannot write the report into the folder {out_dir!r}: "
                       f"{e.strerror or e}. Choose a writable folder.") from e
    return {"markdown": md_path, "png": png_path}


def _markdown(results, tables, has_chart):
    from kerasbench._version import __version__

    machines = first_seen(machine_label(r) for r in results)
    lines = ["# kerasbench report", "",
             f"{len(results)} results from {', '.join(machines)}; "
             f"{status_counts(results)}. Throughput in images/sec (higher is better). "
             f"Written by kerasbench {__version__}.", ""]
    if has_chart:
        lines += ["![images/sec per model](report.png)", ""]
    else:
        lines += ["No chart: no run succeeded.", ""]
    return "\n".join(lines) + "\n" + tables
