"""bottleneck(): the verdict's arithmetic by hand, then real runs whose
figures are checked against clocks of the test's own."""

import json
import time

import numpy as np
import pytest

from kerasbench._bottleneck import text
from kerasbench._bottleneck.result import from_measurements
from kerasbench._bottleneck.verdict import (
    COMPUTE_BOUND,
    HOST_OVERHEAD,
    INPUT_BOUND,
    REMEDIES,
    diagnose,
)
from kerasbench._timing.meter import PhaseMeter

# ------------------------------------------------------------ the verdict by hand


@pytest.mark.parametrize("times,verdict,lost,input_lost,overhead", [
    # pipeline 50 ms, compute 10 ms, fit 51 ms: 41 ms of 51 lost, all to the input
    ((0.050, 0.010, 0.051), INPUT_BOUND, 0.041 / 0.051, 0.041 / 0.051, 0.0),
    # batches made in 4 ms, not overlapped: fit 14.5 = 10 + 4 + 0.5
    ((0.004, 0.010, 0.0145), INPUT_BOUND, 0.0045 / 0.0145, 0.004 / 0.0145, 0.0005 / 0.0145),
    # heavy model: fit 105 ms, compute 100 ms: 4.76 % lost < 10 %
    ((0.001, 0.100, 0.105), COMPUTE_BOUND, 0.005 / 0.105, 0.001 / 0.105, 0.004 / 0.105),
    # fit 30 ms, compute 10, input 1: 20 ms lost, the input explains 1 of it
    ((0.001, 0.010, 0.030), HOST_OVERHEAD, 0.02 / 0.03, 0.001 / 0.03, 0.019 / 0.03),
    # fit faster than the compute measurement: nothing lost
    ((0.001, 0.010, 0.008), COMPUTE_BOUND, 0.0, 0.0, 0.0),
])
def test_verdict_and_shares_by_hand(times, verdict, lost, input_lost, overhead):
    found = diagnose(*times)
    assert found.verdict == verdict
    assert found.lost_share == pytest.approx(lost, abs=1e-12)
    assert found.input_lost_share == pytest.approx(input_lost, abs=1e-12)
    assert found.overhead_lost_share == pytest.approx(overhead, abs=1e-12)


def test_threshold_boundary_is_exclusive():
    # Binary-exact numbers: 1/8 of fit's time lost.
    assert diagnose(0.5, 0.875, 1.0, threshold=0.125).verdict == INPUT_BOUND
    assert diagnose(0.5, 0.875, 1.0, threshold=0.1250001).verdict == COMPUTE_BOUND
    # Input and overhead explain equal parts: the input is named.
    assert diagnose(0.25, 0.5, 1.0).verdict == INPUT_BOUND
    assert diagnose(0.2, 0.5, 1.0).verdict == HOST_OVERHEAD


@pytest.mark.parametrize("args,message", [
    ((0, 1.0, 1.0), "`input_step_s` must be a positive number. Received: input_step_s=0"),
    ((1.0, float("nan"), 1.0), "`compute_step_s` must be a positive number"),
    ((1.0, 1.0, True), "`fit_step_s` must be a positive number. Received: fit_step_s=True"),
    ((1.0, 1.0, 1.0, 1.0), "`threshold` must be a share between 0 and 1"),
])
def test_bad_times_are_refused(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        diagnose(*args)


def _stats(phase, step_s, samples, steps=4):
    """A `ThroughputResult` of ``steps`` steps of ``step_s`` seconds each."""
    meter = PhaseMeter(phase, warmup_steps=1)
    meter.start(0.0)
    for i in range(1, steps + 2):  # one warmup step first
        meter.step(i * step_s, samples=samples)
    return meter.result()


def test_result_figures_and_the_issues_wording():
    # 41 images per batch: 0.1 s per batch is 410 images/sec; the model takes
    # 1,900/sec (41/1900 s per step); fit waits for the data: 0.1025 s.
    found = from_measurements(_stats("input", 0.1, 41), _stats("compute", 41 / 1900, 41),
                              _stats("train", 0.1025, 41), samples_per_batch=41,
                              backend="tensorflow", wall_time_s=3.0)
    assert found.verdict == INPUT_BOUND
    assert found.input_images_per_sec == pytest.approx(410)
    assert found.compute_images_per_sec == pytest.approx(1900)
    assert found.fit_images_per_sec == pytest.approx(400)
    assert found.lost_share == pytest.approx(1 - 400 / 1900)
    assert found.remedies == REMEDIES[INPUT_BOUND]
    assert any(r.startswith("prefetch") for r in found.remedies)
    summary = str(found)
    assert summary.startswith("input-bound: the pipeline delivers 410 images/sec, the model "
                              "could take 1,900; fit runs at 400 (79% of its time lost")
    assert "\n  input pipeline alone    410 images/sec    100.00 ms/step\n" in summary
    assert "\n  model on one batch    1,900 images/sec     21.58 ms/step\n" in summary
    assert "waiting for data 79%, host overhead 0%" in summary
    d = json.loads(found.to_json())
    assert d["verdict"] == "input-bound" and d["phases"]["compute"]["samples"] == 164
    with pytest.raises(AttributeError):
        found.verdict = "compute-bound"


def test_wording_of_the_other_verdicts():
    host = from_measurements(_stats("input", 0.001, 32), _stats("compute", 0.01, 32),
                             _stats("train", 0.03, 32), samples_per_batch=32, backend="jax",
                             wall_time_s=1.0)
    assert text.headline(host) == ("host-overhead: fit runs at 1,067 images/sec, the model "
                                   "could take 3,200 and the pipeline deliver 32,000; 67% of "
                                   "fit's time is lost between steps")
    assert host.remedies[0].startswith("steps_per_execution")
    compute = from_measurements(_stats("input", 0.001, 32), _stats("compute", 0.1, 32),
                                _stats("train", 0.08, 32), samples_per_batch=32,
                                backend="torch", wall_time_s=1.0)
    assert text.headline(compute).startswith("compute-bound: fit runs at 400 images/sec, "
                                             "the model alone at 320 (0% of fit's time lost)")
    assert "fit ran 20% faster per step than the model alone" in compute.notes[0]


# --------------------------------------------------------------- real runs


def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


def _clocked_dataset(batches, delay_s, batch=16):
    """A PyDataset that sleeps ``delay_s`` per batch and writes down, with
    its own clock, when each batch was asked for: ``calls[index]`` lists the
    times, one per pass over the data."""
    import keras

    x = np.ones((batch, 8), "float32")
    y = np.zeros((batch, 4), "float32")
    calls = {}

    class Clocked(keras.utils.PyDataset):
        def __len__(self):
            return batches

        def __getitem__(self, index):
            calls.setdefault(index, []).append(time.perf_counter())
            time.sleep(delay_s)
            return x, y

    return Clocked(), calls


def _producer_rate(calls, which, warmup, total, batch):
    """Images/sec over the measured steps of one pass, on the dataset's clock:
    from the request of batch ``warmup - 1`` to that of batch ``total - 1``.

    ``which`` is 0 for the first pass (the input measurement), -1 for the
    last (fit's). Keras may ask for the first batches again before a pass,
    to learn their shapes: the pass's request of a batch is the latest one
    before its last batch.
    """
    end = calls[total - 1][which]
    start = max(t for t in calls[warmup - 1] if t <= end)
    return batch * (total - warmup) / (end - start)


@pytest.mark.backends
def test_slow_pipeline_is_input_bound_and_its_rates_match_the_datasets_clock(capsys):
    import kerasbench

    warmup, steps, delay_s = 2, 6, 0.1
    model = _tiny_model()
    before = [w.copy() for w in model.get_weights()]
    data, calls = _clocked_dataset(warmup + steps, delay_s)
    found = kerasbench.bottleneck(model, data, steps=steps, warmup_steps=warmup)
    assert found.verdict == "input-bound"
    assert capsys.readouterr().out.startswith("input-bound: the pipeline delivers ")
    assert (found.steps, found.warmup_steps, found.samples_per_batch) == (steps, warmup, 16)
    # The input pass, then fit's.
    assert found.input_images_per_sec == pytest.approx(
        _producer_rate(calls, 0, warmup, warmup + steps, 16), rel=0.05)
    assert found.fit_images_per_sec == pytest.approx(
        _producer_rate(calls, -1, warmup, warmup + steps, 16), rel=0.05)
    # Sleeping never takes less than asked: at most 160 images/sec.
    assert found.input_images_per_sec <= 16 / delay_s * 1.001
    assert found.compute_images_per_sec > 2 * found.input_images_per_sec
    assert found.lost_share > 0.5
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def _heavy_model():
    import keras

    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.SGD(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _own_compute_rate(model, x, y, steps=4):
    """Images/sec of train_on_batch timed by the test (after one untimed step)."""
    import keras

    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * int(x.shape[0]) / (time.perf_counter() - start)


def _compute_bound_attempt(model, x, y, batch, warmup, steps):
    """One bottleneck() run between two timings of the test's own; returns
    what went wrong (an empty list if nothing did) and the result."""
    import kerasbench

    before = _own_compute_rate(model, x[:batch], y[:batch])
    found = kerasbench.bottleneck(model, (x, y), batch_size=batch, steps=steps,
                                  warmup_steps=warmup, verbose=0)
    after = _own_compute_rate(model, x[:batch], y[:batch])
    low, high = min(before, after), max(before, after)
    problems = []
    if found.verdict != "compute-bound" or not found.lost_share < 0.10:
        problems.append(found.summary())
    # The test's own clock, just before and just after (the machine's load
    # may drift between them): the figure lies within that range, +/-5 %.
    if not 0.95 * low <= found.compute_images_per_sec <= 1.05 * high:
        problems.append(f"compute {found.compute_images_per_sec:.1f} images/sec outside "
                        f"[{low:.1f}, {high:.1f}] +/-5 %")
    return problems, found


@pytest.mark.backends
@pytest.mark.slow
def test_heavy_model_on_arrays_is_compute_bound():
    warmup, steps, batch = 2, 6, 16
    rng = np.random.default_rng(0)
    x = rng.random((batch * (warmup + steps), 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, len(x))
    model = _heavy_model()
    # Up to 3 attempts: the model alone and fit are timed one after the other,
    # and on the shared 2-core development VM (load average 4-5 while another
    # benchmark runs) the share of CPU this process gets drifts by 10-30 %
    # within seconds, more than the 10 % the verdict allows. No bias between
    # the two was seen when they are interleaved (fit / train_on_batch
    # 0.99-1.12 on JAX, run to run).
    failures = []
    for _ in range(3):
        problems, found = _compute_bound_attempt(model, x, y, batch, warmup, steps)
        if not problems:
            break
        failures.append(problems)
    else:
        pytest.fail(f"3 attempts failed: {failures}")
    assert found.input_images_per_sec > 5 * found.compute_images_per_sec


# ------------------------------------------------------------ faults, input


def _failing_dataset(batches, fail_at_call):
    """A PyDataset whose ``fail_at_call``-th request (and every later one) fails."""
    import keras

    calls = []

    class Failing(keras.utils.PyDataset):
        def __len__(self):
            return batches

        def __getitem__(self, index):
            calls.append(index)
            if len(calls) >= fail_at_call:
                raise OSError("the disk went away")
            return np.ones((4, 8), "float32"), np.ones((4, 4), "float32")

    return Failing(), calls


@pytest.mark.backends
def test_a_pipeline_failing_during_fit_raises_and_the_weights_come_back():
    import kerasbench

    model = _tiny_model()
    before = [w.copy() for w in model.get_weights()]
    # 6 batches per pass: the input pass asks for 6 to 8 (TensorFlow asks for
    # the first two again to learn their shapes); the 10th request is fit's,
    # after the model alone has trained 6 steps.
    data, calls = _failing_dataset(6, fail_at_call=10)
    with pytest.raises(Exception, match="the disk went away"):
        kerasbench.bottleneck(model, data, steps=4, warmup_steps=2, verbose=0)
    assert len(calls) >= 10
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert int(model.optimizer.iterations.numpy()) == 0


@pytest.mark.backends
def test_data_that_runs_out_is_an_error_naming_what_is_needed():
    import kerasbench

    data, _ = _failing_dataset(3, fail_at_call=10**6)
    with pytest.raises(ValueError, match=r"`data` ran out after 3 batches: bottleneck\(\) "
                                         r"reads warmup_steps \+ steps = 4 batches"):
        kerasbench.bottleneck(_tiny_model(), data, steps=2, warmup_steps=2, verbose=0)


def test_bad_arguments_are_refused():
    import keras

    import kerasbench

    model = _tiny_model()
    x, y = np.ones((8, 8), "float32"), np.ones((8, 4), "float32")
    with pytest.raises(ValueError, match="`model` must be a compiled keras.Model"):
        kerasbench.bottleneck(keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)]),
                              (x, y))
    with pytest.raises(ValueError, match="`steps` must be a positive integer. Received: "
                                         "steps=0"):
        kerasbench.bottleneck(model, (x, y), steps=0)
    with pytest.raises(ValueError, match="`data` as a tuple must be \\(x, y\\)"):
        kerasbench.bottleneck(model, (x, y, y))
    with pytest.raises(ValueError, match="`batch_size` is for \\(x, y\\) arrays only"):
        kerasbench.bottleneck(model, iter([]), batch_size=4)
    with pytest.raises(ValueError, match="`data` must be what you pass to fit"):
        kerasbench.bottleneck(model, None)


# --------------------------------------------------------------------- CLI


@pytest.mark.backends
def test_command_end_to_end(capsys):
    from kerasbench._cli import main

    # LeNet at 8x8, 2 images per batch: a few ms per step, far below the delay.
    argv = ["bottleneck", "lenet", "--batch-size", "2", "--image-size", "8", "--steps", "3",
            "--warmup-steps", "1", "--data-delay-ms", "150"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("kerasbench: bottleneck of lenet, batch 2, 8x8, 1 warmup + 3 steps "
                      "per measurement, data delay 150 ms/batch")
    assert out[1].startswith("input-bound: the pipeline delivers ")
    assert "remedies:" in out
    assert main([*argv, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["verdict"] == "input-bound" and found["steps"] == 3
    assert found["input_images_per_sec"] <= 2 / 0.150 * 1.001


@pytest.mark.parametrize("argv,message", [
    (["bottleneck", "lenet", "--data-delay-ms", "-1"],
     "`data_delay_ms` must be a finite number >= 0. Received: data_delay_ms=-1.0"),
    (["bottleneck", "lenet", "--batch-size", "0"],
     "`batch_size` must be a positive integer. Received: batch_size=0"),
    (["bottleneck", "lenet", "--steps", "x"], "argument --steps: must be an integer, got 'x'"),
    (["bottleneck", "lenett"], "Did you mean 'lenet'?"),
])
def test_command_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    from kerasbench._cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
