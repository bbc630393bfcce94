"""ThroughputCallback never stops training for a problem of its own.

Each fault is injected for real: a clock passed to the callback (stuck,
coarse, set back, failing), an event file the operating system refuses, an
exception raised inside `fit` by another callback, threads, a closed stdout,
counter values from a counter the test controls. A fault gives one warning
and a note in the result; only misuse (one instance in two loops at once)
raises. Backend-neutral: runs under every backend (``-m backends``).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings

import keras
import pytest

from kerasbench import ThroughputCallback
from test_callback import data, observations, quiet, read_scalars, tiny_model

pytestmark = pytest.mark.backends


def ours(caught, text=""):
    """The warnings kerasbench gave (containing ``text``)."""
    return [str(w.message) for w in caught
            if "ThroughputCallback" in str(w.message) and text in str(w.message)]


class FakeClock:
    """Seconds that advance by ``tick`` per reading (tests move ``now`` back)."""

    def __init__(self, tick=0.01):
        self.now, self.tick, self.readings = 100.0, tick, 0

    def __call__(self):
        self.readings += 1
        self.now += self.tick
        return self.now


class CoarseClock:
    """10 ms per reading, shown in whole 25 ms ticks: some steps see no advance."""

    def __init__(self):
        self.ms = 0

    def __call__(self):
        self.ms += 10
        return (self.ms // 25) * 0.025


def fit_recording(cb, n=24, batch=4, epochs=1, **kwargs):
    x, y = data(n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model().fit(x, y, batch_size=batch, epochs=epochs, callbacks=[cb], verbose=0,
                         **kwargs)
    return caught


# ------------------------------------------------------------ 4. the clock


def test_a_stuck_clock_gives_one_warning_and_no_result():
    cb = quiet(clock=lambda: 5.0)
    caught = fit_recording(cb)
    assert len(ours(caught)) == 1 and "unusable reading" in ours(caught)[0]
    assert cb.result is None and cb.meters["train"].steps_done == 6


def test_a_coarse_clock_times_steps_together_and_keeps_every_sample():
    # Readings in whole multiples of 25 ms, 10 ms apart: some steps see no advance.
    cb = quiet(clock=CoarseClock(), log_every=1)
    caught = fit_recording(cb, n=40)
    r = cb.result
    assert len(ours(caught)) == 1
    assert r.steps == 10 and r.samples == 40  # nothing lost
    assert r.observations < 10  # some observations cover two steps
    assert r.time_s == pytest.approx(sum(d for d, _, _ in cb.meters["train"].observations()))
    assert any("the clock did not advance" in n for n in r.notes)


def test_a_clock_set_back_leaves_that_step_out():
    clock = FakeClock(tick=0.01)

    class SetBack(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 3:
                clock.now -= 3600.0  # an adjusted wall clock, one hour back

    x, y = data(24)
    cb = quiet(clock=clock, log_every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model().fit(x, y, batch_size=4, callbacks=[SetBack(), cb], verbose=0)
    r = cb.result
    assert len(ours(caught, "unusable")) == 1
    assert (r.steps, r.samples) == (5, 20) and min(r.step_times_s) > 0
    assert any("1 steps left out of the statistics: the clock went backwards" in n
               for n in r.notes)


def test_a_failing_clock_stops_measuring_not_training():
    clock = FakeClock()

    def failing():
        if clock.readings >= 7:
            raise OSError("clock device gone")
        return clock()

    cb = quiet(clock=failing)
    caught = fit_recording(cb, epochs=2)
    assert len(ours(caught)) == 1 and "OSError: clock device gone" in ours(caught)[0]
    assert any("measuring stopped after" in n for n in cb.result.notes)


# ------------------------------------------------------- 5. event files


def test_log_dir_below_a_file_is_refused_when_made(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=r"`log_dir` cannot be created: .*file\.txt' is a "
                                         r"file, not a directory\. Received: log_dir="):
        ThroughputCallback(log_dir=str(tmp_path / "file.txt" / "logs"))


def test_log_dir_removed_during_fit(tmp_path):
    class Remove(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                shutil.rmtree(tmp_path / "logs")

    x, y = data(8)
    cb = quiet(log_dir=str(tmp_path / "logs"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model().fit(x, y, batch_size=4, epochs=3, validation_data=(x, y),
                         callbacks=[Remove(), cb], verbose=0)
    assert len(ours(caught, "TensorBoard logging stopped")) == 1
    for phase in ("train", "validation"):
        assert cb.results[phase].steps == 6
        assert any("TensorBoard logging stopped" in n for n in cb.results[phase].notes)
    assert not (tmp_path / "logs").exists()  # nothing written after the failure


FULL_DISK = textwrap.dedent(
    """
    import json, resource, signal, sys, warnings
    import keras, numpy as np
    from kerasbench import ThroughputCallback
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails with EFBIG
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    class Full(keras.callbacks.Callback):  # the disk fills after the first epoch
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))

    x, y = np.ones((8, 4), "float32"), np.ones((8, 3), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    cb = ThroughputCallback(warmup_steps=0, verbose=0, log_dir=sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=3, validation_data=(x, y),
                  callbacks=[Full(), cb], verbose=0)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    print(json.dumps({"warnings": [str(w.message) for w in caught],
                      "results": {k: r.to_dict() for k, r in cb.results.items()}}))
    """
)


@pytest.mark.slow
def test_a_full_disk_stops_tensorboard_not_training(tmp_path):
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    stopped = [w for w in got["warnings"] if "TensorBoard logging stopped" in w]
    assert len(stopped) == 1 and "File too large" in stopped[0]
    for phase in ("train", "validation"):
        result = got["results"][phase]
        assert result["steps"] == 6 and result["samples"] == 24
        assert any("TensorBoard logging stopped" in n for n in result["notes"])
    # What reached the disk before it filled: the first epoch, nothing after.
    for phase in ("train", "validation"):
        steps = [s for s, _ in read_scalars(tmp_path / phase)["kerasbench/step_time_s"]]
        assert steps == [1, 2]


# ------------------------------------------------- 6. exceptions in loops


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (Ctrl-C in a notebook) at one training step."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def test_evaluate_after_an_interrupted_fit_is_an_evaluate(tmp_path):
    x, y = data(16)
    cb = quiet(log_dir=str(tmp_path), log_every=1)
    model = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=2, validation_data=(x[:8], y[:8]),
                  callbacks=[cb, Interrupt(epoch=1, batch=1)], verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.evaluate(x[:12], y[:12], batch_size=4, callbacks=[cb], verbose=0)
    assert observations(cb, "evaluate") == [(1, 4)] * 3
    assert cb.results["evaluate"].samples == 12
    assert cb.results["validation"].samples == 8  # epoch 0's, untouched
    train = cb.results["train"]  # what ran before the interrupt: 4 + 2 steps
    assert (train.steps, train.samples) == (6, 24)
    assert any("ended without on_train_end" in n for n in train.notes)
    assert len(ours(caught, "ended without on_train_end")) == 1
    # The interrupted fit's event file was flushed and closed: the steps
    # after epoch 0's flush are in it.
    steps = [s for s, _ in read_scalars(tmp_path / "train")["kerasbench/step_time_s"]]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in read_scalars(tmp_path / "evaluate")["kerasbench/step_time_s"]] \
        == [1, 2, 3]


def test_results_after_an_interrupt_include_the_partial_fit():
    x, y = data(16)
    cb = quiet()
    model = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=1, callbacks=[cb, Interrupt(0, 2)], verbose=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        assert cb.result.steps == 3  # reading it closes the ended fit
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)  # and a new one runs
    assert (cb.result.steps, cb.result.samples) == (2, 16)
    assert not any("ended without" in n for n in cb.result.notes)


def test_an_exception_in_evaluate_then_predict():
    class Fail(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            raise ValueError("a failing callback")

    x, y = data(8)
    cb = quiet()
    model = tiny_model()
    with pytest.raises(ValueError, match="a failing callback"):
        model.evaluate(x, y, batch_size=4, callbacks=[cb, Fail()], verbose=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model.predict(x, batch_size=4, callbacks=[cb], verbose=0)
    assert observations(cb, "predict") == [(1, 4), (1, 4)]
    assert any("ended without on_test_end" in n for n in cb.results["evaluate"].notes)


def test_loops_nested_in_a_fit_are_measured_apart():
    # A user's callback that evaluates and predicts with the same instance at
    # each epoch end: neither is the fit's validation, which still is.
    x, y = data(12)
    cb = quiet()

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.evaluate(x[:6], y[:6], batch_size=3, callbacks=[cb], verbose=0)
            self.model.predict(x[:8], batch_size=4, callbacks=[cb], verbose=0)

    tiny_model().fit(x, y, batch_size=4, epochs=2, validation_data=(x[:4], y[:4]),
                     callbacks=[cb, Probe()], verbose=0)
    assert (cb.result.steps, cb.result.samples) == (6, 24)
    assert observations(cb, "validation") == [(1, 4)] * 2
    assert observations(cb, "evaluate") == [(1, 3)] * 2
    assert observations(cb, "predict") == [(1, 4)] * 2
    assert all("ended without" not in n for r in cb.results.values() for n in r.notes)


# ------------------------------------------------------------ 8. threads


class Gate(keras.callbacks.Callback):
    """Holds a fit at one step until released."""

    def __init__(self):
        super().__init__()
        self.reached, self.release = threading.Event(), threading.Event()

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            self.reached.set()
            self.release.wait(120)


@pytest.mark.parametrize("second", ["evaluate", "predict", "fit"])
def test_a_second_loop_in_another_thread_is_refused(second):
    x, y = data(40)
    cb, gate, errors = quiet(), Gate(), []
    model_a, model_b = tiny_model(), tiny_model()

    def train():
        try:
            model_a.fit(x, y, batch_size=4, epochs=1, validation_data=(x[:8], y[:8]),
                        callbacks=[gate, cb], verbose=0)
        except BaseException as error:  # noqa: BLE001 -- reported below
            errors.append(error)

    thread = threading.Thread(target=train, name="trainer")
    thread.start()
    try:
        assert gate.reached.wait(120)
        with pytest.raises(RuntimeError, match=r"already measuring a `fit` call running "
                                               r"in thread 'trainer'"):
            if second == "predict":
                model_b.predict(x, batch_size=4, callbacks=[cb], verbose=0)
            else:
                getattr(model_b, second)(x, y, batch_size=4, callbacks=[cb], verbose=0)
    finally:
        gate.release.set()
        thread.join(120)
    assert errors == []
    # The running fit was not disturbed: exact counts, a true validation.
    assert (cb.result.steps, cb.result.samples) == (10, 40)
    assert cb.results["validation"].samples == 8
    assert set(cb.results) == {"train", "validation"}


def test_the_same_instance_twice_in_one_loop_is_refused():
    x, y = data(8)
    cb = quiet()
    model = tiny_model()
    with pytest.raises(RuntimeError, match="listed twice"):
        model.fit(x, y, batch_size=4, callbacks=[cb, cb], verbose=0)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, callbacks=[cb], verbose=0)
    assert (cb.result.steps, cb.result.samples) == (2, 8)


# ------------------------------------------------------- output and counters


def test_a_closed_stdout_stops_printing_not_training(monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    cb = ThroughputCallback(warmup_steps=0, log_every=1)
    caught = fit_recording(cb, n=8)
    assert len([w for w in caught if "stopped printing" in str(w.message)]) == 1
    assert cb.result.samples == 8


class Counter:
    """Stands for Keras' sample counter; reading it gives ``value``."""

    def __init__(self):
        self.value, self.error = 0.0, None

    def __float__(self):
        if self.error is not None:
            raise self.error
        return float(self.value)


class FakeModel:
    """What the callback reads of a model, with a counter the test sets."""

    steps_per_execution = 1

    def __init__(self):
        self.counter = Counter()
        self.tracker = keras.metrics.Mean(name="loss")
        self.tracker.count = self.counter
        self.metrics = [self.tracker]
        self.metrics_variables = [self.counter]


class HandLoop:
    """Calls the callback's hooks as Keras' `fit` does, ``batch`` samples a step."""

    def __init__(self, cb, steps=None, batch=32):
        self.cb, self.model, self.batch = cb, FakeModel(), batch
        cb.set_model(self.model)
        cb.set_params({"verbose": 0, "epochs": 1, "steps": steps})

    def fit(self, n, every_step=None):
        cb, counter = self.cb, self.model.counter
        cb.on_train_begin()
        cb.on_epoch_begin(0)
        for i in range(n):
            cb.on_train_batch_begin(i)
            counter.value += self.batch
            cb.on_train_batch_end(i, {})
            if every_step is not None:
                every_step(i)
        cb.on_epoch_end(0)
        cb.on_train_end()


@pytest.mark.parametrize("warmup", [10**6, 100])
def test_memory_stays_bounded_over_100k_steps(warmup):
    # Data of unknown length, and no log line in the whole run: before, every
    # warmup observation (a warmup longer than the run) or every pending one
    # (a short warmup) was held, 100,000 of them.
    cb = quiet(clock=FakeClock(), warmup_steps=warmup, log_every=10**9, max_recorded_steps=500)
    loop, held = HandLoop(cb), []
    loop.fit(100_000, every_step=lambda i: held.append(cb.meters["train"].held_observations))
    assert max(held) <= 2 * 500 + 1000  # recorder + kept warmup + pending (read per 1,000)
    r = cb.result
    assert r.steps + r.warmup_steps == 100_000 and r.samples == 32 * r.steps
    if warmup == 10**6:
        # Half would have been measured; only the last 500 warmup observations were kept.
        assert (r.warmup_steps, r.steps) == (99_500, 500)
        assert any("only the last 500 warmup observations are kept" in n for n in r.notes)
    else:
        assert (r.warmup_steps, r.observations) == (100, 99_900)


@pytest.mark.parametrize("value,said", [(float("nan"), "read nan"), (float("inf"), "read inf")])
def test_a_counter_reading_nan_or_inf(value, said):
    cb = quiet(log_every=1)
    loop = HandLoop(cb)

    def spoil(i):
        if i == 4:
            loop.model.counter.value = value

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.fit(8, every_step=spoil)
    assert len(ours(caught, "cannot count the samples")) == 1
    assert cb.result.samples is None and cb.result.steps == 8
    assert any(said in n for n in cb.result.notes)


def test_a_counter_that_fails_to_read():
    cb = quiet(log_every=1)
    loop = HandLoop(cb)

    def spoil(i):
        if i == 2:
            loop.model.counter.error = RuntimeError("device lost")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.fit(6, every_step=spoil)
    assert len(ours(caught, "RuntimeError: device lost")) == 1
    assert cb.result.steps == 6 and cb.result.samples is None


def test_counts_beyond_float32_precision_go_on_as_steps_times_batch():
    # Steps of 2**20 samples: the float32 counter passes 2**24 at step 16.
    cb = quiet(log_every=1, warmup_steps=2)
    loop = HandLoop(cb, batch=2**20)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.fit(20)
    assert ours(caught) == []
    assert (cb.result.steps, cb.result.samples) == (18, 18 * 2**20)
    assert any(f"counted as steps x {2**20}" in n for n in cb.result.notes)


def test_odd_loop_parameters_are_tolerated():
    cb = quiet()
    loop = HandLoop(cb, steps=2.5)  # not an int: ignored
    loop.model.steps_per_execution = None
    cb.set_params({"verbose": 0, "epochs": float("nan"), "steps": 2.5})
    loop.fit(4)
    assert (cb.result.steps, cb.result.samples) == (4, 128)
