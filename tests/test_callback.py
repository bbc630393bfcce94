"""ThroughputCallback on real Keras loops, on every backend: counts, timing, phases, output.

Backend-neutral inputs only (NumPy arrays, `PyDataset`, Python generators)
and tiny models: CI runs this module under TensorFlow, JAX and PyTorch
(``-m backends``). TensorFlow-only cases (tf.data, tf.distribute, a
GradientTape train step) are in test_callback_tf.py.
"""

import os
import re
import time

import keras
import numpy as np
import pytest

from kerasbench import ThroughputCallback

pytestmark = pytest.mark.backends

FEATURES = 4
BACKEND = keras.backend.backend()
# PyTorch runs one step per execution (Keras refuses more).
MULTI_STEP = BACKEND != "torch"


def tiny_model(steps_per_execution=1, run_eagerly=False):
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse", steps_per_execution=steps_per_execution,
                  run_eagerly=run_eagerly)
    return model


def data(n):
    rng = np.random.default_rng(0)
    return (rng.random((n, FEATURES), dtype=np.float32),
            rng.random((n, 3), dtype=np.float32))


def quiet(**kwargs):
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("warmup_steps", 0)
    return ThroughputCallback(**kwargs)


def observations(cb, phase):
    """(steps, samples) of each observation of the phase's latest run, warmup included."""
    return [(k, s) for _, k, s in cb.meters[phase].observations()]


def read_scalars(path):
    """{tag: [(step, value)]} of the scalar summaries under ``path``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
    acc.Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
    }


# ------------------------------------------------------------ sample counts


def test_arrays_with_partial_last_batch():
    x, y = data(10)
    cb = quiet()
    tiny_model().fit(x, y, batch_size=4, epochs=2, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, 4), (1, 4), (1, 2)] * 2
    assert cb.result.samples == 20 and cb.result.steps == 6


def test_issue_model_two_layers_batch_16():
    # The report: a two-layer Sequential in fit(x, y, batch_size=16) killed
    # training on JAX ('NoneType' object is not callable).
    x, y = data(50)
    model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(8),
                              keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    cb = ThroughputCallback(verbose=0)
    model.fit(x, y, batch_size=16, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, 16), (1, 16), (1, 16), (1, 2)]
    assert cb.result.warmup_steps == 2 and cb.result.samples == 18


def test_warmup_is_excluded_from_counts():
    x, y = data(10)
    cb = quiet(warmup_steps=1)
    tiny_model().fit(x, y, batch_size=4, epochs=2, callbacks=[cb], verbose=0)
    r = cb.result
    assert (r.warmup_steps, r.steps, r.samples) == (1, 5, 16)
    assert len(r.step_times_s) == 5
    assert r.first_step_s == r.warmup_time_s > 0


def test_meters_keep_each_phase_latest_observations():
    x, y = data(10)
    cb = quiet(warmup_steps=1)
    model = tiny_model()
    model.fit(x, y, batch_size=4, epochs=1, validation_data=(x, y), callbacks=[cb], verbose=0)
    assert set(cb.meters) == {"train", "validation"}
    train = cb.meters["train"].observations()
    assert [(k, s) for _, k, s in train] == [(1, 4), (1, 4), (1, 2)]
    assert observations(cb, "validation") == [(1, 4), (1, 4), (1, 2)]
    # The first observation is the warmup, the others are what the statistics used.
    assert cb.result.warmup_time_s == train[0][0]
    assert tuple(d for d, _, _ in train[1:]) == cb.result.step_times_s
    first = cb.meters["train"]
    model.fit(x, y, batch_size=5, epochs=1, callbacks=[cb], verbose=0)
    assert cb.meters["train"] is not first  # replaced by the new run's meter
    assert observations(cb, "train") == [(1, 5), (1, 5)]


class VaryingBatches(keras.utils.PyDataset):
    SIZES = (5, 2, 7, 1)

    def __len__(self):
        return len(self.SIZES)

    def __getitem__(self, i):
        return data(self.SIZES[i])


def test_py_dataset_with_varying_batch_sizes():
    cb = quiet(warmup_steps=2)
    tiny_model().fit(VaryingBatches(), epochs=2, shuffle=False, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, n) for n in VaryingBatches.SIZES] * 2
    assert cb.result.samples == 30 - 5 - 2
    assert cb.result.notes == ()


def test_varying_sizes_without_warmup_keep_totals_and_say_so():
    # Without warmup steps to learn from, the first window is counted as a
    # whole: the total stays exact, the split is approximate, and a note says so.
    cb = quiet(warmup_steps=0)
    tiny_model().fit(VaryingBatches(), epochs=2, shuffle=False, callbacks=[cb], verbose=0)
    assert cb.result.samples == 30
    assert sum(s for _, s in observations(cb, "train")) == 30
    assert observations(cb, "train")[4:] == [(1, n) for n in VaryingBatches.SIZES]
    assert any("batch sizes varied inside epochs" in n for n in cb.result.notes)


def test_python_generator_of_unknown_length():
    def gen():
        while True:
            for n in (3, 6, 2):
                yield data(n)

    cb = quiet(warmup_steps=2)
    tiny_model().fit(gen(), steps_per_epoch=6, epochs=1, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, n) for n in (3, 6, 2, 3, 6, 2)]

    def finite():  # no steps_per_epoch: the length is unknown until it ends
        for n in (4, 4, 4, 1):
            yield data(n)

    cb = quiet(warmup_steps=1)
    tiny_model().fit(finite(), epochs=1, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, 4), (1, 4), (1, 4), (1, 1)]
    assert cb.result.samples == 9


def test_batch_size_argument_overrides_inference():
    x, y = data(8)
    cb = quiet(batch_size=100)
    tiny_model().fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    assert cb.result.samples == 200


if MULTI_STEP:
    @pytest.mark.parametrize("spe", [2, 4])
    def test_steps_per_execution_known_length(spe):
        # 10 samples in batches of 1: executions of `spe` steps, the last shorter.
        x, y = data(10)
        cb = quiet()
        model = tiny_model(steps_per_execution=spe)
        model.fit(x, y, batch_size=1, epochs=2, callbacks=[cb], verbose=0)
        expected = [(min(spe, 10 - i), min(spe, 10 - i)) for i in range(0, 10, spe)]
        assert observations(cb, "train") == expected * 2
        assert cb.result.steps == 20 and cb.result.samples == 20

    def test_steps_per_execution_unknown_length():
        def gen():
            for _ in range(10):
                yield data(1)

        cb = quiet()
        tiny_model(steps_per_execution=4).fit(gen(), epochs=1, callbacks=[cb], verbose=0)
        assert observations(cb, "train") == [(4, 4), (4, 4), (2, 2)]


@pytest.mark.parametrize("spe", [1, 3] if MULTI_STEP else [1])
def test_evaluate_and_predict_count_exactly(spe):
    x, y = data(11)
    cb = quiet()
    model = tiny_model(steps_per_execution=spe)
    model.evaluate(x, y, batch_size=2, callbacks=[cb], verbose=0)
    model.predict(x, batch_size=2, callbacks=[cb], verbose=0)
    # Six batches (2, 2, 2, 2, 2, 1), in executions of `spe` steps.
    expected = {1: [(1, 2)] * 5 + [(1, 1)], 3: [(3, 6), (3, 5)]}[spe]
    assert observations(cb, "evaluate") == expected
    assert observations(cb, "predict") == expected
    assert cb.results["evaluate"].samples == cb.results["predict"].samples == 11
    assert cb.result is None  # no fit yet


# ------------------------------------------------------------------- timing


class Sleep(keras.layers.Layer):
    def __init__(self, seconds, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds

    def call(self, x):
        time.sleep(self.seconds)
        return x


class Clock(keras.callbacks.Callback):
    """Independent clock readings, placed before the callback under test."""

    def __init__(self, sleep_in_validation=0.0, sleep_at_epoch_end=0.0):
        super().__init__()
        self.train_begins, self.train_ends = [], []
        self.sleep_in_validation = sleep_in_validation
        self.sleep_at_epoch_end = sleep_at_epoch_end

    def on_train_batch_begin(self, batch, logs=None):
        self.train_begins.append(time.perf_counter())

    def on_train_batch_end(self, batch, logs=None):
        self.train_ends.append(time.perf_counter())

    def on_test_batch_end(self, batch, logs=None):
        time.sleep(self.sleep_in_validation)

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.sleep_at_epoch_end)


def sleepy_model(seconds):
    model = keras.Sequential([keras.Input((FEATURES,)), Sleep(seconds), keras.layers.Dense(3)])
    model.compile("sgd", "mse", run_eagerly=True)
    return model


def test_durations_add_up_to_the_wall_time_of_the_steps():
    x, y = data(12)
    clock, cb = Clock(), quiet()
    sleepy_model(0.02).fit(x, y, batch_size=2, epochs=1, callbacks=[clock, cb], verbose=0)
    r = cb.result
    wall = clock.train_ends[-1] - clock.train_begins[0]
    assert r.time_s + r.warmup_time_s == pytest.approx(wall, abs=0.005)
    # The same figure from the independent clock: 12 images over that span.
    assert r.images_per_sec == pytest.approx(12 / wall, rel=0.02)
    # Every step sleeps 20 ms: 2 images per >= 20 ms, so at most 100 images/sec.
    assert r.images_per_sec <= 100
    assert r.step_time_min_s >= 0.02


def test_validation_and_epoch_gaps_do_not_leak_into_training_time():
    x, y = data(8)
    clock = Clock(sleep_in_validation=0.3, sleep_at_epoch_end=0.3)
    cb = quiet()
    sleepy_model(0.01).fit(x, y, batch_size=2, epochs=2, validation_data=(x[:4], y[:4]),
                           callbacks=[clock, cb], verbose=0)
    train, val = cb.results["train"], cb.results["validation"]
    assert train.steps == 8 and max(train.step_times_s) < 0.25
    assert train.time_s < 0.25 * 8
    # The sleeps inside validation steps count there, not in training.
    assert val.steps == 4 and min(val.step_times_s) >= 0.3


def test_one_instance_serves_several_loops():
    x, y = data(8)
    cb = quiet()
    model = tiny_model()
    model.fit(x, y, batch_size=2, epochs=2, callbacks=[cb], verbose=0)
    first = cb.result
    model.evaluate(x, y, batch_size=4, callbacks=[cb], verbose=0)
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    assert first.steps == 8
    assert cb.result.steps == 2 and cb.result.samples == 8
    assert cb.results["evaluate"].samples == 8 and "validation" not in cb.results


def test_default_warmup_and_short_run_note():
    x, y = data(40)
    model = tiny_model()
    cb = ThroughputCallback(verbose=0)
    model.fit(x, y, batch_size=2, epochs=1, callbacks=[cb], verbose=0)
    assert cb.result.warmup_steps == 10 and cb.result.steps == 10
    cb = ThroughputCallback(verbose=0)
    model.fit(x[:6], y[:6], batch_size=2, epochs=1, callbacks=[cb], verbose=0)
    assert cb.result.warmup_steps == 1 and cb.result.steps == 2
    assert "warmup shortened from 10 to 1" in cb.result.notes[0]


# ------------------------------------------------------------------- stdout


def test_progress_lines_and_summary(capsys):
    x, y = data(24)
    cb = ThroughputCallback(warmup_steps=2, log_every=4)
    tiny_model().fit(x, y, batch_size=2, epochs=1, callbacks=[cb], verbose=0)
    out = capsys.readouterr().out
    steps = re.findall(r"^train step (\d+), duration = [0-9.]+ s", out, re.M)
    assert steps == ["4", "8", "12"]
    assert re.search(r"^train step 4, duration = [0-9.]+ s, images/sec: [0-9.]+ "
                     r"\+/- [0-9.]+ \(jitter = [0-9.]+\)$", out, re.M)
    r = cb.result
    assert f"kerasbench train: {r.steps} steps, {r.samples} images" in out
    assert f"total images/sec: {r.images_per_sec:.2f}" in out
    assert re.search(r"^Forward-backward across 10 steps, [0-9.]+ \+/- [0-9.]+ sec / batch$",
                     out, re.M)
    assert "step time: p50" in out


def test_warmup_lines_say_so(capsys):
    x, y = data(8)
    cb = ThroughputCallback(warmup_steps=2, log_every=1)
    tiny_model().fit(x, y, batch_size=2, epochs=1, callbacks=[cb], verbose=0)
    out = capsys.readouterr().out
    assert re.search(r"^train step 1, duration = [0-9.]+ s \(warmup\)$", out, re.M)
    assert re.search(r"^train step 3, duration = [0-9.]+ s, images/sec", out, re.M)


def test_verbose_levels(capsys):
    x, y = data(8)
    model = tiny_model()
    model.fit(x, y, batch_size=2, callbacks=[ThroughputCallback(verbose=0)], verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, batch_size=2, callbacks=[ThroughputCallback(verbose=2, log_every=1)],
              verbose=0)
    out = capsys.readouterr().out
    assert "train step" not in out and "total images/sec" in out


def test_lines_do_not_run_into_keras_progress_bar(capsys):
    x, y = data(40)
    cb = ThroughputCallback(warmup_steps=1, log_every=2)
    model = sleepy_model(0.06)  # slower than the bar's 0.05 s redraw interval
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=1)
    out = capsys.readouterr().out
    ours = [line for line in out.split("\n") if "train step" in line]
    assert len(ours) == 5
    for line in ours:
        # Each of our lines starts a line of its own: nothing of the bar before it.
        assert re.match(r"^(\r\x1b\[K)?train step \d+", line), repr(line)


# -------------------------------------------------------------- TensorBoard


def test_tensorboard_scalars_match_the_result(tmp_path):
    x, y = data(10)
    cb = quiet(warmup_steps=2, log_dir=str(tmp_path))
    model = tiny_model()
    model.fit(x, y, batch_size=2, epochs=2, validation_data=(x, y), callbacks=[cb], verbose=0)
    s = read_scalars(tmp_path / "train")
    assert set(s) == {"kerasbench/step_time_s", "kerasbench/step_images_per_sec",
                      "kerasbench/images_per_sec", "kerasbench/achieved_tflops",
                      "kerasbench/mfu"}
    r = cb.result
    # The efficiency figures: one point per epoch end, the last one the result's.
    assert [step for step, _ in s["kerasbench/mfu"]] == [5, 10]
    assert s["kerasbench/mfu"][-1][1] == pytest.approx(r.mfu, rel=1e-6)
    assert s["kerasbench/achieved_tflops"][-1][1] == pytest.approx(r.achieved_tflops, rel=1e-6)
    assert [step for step, _ in s["kerasbench/step_time_s"]] == list(range(1, 11))
    # Per-step values are the durations the statistics used (float32 in the file).
    measured = [v for _, v in s["kerasbench/step_time_s"]][2:]
    assert measured == pytest.approx(list(r.step_times_s), rel=1e-6)
    per_step = [v for _, v in s["kerasbench/step_images_per_sec"]][2:]
    assert per_step == pytest.approx([2 / t for t in r.step_times_s], rel=1e-6)
    running = s["kerasbench/images_per_sec"]
    assert [step for step, _ in running] == list(range(3, 11))
    assert running[-1][1] == pytest.approx(r.images_per_sec, rel=1e-6)
    val = read_scalars(tmp_path / "validation")
    assert [step for step, _ in val["kerasbench/step_time_s"]] == list(range(1, 11))


def test_tensorboard_evaluate_and_predict_and_steps_per_sec(tmp_path):
    x, y = data(6)
    cb = quiet(log_dir=str(tmp_path))
    model = tiny_model()
    model.evaluate(x, y, batch_size=2, callbacks=[cb], verbose=0)
    model.predict(x, batch_size=4, callbacks=[cb], verbose=0)
    ev, pr = read_scalars(tmp_path / "evaluate"), read_scalars(tmp_path / "predict")
    assert [v for _, v in ev["kerasbench/step_images_per_sec"]] == pytest.approx(
        [2 / t for t in cb.results["evaluate"].step_times_s], rel=1e-6)
    assert [step for step, _ in pr["kerasbench/step_time_s"]] == [1, 2]
    assert pr["kerasbench/images_per_sec"][-1][1] == pytest.approx(
        cb.results["predict"].images_per_sec, rel=1e-6)


def test_tensorboard_global_step_across_fits(tmp_path):
    spe = 4 if MULTI_STEP else 1
    x, y = data(10)
    cb = quiet(log_dir=str(tmp_path))
    model = tiny_model(steps_per_execution=spe)
    model.fit(x, y, batch_size=1, epochs=1, callbacks=[cb], verbose=0)
    model.fit(x, y, batch_size=1, epochs=1, callbacks=[cb], verbose=0)
    steps = [step for step, _ in read_scalars(tmp_path / "train")["kerasbench/step_time_s"]]
    expected = {4: [4, 8, 10, 14, 18, 20], 1: list(range(1, 21))}[spe]
    assert steps == expected


def test_no_event_file_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "tb"
    cb = quiet(log_dir=str(target))
    assert not target.exists()  # constructing writes nothing
    x, y = data(4)
    model = tiny_model()
    model.fit(x, y, batch_size=2, callbacks=[quiet()], verbose=0)
    assert os.listdir(tmp_path) == []  # no log_dir: no files anywhere
    model.fit(x, y, batch_size=2, callbacks=[cb], verbose=0)
    assert len(os.listdir(target / "train")) == 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"batch_size": 0}, ValueError,
         "`batch_size` must be a positive integer or None. Received: batch_size=0"),
        ({"batch_size": 2.5}, ValueError, "Received: batch_size=2.5"),
        ({"warmup_steps": -1}, ValueError,
         "`warmup_steps` must be a non-negative integer. Received: warmup_steps=-1"),
        ({"warmup_steps": 1.5}, ValueError, "Received: warmup_steps=1.5"),
        ({"log_every": 0}, ValueError, "`log_every` must be a positive integer. Received: log_every=0"),
        ({"log_every": "10"}, ValueError, "Received: log_every='10'"),
        ({"batch_size": True}, ValueError, "Received: batch_size=True"),
        ({"warmup_steps": float("nan")}, ValueError, "Received: warmup_steps=nan"),
        ({"log_every": np.float64(10)}, ValueError, "Received: log_every="),
        ({"verbose": 3}, ValueError,
         "`verbose` must be an integer from 0 to 2. Received: verbose=3"),
        ({"verbose": 1.0}, ValueError, "Received: verbose=1.0"),
        ({"verbose": True}, ValueError, "Received: verbose=True"),
        ({"max_recorded_steps": 0}, ValueError, "Received: max_recorded_steps=0"),
        ({"log_dir": 5}, ValueError,
         "`log_dir` must be a non-empty path or None. Received: log_dir=5"),
        ({"log_dir": ""}, ValueError, "Received: log_dir=''"),
        ({"clock": 1.5}, ValueError,
         "`clock` must be a function returning seconds, such as time.perf_counter. "
         "Received: clock=1.5"),
        ({"log_every_n": 5}, TypeError,
         "ThroughputCallback() got an unexpected keyword argument 'log_every_n'. "
         "Did you mean 'log_every'?"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        ThroughputCallback(**kwargs)


def test_numpy_integers_are_accepted_as_plain_ints(tmp_path):
    cb = ThroughputCallback(batch_size=np.int64(16), warmup_steps=np.int32(1),
                            log_every=np.int64(5), verbose=np.int8(0),
                            max_recorded_steps=np.uint16(100), log_dir=tmp_path)
    assert (cb.batch_size, cb.warmup_steps, cb.log_every, cb.verbose,
            cb.max_recorded_steps) == (16, 1, 5, 0, 100)
    assert type(cb.batch_size) is int and type(cb.verbose) is int
    assert cb.log_dir == str(tmp_path)  # a PathLike becomes its string
    x, y = data(8)
    tiny_model().fit(x, y, batch_size=4, epochs=1, callbacks=[cb], verbose=0)
    assert cb.result.samples == 16 and type(cb.result.samples) is int


def test_log_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="is an existing file. Received: log_dir="):
        ThroughputCallback(log_dir=str(f))
