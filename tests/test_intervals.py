"""Confidence intervals and the stopping rule (kerasbench/_timing/intervals.py).

The t quantile against printed tables and closed forms, the batch-means
interval against a hand-computed example, its coverage on simulated
autocorrelated step times (AR(1) with a known mean) against the classic
per-step standard error, Fieller's ratio interval, and the stopping rule.
"""

import math
import subprocess
import sys

import numpy as np
import pytest

from kerasbench._timing.intervals import (
    Interval,
    batch_size,
    mean_interval,
    rate_interval,
    ratio_interval,
    stop_reason,
    t_cdf,
    t_critical,
    t_quantile,
)

# ------------------------------------------------------------- t quantile

# Upper quantiles t_{p, df} as printed in Student's t tables (three decimals;
# e.g. Fisher and Yates, Statistical Tables, table III).
T_TABLE = [
    (1, 0.95, 6.314), (1, 0.975, 12.706), (1, 0.995, 63.657),
    (2, 0.95, 2.920), (2, 0.975, 4.303), (2, 0.995, 9.925),
    (3, 0.95, 2.353), (3, 0.975, 3.182), (3, 0.995, 5.841),
    (4, 0.975, 2.776), (5, 0.9, 1.476), (5, 0.975, 2.571), (5, 0.995, 4.032),
    (9, 0.975, 2.262), (10, 0.95, 1.812), (10, 0.975, 2.228), (10, 0.995, 3.169),
    (20, 0.975, 2.086), (30, 0.975, 2.042), (30, 0.995, 2.750),
    (60, 0.975, 2.000), (120, 0.975, 1.980), (120, 0.995, 2.617),
]


@pytest.mark.parametrize("df, p, printed", T_TABLE)
def test_t_quantile_matches_the_printed_table(df, p, printed):
    assert t_quantile(p, df) == pytest.approx(printed, abs=5e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-printed, abs=5e-4)


def test_t_quantile_closed_forms():
    # df = 1 is the Cauchy distribution: q = tan(pi (p - 1/2)).
    for p in (0.6, 0.9, 0.975, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)
    # df = 2: q = (2p - 1) / sqrt(2 p (1 - p)).
    for p in (0.55, 0.8, 0.975, 0.9995):
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)),
                                                 rel=1e-10)
    # Infinite degrees of freedom: the normal quantile, 1.959964 for 97.5 %.
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.975, 1e9) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.5, 7) == 0.0


def test_t_cdf_closed_forms():
    for x in (-3.0, -0.4, 0.0, 0.7, 2.5, 40.0):
        assert t_cdf(x, 1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-13)
        assert t_cdf(x, 2) == pytest.approx(0.5 + x / (2 * math.sqrt(2 + x * x)), abs=1e-13)
        s3 = math.sqrt(3)
        f3 = 0.5 + (x / (s3 * (1 + x * x / 3)) + math.atan(x / s3)) / math.pi
        assert t_cdf(x, 3) == pytest.approx(f3, abs=1e-13)


@pytest.mark.parametrize("df", [1.2, 1.5, 1.9, 2.7, 3.3, 7.5, 17.25, 55.5, 150.5])
def test_t_quantile_inverts_the_cdf_for_welch_degrees_of_freedom(df):
    # Welch's degrees of freedom are not integers (and between 1 and 2 with
    # two runs a side), where Hill's start alone is off by up to 5 %.
    for p in (0.6, 0.9, 0.975, 0.995):
        assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-11)
    # Between the integers around it.
    assert t_quantile(0.975, math.ceil(df)) < t_quantile(0.975, df) < \
        t_quantile(0.975, math.floor(df))


@pytest.mark.parametrize("p, df", [(0.0, 5), (1.0, 5), (1.5, 5), (0.975, 0.5), (0.975, 0),
                                   (float("nan"), 5), (True, 5)])
def test_t_quantile_refuses_bad_arguments(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)


# --------------------------------------------------------- the batch means


def test_batch_size_is_the_floor_of_the_square_root():
    assert [batch_size(n) for n in (4, 8, 9, 99, 100, 10_000)] == [2, 2, 3, 9, 10, 100]


def test_rate_interval_worked_example():
    # Nine steps of 32 images: 0.10, 0.10, 0.10, 0.11, 0.11, 0.11, 0.12, 0.12, 0.12 s.
    durations = [0.10] * 3 + [0.11] * 3 + [0.12] * 3
    iv = rate_interval(durations, [32] * 9)
    # 288 images in 0.99 s; time per image tau = 0.99 / 288 = 0.0034375 s.
    assert iv.estimate == pytest.approx(288 / 0.99)
    # u_i = d_i / 32 - tau = -a, -a, -a, 0, 0, 0, a, a, a with a = 0.0003125.
    # Batches of m = 3: the 7 overlapping means are -a, -2a/3, -a/3, 0, a/3,
    # 2a/3, a; their squares sum to 28 a^2 / 9. sigma^2 = 9 * 3 / (6 * 7) *
    # 28 a^2 / 9 = 2 a^2; se = sqrt(2 a^2 / 9) = a sqrt(2) / 3 = 0.00014731.
    # df = 1.5 * (9 / 3 - 1) = 3, t_{0.975, 3} = 3.182446: h = 0.00046882.
    a = 0.0003125
    h = 3.182446 * a * math.sqrt(2) / 3
    assert iv.low == pytest.approx(1 / (0.0034375 + h), rel=1e-6)    # 256.0
    assert iv.high == pytest.approx(1 / (0.0034375 - h), rel=1e-6)   # 336.9
    assert (iv.df, iv.method) == (3.0, "batch_means")
    assert iv.low < iv.estimate < iv.high
    # Asymmetric, as an interval for a ratio: longer above.
    assert iv.high - iv.estimate > iv.estimate - iv.low
    assert iv.relative_half_width == pytest.approx((iv.high - iv.low) / 2 / iv.estimate)


def test_rate_interval_with_unequal_counts_is_centred_on_total_over_time():
    # A partial last batch: the linearised ratio keeps S / T as the centre.
    durations = [0.1, 0.12, 0.1, 0.11, 0.1, 0.13, 0.1, 0.11, 0.05]
    counts = [32] * 8 + [16]
    iv = rate_interval(durations, counts)
    assert iv.estimate == pytest.approx(sum(counts) / sum(durations))
    tau = sum(durations) / sum(counts)
    # The time interval is symmetric around tau.
    assert (1 / iv.low - tau) == pytest.approx(tau - 1 / iv.high)


def test_order_matters_a_drift_widens_the_interval():
    # The same step times, once drifting (slow, then fast) and once shuffled:
    # the per-step standard error cannot tell them apart, batch means can.
    rng = np.random.default_rng(3)
    drifting = np.linspace(0.12, 0.08, 400) + rng.normal(0, 0.002, 400)
    shuffled = rng.permutation(drifting)
    counts = np.full(400, 32)
    assert rate_interval(drifting, counts).relative_half_width > \
        3 * rate_interval(shuffled, counts).relative_half_width


def test_rate_interval_needs_four_observations_and_matching_counts():
    assert rate_interval([0.1, 0.1, 0.1], [32] * 3) is None
    assert rate_interval([0.1] * 4, [32] * 4) is not None
    with pytest.raises(ValueError, match="counts"):
        rate_interval([0.1] * 4, [32] * 3)
    with pytest.raises(ValueError, match="positive"):
        rate_interval([0.0] * 4, [32] * 4)


def test_unbounded_high_end_when_the_time_interval_reaches_zero():
    iv = rate_interval([0.01, 0.01, 3.0, 3.0], [32] * 4)  # wildly different halves
    assert iv.high == math.inf and iv.relative_half_width == math.inf
    assert iv.low > 0


# ---------------------------------------------------------------- coverage


def _ar1_step_times(rng, sims, n, phi, mean, cv):
    """``sims`` stationary AR(1) series of step times with the given mean,
    coefficient of variation and lag-1 autocorrelation ``phi``."""
    x = np.empty((sims, n))
    x[:, 0] = rng.normal(0.0, cv * mean, sims)
    shocks = rng.normal(0.0, cv * mean * math.sqrt(1 - phi * phi), (sims, n))
    for i in range(1, n):
        x[:, i] = phi * x[:, i - 1] + shocks[:, i]
    return mean + x


def test_coverage_on_autocorrelated_step_times():
    """The 95 % batch-means interval covers the true images/sec in about 95 %
    of simulated runs; the classic rate +/- 1.96 sem covers far less.

    2,000 runs of 400 steps of 32 images, step times AR(1) with lag-1
    autocorrelation 0.5, mean 0.1 s (true rate 320 images/sec) and 5 %
    coefficient of variation. The binomial standard error of a coverage of
    0.95 from 2,000 runs is 0.005: the band below is about +/- 3 of them.
    docs/metrics.md lists the coverage for other autocorrelations and lengths.
    """
    rng = np.random.default_rng(20240611)
    sims, n, batch, mean = 2000, 400, 32, 0.1
    series = _ar1_step_times(rng, sims, n, phi=0.5, mean=mean, cv=0.05)
    truth = batch / mean
    counts = np.full(n, batch)
    covered = naive = 0
    for row in series:
        covered += rate_interval(row, counts).contains(truth)
        speeds = batch / row
        sem = speeds.std(ddof=1) / math.sqrt(n)   # images_per_sec_sem
        naive += abs(batch * n / row.sum() - truth) <= 1.96 * sem
    assert 0.93 <= covered / sims <= 0.97
    assert naive / sims < 0.80


def test_across_runs_interval_is_students_t():
    iv = mean_interval([100.0, 104.0, 96.0, 100.0])
    # mean 100, sd sqrt(32 / 3) = 3.266, se 1.633, t_{0.975, 3} = 3.182446.
    assert iv.estimate == 100.0
    assert iv.high - 100 == pytest.approx(3.182446 * math.sqrt(32 / 3) / 2, rel=1e-6)
    assert iv.low == pytest.approx(200 - iv.high)
    assert (iv.df, iv.method) == (3, "across_runs")
    assert mean_interval([100.0]) is None


# -------------------------------------------------------------- Fieller


def _runs(mean, se, df):
    h = t_critical(df) * se
    return Interval(estimate=mean, low=mean - h, high=mean + h, df=df, method="across_runs")


def test_fieller_with_exact_denominator_is_the_scaled_t_interval():
    # A denominator known exactly: Fieller reduces to (a +/- t se_a) / b.
    a = _runs(200.0, 2.0, 9)
    b = _runs(100.0, 0.0, 9)
    iv = ratio_interval(a, b)
    assert iv.estimate == 2.0
    h = t_critical(9) * 2.0 / 100
    assert (iv.low, iv.high) == (pytest.approx(2 - h), pytest.approx(2 + h))


def test_fieller_hand_computed():
    # a = 110 +/- se 2, b = 100 +/- se 2, df 4 each; rho = 1.1.
    a, b = _runs(110.0, 2.0, 4), _runs(100.0, 2.0, 4)
    iv = ratio_interval(a, b)
    # Welch df of a - rho b: (4 + 4.84)^2 / (16 / 4 + 23.4256 / 4) = 7.9134
    df = (4 + 1.21 * 4) ** 2 / (16 / 4 + (1.21 * 4) ** 2 / 4)
    assert iv.df == pytest.approx(df)
    t2 = t_quantile(0.975, df) ** 2
    qa, qb, qc = 100 ** 2 - t2 * 4, 110 * 100, 110 ** 2 - t2 * 4
    root = math.sqrt(qb * qb - qa * qc)
    assert iv.low == pytest.approx((qb - root) / qa)
    assert iv.high == pytest.approx((qb + root) / qa)
    # 10 % faster with 2 % standard errors: significant (1 is outside).
    assert not iv.contains(1.0)


def test_fieller_is_undefined_when_the_denominator_is_not_above_zero():
    assert ratio_interval(_runs(100.0, 1.0, 4), _runs(1.0, 5.0, 4)) is None


def test_fieller_agrees_with_welchs_test():
    # Contains 1 exactly when |a - b| / sqrt(sa^2 + sb^2) is below the t quantile.
    for delta in (0.5, 2.0, 4.0, 6.0, 8.0):
        a, b = _runs(100.0 + delta, 2.0, 6), _runs(100.0, 2.0, 6)
        iv = ratio_interval(a, b)
        t = delta / math.sqrt(8.0)
        assert iv.contains(1.0) == (t <= t_quantile(0.975, iv.df) * 1.0001)


# ---------------------------------------------------------------- stopping


def test_stop_reason():
    rule = dict(target=0.01, min_steps=50, max_steps=1000, max_time_s=60.0)
    assert stop_reason(10, 1.0, 0.005, **rule) is None          # below min_steps
    assert stop_reason(50, 5.0, 0.005, **rule) == "target"
    assert stop_reason(50, 5.0, 0.02, **rule) is None
    assert stop_reason(50, 5.0, None, **rule) is None           # no interval yet
    assert stop_reason(1000, 5.0, 0.02, **rule) == "max_steps"
    assert stop_reason(60, 60.0, 0.02, **rule) == "max_time"
    assert stop_reason(10, 60.0, 0.02, **rule) == "max_time"    # a hard limit
    assert stop_reason(10_000, 1e6, 0.0, target=None) is None   # no target, no bounds


def test_stopping_at_the_target_ends_with_the_interval_that_holds():
    """The pure rule, applied every 10 steps to AR(1) step times: every run
    stops at or below the target width, and the interval it stops with
    still covers the true rate in about 95 % of runs."""
    rng = np.random.default_rng(7)
    sims, n, batch, mean = 400, 1500, 32, 0.1
    series = _ar1_step_times(rng, sims, n, phi=0.3, mean=mean, cv=0.05)
    counts = np.full(n, batch)
    covered, lengths = 0, []
    for row in series:
        for steps in range(20, n + 1, 10):
            iv = rate_interval(row[:steps], counts[:steps])
            reason = stop_reason(steps, row[:steps].sum(), iv.relative_half_width,
                                 target=0.01, min_steps=20, max_steps=n)
            if reason:
                break
        assert reason == "target" and iv.relative_half_width <= 0.01
        covered += iv.contains(batch / mean)
        lengths.append(steps)
    assert 0.90 <= covered / sims <= 0.98
    # About (1.96 * 0.05 * sqrt(1.3 / 0.7) / 0.01)^2 = 180 steps are needed.
    assert 120 < np.median(lengths) < 300


def test_module_imports_no_scipy_and_no_framework():
    code = ("import sys; import kerasbench._timing.intervals as m; "
            "m.t_quantile(0.975, 3.5); "
            "bad = [k for k in ('scipy', 'keras', 'tensorflow', 'jax', 'torch') "
            "if k in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_ratio_of_rates_is_never_below_zero():
    """Two runs a side with a wide spread: Fieller's set reaches below 0 for
    a ratio of rates, which cannot be negative; it starts at 0."""
    from kerasbench._timing.intervals import Interval, ratio_interval, t_critical

    t = t_critical(1, 0.95)
    wide = Interval(estimate=355.0, low=355.0 - 300 * t, high=355.0 + 300 * t, df=1,
                    method="across_runs")
    base = Interval(estimate=682.0, low=682.0 - 2 * t, high=682.0 + 2 * t, df=1,
                    method="across_runs")
    ratio = ratio_interval(wide, base)
    assert ratio.low == 0.0 and ratio.high > 1.0
    assert ratio.estimate == pytest.approx(355.0 / 682.0)
