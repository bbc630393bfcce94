"""Step-timing statistics: every throughput formula of kerasbench, in one place.

Pure code: no Keras, no TensorFlow, and no clock. Callers pass in durations
(seconds), step counts and sample counts; this module turns them into figures.
The formulas are documented, with their sources, in ``docs/metrics.md``.

An *observation* is one measured interval: ``duration_s`` seconds in which
``steps`` training steps processed ``samples`` samples. Normally one observation
is one step; with ``steps_per_execution=N`` Keras reports once per N steps, and
one observation then covers N steps.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import random
from array import array

import numpy as np

from kerasbench import _validate

#: Scale that turns a median absolute deviation into an estimate of the
#: standard deviation of normally distributed data (1 / Phi^-1(3/4)).
#: tf_cnn_benchmarks uses the same constant for its "jitter".
MAD_TO_SD = 1.4826

#: Default number of observations kept for order statistics (median,
#: percentiles, jitter). Beyond it a uniform random sample of this size is
#: kept (reservoir sampling); totals, means and standard deviations stay exact.
DEFAULT_CAPACITY = 10_000

_INF = math.inf


def percentile(values, q):
    """Percentile with linear interpolation between order statistics.

    This is Hyndman & Fan's definition 7 (NumPy's default, Excel's
    ``PERCENTILE.INC``): with the ``n`` values sorted as ``x[0] <= ... <=
    x[n-1]``, ``h = (n - 1) * q / 100`` and the result is
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.

    Args:
        values: Sequence of numbers (any order), at least one.
        q: Percentile in ``[0, 100]``.

    Returns:
        The percentile as a float.

    Raises:
        ValueError: If ``values`` is empty or ``q`` is outside ``[0, 100]``.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"`q` must be between 0 and 100. Received: q={q}")
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("`values` must not be empty. Received: values=[]")
    # np.percentile, not np.median: the latter imports numpy.ma on first use,
    # a 0.25 s pause that must not land inside a timed step.
    return float(np.percentile(x, q, method="linear"))


def jitter(values):
    """Robust spread: ``1.4826 * median(|v - median(v)|)``.

    The scaled median absolute deviation, as tf_cnn_benchmarks prints it after
    "jitter =". For normally distributed values it estimates the standard
    deviation; unlike the standard deviation it ignores a few outliers.

    Args:
        values: Sequence of numbers, at least one.

    Returns:
        The jitter as a float (0.0 for a single value).

    Raises:
        ValueError: If ``values`` is empty.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("`values` must not be empty. Received: values=[]")
    median = percentile(x, 50)
    return MAD_TO_SD * percentile(np.abs(x - median), 50)


def rate(count, time_s):
    """Throughput ``count / time_s``: total work over total time.

    Never the mean of per-step rates, which overweights fast steps (the mean
    of ratios is not the ratio of sums).

    Raises:
        ValueError: If ``time_s`` is not a positive finite number.
    """
    if not (type(time_s) is float and 0 < time_s < _INF):  # the common case, cheaply
        time_s = _validate.number("time_s", time_s, positive=True)
    return count / time_s


def standard_error(sd, n):
    """Standard error of a mean, ``sd / sqrt(n)``; ``None`` when ``sd`` is."""
    if sd is None:
        return None
    return sd / math.sqrt(n)


class RunningMoments:
    """Count, mean and sample standard deviation in one pass (Welford, 1962).

    Numerically stable: it never subtracts two large sums, so long runs of
    nearly identical step times keep full precision. The standard deviation
    is the *sample* one (divisor ``n - 1``) and is ``None`` below two values.
    """

    __slots__ = ("n", "mean", "_m2", "min", "max")

    def __init__(self):
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, x):
        """Adds one value."""
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)
        if x < self.min:
            self.min = x
        if x > self.max:
            self.max = x

    @property
    def sd(self):
        """Sample standard deviation, or ``None`` with fewer than two values."""
        if self.n < 2:
            return None
        return math.sqrt(max(self._m2, 0.0) / (self.n - 1))


@dataclasses.dataclass(frozen=True)
class StepStats:
    """Figures computed from the measured (post-warmup) observations.

    Rates are totals over total time. ``*_sem`` is the standard error of the
    per-observation rates, ``*_jitter`` their scaled median absolute
    deviation. Step-time figures describe ``duration / steps`` of each
    observation. Fields that cannot be computed are ``None``: every sample
    field when sample counts are unknown, standard deviations and standard
    errors with a single observation.
    """

    steps: int
    samples: int | None
    time_s: float
    observations: int
    images_per_sec: float | None
    images_per_sec_sem: float | None
    images_per_sec_jitter: float | None
    steps_per_sec: float
    steps_per_sec_sem: float | None
    steps_per_sec_jitter: float | None
    step_time_s: float
    step_time_sd_s: float | None
    step_time_p50_s: float
    step_time_p90_s: float
    step_time_p99_s: float
    step_time_min_s: float
    step_time_max_s: float
    percentiles_exact: bool

    def to_dict(self):
        """Returns the figures as a JSON-serialisable ``dict``."""
        return dataclasses.asdict(self)


def checked_observation(duration_s, steps=1, samples=None):
    """Checks one observation; returns it as plain Python numbers.

    Args:
        duration_s: Seconds, a positive finite number.
        steps: Steps covered, a positive integer (numpy integers too).
        samples: Samples processed, a non-negative integer, or ``None``.

    Returns:
        ``(duration_s, steps, samples)`` as ``(float, int, int or None)``.

    Raises:
        ValueError: On any other value (booleans, NaN and infinity included).
    """
    return (
        _validate.number("duration_s", duration_s, positive=True),
        _validate.integer("steps", steps, minimum=1),
        _validate.integer("samples", samples, minimum=0, allow_none=True),
    )


class StepRecorder:
    """Accumulates observations with bounded memory and computes `StepStats`.

    Totals, means, standard deviations, minimum and maximum are exact for any
    number of observations. Median, percentiles and jitter come from the
    stored observations: all of them up to ``capacity``, beyond that a uniform
    random sample of ``capacity`` observations (reservoir sampling, Vitter's
    algorithm R), flagged by ``StepStats.percentiles_exact = False``. Memory is
    ``3 * 8 * capacity`` bytes of arrays (240 KB at the default 10,000).

    Args:
        capacity: Observations kept for order statistics, at least 1.
        seed: Seed of the reservoir's random choices, for repeatable results.
    """

    def __init__(self, capacity=DEFAULT_CAPACITY, seed=0):
        self.capacity = _validate.integer("capacity", capacity, minimum=1)
        self._rng = random.Random(seed)
        self._durations = array("d")
        self._steps = array("d")
        self._samples = array("d")
        self.samples_known = True
        self.observations = 0
        self.total_time_s = 0.0
        self.total_steps = 0
        self.total_samples = 0
        self._step_time = RunningMoments()
        self._image_rate = RunningMoments()
        self._step_rate = RunningMoments()

    def add(self, duration_s, steps=1, samples=None):
        """Records one observation.

        Args:
            duration_s: Seconds the observation took, positive.
            steps: Steps it covered, a positive integer.
            samples: Samples it processed, or ``None`` when unknown. One
                unknown count makes every sample figure unknown.

        Raises:
            ValueError: On a duration that is not a positive finite number, a
                step count that is not a positive integer, or a sample count
                that is not a non-negative integer or ``None``.
        """
        # Called once per observation: plain Python values pass this one
        # cheap test; anything else (numpy numbers, bad values) is checked,
        # and converted, by `checked_observation`.
        if not (type(duration_s) is float and 0 < duration_s < _INF
                and type(steps) is int and steps >= 1
                and (samples is None or (type(samples) is int and samples >= 0))):
            duration_s, steps, samples = checked_observation(duration_s, steps, samples)
        self.observations += 1
        self.total_time_s += duration_s
        self.total_steps += steps
        self._step_time.add(duration_s / steps)
        self._step_rate.add(steps / duration_s)
        if samples is None:
            self.samples_known = False
        elif self.samples_known:
            self.total_samples += samples
            self._image_rate.add(samples / duration_s)
        record = (duration_s, steps, -1.0 if samples is None else samples)
        if len(self._durations) < self.capacity:
            self._durations.append(record[0])
            self._steps.append(record[1])
            self._samples.append(record[2])
        else:
            slot = self._rng.randrange(self.observations)
            if slot < self.capacity:
                self._durations[slot] = record[0]
                self._steps[slot] = record[1]
                self._samples[slot] = record[2]

    @property
    def stored(self):
        """Observations held for order statistics: at most ``capacity``."""
        return len(self._durations)

    def records(self):
        """Stored observations as ``(duration_s, steps, samples)`` tuples.

        In the order they were added while at most ``capacity`` were added;
        ``samples`` is ``None`` where it was unknown.
        """
        return [
            (d, int(k), None if s < 0 else int(s))
            for d, k, s in zip(self._durations, self._steps, self._samples)
        ]

    @property
    def step_times_s(self):
        """Stored per-step durations (``duration / steps``), as a list."""
        return (self._durations_np() / self._steps_np()).tolist()

    def _durations_np(self):
        return np.frombuffer(self._durations, dtype=np.float64)

    def _steps_np(self):
        return np.frombuffer(self._steps, dtype=np.float64)

    def _image_rates_np(self):
        return np.frombuffer(self._samples, dtype=np.float64) / self._durations_np()

    def rate(self):
        """Images/sec so far (steps/sec when sample counts are unknown), or ``None``."""
        if self.observations == 0:
            return None
        total = self.total_samples if self.samples_known else self.total_steps
        return rate(total, self.total_time_s)

    def running(self):
        """The cheap subset of `summary` printed on progress lines.

        Returns:
            ``(rate, sem, jitter)`` in images/sec, or in steps/sec when sample
            counts are unknown; ``None`` before the first observation.
        """
        if self.observations == 0:
            return None
        if self.samples_known:
            moments = self._image_rate
            rates = self._image_rates_np()
        else:
            moments = self._step_rate
            rates = self._steps_np() / self._durations_np()
        return (
            self.rate(),
            standard_error(moments.sd, moments.n),
            jitter(rates) if self.observations >= 2 else None,
        )

    def summary(self):
        """Computes `StepStats` from everything recorded so far.

        Raises:
            ValueError: If nothing was recorded: there is no throughput of
                zero steps.
        """
        if self.observations == 0:
            raise ValueError(
                "No measured steps: statistics need at least one step after "
                "warmup. Run more steps or lower `warmup_steps`."
            )
        step_times = self._durations_np() / self._steps_np()
        step_rates = self._steps_np() / self._durations_np()
        known = self.samples_known
        spread = self.observations >= 2  # a spread needs two values
        return StepStats(
            steps=self.total_steps,
            samples=int(self.total_samples) if known else None,
            time_s=self.total_time_s,
            observations=self.observations,
            images_per_sec=rate(self.total_samples, self.total_time_s) if known else None,
            images_per_sec_sem=(
                standard_error(self._image_rate.sd, self._image_rate.n) if known else None
            ),
            images_per_sec_jitter=(
                jitter(self._image_rates_np()) if known and spread else None
            ),
            steps_per_sec=rate(self.total_steps, self.total_time_s),
            steps_per_sec_sem=standard_error(self._step_rate.sd, self._step_rate.n),
            steps_per_sec_jitter=jitter(step_rates) if spread else None,
            step_time_s=self.total_time_s / self.total_steps,
            step_time_sd_s=self._step_time.sd,
            step_time_p50_s=percentile(step_times, 50),
            step_time_p90_s=percentile(step_times, 90),
            step_time_p99_s=percentile(step_times, 99),
            step_time_min_s=self._step_time.min,
            step_time_max_s=self._step_time.max,
            percentiles_exact=self.observations <= self.capacity,
        )


# Two-sided 95 % quantiles of Student's t distribution, by degrees of freedom.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
        8: 2.306, 9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160,
        14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def mean_confidence_interval(values):
    """Mean and 95 % confidence half-width, ``t(0.975, n-1) * sd / sqrt(n)``.

    For paired comparisons in the ``bench/`` scripts (e.g. the per-round
    ratio of two timings). Degrees of freedom between table entries use the
    next smaller entry (a slightly wider interval).

    Args:
        values: At least two numbers.

    Returns:
        ``(mean, half_width)``.

    Raises:
        ValueError: With fewer than two values.
    """
    values = list(values)
    if len(values) < 2:
        raise ValueError(
            f"`values` must hold at least two numbers. Received: {len(values)}"
        )
    m = RunningMoments()
    for v in values:
        m.add(v)
    df = len(values) - 1
    t = _T95[max(k for k in _T95 if k <= df)]
    return m.mean, t * standard_error(m.sd, m.n)


def summarize(durations_s, samples=None, steps=None, capacity=DEFAULT_CAPACITY):
    """Statistics of a list of step durations.

    Args:
        durations_s: Duration of each observation in seconds.
        samples: Samples per observation: a list as long as ``durations_s``,
            one int for all, or ``None`` when unknown.
        steps: Steps per observation: a list, one int for all, or ``None``
            for one step each.
        capacity: See `StepRecorder`.

    Returns:
        `StepStats`.

    Raises:
        ValueError: On zero observations, lists of different lengths or
            invalid values.

    Example:

    >>> s = summarize([0.5, 0.25], samples=32)
    >>> round(s.images_per_sec, 3)  # 64 images in 0.75 s
    85.333
    """
    durations_s = list(durations_s)
    n = len(durations_s)

    def per_observation(value, name, default, minimum):
        if value is None:
            return [default] * n
        if isinstance(value, numbers.Number):  # one count for every observation
            return [_validate.integer(name, value, minimum=minimum)] * n
        value = list(value)
        if len(value) != n:
            raise ValueError(
                f"`{name}` must have one entry per duration ({n}). "
                f"Received: {len(value)} entries"
            )
        return value

    samples_list = per_observation(samples, "samples", None, 0)
    steps_list = per_observation(steps, "steps", 1, 1)
    recorder = StepRecorder(capacity=capacity)
    for duration, k, s in zip(durations_s, steps_list, samples_list):
        recorder.add(duration, k, s)
    return recorder.summary()
