"""FusedBatchNormalization: Keras' batch normalisation in one TensorFlow kernel.

Keras 3's TensorFlow backend computes ``BatchNormalization`` in training as
separate operations: ``moments`` (a mean, then a variance), the
normalisation itself (``tf.nn.batch_normalization``), and, under a
``mixed_bfloat16`` or ``mixed_float16`` policy, a cast of the input to
float32 and of the output back. The gradient of that chain is as many
operations again. TensorFlow has one kernel for all of it,
``FusedBatchNormV3`` (and ``FusedBatchNormGradV3`` for the gradient), which
oneDNN on CPUs and cuDNN on GPUs implement directly, and which takes
bfloat16/float16 activations with float32 statistics, so no cast is needed.
tf_cnn_benchmarks uses that kernel (``convnet_builder.batch_norm``,
``fused=True``); Keras 2 (``tf.keras``) did too by default.

`FusedBatchNormalization` is a drop-in subclass of
``keras.layers.BatchNormalization``: same constructor, same weights
(``gamma``, ``beta``, ``moving_mean``, ``moving_variance``), same
configuration, same outputs within float rounding. It runs the fused kernel
when it can and the parent's code otherwise:

- the backend is TensorFlow (other backends: JAX's XLA fuses the parent's
  operations itself; PyTorch keeps the parent's code);
- the input is 4-D with the normalised axis last (``channels_last``) or
  second (``channels_first``), of dtype float32, bfloat16 or float16;
- no mask, ``renorm=False``, ``synchronized=False``.

One difference, on purpose and documented: the kernel's batch variance
carries Bessel's correction (divides by ``n - 1``, ``n`` = values per
channel); it is undone before the moving variance is updated, so the moving
statistics match the parent's (which divides by ``n``).

`fuse_batch_norm(model)` returns a copy of a functional or sequential model
whose ``BatchNormalization`` layers are `FusedBatchNormalization` layers with
the same configuration and weights.
"""

from __future__ import annotations

import keras

_FUSED_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="kerasbench")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by one fused kernel.

    Takes exactly the arguments of ``keras.layers.BatchNormalization``. On
    the TensorFlow backend, for 4-D inputs normalised over the channel axis,
    training and inference run TensorFlow's ``FusedBatchNormV3`` kernel;
    every other case runs the parent's code unchanged. See the module
    docstring for the exact conditions.

    Example:

    ```python
    x = keras.layers.Conv2D(64, 3, use_bias=False)(inputs)
    x = kerasbench.FusedBatchNormalization()(x)
    ```
    """

    def fused_here(self, inputs, mask=None):
        """Whether `call` uses the fused kernel for ``inputs``."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and len(inputs.shape) == 4
            and self._data_format() is not None
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_DTYPES
        )

    def _data_format(self):
        """``"NHWC"``, ``"NCHW"`` or ``None`` for the layer's axis on 4-D input."""
        axis = self.axis % 4 if isinstance(self.axis, int) else None
        return {3: "NHWC", 1: "NCHW"}.get(axis)

    def call(self, inputs, training=None, mask=None):
        if not self.fused_here(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = self.moving_mean.shape[0]
        scale = self.gamma if self.scale else tf.ones((channels,), tf.float32)
        offset = self.beta if self.center else tf.zeros((channels,), tf.float32)
        train = bool(training) and self.trainable
        empty = tf.constant([], tf.float32)
        outputs = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(scale, tf.float32),
            offset=tf.cast(offset, tf.float32),
            mean=empty if train else tf.cast(self.moving_mean, tf.float32),
            variance=empty if train else tf.cast(self.moving_variance, tf.float32),
            epsilon=float(self.epsilon),
            data_format=self._data_format(),
            is_training=train,
        )
        if train:
            self._update_moving_statistics(inputs, outputs.batch_mean, outputs.batch_variance)
        return tf.cast(outputs.y, self.compute_dtype)

    def _update_moving_statistics(self, inputs, mean, corrected_variance):
        """The parent's moving-average update, from the kernel's statistics."""
        import tensorflow as tf

        shape = tf.shape(inputs)
        per_channel = tf.cast(tf.reduce_prod(shape) // shape[self.axis % 4], tf.float32)
        variance = corrected_variance * (per_channel - 1.0) / tf.maximum(per_channel, 1.0)
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))


def _is_graph_model(model):
    """Whether ``model`` is a functional or sequential Keras model."""
    from keras.src.models.functional import Functional

    return isinstance(model, (Functional, keras.Sequential))


def fuse_batch_norm(model):
    """A copy of ``model`` with every ``BatchNormalization`` fused.

    Each ``keras.layers.BatchNormalization`` of a functional or sequential
    ``model`` becomes a `FusedBatchNormalization` with the same
    configuration; every weight of the copy is the original's. The original
    model is left as it was.

    Args:
        model: A built functional or sequential ``keras.Model``.

    Returns:
        ``(copy, count)``: the new model and how many layers were replaced
        (``0``: the copy has no batch normalisation to fuse).

    Raises:
        ValueError: If ``model`` is a subclassed model (its layers cannot be
            swapped from outside).
    """
    if not _is_graph_model(model):
        raise ValueError(
            "Argument `model` must be a functional or sequential keras.Model. "
            f"Received: model={model!r} (a {type(model).__name__})"
        )
    replaced = []

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization:
            replaced.append(layer.name)
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy, len(replaced)
