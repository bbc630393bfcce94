"""Reports of benchmark results: Markdown tables and a PNG bar chart.

`markdown_tables` lays results out the way the classic CPU-vs-GPU blog posts
did: one table per machine, device, precision and mode, one row per batch
size, one column per model, images/sec in the cells, then a ``Precision`` and
an ``Optimizer`` row. `plot_results` draws the same figures as grouped bars
with the speedup of each series over the slowest one. `write_report` writes
both into a folder.

Pure Python: importing this module imports neither Keras nor TensorFlow, and
matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import math
import os
import textwrap

#: Column names of the registry models in tables and charts; other models
#: appear under their registry name.
MODEL_NAMES = {
    "alexnet": "AlexNet",
    "densenet121": "DenseNet-121",
    "inception3": "InceptionV3",
    "lenet": "LeNet",
    "mobilenet_v2": "MobileNetV2",
    "nasnet": "NASNet-A Mobile",
    "nasnetlarge": "NASNet-A Large",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "resnet152": "ResNet-152",
    "trivial": "Trivial",
    "vgg16": "VGG16",
}

#: Cell text of failed runs, by ``status``.
STATUS_CELLS = {"oom": "OOM", "error": "error"}

#: Cell text when a configuration has no result.
MISSING_CELL = "n/a"

#: Settings shown under a table when every result of the table shares them.
_SHOWN_SETTINGS = ("backend", "jit_compile", "data_format", "steps_per_execution",
                   "steps", "warmup_steps")

#: The chart's y axis is logarithmic when its values span more than this
#: ratio (see `use_log_scale`).
LOG_SCALE_RATIO = 20.0


# ------------------------------------------------------------------ formatting


def model_label(model):
    """The display name of a registry model.

    Args:
        model: Registry name (``"resnet50"``).

    Returns:
        The friendly name (``"ResNet-50"``), or ``model`` itself for models
        not in `MODEL_NAMES`.
    """
    return MODEL_NAMES.get(model, model)


def format_images_per_sec(value):
    """Formats a throughput figure for a table cell or a bar label.

    Values of 100 and more are rounded to an integer (``466``), values from 1
    to 100 get one decimal (``54.0``, ``3.7``), and values below 1 two
    significant digits (``0.42``, ``0.047``), so every figure shows at least
    two significant digits and none shows noise digits.

    Args:
        value: images/sec, or ``None``.

    Returns:
        The text, or ``"n/a"`` for ``None`` and non-finite values.

    Example:

    >>> format_images_per_sec(465.7), format_images_per_sec(54), format_images_per_sec(0.0473)
    ('466', '54.0', '0.047')
    """
    if value is None or not math.isfinite(value):
        return MISSING_CELL
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:.1f}"
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def format_ratio(ratio):
    """Formats a speedup or a ratio of throughputs: ``"2.50x"``.

    Two decimals below 10 (``0.41x``, ``2.50x``), one from 10 to 100
    (``12.3x``), none above (``215x``), and two significant digits below 0.1
    (``0.0026x``).
    """
    if ratio is None or not math.isfinite(ratio):
        return MISSING_CELL
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    if ratio >= 0.1 or ratio <= 0:
        return f"{ratio:.2f}x"
    return f"{ratio:.{1 - math.floor(math.log10(ratio))}f}x"


def result_cell(result):
    """The table cell of one result: images/sec, ``OOM`` or ``error``.

    Args:
        result: A `BenchmarkResult`, or ``None`` for a missing configuration.

    Returns:
        `format_images_per_sec` of a successful result, ``"OOM"`` or
        ``"error"`` for a failed one, ``"n/a"`` for ``None`` or a successful
        result without ``images_per_sec``.
    """
    if result is None:
        return MISSING_CELL
    if not result.ok:
        return STATUS_CELLS.get(result.status, result.status)
    return format_images_per_sec(result.images_per_sec)


def published_note(reference):
    """The note that goes with published figures, citing ``reference``.

    ``"Published figures, not measured by kerasbench. Source: ..."``; the
    first sentence is left out when the reference says so already.
    """
    reference = (reference or "no reference given").rstrip(".")
    if "not measured" in reference.lower():
        return f"Published figures. Source: {reference}."
    return f"Published figures, not measured by kerasbench. Source: {reference}."


def device_label(result):
    """The device of a result with its model name when the report has it.

    ``"gpu:0: NVIDIA GeForce GTX 1050 Ti"``, ``"cpu: Intel(R) Xeon(R) CPU
    @ 2.20GHz"``, or just ``"cpu"`` without a device report.
    """
    name = _device_model(result)
    return f"{result.device}: {name}" if name else str(result.device)


def _device_model(result):
    report = result.device_report
    if not isinstance(report, dict):
        return None
    device = str(result.device).lower()
    if device.startswith("cpu"):
        host = report.get("host")
        return host.get("cpu_model") if isinstance(host, dict) else None
    for accelerator in report.get("accelerators") or ():
        if isinstance(accelerator, dict) and str(accelerator.get("name")).lower() == device:
            return accelerator.get("model")
    return None


def _machine(result):
    return result.machine or "unnamed machine"


def _published_label(text, results):
    """Appends " (published)" when a result is published and ``text`` does
    not say so already."""
    if any(r.source == "published" for r in results) and "published" not in text.lower():
        return f"{text} (published)"
    return text


# ------------------------------------------------------------- shared helpers


def _check_results(results, name="results"):
    """Returns ``results`` as a list, or raises for an empty or bad one."""
    from kerasbench._results.result import BenchmarkResult

    if results is None or isinstance(results, (str, bytes, os.PathLike)):
        raise TypeError(f"`{name}` must be a list of BenchmarkResult. "
                        f"Received: {name}={results!r}")
    results = list(results)
    if not results:
        raise ValueError(f"`{name}` is empty: there is nothing to report. Run a "
                         "benchmark first, or check the path of the results files.")
    for i, r in enumerate(results):
        if not isinstance(r, BenchmarkResult):
            raise TypeError(f"`{name}` must hold BenchmarkResult objects. "
                            f"Received: {name}[{i}] of type {type(r).__name__}")
    return results


def _check_models(models, name="models"):
    if models is None:
        return None
    if isinstance(models, str):
        models = [models]
    models = list(models)
    if not models or not all(isinstance(m, str) for m in models):
        raise ValueError(f"`{name}` must be a non-empty list of model names. "
                         f"Received: {name}={models!r}")
    return list(dict.fromkeys(models))


def _first_seen(values):
    return list(dict.fromkeys(values))


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


def _config_key(r):
    return (r.model, r.mode, r.batch_size, r.precision)


def _describe(r):
    """``"ResNet-50, train, batch 32, fp32"``."""
    return f"{model_label(r.model)}, {r.mode}, batch {r.batch_size}, {r.precision}"


def _first_line(text, limit=160):
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _md_escape(text):
    return str(text).replace("|", "\\|")


# ------------------------------------------------------------------- Markdown


def markdown_tables(results, models=None):
    """Markdown tables of images/sec, in the shape of the classic benchmark posts.

    One table per (machine, device, precision, mode), in the order the groups
    first appear. Each starts with a ``###`` heading naming the machine and
    the device (with the CPU or GPU model from the device report when there
    is one) and ending in ``(images/sec)``, then a line giving precision, mode
    and data. Rows are batch sizes, ascending; columns are models, in the
    order of ``models`` or else the order they first appear in ``results``;
    cells are images/sec formatted by `format_images_per_sec` (integers from
    100, one decimal below), ``OOM`` or ``error`` for failed runs and
    ``n/a`` for configurations without a result. A ``Precision`` and an
    ``Optimizer`` row close the table (``-`` as optimizer for inference).
    Below it come the settings shared by the table's runs, the citation of
    published figures, the first line of each error, and a note for each
    configuration that ran more than once (the latest, by ``finished_at``,
    is shown).

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
    from kerasbench._results.result import read_results
    print(markdown_tables(read_results("results/")))
    ```
    """
    results = _check_results(results)
    models = _check_models(models)
    if models is not None:
        results = [r for r in results if r.model in models]
        if not results:
            raise ValueError("`models` selects none of the results. "
                             f"Received: models={models!r}")
    order = models or _first_seen(r.model for r in results)
    groups = {}
    for r in results:
        groups.setdefault((_machine(r), r.device, r.precision, r.mode), []).append(r)
    blocks = [_markdown_table(group, order, models is not None) for group in groups.values()]
    return "\n\n".join(blocks) + "\n"


def _markdown_table(group, order, all_columns):
    chosen, duplicates = latest_by(group, lambda r: (r.model, r.batch_size))
    present = {r.model for r in group}
    columns = [m for m in order if all_columns or m in present]
    batch_sizes = sorted({r.batch_size for r in group})
    first = group[0]

    heading = f"{_machine(first)} / {device_label(first)}"
    heading = _published_label(heading, group)
    lines = [
        f"### {_md_escape(heading)} (images/sec)",
        "",
        f"Precision: {first.precision} / Mode: {first.mode} / Data: {_data_kind(group)}",
    ]
    settings = _shared_settings(group)
    if settings:
        lines += ["", f"Settings: {settings}"]
    lines.append("")

    header = ["Batch size"] + [_md_escape(model_label(m)) for m in columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(columns)) + "|")
    for b in batch_sizes:
        cells = [str(b)] + [result_cell(chosen.get((m, b))) for m in columns]
        lines.append("| " + " | ".join(cells) + " |")
    precision_row = ["Precision"] + [first.precision] * len(columns)
    optimizer_row = ["Optimizer"] + [_optimizer_cell(group, m) for m in columns]
    lines.append("| " + " | ".join(precision_row) + " |")
    lines.append("| " + " | ".join(optimizer_row) + " |")

    notes = _table_notes(group, chosen, duplicates)
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines)


def _data_kind(group):
    kinds = {r.config.get("synthetic_data", True) is not False for r in group}
    if kinds == {True}:
        return "synthetic"
    return "real" if kinds == {False} else "synthetic and real"


def _shared_settings(group):
    # The settings of the runs that ran: a failed run's record may lack them.
    runs = [r for r in group if r.source != "published" and r.ok] or \
        [r for r in group if r.source != "published"]
    parts = []
    for name in _SHOWN_SETTINGS:
        values = {repr(r.config.get(name)) for r in runs}
        if len(values) == 1:
            value = runs[0].config.get(name)
            if value is not None:
                parts.append(f"{name}={value}")
    return ", ".join(parts)


def _optimizer_cell(group, model):
    runs = [r for r in group if r.model == model]
    runs = [r for r in runs if r.ok] or runs
    if not runs:
        return MISSING_CELL
    names = _first_seen("-" if r.mode == "inference"
                        else (r.config.get("optimizer") or MISSING_CELL) for r in runs)
    return "/".join(names)


def _table_notes(group, chosen, duplicates):
    notes = []
    for reference in _first_seen(r.reference for r in group if r.source == "published"):
        notes.append(published_note(reference))
    for r in chosen.values():
        if r.status == "error":
            why = _first_line(r.error) or "no message"
            notes.append(f"{model_label(r.model)}, batch {r.batch_size}: error: {_md_escape(why)}")
    for (model, batch_size), n in duplicates.items():
        r = chosen[(model, batch_size)]
        notes.append(f"{model_label(model)}, batch {batch_size} ran {n} times; the table shows "
                     f"the latest (finished {r.finished_at or 'at an unknown time'}).")
    return notes


# ---------------------------------------------------------------------- chart


def _series_of(results):
    """Series key -> label; the key is (machine, device, precision, mode) and
    the label names precision and mode only when they vary."""
    keys = _first_seen((_machine(r), r.device, r.precision, r.mode) for r in results)
    several_precisions = len({k[2] for k in keys}) > 1
    several_modes = len({k[3] for k in keys}) > 1
    labels = {}
    for key in keys:
        machine, device, precision, mode = key
        label = f"{machine} {device}"
        if several_precisions:
            label += f" {precision}"
        if several_modes:
            label += f" {mode}"
        members = [r for r in results if (_machine(r), r.device, r.precision, r.mode) == key]
        labels[key] = _published_label(label, members)
    return labels


def plot_results(results, path, *, batch_size=None, models=None, baseline=None, dpi=100):
    """Draws a PNG bar chart of images/sec per model, with speedups.

    Bars are grouped by model; each series, a (machine, device) pair (and
    precision or mode when the results hold several), has its own colour,
    published figures are hatched. There is one subplot per batch size, or
    only ``batch_size``. Each bar is labelled with its images/sec and its
    speedup over the slowest series for that model (or over ``baseline``).
    The y axis is logarithmic when the values span more than
    `LOG_SCALE_RATIO` (20x). Failed runs are left out. Drawn with
    matplotlib's Agg canvas, without pyplot, so no window opens and no
    global state changes.

    Args:
        results: A non-empty list of `BenchmarkResult`.
        path: Where to write the PNG; its folder must exist.
        batch_size: Draw only this batch size (default: every batch size).
        models: Optional list of registry names to draw, in this order.
        baseline: A series label (as in the legend) or a machine label:
            speedups are relative to that series instead of the slowest.
        dpi: Resolution of the PNG.

    Returns:
        ``path``.

    Raises:
        ValueError: If ``results`` is empty or holds no successful run (after
            the ``batch_size`` and ``models`` selections), or ``baseline``
            names no series.

    Example:

    ```python
    plot_results(read_results("results/"), "throughput.png", batch_size=32)
    ```
    """
    results = _check_results(results)
    models = _check_models(models)
    ok = [r for r in results if r.ok and r.images_per_sec is not None]
    if not ok:
        raise ValueError("The results hold no successful run, so there is nothing to "
                         f"plot ({_status_counts(results)}).")
    if models is not None:
        ok = [r for r in ok if r.model in models]
        if not ok:
            raise ValueError("`models` selects none of the successful runs. "
                             f"Received: models={models!r}")
    if batch_size is not None:
        available = sorted({r.batch_size for r in ok})
        ok = [r for r in ok if r.batch_size == batch_size]
        if not ok:
            raise ValueError("`batch_size` must be a batch size of a successful run: "
                             f"{', '.join(map(str, available))}. "
                             f"Received: batch_size={batch_size!r}")
    order = models or _first_seen(r.model for r in ok)
    order = [m for m in order if any(r.model == m for r in ok)]
    labels = _series_of(ok)
    series = list(labels)
    reference = _resolve_baseline(baseline, labels)
    batch_sizes = sorted({r.batch_size for r in ok})
    chosen, _ = latest_by(ok, lambda r: (_machine(r), r.device, r.precision, r.mode,
                                         r.model, r.batch_size))
    positive = [r.images_per_sec for r in chosen.values() if r.images_per_sec > 0]
    log_scale = use_log_scale(positive)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n_bars = len(order) * len(series)
    width = min(24.0, max(7.0, 1.2 + 0.5 * n_bars + 0.3 * len(order)))
    height = 1.6 + 3.4 * len(batch_sizes)
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(batch_sizes), 1, squeeze=False)[:, 0]
    colors = [f"C{i % 10}" for i in range(len(series))]
    published = {(_machine(r), r.device, r.precision, r.mode)
                 for r in ok if r.source == "published"}
    bar_width = 0.8 / len(series)
    font = 8 if n_bars <= 24 else 7 if n_bars <= 40 else 6

    for ax, b in zip(axes, batch_sizes):
        top = 0.0
        for model_index, model in enumerate(order):
            bars = {s: chosen.get(s + (model, b)) for s in series}
            bars = {s: r.images_per_sec for s, r in bars.items() if r is not None}
            base = _base_value(bars, reference)
            for i, s in enumerate(series):
                if s not in bars:
                    continue
                value = bars[s]
                x = model_index - 0.4 + bar_width * (i + 0.5)
                hatched = s in published
                ax.bar(x, value, bar_width * 0.92, color=colors[i], hatch="//" if hatched else None,
                       edgecolor="white" if hatched else None, linewidth=0)
                text = format_images_per_sec(value)
                if base and len(bars) > 1:
                    text += "\n" + format_ratio(value / base)
                ax.annotate(text, (x, value), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=font, linespacing=1.0)
                top = max(top, value)
        ax.set_xticks(range(len(order)), [model_label(m) for m in order],
                      rotation=20 if len(order) > 6 else 0)
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.set_ylabel("images/sec")
        ax.set_title(f"Batch size {b}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if log_scale:
            ax.set_yscale("log")
            ax.set_ylim(min(positive) / 2, top * 6 if top > 0 else 10)
        else:
            ax.set_ylim(0, top * 1.3 if top > 0 else 1)

    handles = [Patch(facecolor=colors[i], hatch="//" if s in published else None,
                     edgecolor="white" if s in published else None, label=labels[s])
               for i, s in enumerate(series)]
    against = ("the slowest series" if reference is None else labels[reference])
    fig.legend(handles=handles, loc="outside upper center", ncols=min(3, len(handles)),
               fontsize=9, frameon=False, title_fontsize=11,
               title=f"{_mode_title(ok)} throughput, images/sec"
                     f"{' (log scale)' if log_scale else ''}; speedup over {against}")
    footnote = _chart_footnote(ok)
    if footnote:
        fig.supxlabel(footnote, fontsize=7, color="0.3")
    fig.savefig(path, format="png", dpi=dpi)
    return path


def use_log_scale(values):
    """Whether a chart of ``values`` needs a logarithmic y axis.

    Returns:
        True when the positive values span more than `LOG_SCALE_RATIO` (20x),
        where the short bars of a linear axis would be unreadable.
    """
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_SCALE_RATIO


def _status_counts(results):
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _resolve_baseline(baseline, labels):
    if baseline is None:
        return None
    for key, label in labels.items():
        if baseline == label:
            return key
    for key in labels:
        if baseline == key[0]:
            return key
    raise ValueError("`baseline` must be the label of a series or a machine in the results: "
                     f"{', '.join(repr(v) for v in labels.values())}. "
                     f"Received: baseline={baseline!r}")


def _base_value(bars, reference):
    if reference is None:
        positive = [v for v in bars.values() if v > 0]
        return min(positive) if positive else None
    value = bars.get(reference)
    return value if value else None


def _mode_title(results):
    modes = {r.mode for r in results}
    if modes == {"train"}:
        return "Training"
    if modes == {"inference"}:
        return "Inference"
    return "Training and inference"


def _chart_footnote(results):
    references = _first_seen(r.reference for r in results if r.source == "published")
    if not references:
        return ""
    text = "Hatched bars: " + " ".join(published_note(ref) for ref in references)
    return "\n".join(textwrap.wrap(text, 160))


# --------------------------------------------------------------------- folder


def write_report(results, out_dir, *, models=None, batch_size=None, baseline=None):
    """Writes ``report.md`` and ``report.png`` into a folder.

    ``report.md`` holds a title, the chart as an image link and
    `markdown_tables`; ``report.png`` is `plot_results`. When no run
    succeeded the tables (all ``OOM``/``error``) are still written, without
    a chart.

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
    results = _check_results(results)
    out_dir = os.fspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".kerasbench-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise OSError(f"Cannot write the report into the folder {out_dir!r}: "
                      f"{e.strerror or e}. Choose a writable folder.") from e

    tables = markdown_tables(results, models=models)
    has_chart = any(r.ok and r.images_per_sec is not None
                    and (models is None or r.model in models) for r in results)
    png_path = os.path.join(out_dir, "report.png") if has_chart else None
    if png_path:
        plot_results(results, png_path, batch_size=batch_size, models=models, baseline=baseline)
    md_path = os.path.join(out_dir, "report.md")
    from kerasbench._version import __version__

    lines = ["# kerasbench report", ""]
    machines = _first_seen(_machine(r) for r in results)
    lines.append(f"{len(results)} results from {', '.join(machines)}; "
                 f"{_status_counts(results)}. Throughput in images/sec (higher is better). "
                 f"Written by kerasbench {__version__}.")
    lines.append("")
    if png_path:
        lines += ["![images/sec per model](report.png)", ""]
    else:
        lines += ["No chart: no run succeeded.", ""]
    text = "\n".join(lines) + "\n" + tables
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(text)
    return {"markdown": md_path, "png": png_path}
