"""The efficiency figures `ThroughputCallback` adds by itself: FLOPs per
sample, achieved TFLOP/s and MFU, on each phase's result, in Keras' epoch
logs and in TensorBoard; and each phase's peak memory and energy.

Everything here runs outside the timed steps: at an epoch's end (Keras has
paused the loop; the phase's clock is paused too) or at a phase's end. FLOPs
are counted once per model and pass (``"train"``: forward, backward and
update; ``"forward"``: validation, evaluate, predict) by the backend's own
cost analysis (`kerasbench._efficiency.flops`), on zeros shaped like the
model's input with the batch size seen; the device's peak comes from the
device report's peak table (a GPU's datasheet, or the CPU estimate), looked
up once per process. The formulas are in `kerasbench._efficiency.figures`.

Peak memory (`kerasbench._efficiency.memory.PeakMemory`) covers a phase's
whole span from its begin to its end; validation inside `fit` is read in
spans, one per epoch's validation, so training between them never counts.
Energy (`kerasbench._efficiency.energy.EnergyMeter`) covers the measured
steps only: the counter is found when the phase begins, counts from the
start of the first step after warmup, pauses at each epoch's end (for the
training phase already when validation begins) and counts again at the next
step's start, before that step's clock reading.

Nothing here raises into training: `Efficiency` returns notes, and the
callback's helpers below turn any error into one warning and a note.
"""

from __future__ import annotations

import time
import weakref

import keras
import numpy as np

from kerasbench import _validate
from kerasbench._efficiency import figures as _figures
from kerasbench._efficiency.energy import EnergyMeter, EnergyReading, EnergySources
from kerasbench._efficiency.flops import FlopCount, count_flops

#: The pass each phase runs.
PASSES = {"train": "train", "validation": "forward", "evaluate": "forward",
          "predict": "forward"}
#: `ThroughputResult` fields set here, in order.
FIELDS = ("flops_per_sample", "flops_method", "flops_note", "achieved_tflops",
          "peak_tflops", "peak_is_estimate", "mfu")
#: Figures written to TensorBoard once per epoch and phase (``kerasbench/<name>``).
TB_TAGS = ("achieved_tflops", "mfu")
#: Keras dtype policies' compute dtypes, as kerasbench names the precision.
PRECISIONS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
GIVEN = "given"
#: Seconds between readings of a counting energy meter within an epoch: a
#: RAPL counter wraps after about 262 kJ (22 minutes at 200 W), and one wrap
#: between readings is undone, two are not.
ENERGY_POLL_S = 60.0
_NAN = float("nan")
# DeviceReport.collect() once per process, by whether GPUs were probed (40 ms
# on the development VM without GPUs; the driver probes add to it with them).
_REPORTS = {}


def flops_argument(value):
    """Validates ``flops_per_sample``: ``None``, a number (every pass) or a
    dict by pass (``{"train": ..., "forward": ...}``). Returns a dict by pass."""
    if value is None:
        return {}
    if isinstance(value, dict):
        out = {}
        for key, flops in value.items():
            _validate.choice("flops_per_sample key", key, tuple(sorted(set(PASSES.values()))))
            out[key] = _validate.number(f"flops_per_sample[{key!r}]", flops, positive=True)
        return out
    try:
        flops = _validate.number("flops_per_sample", value, positive=True)
    except ValueError:
        raise ValueError("`flops_per_sample` must be a positive number (FLOPs per sample of "
                         "every phase), a dict of them by pass ({'train': ..., 'forward': "
                         f"...}}) or None. Received: flops_per_sample={value!r}") from None
    return {p: flops for p in set(PASSES.values())}


class Efficiency:
    """FLOP counts and device peaks of one callback, each found once.

    Args:
        flops_per_sample: The dict of `flops_argument`: given counts by pass.
        count: Whether to count the passes not given.
        device_report: A `DeviceReport` to take peaks from, or ``None`` to
            collect one (once per process) when a peak is first needed.
    """

    def __init__(self, flops_per_sample, count=True, device_report=None):
        self.given = flops_per_sample
        self.count = count
        self.device_report = device_report
        self._counts = weakref.WeakKeyDictionary()  # model -> {pass: FlopCount}
        self._peaks = {}  # (device, precision) -> (tflops, is_estimate, note)

    def flops(self, model, pass_, batch):
        """The `FlopCount` of ``pass_`` (counted the first time), or ``None``
        when counting is off and no count was given."""
        if pass_ in self.given:
            return FlopCount(self.given[pass_], GIVEN)
        if not self.count:
            return None
        counts = self._counts.setdefault(model, {})
        if pass_ not in counts:
            try:
                counts[pass_] = count_once(model, pass_, batch)
            except Exception as error:  # kept, so it is not tried again; the caller warns
                counts[pass_] = FlopCount(None, method_name(), f"counting failed: "
                                          f"{type(error).__name__}: {error}")
                raise
        return counts[pass_]

    def counted(self, model, pass_):
        """The count of ``pass_`` if already found (never counts)."""
        if pass_ in self.given:
            return FlopCount(self.given[pass_], GIVEN)
        return self._counts.get(model, {}).get(pass_)

    def peak(self, model):
        """``(peak TFLOP/s, is_estimate, note)`` of the device ``model``'s
        weights are on at its compute precision; the peak ``None`` (and a
        note saying why) when unknown."""
        device, precision = model_device(model), precision_of(model)
        key = (device, precision)
        if key not in self._peaks:
            self._peaks[key] = lookup_peak(self.device_report, device, precision, model)
        return self._peaks[key]

    def figures(self, model, phase, batch, images_per_sec):
        """The `FIELDS` of a phase and a note (or ``None``) for its result."""
        out = dict.fromkeys(FIELDS)
        count = self.flops(model, PASSES[phase], batch)
        if count is None:
            return out, None
        out.update(flops_per_sample=count.flops_per_sample, flops_method=count.method,
                   flops_note=count.note)
        if count.flops_per_sample is None or images_per_sec is None:
            return out, None
        achieved = _figures.achieved_tflops(count.flops_per_sample, images_per_sec)
        peak, estimate, note = self.peak(model)
        out.update(achieved_tflops=achieved, peak_tflops=peak, peak_is_estimate=estimate,
                   mfu=_figures.mfu(achieved, peak))
        return out, note


def count_once(model, pass_, batch):
    """Counts ``pass_`` of ``model`` on zeros like its input (``batch`` of them).

    The model's state is left as it was: on PyTorch counting runs one forward
    and backward pass, so the model's non-trainable variables (normalisation
    statistics, seed generators) are restored afterwards.
    """
    inputs, why = example_inputs(model, batch)
    if inputs is None:
        return FlopCount(None, method_name(), why)
    saved = []
    if keras.backend.backend() == "torch":  # the others only trace the model
        saved = [(v, keras.ops.copy(v.value)) for v in model.non_trainable_variables]
    try:
        return count_flops(model, inputs, training_pass=pass_)
    finally:
        for variable, value in saved:
            variable.assign(value)


def method_name():
    from kerasbench._efficiency.flops import _METHODS

    backend = keras.backend.backend()
    return _METHODS.get(backend, backend)


def example_inputs(model, batch):
    """Zeros shaped like one batch of ``model``'s input, or ``(None, why)``.

    The shape comes from the model's `keras.Input` (functional and
    `Sequential` models) or from the shapes it was built with (subclassed
    models), the batch dimension set to ``batch``.
    """
    struct = getattr(model, "_inputs_struct", None)
    if struct is None:
        try:
            tensors = model.inputs
        except AttributeError:
            tensors = None
        struct = tensors[0] if tensors and len(tensors) == 1 else tensors
    if struct is None:
        shapes = getattr(model, "_build_shapes_dict", None) or {}
        shape = next(iter(shapes.values()), None)
        try:
            shape = tuple(shape)  # a tf.TensorShape on TensorFlow
        except TypeError:
            shape = None
        if shape is None or not all(
                isinstance(d, int) or d is None for d in shape) or not shape:
            return None, "the model's input shape is unknown (a model that was never built?)"
        struct = keras.KerasTensor(tuple(shape), dtype="float32")
    leaves = keras.tree.flatten(struct)
    if any(d is None for t in leaves for d in tuple(t.shape)[1:]):
        return None, ("the model's input has dimensions of unknown size; pass "
                      "flops_per_sample= to ThroughputCallback")

    def zeros(tensor):
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        shape = (batch, *tuple(tensor.shape)[1:])
        try:
            return np.zeros(shape, dtype=dtype)
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return keras.ops.zeros(shape, dtype=dtype)

    return keras.tree.map_structure(zeros, struct), None


def samples_per_step(st):
    """A phase's samples per step: the callback's ``batch_size``, else the
    largest count seen."""
    return st.batch_size or st.meter.batch_size


def count_batch(model, samples_per_step):
    """The batch to count on: one replica's share of a step's samples (a
    distribution strategy splits a step's batch), at least 1.

    tf.distribute: the strategy's replicas. `keras.distribution` (JAX): the
    devices along the batch axis that this process feeds (its samples per
    step cover those). Counting then runs on one replica's batch with no
    distribution set (see `kerasbench._efficiency.flops`).
    """
    batch = int(samples_per_step or 1)
    strategy = getattr(model, "distribute_strategy", None)
    replicas = getattr(strategy, "num_replicas_in_sync", 1) or 1
    if keras.backend.backend() == "jax":
        replicas = _local_jax_replicas()
    if replicas > 1 and batch % replicas == 0:
        batch //= replicas
    return max(1, batch)


def _local_jax_replicas():
    """Devices along the batch axis of the current `keras.distribution` that
    this process feeds (1 without a distribution)."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    import jax

    from kerasbench._callback.replicas import jax_replicas

    return max(1, jax_replicas(distribution) // max(1, jax.process_count()))


def precision_of(model):
    """``"fp32"``, ``"fp16"`` or ``"bf16"`` from the model's dtype policy, or ``None``."""
    policy = getattr(model, "dtype_policy", None)
    dtype = getattr(policy, "compute_dtype", None)
    return PRECISIONS.get(keras.backend.standardize_dtype(dtype) if dtype else None)


def model_device(model):
    """``"cpu"`` or ``"gpu:N"``: where the model's first weight lives, or ``None``."""
    weights = getattr(model, "weights", None)  # None: not a Keras model (hooks by hand)
    if not weights:
        return None
    value = weights[0].value
    backend = keras.backend.backend()
    if backend == "jax":
        device = min(value.devices(), key=lambda d: d.id)
        return "cpu" if device.platform == "cpu" else f"gpu:{device.id}"
    if backend == "torch":
        kind, index = value.device.type, value.device.index
        return "cpu" if kind == "cpu" else f"gpu:{index or 0}"
    name = str(getattr(value, "device", "") or "").upper()  # ".../device:GPU:0"
    if "GPU:" in name:
        return f"gpu:{int(name.rsplit('GPU:', 1)[1].split('/')[0])}"
    return "cpu"


def device_report(probe_gpus):
    """The process's `DeviceReport` (collected the first time)."""
    if probe_gpus not in _REPORTS:
        from kerasbench._device import DeviceReport

        _REPORTS[probe_gpus] = DeviceReport.collect(probe_gpus=probe_gpus)
    return _REPORTS[probe_gpus]


def lookup_peak(report, device, precision, model=None):
    """``(tflops, is_estimate, note)`` of ``device`` at ``precision``.

    fp32 on a GPU whose matrix products run in TF32 (the backend's setting,
    compute capability 8.0 or more) is compared with the TF32 peak, as the
    device report's health check does.
    """
    if precision is None:
        dtype = getattr(getattr(model, "dtype_policy", None), "compute_dtype", None)
        return None, None, f"MFU unknown: no peak table for the compute dtype {dtype}"
    if device is None:
        return None, None, "MFU unknown: the model has no weights to tell its device by"
    if report is None:
        report = device_report(probe_gpus=device != "cpu")
    peak, estimate = _figures.device_peak(report.to_dict(), device, precision)
    note = None
    tf32 = tf32_peak(report, device) if precision == "fp32" else None
    if tf32 is not None:
        peak, note = tf32, ("float32 matrix products run in TF32 on this GPU: MFU is "
                            "relative to its TF32 peak")
    if peak is None:
        note = f"MFU unknown: the device report has no {precision} peak for {device}"
    return peak, estimate, note


def tf32_peak(report, device):
    from kerasbench._device.gpu import cc_tuple
    from kerasbench._device.ops import OPS

    ops = OPS.get(report.backend or "tensorflow")
    gpus = [g for g in report.accelerators if g.name == device]
    if ops is None or not gpus or "matmul" not in ops.tf32_ops(report.software):
        return None
    if cc_tuple(gpus[0].compute_capability) < (8, 0):
        return None
    value = (gpus[0].peak or {}).get("tf32")
    return float(value) if value else None


# ------------------------------------------------- what the callback calls


def running_figures(cb, st, count_now):
    """``(images_per_sec, step_time_s, achieved_tflops, mfu)`` of a phase's
    measured steps so far: ``nan`` where not known yet, and ``mfu`` ``None``
    when it cannot be known in this run (no FLOP count or no peak). Counts
    FLOPs first if ``count_now``."""
    meter, model = st.meter, st.loop.model
    steps = meter.measured_steps
    rate = meter.running_rate() if steps and meter.samples_known else None
    step_time = meter.measured_time_s / steps if steps else _NAN
    achieved, mfu = _NAN, None
    try:
        eff, pass_ = cb._efficiency, PASSES[st.name]
        count = (eff.flops(model, pass_, count_batch(model, samples_per_step(st)))
                 if count_now else eff.counted(model, pass_))
        if count is not None and count.flops_per_sample is not None:
            if rate is not None:
                achieved = _figures.achieved_tflops(count.flops_per_sample, rate)
            peak = eff.peak(model)[0]
            if peak is not None:
                mfu = achieved / peak
    except Exception as error:  # noqa: BLE001 -- the other figures still count
        failed(cb, st, error)
        achieved, mfu = _NAN, None
    return (_NAN if rate is None else rate), step_time, achieved, mfu


def epoch_end(cb, fit, logs):
    """At a `fit` epoch's end: counts FLOPs the first time, adds the figures
    to Keras' epoch logs (``images_per_sec``, ``step_time_s``, ``mfu``; with
    the ``val_`` prefix for validation) and writes their TensorBoard values."""
    for name, prefix in (("train", ""), ("validation", "val_")):
        st = fit.phases.get(name)
        if st is None or st.broken:
            continue
        try:
            rate, step_time, achieved, mfu = running_figures(cb, st, count_now=True)
            if cb.log_figures and logs is not None:
                values = {"images_per_sec": rate, "step_time_s": step_time}
                if mfu is not None:  # None: never known in this run (no count or no peak)
                    values["mfu"] = mfu
                for key, value in values.items():
                    logs.setdefault(prefix + key, value)
            to_tensorboard(st, achieved, mfu)
        except Exception as error:  # noqa: BLE001 -- never stop training
            failed(cb, st, error)


def phase_end(cb, st):
    """Before a phase's event file closes: its last TensorBoard figures."""
    try:
        if st.tb is not None and st.figures_step != st.global_step:
            _, _, achieved, mfu = running_figures(cb, st, count_now=False)
            to_tensorboard(st, achieved, mfu)
    except Exception as error:  # noqa: BLE001 -- never stop training
        failed(cb, st, error)


def to_tensorboard(st, achieved, mfu):
    if st.tb is None:
        return
    st.tb.add_named(st.global_step, {"achieved_tflops": achieved,
                                     "mfu": _NAN if mfu is None else mfu})
    st.figures_step = st.global_step


def begin(cb, st):
    """At a phase's begin, before its first step: starts its peak-memory
    reading and finds its energy counter (which counts from the first
    measured step, see `energy_resume`)."""
    from kerasbench._efficiency.memory import PeakMemory

    try:
        device = model_device(st.loop.model)
        st.memory = PeakMemory(keras.backend.backend(), device)
        st.memory.start()  # never raises
        st.energy = PhaseEnergy(device, cb._energy_sources)  # never raises
    except Exception as error:  # noqa: BLE001 -- never stop training
        st.memory = st.energy = None
        failed(cb, st, error)


def validation_begin(validation, again):
    """At the begin of a `fit`'s validation (``validation`` its phase, or
    ``None``): its peak memory watches again when this is not its first
    epoch (``again``). The training phase's energy paused just before."""
    if again and validation is not None and not validation.broken \
            and validation.memory is not None:
        validation.memory.resume()  # never raises


def validation_end(validation):
    """At the end of a `fit`'s validation: its peak memory stops watching
    until the next epoch's validation (its energy paused with the epoch)."""
    if validation.memory is not None:
        validation.memory.pause()  # never raises


class PhaseEnergy:
    """The energy meter of one phase and what the callback knows about it.

    Args:
        device: ``"cpu"``, ``"gpu:N"`` (from `model_device`), or ``None``.
        sources: `EnergySources` for the meter, or ``None`` for the machine's.

    Attributes:
        meter: The `EnergyMeter` (opened: it counts from `energy_resume`),
            or ``None`` when the device is unknown.
        waiting: Whether the meter counts again at the next measured
            step's start (False while counting, and when there is no counter).
        first_step: The phase's steps done when the meter first counted
            (the warmup, which the result's ``warmup_steps`` must equal).
        poll_at: `time.monotonic` time of the next `poll` while counting.
        note: Why there is no meter, or ``None``.
        stale: Whether it was still counting when an exception ended the
            loop (so it counted past the phase's last step).
    """

    def __init__(self, device, sources=None):
        self.first_step, self.poll_at, self.note, self.meter = None, None, None, None
        self.stale = False
        if device is None:
            self.note = "the model has no weights to tell its device by"
        else:
            kind, _, index = device.partition(":")
            self.meter = EnergyMeter(kind, int(index or 0), sources=sources)
            self.meter.open()  # never raises
        self.waiting = self.meter is not None and self.meter.ready

    def reading(self):
        """The `EnergyReading` of the spans counted (the meter is closed)."""
        if self.meter is None:
            return EnergyReading(None, None, self.note)
        return self.meter.stop()  # never raises


def energy_resume(st):
    """At a measured step's begin, before its clock reading: the phase's
    energy counts from here (the callback calls it only when
    ``st.energy.waiting``)."""
    energy = st.energy
    energy.waiting = False
    if energy.first_step is None:
        energy.first_step = st.meter.steps_done
    energy.meter.resume()  # never raises
    energy.poll_at = time.monotonic() + ENERGY_POLL_S


def energy_pause(st, stale=False):
    """At an epoch's end, validation's begin (the training phase) and the
    phase's end: the phase's energy stops counting until its next measured
    step. ``stale``: the phase ends late, after an exception ended its loop
    (the counter ran on past its last step)."""
    energy = st.energy
    if energy is None:
        return
    energy.stale = energy.stale or (stale and energy.poll_at is not None)
    if energy.poll_at is not None:
        energy.meter.pause()  # never raises
        energy.poll_at = None
        energy.waiting = energy.meter.ready


def energy_poll(st):
    """Now and then within an epoch (the callback calls it at its progress
    marks): reads a counting meter at least every `ENERGY_POLL_S` seconds."""
    energy = st.energy
    if energy is not None and energy.poll_at is not None and time.monotonic() >= energy.poll_at:
        energy.meter.poll()  # never raises
        energy.poll_at = time.monotonic() + ENERGY_POLL_S


def energy_fields(st, result):
    """The `ThroughputResult` fields of the phase's energy over its measured steps, read
    when it ends, with ``joules_per_image`` and ``images_per_sec_per_watt``
    (`kerasbench._efficiency.figures`); ``energy_j`` ``None`` and
    ``energy_note`` saying why when unknown."""
    energy, st.energy = st.energy, None
    if energy is None:
        return {}
    reading = energy.reading()
    joules, note = reading.joules, reading.note
    if joules is not None:
        why = energy_gap(st, energy, result)
        if why is not None:
            joules, note = None, why
    return {"energy_j": joules,
            "joules_per_image": _figures.joules_per_image(joules, result.samples),
            "images_per_sec_per_watt": _figures.images_per_sec_per_watt(result.samples, joules),
            "energy_source": reading.source, "energy_note": note}


def energy_gap(st, energy, result):
    """Why the energy read does not cover the result's measured steps
    exactly, or ``None`` when it does."""
    if not result.steps:
        return "no measured steps"
    if st.broken:
        return "measuring stopped early (see the notes)"
    if energy.stale:
        return ("an exception ended the loop while the counter ran: it counted past the "
                "last step")
    if energy.first_step != result.warmup_steps:
        return (f"the energy counter started after step {energy.first_step}, but the "
                f"measured steps start after step {result.warmup_steps} (the warmup was "
                "shortened when the phase ended early)")
    return None


def energy_sources_argument(value):
    """Validates ``energy_sources``: ``None`` or an `EnergySources`."""
    if value is None or isinstance(value, EnergySources):
        return value
    raise ValueError("`energy_sources` must be a kerasbench._efficiency.energy.EnergySources "
                     f"or None. Received: energy_sources={value!r:.200}")


def memory_fields(st):
    """``(fields, note)``: the phase's peak memory, read when it ends."""
    meter, st.memory = st.memory, None
    if meter is None:
        return {}, None
    reading = meter.stop()  # never raises
    return {"peak_memory_bytes": reading.peak_bytes, "memory_kind": reading.kind}, reading.note


def with_figures(cb, st, result):
    """``result`` with the phase's efficiency figures (counted if not yet)."""
    import dataclasses

    try:
        model = st.loop.model
        memory, memory_note = memory_fields(st)
        energy = energy_fields(st, result)
        fields, note = cb._efficiency.figures(
            model, st.name, count_batch(model, samples_per_step(st)), result.images_per_sec)
    except Exception as error:  # noqa: BLE001 -- never stop training
        failed(cb, st, error)
        text = failure_text(error)
        return dataclasses.replace(result, notes=result.notes + (text,))
    notes = result.notes + tuple(n for n in (note, memory_note) if n)
    return dataclasses.replace(result, notes=notes, **fields, **memory, **energy)


def failure_text(error):
    return f"efficiency figures unavailable: {type(error).__name__}: {error}"


def failed(cb, st, error):
    text = failure_text(error)
    st.meter.note(text)
    cb._warn(st.loop, f"figures {st.name}", f"ThroughputCallback: {text}; training goes on "
             "(please report this).")


# --------------------------------------------------------- logger order

#: Keras callbacks that record epoch logs as they receive them.
def _loggers():
    cbs = keras.callbacks
    return (cbs.History, cbs.CSVLogger, cbs.TensorBoard, cbs.RemoteMonitor)


def is_logger(callback):
    """Whether ``callback`` records the epoch logs it is given: Keras' own
    loggers, and by name other libraries' (``WandbMetricsLogger``, ...)."""
    if isinstance(callback, keras.callbacks.ProgbarLogger):
        return False
    name = type(callback).__name__
    return isinstance(callback, _loggers()) or "Logger" in name or "TensorBoard" in name


def loggers_before(cb, callbacks):
    """The loggers listed before ``cb`` in a `CallbackList`'s callbacks."""
    out = []
    for other in callbacks:
        if other is cb:
            return out
        if is_logger(other):
            out.append(type(other).__name__)
    return []


def check_order(cb, loop):
    """Warns once per callback when a logger comes before it in ``callbacks``."""
    if cb._order_warned or not cb.log_figures:
        return
    try:
        ref = loop.frame[2] if loop.frame else None
        callback_list = ref() if ref is not None else None
        before = loggers_before(cb, getattr(callback_list, "callbacks", None) or ())
    except Exception:  # noqa: BLE001 -- a check of convenience, never a failure
        return
    if before:
        cb._order_warned = True
        import warnings

        warnings.warn(
            f"ThroughputCallback comes after {', '.join(before)} in `callbacks`, so "
            f"{'it misses' if len(before) == 1 else 'they miss'} the images_per_sec, "
            "step_time_s and mfu it adds to the epoch logs. List ThroughputCallback "
            "first: callbacks=[ThroughputCallback(), ...].", stacklevel=4)


def report_argument(value):
    """Validates ``device_report``: ``None``, a `DeviceReport` or its ``to_dict()``."""
    if value is None:
        return None
    from kerasbench._device import DeviceReport

    if isinstance(value, DeviceReport):
        return value
    if isinstance(value, dict):
        try:
            return DeviceReport.from_dict(value)
        except Exception as error:  # noqa: BLE001 -- said in the message below
            reason = f" ({type(error).__name__}: {error})"
    else:
        reason = ""
    raise ValueError("`device_report` must be a DeviceReport, its to_dict(), or None"
                     f"{reason}. Received: device_report={value!r:.200}")
