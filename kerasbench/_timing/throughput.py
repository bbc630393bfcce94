"""ThroughputResult: the figures of one measured phase.

Pure data (no Keras, no TensorFlow): made by `PhaseMeter.result`, stored in
`BenchmarkResult.stats` as `to_dict`, read back with `from_dict`.
"""

from __future__ import annotations

import dataclasses
import math

from kerasbench._timing.stats import StepStats

_INF = math.inf


@dataclasses.dataclass(frozen=True)
class ThroughputResult(StepStats):
    """Throughput of one phase (``train``, ``validation``, ``evaluate``, ``predict``).

    Holds every `StepStats` figure of the measured steps plus what was left
    out of them. ``steps``, ``samples`` and ``time_s`` count measured steps
    only (after warmup); ``step_times_s`` lists the per-step durations the
    statistics used, in order (a uniform sample of them beyond the recorder's
    capacity, see ``percentiles_exact``).

    Attributes:
        phase: Which loop was measured.
        warmup_steps: Steps excluded at the start of the phase.
        warmup_time_s: Their total duration.
        first_step_s: Duration of the very first step (tracing, compilation
            and the first batch of data), included in the warmup unless the
            phase had a single step.
        step_times_s: Per-step durations used by the statistics.
        notes: Plain-language remarks (warmup shortened, counts unknown).
        images_per_sec_ci_low, images_per_sec_ci_high: The 95 % confidence
            interval of ``images_per_sec`` (overlapping batch means of the
            step times, see `kerasbench._timing.intervals.rate_interval`);
            ``None`` with fewer than 4 measured observations or unknown
            sample counts, and ``_high`` ``None`` when unbounded.
        steps_per_sec_ci_low, steps_per_sec_ci_high: The same for
            ``steps_per_sec``.
        ci_method: How the intervals were computed (``"batch_means"``), or
            ``None`` without one.
        ci_df: Degrees of freedom of their t quantile.
        target_precision: The interval's half-width asked for, as a share of
            the figure (``0.01``: +/-1 %), or ``None``.
        target_reached: Whether the final interval's half-width is at most
            ``target_precision`` (``None`` without a target).
        stop_reason: Why an adaptive run stopped (``"target"``,
            ``"max_steps"``, ``"max_time"``), or ``None`` when it was not
            stopped early.
        flops_per_sample: FLOPs of one sample's pass (training step:
            forward, backward and update; else forward), or ``None``.
        flops_method: How they were found (``"tensorflow-profiler"``,
            ``"xla-cost-analysis"``, ``"torch-flop-counter"``, ``"given"``),
            ``None`` when not counted.
        flops_note: What the count leaves out, or why there is none.
        achieved_tflops: ``flops_per_sample * images_per_sec / 1e12``.
        peak_tflops, peak_is_estimate: The device's peak at the precision in
            use (the CPU's is an estimate), ``None`` when unknown.
        mfu: Model FLOPs utilisation, ``achieved_tflops / peak_tflops``.
        peak_memory_bytes, memory_kind: The phase's peak memory and what was
            measured (see docs/efficiency.md), ``None`` when unknown.
        energy_j, joules_per_image, images_per_sec_per_watt, energy_source,
            energy_note: The energy of the measured steps (``energy_j``
            joules; per image: ``energy_j / samples``; images/sec per watt:
            ``samples / energy_j``), the counter (``"nvml"``, ``"rapl"``)
            and why it is unknown (``energy_j`` ``None``); see
            docs/efficiency.md.
    """

    phase: str
    warmup_steps: int
    warmup_time_s: float
    first_step_s: float
    step_times_s: tuple
    notes: tuple
    images_per_sec_ci_low: float | None = None
    images_per_sec_ci_high: float | None = None
    steps_per_sec_ci_low: float | None = None
    steps_per_sec_ci_high: float | None = None
    ci_method: str | None = None
    ci_df: float | None = None
    target_precision: float | None = None
    target_reached: bool | None = None
    stop_reason: str | None = None
    flops_per_sample: float | None = None
    flops_method: str | None = None
    flops_note: str | None = None
    achieved_tflops: float | None = None
    peak_tflops: float | None = None
    peak_is_estimate: bool | None = None
    mfu: float | None = None
    peak_memory_bytes: int | None = None
    memory_kind: str | None = None
    energy_j: float | None = None
    joules_per_image: float | None = None
    images_per_sec_per_watt: float | None = None
    energy_source: str | None = None
    energy_note: str | None = None

    @property
    def relative_half_width(self):
        """Half-width of the headline figure's 95 % interval as a share of it
        (images/sec, else steps/sec): ``0.01`` is +/-1 %; ``math.inf`` when
        unbounded, ``None`` without an interval."""
        rate, low, high = self.images_per_sec, self.images_per_sec_ci_low, \
            self.images_per_sec_ci_high
        if rate is None:
            rate, low, high = self.steps_per_sec, self.steps_per_sec_ci_low, \
                self.steps_per_sec_ci_high
        if low is None or not rate:
            return None
        return _INF if high is None else (high - low) / 2 / rate

    def to_dict(self):
        """Returns every field as JSON-serialisable values (tuples as lists)."""
        d = dataclasses.asdict(self)
        d["step_times_s"] = list(self.step_times_s)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a result from `to_dict` output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["step_times_s"] = tuple(kwargs.get("step_times_s", ()))
        kwargs["notes"] = tuple(kwargs.get("notes", ()))
        return cls(**kwargs)


def interval_fields(images, steps):
    """The `ThroughputResult` interval fields of two `Interval`s (or None)."""
    def bounds(interval):
        if interval is None:
            return None, None
        return interval.low, interval.high if interval.high < _INF else None

    low, high = bounds(images)
    steps_low, steps_high = bounds(steps)
    main = images or steps
    return {"images_per_sec_ci_low": low, "images_per_sec_ci_high": high,
            "steps_per_sec_ci_low": steps_low, "steps_per_sec_ci_high": steps_high,
            "ci_method": main.method if main else None, "ci_df": main.df if main else None}
