"""How sure is the number: confidence intervals and the stopping rule.

Pure code (Python and NumPy, no SciPy, no clock): the formulas behind
``images_per_sec_ci_low``/``images_per_sec_ci_high``, the interval across
repeated runs, the interval of a ratio of two throughputs, and the rule that
decides when an adaptive run has measured enough. The methods, why they were
chosen and the coverage measured on simulated step times are in
``docs/metrics.md`` ("How sure is the number").

* Within one run, step times are autocorrelated (drift, garbage collection,
  other tenants), so the standard error of per-step speeds understates the
  uncertainty of the mean. `rate_interval` uses **overlapping batch means**
  (Meketon and Schmeiser 1984) of ``m = floor(sqrt(n))`` consecutive steps
  (Flegal and Jones 2010) with Student's t, for the time per sample ``T / S``
  (a ratio estimator, linearised), and inverts it into an interval for
  ``S / T``.
* Across runs, `mean_interval` is Student's t interval of the mean.
* `ratio_interval` is Fieller's interval for a ratio of two independent
  means (Fieller 1954) with Welch-Satterthwaite degrees of freedom.
* `t_quantile` is Hill's algorithm 396 (1970) refined by Newton steps on the
  t distribution function (`t_cdf`, a regularised incomplete beta).
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np

from kerasbench import _validate

#: Confidence level of every interval kerasbench reports.
CONFIDENCE = 0.95

#: ``ci_method`` of an interval from overlapping batch means within a run.
BATCH_MEANS = "batch_means"
#: ``ci_method`` of an interval across repeated runs.
ACROSS_RUNS = "across_runs"

#: ``method`` of the interval of a ratio (`ratio_interval`).
FIELLER = "fieller"

#: Fewest observations for a within-run interval (three overlapping batches of two).
MIN_OBSERVATIONS = 4

_STOP_REASONS = ("target", "max_steps", "max_time")


# ------------------------------------------------------------ distributions


def normal_quantile(p):
    """Quantile of the standard normal distribution (Wichura's AS 241,
    through the standard library's `statistics.NormalDist`)."""
    return statistics.NormalDist().inv_cdf(p)


def _incomplete_beta(x, a, b):
    """Regularised incomplete beta ``I_x(a, b)`` by its continued fraction
    (modified Lentz; Press et al., Numerical Recipes, 3rd ed., 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):  # the fraction converges fast below this point
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return math.exp(log_front) * h / a


def t_cdf(x, df):
    """Distribution function of Student's t with ``df`` (> 0, real) degrees of
    freedom: ``1 - I_{df/(df+x^2)}(df/2, 1/2) / 2`` for ``x >= 0``."""
    tail = 0.5 * _incomplete_beta(df / (df + x * x), df / 2.0, 0.5)
    return 1.0 - tail if x >= 0 else tail


def _t_density(x, df):
    log_norm = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
                - 0.5 * math.log(df * math.pi))
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))


def _hill(p_two_sided, df):
    """Hill's algorithm 396 (CACM 13(10), 1970): the upper quantile of
    ``|T|`` exceeded with probability ``p_two_sided``. Exact for 1 and 2
    degrees of freedom; about five significant digits from 3 on."""
    p = p_two_sided
    if abs(df - 2.0) < 1e-12:
        return math.sqrt(2.0 / (p * (2.0 - p)) - 2.0)
    if df < 1.0 + 1e-12:  # Cauchy
        return 1.0 / math.tan(p * math.pi / 2.0)
    a = 1.0 / (df - 0.5)
    b = 48.0 / (a * a)
    c = ((20700.0 * a / b - 98.0) * a - 16.0) * a + 96.36
    d = ((94.5 / (b + c) - 3.0) / b + 1.0) * math.sqrt(a * math.pi / 2.0) * df
    y = (d * p) ** (2.0 / df)
    if y > 0.05 + a:  # asymptotic inverse expansion about the normal
        x = normal_quantile(0.5 * p)
        y = x * x
        if df < 5:
            c += 0.3 * (df - 4.5) * (x + 0.6)
        c = (((0.05 * d * x - 5.0) * x - 7.0) * x - 2.0) * x + b + c
        y = (((((0.4 * y + 6.3) * y + 36.0) * y + 94.5) / c - y - 3.0) / b + 1.0) * x
        y = math.expm1(a * y * y)
    else:
        y = ((1.0 / (((df + 6.0) / (df * y) - 0.089 * d - 0.822) * (df + 2.0) * 3.0)
              + 0.5 / (df + 4.0)) * y - 1.0) * (df + 1.0) / (df + 2.0) + 1.0 / y
    return math.sqrt(df * y)


def t_quantile(p, df):
    """Quantile of Student's t distribution: ``q`` with ``P(T <= q) = p``.

    Hill's algorithm 396 gives a start good to about five digits (worse for
    non-integer ``df`` below 2, as Welch's degrees of freedom can be); below
    100 degrees of freedom, two to four Newton steps on `t_cdf` make it exact
    to about 12 digits (from 100 on, Hill's value is exact to 1e-12 itself).

    Args:
        p: Probability, strictly between 0 and 1.
        df: Degrees of freedom, a real number >= 1 (infinity gives the
            normal quantile).

    Example:

    >>> round(t_quantile(0.975, 10), 4)
    2.2281
    """
    p = _validate.number("p", p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"`p` must be strictly between 0 and 1. Received: p={p!r}")
    if df == math.inf:
        return normal_quantile(p)
    df = _validate.number("df", df, minimum=1.0)
    if p == 0.5:
        return 0.0
    upper = p > 0.5
    tail = 1.0 - p if upper else p  # the lower-tail probability of -|q|
    q = -_hill(2.0 * tail, df)
    for _ in range(8 if df < 100 else 0):  # from 100 on, Hill's start is exact
        step = (t_cdf(q, df) - tail) / _t_density(q, df)
        q -= step
        if abs(step) <= 1e-13 * max(1.0, abs(q)):
            break
    return -q if upper else q


def t_critical(df, confidence=CONFIDENCE):
    """The two-sided critical value ``t_{(1 + confidence) / 2, df}``."""
    return t_quantile(0.5 + confidence / 2.0, df)


# ---------------------------------------------------------------- intervals


@dataclasses.dataclass(frozen=True)
class Interval:
    """A confidence interval around an estimate.

    Attributes:
        estimate: The figure (images/sec of the run, the mean of runs, a ratio).
        low, high: The bounds; ``high`` is ``math.inf`` when the data cannot
            bound it (a rate whose time interval reaches zero).
        df: Degrees of freedom of the t quantile used.
        method: `BATCH_MEANS`, `ACROSS_RUNS` or `FIELLER`.
        confidence: The confidence level, 0.95.
    """

    estimate: float
    low: float
    high: float
    df: float
    method: str
    confidence: float = CONFIDENCE

    @property
    def relative_half_width(self):
        """``(high - low) / 2`` as a share of the estimate (``0.01`` is
        +/-1 %); ``math.inf`` when unbounded or the estimate is 0."""
        if not math.isfinite(self.high) or self.estimate == 0:
            return math.inf
        return (self.high - self.low) / 2.0 / abs(self.estimate)

    @property
    def standard_error(self):
        """The half-width over the t quantile: the standard error a symmetric
        interval of the same width would have (for `ratio_interval`)."""
        if not math.isfinite(self.high):
            return math.inf
        return (self.high - self.low) / 2.0 / t_critical(self.df, self.confidence)

    def contains(self, value):
        """Whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high


def batch_size(n):
    """Observations per batch for ``n`` observations: ``floor(sqrt(n))``, at least 2.

    The batch size grows as ``sqrt(n)`` (Flegal and Jones 2010, with Jones et
    al. 2006): long enough for batch means to be nearly independent, short
    enough to leave many batches.
    """
    return max(2, math.isqrt(n))


def rate_interval(durations_s, counts, confidence=CONFIDENCE):
    """Interval for a throughput ``S / T`` from observations in measured order.

    The time per sample ``tau = T / S`` is a ratio estimator; linearised
    (the delta method) it is ``tau + mean(u)`` with
    ``u_i = (d_i - tau c_i) / (S / n)``, which for a constant batch size is
    each step's time per sample minus ``tau``. The variance of ``mean(u)``
    comes from **overlapping batch means** (Meketon and Schmeiser 1984): the
    means of all ``n - m + 1`` runs of ``m = floor(sqrt(n))`` consecutive
    ``u_i`` (`batch_size`),

        ``sigma^2 = n m / ((n - m)(n - m + 1)) * sum_j (ubar_j - ubar)^2``,
        ``se = sqrt(sigma^2 / n)``,

    which, unlike the per-step standard error, includes the covariances of
    nearby steps; its degrees of freedom are ``1.5 (n / m - 1)`` (the
    estimator has 2/3 of the variance of non-overlapping batch means). The
    interval ``tau +/- t se`` is inverted into ``[1 / (tau + h), 1 / (tau - h)]``
    for the rate: 1/x is monotone, so the coverage carries over exactly, and
    the interval is asymmetric as a ratio's should be (``high`` is infinite
    when ``h >= tau``).

    Args:
        durations_s: Duration of each observation, **in the order measured**
            (or of consecutive blocks of equal numbers of observations).
        counts: Samples (or steps) of each.
        confidence: Confidence level.

    Returns:
        An `Interval` (method `BATCH_MEANS`), or ``None`` with fewer than `MIN_OBSERVATIONS` observations.

    Raises:
        ValueError: If the lengths differ, or the total time or count is
            not positive.
    """
    d = np.asarray(durations_s, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = d.size
    if c.size != n:
        raise ValueError(f"`counts` must have one entry per duration ({n}). "
                         f"Received: {c.size} entries")
    if n < MIN_OBSERVATIONS:
        return None
    total_t, total_c = float(d.sum()), float(c.sum())
    if not (total_t > 0 and total_c > 0):
        raise ValueError(f"The total time and count must be positive. "
                         f"Received: time={total_t!r}, count={total_c!r}")
    tau = total_t / total_c
    u = (d - tau * c) / (total_c / n)
    m = batch_size(n)
    sums = np.concatenate(([0.0], np.cumsum(u)))
    deviations = (sums[m:] - sums[:-m]) / m - sums[-1] / n
    sigma2 = n * m / ((n - m) * (n - m + 1)) * float(np.dot(deviations, deviations))
    df = 1.5 * (n / m - 1)
    h = t_critical(df, confidence) * math.sqrt(sigma2 / n)
    high = 1.0 / (tau - h) if h < tau else math.inf
    return Interval(estimate=total_c / total_t, low=1.0 / (tau + h), high=high, df=df,
                    method=BATCH_MEANS, confidence=confidence)


def mean_interval(values, confidence=CONFIDENCE):
    """Student's t interval of the mean of independent values (one figure per
    repeated run): ``mean +/- t_{n-1} sd / sqrt(n)``.

    Returns:
        An `Interval` with method `ACROSS_RUNS`, or ``None`` for fewer than
        two values.
    """
    x = np.asarray(list(values), dtype=np.float64)
    if x.size < 2:
        return None
    mean = float(x.mean())
    h = t_critical(x.size - 1, confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(estimate=mean, low=mean - h, high=mean + h, df=x.size - 1,
                    method=ACROSS_RUNS, confidence=confidence)


def welch_df(se_a, df_a, se_b, df_b):
    """Welch-Satterthwaite degrees of freedom of ``a - b`` for independent
    estimates with standard errors ``se_*`` on ``df_*`` degrees of freedom
    (the sum of ``df_a`` and ``df_b`` when both are 0)."""
    va, vb = se_a * se_a, se_b * se_b
    if va + vb == 0:
        return df_a + df_b
    return (va + vb) ** 2 / (va * va / df_a + vb * vb / df_b)


def ratio_interval(numerator, denominator, confidence=CONFIDENCE):
    """Fieller's interval for the ratio of two independent means.

    With estimates ``a`` (numerator) and ``b`` (denominator), standard errors
    ``s_a``, ``s_b``, the ratio ``rho = a / b`` lies in the interval where
    ``(a - rho b)^2 <= t^2 (s_a^2 + rho^2 s_b^2)`` (Fieller 1954), ``t`` the
    t quantile on the Welch-Satterthwaite degrees of freedom of ``a - rho b``
    at the estimated ratio. It contains 1 exactly when Welch's t test finds
    no difference between the two means. For two non-negative means (rates)
    a lower bound below 0 is raised to 0, which the true ratio cannot be
    below.

    Args:
        numerator, denominator: `Interval`s (their ``estimate``,
            ``standard_error`` and ``df`` are used).
        confidence: Confidence level.

    Returns:
        An `Interval` (method `FIELLER`), or ``None`` when the
        denominator is not significantly above zero (the set is unbounded)
        or either side has no finite standard error.
    """
    a, b = numerator.estimate, denominator.estimate
    sa, sb = numerator.standard_error, denominator.standard_error
    if b == 0 or not (math.isfinite(sa) and math.isfinite(sb)):
        return None
    rho = a / b
    df = welch_df(sa, numerator.df, rho * sb, denominator.df)
    t2 = t_critical(max(df, 1.0), confidence) ** 2
    # (b^2 - t^2 sb^2) rho^2 - 2 a b rho + (a^2 - t^2 sa^2) <= 0
    qa = b * b - t2 * sb * sb
    if qa <= 0:
        return None
    qb = a * b
    disc = qb * qb - qa * (a * a - t2 * sa * sa)
    root = math.sqrt(max(disc, 0.0))
    low = (qb - root) / qa
    if a >= 0 and b > 0:  # a ratio of rates is never negative: the set starts at 0
        low = max(low, 0.0)
    return Interval(estimate=rho, low=low, high=(qb + root) / qa, df=df,
                    method=FIELLER, confidence=confidence)


# ------------------------------------------------------------------ stopping


def stop_reason(steps, elapsed_s, relative_half_width, *, target, min_steps=0,
                max_steps=None, max_time_s=None):
    """Whether an adaptive run has measured enough, and why.

    The run stops at the first check where ``steps >= max_steps``, or
    ``elapsed_s >= max_time_s``, or ``steps >= min_steps`` and the interval's
    relative half-width is at most ``target`` (a fixed-width rule in the
    manner of Chow and Robbins 1965 and Jones et al. 2006; ``min_steps``
    keeps an early, lucky estimate of the spread from ending it).

    Args:
        steps: Measured steps so far.
        elapsed_s: Measured seconds so far.
        relative_half_width: `Interval.relative_half_width` now, or ``None``
            when no interval exists yet.
        target: Share of the estimate to reach (``0.01``: +/-1 %), or
            ``None`` to run to the bounds.
        min_steps, max_steps, max_time_s: Bounds (``None``: none).

    Returns:
        ``None`` to go on, else ``"target"``, ``"max_steps"`` or
        ``"max_time"``.
    """
    if target is not None and relative_half_width is not None and steps >= min_steps \
            and relative_half_width <= target:
        return "target"
    if max_steps is not None and steps >= max_steps:
        return "max_steps"
    if max_time_s is not None and elapsed_s >= max_time_s:
        return "max_time"
    return None


# ---------------------------------------------------------- from a meter


def observations_interval(records, confidence=CONFIDENCE):
    """Intervals of a phase's rates from its observations in measured order.

    Args:
        records: ``(duration_s, steps, samples)`` tuples (`StepRecorder.records`),
            ``samples`` ``None`` where unknown.
        confidence: Confidence level.

    Returns:
        ``(images, steps)``: the `rate_interval` of images/sec (``None`` when
        a sample count is unknown) and of steps/sec; both ``None`` with fewer
        than `MIN_OBSERVATIONS` observations.
    """
    if len(records) < MIN_OBSERVATIONS:
        return None, None
    a = np.array([(d, k, -1.0 if s is None else s) for d, k, s in records], dtype=np.float64)
    images = rate_interval(a[:, 0], a[:, 2], confidence) \
        if (a[:, 2] >= 0).all() and a[:, 2].sum() > 0 else None
    return images, rate_interval(a[:, 0], a[:, 1], confidence)


class Checkpoints:
    """Running totals taken now and then, in measured order: the blocks of
    consecutive steps that batch means need once a phase has more
    observations than its recorder keeps in order.

    `add` takes the cumulative measured time, steps and samples; the blocks
    are the differences of consecutive checkpoints. At most ``limit`` are
    kept: when full, every other one is dropped (neighbouring blocks merge)
    and from then on only every other call is kept, so blocks stay of equal
    size. Memory is bounded; nothing is computed until `intervals`.
    """

    def __init__(self, limit=1024):
        self.limit = limit
        self._marks = []
        self._stride = 1
        self._calls = 0

    def add(self, time_s, steps, samples):
        """Records the totals so far (``samples`` ``None`` when unknown)."""
        self._calls += 1
        if self._calls % self._stride:
            return
        self._marks.append((time_s, steps, -1.0 if samples is None else samples))
        if len(self._marks) >= self.limit:
            self._marks = self._marks[1::2]
            self._stride *= 2

    def __len__(self):
        return len(self._marks)

    @property
    def marks(self):
        """The kept checkpoints, ``(time_s, steps, samples)``, oldest first
        (``samples`` -1 where unknown)."""
        return tuple(self._marks)

    def intervals(self, time_s, steps, samples, confidence=CONFIDENCE):
        """``(images, steps)`` intervals (see `observations_interval`) from the
        blocks between checkpoints, the last one ending at the final totals."""
        marks = np.array([(0.0, 0.0, 0.0)] + self._marks
                         + [(time_s, steps, -1.0 if samples is None else samples)])
        blocks = np.diff(marks, axis=0)
        blocks = blocks[blocks[:, 0] > 0]
        if len(blocks) < MIN_OBSERVATIONS:
            return None, None
        known = samples is not None and samples > 0 and (marks[1:, 2] >= 0).all()
        images = rate_interval(blocks[:, 0], blocks[:, 2], confidence) if known else None
        return images, rate_interval(blocks[:, 0], blocks[:, 1], confidence)
