"""FLOPs, achieved TFLOP/s and MFU that ThroughputCallback finds by itself in
a real `fit`/`predict`, the epoch-log figures Keras' loggers record, and
what happens when counting cannot or must not happen.

Hand count (a multiply-add is 2 FLOPs): Dense(100 -> 10) forward is
2 x 100 x 10 = 2,000 FLOPs plus 10 bias additions (TensorFlow's profiler and
XLA count them; PyTorch's counter counts matrix products only). A training
step adds the weight gradient, another 2 x 100 x 10 per sample (no input
gradient for the first layer), plus the loss and SGD update: PyTorch counts
exactly 4,000; TensorFlow and XLA a little more.
"""

import csv
import dataclasses
import json
import math
import os
import types
import warnings

import keras
import numpy as np
import pytest

import kerasbench
from kerasbench._callback import efficiency
from kerasbench._efficiency.energy import EnergySources
from kerasbench._efficiency.flops import count_flops
from kerasbench._timing.throughput import ThroughputResult

BACKEND = keras.backend.backend()
BIAS = 0 if BACKEND == "torch" else 10
FORWARD = 2 * 100 * 10 + BIAS
METHODS = {"tensorflow": "tensorflow-profiler", "jax": "xla-cost-analysis",
           "torch": "torch-flop-counter"}


def dense():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(10)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data(n=64):
    return np.zeros((n, 100), "float32"), np.zeros((n,), "int32")


def fit(model, cb, *extra, epochs=2, **kwargs):
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0,
                            callbacks=[cb, *extra], **kwargs)
    return history, [str(w.message) for w in caught if "kerasbench" in str(w.message)
                     or "ThroughputCallback" in str(w.message)]


@pytest.mark.backends
def test_fit_and_predict_count_flops_and_mfu_by_themselves():
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0)
    fit(model, cb)
    r = cb.result
    train = count_flops(model, np.zeros((8, 100), "float32")).flops_per_sample
    assert r.flops_method == METHODS[BACKEND]
    assert r.flops_per_sample == train
    if BACKEND == "torch":
        assert train == 4000  # forward 2,000 + weight gradient 2,000
    else:
        assert 2 * 2000 + BIAS < train < 2 * 2000 + BIAS + 400  # + loss and SGD update
    assert r.achieved_tflops == pytest.approx(train * r.images_per_sec / 1e12)
    peak, estimate, _ = efficiency.lookup_peak(None, "cpu", "fp32")
    assert r.peak_tflops == peak and r.peak_is_estimate is estimate is True
    assert r.mfu == pytest.approx(r.achieved_tflops / peak)
    assert r.peak_memory_bytes > 0 and r.memory_kind == "host"  # read around the phase
    assert r.energy_source == "rapl"  # the model runs on the CPU
    if not os.path.isdir("/sys/class/powercap"):  # this VM: no RAPL, so unknown and why
        assert (r.energy_j, r.joules_per_image, r.images_per_sec_per_watt) == (None,) * 3
        assert r.energy_note == "/sys/class/powercap is absent (a virtual machine usually " \
                                "hides it)"
    else:  # a machine with RAPL: a figure, or the reason (root only since Linux 5.10)
        assert (r.energy_j is None) == (r.energy_note is not None)
    model.predict(data()[0], batch_size=16, callbacks=[cb], verbose=0)
    p = cb.results["predict"]
    assert p.flops_per_sample == FORWARD and p.flops_method == METHODS[BACKEND]
    assert p.mfu == pytest.approx(FORWARD * p.images_per_sec / 1e12 / peak)
    back = ThroughputResult.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p and back.mfu == p.mfu


@pytest.mark.backends
def test_counted_once_per_model_and_pass(monkeypatch):
    calls = []
    real = efficiency.count_flops

    def counting(model, inputs, training_pass):
        calls.append((training_pass, keras.tree.flatten(inputs)[0].shape))
        return real(model, inputs, training_pass=training_pass)

    monkeypatch.setattr(efficiency, "count_flops", counting)
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=1, verbose=0)
    fit(model, cb, epochs=3, validation_split=0.25)
    model.predict(data()[0], batch_size=8, callbacks=[cb], verbose=0)
    model.evaluate(*data(), batch_size=8, callbacks=[cb], verbose=0)
    assert calls == [("train", (8, 100)), ("forward", (8, 100))]
    assert cb.results["validation"].flops_per_sample == FORWARD
    assert cb.results["evaluate"].flops_per_sample == FORWARD


@pytest.mark.backends
def test_override_and_switch_off():
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0, flops_per_sample=1e6)
    fit(model, cb, epochs=1)
    assert cb.result.flops_per_sample == 1e6 and cb.result.flops_method == "given"
    assert cb.result.achieved_tflops == pytest.approx(1e6 * cb.result.images_per_sec / 1e12)
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0,
                                       flops_per_sample={"forward": 5.0})
    fit(model, cb, epochs=1)
    model.predict(data()[0], callbacks=[cb], verbose=0)
    assert cb.result.flops_method == METHODS[BACKEND]  # train: counted
    assert cb.results["predict"].flops_per_sample == 5.0
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0, count_flops=False)
    history, _ = fit(model, cb, epochs=1)
    r = cb.result
    assert r.flops_per_sample is r.flops_method is r.achieved_tflops is r.mfu is None
    assert "mfu" not in history.history and "images_per_sec" in history.history


@pytest.mark.parametrize("value", [0, -1.0, "many", {"backward": 1.0}, {"train": 0}, True])
def test_bad_flops_per_sample_is_refused(value):
    with pytest.raises(ValueError, match="flops_per_sample"):
        kerasbench.ThroughputCallback(flops_per_sample=value)


@pytest.mark.parametrize("name", ["count_flops", "log_figures"])
def test_bad_switches_are_refused(name):
    with pytest.raises(ValueError, match=f"Received: {name}='yes'"):
        kerasbench.ThroughputCallback(**{name: "yes"})


def test_bad_device_report_is_refused():
    with pytest.raises(ValueError, match="device_report"):
        kerasbench.ThroughputCallback(device_report="cpu")


class Opaque(keras.Model):
    """A model whose ``call`` reads a value: it runs, but cannot be traced."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(10)

    def call(self, x, training=False):
        if keras.ops.convert_to_numpy(keras.ops.sum(x)).item() > 1e30:
            x = x * 2
        return self.dense(x)


class BuiltOpaque(Opaque):
    def build(self, input_shape):  # Keras then records the shape it was built with
        self.dense.build(input_shape)


@pytest.mark.backends
@pytest.mark.parametrize("kind", [Opaque, BuiltOpaque])
def test_a_model_that_cannot_be_counted_says_so(kind):
    model = kind()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=BACKEND != "jax", jit_compile=False)
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0)
    model.predict(data()[0], batch_size=8, callbacks=[cb], verbose=0)
    p = cb.results["predict"]
    if BACKEND == "torch":  # PyTorch's counter runs it eagerly (and Keras built it)
        assert p.flops_per_sample == 2000
        return
    assert p.flops_per_sample is None and p.flops_method == METHODS[BACKEND]
    # Without `build`, Keras keeps no input shape here: nothing to count on.
    expected = "counting failed" if kind is BuiltOpaque else "input shape is unknown"
    assert expected in p.flops_note
    assert p.achieved_tflops is None and p.mfu is None
    assert "FLOPs: not counted" in kerasbench._timing.text.format_summary(p)


@pytest.mark.backends
def test_a_failure_while_counting_never_reaches_training(monkeypatch):
    def broken(model, inputs, training_pass):
        raise RuntimeError("injected counting fault")

    monkeypatch.setattr(efficiency, "count_flops", broken)
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0)
    history, said = fit(model, cb)
    assert len(history.history["loss"]) == 2  # training went on
    assert len(said) == 1 and "injected counting fault" in said[0]
    r = cb.result
    assert r.images_per_sec > 0 and r.flops_per_sample is None
    assert any("injected counting fault" in n for n in r.notes)
    assert "images_per_sec" in history.history  # the other figures still reach the logs


@pytest.mark.backends
def test_csv_logger_after_the_callback_records_the_figures(tmp_path):
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0)
    path = tmp_path / "log.csv"
    history, said = fit(model, cb, keras.callbacks.CSVLogger(str(path)), epochs=3,
                        validation_split=0.25)
    assert said == []
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 3
    for key in ("images_per_sec", "step_time_s", "mfu", "val_images_per_sec",
                "val_step_time_s", "val_mfu"):
        assert key in rows[0], key
    last, r = rows[-1], cb.result
    # The figures over the measured steps so far: the last epoch's are the result's.
    assert float(last["images_per_sec"]) == pytest.approx(r.images_per_sec)
    assert float(last["step_time_s"]) == pytest.approx(r.step_time_s)
    assert float(last["mfu"]) == pytest.approx(r.mfu)
    assert history.history["images_per_sec"][-1] == pytest.approx(r.images_per_sec)
    v = cb.results["validation"]
    assert float(last["val_images_per_sec"]) == pytest.approx(v.images_per_sec)
    # Validation's 2 warmup steps take its whole first epoch: nothing measured yet.
    assert math.isnan(float(rows[0]["val_images_per_sec"]))


@pytest.mark.backends
def test_a_logger_before_the_callback_gets_a_warning_once(tmp_path):
    model = dense()
    cb = kerasbench.ThroughputCallback(warmup_steps=2, verbose=0)
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[logger, cb])
    said = [str(w.message) for w in caught if "ThroughputCallback comes after" in
            str(w.message)]
    assert len(said) == 1 and "CSVLogger" in said[0]
    header = (tmp_path / "log.csv").read_text().splitlines()[0]
    assert "images_per_sec" not in header  # what the warning is about
    quiet = kerasbench.ThroughputCallback(verbose=0, log_figures=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[logger, quiet])
    assert not [w for w in caught if "comes after" in str(w.message)]


def test_which_callbacks_are_loggers():
    cbs = keras.callbacks

    class WandbMetricsLogger(cbs.Callback):
        pass

    assert efficiency.is_logger(cbs.CSVLogger("x.csv"))
    assert efficiency.is_logger(cbs.TensorBoard("logs"))
    assert efficiency.is_logger(cbs.History())
    assert efficiency.is_logger(WandbMetricsLogger())
    assert not efficiency.is_logger(cbs.EarlyStopping())
    assert not efficiency.is_logger(cbs.ProgbarLogger())


def test_the_peak_follows_the_device_report_and_tf32():
    report = kerasbench.DeviceReport.collect(probe_gpus=False)
    d = report.to_dict()
    d["accelerators"] = [{"name": "gpu:0", "model": "NVIDIA A100", "compute_capability": "8.0",
                          "peak": {"fp32": 19.5, "tf32": 156.0, "fp16": 312.0,
                                   "bf16": 312.0, "estimate": False}}]
    d["backend"] = "tensorflow"
    d["software"]["tensor_float_32"] = True
    gpu = kerasbench.DeviceReport.from_dict(d)
    assert efficiency.lookup_peak(gpu, "gpu:0", "bf16") == (312.0, False, None)
    peak, estimate, note = efficiency.lookup_peak(gpu, "gpu:0", "fp32")
    assert (peak, estimate) == (156.0, False) and "TF32" in note
    d["software"]["tensor_float_32"] = False
    off = kerasbench.DeviceReport.from_dict(d)
    assert efficiency.lookup_peak(off, "gpu:0", "fp32")[:2] == (19.5, False)
    assert efficiency.lookup_peak(off, "gpu:0", "fp16") == (312.0, False, None)
    peak, _, note = efficiency.lookup_peak(off, "gpu:1", "fp32")
    assert peak is None and "no fp32 peak for gpu:1" in note
    cpu = efficiency.lookup_peak(report, "cpu", "fp32")
    assert cpu[:2] == (report.host.peak["fp32"], True)


def test_summary_lines():
    from kerasbench._timing.text import efficiency_lines

    fields = {f.name for f in dataclasses.fields(ThroughputResult)}
    r = ThroughputResult.from_dict({
        **dict.fromkeys(fields), "phase": "train", "step_times_s": [], "notes": [],
        "flops_per_sample": 23.4e9, "flops_method": "tensorflow-profiler",
        "achieved_tflops": 0.0123, "peak_tflops": 0.166, "peak_is_estimate": True,
        "mfu": 0.0123 / 0.166})
    assert efficiency_lines(r) == [
        "FLOPs per image: 23.4 GFLOPs (tensorflow-profiler); achieved 0.0123 TFLOP/s, "
        "MFU 7.4% of an estimated peak of 0.166 TFLOP/s"]
    none = dataclasses.replace(r, flops_per_sample=None, flops_note="no counter",
                               achieved_tflops=None, mfu=None)
    assert efficiency_lines(none) == ["FLOPs: not counted (tensorflow-profiler: no counter)"]
    off = dataclasses.replace(r, flops_method=None, flops_per_sample=None)
    assert efficiency_lines(off) == []


# -------------------------------------------------------- energy, peak memory

UJ = 1_000_000  # microjoules per joule


class Burn(keras.callbacks.Callback):
    """Drives a crafted powercap tree as a CPU would: each training step adds
    3 J to package 0 and 2 J to package 1, each validation step 1 J to each,
    and each epoch's end 7 J to package 0 (outside every measured step); the
    core and psys domains move too, and must not count. Package 0 wraps at
    50 J. During epoch 2's training it also holds 128 MiB for one step."""

    def __init__(self, root):
        super().__init__()
        self.root, self.epoch = root, 0
        self.uj = {"intel-rapl:0": 30 * UJ, "intel-rapl:1": 0, "intel-rapl:0:0": 0,
                   "intel-rapl:2": 0}
        self.top = {"intel-rapl:0": 50 * UJ}
        for name, label in (("intel-rapl:0", "package-0"), ("intel-rapl:1", "package-1"),
                            ("intel-rapl:0:0", "core"), ("intel-rapl:2", "psys")):
            d = root / name
            d.mkdir(parents=True)
            (d / "name").write_text(label + "\n")
            (d / "max_energy_range_uj").write_text(f"{self.top.get(name, 10**12)}\n")
            self.add(name, 0)

    def add(self, name, joules):
        self.uj[name] = (self.uj[name] + joules * UJ) % self.top.get(name, 10**12)
        (self.root / name / "energy_uj").write_text(f"{self.uj[name]}\n")

    def on_train_batch_end(self, batch, logs=None):
        self.add("intel-rapl:0", 3)
        self.add("intel-rapl:1", 2)
        self.add("intel-rapl:0:0", 100)
        self.add("intel-rapl:2", 100)
        if self.epoch == 1 and batch == 3:
            block = np.ones(128 << 20, np.uint8)  # resident while it lives
            assert block.sum() == 128 << 20

    def on_test_batch_end(self, batch, logs=None):
        self.add("intel-rapl:0", 1)
        self.add("intel-rapl:1", 1)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = epoch + 1
        self.add("intel-rapl:0", 7)


def test_energy_and_peak_memory_over_a_real_fit_with_validation(tmp_path, capsys):
    """Hand count: 80 samples, 20 % for validation, batch 8, 3 epochs: 8
    training steps and 2 validation steps per epoch. Warmup 2: training
    measures 24 - 2 = 22 steps (176 images) at 5 J each, 110 J, so 0.625
    J/image and 1.6 images/sec per watt; validation measures epochs 2 and 3
    (its first 2 steps are its warmup), 4 steps (32 images) at 2 J, 8 J. The
    epoch ends' 7 J, the subdomains and psys, validation within training, and
    package 0's wrap (inside epoch 1's measured steps) change nothing."""
    burn = Burn(tmp_path / "powercap")
    cb = kerasbench.ThroughputCallback(
        warmup_steps=2, verbose=2, count_flops=False,
        energy_sources=EnergySources(powercap_root=str(tmp_path / "powercap")))
    x, y = data(80)
    dense().fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0,
                callbacks=[cb, burn])
    train, validation = cb.results["train"], cb.results["validation"]
    assert (train.steps, train.samples, validation.steps, validation.samples) == \
        (22, 176, 4, 32)
    assert (train.energy_j, train.energy_source, train.energy_note) == \
        (pytest.approx(110.0), "rapl", None)
    assert train.joules_per_image == pytest.approx(110 / 176) == 0.625
    assert train.images_per_sec_per_watt == pytest.approx(1.6)
    assert validation.energy_j == pytest.approx(8.0)
    assert validation.joules_per_image == pytest.approx(0.25)
    assert train.to_dict()["energy_j"] == train.energy_j
    out = capsys.readouterr()
    assert "energy: 110 J, 0.625 J/image, 1.6 images/sec per watt (rapl)" in out.out + out.err

    # Peak memory: training held 128 MiB more in epoch 2; validation's spans
    # (epochs 1, 2 and 3) leave that training out.
    assert train.memory_kind == validation.memory_kind == "host"
    assert train.peak_memory_bytes - validation.peak_memory_bytes > 100 << 20


def test_energy_follows_a_warmup_cut_to_half_the_phase(tmp_path):
    burn = Burn(tmp_path / "powercap")
    cb = kerasbench.ThroughputCallback(
        warmup_steps=50, verbose=0, count_flops=False,
        energy_sources=EnergySources(powercap_root=str(tmp_path / "powercap")))
    fit(dense(), cb, burn, epochs=1)  # 8 steps: the warmup is cut to 4
    r = cb.result
    assert (r.steps, r.warmup_steps, r.samples) == (4, 4, 32)
    assert r.energy_j == pytest.approx(20.0) and r.joules_per_image == pytest.approx(20 / 32)


def test_energy_that_misses_measured_steps_is_unknown():
    """A phase of unknown length shorter than twice its warmup is re-split
    when it ends: the counter started later than its measured steps."""
    def gap(first_step, steps=6, warmup=3, broken=False, stale=False):
        energy = types.SimpleNamespace(first_step=first_step, stale=stale)
        result = types.SimpleNamespace(steps=steps, warmup_steps=warmup)
        return efficiency.energy_gap(types.SimpleNamespace(broken=broken), energy, result)

    assert gap(3) is None
    assert gap(10) == ("the energy counter started after step 10, but the measured steps "
                       "start after step 3 (the warmup was shortened when the phase ended "
                       "early)")
    assert gap(None, steps=0) == "no measured steps"
    assert gap(3, broken=True) == "measuring stopped early (see the notes)"
    assert gap(3, stale=True).startswith("an exception ended the loop while the counter ran")


def test_bad_energy_sources_are_refused():
    with pytest.raises(ValueError, match=r"`energy_sources` must be .*EnergySources or None\. "
                                         r"Received: energy_sources='/sys'"):
        kerasbench.ThroughputCallback(energy_sources="/sys")
