"""PhaseMeter with a fake clock: warmup, first step, pauses, several steps per call."""

import re

import numpy as np
import pytest

from kerasbench._timing.meter import (
    PENDING,
    PhaseMeter,
    ThroughputResult,
    effective_warmup,
    split_count,
)


def run(meter, times, samples=32, steps=1, start=0.0):
    meter.start(start)
    for t in times:
        meter.step(t, steps, samples)
    return meter


def test_warmup_and_first_step_are_kept_apart():
    # Step ends at 3.0 (compile), 3.5, 4.0, 4.25, 4.5.
    meter = run(PhaseMeter("train", warmup_steps=2), [3.0, 3.5, 4.0, 4.25, 4.5])
    r = meter.result()
    assert r.first_step_s == pytest.approx(3.0)
    assert r.warmup_steps == 2 and r.warmup_time_s == pytest.approx(3.5)
    assert r.steps == 3 and r.samples == 96
    assert r.step_times_s == pytest.approx((0.5, 0.25, 0.25))
    assert r.images_per_sec == pytest.approx(96 / 1.0)
    assert r.notes == ()


def test_step_returns_duration_and_whether_measured():
    meter = PhaseMeter("train", warmup_steps=1)
    meter.start(10.0)
    assert meter.step(12.0, 1, 8) == (pytest.approx(2.0), False)
    assert meter.step(12.5, 1, 8) == (pytest.approx(0.5), True)


def test_time_between_pause_and_start_is_not_counted():
    meter = PhaseMeter("train", warmup_steps=0)
    run(meter, [1.0, 2.0])
    meter.pause()  # epoch end; validation runs from 2.0 to 100.0
    meter.start(100.0)
    meter.step(101.0, 1, 32)
    meter.start(150.0)  # ignored: an interval is already open
    meter.step(102.0, 1, 32)
    r = meter.result()
    assert r.step_times_s == pytest.approx((1.0, 1.0, 1.0, 1.0))
    assert r.time_s == pytest.approx(4.0)


def test_step_without_start_is_a_programming_error():
    with pytest.raises(RuntimeError, match="before start"):
        PhaseMeter("train").step(1.0)


def test_warmup_with_several_steps_per_observation():
    # steps_per_execution=4, warmup 10: observations cover 0-3, 4-7, 8-11, ...;
    # the third starts before step 10, so 12 steps are warmup.
    meter = run(PhaseMeter("train", warmup_steps=10), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                samples=64, steps=4)
    r = meter.result()
    assert r.warmup_steps == 12
    assert r.steps == 12 and r.samples == 192
    assert r.step_time_s == pytest.approx(0.25)


@pytest.mark.parametrize(
    "requested,total,expected",
    [(10, None, 10), (10, 100, 10), (10, 20, 10), (10, 19, 9), (10, 3, 1), (10, 1, 0), (0, 50, 0)],
)
def test_effective_warmup(requested, total, expected):
    assert effective_warmup(requested, total) == expected


def test_known_short_phase_plans_a_shorter_warmup():
    meter = PhaseMeter("predict", warmup_steps=10, total_steps=6)
    assert meter.warmup_steps == 3
    run(meter, [1, 2, 3, 4, 5, 6])
    r = meter.result()
    assert r.warmup_steps == 3 and r.steps == 3
    assert "warmup shortened from 10 to 3 steps" in r.notes[0]


def test_unknown_length_short_phase_is_resplit_at_the_end():
    meter = PhaseMeter("train", warmup_steps=10)
    run(meter, [2.0, 2.5, 3.0, 3.5])  # all four are warmup while running
    assert meter.running_stats() is None
    r = meter.result()
    assert r.warmup_steps == 2 and r.steps == 2
    assert r.step_times_s == pytest.approx((0.5, 0.5))
    assert any("shortened from 10 to 2" in n for n in r.notes)


def test_plan_is_ignored_after_the_first_step():
    meter = PhaseMeter("train", warmup_steps=10)
    run(meter, [1.0])
    meter.plan(4)
    assert meter.warmup_steps == 10


def test_single_step_phase_is_measured_with_a_note():
    r = run(PhaseMeter("evaluate", warmup_steps=10), [2.0]).result()
    assert r.steps == 1 and r.warmup_steps == 0
    assert r.images_per_sec == pytest.approx(16.0)
    assert any("include the first step" in n for n in r.notes)


def test_no_steps_is_a_clear_error():
    with pytest.raises(ValueError, match="no steps were run"):
        PhaseMeter("predict").result()


def test_unknown_samples_give_steps_per_sec():
    r = run(PhaseMeter("train", warmup_steps=1), [1.0, 1.5, 2.0], samples=None).result()
    assert r.images_per_sec is None and r.samples is None
    assert r.steps_per_sec == pytest.approx(2.0)
    assert any("steps/sec" in n for n in r.notes)


def test_running_figures_match_the_final_result():
    meter = run(PhaseMeter("train", warmup_steps=1), [1.0, 1.5, 1.75, 2.5])
    rate, sem, jit = meter.running_stats()
    r = meter.result()
    assert meter.running_rate() == rate == pytest.approx(r.images_per_sec)
    assert sem == pytest.approx(r.images_per_sec_sem)
    assert jit == pytest.approx(r.images_per_sec_jitter)


def test_result_round_trips_through_a_dict():
    r = run(PhaseMeter("train", warmup_steps=1), [1.0, 1.5, 1.75]).result()
    d = r.to_dict()
    assert d["phase"] == "train" and isinstance(d["step_times_s"], list)
    assert ThroughputResult.from_dict(d) == r


# -------------------------------------------------- counts settled together


@pytest.mark.parametrize(
    "total,steps,batch,boundary,expected",
    [
        (96, [1, 1, 1], 32, False, ([32, 32, 32], True)),
        (80, [1, 1, 1], 32, True, ([32, 32, 16], True)),   # partial last batch
        (80, [1, 1, 1], 32, False, ([26, 26, 28], False)),  # mid-epoch: sizes vary
        (130, [1, 1, 1], 32, True, ([43, 43, 44], False)),  # more than full batches
        (40, [4, 1], 8, True, ([32, 8], True)),            # several steps each
        (7, [1], None, False, ([7], True)),
        (9, [2, 1], None, False, ([6, 3], False)),
    ],
)
def test_split_count(total, steps, batch, boundary, expected):
    assert split_count(total, steps, batch, boundary) == expected


def test_settle_attributes_pending_steps():
    meter = PhaseMeter("train", warmup_steps=1)
    meter.start(0.0)
    meter.step(1.0, 1, PENDING)
    assert meter.settle(32) == [(1.0, 1, 32, None)]  # warmup: no running rate
    assert meter.batch_size == 32
    for t in (1.5, 2.0, 2.25):
        meter.step(t, 1, PENDING)
    assert meter.pending_steps == 3
    settled = meter.settle(80, boundary=True)
    assert [s for _, _, s, _ in settled] == [32, 32, 16]
    assert settled[-1][3] == pytest.approx(80 / 1.25)  # running images/sec
    assert not meter.varying
    r = meter.result()
    assert r.samples == 80 and r.notes == ()


def test_settle_without_running_rates():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    for t in (1.0, 2.0):
        meter.step(t, 1, PENDING)
    assert meter.settle(64, running_rates=False) == [(1.0, 1, 32, None), (1.0, 1, 32, None)]
    assert meter.running_rate() == pytest.approx(32.0)  # the figures are unchanged


def test_settle_detects_varying_sizes():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, PENDING)
    meter.settle(5)
    meter.step(2.0, 1, PENDING)
    meter.settle(2)  # not the epoch's last (another step follows) ...
    assert not meter.varying
    meter.step(3.0, 1, PENDING)
    meter.settle(7)  # ... so the 2 above was not a full batch
    assert meter.varying


def test_a_pause_forgives_a_partial_last_batch():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    for t, s in ((1.0, 4), (2.0, 4), (3.0, 2)):
        meter.step(t, 1, PENDING)
        meter.settle(s)
    meter.pause()
    meter.start(10.0)
    meter.step(11.0, 1, PENDING)
    meter.settle(4)
    assert not meter.varying and meter.batch_size == 4


def test_unknown_settled_counts():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, PENDING)
    meter.settle(None)
    assert meter.result().samples is None


def test_result_refuses_unsettled_steps():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, PENDING)
    with pytest.raises(RuntimeError, match="settle"):
        meter.result()


# ------------------------------------------------------------- observations


def test_observations_list_warmup_then_measured_steps():
    meter = PhaseMeter("train", warmup_steps=2)
    meter.start(0.0)
    meter.step(3.0, 1, 32)
    meter.step(3.5, 1, 32)
    meter.step(4.0, 2, 48)
    meter.step(4.25, 1, None)
    meter.step(5.0, 1, PENDING)  # left out until settled
    assert meter.observations() == [
        (3.0, 1, 32), (0.5, 1, 32), (0.5, 2, 48), (0.25, 1, None),
    ]
    meter.settle(16)
    assert meter.observations()[-1] == (0.75, 1, 16)
    assert PhaseMeter("predict").observations() == []


def test_observations_match_the_result():
    meter = run(PhaseMeter("train", warmup_steps=1), [2.0, 2.5, 2.75, 3.5])
    obs = meter.observations()
    r = meter.result()
    assert r.warmup_time_s == obs[0][0] and r.first_step_s == obs[0][0]
    assert tuple(d for d, _, _ in obs[1:]) == r.step_times_s
    assert sum(s for _, _, s in obs[1:]) == r.samples


def test_observations_are_a_copy():
    meter = run(PhaseMeter("train", warmup_steps=1), [1.0, 2.0])
    meter.observations().clear()
    assert len(meter.observations()) == 2


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"warmup_steps": -1},
         "`warmup_steps` must be a non-negative integer. Received: warmup_steps=-1"),
        ({"warmup_steps": True}, "Received: warmup_steps=True"),
        ({"warmup_steps": 2.0}, "Received: warmup_steps=2.0"),
        ({"total_steps": -3},
         "`total_steps` must be a non-negative integer or None. Received: total_steps=-3"),
        ({"capacity": 0}, "`capacity` must be a positive integer. Received: capacity=0"),
        ({"phase": ""}, "`phase` must be a non-empty string"),
    ],
)
def test_bad_arguments(kwargs, message):
    kwargs.setdefault("phase", "train")
    with pytest.raises(ValueError, match=re.escape(message)):
        PhaseMeter(**kwargs)


def test_numpy_integers_are_accepted():
    meter = PhaseMeter("train", warmup_steps=np.int64(10), total_steps=np.int32(6),
                       capacity=np.int64(50))
    assert (meter.requested_warmup, meter.warmup_steps, meter.capacity) == (10, 3, 50)
    assert type(meter.requested_warmup) is int
    run(meter, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], samples=np.int64(8), steps=np.int64(1))
    r = meter.result()
    assert r.samples == 24 and type(r.samples) is int
    assert meter.observations()[-1] == (1.0, 1, 8)


def test_plan_checks_its_argument():
    with pytest.raises(ValueError, match=re.escape("Received: total_steps=-1")):
        PhaseMeter("train").plan(-1)


def test_bad_observations_raise_keras_style_messages():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    with pytest.raises(ValueError, match=re.escape(
            "`samples` must be a non-negative integer or None. Received: samples=-4")):
        meter.step(1.0, 1, -4)


# ------------------------------------------------- clock readings of any kind


def test_a_reading_without_advance_is_timed_with_the_next():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    assert meter.step(1.0, 1, 8) == (1.0, True)
    assert meter.step(1.0, 1, 8) == (0.0, True)  # the clock did not advance
    meter.step(2.0, 1, 8)
    assert meter.observations() == [(1.0, 1, 8), (1.0, 2, 16)]
    r = meter.result()
    assert (r.steps, r.samples, r.time_s) == (3, 24, 2.0)
    assert any("did not advance (or gave no usable reading) during 1 steps" in n
               for n in r.notes)


@pytest.mark.parametrize("reading", [float("nan"), float("inf"), float("-inf")])
def test_a_reading_that_is_not_finite_is_timed_with_the_next(reading):
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, 8)
    meter.step(reading, 1, 8)
    meter.step(3.0, 1, 8)
    assert meter.observations() == [(1.0, 1, 8), (2.0, 2, 16)]


def test_pending_steps_without_advance_join_the_last_pending_one():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.settle(None)  # nothing pending: nothing happens
    meter.step(1.0, 1, PENDING)
    meter.step(1.5, 1, PENDING)
    meter.step(1.5, 1, PENDING)  # no advance: its count comes with the next settle
    assert meter.pending_steps == 2
    settled = meter.settle(48, boundary=True)
    assert [(d, k, n) for d, k, n, _ in settled] == [(1.0, 1, 16), (0.5, 2, 32)]
    assert meter.result().samples == 48


def test_a_clock_set_back_leaves_the_step_out_and_measures_on():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(10.0)
    meter.step(11.0, 1, 8)
    assert meter.step(5.0, 1, 8) == (-6.0, True)  # set back: this step's time is unknown
    meter.step(5.5, 1, 8)
    meter.step(6.0, 1, PENDING)
    meter.step(2.0, 1, PENDING)  # set back again, with its count pending
    meter.step(3.0, 1, PENDING)
    settled = meter.settle(24)
    assert [(d, k, n) for d, k, n, _ in settled] == [(0.5, 1, 8), (None, 1, 8), (1.0, 1, 8)]
    r = meter.result()
    assert (r.steps, r.samples, r.time_s) == (4, 32, 3.0)
    assert meter.steps_done == 6
    assert any("2 steps left out of the statistics: the clock went backwards" in n
               for n in r.notes)


def test_steps_without_advance_at_an_epoch_end_are_left_out():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, 8)
    meter.step(1.0, 1, 8)
    meter.pause()
    meter.start(5.0)
    meter.step(6.0, 1, 8)
    r = meter.result()
    assert (r.steps, r.samples) == (2, 16)
    assert any("1 steps left out of the statistics: the clock did not advance between them "
               "and the end of their epoch" in n for n in r.notes)


def test_no_step_timed_is_a_clear_error():
    meter = PhaseMeter("train", warmup_steps=1)
    meter.start(5.0)
    for _ in range(3):
        meter.step(5.0, 1, 8)  # a stuck clock
    with pytest.raises(ValueError, match="none of the 3 steps could be timed"):
        meter.result()


# --------------------------------------------------------------- memory


def test_warmup_observations_are_capped_and_summed():
    meter = PhaseMeter("train", warmup_steps=1000, capacity=10)
    meter.start(0.0)
    for i in range(1, 101):
        meter.step(float(i), 1, 4)
        assert meter.held_observations <= 10
    r = meter.result()
    # 50 steps would be measured; the last 10 are all that is kept.
    assert (r.warmup_steps, r.steps, r.samples) == (90, 10, 40)
    assert r.warmup_time_s == pytest.approx(90.0) and r.first_step_s == 1.0
    assert len(meter.observations()) == 10
    assert any("shortened from 1000 to 90" in n for n in r.notes)
    assert any("only the last 10 warmup observations are kept" in n for n in r.notes)


def test_a_short_phase_with_a_capped_warmup_is_resplit_exactly():
    meter = PhaseMeter("train", warmup_steps=100, capacity=10)
    meter.start(0.0)
    for i in range(1, 13):
        meter.step(float(i), 1, 4)
    r = meter.result()  # 12 steps: 6 warmup (2 of them evicted sums), 6 measured
    assert (r.warmup_steps, r.steps, r.samples) == (6, 6, 24)
    assert not any("only the last" in n for n in r.notes)


def test_held_observations_count_every_kind():
    meter = PhaseMeter("train", warmup_steps=2, capacity=3)
    meter.start(0.0)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        meter.step(t, 1, 4)
    meter.step(7.0, 1, PENDING)
    assert (meter.held_observations, meter.pending_observations) == (2 + 3 + 1, 1)


def test_discard_pending_and_notes():
    meter = PhaseMeter("train", warmup_steps=0)
    meter.start(0.0)
    meter.step(1.0, 1, 4)
    meter.step(2.0, 2, PENDING)
    meter.step(2.0, 1, PENDING)  # not timed yet
    assert meter.discard_pending() == 3
    meter.note("a remark")
    meter.note("a remark")
    r = meter.result()
    assert r.steps == 1 and r.notes.count("a remark") == 1
    with pytest.raises(ValueError, match="`text` must be a non-empty string"):
        meter.note("")


# ------------------------------------------------------ confidence interval


def test_result_carries_the_batch_means_interval():
    # The worked example of test_intervals: nine steps of 32 images taking
    # 0.10, 0.10, 0.10, 0.11, ... 0.12 s: 290.9 images/sec, 256.0 to 336.9.
    ends = np.cumsum([0.10] * 3 + [0.11] * 3 + [0.12] * 3)
    r = run(PhaseMeter("train", warmup_steps=0), ends).result()
    assert r.images_per_sec == pytest.approx(288 / 0.99)
    a = 0.0003125
    h = 3.182446 * a * np.sqrt(2) / 3
    assert r.images_per_sec_ci_low == pytest.approx(1 / (0.0034375 + h), rel=1e-6)
    assert r.images_per_sec_ci_high == pytest.approx(1 / (0.0034375 - h), rel=1e-6)
    assert r.steps_per_sec_ci_low == pytest.approx(r.images_per_sec_ci_low / 32)
    assert (r.ci_method, r.ci_df) == ("batch_means", 3.0)
    assert r.relative_half_width == pytest.approx(
        (r.images_per_sec_ci_high - r.images_per_sec_ci_low) / 2 / r.images_per_sec)
    assert (r.target_precision, r.target_reached, r.stop_reason) == (None, None, None)


def test_no_interval_below_four_steps_or_without_sample_counts():
    r = run(PhaseMeter("train", warmup_steps=0), [0.1, 0.2, 0.3]).result()
    assert (r.images_per_sec_ci_low, r.images_per_sec_ci_high, r.ci_method) == (None,) * 3
    assert r.relative_half_width is None
    r = run(PhaseMeter("train", warmup_steps=0), [0.1, 0.2, 0.31, 0.4, 0.52],
            samples=None).result()
    assert r.images_per_sec_ci_low is None and r.steps_per_sec_ci_low < r.steps_per_sec
    assert r.relative_half_width == pytest.approx(
        (r.steps_per_sec_ci_high - r.steps_per_sec_ci_low) / 2 / r.steps_per_sec)


def test_target_precision_is_reported():
    rng = np.random.default_rng(1)
    ends = np.cumsum(0.1 + rng.normal(0, 0.002, 200))
    wide = run(PhaseMeter("train", warmup_steps=0, target_precision=0.01), ends).result()
    assert wide.target_reached is True and wide.target_precision == 0.01
    meter = run(PhaseMeter("train", warmup_steps=0, target_precision=0.0001), ends)
    meter.stop_reason = "max_steps"
    narrow = meter.result()
    assert narrow.target_reached is False and narrow.stop_reason == "max_steps"
    with pytest.raises(ValueError, match="Received: target_precision=1.5"):
        PhaseMeter("train", target_precision=1.5)


def test_interval_fields_round_trip_and_older_dicts_still_read():
    rng = np.random.default_rng(2)
    r = run(PhaseMeter("train", warmup_steps=1, target_precision=0.5),
            np.cumsum(0.1 + rng.normal(0, 0.01, 30))).result()
    d = r.to_dict()
    assert d["images_per_sec_ci_low"] == r.images_per_sec_ci_low and d["ci_df"] == r.ci_df
    assert ThroughputResult.from_dict(d) == r
    old = {k: v for k, v in d.items() if "ci_" not in k and "target" not in k
           and k != "stop_reason"}
    assert ThroughputResult.from_dict(old).images_per_sec_ci_low is None


def test_beyond_capacity_the_interval_comes_from_marks():
    rng = np.random.default_rng(3)
    ends = np.cumsum(0.1 + rng.normal(0, 0.005, 2000))
    exact = run(PhaseMeter("train", warmup_steps=0), ends).result()
    meter = PhaseMeter("train", warmup_steps=0, capacity=100)
    meter.start(0.0)
    for i, t in enumerate(ends, start=1):
        meter.step(t, 1, 32)
        if i % 10 == 0:
            meter.mark()
    sampled = meter.result()
    assert not sampled.percentiles_exact
    assert sampled.relative_half_width == pytest.approx(exact.relative_half_width, rel=0.3)
    unmarked = run(PhaseMeter("train", warmup_steps=0, capacity=100), ends).result()
    assert unmarked.images_per_sec_ci_low is None  # the order is lost, and no marks


def test_checkpoints_stay_bounded_and_even():
    from kerasbench._timing.intervals import Checkpoints

    marks = Checkpoints(limit=8)
    for i in range(1, 101):
        marks.add(float(i), i, 32 * i)
    assert len(marks) <= 8
    kept = np.array(marks.marks)[:, 1]
    assert len(set(np.diff(kept))) == 1  # blocks of equal size
