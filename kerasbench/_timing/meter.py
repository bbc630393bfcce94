"""PhaseMeter: clock readings and counts in, a ThroughputResult out.

Pure code (no Keras, no TensorFlow): the callback reads the clock and the
sample counters and hands the numbers to a meter, so every rule about warmup,
first step and epoch boundaries can be tested with a fake clock.
"""

from __future__ import annotations

import collections
import dataclasses
import math

from kerasbench import _validate
from kerasbench._timing.intervals import Checkpoints, observations_interval
from kerasbench._timing.stats import (
    DEFAULT_CAPACITY,
    StepRecorder,
    StepStats,
    checked_observation,
)
from kerasbench._timing.throughput import ThroughputResult, interval_fields

__all__ = ["DEFAULT_WARMUP_STEPS", "PENDING", "PhaseMeter", "ThroughputResult",
           "effective_warmup", "split_count"]

DEFAULT_WARMUP_STEPS = 10

_INF = math.inf


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


def _combined(a, b):
    """Sample count of observations timed together: a sum, `PENDING` or ``None``."""
    if a is None or b is None:
        return None
    if a is PENDING or b is PENDING:
        return PENDING if a is b else None
    return a + b


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

    Clock readings are taken as they come, and none of them raises: a
    reading that does not advance (a clock coarser than the steps) or is not
    a finite number times the step together with the next observation (or,
    at a `settle`, with the previous pending one), so no time and no sample
    is lost; a reading behind the previous one (an adjusted clock) leaves
    that step out of the statistics and restarts the interval there. The
    result's notes count both.

    Memory is bounded whatever the phase's length: ``capacity`` measured
    observations (`StepRecorder`), the latest ``capacity`` warmup
    observations (older ones are kept as sums) and the pending ones, which
    the caller settles (`held_observations`).

    Args:
        phase: Name of the phase, used in results and messages.
        warmup_steps: Steps to exclude at the start, ``>= 0``.
        total_steps: Steps the phase will run, when known in advance; the
            warmup is then capped at half of them from the first step.
        capacity: Observations kept for order statistics (`StepRecorder`),
            and warmup observations kept for re-splitting a short phase.
        target_precision: A half-width for the result's 95 % interval, as a
            share of the figure between 0 and 1 (``0.01``: +/-1 %), or
            ``None``: the result says whether it was reached
            (``target_reached``).

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
                 capacity=DEFAULT_CAPACITY, target_precision=None):
        self.phase = _validate.text("phase", phase, single_line=True)
        self.target_precision = _validate.number("target_precision", target_precision,
                                                 positive=True, allow_none=True)
        if (self.target_precision or 0) >= 1:
            raise ValueError("`target_precision` must be a share of the figure below 1 "
                             f"(0.01 for +/-1 %). Received: target_precision={target_precision!r}")
        #: Why the caller stopped the phase early (see `ThroughputResult`).
        self.stop_reason = None
        self._checkpoints = Checkpoints()
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
        # The latest warmup observations (what re-splitting a short phase
        # needs); the steps and time of older ones are kept as sums.
        self._warmup = collections.deque(maxlen=self.capacity)
        self._evicted_steps = 0
        self._evicted_time = 0.0
        self._pending = []
        # (in_warmup, steps, samples) of steps read without a clock advance.
        self._carry = None
        self._unclocked = {"merged": 0, "backwards": 0, "untimed": 0}
        self._notes = []
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

    @property
    def pending_observations(self):
        """Observations recorded as `PENDING` and not yet settled."""
        return len(self._pending)

    @property
    def held_observations(self):
        """Observations held in memory: the recorder's, the kept warmup ones
        and the pending ones; at most ``2 * capacity + pending_observations``."""
        return self._recorder.stored + len(self._warmup) + len(self._pending)

    def start(self, t):
        """Opens a step interval at clock reading ``t`` unless one is open."""
        if self._t_last is None:
            self._t_last = t

    def pause(self):
        """Closes the interval: time until the next `start` is not counted.

        Settle pending observations before: a pause marks an epoch boundary.
        Steps read since the last clock advance are left out (their time is
        unknown).
        """
        self._drop_carry()
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
            ``(duration_s, measured)``: the time since the previous reading,
            and whether the steps count toward the statistics (False during
            warmup). A duration that is not a positive finite number marks an
            unusable reading: the steps are timed with a neighbouring
            observation, or left out if the clock went backwards (see the
            class description).

        Raises:
            RuntimeError: If no interval is open (`start` was not called).
        """
        if self._t_last is None:
            raise RuntimeError(f"{self.phase}: step() called before start().")
        duration = t - self._t_last
        if not 0 < duration < _INF:
            return self._unclocked_step(t, duration, steps, samples)
        self._t_last = t
        in_warmup = self.steps_done < self.warmup_steps
        self.steps_done += steps
        if self._carry is not None:
            in_warmup, steps, samples = self._merge_carry(steps, samples)
        if self.first_step_s is None:
            self.first_step_s = duration
        if samples is PENDING:
            self._pending.append((duration, steps, in_warmup))
        else:
            self._commit(duration, steps, samples, in_warmup)
        return duration, not in_warmup

    def _unclocked_step(self, t, duration, steps, samples):
        in_warmup = self.steps_done < self.warmup_steps
        self.steps_done += steps
        if duration < 0 and t > -_INF:
            # A finite reading behind the previous one: the clock was set
            # back, so these steps' time is unknown. Measure on from here.
            if self._carry is not None:
                _, carried, carried_samples = self._carry
                steps, samples = steps + carried, _combined(carried_samples, samples)
                self._carry = None
            self._t_last = t
            if samples is PENDING:  # its count arrives with the others': keep its place
                self._pending.append((None, steps, in_warmup))
            else:
                self._unclocked["backwards"] += steps
        elif self._carry is None:
            self._carry = (in_warmup, steps, samples)
        else:
            first_in_warmup, carried, carried_samples = self._carry
            self._carry = (first_in_warmup, carried + steps, _combined(carried_samples, samples))
        return duration, not in_warmup

    def _merge_carry(self, steps, samples):
        in_warmup, carried, carried_samples = self._carry
        self._carry = None
        self._unclocked["merged"] += carried
        return in_warmup, steps + carried, _combined(carried_samples, samples)

    def _drop_carry(self):
        if self._carry is not None:
            self._unclocked["untimed"] += self._carry[1]
            self._carry = None

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
            `running_rate` just after the observation (``None`` in warmup),
            and ``duration_s`` is ``None`` for steps left out because the
            clock went backwards. With nothing pending, ``[]`` (and
            ``samples`` is ignored).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        if self._carry is not None and self._carry[2] is PENDING:
            # Steps read without a clock advance after the last pending one:
            # its interval ends where theirs does, so timing them together is
            # exact, and the count being settled includes their samples.
            duration, k, in_warmup = pending[-1]
            pending[-1] = (duration, k + self._carry[1], in_warmup)
            if duration is not None:
                self._unclocked["merged"] += self._carry[1]
            self._carry = None
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
            if duration is None:
                self._unclocked["backwards"] += k
                settled.append((None, k, s, None))
                continue
            self._commit(duration, k, s, in_warmup)
            running = self._recorder.rate() if running_rates and not in_warmup else None
            settled.append((duration, k, s, running))
        return settled

    def discard_pending(self):
        """Forgets the pending observations and the steps not yet timed.

        For a phase that ended abnormally, whose sample count will not be
        read. The caller says why with `note`.

        Returns:
            The number of steps forgotten (left out of the statistics).
        """
        forgotten = sum(k for _, k, _ in self._pending)
        if self._carry is not None:
            forgotten += self._carry[1]
        self._pending, self._carry = [], None
        return forgotten

    def note(self, text):
        """Adds a plain-language remark to the result (once, however often given)."""
        text = _validate.text("text", text)
        if text not in self._notes:
            self._notes.append(text)

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
        if in_warmup:  # the full check costs nothing that counts here
            observation = checked_observation(duration, steps, samples)
            if len(self._warmup) == self.capacity:
                evicted_duration, evicted_steps, _ = self._warmup[0]
                self._evicted_steps += evicted_steps
                self._evicted_time += evicted_duration
            self._warmup.append(observation)
        else:
            self._recorder.add(duration, steps, samples)

    def running_rate(self):
        """Rate over the steps measured so far (see `StepRecorder.rate`)."""
        return self._recorder.rate()

    def running_stats(self):
        """``(rate, sem, jitter)`` of the steps measured so far, or ``None``."""
        return self._recorder.running()

    def mark(self):
        """Notes the measured totals so far, in order (cheap: an append).

        Beyond ``capacity`` measured observations the recorder keeps a
        sample of them, no longer in order; the intervals then come from the
        blocks between marks. The callback marks once per log window.
        """
        r = self._recorder
        if r.observations:
            self._checkpoints.add(r.total_time_s, r.total_steps,
                                  r.total_samples if r.samples_known else None)

    def intervals(self, recorder=None):
        """The 95 % intervals of the rates measured so far.

        Returns:
            ``(images, steps)``: `Interval` of images/sec (``None`` when
            sample counts are unknown) and of steps/sec; ``(None, None)``
            with fewer than four measured observations, or beyond
            ``capacity`` observations without enough `mark` calls.
        """
        r = recorder or self._recorder
        if r.observations <= r.capacity:
            return observations_interval(r.records())
        return self._checkpoints.intervals(r.total_time_s, r.total_steps,
                                           r.total_samples if r.samples_known else None)

    @property
    def samples_known(self):
        """False once an observation's sample count was unknown (``None``)."""
        return self._recorder.samples_known

    @property
    def measured_steps(self):
        """Steps measured so far (after warmup, settled)."""
        return self._recorder.total_steps

    @property
    def measured_time_s(self):
        """Their total time, in seconds."""
        return self._recorder.total_time_s

    def observations(self):
        """The settled observations so far, warmup included, oldest first.

        Reads what the meter keeps anyway: it costs nothing while steps run,
        only when called. For checks of per-step counts, e.g. after a Keras
        loop through `ThroughputCallback.meters`.

        Returns:
            A list of ``(duration_s, steps, samples)`` tuples, ``samples``
            ``None`` where unknown: the observations taken during warmup
            (as planned while running, before any shortening by `result`;
            the latest ``capacity`` of them), then the measured ones.
            `PENDING` observations are left out until settled. Beyond
            ``capacity`` measured observations the measured part is the
            recorder's uniform sample (see `StepRecorder`), no longer in order.
        """
        return list(self._warmup) + self._recorder.records()

    def result(self):
        """Computes the phase's `ThroughputResult`.

        If the phase turned out shorter than twice the requested warmup, the
        warmup is cut to half of the steps (see `effective_warmup`) and a note
        says so; a phase of a single observation is measured whole, its
        compile time included, with a note. Steps read after the last clock
        advance are left out, with a note.

        Raises:
            ValueError: If no step was recorded, or none could be timed.
            RuntimeError: If observations are still pending (`settle` first).
        """
        if self._pending:
            raise RuntimeError(f"{self.phase}: settle() the pending observations first.")
        self._drop_carry()
        if not self._warmup and self._recorder.observations == 0:
            if self.steps_done == 0:
                raise ValueError(f"{self.phase}: no steps were run, so there is nothing "
                                 "to report.")
            raise ValueError(
                f"{self.phase}: none of the {self.steps_done} steps could be timed (the "
                "clock did not advance or went backwards), so there is nothing to report.")
        recorder, warmup = self._recorder, list(self._warmup)
        target = effective_warmup(self.requested_warmup, self.steps_done)
        shorter = target < self.warmup_steps or recorder.observations == 0
        if shorter and recorder.observations <= recorder.capacity:
            recorder, warmup = self._rebuild(target)
        used = self._evicted_steps + sum(k for _, k, _ in warmup)
        stats = recorder.summary()
        result = ThroughputResult(
            **{f.name: getattr(stats, f.name) for f in dataclasses.fields(StepStats)},
            phase=self.phase,
            warmup_steps=used,
            warmup_time_s=self._evicted_time + sum(d for d, _, _ in warmup),
            first_step_s=self.first_step_s,
            step_times_s=tuple(recorder.step_times_s),
            notes=tuple(self._result_notes(used, target, shorter, recorder)),
            **interval_fields(*self.intervals(recorder)),
            target_precision=self.target_precision,
            stop_reason=self.stop_reason,
        )
        if self.target_precision is None:
            return result
        half = result.relative_half_width
        return dataclasses.replace(
            result, target_reached=half is not None and half <= self.target_precision)

    def _result_notes(self, used, target, shorter, recorder):
        notes = []
        if used < self.requested_warmup:
            notes.append(
                f"warmup shortened from {self.requested_warmup} to {used} steps: the "
                f"{self.phase} phase ran {self.steps_done} steps and at most half "
                f"of a phase is warmup"
            )
        if shorter and used > target and self._evicted_steps:
            notes.append(
                f"only the last {self.capacity} warmup observations are kept "
                f"(max_recorded_steps), so {used} of the {self.steps_done} steps stayed warmup"
            )
        if used == 0:
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
        unclocked = self._unclocked
        if unclocked["merged"]:
            notes.append(
                f"the clock did not advance (or gave no usable reading) during "
                f"{unclocked['merged']} steps: each was timed together with a neighbouring "
                "step (a clock coarser than the steps)"
            )
        if unclocked["backwards"]:
            notes.append(f"{unclocked['backwards']} steps left out of the statistics: the "
                         "clock went backwards during them")
        if unclocked["untimed"]:
            notes.append(f"{unclocked['untimed']} steps left out of the statistics: the clock "
                         "did not advance between them and the end of their epoch")
        return notes + self._notes

    def _rebuild(self, target):
        """Re-splits warmup and measured observations for a smaller warmup."""
        observations = self.observations()
        split, done = 0, self._evicted_steps
        while split < len(observations) - 1 and done < target:
            done += observations[split][1]
            split += 1
        recorder = StepRecorder(self.capacity)
        for duration, steps, samples in observations[split:]:
            recorder.add(duration, steps, samples)
        return recorder, observations[:split]
