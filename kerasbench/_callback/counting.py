"""What the callback reads of Keras, on every backend: samples and steps.

Samples come from the count of Keras' loss tracker (``Mean(name="loss")``)
in `fit`/`evaluate`, and from the outputs' first dimension in `predict`;
steps with ``steps_per_execution > 1`` from the optimizer's iterations when
an epoch's length is unknown. How each backend keeps those counters during a
loop, and so how they are read, is in docs/backends.md: on JAX they live in
``model._jax_state`` while a loop runs (the variables themselves are emptied
until the loop ends).
"""

from __future__ import annotations

import math

import keras

from kerasbench import _validate

#: The sample counter is read at least every this many steps, whatever
#: `log_every` is, so pending observations stay few (a read per 1,000 steps
#: costs nothing measurable).
MAX_PENDING_STEPS = 1000
#: Keras' sample counter is a float32: exact up to 2**24 samples per epoch.
EXACT_COUNT = 2.0 ** 24


class Phase:
    """Per-run state of one phase, and how its samples and steps are counted.

    The arithmetic lives in its `PhaseMeter`; this reads Keras. Methods
    return problems (as plain-words reasons) rather than raise or warn: the
    callback decides what to say.
    """

    __slots__ = (
        "name", "loop", "meter", "spe", "steps_per_epoch", "begin_index", "batch_size",
        "read_count", "prev_count", "read_iterations", "prev_iterations", "tb",
        "global_step", "next_log", "read_by", "last_write", "progbar_open", "merging",
        "broken", "stopper", "next_check", "next_event", "figures_step",
        "memory", "energy",
    )

    def __init__(self, name, loop, meter, batch_size=None):
        self.name, self.loop, self.meter, self.batch_size = name, loop, meter, batch_size
        self.spe = 1
        self.steps_per_epoch = self.read_count = self.read_iterations = self.tb = None
        self.begin_index = self.prev_iterations = self.global_step = self.next_log = 0
        self.prev_count = self.last_write = 0.0
        self.read_by = MAX_PENDING_STEPS
        self.progbar_open = self.merging = self.broken = False
        # With stop_at_precision: the phase's `Stopper` and the step of its
        # next check; the step hook acts at next_event, the sooner of that
        # and the next progress line.
        self.stopper = None
        self.next_check = self.next_event = math.inf
        # The TensorBoard step of the latest efficiency figures (`efficiency`).
        self.figures_step = None
        self.memory = None  # the phase's `PeakMemory` (`efficiency.begin`)
        self.energy = None  # the phase's `efficiency.PhaseEnergy` (`efficiency.begin`)

    def reader(self, variable, group):
        """A reader of ``variable`` for this backend: ``(reader, None)`` or ``(None, reason)``."""
        if variable is None:
            return None, None
        try:
            return counter_reader(self.loop.model, variable, group), None
        except Exception as error:  # noqa: BLE001 -- a counter is no reason to stop
            return None, f"Keras' counter cannot be read ({type(error).__name__}: {error})"

    def read_samples(self):
        """Samples since the last read: ``(samples or None, reason counts are lost or None)``."""
        try:
            count = float(self.read_count())
        except Exception as error:  # noqa: BLE001 -- a counter is no reason to stop
            return None, (f"reading Keras' sample counter failed "
                          f"({type(error).__name__}: {error})")
        if not math.isfinite(count):
            return None, f"Keras' sample counter read {count}"
        # A count below the previous one means the metric was reset.
        delta = count - self.prev_count if count >= self.prev_count else count
        self.prev_count = count
        lost = self._past_exact_count() if count > EXACT_COUNT else None
        if delta > 0:
            return int(round(delta)), lost
        return None, lost or "its step function does not update the Keras loss tracker"

    def _past_exact_count(self):
        # The float32 counter skips increments beyond 2**24: count steps instead.
        self.read_count = None
        batch = self.meter.batch_size
        if batch is None or self.meter.varying:
            return ("Keras' float32 sample counter passed 2**24 = 16,777,216 samples in one "
                    "epoch, where it is no longer exact")
        self.batch_size = int(batch)
        self.meter.note(f"from step {self.meter.steps_done} on, samples are counted as steps "
                        f"x {self.batch_size} (the batch size seen until then): Keras' "
                        "float32 sample counter is not exact beyond 2**24 = 16,777,216 "
                        "samples per epoch")
        return None

    def steps_covered(self, end_index):
        """Steps run since the batch-begin hook with ``steps_per_execution > 1``."""
        if self.read_iterations is not None:
            try:
                now = int(self.read_iterations())
            except Exception:  # noqa: BLE001 -- fall back on the batch indices
                self.read_iterations = None
            else:
                k, self.prev_iterations = now - self.prev_iterations, now
                if k > 0:
                    return k
        last = end_index
        if self.steps_per_epoch:
            # Keras reports begin + N - 1 even when fewer steps were left.
            last = min(last, self.steps_per_epoch - 1)
        return max(1, last - self.begin_index + 1)

    def immediate_samples(self, k, logs):
        """Samples of ``k`` steps known at once (no counter to read), or ``None``."""
        if self.batch_size is not None:
            return self.batch_size * k
        if self.name == "predict":
            return leading_dim((logs or {}).get("outputs"))
        return None


def count(value, minimum=0):
    """``value`` as an int if it is an integer >= ``minimum``, else ``None``."""
    try:
        return _validate.integer("value", value, minimum=minimum)
    except ValueError:
        return None


def loss_count_variable(model):
    """The sample counter of Keras' loss tracker (``Mean(name="loss").count``)."""
    for metric in getattr(model, "metrics", None) or ():
        if isinstance(metric, keras.metrics.Mean) and metric.name == "loss":
            return getattr(metric, "count", None)
    return None


def counter_reader(model, variable, group):
    """A function reading a scalar Keras variable's current value during a loop.

    On JAX, Keras keeps the loop's state in ``model._jax_state`` (the
    variables themselves are emptied until the loop syncs them back), so the
    value is read there, in ``group`` (``"metrics_variables"`` or
    ``"optimizer_variables"``) at the variable's index; elsewhere the
    variable itself is current.
    """
    if keras.backend.backend() != "jax":
        return variable_reader(variable)
    if group == "metrics_variables":
        holders = model.metrics_variables
    else:
        holders = model.optimizer.variables
    index = next(i for i, v in enumerate(holders) if v is variable)

    def read():
        state = getattr(model, "_jax_state", None)
        values = state.get(group) if state else None
        return float(values[index]) if values else float(variable)

    return read


def variable_reader(variable):
    """Fastest way to read a scalar variable: ``float(v)`` (15 us on a CPU),
    or ``v.numpy()`` for distributed variables that refuse ``float``."""
    try:
        float(variable)
        return lambda: float(variable)
    except TypeError:
        return lambda: float(variable.numpy())


def leading_dim(outputs):
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
