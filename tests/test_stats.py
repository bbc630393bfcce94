"""The pure statistics, against values computed by hand (see docs/metrics.md)."""

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from kerasbench._timing.stats import (
    MAD_TO_SD,
    RunningMoments,
    StepRecorder,
    checked_observation,
    jitter,
    percentile,
    rate,
    mean_confidence_interval,
    standard_error,
    summarize,
)

# Worked example of docs/metrics.md: four steps of 32 images.
DURATIONS = [0.5, 0.25, 0.25, 1.0]


def test_worked_example_rates():
    s = summarize(DURATIONS, samples=32)
    # 4 * 32 = 128 images in 2.0 s.
    assert s.samples == 128 and s.steps == 4 and s.observations == 4
    assert s.time_s == pytest.approx(2.0)
    assert s.images_per_sec == pytest.approx(64.0)
    # Per-step speeds 64, 128, 128, 32: mean 88, sample variance 6912 / 3 = 2304.
    assert s.images_per_sec_sem == pytest.approx(48.0 / 2)
    # median 96, |v - 96| = 32, 32, 32, 64 -> median 32.
    assert s.images_per_sec_jitter == pytest.approx(1.4826 * 32)
    assert s.steps_per_sec == pytest.approx(2.0)
    # Step rates 2, 4, 4, 1: sample sd 1.5; MAD around 3 is 1.
    assert s.steps_per_sec_sem == pytest.approx(0.75)
    assert s.steps_per_sec_jitter == pytest.approx(1.4826)


def test_worked_example_step_times():
    s = summarize(DURATIONS, samples=32)
    assert s.step_time_s == pytest.approx(0.5)
    assert s.step_time_sd_s == pytest.approx(math.sqrt(0.375 / 3))
    # Sorted 0.25, 0.25, 0.5, 1.0; h = 3q: p50 -> 0.25 + 0.5 * 0.25.
    assert s.step_time_p50_s == pytest.approx(0.375)
    assert s.step_time_p90_s == pytest.approx(0.5 + 0.7 * 0.5)
    assert s.step_time_p99_s == pytest.approx(0.5 + 0.97 * 0.5)
    assert (s.step_time_min_s, s.step_time_max_s) == (0.25, 1.0)
    assert s.percentiles_exact is True


def test_rate_is_total_over_time_not_mean_of_step_rates():
    s = summarize(DURATIONS, samples=32)
    mean_of_rates = sum(32 / d for d in DURATIONS) / len(DURATIONS)
    assert mean_of_rates == pytest.approx(88.0)
    assert s.images_per_sec == pytest.approx(64.0)


def test_partial_batches_use_each_step_count():
    s = summarize([0.1, 0.1, 0.05], samples=[32, 32, 8])
    assert s.samples == 72
    assert s.images_per_sec == pytest.approx(72 / 0.25)


def test_one_step():
    s = summarize([0.5], samples=32)
    assert s.images_per_sec == pytest.approx(64.0)
    assert s.images_per_sec_sem is None
    assert s.images_per_sec_jitter is None
    assert s.step_time_sd_s is None
    assert s.steps_per_sec_sem is None
    assert s.step_time_p50_s == s.step_time_p99_s == s.step_time_min_s == 0.5


def test_identical_steps_have_zero_spread():
    s = summarize([0.1] * 5, samples=10)
    assert s.images_per_sec == pytest.approx(100.0)
    assert s.step_time_sd_s == 0.0
    assert s.images_per_sec_sem == 0.0
    assert s.images_per_sec_jitter == 0.0


def test_zero_steps_is_a_clear_error():
    with pytest.raises(ValueError, match="No measured steps"):
        summarize([])


def test_unknown_samples_leave_image_figures_empty():
    s = summarize([0.5, 0.25], samples=None)
    assert s.samples is None and s.images_per_sec is None
    assert s.images_per_sec_sem is None and s.images_per_sec_jitter is None
    assert s.steps_per_sec == pytest.approx(2 / 0.75)


def test_one_unknown_count_makes_all_unknown():
    s = summarize([0.5, 0.25], samples=[32, None])
    assert s.samples is None and s.images_per_sec is None


def test_several_steps_per_observation():
    # steps_per_execution=4: one observation of 4 steps, then a last one of 1.
    s = summarize([0.4, 0.2], samples=[40, 10], steps=[4, 1])
    assert s.steps == 5 and s.samples == 50
    assert s.images_per_sec == pytest.approx(50 / 0.6)
    assert s.steps_per_sec == pytest.approx(5 / 0.6)
    assert s.step_time_s == pytest.approx(0.12)
    assert (s.step_time_min_s, s.step_time_max_s) == pytest.approx((0.1, 0.2))


def test_welford_is_numerically_stable():
    # The naive E[x^2] - E[x]^2 loses every digit here (x^2 ~ 1e16).
    values = [1e8 + 1, 1e8 + 2, 1e8 + 3]
    m = RunningMoments()
    for v in values:
        m.add(v)
    assert m.mean == pytest.approx(1e8 + 2)
    assert m.sd == pytest.approx(1.0, rel=1e-9)
    naive = sum(v * v for v in values) / 3 - (sum(values) / 3) ** 2
    assert abs(naive * 3 / 2 - 1.0) > 1e-3  # the formula this avoids


@pytest.mark.parametrize(
    "values,q,expected",
    [
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 90, 3.7),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([7.0], 99, 7.0),
    ],
)
def test_percentile_hand_values(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_bad_input():
    with pytest.raises(ValueError, match="`q` must be between 0 and 100. Received: q=101"):
        percentile([1.0], 101)
    with pytest.raises(ValueError, match="must not be empty"):
        percentile([], 50)


def test_jitter_hand_value_and_outlier_robustness():
    assert MAD_TO_SD == 1.4826
    assert jitter([10.0, 11.0, 12.0, 13.0, 14.0]) == pytest.approx(1.4826 * 1.0)
    # One wild outlier barely moves the jitter.
    assert jitter([10.0, 11.0, 12.0, 13.0, 1000.0]) == pytest.approx(1.4826 * 1.0)
    with pytest.raises(ValueError):
        jitter([])


def test_rate_and_standard_error():
    assert rate(64, 2.0) == 32.0
    with pytest.raises(ValueError,
                       match="`time_s` must be a positive number. Received: time_s=0"):
        rate(1, 0)
    for bad in (float("inf"), float("nan"), True, -1.0):
        with pytest.raises(ValueError, match="`time_s` must be a positive number"):
            rate(1, bad)
    assert rate(64, np.float32(2.0)) == 32.0 and rate(3, 1) == 3.0
    assert standard_error(3.0, 9) == 1.0
    assert standard_error(None, 1) is None


def test_recorder_rejects_bad_observations():
    r = StepRecorder()
    with pytest.raises(ValueError, match="duration_s"):
        r.add(0.0)
    with pytest.raises(ValueError, match="steps"):
        r.add(0.1, steps=0)
    with pytest.raises(ValueError, match="samples"):
        r.add(0.1, samples=-1)
    with pytest.raises(ValueError, match="capacity"):
        StepRecorder(capacity=0)
    assert r.observations == 0  # nothing half-recorded


@pytest.mark.parametrize(
    "args,message",
    [
        ((float("nan"),), "`duration_s` must be a positive number. Received: duration_s=nan"),
        ((float("inf"),), "Received: duration_s=inf"),
        ((True,), "Received: duration_s=True"),
        ((0.1, 1.5), "`steps` must be a positive integer. Received: steps=1.5"),
        ((0.1, True), "Received: steps=True"),
        ((0.1, 1, 2.5),
         "`samples` must be a non-negative integer or None. Received: samples=2.5"),
        ((0.1, 1, False), "Received: samples=False"),
    ],
)
def test_observations_are_checked_keras_style(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        StepRecorder().add(*args)
    with pytest.raises(ValueError, match=re.escape(message)):
        checked_observation(*args)


def test_numpy_numbers_are_accepted_as_plain_numbers():
    r = StepRecorder(capacity=np.int64(4))
    assert r.capacity == 4 and type(r.capacity) is int
    r.add(np.float32(0.5), np.int64(2), np.int32(64))
    assert r.records() == [(0.5, 2, 64)]
    assert type(r.total_steps) is int and type(r.total_samples) is int
    assert checked_observation(np.float64(0.25), np.uint8(1), None) == (0.25, 1, None)
    s = summarize(np.array([0.5, 0.25]), samples=np.int64(32), steps=np.array([1, 1]))
    assert s.samples == 64 and s.images_per_sec == pytest.approx(64 / 0.75)


def test_summarize_rejects_a_bad_count_for_all():
    with pytest.raises(ValueError, match=re.escape(
            "`samples` must be a non-negative integer. Received: samples=-1")):
        summarize([0.1], samples=-1)
    with pytest.raises(ValueError, match=re.escape(
            "`steps` must be a positive integer. Received: steps=True")):
        summarize([0.1], steps=True)


def test_summarize_rejects_length_mismatch():
    with pytest.raises(ValueError, match="one entry per duration"):
        summarize([0.1, 0.2], samples=[1])


def test_bounded_memory_keeps_totals_exact():
    durations = [0.01 * (1 + (i % 7)) for i in range(1000)]
    exact = summarize(durations, samples=16)
    bounded = summarize(durations, samples=16, capacity=50)
    for name in ("steps", "samples", "images_per_sec", "images_per_sec_sem",
                 "steps_per_sec", "step_time_s", "step_time_sd_s",
                 "step_time_min_s", "step_time_max_s"):
        assert getattr(bounded, name) == pytest.approx(getattr(exact, name)), name
    assert exact.percentiles_exact and not bounded.percentiles_exact
    # Order statistics from a uniform sample of 50 land near the exact ones.
    assert bounded.step_time_p50_s == pytest.approx(exact.step_time_p50_s, abs=0.011)
    r = StepRecorder(capacity=50)
    for d in durations:
        r.add(d, 1, 16)
    assert len(r.step_times_s) == 50 and r.stored == 50


def test_reservoir_is_repeatable():
    a, b = StepRecorder(capacity=5, seed=1), StepRecorder(capacity=5, seed=1)
    for i in range(100):
        a.add(0.01 + i * 1e-4)
        b.add(0.01 + i * 1e-4)
    assert a.step_times_s == b.step_times_s


def test_records_round_trip():
    r = StepRecorder()
    r.add(0.5, 2, 64)
    r.add(0.25, 1, None)
    assert r.records() == [(0.5, 2, 64), (0.25, 1, None)]


def test_stats_module_imports_no_framework():
    code = (
        "import sys, kerasbench._timing.stats, kerasbench._timing.meter, kerasbench._timing.text; "
        "bad = [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mean_confidence_interval_hand_value():
    # mean 2, sample sd 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3).
    mean, half = mean_confidence_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.303 / math.sqrt(3))
    # 35 values: df 34 uses the df 30 entry.
    _, half = mean_confidence_interval([0.0, 2.0] * 17 + [1.0])
    assert half == pytest.approx(2.042 * math.sqrt(34 / 34) / math.sqrt(35), rel=1e-3)
    with pytest.raises(ValueError, match="at least two"):
        mean_confidence_interval([1.0])
