"""FLOPs per sample of a Keras model, counted by the backend's own cost analysis.

Convention (docs/metrics.md): one multiply-add is 2 FLOPs. Each backend's
counter follows it:

* TensorFlow: the graph profiler (``tf.compat.v1.profiler`` with the
  ``float_operation`` view) on the traced forward function, or on a traced
  training step (forward, gradients and an SGD update), from the ops'
  registered statistics (``MatMul``, ``Conv2D``, their gradients, element-wise
  ops that register one).
* JAX: XLA's cost analysis of the compiled (``jax.jit``) function.
* PyTorch: ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
  convolutions only; element-wise work is not counted).

A count is taken once, outside any timed step, on a batch of the given
shape; the figure is divided by that batch size. When a backend cannot
count, the result says why instead of guessing.
"""

from __future__ import annotations

import dataclasses

#: What `count_flops` measures: the forward pass, or a training step.
PASSES = ("forward", "train")


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs per sample of one pass, and how they were counted.

    Attributes:
        flops_per_sample: FLOPs per sample (a multiply-add counts 2), or
            ``None`` when the backend could not count.
        method: The counter used (``"tensorflow-profiler"``,
            ``"xla-cost-analysis"``, ``"torch-flop-counter"``).
        note: Why there is no count, or what the count leaves out.
    """

    flops_per_sample: float | None
    method: str
    note: str | None = None


def count_flops(model, inputs, *, training_pass="train"):
    """Counts FLOPs per sample of ``model`` on a batch like ``inputs``.

    Args:
        model: A built Keras model.
        inputs: A batch the model accepts (a NumPy array or a structure of
            them); its leading dimension is the batch size the count is
            divided by. Only shapes and dtypes are used.
        training_pass: ``"forward"`` (inference) or ``"train"`` (forward,
            backward and an SGD update; sparse categorical cross-entropy
            against the model's last output).

    Returns:
        A `FlopCount`; never raises for a model the backend cannot count.
    """
    import keras

    from kerasbench import _validate

    _validate.choice("training_pass", training_pass, PASSES)
    backend = keras.backend.backend()
    counter = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}.get(backend)
    if counter is None:
        return FlopCount(None, backend, f"no FLOP counter for the {backend} backend")
    batch = _batch_size(inputs)
    try:
        flops, note = counter(model, inputs, training_pass == "train")
    except Exception as e:  # noqa: BLE001 - a count is a bonus, never a failure
        return FlopCount(None, _METHODS[backend], f"counting failed: {type(e).__name__}: {e}")
    if not flops:
        return FlopCount(None, _METHODS[backend], note or "the counter found no FLOPs")
    return FlopCount(flops / batch, _METHODS[backend], note)


_METHODS = {"tensorflow": "tensorflow-profiler", "jax": "xla-cost-analysis",
            "torch": "torch-flop-counter"}


def _batch_size(inputs):
    import keras

    first = keras.tree.flatten(inputs)[0]
    return int(first.shape[0])


def _loss(keras, model, inputs):
    out = model(inputs, training=True)
    out = keras.tree.flatten(out)[-1]
    labels = keras.ops.zeros((out.shape[0],), dtype="int32")
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
        labels, out, from_logits=True))


def _tensorflow(model, inputs, train):
    import keras
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    specs = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), inputs)
    if train:
        variables = model.trainable_variables

        def step(x):
            with tf.GradientTape() as tape:
                loss = _loss(keras, model, x)
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads):  # SGD: one multiply-add per weight
                if g is not None:
                    v.assign_sub(0.001 * g)
            return loss
    else:
        def step(x):
            return model(x, training=False)
    graph = tf.function(step).get_concrete_function(specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the profiler warns of a deprecated TF1 helper it uses
    try:
        return model_analyzer.profile(graph, options=options).total_float_ops, None
    finally:
        logger.setLevel(level)


def _jax(model, inputs, train):
    import jax
    import keras

    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def forward(tv, ntv, x, training):
        y, _ = model.stateless_call(tv, ntv, x, training=training)
        return y

    if train:
        def loss(tv, ntv, x):
            out = keras.tree.flatten(forward(tv, ntv, x, True))[-1]
            labels = jax.numpy.zeros((out.shape[0],), dtype="int32")
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
                labels, out, from_logits=True))

        def step(tv, ntv, x):
            grads = jax.grad(loss)(tv, ntv, x)
            return [w - 0.001 * g for w, g in zip(tv, grads)]
    else:
        def step(tv, ntv, x):
            return forward(tv, ntv, x, False)
    # Under a keras.distribution the step is split along the batch and XLA's
    # cost analysis counts one device's share; counting with none set
    # (inputs unsharded, the replicated weights as they are) counts the
    # whole batch. The distribution is put back before returning.
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        analysis = jax.jit(step).lower(trainable, frozen, inputs).compile().cost_analysis()
    finally:
        keras.distribution.set_distribution(distribution)
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per device
        analysis = analysis[0] if analysis else {}
    return (analysis or {}).get("flops"), None


def _torch(model, inputs, train):
    import keras
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    note = "matrix products and convolutions only; element-wise work not counted"
    x = keras.tree.map_structure(lambda a: torch.as_tensor(a), inputs)
    with FlopCounterMode(display=False) as counter:
        if train:
            loss = _loss(keras, model, x)
            loss.backward()
        else:
            with torch.no_grad():
                model(x, training=False)
    if train:
        model.zero_grad(set_to_none=True)  # a Keras layer is a torch.nn.Module here
    return counter.get_total_flops(), note
