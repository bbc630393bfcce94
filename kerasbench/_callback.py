"""ThroughputCallback: per-step timing and images/sec for any Keras 3 loop.

A thin adapter: the hooks read the clock and the sample counters and hand the
numbers to a `PhaseMeter`; every figure comes from `kerasbench._timing.stats`,
every progress line and summary from `kerasbench._timing.text`, every
TensorBoard value goes through `kerasbench._tensorboard`. Only Keras APIs are
used here.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings

import keras

from kerasbench import _validate
from kerasbench._timing import text as _text
from kerasbench._timing.meter import DEFAULT_WARMUP_STEPS, PENDING, PhaseMeter
from kerasbench._timing.stats import DEFAULT_CAPACITY, rate
from kerasbench._tensorboard import ScalarLog

_NAN = float("nan")
_TB_TAGS = ("step_time_s", "step_images_per_sec", "images_per_sec", "steps_per_sec")
# Buffered TensorBoard values are written every 10 s, or sooner once 30,000
# wait (10,000 steps: about 3 MB of Python objects).
_TB_WRITE_EVERY_S = 10.0
_TB_MAX_PENDING = 30_000
_ARGS = ("batch_size", "warmup_steps", "log_every", "log_dir", "verbose", "max_recorded_steps")

logger = logging.getLogger("kerasbench")


class _Phase:
    """Per-run state of one phase; the arithmetic lives in `meter`."""

    __slots__ = (
        "name", "meter", "spe", "steps_per_epoch", "begin_index",
        "read_count", "prev_count", "read_iterations", "prev_iterations", "tb",
        "next_log", "last_write", "progbar_open",
    )

    def __init__(self, name, meter):
        self.name = name
        self.meter = meter
        self.spe = 1
        self.steps_per_epoch = None
        self.begin_index = 0
        self.read_count = None
        self.prev_count = 0.0
        self.read_iterations = None
        self.prev_iterations = 0
        self.tb = None
        self.next_log = 0
        self.last_write = 0.0
        self.progbar_open = False

    def begin_step(self, batch):
        """What every batch-begin hook does: open the step's interval."""
        self.meter.start(time.perf_counter())
        self.begin_index = batch


class ThroughputCallback(keras.callbacks.Callback):
    """Measures per-step time and images/sec of `fit`, `evaluate` and `predict`.

    Attach it to any Keras 3 loop. Each step's duration runs from the end of
    the previous step to the end of this one, so durations add up to the
    loop's wall time; the time between epochs (validation, epoch-end
    callbacks, making a new data iterator) is left out, and validation inside
    `fit` is measured as its own phase. The first ``warmup_steps`` steps of
    each phase (tracing, compilation, caches) are excluded from the
    statistics and given apart, as is the first step's time.

    Samples are counted exactly without help: from the count of Keras' loss
    tracker in `fit`/`evaluate` (partial batches, datasets, generators,
    `PyDataset`, several steps per execution and `tf.distribute` strategies
    included, where the count is global) and from the outputs in `predict`.
    When a model's own ``train_step`` does not update the loss tracker, the
    count is unknown: the callback says so once and gives steps/sec,
    unless ``batch_size`` is given.

    Args:
        batch_size: Samples per step. Optional: overrides the inferred count
            (every step then counts ``batch_size`` samples, a partial last
            batch included).
        warmup_steps: Steps excluded at the start of each phase (default 10,
            as tf_cnn_benchmarks). A phase shorter than twice this excludes
            half of its steps instead, and the result says so.
        log_every: Print a progress line every this many steps (default 10).
        log_dir: Directory for TensorBoard event files, or ``None`` (default)
            for none. The same ``log_dir`` as `keras.callbacks.TensorBoard`
            puts the scalars beside Keras' own, in ``train/`` and
            ``validation/`` (standalone runs in ``evaluate/``, ``predict/``).
        verbose: 0 prints nothing, 1 (default) progress lines and a summary
            per phase, 2 only the summaries.
        max_recorded_steps: Per-step observations kept per phase for medians,
            percentiles and jitter (default 10,000, 240 KB); beyond it a
            uniform sample of that size is kept and every total, mean and
            standard deviation stays exact.

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
        ValueError: On an invalid argument value.
        TypeError: On an unknown keyword argument.

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
        **kwargs,
    ):
        super().__init__()
        _validate.keywords("ThroughputCallback", kwargs, _ARGS)
        self.batch_size = _validate.integer("batch_size", batch_size, minimum=1,
                                            allow_none=True)
        self.warmup_steps = _validate.integer("warmup_steps", warmup_steps, minimum=0)
        self.log_every = _validate.integer("log_every", log_every, minimum=1)
        self.log_dir = _validate.path("log_dir", log_dir, allow_none=True)
        if self.log_dir is not None and os.path.exists(self.log_dir) \
                and not os.path.isdir(self.log_dir):
            raise ValueError(
                "`log_dir` must be a directory (it is created if missing), but it "
                f"is an existing file. Received: log_dir={self.log_dir!r}"
            )
        self.verbose = _validate.integer("verbose", verbose, minimum=0, maximum=2)
        self.max_recorded_steps = _validate.integer("max_recorded_steps", max_recorded_steps,
                                                    minimum=1)
        self.results = {}
        self.meters = {}
        # TensorBoard steps keep increasing across epochs and runs.
        self._global_steps = {}
        self._phases = {}
        self._in_fit = False
        self._warned_unknown = set()

    @property
    def result(self):
        return self.results.get("train")

    # ----------------------------------------------------------------- phases

    def _begin(self, name, total_steps=None, steps_per_epoch=None):
        st = _Phase(name, PhaseMeter(name, self.warmup_steps, total_steps,
                                     self.max_recorded_steps))
        st.spe = int(getattr(self.model, "steps_per_execution", 1) or 1)
        st.steps_per_epoch = steps_per_epoch
        st.next_log = self.log_every
        if self.batch_size is None and name != "predict":
            count = _loss_count_variable(self.model)
            if count is not None:
                st.read_count = _variable_reader(count)
        if st.spe > 1 and steps_per_epoch is None and name == "train":
            iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
            if iterations is not None:
                st.read_iterations = _variable_reader(iterations)
                st.prev_iterations = int(st.read_iterations())
        if self.log_dir is not None:
            st.tb = ScalarLog(os.path.join(self.log_dir, name), _TB_TAGS)
            st.tb.open()
        st.last_write = time.perf_counter()
        self._phases[name] = st
        self.meters[name] = st.meter
        return st

    def _end(self, name):
        st = self._phases.pop(name, None)
        if st is None:
            return
        self._settle(st, boundary=True)
        if st.tb is not None:
            st.tb.close()
        if st.meter.first_step_s is None:
            return  # no steps ran: no result
        result = st.meter.result()
        self.results[name] = result
        if self.verbose:
            self._emit(_text.format_summary(result), st)

    def _step_end(self, st, end_index, logs):
        t = time.perf_counter()
        k = 1 if st.spe == 1 else self._steps_covered(st, end_index)
        meter = st.meter
        log_due = meter.steps_done + k >= st.next_log
        if st.read_count is not None:
            # Reading the device counter costs more than everything else here,
            # so after warmup it is read once per log window (see split_count),
            # and for each of an epoch's last two steps when its length is known.
            duration, measured = meter.step(t, k, PENDING)
            if (log_due or not measured or meter.batch_size is None or meter.varying
                    or st.spe > 1
                    or (st.steps_per_epoch and end_index >= st.steps_per_epoch - 2)):
                self._settle(st)
        else:
            samples = self._immediate_samples(st, k, logs)
            duration, measured = meter.step(t, k, samples)
            # The running rate only goes to TensorBoard: not computed without it.
            self._to_tensorboard(st, duration, k, samples,
                                 meter.running_rate() if measured and st.tb is not None
                                 else None)
        if st.tb is not None and (t - st.last_write >= _TB_WRITE_EVERY_S
                                  or st.tb.pending >= _TB_MAX_PENDING):
            st.tb.write()
            st.last_write = time.perf_counter()
        st.progbar_open = True
        if log_due:
            st.next_log = (meter.steps_done // self.log_every + 1) * self.log_every
            if self.verbose == 1:
                unit = "images" if meter.samples_known else "steps"
                line = _text.format_progress_line(
                    st.name, meter.steps_done, duration / k,
                    meter.running_stats() if measured else None, unit,
                )
                self._emit(line, st)

    def _settle(self, st, boundary=False):
        """Reads the sample counter and settles the phase's pending steps."""
        if not st.meter.pending_steps:
            return
        samples = None
        if st.read_count is not None:
            count = st.read_count()
            # A count below the previous one means the metric was reset.
            delta = count - st.prev_count if count >= st.prev_count else count
            st.prev_count = count
            if delta > 0:
                samples = int(round(delta))
            else:
                self._counts_unknown(st)
        # Running rates only go to TensorBoard: not computed without it.
        for duration, k, s, running in st.meter.settle(samples, boundary,
                                                       running_rates=st.tb is not None):
            self._to_tensorboard(st, duration, k, s, running)

    def _epoch_done(self, st):
        """Ends an epoch of the phase: its counts are settled, its clock paused."""
        self._settle(st, boundary=True)
        st.meter.pause()
        st.progbar_open = False

    def _to_tensorboard(self, st, duration, k, samples, running):
        step = self._global_steps.get(st.name, 0) + k
        self._global_steps[st.name] = step
        if st.tb is None:
            return
        running = _NAN if running is None else running
        known = st.meter.samples_known
        st.tb.add(step, (
            duration / k,
            rate(samples, duration) if known and samples is not None else _NAN,
            running if known else _NAN,
            _NAN if known else running,
        ))

    def _counts_unknown(self, st):
        # The loss tracker is not updated by this model's steps.
        st.read_count = None
        if st.name in self._warned_unknown:
            return
        self._warned_unknown.add(st.name)
        warnings.warn(
            f"ThroughputCallback cannot count the samples of this model's "
            f"{st.name} steps (its step function does not update the Keras loss "
            f"tracker). Reporting steps/sec; pass `batch_size` to "
            f"ThroughputCallback for images/sec.",
            stacklevel=2,
        )

    def _steps_covered(self, st, end_index):
        """Steps run since the batch-begin hook with ``steps_per_execution > 1``."""
        if st.read_iterations is not None:
            now = int(st.read_iterations())
            k, st.prev_iterations = now - st.prev_iterations, now
            if k > 0:
                return k
        last = end_index
        if st.steps_per_epoch:
            # Keras reports begin + N - 1 even when fewer steps were left.
            last = min(last, st.steps_per_epoch - 1)
        return max(1, last - st.begin_index + 1)

    def _immediate_samples(self, st, k, logs):
        if self.batch_size is not None:
            return self.batch_size * k
        if st.name == "predict":
            return _leading_dim((logs or {}).get("outputs"))
        return None

    def _emit(self, text, st=None):
        if not keras.config.is_interactive_logging_enabled():
            logger.info(text)
            return
        prefix = ""
        if st is not None and st.progbar_open and self._param("verbose") in (1, "auto"):
            # Keras' progress bar may have left a line open: start a fresh one.
            prefix = "\r\x1b[K" if sys.stdout.isatty() else "\n"
        sys.stdout.write(prefix + text + "\n")
        sys.stdout.flush()

    def _param(self, name):
        # Keras passes `params` (verbose, epochs, steps) before the first hook.
        return (self.params or {}).get(name)

    # ------------------------------------------------------------------ hooks

    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._phases.pop("validation", None)
        self._begin("train", steps_per_epoch=self._param("steps"))

    def on_epoch_begin(self, epoch, logs=None):
        st = self._phases.get("train")
        if st is None:
            return
        st.prev_count = 0.0  # Keras resets metrics before each epoch
        steps, epochs = self._param("steps"), self._param("epochs")
        if steps and epochs:
            st.meter.plan(steps * (epochs - epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self._phases["train"].begin_step(batch)

    def on_train_batch_end(self, batch, logs=None):
        self._step_end(self._phases["train"], batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        st = self._phases.get("train")
        if st is None:
            return
        self._epoch_done(st)
        for phase in (st, self._phases.get("validation")):
            if phase is not None and phase.tb is not None:
                phase.tb.flush()

    def on_train_end(self, logs=None):
        self._end("train")
        self._end("validation")
        self._in_fit = False

    def on_test_begin(self, logs=None):
        if self._in_fit:
            # Count the epoch's training samples before Keras resets the
            # loss tracker for validation.
            train = self._phases.get("train")
            if train is not None:
                self._settle(train, boundary=True)
            st = self._phases.get("validation")
            if st is None:
                iterator = getattr(self.model, "_eval_epoch_iterator", None)
                st = self._begin("validation", steps_per_epoch=getattr(iterator, "num_batches", None))
            st.prev_count = 0.0
        else:
            steps = self._param("steps")
            self._begin("evaluate", total_steps=steps, steps_per_epoch=steps)

    def on_test_batch_begin(self, batch, logs=None):
        self._phases["validation" if self._in_fit else "evaluate"].begin_step(batch)

    def on_test_batch_end(self, batch, logs=None):
        self._step_end(self._phases["validation" if self._in_fit else "evaluate"], batch, logs)

    def on_test_end(self, logs=None):
        if self._in_fit:
            st = self._phases.get("validation")
            if st is not None:
                self._epoch_done(st)
        else:
            self._end("evaluate")

    def on_predict_begin(self, logs=None):
        steps = self._param("steps")
        self._begin("predict", total_steps=steps, steps_per_epoch=steps)

    def on_predict_batch_begin(self, batch, logs=None):
        self._phases["predict"].begin_step(batch)

    def on_predict_batch_end(self, batch, logs=None):
        self._step_end(self._phases["predict"], batch, logs)

    def on_predict_end(self, logs=None):
        self._end("predict")


def _loss_count_variable(model):
    """The sample counter of Keras' loss tracker (``Mean(name="loss").count``)."""
    for metric in getattr(model, "metrics", None) or ():
        if isinstance(metric, keras.metrics.Mean) and metric.name == "loss":
            return getattr(metric, "count", None)
    return None


def _variable_reader(variable):
    """Fastest way to read a scalar variable: ``float(v)`` (15 us on a CPU),
    or ``v.numpy()`` for distributed variables that refuse ``float``."""
    try:
        float(variable)
        return lambda: float(variable)
    except TypeError:
        return lambda: float(variable.numpy())


def _leading_dim(outputs):
    """Batch size of a predict step's outputs (first leaf's first dimension)."""
    if outputs is None:
        return None
    if not hasattr(outputs, "shape"):
        leaves = keras.tree.flatten(outputs)
        if not leaves:
            return None
        outputs = leaves[0]
    shape = getattr(outputs, "shape", None)
    if not shape:
        return None
    n = shape[0]
    return None if n is None or (isinstance(n, float) and math.isnan(n)) else int(n)
