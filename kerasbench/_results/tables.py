"""Markdown tables of results, in the shape of the classic CPU-vs-GPU posts.

One table per machine, device, precision and mode; one row per batch size,
one column per model, images/sec in the cells, then a ``Precision`` and an
``Optimizer`` row. Every text that comes from a results file (machine
labels, device names, errors, citations) is escaped, so a ``|`` or a line
break in it cannot break a table. Pure Python.
"""

from __future__ import annotations

from kerasbench._results.efficiency import efficiency_block
from kerasbench._results.formatting import (
    MISSING_CELL,
    device_label,
    first_line,
    interval_note,
    machine_label,
    md_escape,
    model_label,
    published_label,
    published_note,
    runs_cell,
    successful_runs,
)
from kerasbench._results.selection import (
    check_models,
    check_results,
    first_seen,
    group_runs,
    series_key,
)

#: Settings shown under a table when every result of the table shares them.
SHOWN_SETTINGS = ("backend", "jit_compile", "data_format", "steps_per_execution",
                  "steps", "warmup_steps")


def markdown_tables(results, models=None):
    """Markdown tables of images/sec, in the shape of the classic benchmark posts.

    One table per (machine, device, precision, mode), in the order the groups
    first appear. Each starts with a ``###`` heading naming the machine and
    the device (with the CPU or GPU model from the device report when there
    is one; ``auto`` for a device never resolved) and ending in
    ``(images/sec)``, then a line giving precision, mode and data. Rows are
    batch sizes, ascending; columns are models, in the order of ``models`` or
    else the order they first appear in ``results``; cells are images/sec
    formatted by `format_images_per_sec` (integers from 100, one decimal
    below), ``OOM`` or ``error`` for failed runs and ``n/a`` for
    configurations without a result. A cell with a 95 % confidence
    interval shows its half-width (``466 +/- 0.8%``). A configuration that
    ran several times (``sweep --repeats``) shows the mean of its successful
    runs, its interval across them and their number (``466 +/- 1.1% (3
    runs)``). A ``Precision`` and an ``Optimizer`` row close the table
    (``-`` as optimizer for inference). Below it come the settings shared by
    the table's runs, the citation of published figures, what ``+/-``
    means, the first line of each error (of the latest run), and a note for
    each configuration with failed runs among successful ones.

    Args:
        results: A non-empty list of `BenchmarkResult`.
        models: Optional list of registry names: the columns, in this order;
            results of other models are left out.

    Returns:
        The Markdown text (tables separated by blank lines, ending in a
        newline).

    Raises:
        ValueError: If ``results`` is empty or ``models`` selects none of
            them.
        TypeError: If ``results`` does not hold `BenchmarkResult` objects.

    Example:

    ```python
    from kerasbench._results import markdown_tables, read_results
    print(markdown_tables(read_results("results/")))
    ```
    """
    results = check_results(results)
    models = check_models(models)
    if models is not None:
        results = [r for r in results if r.model in models]
        if not results:
            raise ValueError("`models` selects none of the results. "
                             f"Received: models={models!r}")
    order = models or first_seen(r.model for r in results)
    groups = {}
    for r in results:
        groups.setdefault(series_key(r), []).append(r)
    blocks = [_table(group, order, models is not None) for group in groups.values()]
    return "\n\n".join(blocks) + "\n"


def _table(group, order, all_columns):
    """One table: heading, settings, rows, notes."""
    chosen = group_runs(group, lambda r: (r.model, r.batch_size))
    present = {r.model for r in group}
    columns = [m for m in order if all_columns or m in present]
    first = group[0]

    heading = published_label(f"{machine_label(first)} / {device_label(first)}", group)
    lines = [f"### {md_escape(heading)} (images/sec)", "",
             f"Precision: {first.precision} / Mode: {first.mode} / Data: synthetic"]
    settings = _shared_settings(group)
    if settings:
        lines += ["", f"Settings: {md_escape(settings)}"]
    lines.append("")

    lines.append(_row(["Batch size"] + [md_escape(model_label(m)) for m in columns]))
    lines.append("|" + "|".join([":---"] + ["---:"] * len(columns)) + "|")
    for b in sorted({r.batch_size for r in group}):
        lines.append(_row([str(b)] + [runs_cell(chosen.get((m, b))) for m in columns]))
    lines.append(_row(["Precision"] + [first.precision] * len(columns)))
    lines.append(_row(["Optimizer"] + [_optimizer_cell(group, m) for m in columns]))

    notes = _table_notes(group, chosen)
    if notes:
        lines += [""] + [f"- {md_escape(n)}" for n in notes]
    lines += efficiency_block(chosen, columns)
    return "\n".join(lines)


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def _setting(result, name):
    return result.backend if name == "backend" else getattr(result.config, name)


def _shared_settings(group):
    """``"backend=tensorflow, jit_compile=False, ..."``: the `SHOWN_SETTINGS`
    all the group's measured runs share (the ones that ran, if any did)."""
    runs = [r for r in group if r.source != "published" and r.ok] or \
        [r for r in group if r.source != "published"]
    parts = []
    for name in SHOWN_SETTINGS:
        values = {repr(_setting(r, name)) for r in runs}
        if len(values) == 1 and _setting(runs[0], name) is not None:
            parts.append(f"{name}={_setting(runs[0], name)}")
    return ", ".join(parts)


def _optimizer_cell(group, model):
    runs = [r for r in group if r.model == model]
    runs = [r for r in runs if r.ok] or runs
    if not runs:
        return MISSING_CELL
    names = first_seen("-" if r.mode == "inference"
                       else (r.config.optimizer or MISSING_CELL) for r in runs)
    return "/".join(names)


def _table_notes(group, chosen):
    notes = [published_note(citation) for citation in
             first_seen(r.citation for r in group if r.source == "published")]
    explained = interval_note(r.interval.method for r in chosen.values()
                              if r.interval is not None and r.status == "ok")
    if explained:
        notes.append(explained)
    for runs in chosen.values():
        if runs.status == "error":
            r = runs.latest
            why = first_line(r.error) or "no message"
            notes.append(f"{model_label(r.model)}, batch {r.batch_size}: error: {why}")
    for runs in chosen.values():
        missed = [r for r in runs.results if r.ok and r.stats.get("target_reached") is False]
        if missed:
            r = missed[-1]
            why = {"max_time": "max_time_s", "max_steps": "max_steps"}.get(
                r.stats.get("stop_reason"), "the end of the run")
            target = r.stats.get("target_precision") or 0
            notes.append(f"{model_label(r.model)}, batch {r.batch_size}: {len(missed)} of "
                         f"{len(runs.results)} runs stopped at {why} before their interval "
                         f"reached +/- {target * 100:g}%.")
    for runs in chosen.values():
        if runs.status == "ok" and runs.ok_count < len(runs.results):
            r = runs.latest
            notes.append(f"{model_label(r.model)}, batch {r.batch_size}: "
                         f"{len(runs.results)} runs, {runs.failed_statuses}; the cell is "
                         f"{successful_runs(runs.ok_count)}.")
    return notes
