"""bottleneck(): is training held back by the input, the compute, or the host?"""

from __future__ import annotations

import time

from kerasbench import _validate
from kerasbench._bottleneck import measure
from kerasbench._bottleneck.result import Bottleneck, from_measurements

DEFAULT_STEPS = 30
DEFAULT_WARMUP_STEPS = 5


def bottleneck(model, data, *, steps=DEFAULT_STEPS, warmup_steps=DEFAULT_WARMUP_STEPS,
               batch_size=None, verbose=1):
    """Measures what limits ``model.fit(data)``: the input, the compute or the host.

    Three measurements of ``warmup_steps + steps`` batches each, warmup left
    out of every figure (docs/bottleneck.md):

    1. the input pipeline alone: the batches read as `fit` reads them, and
       nothing else;
    2. the model alone: its train step on one batch already on the device,
       repeated (``train_on_batch``);
    3. both together: ``model.fit(data, steps_per_epoch=warmup_steps + steps)``
       with `ThroughputCallback`.

    The verdict (``"input-bound"``, ``"compute-bound"`` or
    ``"host-overhead"``) comes from the three per-step times
    (`kerasbench._bottleneck.verdict.diagnose`).

    This trains the model: measurements 2 and 3 run ``2 * (warmup_steps +
    steps)`` optimizer steps on ``data``. The weights (trainable and not) and
    the optimizer's variables are saved before and put back afterwards,
    whether or not a measurement fails; random generator states and
    ``model.history`` are not.

    Args:
        model: A compiled ``keras.Model``.
        data: What you pass to ``fit``: a ``tf.data.Dataset``, a
            ``keras.utils.PyDataset``, a generator of batches, a torch
            ``DataLoader``, or a tuple ``(x, y)`` of arrays with
            ``batch_size``. It must yield ``warmup_steps + steps`` batches
            per pass (a generator: twice that, as it cannot start over).
        steps: Measured steps of each measurement.
        warmup_steps: Steps run first and left out (at most half of a
            measurement's steps are, as in `ThroughputCallback`).
        batch_size: Samples per batch for ``(x, y)`` arrays (default 32, as
            ``fit``); ``None`` for other data, whose batches are already made.
        verbose: 1 prints the verdict, the figures and the remedies; 0 nothing.

    Returns:
        A `Bottleneck`.

    Raises:
        ValueError: On an invalid argument (an uncompiled model, data that
            runs out).

    Example:

    ```python
    found = kerasbench.bottleneck(model, dataset, steps=30)
    print(found.verdict, found.input_images_per_sec, found.compute_images_per_sec)
    ```
    """
    steps = _validate.integer("steps", steps, minimum=1)
    warmup_steps = _validate.integer("warmup_steps", warmup_steps, minimum=0)
    verbose = _validate.integer("verbose", verbose, minimum=0, maximum=1)
    _check_model(model)
    data, batch_size = _check_data(data, batch_size)
    total = warmup_steps + steps
    started = time.perf_counter()
    saved = None
    try:
        input_stats, first = measure.input_pipeline(data, batch_size=batch_size, total=total,
                                                    warmup_steps=warmup_steps)
        saved = _save_state(model, first)
        compute_stats = measure.compute(model, first, total=total, warmup_steps=warmup_steps)
        fit_stats = measure.fit(model, data, batch_size=batch_size, total=total,
                                warmup_steps=warmup_steps)
    finally:
        if saved is not None:
            _restore_state(model, saved)
    import keras

    found = from_measurements(input_stats, compute_stats, fit_stats,
                              samples_per_batch=measure.batch_samples(first),
                              backend=keras.backend.backend(),
                              wall_time_s=time.perf_counter() - started)
    if verbose:
        print(found.summary(), flush=True)
    return found


def _check_model(model):
    import keras

    if not isinstance(model, keras.Model) or not getattr(model, "compiled", False):
        raise ValueError("`model` must be a compiled keras.Model (call "
                         f"model.compile(optimizer=..., loss=...) first). Received: model={model!r}")


def _check_data(data, batch_size):
    """``data`` and the batch size to slice it with (arrays only)."""
    if data is None:
        raise ValueError("`data` must be what you pass to fit: a tf.data.Dataset, a "
                         "PyDataset, a generator or a tuple (x, y) of arrays. Received: data=None")
    if isinstance(data, list):
        data = tuple(data)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("`data` as a tuple must be (x, y). "
                             f"Received: data=a tuple of {len(data)} items")
        return data, _validate.integer("batch_size", 32 if batch_size is None else batch_size,
                                       minimum=1)
    if batch_size is not None:
        raise ValueError("`batch_size` is for (x, y) arrays only: a dataset, PyDataset or "
                         f"generator makes its own batches. Received: batch_size={batch_size!r}")
    return data, None


def _save_state(model, batch):
    """Copies of the weights and optimizer variables (both built first)."""
    import keras

    if not model.built:
        x, _, _ = keras.utils.unpack_x_y_sample_weight(measure.device_batch(batch))
        model(x)
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = [] if optimizer is None else list(optimizer.variables)
    return model.get_weights(), [(v, keras.ops.convert_to_numpy(v.value)) for v in variables]


def _restore_state(model, saved):
    weights, optimizer_values = saved
    model.set_weights(weights)
    for variable, value in optimizer_values:
        variable.assign(value)
