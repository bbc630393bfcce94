"""ThroughputCallback: per-step timing and images/sec for any Keras 3 loop."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
import warnings

import keras

from kerasbench import _tensorboard, _validate
from kerasbench._callback import efficiency, replicas
from kerasbench._callback.counting import MAX_PENDING_STEPS, Phase, count, loss_count_variable
from kerasbench._callback.loops import END_HOOK, ENDED, Loop
from kerasbench._callback.stopping import STOP_FLAGS, Stopper, stopping_arguments
from kerasbench._tensorboard import ScalarLog
from kerasbench._timing import text as _text
from kerasbench._timing.meter import DEFAULT_WARMUP_STEPS, PENDING, PhaseMeter
from kerasbench._timing.stats import DEFAULT_CAPACITY, rate

_NAN = float("nan")
_TB_TAGS = ("step_time_s", "step_images_per_sec", "images_per_sec", "steps_per_sec")
# Buffered TensorBoard values are written every 10 s, or sooner once 30,000
# wait (10,000 steps: about 3 MB of Python objects).
_TB_WRITE_EVERY_S = 10.0
_TB_MAX_PENDING = 30_000
_ARGS = ("batch_size", "warmup_steps", "log_every", "log_dir", "verbose", "max_recorded_steps",
         "clock", "target_precision", "stop_at_precision", "min_steps", "max_steps",
         "max_time_s", "flops_per_sample", "count_flops", "log_figures", "device_report",
         "energy_sources")
_ROUTES = ("_train", "_test", "_predict")

logger = logging.getLogger("kerasbench")


def _step_hooks(route):
    """The batch-begin and batch-end hooks that feed the phase in ``self.<route>``.

    An error of kerasbench's own stops measuring that phase, never the loop.
    """

    def batch_begin(self, batch, logs=None):
        st = getattr(self, route)
        if st is not None:
            try:
                if st.energy is not None and st.energy.waiting and not st.meter.in_warmup:
                    efficiency.energy_resume(st)  # before the clock: outside the step
                st.meter.start(self.clock())
                st.begin_index = batch
            except Exception as error:  # noqa: BLE001 -- never stop training
                self._broken(st, error)

    def batch_end(self, batch, logs=None):
        st = getattr(self, route)
        if st is not None:
            try:
                self._step_end(st, batch, logs)
            except Exception as error:  # noqa: BLE001 -- never stop training
                self._broken(st, error)

    return batch_begin, batch_end


class ThroughputCallback(keras.callbacks.Callback):
    """Measures per-step time and images/sec of `fit`, `evaluate` and `predict`.

    Attach it to any Keras 3 loop, on any backend (TensorFlow, JAX,
    PyTorch). Each step's duration runs from the end of the previous step to
    the end of this one, so durations add up to the loop's wall time; the
    time between epochs (validation, epoch-end callbacks, making a new data
    iterator) is left out, and validation inside `fit` is measured as its own
    phase. The first ``warmup_steps`` steps of each phase (tracing,
    compilation, caches) are excluded from the statistics and given apart,
    as is the first step's time.

    Samples are counted exactly without help: from the count of Keras' loss
    tracker in `fit`/`evaluate` (partial batches, datasets, generators,
    `PyDataset`, several steps per execution and `tf.distribute` strategies
    included, where the count is global) and from the outputs in `predict`.
    When a model's own ``train_step`` does not update the loss tracker, the
    count is unknown: the callback says so once and gives steps/sec,
    unless ``batch_size`` is given.

    It never stops training for a problem of its own (an unreadable counter,
    a full disk under ``log_dir``, an unusable clock reading, a bug): it
    warns once and notes it in the result. A loop that an exception ended
    (Keras then skips its end hook) is closed, with a note, when the next
    loop begins or `results` is read. One instance measures one loop at a
    time: beginning a loop while another runs in another thread raises
    ``RuntimeError`` (nested loops of different kinds in one thread, such as
    a `predict` inside a callback during `fit`, are measured apart).

    Args:
        batch_size: Samples per step. Optional: overrides the inferred count
            (every step then counts ``batch_size`` samples, a partial last
            batch included).
        warmup_steps: Steps excluded at the start of each phase (default 10,
            as tf_cnn_benchmarks). A phase shorter than twice this excludes
            half of its steps instead, and the result says so.
        log_every: Print a progress line every this many steps (default 10).
        log_dir: Directory for TensorBoard event files, or ``None`` (default)
            for none, checked when the callback is made (a directory, or one
            that can be created in a writable one). The same ``log_dir`` as
            `keras.callbacks.TensorBoard` puts the scalars beside Keras' own,
            in ``train/`` and ``validation/`` (standalone runs in
            ``evaluate/``, ``predict/``).
        verbose: 0 prints nothing, 1 (default) progress lines and a summary
            per phase, 2 only the summaries.
        max_recorded_steps: Per-step observations kept per phase for medians,
            percentiles and jitter (default 10,000, 240 KB); beyond it a
            uniform sample of that size is kept and every total, mean and
            standard deviation stays exact.
        clock: A function returning seconds (default `time.perf_counter`).
            Readings that do not advance or go backwards are handled (see
            docs/metrics.md, "Clock readings").
        target_precision: A half-width for the 95 % confidence interval of
            images/sec, as a share of it (``0.01`` or ``"1%"``: +/-1 %).
            Reporting only: each result and summary says whether the final
            interval is that narrow (``target_reached``) and, if not, about
            how many steps would make it so. Training is never stopped.
        stop_at_precision: The same target, and the one way to let the
            callback end a loop: at the first check where the interval is
            that narrow (after ``min_steps`` measured steps), or at
            ``max_steps`` measured steps or ``max_time_s`` measured seconds,
            it sets the model's ``stop_training`` (``stop_evaluating``,
            ``stop_predicting``), so `fit` (`evaluate`, `predict`) ends after
            that step; ``stop_reason`` in the result says why. Validation
            inside `fit` is never stopped.
        min_steps, max_steps, max_time_s: The bounds of ``stop_at_precision``
            (default 20 measured steps at least, no other bound); measured
            steps and seconds exclude the warmup.
        flops_per_sample: FLOPs per sample to use instead of counting them: a
            number (every phase), or a dict by pass, ``{"train": ...,
            "forward": ...}`` (``"forward"``: validation, evaluate, predict;
            a pass left out is counted). ``flops_method`` is then ``"given"``.
        count_flops: Count FLOPs per sample with the backend's own cost
            analysis (default True), once per model and pass, outside the
            timed steps (at `fit`'s first epoch end, else at the phase's
            end), for ``flops_per_sample``, ``achieved_tflops`` and ``mfu``
            on each result (see docs/efficiency.md).
        log_figures: Add ``images_per_sec``, ``step_time_s`` and (when known)
            ``mfu`` of the measured steps so far to Keras' epoch logs, and
            ``val_images_per_sec``, ... for validation (default True), so
            `History`, `CSVLogger`, Keras' `TensorBoard` and other loggers
            record them. List this callback before them in ``callbacks``
            (it warns otherwise).
        device_report: A `DeviceReport` (or its ``to_dict()``) to take the
            device's peak TFLOP/s from, for ``mfu``; default: collected once
            per process when first needed (about 40 ms without GPUs).
        energy_sources: An `EnergySources`
            (`kerasbench._efficiency.energy`) to read the energy counters
            from (a powercap tree, an NVML library): default, the machine's.
            Each result's ``energy_j`` covers its measured steps (see
            docs/efficiency.md).

    Attributes:
        results: ``dict`` of `ThroughputResult` by phase (``"train"``,
            ``"validation"``, ``"evaluate"``, ``"predict"``), each replaced
            when that phase runs again.
        result: The ``"train"`` result, or ``None`` before any `fit`.
        meters: ``dict`` of the `PhaseMeter` of each phase's latest run, by
            phase, each replaced when that phase begins again. Read-only use:
            ``meters["train"].observations()`` lists that phase's per-step
            durations, step counts and sample counts, warmup included.

    Raises:
        ValueError: On an invalid argument value (``log_dir`` included).
        TypeError: On an unknown keyword argument.
        ImportError: With ``log_dir`` and no ``tensorboard`` package.

    Example:

    ```python
    cb = kerasbench.ThroughputCallback(log_dir="logs")
    model.fit(x, y, batch_size=64, epochs=3, callbacks=[cb])
    print(cb.result.images_per_sec, cb.result.to_dict())
    ```
    """

    def __init__(
        self,
        batch_size=None,
        warmup_steps=DEFAULT_WARMUP_STEPS,
        log_every=10,
        log_dir=None,
        verbose=1,
        max_recorded_steps=DEFAULT_CAPACITY,
        clock=time.perf_counter,
        target_precision=None,
        stop_at_precision=None,
        min_steps=None,
        max_steps=None,
        max_time_s=None,
        flops_per_sample=None,
        count_flops=True,
        log_figures=True,
        device_report=None,
        energy_sources=None,
        **kwargs,
    ):
        super().__init__()
        _validate.keywords("ThroughputCallback", kwargs, _ARGS)
        self.batch_size = _validate.integer("batch_size", batch_size, minimum=1,
                                            allow_none=True)
        self.warmup_steps = _validate.integer("warmup_steps", warmup_steps, minimum=0)
        self.log_every = _validate.integer("log_every", log_every, minimum=1)
        self.log_dir = _validate.path("log_dir", log_dir, allow_none=True)
        if self.log_dir is not None:
            _tensorboard.check_log_dir(self.log_dir)
        self.verbose = _validate.integer("verbose", verbose, minimum=0, maximum=2)
        self.max_recorded_steps = _validate.integer("max_recorded_steps", max_recorded_steps,
                                                    minimum=1)
        if not callable(clock):
            raise ValueError("`clock` must be a function returning seconds, such as "
                             f"time.perf_counter. Received: clock={clock!r}")
        self.clock = clock
        (self.target_precision, self.stop_at_precision, self.min_steps, self.max_steps,
         self.max_time_s) = stopping_arguments(target_precision, stop_at_precision,
                                               min_steps, max_steps, max_time_s)
        self._efficiency_arguments(flops_per_sample, count_flops, log_figures, device_report)
        self._energy_sources = efficiency.energy_sources_argument(energy_sources)
        self.meters = {}
        self._results = {}
        self._writer = _tensorboard.default_writer(keras.backend.backend())
        # TensorBoard steps keep increasing across epochs and runs.
        self._global_steps = {}
        self._loops = []
        self._lock = threading.RLock()
        # The phases the per-step hooks feed (None: not measuring), and the
        # loop the current test hooks belong to (a fit, for its validation).
        self._train = self._test = self._predict = None
        self._test_owner = None
        self._print_failed = False
        self._placements = {}  # Loop -> replicas.Placement (tf.distribute, keras.distribution)

    def _efficiency_arguments(self, flops_per_sample, count_flops, log_figures, device_report):
        self.flops_per_sample = flops_per_sample
        self.count_flops = _validate.boolean("count_flops", count_flops)
        self.log_figures = _validate.boolean("log_figures", log_figures)
        self.device_report = efficiency.report_argument(device_report)
        self._efficiency = efficiency.Efficiency(efficiency.flops_argument(flops_per_sample),
                                                 self.count_flops, self.device_report)
        self._order_warned = False

    @property
    def results(self):
        if self._loops:
            with self._lock:
                self._close_ended(threading.current_thread(), proven_only=True)
        return self._results

    @property
    def result(self):
        return self.results.get("train")

    # ------------------------------------------------------------------ loops

    def _open_loop(self, kind):
        """Starts tracking a loop, after closing the loops an exception ended.

        Raises:
            RuntimeError: If a loop runs in another thread, or one of the
                same kind in this thread (the instance listed twice).
        """
        thread = threading.current_thread()
        loop = Loop(kind, self.model, self.params)  # what this loop's CallbackList set
        placement = replicas.detect(loop.model)
        with self._lock:
            self._close_ended(thread)
            for running in self._loops:
                if running.thread is not thread or running.kind == kind:
                    self._restore(running)
                    raise RuntimeError(running.refusal(kind))
            self._loops.append(loop)
            self._placements[loop] = placement
            self._restore(loop)  # closing an ended loop may have restored another's
        return loop

    def _close_ended(self, thread, proven_only=False):
        for loop in [lp for lp in self._loops if lp.ended(thread, proven_only)]:
            self._close_loop(loop, stale=True)

    def _close_loop(self, loop, stale=False):
        with self._lock:
            if loop not in self._loops:
                return
            self._loops.remove(loop)
        for route in _ROUTES:
            if getattr(self, route) in loop.phases.values():
                setattr(self, route, None)
        if self._test_owner is loop:
            self._test_owner = None
        for st in loop.phases.values():
            self._finish(st, stale)
        self._placements.pop(loop, None)
        if stale:
            self._warn(loop, "stale", f"ThroughputCallback: a `{loop.kind}` call ended "
                       f"without {END_HOOK[loop.kind]} (an exception stopped it); its "
                       "results cover the steps measured until then (see their notes).")
        if self._loops:  # back in an enclosing loop: its model and params again
            self._restore(self._loops[-1])

    def _restore(self, loop):
        # The callback's model and params are the ones Keras set last; a loop
        # keeps its own, so another loop's CallbackList cannot confuse it.
        self.set_model(loop.model)
        self.set_params(loop.params)

    def _loop_here(self, kind):
        thread = threading.current_thread()
        for loop in reversed(self._loops):
            if loop.kind == kind and loop.thread is thread:
                return loop
        return None

    # ----------------------------------------------------------------- phases

    def _begin(self, loop, name, total_steps=None, steps_per_epoch=None):
        model = loop.model
        st = Phase(name, loop, PhaseMeter(name, self.warmup_steps, count(total_steps),
                                          self.max_recorded_steps, self.target_precision),
                   self.batch_size)
        loop.phases[name] = st
        self.meters[name] = st.meter
        st.spe = count(getattr(model, "steps_per_execution", 1), minimum=1) or 1
        st.steps_per_epoch = count(steps_per_epoch)
        st.next_log = st.next_event = self.log_every
        if self.stop_at_precision is not None and name != "validation":
            st.stopper = Stopper(self.stop_at_precision, self.min_steps, self.max_steps,
                                 self.max_time_s)
            st.next_check = st.stopper.next_check(st.meter)
            st.next_event = min(st.next_log, st.next_check)
        st.global_step = self._global_steps.get(name, 0)
        if self.batch_size is None and name != "predict":
            variable = loss_count_variable(model)
            st.read_count, lost = st.reader(variable, "metrics_variables")
            if variable is None or lost:
                self._counts_lost(st, lost or "the model has no Keras loss tracker")
        if st.spe > 1 and st.steps_per_epoch is None and name == "train":
            iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
            st.read_iterations, _ = st.reader(iterations, "optimizer_variables")
            st.steps_covered(0)  # takes the first reading of the iterations
        if loop.tb_failed:
            st.meter.note(loop.tb_failed)
        elif self.log_dir is not None and self._placement(loop).chief:
            st.tb = ScalarLog(os.path.join(self.log_dir, name), _TB_TAGS + efficiency.TB_TAGS,
                              writer=self._writer)
            self._tb(st, "open")
        efficiency.begin(self, st)  # peak memory from here; never raises
        st.last_write = self.clock()
        return st

    def _start(self, loop, name, **kwargs):
        """`_begin`, or ``None`` (and a warning) if it fails: the loop goes on."""
        try:
            return self._begin(loop, name, **kwargs)
        except Exception as error:  # noqa: BLE001 -- never stop training
            self._warn(loop, "begin", f"ThroughputCallback cannot measure the {name} phase "
                       f"({type(error).__name__}: {error}); training goes on.")
            return None

    def _finish(self, st, stale=False):
        """Ends a phase: its last counts, its event file, its result and summary."""
        meter, kind = st.meter, st.loop.kind
        efficiency.energy_pause(st, stale)  # never raises
        try:
            if st.broken or stale:
                left = meter.discard_pending()
                if left:
                    meter.note(f"the last {left} steps are left out: their sample count was "
                               "not read before the phase ended")
            else:
                self._settle(st, boundary=True)
            if stale:
                meter.note(f"the {kind} call ended without {END_HOOK[kind]} (an exception "
                           f"stopped it) after {meter.steps_done} {st.name} steps")
            if st.tb is not None:
                efficiency.phase_end(self, st)  # the last achieved_tflops, mfu values
                self._tb(st, "close")
            self._global_steps[st.name] = st.global_step
            if meter.steps_done == 0:
                return  # no steps ran: no result
            result = efficiency.with_figures(self, st, meter.result())  # never raises
        except Exception as error:  # noqa: BLE001 -- never stop training
            if f"clock {st.name}" not in st.loop.warned:  # that warning said it already
                self._warn(st.loop, f"result {st.name}", f"ThroughputCallback has no "
                           f"{st.name} result: {type(error).__name__}: {error}")
            return
        placement = self._placement(st.loop)
        result = placement.finish(result, stale)  # replicas; workers' figures gathered
        self._results[st.name] = result
        if self.verbose and not stale:
            self._emit(placement.summary(_text.format_summary(result), result), st)

    def _placement(self, loop):
        return self._placements.get(loop, replicas.SINGLE)

    def _broken(self, st, error):
        """Stops measuring a phase after an error of kerasbench's own."""
        st.broken = True
        for route in _ROUTES:
            if getattr(self, route) is st:
                setattr(self, route, None)
        text = (f"measuring stopped after {st.meter.steps_done} steps by an error in "
                f"kerasbench: {type(error).__name__}: {error}")
        st.meter.note(text)
        self._warn(st.loop, f"broken {st.name}", f"ThroughputCallback: {st.name} {text}; "
                   "training goes on (please report this).")

    def _step_end(self, st, end_index, logs):
        t = self.clock()
        k = 1 if st.spe == 1 else st.steps_covered(end_index)
        meter = st.meter
        if st.read_count is not None:
            # Reading the device counter costs more than everything else here,
            # so after warmup it is read once per log window (see split_count),
            # at least every MAX_PENDING_STEPS steps, and for each of an epoch's
            # last two steps when its length is known.
            duration, measured = meter.step(t, k, PENDING)
            done = meter.steps_done
            if (done >= st.next_log or done >= st.read_by or not measured
                    or meter.batch_size is None or meter.varying or st.spe > 1
                    or (st.steps_per_epoch and end_index >= st.steps_per_epoch - 2)):
                self._settle(st)
            if not duration > 0:
                self._unclocked(st, duration, 0)
        else:
            samples = st.immediate_samples(k, logs)
            duration, measured = meter.step(t, k, samples)
            if duration > 0 and not st.merging:
                # The running rate only goes to TensorBoard: not computed without it.
                self._to_tensorboard(st, duration, k, samples,
                                     meter.running_rate() if measured and st.tb is not None
                                     else None)
            else:
                self._unclocked(st, duration, k)
        if st.tb is not None and (t - st.last_write >= _TB_WRITE_EVERY_S
                                  or st.tb.pending >= _TB_MAX_PENDING):
            self._tb(st, "write")
            st.last_write = self.clock()
        st.progbar_open = True
        if meter.steps_done >= st.next_event:
            self._event(st, duration / k, measured)

    def _event(self, st, step_time_s, measured):
        """A progress line and a mark for the intervals (every ``log_every``
        steps), a precision check (with ``stop_at_precision``), or both."""
        meter = st.meter
        if meter.steps_done >= st.next_log:
            st.next_log = (meter.steps_done // self.log_every + 1) * self.log_every
            meter.mark()
            efficiency.energy_poll(st)  # a counter read every minute at most
            if self.verbose == 1 and self._placement(st.loop).chief:
                unit = "images" if meter.samples_known else "steps"
                line = _text.format_progress_line(
                    st.name, meter.steps_done, step_time_s,
                    meter.running_stats() if measured else None, unit,
                )
                self._emit(line, st)
        if meter.steps_done >= st.next_check:
            self._settle(st)  # the check counts every step so far
            reason = st.stopper.check(meter)
            if reason is None:
                st.next_check = st.stopper.next_check(meter)
            else:
                meter.stop_reason, st.next_check = reason, math.inf
                setattr(st.loop.model, STOP_FLAGS[st.loop.kind], True)
        st.next_event = min(st.next_log, st.next_check)

    def _unclocked(self, st, duration, k):
        """A step without a usable clock reading (the meter says how it counts it)."""
        st.global_step += k
        # The next observation also covers these steps: its values are not per step.
        st.merging = not duration < 0
        self._warn(st.loop, f"clock {st.name}", f"ThroughputCallback: the clock gave an "
                   f"unusable reading in the {st.name} phase (a step of {duration} s); such "
                   "steps are timed with a neighbour or left out, and the result says how "
                   "many.")

    def _settle(self, st, boundary=False):
        """Reads the sample counter and settles the phase's pending steps."""
        meter = st.meter
        st.read_by = meter.steps_done + MAX_PENDING_STEPS
        if not meter.pending_observations:
            return
        samples = None
        if st.read_count is not None:
            samples, lost = st.read_samples()
            if lost:
                self._counts_lost(st, lost)
        # Running rates only go to TensorBoard: not computed without it.
        for duration, k, s, running in meter.settle(samples, boundary,
                                                    running_rates=st.tb is not None):
            self._to_tensorboard(st, duration, k, s, running)

    def _counts_lost(self, st, reason):
        st.read_count = None
        st.meter.note(f"sample counts of the {st.name} phase unknown from step "
                      f"{st.meter.steps_done} on: {reason}")
        self._warn(st.loop, f"counts {st.name}",
                   f"ThroughputCallback cannot count the samples of this model's {st.name} "
                   f"steps ({reason}). Reporting steps/sec; pass `batch_size` to "
                   "ThroughputCallback for images/sec.")

    def _epoch_done(self, st):
        """Ends an epoch of the phase: its counts are settled, its clock paused."""
        self._settle(st, boundary=True)
        st.meter.pause()
        efficiency.energy_pause(st)  # never raises
        st.progbar_open = st.merging = False

    def _to_tensorboard(self, st, duration, k, samples, running):
        st.global_step += k
        if st.tb is None or duration is None:
            return
        running = _NAN if running is None else running
        known = st.meter.samples_known
        st.tb.add(st.global_step, (
            duration / k,
            rate(samples, duration) if known and samples is not None else _NAN,
            running if known else _NAN,
            _NAN if known else running,
        ))

    def _tb(self, st, operation):
        """Calls the phase's `ScalarLog`; a failure ends TensorBoard for the loop."""
        log = st.tb
        getattr(log, operation)()
        if log.error is not None:
            self._tb_failed(st.loop, log.error)

    def _tb_failed(self, loop, error):
        text = (f"TensorBoard logging stopped: writing under {self.log_dir!r} failed "
                f"({type(error).__name__}: {error})")
        loop.tb_failed = text
        for st in loop.phases.values():
            log, st.tb = st.tb, None
            if log is not None:
                log.close()  # keeps what it can; never raises
            st.meter.note(text)
        self._warn(loop, "tensorboard", f"ThroughputCallback: {text}; training goes on "
                   "without it.")

    def _warn(self, loop, key, message):
        """One warning per kind of problem and loop."""
        if key not in loop.warned:
            loop.warned.add(key)
            warnings.warn(message, stacklevel=3)

    def _emit(self, text, st=None):
        if self._print_failed:
            return
        try:
            if not keras.config.is_interactive_logging_enabled():
                if logger.hasHandlers():
                    logger.info(text)
                else:  # no logging configured: INFO records would vanish
                    sys.stderr.write(text + "\n")
                    sys.stderr.flush()
                return
            prefix = ""
            if st is not None and st.progbar_open and st.loop.param("verbose") in (1, "auto"):
                # Keras' progress bar may have left a line open: start a fresh one.
                prefix = "\r\x1b[K" if sys.stdout.isatty() else "\n"
            sys.stdout.write(prefix + text + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as error:  # a closed stdout, a broken pipe
            self._print_failed = True
            warnings.warn(f"ThroughputCallback stopped printing: {type(error).__name__}: "
                          f"{error}", stacklevel=3)

    def _safely(self, st, operation, *args):
        """Runs a bookkeeping step of phase ``st``; an error stops that phase only."""
        try:
            operation(*args)
        except Exception as error:  # noqa: BLE001 -- never stop training
            self._broken(st, error)

    # ------------------------------------------------------------------ hooks

    on_train_batch_begin, on_train_batch_end = _step_hooks("_train")
    on_test_batch_begin, on_test_batch_end = _step_hooks("_test")
    on_predict_batch_begin, on_predict_batch_end = _step_hooks("_predict")

    def on_train_begin(self, logs=None):
        loop = self._open_loop("fit")
        efficiency.check_order(self, loop)
        self._train = self._start(loop, "train", steps_per_epoch=loop.param("steps"))

    def on_epoch_begin(self, epoch, logs=None):
        if self._train is not None:
            self._safely(self._train, self._epoch_begin, self._train, epoch)

    def _epoch_begin(self, st, epoch):
        st.prev_count = 0.0  # Keras resets metrics before each epoch
        steps, epochs = count(st.loop.param("steps")), count(st.loop.param("epochs"))
        if steps and epochs and epochs > epoch:
            st.meter.plan(steps * (epochs - epoch))

    def on_epoch_end(self, epoch, logs=None):
        fit = self._loop_here("fit")
        if fit is None:
            return
        if self._train is not None:
            self._safely(self._train, self._epoch_done, self._train)
        efficiency.epoch_end(self, fit, logs)  # FLOPs, epoch-log figures; never raises
        for st in fit.phases.values():
            if st.tb is not None:
                self._safely(st, self._tb, st, "flush")

    def on_train_end(self, logs=None):
        fit = self._loop_here("fit")
        if fit is not None:
            self._close_loop(fit)

    def on_test_begin(self, logs=None):
        fit = self._loop_here("fit")
        # Keras runs validation through the fit's own CallbackList, so it sets
        # no new params; failing that (another thread's loop may have set
        # them), only Keras' frames lie between this hook and the fit's call.
        if fit is not None and fit.state() != ENDED and (
                self.params is fit.params or fit.runs_this_hook()):
            self._validation_begin(fit)
            return
        loop = self._open_loop("evaluate")
        self._test_owner = loop
        steps = loop.param("steps")
        self._test = self._start(loop, "evaluate", total_steps=steps, steps_per_epoch=steps)

    def _validation_begin(self, fit):
        self._test_owner = fit
        # Count the epoch's training samples before Keras resets the loss
        # tracker for validation.
        train = fit.phases.get("train")
        if train is not None and not train.broken:
            self._safely(train, self._settle, train, True)
        if train is not None:
            efficiency.energy_pause(train)  # validation is not training; never raises
        st = fit.phases.get("validation")
        again = st is not None
        if st is None:
            iterator = getattr(fit.model, "_eval_epoch_iterator", None)
            st = self._start(fit, "validation",
                             steps_per_epoch=getattr(iterator, "num_batches", None))
        efficiency.validation_begin(st, again)  # never raises
        if st is not None and not st.broken:
            st.prev_count = 0.0
            self._test = st

    def on_test_end(self, logs=None):
        owner, st = self._test_owner, self._test
        self._test = self._test_owner = None
        if owner is None:
            return
        if owner.kind == "evaluate":
            self._close_loop(owner)
        elif st is not None:
            self._safely(st, self._epoch_done, st)
            efficiency.validation_end(st)  # never raises

    def on_predict_begin(self, logs=None):
        loop = self._open_loop("predict")
        steps = loop.param("steps")
        self._predict = self._start(loop, "predict", total_steps=steps, steps_per_epoch=steps)

    def on_predict_end(self, logs=None):
        loop = self._loop_here("predict")
        if loop is not None:
            self._close_loop(loop)
