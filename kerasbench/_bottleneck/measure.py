"""The three measurements of a bottleneck run, on a real compiled model.

* `input_pipeline`: the batches alone, read the way `fit` reads them: through
  the Keras data adapter `fit` itself uses, and the iterator it gives this
  backend (a `tf.data` dataset on TensorFlow, NumPy batches on JAX, a
  ``DataLoader`` on PyTorch). Nothing is sent to the model.
* `compute`: ``model.train_on_batch`` repeated on one batch already converted
  to the backend's tensors (and so on the model's device): no input pipeline
  at all. ``train_on_batch`` returns the loss as a NumPy value, so every step
  is finished before the next begins.
* `fit`: ``model.fit`` over the same data for ``warmup_steps + steps`` steps,
  timed by `ThroughputCallback`, the path every other figure comes from.

Each skips its first ``warmup_steps`` steps (a `PhaseMeter`, as the
callback, with at most half of the steps as warmup). Only Keras' own data
adapter (``keras.src.trainers.data_adapters``) is not a public API.
"""

from __future__ import annotations

import time

from kerasbench._timing.meter import PhaseMeter

#: Phase names, as they appear in notes and errors.
INPUT, COMPUTE, FIT = "input", "compute", "train"


def _data_error(got, needed):
    return ValueError(
        f"`data` ran out after {got} batches: bottleneck() reads warmup_steps + steps = "
        f"{needed} batches in each measurement. Pass more data, a repeating dataset "
        f"(dataset.repeat()) or fewer steps. Received: {got} batches")


def batch_samples(batch):
    """Samples in a batch: the first dimension of its first input."""
    import keras

    x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
    first = keras.tree.flatten(x)[0]
    return int(first.shape[0])


def _backend_iterator(adapter, backend):
    """The iterator `fit` draws this backend's batches from."""
    if backend == "tensorflow":
        return iter(adapter.get_tf_dataset())
    if backend == "jax":
        return iter(adapter.get_jax_iterator())
    if backend == "torch":
        return iter(adapter.get_torch_dataloader())
    return iter(adapter.get_numpy_iterator())


def input_pipeline(data, *, batch_size, total, warmup_steps, clock=time.perf_counter):
    """Reads ``total`` batches of ``data`` and nothing else.

    Args:
        data: ``(x, y)`` arrays, a `tf.data.Dataset`, a `PyDataset`, a
            generator, or anything else `fit` takes as ``x``.
        batch_size: Samples per batch, for arrays (``None`` otherwise).
        total: Batches to read (warmup included).
        warmup_steps: Batches left out of the figures.
        clock: Seconds.

    Returns:
        ``(ThroughputResult, first_batch)``.

    Raises:
        ValueError: If ``data`` runs out before ``total`` batches.
    """
    import keras
    from keras.src.trainers.data_adapters import get_data_adapter

    x, y = data if isinstance(data, tuple) else (data, None)
    adapter = get_data_adapter(x, y, batch_size=batch_size, steps_per_epoch=total,
                               shuffle=False)
    meter = PhaseMeter(INPUT, warmup_steps=warmup_steps, total_steps=total)
    first = None
    adapter.on_epoch_begin()
    try:
        iterator = _backend_iterator(adapter, keras.backend.backend())
        meter.start(clock())
        for index in range(total):
            try:
                batch = next(iterator)
            except StopIteration:
                raise _data_error(index, total) from None
            meter.step(clock(), samples=batch_samples(batch))
            if first is None:
                first = batch
    finally:
        adapter.on_epoch_end()
    return meter.result(), first


def compute(model, batch, *, total, warmup_steps, clock=time.perf_counter):
    """Runs ``model.train_on_batch`` ``total`` times on ``batch``, on the device.

    Returns:
        The `ThroughputResult` of phase ``"compute"``.
    """
    import keras

    x, y, weights = keras.utils.unpack_x_y_sample_weight(device_batch(batch))
    samples = batch_samples(batch)
    meter = PhaseMeter(COMPUTE, warmup_steps=warmup_steps, total_steps=total)
    meter.start(clock())
    for _ in range(total):
        model.train_on_batch(x, y, sample_weight=weights)
        meter.step(clock(), samples=samples)
    return meter.result()


def device_batch(batch):
    """``batch`` as the backend's tensors, on its default device."""
    import keras

    return keras.tree.map_structure(
        lambda t: None if t is None else keras.ops.convert_to_tensor(t), batch)


def fit(model, data, *, batch_size, total, warmup_steps):
    """``model.fit`` for ``total`` steps with `ThroughputCallback`.

    Returns:
        The callback's ``"train"`` `ThroughputResult`.

    Raises:
        ValueError: If ``fit`` ran fewer than ``total`` steps (data ran out).
    """
    from kerasbench._callback import ThroughputCallback

    cb = ThroughputCallback(warmup_steps=warmup_steps, verbose=0)
    x, y = data if isinstance(data, tuple) else (data, None)
    model.fit(x, y, batch_size=batch_size, steps_per_epoch=total, epochs=1, shuffle=False,
              callbacks=[cb], verbose=0)
    result = cb.results.get(FIT)
    ran = 0 if result is None else result.steps + result.warmup_steps
    if ran < total:
        raise _data_error(ran, total)
    return result
