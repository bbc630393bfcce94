"""Side-by-side comparison of result sets, with throughput ratios.

A *set* is one input: a results file, a folder of them, or a bundled
baseline, given as ``(label, results)``. Within a set, results are split
into *columns* by (machine, device), so a folder holding CPU and GPU runs of
one machine gives two columns (``"laptop cpu"``, ``"laptop gpu:0"``). Rows
match configurations across columns by model, mode, batch size and
precision (fewer with ``ignore``); each column then shows its images/sec and
its ratio to the baseline column.

Pure Python: importing this module imports neither Keras nor TensorFlow.

Example:

```python
from kerasbench._results import compare, load_baseline, read_results

comparison = compare(
    [("results/", read_results("results/")),
     ("gtx1050ti-fp16", load_baseline("gtx1050ti-fp16"))],
    baseline="gtx1050ti-fp16",
    ignore=("precision",),
)
print(comparison.to_markdown())
```
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

from kerasbench import _validate
from kerasbench._results.efficiency import COMPARE_NOTE, compare_cell, run_figures
from kerasbench._results.formatting import (
    MISSING_CELL,
    describe,
    device_name,
    figure_cell,
    interval_note,
    machine_label,
    md_escape,
    model_label,
    published_note,
    ratio_cell,
    status_counts,
    successful_runs,
)
from kerasbench._results.selection import check_results, first_seen, group_runs

#: Fields that match configurations across sets, in row order.
MATCH_FIELDS = ("model", "batch_size", "precision", "mode")

#: Status of a cell whose column has no result for the row.
MISSING = "missing"

_FIELD_NAMES = {"model": "Model", "mode": "Mode", "batch_size": "Batch size",
                "precision": "Precision"}
_KEY_ORDER = ("model", "mode", "batch_size", "precision")


@dataclasses.dataclass
class Column:
    """One column of a comparison: the results of one set on one device.

    Attributes:
        label: Unique column label: the set label, followed by the device
            (and the machine) when the set has several columns.
        set_label: Label of the set the column comes from.
        machine: Machine label of the results.
        device: Device of the results (``"cpu"``, ``"gpu:0"``; ``"auto"``
            for runs that failed before a device was chosen).
        published: Whether the column holds published (not measured) figures.
        citation: Where the published figures come from, or None.
    """

    label: str
    set_label: str
    machine: str
    device: str
    published: bool = False
    citation: str | None = None


@dataclasses.dataclass
class Cell:
    """One column's entry in a row.

    Attributes:
        column: The column label.
        status: ``"ok"`` (at least one run succeeded), ``"oom"``,
            ``"error"``, or ``"missing"`` when the column has no result for
            the row.
        images_per_sec: images/sec of a successful run (the mean of the
            successful runs of a configuration that ran several times).
        runs: How many runs succeeded.
        images_per_sec_ci_low, images_per_sec_ci_high, ci_method: The 95 %
            confidence interval of ``images_per_sec`` and its kind:
            ``"across_runs"``, or ``"batch_means"`` (one run's own); None
            when unknown (published figures, older results).
        ratio: ``images_per_sec`` divided by the baseline column's, when both
            ran successfully; None otherwise and in the baseline column.
        ratio_ci_low, ratio_ci_high: Fieller's 95 % interval of ``ratio``
            (see `kerasbench._timing.intervals.ratio_interval`), when both
            cells have an interval; None otherwise.
        significant: Whether the ratio differs from 1 at the 5 % level (the
            interval excludes 1.00x; Welch's t test); None without an
            interval.
        model, mode, batch_size, precision: The configuration of the result
            (they differ between cells only in ignored fields); None when
            missing.
        source: ``"measured"`` or ``"published"``; None when missing.
        mfu, achieved_tflops: Model FLOPs utilisation and achieved TFLOP/s
            of a successful run (means over its successful runs), when
            known; None otherwise.
    """

    column: str
    status: str
    images_per_sec: float | None = None
    runs: int = 0
    images_per_sec_ci_low: float | None = None
    images_per_sec_ci_high: float | None = None
    ci_method: str | None = None
    ratio: float | None = None
    ratio_ci_low: float | None = None
    ratio_ci_high: float | None = None
    significant: bool | None = None
    model: str | None = None
    mode: str | None = None
    batch_size: int | None = None
    precision: str | None = None
    source: str | None = None
    mfu: float | None = None
    achieved_tflops: float | None = None


@dataclasses.dataclass
class Row:
    """One matched configuration.

    Attributes:
        key: The matched fields (``{"model": "resnet50", "mode": "train",
            "batch_size": 32, "precision": "fp32"}``, without the ignored
            ones).
        cells: One `Cell` per column, in `Comparison.columns` order.
    """

    key: dict
    cells: list

    def cell(self, column):
        """The `Cell` of the column labelled ``column``.

        Raises:
            KeyError: If no column has that label.
        """
        for c in self.cells:
            if c.column == column:
                return c
        raise KeyError(f"No column {column!r}; columns: {[c.column for c in self.cells]}")


@dataclasses.dataclass
class OnlyIn:
    """A configuration that some columns lack.

    Attributes:
        key: The matched fields, as in `Row.key`.
        present: Labels of the columns that have it.
        missing: Labels of the columns that lack it.
    """

    key: dict
    present: list
    missing: list


@dataclasses.dataclass
class Comparison:
    """The outcome of `compare`.

    Attributes:
        columns: The `Column` list, baseline first.
        baseline: Label of the baseline column (ratios are relative to it).
        baseline_given: Whether the caller chose the baseline (else it is the
            first set's first column).
        match_fields: Fields rows are matched on.
        ignore: Fields left out of matching.
        rows: `Row` list: the configurations present in at least two
            columns (a configuration whose matched fields hold several
            results in a column, possible with ``ignore``, gives one row per
            combination).
        only_in: `OnlyIn` list: configurations some columns lack.
        notes: Remarks (duplicates resolved to the latest run, ...).
    """

    columns: list
    baseline: str
    baseline_given: bool
    match_fields: tuple
    ignore: tuple
    rows: list
    only_in: list
    notes: list

    def to_dict(self):
        """Every field as plain types that are standard JSON: a ratio that
        is undefined or not finite is ``None`` (``null``), never NaN."""
        d = _finite_or_none(dataclasses.asdict(self))
        d["match_fields"] = list(self.match_fields)
        d["ignore"] = list(self.ignore)
        return d

    def to_json(self, indent=None):
        """`to_dict` as standard JSON text."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self):
        """The comparison as Markdown: a table, the one-sided configurations
        and the notes.

        Each column shows images/sec (``OOM``/``error`` for failed runs,
        ``n/a`` when missing, and the value of each ignored field in
        parentheses), and each non-baseline column a ratio column
        (``2.50x``: 2.5 times the baseline's images/sec; ``-`` when either
        side failed or is missing). When some cell has an MFU or achieved
        TFLOP/s, an ``MFU <column>`` column per column follows
        (``31% (0.52 TFLOP/s)``; ``n/a`` without a peak, ``-`` without
        either). Published columns are marked
        ``(published)`` and cite their source in a footnote. Labels are
        escaped: a ``|`` or a line break in one cannot break the table.
        """
        published = [c for c in self.columns if c.published]
        marks = {c.label: f" [{i}]" for i, c in enumerate(published, start=1)}
        headers = {c.label: _column_header(c) + marks.get(c.label, "") for c in self.columns}
        lines = self._intro(headers) + self._table(headers)
        if self.only_in:
            lines += ["", "Only in some columns:", ""]
            lines += [f"- {_key_description(e.key)}: only in "
                      f"{', '.join(map(md_escape, e.present))} "
                      f"(not in {', '.join(map(md_escape, e.missing))})" for e in self.only_in]
        notes = self._interval_notes() + self.notes
        if self._shows_efficiency():
            notes.append(COMPARE_NOTE)
        if notes or published:
            lines += ["", "Notes:", ""]
            lines += [f"-{marks[c.label]} {md_escape(c.label)}: "
                      f"{md_escape(published_note(c.citation))}" for c in published]
            lines += [f"- {md_escape(n)}" for n in notes]
        return "\n".join(lines) + "\n"

    def _shows_efficiency(self):
        """Whether some cell has an MFU or achieved TFLOP/s to show."""
        return any(c.mfu is not None or c.achieved_tflops is not None
                   for row in self.rows for c in row.cells)

    def _interval_notes(self):
        """What ``+/-``, the ratio intervals and ``n.s.`` mean, when shown."""
        cells = [c for row in self.rows for c in row.cells if c.status == "ok"]
        notes = [interval_note(c.ci_method for c in cells)]
        if any(c.ratio_ci_low is not None for c in cells):
            notes.append(
                "[low, high]: 95 % confidence interval of the ratio (Fieller's interval for "
                "a ratio of means, with Welch-Satterthwaite degrees of freedom); n.s.: not "
                "significant at the 5 % level (the interval contains 1.00x, as Welch's t "
                "test finds)." + (
                    " Intervals within single runs leave out run-to-run variation: run "
                    "`kerasbench sweep --repeats N` for intervals across runs."
                    if any(c.ci_method == "batch_means" for c in cells) else ""))
        return [n for n in notes if n]

    def _intro(self, headers):
        base = self.columns[0]
        if self.baseline_given:
            how = "chosen baseline"
        else:
            how = "first set" if base.label == base.set_label else "first column of the first set"
        matched = ", ".join(_FIELD_NAMES[f].lower() for f in _KEY_ORDER if f in self.match_fields)
        line = f"Matched on {matched}"
        if self.ignore:
            ignored = ", ".join(_FIELD_NAMES[f].lower() for f in _KEY_ORDER if f in self.ignore)
            line += f"; {ignored} ignored (each cell shows its own in parentheses)"
        title = " vs ".join(md_escape(headers[c.label]) for c in self.columns)
        return [f"## images/sec: {title}", "",
                "Ratios: images/sec of each column divided by the baseline column, "
                f"{md_escape(headers[base.label])} ({how}); above 1.00x is faster than the "
                "baseline.", line + ".", ""]

    def _table(self, headers):
        others = self.columns[1:]
        key_fields = [f for f in _KEY_ORDER if f in self.match_fields]
        header = [_FIELD_NAMES[f] for f in key_fields]
        header += [md_escape(headers[c.label]) for c in self.columns]
        header += ["Ratio"] if len(others) == 1 else \
            [f"Ratio {md_escape(c.label)}" for c in others]
        aligns = [":---" if f in ("model", "mode", "precision") else "---:" for f in key_fields]
        aligns += ["---:"] * (len(self.columns) + len(others))
        efficiency = self._shows_efficiency()
        if efficiency:
            header += [f"MFU {md_escape(c.label)}" for c in self.columns]
            aligns += ["---:"] * len(self.columns)
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
        for row in self.rows:
            cells = [_key_text(f, row.key[f]) for f in key_fields]
            cells += [self._cell_text(c) for c in row.cells]
            cells += [ratio_cell(c.ratio, c.ratio_ci_low, c.ratio_ci_high, c.significant)
                      for c in row.cells[1:]]
            if efficiency:
                cells += [compare_cell(c.mfu, c.achieved_tflops) for c in row.cells]
            lines.append("| " + " | ".join(cells) + " |")
        if not self.rows:
            lines += ["| " + " | ".join(["-"] * len(header)) + " |", "",
                      "No configuration is present in two columns."]
        return lines

    def _cell_text(self, cell):
        if cell.status == MISSING:
            return MISSING_CELL
        half_width = None
        if cell.images_per_sec_ci_low is not None and cell.images_per_sec:
            half_width = (cell.images_per_sec_ci_high - cell.images_per_sec_ci_low) / 2 \
                / cell.images_per_sec
        text = figure_cell(cell.status, cell.images_per_sec, half_width, cell.runs)
        extras = [_key_text(f, getattr(cell, f)) for f in _KEY_ORDER if f in self.ignore]
        if extras:
            text += f" ({', '.join(extras)})"
        return text

    def __str__(self):
        return self.to_markdown()


def _finite_or_none(value):
    """``value`` with every non-finite float (NaN, infinity) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _column_header(column):
    if column.published and "published" not in column.label.lower():
        return f"{column.label} (published)"
    return column.label


def _key_text(field, value):
    if value is None:
        return MISSING_CELL
    if field == "model":
        return md_escape(model_label(value))
    return md_escape(value)


def _key_description(key):
    parts = []
    for f in _KEY_ORDER:
        if f in key:
            value = key[f]
            if f == "model":
                parts.append(model_label(value))
            elif f == "batch_size":
                parts.append(f"batch {value}")
            else:
                parts.append(str(value))
    return md_escape(", ".join(parts))


# -------------------------------------------------------------------- compare


def compare(sets, *, baseline=None, ignore=()):
    """Compares result sets side by side, with images/sec ratios.

    Each set is split into columns by (machine, device). Within a column,
    a configuration (model, mode, batch size, precision) that ran more than
    once is represented by its latest run (by ``finished_at``), with a note.
    Rows match configurations across columns on `MATCH_FIELDS` less
    ``ignore``; a configuration missing from some columns is listed in
    ``only_in`` (and is a row, with ``missing`` cells, when at least two
    columns have it). Ratios are images/sec divided by the baseline
    column's; failed runs (``oom``/``error``) have no ratio, nor has a
    ratio that would not be a finite number.

    Args:
        sets: A list of ``(label, results)`` pairs: a label for the set
            (a file name, a baseline name) and a non-empty list of
            `BenchmarkResult` with at least one successful run. Labels must
            be unique.
        baseline: The label of a set (with a single column) or of a column:
            ratios are relative to it, and it is shown first. Default: the
            first column of the first set.
        ignore: Fields of `MATCH_FIELDS` not to match on, e.g.
            ``("precision",)`` to compare a CPU fp32 run with a GPU fp16
            baseline; each cell then shows its own value of the field.

    Returns:
        A `Comparison`.

    Raises:
        ValueError: If ``sets`` is empty, a set is empty or has no
            successful run, labels repeat, there is a single column,
            ``ignore`` names an unknown field, or ``baseline`` names no set
            or column (or a set with several columns).
        TypeError: If ``sets`` is not a list of ``(str, list)`` pairs.

    Example:

    ```python
    c = compare([("old", read_results("old.jsonl")), ("new", read_results("new.jsonl"))])
    print(c.to_markdown())
    c.rows[0].cell("new").ratio    # e.g. 2.5: "new" is 2.5 times faster
    ```
    """
    ignore = _check_ignore(ignore)
    baseline = _validate.text("baseline", baseline, allow_none=True)
    columns, members = _columns(_check_sets(sets))
    base = _resolve_baseline(baseline, columns)
    columns.remove(base)
    columns.insert(0, base)
    latest, notes = _latest(columns, members)
    match_fields = tuple(f for f in MATCH_FIELDS if f not in ignore)
    rows, only_in = _rows(columns, latest, match_fields)
    return Comparison(columns=columns, baseline=base.label, baseline_given=baseline is not None,
                      match_fields=match_fields, ignore=ignore, rows=rows, only_in=only_in,
                      notes=notes)


def _check_ignore(ignore):
    if ignore is None:
        return ()
    if isinstance(ignore, str):
        ignore = (ignore,)
    try:
        ignore = tuple(ignore)
    except TypeError:
        ignore = (ignore,)
    if not all(isinstance(f, str) and f in MATCH_FIELDS for f in ignore):
        raise ValueError(f"`ignore` must be a subset of {MATCH_FIELDS}. "
                         f"Received: ignore={ignore!r}")
    if set(ignore) == set(MATCH_FIELDS):
        raise ValueError(f"`ignore` must leave at least one of {MATCH_FIELDS} to match on. "
                         f"Received: ignore={ignore!r}")
    return tuple(f for f in MATCH_FIELDS if f in ignore)


def _check_sets(sets):
    if isinstance(sets, (str, bytes)) or not hasattr(sets, "__iter__"):
        raise TypeError("`sets` must be a list of (label, results) pairs. "
                        f"Received: sets={sets!r:.200}")
    sets = list(sets)
    if not sets:
        raise ValueError("`sets` is empty: give at least one set of results, "
                         "as a list of (label, results) pairs. Received: sets=[]")
    checked, seen = [], set()
    for i, item in enumerate(sets):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError("`sets` must be a list of (label, results) pairs with a str label. "
                            f"Received: sets[{i}]={item!r:.200}")
        label, results = item
        if label in seen:
            raise ValueError(f"Set labels must be unique. Received the label {label!r} twice.")
        seen.add(label)
        try:
            results = check_results(results, name="results")
        except ValueError:
            raise ValueError(f"The set {label!r} holds no results: there is nothing to "
                             "compare. Check its path.") from None
        if not any(r.ok for r in results):
            raise ValueError(f"The set {label!r} holds no successful result "
                             f"({status_counts(results)}), so no ratio can be computed.")
        checked.append((label, results))
    return checked


def _columns(sets):
    """``(columns, {label: results})``: one column per (set, machine, device),
    in order of appearance."""
    columns, members = [], {}
    for set_label, results in sets:
        groups = {}
        for r in results:
            groups.setdefault((machine_label(r), device_name(r)), []).append(r)
        several_machines = len({m for m, _ in groups}) > 1
        for (machine, device), group in groups.items():
            if len(groups) == 1:
                label = set_label
            elif several_machines:
                label = f"{set_label} {machine} {device}"
            else:
                label = f"{set_label} {device}"
            published = [r for r in group if r.source == "published"]
            columns.append(Column(label=label, set_label=set_label, machine=machine,
                                  device=device, published=bool(published),
                                  citation=published[0].citation if published else None))
            members[label] = group
    if len({c.label for c in columns}) != len(columns):
        raise ValueError("Column labels collide: "
                         f"{', '.join(repr(c.label) for c in columns)}. "
                         "Give the sets other labels.")
    if len(columns) < 2:
        raise ValueError(f"There is only one column to compare ({columns[0].label!r}: one set "
                         "on one machine and device). Give a second set, or a baseline.")
    return columns, members


def _latest(columns, members):
    """The `Runs` of each full configuration within each column, and a note
    for each configuration with failed runs among successful ones."""
    latest, notes = {}, []
    for column in columns:
        chosen = group_runs(members[column.label],
                            lambda r: (r.model, r.mode, r.batch_size, r.precision))
        latest[column.label] = list(chosen.values())
        for runs in chosen.values():
            if runs.status == "ok" and runs.ok_count < len(runs.results):
                notes.append(f"{column.label}: {describe(runs.latest)} ran "
                             f"{len(runs.results)} times ({runs.failed_statuses}); "
                             f"using {successful_runs(runs.ok_count)}.")
    return latest, notes


def _rows(columns, latest, match_fields):
    """The rows and the one-sided configurations, in the order of `_KEY_ORDER`
    (models, modes and precisions as first seen, batch sizes ascending)."""
    by_key = {}
    for column in columns:
        for runs in latest[column.label]:
            key = tuple(getattr(runs.latest, f) for f in match_fields)
            by_key.setdefault(key, {}).setdefault(column.label, []).append(runs)
    rows, only_in = [], []
    for key in sorted(by_key, key=_sort_key(columns, latest, match_fields)):
        per_column = by_key[key]
        matched = dict(zip(match_fields, key))
        key_dict = {f: matched[f] for f in _KEY_ORDER if f in matched}
        present = [c.label for c in columns if c.label in per_column]
        if len(present) < len(columns):
            only_in.append(OnlyIn(key=dict(key_dict), present=present,
                                  missing=[c.label for c in columns if c.label not in per_column]))
        if len(present) < 2:
            continue
        choices = [per_column.get(c.label, [None]) for c in columns]
        for combination in itertools.product(*choices):
            cells = [_cell(c.label, r) for c, r in zip(columns, combination)]
            for cell, runs in zip(cells[1:], combination[1:]):
                _set_ratio(cell, cells[0], combination[0], runs)
            rows.append(Row(key=dict(key_dict), cells=cells))
    return rows, only_in


def _sort_key(columns, latest, match_fields):
    order = {f: {} for f in _KEY_ORDER}
    for column in columns:
        for runs in latest[column.label]:
            for f in ("model", "mode", "precision"):
                order[f].setdefault(getattr(runs.latest, f), len(order[f]))

    def sort_key(key):
        d = dict(zip(match_fields, key))
        return tuple((order[f][d[f]] if f != "batch_size" else d[f])
                     for f in _KEY_ORDER if f in d)

    return sort_key


def _set_ratio(cell, base, base_runs, runs):
    """Sets ``cell``'s ratio to the baseline cell ``base``: None when either
    failed or the ratio would not be a finite number; with Fieller's
    interval and its significance when both have an interval."""
    if base.status != "ok" or cell.status != "ok" or not base.images_per_sec \
            or cell.images_per_sec is None:
        return
    ratio = cell.images_per_sec / base.images_per_sec
    if not math.isfinite(ratio):
        return
    cell.ratio = ratio
    if base_runs.interval is None or runs.interval is None:
        return
    from kerasbench._timing.intervals import ratio_interval

    interval = ratio_interval(runs.interval, base_runs.interval)
    if interval is not None:
        cell.ratio_ci_low, cell.ratio_ci_high = interval.low, interval.high
        cell.significant = not interval.contains(1.0)


def _cell(label, runs):
    if runs is None:
        return Cell(column=label, status=MISSING)
    r, interval = runs.latest, runs.interval
    ok = runs.status == "ok"
    figures = run_figures(runs)
    return Cell(column=label, status=runs.status,
                images_per_sec=runs.images_per_sec if ok else None,
                runs=runs.ok_count,
                images_per_sec_ci_low=interval.low if ok and interval else None,
                images_per_sec_ci_high=interval.high if ok and interval else None,
                ci_method=interval.method if ok and interval else None,
                model=r.model, mode=r.mode, batch_size=r.batch_size,
                precision=r.precision, source=r.source,
                mfu=figures["mfu"] if ok else None,
                achieved_tflops=figures["achieved_tflops"] if ok else None)


def _resolve_baseline(baseline, columns):
    if baseline is None:
        return columns[0]
    for c in columns:
        if c.label == baseline:
            return c
    in_set = [c for c in columns if c.set_label == baseline]
    if len(in_set) == 1:
        return in_set[0]
    if in_set:
        raise ValueError(f"`baseline` names the set {baseline!r}, which has several columns: "
                         f"{', '.join(repr(c.label) for c in in_set)}; give one of them. "
                         f"Received: baseline={baseline!r}")
    sets = first_seen(c.set_label for c in columns)
    raise ValueError(f"`baseline` must be the label of a set ({', '.join(map(repr, sets))}) or a "
                     f"column ({', '.join(repr(c.label) for c in columns)}). "
                     f"Received: baseline={baseline!r}")
