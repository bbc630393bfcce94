"""The words and numbers of tables, charts and comparisons, written once.

Shared by `tables`, `chart`, `report` and `compare`: model names, figures
(``466``, ``54.0``, ``0.047``), ratios (``2.50x``), intervals (``+/- 1.2%``),
the cell of a configuration's runs (images/sec with its interval, ``OOM``,
``error`` or ``n/a``), labels of machines and devices,
the note on published figures, and Markdown escaping. Pure Python.
"""

from __future__ import annotations

import math

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

#: What stands for a device that was never resolved (a run that failed first).
AUTO_DEVICE = "auto"


def model_label(model):
    """The display name of a registry model: ``"ResNet-50"`` for
    ``"resnet50"``, or ``model`` itself for models not in `MODEL_NAMES`."""
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
    return format_figure(value)


def format_figure(value):
    """Formats any figure as `format_images_per_sec` does (achieved TFLOP/s,
    joules per image): ``"466"``, ``"54.0"``, ``"0.047"``; ``"n/a"`` for
    ``None`` and non-finite values."""
    if value is None or not math.isfinite(value):
        return MISSING_CELL
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1 or value == 0:
        return f"{value:.1f}"
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"{value:.{decimals}f}"


def format_mfu(share):
    """MFU as a percentage: ``"31%"``, ``"4.2%"``, ``"0.05%"``; ``"n/a"``
    for ``None``."""
    from kerasbench._timing.text import percent

    if share is None or not math.isfinite(share):
        return MISSING_CELL
    return percent(share)


#: Binary units of `format_bytes`.
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(count):
    """Bytes in binary units with three significant digits: ``"812 MiB"``,
    ``"1.23 GiB"``, ``"512 B"``; ``"n/a"`` for ``None``.

    Example:

    >>> format_bytes(1 << 30), format_bytes(851_443_712), format_bytes(512)
    ('1.00 GiB', '812 MiB', '512 B')
    """
    if count is None:
        return MISSING_CELL
    value, unit = float(count), 0
    while abs(value) >= 1024 and unit < len(BYTE_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return f"{int(count)} B"
    decimals = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{decimals}f} {BYTE_UNITS[unit]}"


def format_ratio(ratio):
    """Formats a speedup or a ratio of throughputs: ``"2.50x"``.

    Two decimals below 10 (``0.41x``, ``2.50x``), one from 10 to 100
    (``12.3x``), none above (``215x``), and two significant digits below 0.1
    (``0.0026x``); ``"n/a"`` for ``None`` and non-finite ratios.
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


def ratio_cell(ratio, low=None, high=None, significant=None):
    """A ratio with its 95 % interval when known, ``" n.s."`` when not
    significant: ``"2.50x [2.41, 2.60]"``; ``"-"`` without a ratio."""
    if ratio is None:
        return "-"
    text = format_ratio(ratio)
    if low is not None:
        text += f" [{format_ratio(low)[:-1]}, {format_ratio(high)[:-1]}]"
        if not significant:
            text += " n.s."
    return text


def status_cell(status, images_per_sec):
    """The cell of one run: `format_images_per_sec` when ``status`` is
    ``"ok"``, ``"OOM"`` or ``"error"`` for a failed run."""
    if status != "ok":
        return STATUS_CELLS.get(status, status)
    return format_images_per_sec(images_per_sec)


def format_half_width(relative):
    """The half-width of a 95 % interval as a share of its figure:
    ``"+/- 1.2%"`` (as the summary prints it), ``"+/- >100%"`` from 100 % on
    and when unbounded; ``""`` for ``None``."""
    from kerasbench._timing.text import percent

    if relative is None or math.isnan(relative):
        return ""
    return "+/- >100%" if relative >= 1 else f"+/- {percent(relative)}"


def figure_cell(status, images_per_sec, half_width=None, runs=1):
    """The cell of a configuration: `status_cell`, then for a success the
    half-width of its 95 % interval (`format_half_width`, when known) and
    the number of runs averaged when more than one: ``"466 +/- 0.8% (3 runs)"``."""
    text = status_cell(status, images_per_sec)
    if status == "ok":
        if half_width is not None:
            text += " " + format_half_width(half_width)
        if runs > 1:
            text += f" ({runs} runs)"
    return text


def successful_runs(count):
    """``"the one successful run"`` or ``"the mean of the 3 successful runs"``:
    what a cell shows when some runs of its configuration failed."""
    return "the one successful run" if count == 1 else \
        f"the mean of the {count} successful runs"


def runs_cell(runs):
    """The cell of a configuration's `Runs` (see `figure_cell`), ``"n/a"``
    for None."""
    if runs is None:
        return MISSING_CELL
    half_width = None if runs.interval is None else runs.interval.relative_half_width
    return figure_cell(runs.status, runs.images_per_sec, half_width, runs.ok_count)


def interval_note(methods):
    """The note explaining ``+/-`` under a table or comparison, given the
    ``method`` of each interval shown; ``None`` when none is."""
    kinds = set(methods) - {None}
    if not kinds:
        return None
    parts = []
    if "batch_means" in kinds:
        parts.append("for one run, within the run (overlapping batch means of its step "
                     "times; it leaves out run-to-run variation)")
    if "across_runs" in kinds:
        parts.append("for several runs (sweep --repeats), across them (the mean of the "
                     "runs, Student's t)")
    return ("+/-: half-width of the 95 % confidence interval of images/sec, as a share "
            "of the figure: " + "; ".join(parts) + ".")


def published_note(citation):
    """The note that goes with published figures, citing ``citation``.

    ``"Published figures, not measured by kerasbench. Source: ..."``; the
    first sentence is left out when the citation says so already.
    """
    citation = (citation or "no citation given").rstrip(".")
    if "not measured" in citation.lower():
        return f"Published figures. Source: {citation}."
    return f"Published figures, not measured by kerasbench. Source: {citation}."


def machine_label(result):
    """The machine of a result: its label, or ``"unnamed machine"``."""
    return result.machine or "unnamed machine"


def device_name(result):
    """The device of a result (``"gpu:0"``), or ``"auto"`` when never resolved."""
    return result.device or AUTO_DEVICE


def device_label(result):
    """The device of a result with its model name when the device report has it.

    ``"gpu:0: NVIDIA GeForce GTX 1050 Ti"``, ``"cpu: Intel(R) Xeon(R) CPU
    @ 2.20GHz"``, or just ``"cpu"`` without a device report.
    """
    name = _device_model(result.device, result.device_report)
    return f"{device_name(result)}: {name}" if name else device_name(result)


def _device_model(device, report):
    """The CPU or GPU model of ``device`` in a device report of any shape."""
    if not isinstance(report, dict) or device is None:
        return None
    if device.startswith("cpu"):
        host = report.get("host")
        name = host.get("cpu_model") if isinstance(host, dict) else None
    else:
        accelerators = report.get("accelerators")
        found = [a.get("model") for a in accelerators if isinstance(a, dict)
                 and str(a.get("name")).lower() == device] \
            if isinstance(accelerators, list) else []
        name = found[0] if found else None
    return str(name) if name not in (None, "") else None


def published_label(text, results):
    """``text`` + ``" (published)"`` when a result is published and ``text``
    does not say so already."""
    if any(r.source == "published" for r in results) and "published" not in text.lower():
        return f"{text} (published)"
    return text


def describe(result):
    """``"ResNet-50, train, batch 32, fp32"``."""
    return f"{model_label(result.model)}, {result.mode}, batch {result.batch_size}, " \
           f"{result.precision}"


def first_line(text, limit=160):
    """The first non-empty line of ``text``, cut to ``limit`` characters."""
    lines = str(text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def md_escape(text):
    """``text`` safe in a Markdown table cell or heading: ``|`` escaped, line
    breaks turned into spaces."""
    return " ".join(str(text).replace("|", "\\|").splitlines())


def status_counts(results):
    """``"22 ok, 1 oom"``: how many results have each status, in order seen."""
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())
