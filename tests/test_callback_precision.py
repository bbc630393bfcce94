"""ThroughputCallback's confidence interval, target precision and stopping rule,
on real Keras loops with a clock the test controls (every backend).

The callback reads the clock at each step's begin and end hooks; `StepClock`
advances by half a step at each reading, so every step takes 0.1 s with a
known spread, and the stopping rule meets the same numbers on every backend.
"""

import math

import numpy as np
import pytest

from kerasbench import ThroughputCallback
from test_callback import data, tiny_model

pytestmark = pytest.mark.backends


class StepClock:
    """Steps of 0.1 s with a coefficient of variation ``cv`` (two readings a step)."""

    def __init__(self, cv=0.05, seed=0):
        self.now, self.cv = 0.0, cv
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        half = 0.05 * (1 + self.cv * math.sqrt(2) * self.rng.standard_normal())
        self.now += max(half, 1e-4)
        return self.now


def run_fit(cb, steps=500, batch=4, **kwargs):
    x, y = data(steps * batch)
    model = tiny_model()
    model.fit(x, y, batch_size=batch, epochs=1, callbacks=[cb], verbose=0, **kwargs)
    return model


def callback(**kwargs):
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("warmup_steps", 2)
    kwargs.setdefault("clock", StepClock())
    return ThroughputCallback(**kwargs)


def test_stop_at_precision_ends_fit_once_the_interval_is_narrow_enough():
    cb = callback(stop_at_precision=0.02)
    model = run_fit(cb)
    r = cb.result
    assert r.stop_reason == "target" and r.target_reached is True
    assert r.target_precision == 0.02 and r.relative_half_width <= 0.02
    # About (2.4 * 0.05 / 0.02)^2 = 36 measured steps are needed, not 498.
    assert 20 <= r.steps < 150
    assert cb.meters["train"].steps_done == r.steps + r.warmup_steps  # fit ended there
    assert model.stop_training is True
    assert r.images_per_sec_ci_low < r.images_per_sec < r.images_per_sec_ci_high
    assert r.ci_method == "batch_means" and r.ci_df > 1


def test_target_precision_alone_reports_and_never_stops():
    cb = callback(target_precision="2%")
    model = run_fit(cb)
    r = cb.result
    assert r.steps == 498 and r.stop_reason is None and model.stop_training is False
    assert r.target_reached is True and r.target_precision == 0.02


def test_an_unreached_target_says_how_far_it_is():
    cb = callback(target_precision=0.001, verbose=2)
    run_fit(cb, steps=60)
    r = cb.result
    assert r.target_reached is False and r.relative_half_width > 0.001


@pytest.mark.parametrize("bounds, reason", [({"max_steps": 25}, "max_steps"),
                                            ({"max_time_s": 3.0}, "max_time")])
def test_bounds_stop_a_run_that_cannot_reach_its_target(bounds, reason):
    cb = callback(stop_at_precision=0.0001, min_steps=5, **bounds)
    run_fit(cb)
    r = cb.result
    assert r.stop_reason == reason and r.target_reached is False
    if reason == "max_steps":
        assert r.steps == 25
    else:  # checked where the time runs out at the measured pace: one step over at most
        assert 3.0 <= r.time_s < 3.0 + 0.2


def test_min_steps_comes_first():
    cb = callback(stop_at_precision=0.5, min_steps=60)  # +/-50 %: met from the start
    run_fit(cb)
    assert cb.result.stop_reason == "target" and 60 <= cb.result.steps < 70


def test_evaluate_and_predict_stop_too():
    x, y = data(2000)
    model = tiny_model()
    cb = callback(stop_at_precision=0.02)
    model.evaluate(x, y, batch_size=4, callbacks=[cb], verbose=0)
    assert cb.results["evaluate"].stop_reason == "target"
    assert cb.results["evaluate"].steps < 150
    cb = callback(stop_at_precision=0.02)
    out = model.predict(x, batch_size=4, callbacks=[cb], verbose=0)
    r = cb.results["predict"]
    assert r.stop_reason == "target" and len(out) == 4 * (r.steps + r.warmup_steps) < 2000


def test_validation_is_measured_but_never_stopped():
    x, y = data(400)
    cb = callback(stop_at_precision=0.5, min_steps=5)
    tiny_model().fit(x, y, batch_size=4, epochs=1, validation_data=data(200), callbacks=[cb],
                     verbose=0)
    assert cb.results["train"].stop_reason == "target"
    validation = cb.results["validation"]
    assert validation.stop_reason is None and validation.steps + validation.warmup_steps == 50


def test_beyond_the_recorded_steps_the_interval_comes_from_the_log_windows():
    exact, sampled = callback(), callback(max_recorded_steps=50)
    run_fit(exact)
    run_fit(sampled)  # the same clock readings, one recorder keeping only 50 steps
    a, b = exact.result, sampled.result
    assert not b.percentiles_exact and a.percentiles_exact
    assert b.images_per_sec == pytest.approx(a.images_per_sec)
    # Blocks of 10 steps (one per progress line) instead of single steps:
    # the same interval, within the noise of estimating a spread.
    assert b.relative_half_width == pytest.approx(a.relative_half_width, rel=0.4)


def test_summary_prints_the_interval_beside_the_classic_plus_minus(capsys):
    cb = callback(stop_at_precision=0.02, verbose=2)
    run_fit(cb)
    out = capsys.readouterr().out
    r = cb.result
    assert f"95% confidence interval: {r.images_per_sec_ci_low:.1f} to " \
           f"{r.images_per_sec_ci_high:.1f} images/sec (+/- " in out
    assert "the +/- above is the standard error of per-step speeds" in out
    assert f"target +/- 2.0%: reached after {r.steps} measured steps; stopped there" in out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_precision": 0}, "`target_precision` must be a share of the figure between "
                                  "0 and 1 (0.01) or a percentage below 100 ('1%'), or None. "
                                  "Received: target_precision=0"),
        ({"stop_at_precision": "ten%"}, "Received: stop_at_precision='ten%'"),
        ({"stop_at_precision": 1.0}, "Received: stop_at_precision=1.0"),
        ({"target_precision": 0.01, "stop_at_precision": 0.02}, "differ: give one"),
        ({"max_time_s": 60}, "bound `stop_at_precision`, which is not set"),
        ({"stop_at_precision": 0.01, "min_steps": 0}, "Received: min_steps=0"),
        ({"stop_at_precision": 0.01, "max_time_s": -1}, "Received: max_time_s=-1"),
    ],
)
def test_bad_precision_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ThroughputCallback(**kwargs)
