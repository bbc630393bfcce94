"""Progress lines and summaries: the text the callback prints to stdout.

Two formats: the progress line printed every ``log_every`` steps
(`format_progress_line`) and the summary block printed at the end of each
phase (`format_summary`). Pure string formatting; every number shown comes
from `kerasbench._timing.stats` through a `ThroughputResult` or
`PhaseMeter.running_stats`. The formats follow the classic tools:
``alexnet_benchmark.py`` ("step N, duration = 0.131", "Forward-backward
across 100 steps, 0.315 +/- 0.001 sec / batch") and ``tf_cnn_benchmarks.py``
("images/sec: 51.8 +/- 0.2 (jitter = 0.1)", "total images/sec: 51.66").
"""

from __future__ import annotations

import math

RULE = "-" * 64

_PASS_NAMES = {"train": "Forward-backward"}


def format_seconds(x, like=None):
    """Formats seconds with at least three significant digits.

    Three decimals as in alexnet_benchmark for steps of 0.1 s and longer,
    more for shorter steps (0.00461, not 0.005). ``like`` formats ``x`` with
    the decimals chosen for ``like``, so a mean and its spread line up.
    """
    ref = x if like is None else like
    if ref is None or not math.isfinite(ref) or ref <= 0:
        decimals = 3
    else:
        decimals = max(3, 2 - math.floor(math.log10(ref)))
    return f"{x:.{decimals}f}"


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def _optional(x, fmt="{:.1f}"):
    return "n/a" if x is None else fmt.format(x)


def rate_text(unit, rate, sem, jitter):
    """``images/sec: 51.8 +/- 0.2 (jitter = 0.1)``, as tf_cnn_benchmarks prints it."""
    return f"{unit}/sec: {rate:.1f} +/- {_optional(sem)} (jitter = {_optional(jitter)})"


def percent(share):
    """``"1.2%"`` for 0.012: one decimal below 10 %, two below 0.1 %."""
    value = share * 100
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.1f}%" if value >= 0.1 else f"{value:.2f}%"


def interval_text(result, unit="images"):
    """The summary line of the 95 % confidence interval, beside the classic
    ``+/-`` (the standard error of per-step speeds, which leaves out how
    consecutive steps' times go together):

    ``95% confidence interval: 38.4 to 38.8 images/sec (+/- 0.5%, batch
    means of the step times; the +/- above is the standard error of
    per-step speeds)``
    """
    head = "95% confidence interval:"
    if unit == "images":
        low, high = result.images_per_sec_ci_low, result.images_per_sec_ci_high
    else:
        low, high = result.steps_per_sec_ci_low, result.steps_per_sec_ci_high
    if low is None:
        return f"{head} n/a (it needs at least 4 measured steps in order)"
    half = result.relative_half_width
    upper = "unbounded" if high is None else f"{high:.1f}"
    return (f"{head} {low:.1f} to {upper} {unit}/sec (+/- "
            f"{percent(half) if high is not None else 'n/a'}, batch means of the step "
            "times; the +/- above is the standard error of per-step speeds)")


def target_text(result):
    """``target +/- 1.0%: reached`` (and why the run stopped), or how many
    measured steps the target would need at the spread seen."""
    target = result.target_precision
    head = f"target +/- {percent(target)}: "
    stopped = {"target": "; stopped there", "max_steps": "; stopped at max_steps",
               "max_time": "; stopped at max_time_s"}.get(result.stop_reason, "")
    if result.target_reached:
        return head + f"reached after {_plural(result.steps, 'measured step')}" + stopped
    half = result.relative_half_width
    if half is None or half == math.inf:
        return head + "not reached" + stopped
    needed = math.ceil(result.steps * (half / target) ** 2)
    return (head + f"not reached (+/- {percent(half)}){stopped}; about {needed} measured "
            f"steps would reach it at this spread")


def si(value, unit):
    """``23.4 GFLOPs``: three significant digits and an SI prefix."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def efficiency_lines(result):
    """The summary lines of FLOPs, achieved TFLOP/s and MFU, peak memory and
    energy; none for figures that were not asked for.

    e.g. ``FLOPs per image: 23.4 G (tensorflow-profiler); achieved 0.0123
    TFLOP/s, MFU 7.4% of an estimated peak of 0.166 TFLOP/s``.
    """
    r, lines = result, []
    if r.flops_method is not None:
        if r.flops_per_sample is None:
            lines.append(f"FLOPs: not counted ({r.flops_method}: {r.flops_note or 'unknown'})")
        else:
            text = (f"FLOPs per image: {si(r.flops_per_sample, 'FLOPs')} "
                    f"({r.flops_method})")
            if r.achieved_tflops is not None:
                text += f"; achieved {r.achieved_tflops:.3g} TFLOP/s"
                if r.mfu is not None:
                    kind = "an estimated peak" if r.peak_is_estimate else "a peak"
                    text += f", MFU {percent(r.mfu)} of {kind} of {r.peak_tflops:.3g} TFLOP/s"
                else:
                    text += ", MFU n/a (no peak for this device and precision)"
            lines.append(text)
    if r.peak_memory_bytes is not None:
        lines.append(f"peak memory: {si(r.peak_memory_bytes, 'B')}"
                     + (f" ({r.memory_kind})" if r.memory_kind else ""))
    if r.energy_j is not None:
        parts = [f"energy: {r.energy_j:.4g} J"]
        if r.joules_per_image is not None:
            parts.append(f"{r.joules_per_image:.3g} J/image")
        if r.images_per_sec_per_watt is not None:
            parts.append(f"{r.images_per_sec_per_watt:.3g} images/sec per watt")
        lines.append(", ".join(parts) + (f" ({r.energy_source})" if r.energy_source else ""))
    return lines


def format_progress_line(phase, step, step_time_s, running=None, unit="images"):
    """One progress line.

    Args:
        phase: ``train``, ``validation``, ``evaluate`` or ``predict``.
        step: Steps completed in the phase so far (1-based).
        step_time_s: Duration of the latest step.
        running: ``(rate, sem, jitter)`` over the measured steps so far, or
            ``None`` while still in warmup.
        unit: ``images`` or ``steps`` (when sample counts are unknown).

    Returns:
        e.g. ``train step 20, duration = 0.131 s, images/sec: 51.8 +/- 0.2 (jitter = 0.1)``.
    """
    head = f"{phase} step {step}, duration = {format_seconds(step_time_s)} s"
    if running is None:
        return head + " (warmup)"
    return head + ", " + rate_text(unit, *running)


def format_summary(result):
    """The end-of-phase summary block for a `ThroughputResult`."""
    r = result
    unit = "images" if r.images_per_sec is not None else "steps"
    if unit == "images":
        rate, sem, jit = r.images_per_sec, r.images_per_sec_sem, r.images_per_sec_jitter
        counted = f"{_plural(r.steps, 'step')}, {_plural(r.samples, 'image')}"
    else:
        rate, sem, jit = r.steps_per_sec, r.steps_per_sec_sem, r.steps_per_sec_jitter
        counted = _plural(r.steps, "step")
    mean = r.step_time_s
    fs = lambda x: format_seconds(x, like=mean)  # noqa: E731
    pass_name = _PASS_NAMES.get(r.phase, "Forward")
    sd = "n/a" if r.step_time_sd_s is None else fs(r.step_time_sd_s)
    lines = [
        RULE,
        f"kerasbench {r.phase}: {counted} in {r.time_s:.2f} s "
        f"(warmup: {_plural(r.warmup_steps, 'step')}, {r.warmup_time_s:.2f} s; "
        f"first step {r.first_step_s:.3f} s)",
        rate_text(unit, rate, sem, jit),
        interval_text(r, unit),
        f"{pass_name} across {_plural(r.steps, 'step')}, {fs(mean)} +/- {sd} sec / batch",
        f"step time: p50 {fs(r.step_time_p50_s)}, p90 {fs(r.step_time_p90_s)}, "
        f"p99 {fs(r.step_time_p99_s)}, min {fs(r.step_time_min_s)}, "
        f"max {fs(r.step_time_max_s)} s"
        + ("" if r.percentiles_exact else f" (from a sample of {len(r.step_times_s)} steps)"),
    ]
    if r.target_precision is not None:
        lines.append(target_text(r))
    lines += efficiency_lines(r)
    lines += [f"note: {n}" for n in r.notes]
    lines.append(f"total {unit}/sec: {rate:.2f}")
    return "\n".join(lines)
