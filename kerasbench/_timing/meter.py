"""PhaseMeter: clock readings and counts in, a ThroughputResult out.

Pure code (no Keras, no TensorFlow): the callback reads the clock and the
sample counters and hands the numbers to a meter, so every rule about warmup,
first step and epoch boundaries can be tested with a fake clock.
"""

from __future__ import annotations

import dataclasses

from kerasbench import _validate
from kerasbench._timing.stats import (
    DEFAULT_CAPACITY,
    StepRecorder,
    StepStats,
    checked_observation,
)

DEFAULT_WARMUP_STEPS = 10


def effective_warmup(requested, total_steps):
    """Warmup steps to exclude from a phase of ``total_steps`` steps.

    The requested number, but never more than half of the run, so a short run
    still measures at least half of its steps: ``min(requested, total // 2)``.
    With ``total_steps=None`` (length unknown) the request stands.

    Args:
        requested: Warmup steps asked for, ``>= 0``.
        total_steps: Steps in the phase, or ``None`` when unknown.

    Returns:
        The warmup to use, an int.
    """
    if total_steps is None:
        return requested
    return min(requested, total_steps // 2)


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
    """

    phase: str
    warmup_steps: int
    warmup_time_s: float
    first_step_s: float
    step_times_s: tuple
    notes: tuple

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


class _Pending:
    def __repr__(self):
        return "PENDING"


#: Pass as ``samples`` to `PhaseMeter.step` when the count arrives later.
PENDING = _Pending()


def split_count(total, steps, batch_size, boundary):
    """Shares a sample count among observations that were counted together.

    Reading a device counter after every step costs more than the rest of
    the callback, so after warmup the callback reads the cumulative sample
    count once per window of steps and this function attributes it:

    * every observation gets ``steps * batch_size``, when that adds up;
    * at an epoch boundary, the last one gets the rest, when the rest is
      between 1 and a full batch (a partial last batch: always the last step
      of an epoch for arrays and datasets);
    * otherwise batch sizes vary inside epochs and the count is shared in
      proportion to steps (the total stays exact).

    Args:
        total: Samples processed by all the observations.
        steps: Steps of each observation.
        batch_size: Samples per full step, or ``None`` if not known yet.
        boundary: Whether the observations end an epoch.

    Returns:
        ``(counts, exact)``: one int per observation, and False when the
        proportional rule was needed.
    """
    if len(steps) == 1:
        return [total], True
    if batch_size is not None:
        full = [k * batch_size for k in steps]
        rest = total - sum(full[:-1])
        if rest == full[-1] or (boundary and 0 < rest < full[-1]):
            return [int(c) for c in full[:-1]] + [int(rest)], True
    k_total = sum(steps)
    counts = [total * k // k_total for k in steps]
    counts[-1] += total - sum(counts)
    return counts, False


class PhaseMeter:
    """Measures one phase from clock readings passed in by the caller.

    Durations run from one step's end to the next, so they add up to the
    phase's wall time; the first step after `start` runs from that call.
    Time between `pause` and the next `start` (epoch boundaries, validation)
    is not counted. The first ``warmup_steps`` steps are kept apart; with
    ``steps_per_execution`` one observation covers several steps and warmup
    ends at the first observation that starts at or after ``warmup_steps``.

    Sample counts can be given with each step, or left `PENDING` and given
    for several steps at once with `settle` (see `split_count`).

    Args:
        phase: Name of the phase, used in results and messages.
        warmup_steps: Steps to exclude at the start, ``>= 0``.
        total_steps: Steps the phase will run, when known in advance; the
            warmup is then capped at half of them from the first step.
        capacity: Observations kept for order statistics (`StepRecorder`).

    Raises:
        ValueError: On an invalid argument value.

    Example:

    >>> meter = PhaseMeter("train", warmup_steps=1)
    >>> meter.start(0.0)
    >>> meter.step(2.0, samples=32)   # first step: compile, warmup
    (2.0, False)
    >>> meter.step(2.5, samples=32)
    (0.5, True)
    >>> meter.result().images_per_sec
    64.0
    """

    def __init__(self, phase, warmup_steps=DEFAULT_WARMUP_STEPS, total_steps=None,
                 capacity=DEFAULT_CAPACITY):
        self.phase = _validate.text("phase", phase, single_line=True)
        self.requested_warmup = _validate.integer("warmup_steps", warmup_steps, minimum=0)
        self.capacity = _validate.integer("capacity", capacity, minimum=1)
        self.warmup_steps = effective_warmup(
            self.requested_warmup,
            _validate.integer("total_steps", total_steps, minimum=0, allow_none=True))
        self.steps_done = 0
        self.first_step_s = None
        #: Largest samples-per-step of an observation counted on its own.
        self.batch_size = None
        #: Whether batch sizes were seen to vary inside an epoch.
        self.varying = False
        self._recorder = StepRecorder(capacity)
        self._warmup = []
        self._pending = []
        self._split_steps = 0
        self._prev_per_step = None
        self._t_last = None

    def plan(self, total_steps):
        """Sets the phase length once it is known, before the first step."""
        total_steps = _validate.integer("total_steps", total_steps, minimum=0)
        if self.steps_done == 0:
            self.warmup_steps = effective_warmup(self.requested_warmup, total_steps)

    @property
    def in_warmup(self):
        """Whether the next step belongs to the warmup."""
        return self.steps_done < self.warmup_steps

    @property
    def pending_steps(self):
        """Steps recorded as `PENDING` and not yet settled."""
        return sum(k for _, k, _ in self._pending)

    def start(self, t):
        """Opens a step interval at clock reading ``t`` unless one is open."""
        if self._t_last is None:
            self._t_last = t

    def pause(self):
        """Closes the interval: time until the next `start` is not counted.

        Settle pending observations before: a pause marks an epoch boundary.
        """
        self._t_last = None
        self._prev_per_step = None

    def step(self, t, steps=1, samples=None):
        """Records the end of ``steps`` steps at clock reading ``t``.

        Args:
            t: Clock reading in seconds.
            steps: Steps completed since the previous reading.
            samples: Samples they processed, ``None`` when unknown, or
                `PENDING` when they will be given to `settle`.

        Returns:
            ``(duration_s, measured)``: the observation's duration, and
            whether it counts toward the statistics (False during warmup).

        Raises:
            RuntimeError: If no interval is open (`start` was not called).
        """
        if self._t_last is None:
            raise RuntimeError(f"{self.phase}: step() called before start().")
        duration = t - self._t_last
        self._t_last = t
        if self.first_step_s is None:
            self.first_step_s = duration
        in_warmup = self.steps_done < self.warmup_steps
        self.steps_done += steps
        if samples is PENDING:
            self._pending.append((duration, steps, in_warmup))
        else:
            self._commit(duration, steps, samples, in_warmup)
        return duration, not in_warmup

    def settle(self, samples, boundary=False, running_rates=True):
        """Gives the sample count of all `PENDING` observations.

        Args:
            samples: Samples they processed together, or ``None`` if unknown.
            boundary: True when they end an epoch (the last may be partial).
            running_rates: Whether to compute each observation's running
                rate; False (for callers that do not use it) saves a division
                per observation and gives ``None``.

        Returns:
            The settled observations as ``(duration_s, steps, samples,
            running_rate)`` tuples, oldest first, where ``running_rate`` is
            `running_rate` just after the observation (``None`` in warmup).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        steps = [k for _, k, _ in pending]
        if samples is None:
            counts = [None] * len(steps)
        else:
            counts, exact = split_count(samples, steps, self.batch_size, boundary)
            if len(steps) == 1:
                self._learn_batch_size(steps[0], samples)
            else:
                self._prev_per_step = None
                if not exact:
                    self.varying = True
                    self._split_steps += sum(steps)
        settled = []
        for (duration, k, in_warmup), s in zip(pending, counts):
            self._commit(duration, k, s, in_warmup)
            running = self._recorder.rate() if running_rates and not in_warmup else None
            settled.append((duration, k, s, running))
        return settled

    def _learn_batch_size(self, steps, samples):
        per_step = samples / steps
        full = max(self.batch_size or 0, per_step)
        # The previous observation of this epoch was not its last, so it
        # should have been a full batch.
        if self._prev_per_step is not None and self._prev_per_step != full:
            self.varying = True
        self.batch_size = full
        self._prev_per_step = per_step

    def _commit(self, duration, steps, samples, in_warmup):
        if in_warmup:  # a few steps only: the full check costs nothing that counts
            self._warmup.append(checked_observation(duration, steps, samples))
        else:
            self._recorder.add(duration, steps, samples)

    def running_rate(self):
        """Rate over the steps measured so far (see `StepRecorder.rate`)."""
        return self._recorder.rate()

    def running_stats(self):
        """``(rate, sem, jitter)`` of the steps measured so far, or ``None``."""
        return self._recorder.running()

    @property
    def samples_known(self):
        """False once an observation's sample count was unknown (``None``)."""
        return self._recorder.samples_known

    def observations(self):
        """The settled observations so far, warmup included, oldest first.

        Reads what the meter keeps anyway: it costs nothing while steps run,
        only when called. For checks of per-step counts, e.g. after a Keras
        loop through `ThroughputCallback.meters`.

        Returns:
            A list of ``(duration_s, steps, samples)`` tuples, ``samples``
            ``None`` where unknown: the observations taken during warmup
            (as planned while running, before any shortening by `result`),
            then the measured ones. `PENDING` observations are left out
            until settled. Beyond ``capacity`` measured observations the
            measured part is the recorder's uniform sample (see
            `StepRecorder`), no longer in order.
        """
        return self._warmup + self._recorder.records()

    def result(self):
        """Computes the phase's `ThroughputResult`.

        If the phase turned out shorter than twice the requested warmup, the
        warmup is cut to half of the steps (see `effective_warmup`) and a note
        says so; a phase of a single observation is measured whole, its
        compile time included, with a note.

        Raises:
            ValueError: If no step was recorded.
        """
        if self.first_step_s is None:
            raise ValueError(f"{self.phase}: no steps were run, so there is nothing to report.")
        if self._pending:
            raise RuntimeError(f"{self.phase}: settle() the pending observations first.")
        notes = []
        recorder, warmup = self._recorder, self._warmup
        target = effective_warmup(self.requested_warmup, self.steps_done)
        shorter = target < self.warmup_steps or recorder.observations == 0
        if shorter and recorder.observations <= recorder.capacity:
            recorder, warmup = self._rebuild(target)
        used = sum(k for _, k, _ in warmup)
        if used < self.requested_warmup:
            notes.append(
                f"warmup shortened from {self.requested_warmup} to {used} steps: the "
                f"{self.phase} phase ran {self.steps_done} steps and at most half "
                f"of a phase is warmup"
            )
        if not warmup:
            notes.append(
                "the statistics include the first step, whose time includes tracing "
                "and compilation: run more steps for a steady-state figure"
            )
        if self._split_steps:
            notes.append(
                f"batch sizes varied inside epochs: the samples of {self._split_steps} "
                "steps, counted together before this was seen, were shared in "
                "proportion to steps (totals are exact; per-step speeds of those "
                "steps are approximate)"
            )
        if not recorder.samples_known:
            notes.append(
                "sample counts unknown: rates are in steps/sec; pass batch_size=... "
                "to ThroughputCallback for images/sec"
            )
        stats = recorder.summary()
        return ThroughputResult(
            **{f.name: getattr(stats, f.name) for f in dataclasses.fields(StepStats)},
            phase=self.phase,
            warmup_steps=used,
            warmup_time_s=sum(d for d, _, _ in warmup),
            first_step_s=self.first_step_s,
            step_times_s=tuple(recorder.step_times_s),
            notes=tuple(notes),
        )

    def _rebuild(self, target):
        """Re-splits warmup and measured observations for a smaller warmup."""
        observations = self.observations()
        split, done = 0, 0
        while split < len(observations) - 1 and done < target:
            done += observations[split][1]
            split += 1
        recorder = StepRecorder(self.capacity)
        for duration, steps, samples in observations[split:]:
            recorder.add(duration, steps, samples)
        return recorder, observations[:split]
