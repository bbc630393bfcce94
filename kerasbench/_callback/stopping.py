"""When a phase has measured enough: `ThroughputCallback(stop_at_precision=...)`.

The rule is `kerasbench._timing.intervals.stop_reason`; this decides when to
ask it. A check computes the phase's interval (one pass over the recorded
steps), so checks are spaced: every step at first, then at least 5 % of the
measured steps apart, which keeps their cost a small constant share per step
and the number of looks at the data low (each look is a chance to stop on a
luckily narrow interval). The time bound is checked where the steps left
before it run out, at the measured pace. Nothing here runs unless stopping
was asked for.
"""

from __future__ import annotations

import math

from kerasbench import _validate
from kerasbench._timing.intervals import MIN_OBSERVATIONS, stop_reason

#: Checks come at least this share of the measured steps apart.
CHECK_SPACING = 0.05

#: The flag of each loop that ends it after the current step.
STOP_FLAGS = {"fit": "stop_training", "evaluate": "stop_evaluating",
              "predict": "stop_predicting"}


class Stopper:
    """The stopping rule of one phase and the schedule of its checks.

    Args:
        target: Relative half-width to reach (``0.01``: +/-1 %).
        min_steps: Measured steps before the target may stop the phase.
        max_steps: Measured steps after which it stops, or ``None``.
        max_time_s: Measured seconds after which it stops, or ``None``.
    """

    def __init__(self, target, min_steps, max_steps=None, max_time_s=None):
        self.target, self.min_steps = target, min_steps
        self.max_steps, self.max_time_s = max_steps, max_time_s

    def check(self, meter):
        """``"target"``, ``"max_steps"``, ``"max_time"`` or ``None`` (go on),
        from the steps the meter has measured so far."""
        steps, elapsed = meter.measured_steps, meter.measured_time_s
        half = None
        if steps >= max(self.min_steps, MIN_OBSERVATIONS):
            images, step_rate = meter.intervals()
            interval = images or step_rate
            half = None if interval is None else interval.relative_half_width
        return stop_reason(steps, elapsed, half, target=self.target, min_steps=self.min_steps,
                           max_steps=self.max_steps, max_time_s=self.max_time_s)

    def next_check(self, meter):
        """The meter's ``steps_done`` at which to check next."""
        steps, elapsed = meter.measured_steps, meter.measured_time_s
        if steps == 0:  # still in warmup: the first check after min_steps measured ones
            return max(meter.steps_done, meter.warmup_steps) + \
                min(self.min_steps, self.max_steps or math.inf)
        ahead = max(1, math.ceil(CHECK_SPACING * steps), self.min_steps - steps)
        if self.max_steps is not None:
            ahead = min(ahead, max(1, self.max_steps - steps))
        if self.max_time_s is not None:
            left_s = self.max_time_s - elapsed
            ahead = min(ahead, max(1, math.ceil(left_s / (elapsed / steps))))
        return meter.steps_done + ahead


def stopping_arguments(target, stop, min_steps, max_steps, max_time_s):
    """Checks `ThroughputCallback`'s precision arguments.

    Returns:
        ``(target_precision, stop_at_precision, min_steps, max_steps,
        max_time_s)``, the target being ``stop_at_precision`` when that is set.

    Raises:
        ValueError: On an invalid value, two different targets, or bounds
            without ``stop_at_precision``.
    """
    from kerasbench._runs.config import DEFAULT_MIN_STEPS, check_target_precision

    checked = check_target_precision(target)
    stop = check_target_precision(stop, "stop_at_precision")
    if stop is not None and checked not in (None, stop):
        raise ValueError("`target_precision` and `stop_at_precision` differ: give one. "
                         f"Received: target_precision={target!r}, stop_at_precision={stop!r}")
    if stop is None and (min_steps, max_steps, max_time_s) != (None, None, None):
        raise ValueError("`min_steps`, `max_steps` and `max_time_s` bound `stop_at_precision`, "
                         f"which is not set. Received: min_steps={min_steps!r}, "
                         f"max_steps={max_steps!r}, max_time_s={max_time_s!r}")
    min_steps = _validate.integer("min_steps", DEFAULT_MIN_STEPS if min_steps is None
                                  else min_steps, minimum=1)
    return (stop if stop is not None else checked, stop, min_steps,
            _validate.integer("max_steps", max_steps, minimum=1, allow_none=True),
            _validate.number("max_time_s", max_time_s, positive=True, allow_none=True))
