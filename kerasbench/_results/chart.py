"""The PNG bar chart of results: images/sec per model, with speedups.

Drawn with matplotlib's Agg canvas, without pyplot, so no window opens and
no global state changes; matplotlib is imported only when a chart is drawn.
"""

from __future__ import annotations

import textwrap

from kerasbench import _validate
from kerasbench._results.files import replace_atomically
from kerasbench._results.formatting import (
    format_images_per_sec,
    format_ratio,
    model_label,
    published_label,
    published_note,
    status_counts,
)
from kerasbench._results.selection import (
    check_models,
    check_results,
    first_seen,
    group_runs,
    series_key,
)

#: The chart's y axis is logarithmic when its values span more than this
#: ratio (see `use_log_scale`).
LOG_SCALE_RATIO = 20.0


def plot_results(results, path, *, batch_size=None, models=None, baseline=None, dpi=100):
    """Draws a PNG bar chart of images/sec per model, with speedups.

    Bars are grouped by model; each series, a (machine, device) pair (and
    precision or mode when the results hold several), has its own colour,
    published figures are hatched. There is one subplot per batch size, or
    only ``batch_size``. Each bar is labelled with its images/sec and its
    speedup over the slowest series for that model (or over ``baseline``);
    a configuration that ran several times is drawn at the mean of its
    runs. Error bars show the 95 % confidence interval where one is known
    (across runs for repeats, else the run's own; see `Runs`).
    The y axis is logarithmic when the values span more than
    `LOG_SCALE_RATIO` (20x). Failed runs are left out. The file is written
    through a temporary file and renamed into place, so a link at ``path``
    is replaced, not followed.

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
    _validate.path("path", path)
    batch_size = _validate.integer("batch_size", batch_size, minimum=1, allow_none=True)
    dpi = _validate.integer("dpi", dpi, minimum=1)
    ok, order = _select(check_results(results), check_models(models), batch_size)
    labels = _series_labels(ok)
    chart = _Chart(ok, order, labels, _base_series(baseline, labels))
    fig = chart.draw(dpi)
    with replace_atomically(path, binary=True) as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


def use_log_scale(values):
    """Whether a chart of ``values`` needs a logarithmic y axis.

    Returns:
        True when the positive values span more than `LOG_SCALE_RATIO` (20x),
        where the short bars of a linear axis would be unreadable.
    """
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) > LOG_SCALE_RATIO


def _select(results, models, batch_size):
    """The successful runs to draw and the model order; raises when none."""
    ok = [r for r in results if r.ok and r.images_per_sec is not None]
    if not ok:
        raise ValueError("The results hold no successful run, so there is nothing to "
                         f"plot ({status_counts(results)}).")
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
    order = [m for m in models or first_seen(r.model for r in ok)
             if any(r.model == m for r in ok)]
    return ok, order


def _series_labels(results):
    """Series key (see `series_key`) -> legend label; the label names
    precision, mode and backend only when they vary."""
    keys = first_seen(series_key(r) for r in results)
    varies = [len({k[i] for k in keys}) > 1 for i in range(len(keys[0]))] if keys else []
    labels = {}
    for key in keys:
        machine, device = key[:2]
        label = " ".join([f"{machine} {device}"] +
                         [str(k) for k, v in zip(key[2:], varies[2:]) if v and k])
        members = [r for r in results if series_key(r) == key]
        labels[key] = published_label(label, members)
    return labels


def _base_series(baseline, labels):
    """The series key named by ``baseline`` (a legend label or a machine)."""
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


def _plain(text):
    """``text`` shown as is by matplotlib (a ``$`` would start mathtext)."""
    return str(text).replace("$", r"\$")


class _Chart:
    """The figure's layout and drawing: one panel per batch size."""

    def __init__(self, ok, order, labels, base_series):
        self.order, self.labels, self.base_series = order, labels, base_series
        self.series = list(labels)
        self.chosen = group_runs(ok, lambda r: series_key(r) + (r.model, r.batch_size))
        self.batch_sizes = sorted({r.batch_size for r in ok})
        self.positive = [r.images_per_sec for r in self.chosen.values() if r.images_per_sec > 0]
        self.error_bars = any(r.interval is not None for r in self.chosen.values())
        self.log_scale = use_log_scale(self.positive)
        self.published = {series_key(r) for r in ok if r.source == "published"}
        self.colors = [f"C{i % 10}" for i in range(len(self.series))]
        self.n_bars = len(order) * len(self.series)
        self.bar_width = 0.8 / len(self.series)
        self.font = 8 if self.n_bars <= 24 else 7 if self.n_bars <= 40 else 6
        self.ok = ok

    def draw(self, dpi):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        width = min(24.0, max(7.0, 1.2 + 0.5 * self.n_bars + 0.3 * len(self.order)))
        height = 1.6 + 3.4 * len(self.batch_sizes)
        fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(self.batch_sizes), 1, squeeze=False)[:, 0]
        for ax, b in zip(axes, self.batch_sizes):
            self._panel(ax, b)
        self._legend(fig)
        return fig

    def _panel(self, ax, batch_size):
        top = 0.0
        for model_index, model in enumerate(self.order):
            runs = {s: self.chosen.get(s + (model, batch_size)) for s in self.series}
            runs = {s: r for s, r in runs.items() if r is not None}
            bars = {s: r.images_per_sec for s, r in runs.items()}
            base = _base_value(bars, self.base_series)
            for i, s in enumerate(self.series):
                if s in bars:
                    x = model_index - 0.4 + self.bar_width * (i + 0.5)
                    whisker = self._error_bar(ax, x, runs[s].interval)
                    self._bar(ax, x, bars[s], i, base if len(bars) > 1 else None,
                              label_at=max(bars[s], whisker))
                    top = max(top, bars[s], whisker)
        ax.set_xticks(range(len(self.order)), [_plain(model_label(m)) for m in self.order],
                      rotation=20 if len(self.order) > 6 else 0)
        ax.set_xlim(-0.6, len(self.order) - 0.4)
        ax.set_ylabel("images/sec")
        ax.set_title(f"Batch size {batch_size}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if self.log_scale and top > 0:
            ax.set_yscale("log")
            ax.set_ylim(min(self.positive) / 2, top * 6 if top > 0 else 10)
        else:
            ax.set_ylim(0, top * 1.3 if top > 0 else 1)

    def _bar(self, ax, x, value, i, base, label_at):
        hatched = self.series[i] in self.published
        ax.bar(x, value, self.bar_width * 0.92, color=self.colors[i],
               hatch="//" if hatched else None, edgecolor="white" if hatched else None,
               linewidth=0)
        text = format_images_per_sec(value)
        if base:
            text += "\n" + format_ratio(value / base)
        ax.annotate(text, (x, label_at), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=self.font, linespacing=1.0)

    def _error_bar(self, ax, x, interval):
        """Draws the 95 % interval of a bar; returns its top (0 without one).
        An interval unbounded above is drawn to twice the figure."""
        if interval is None:
            return 0.0
        high = min(interval.high, 2 * interval.estimate)
        low = max(interval.low, interval.estimate / 10 if self.log_scale else 0.0)
        ax.errorbar(x, interval.estimate, yerr=[[interval.estimate - low],
                                                [high - interval.estimate]],
                    fmt="none", ecolor="0.15", elinewidth=0.8, capsize=2)
        return high

    def _legend(self, fig):
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=self.colors[i], hatch="//" if s in self.published else None,
                         edgecolor="white" if s in self.published else None,
                         label=_plain(self.labels[s]))
                   for i, s in enumerate(self.series)]
        against = ("the slowest series" if self.base_series is None
                   else self.labels[self.base_series])
        fig.legend(handles=handles, loc="outside upper center", ncols=min(3, len(handles)),
                   fontsize=9, frameon=False, title_fontsize=11,
                   title=_plain(f"{_mode_title(self.ok)} throughput, images/sec"
                                f"{' (log scale)' if self.log_scale else ''}; "
                                f"speedup over {against}"
                                + ("; error bars: 95 % confidence intervals"
                                   if self.error_bars else "")))
        footnote = _footnote(self.ok)
        if footnote:
            fig.supxlabel(_plain(footnote), fontsize=7, color="0.3")


def _base_value(bars, base_series):
    """What the bars of one model are divided by: the base series' value, or
    the slowest positive one."""
    if base_series is None:
        positive = [v for v in bars.values() if v > 0]
        return min(positive) if positive else None
    value = bars.get(base_series)
    return value if value else None


def _mode_title(results):
    modes = {r.mode for r in results}
    if modes == {"train"}:
        return "Training"
    if modes == {"inference"}:
        return "Inference"
    return "Training and inference"


def _footnote(results):
    citations = first_seen(r.citation for r in results if r.source == "published")
    if not citations:
        return ""
    text = "Hatched bars: " + " ".join(published_note(c) for c in citations)
    return "\n".join(textwrap.wrap(text, 160))
