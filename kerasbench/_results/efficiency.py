"""The efficiency figures of results in tables, comparisons and CSV: MFU,
achieved TFLOP/s, peak memory and energy (docs/efficiency.md).

A figure shows only where some result has it: a table, a comparison or a CSV
file of results without any keeps exactly the shape it had before. The runs
of one configuration (``sweep --repeats``) give the mean of each figure over
the successful runs that have it, except peak memory: the largest. Pure
Python.
"""

from __future__ import annotations

from kerasbench._results.formatting import (
    MISSING_CELL,
    first_line,
    format_bytes,
    format_figure,
    format_mfu,
    md_escape,
    model_label,
)

#: Table columns: ``(stats key, header)``, in order.
TABLE_COLUMNS = (("achieved_tflops", "achieved TFLOP/s"), ("mfu", "MFU"),
                 ("peak_memory_bytes", "peak memory"), ("joules_per_image", "J/image"))

#: CSV columns after the throughput figures, each present only when a result has it.
CSV_COLUMNS = ("flops_per_sample", "flops_method", "flops_note", "achieved_tflops",
               "peak_tflops", "peak_is_estimate", "mfu", "peak_memory_bytes",
               "memory_kind", "energy_j",
               "joules_per_image", "images_per_sec_per_watt", "energy_source",
               "energy_note")

_MEAN = ("achieved_tflops", "mfu", "joules_per_image")


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_figures(runs):
    """The efficiency figures of a configuration's `Runs`: a dict with the
    keys of `TABLE_COLUMNS` (``None`` where no successful run has it),
    ``memory_kind`` (of the run with the largest peak), ``peak_is_estimate``,
    ``energy_note`` (the latest run's, when no run has energy) and ``runs``
    (how many succeeded)."""
    ok = [r for r in runs.results if r.ok and r.images_per_sec is not None]
    out = {"runs": len(ok)}
    for key in _MEAN:
        values = [r.stats[key] for r in ok if _number(r.stats.get(key))]
        out[key] = sum(values) / len(values) if values else None
    peaks = [r for r in ok if _number(r.stats.get("peak_memory_bytes"))]
    top = max(peaks, key=lambda r: r.stats["peak_memory_bytes"]) if peaks else None
    out["peak_memory_bytes"] = top.stats["peak_memory_bytes"] if top else None
    out["memory_kind"] = top.stats.get("memory_kind") if top else None
    out["peak_is_estimate"] = any(r.stats.get("peak_is_estimate") is True for r in ok
                                  if _number(r.stats.get("mfu")))
    notes = [r.stats.get("energy_note") for r in ok if r.stats.get("energy_note")]
    out["energy_note"] = notes[-1] if notes and out["joules_per_image"] is None else None
    return out


def memory_cell(peak_bytes, kind):
    """``"1.23 GiB (device)"``, ``"812 MiB (host)"``; ``"n/a"`` when unknown."""
    if peak_bytes is None:
        return MISSING_CELL
    return format_bytes(peak_bytes) + (f" ({kind})" if kind else "")


def _cell(key, figures):
    value = figures[key]
    if key == "mfu":
        return format_mfu(value)
    if key == "peak_memory_bytes":
        return memory_cell(value, figures["memory_kind"])
    return format_figure(value)


def efficiency_block(chosen, columns):
    """The lines of a table's efficiency section, or ``[]`` when no result of
    it has a figure (nor a reason for unknown energy).

    Args:
        chosen: ``{(model, batch_size): Runs}`` of the table.
        columns: The table's models, in column order.
    """
    rows = []
    for model in columns:
        for (m, batch), runs in sorted(chosen.items(), key=lambda item: item[0][1]):
            if m == model and runs.status == "ok":
                rows.append((model, batch, run_figures(runs)))
    shown = [(key, header) for key, header in TABLE_COLUMNS
             if any(f[key] is not None for _, _, f in rows)]
    notes = _notes(shown, [f for _, _, f in rows])
    if not shown and not notes:
        return []
    lines = ["", "Efficiency:"]
    if shown:
        lines += ["", "| Model | Batch size | " + " | ".join(h for _, h in shown) + " |",
                  "|:---|---:|" + "---:|" * len(shown)]
        lines += ["| " + " | ".join([md_escape(model_label(m)), str(b)]
                                    + [_cell(k, f) for k, _ in shown]) + " |"
                  for m, b, f in rows if any(f[k] is not None for k, _ in shown)]
    return lines + ([""] + [f"- {md_escape(n)}" for n in notes] if notes else [])


def _notes(shown, figures):
    keys = {key for key, _ in shown}
    notes = []
    if "mfu" in keys:
        notes.append("MFU: model FLOPs utilisation, achieved TFLOP/s over the device's peak "
                     "TFLOP/s at the run's precision" + (
                         " (the CPU's peak is an estimate: cores x clock x FLOPs per cycle)"
                         if any(f["peak_is_estimate"] for f in figures) else "") + ".")
    if "peak_memory_bytes" in keys:
        notes.append("peak memory: device = the GPU memory the framework held at its peak; "
                     "host = the process's peak resident memory.")
    if "joules_per_image" in keys:
        notes.append("J/image: energy of the measured steps per image (NVML for a GPU, "
                     "RAPL for a CPU).")
    reasons = list(dict.fromkeys(f["energy_note"] for f in figures if f["energy_note"]))
    notes += [f"Energy unknown: {first_line(r).rstrip('.')}." for r in reasons]
    if shown and any(f["runs"] > 1 for f in figures):
        notes.append("Several runs: the mean of each figure over them; peak memory: the "
                     "largest.")
    return notes


def compare_cell(mfu, achieved_tflops):
    """A comparison's efficiency cell: ``"31% (0.52 TFLOP/s)"``, ``"n/a
    (0.52 TFLOP/s)"`` without a peak, ``"-"`` without either."""
    if achieved_tflops is None and mfu is None:
        return "-"
    text = format_mfu(mfu)
    if achieved_tflops is not None:
        text += f" ({format_figure(achieved_tflops)} TFLOP/s)"
    return text


#: The note under a comparison that shows `compare_cell`s.
COMPARE_NOTE = ("MFU: model FLOPs utilisation, achieved TFLOP/s (in parentheses) over the "
                "device's peak TFLOP/s at the run's precision; n/a where the peak is unknown.")


def csv_columns(results):
    """The `CSV_COLUMNS` that some result has a value for, in order."""
    return tuple(name for name in CSV_COLUMNS
                 if any(r.stats.get(name) is not None for r in results))
