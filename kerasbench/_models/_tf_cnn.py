"""Models from tf_cnn_benchmarks, rebuilt with Keras 3 layers.

The layer definitions, image sizes and initialisers follow
tensorflow/benchmarks ``scripts/tf_cnn_benchmarks/models/alexnet_model.py``,
``trivial_model.py`` and ``lenet_model.py`` and the defaults of its
``convnet_builder.py`` and ``models/model.py``, so throughput figures compare
with that project's:

- ``conv``: bias (initialised to 0), ReLU, ``SAME`` padding unless stated,
  no batch normalisation, kernel initialiser ``variance_scaling`` (scale 1,
  fan-in, truncated normal: Keras' ``lecun_normal``).
- ``mpool``: max pooling, stride 2, ``VALID`` padding unless stated.
- ``affine``: dense layer with bias (0) and ReLU, weights drawn from a normal
  distribution truncated at two standard deviations with
  ``stddev = sqrt(2 / fan_in)`` (``sqrt(1 / fan_in)`` without ReLU).
- ``dropout``: keep probability 0.5 (Keras rate 0.5), training only.
- After the model's own layers, tf_cnn_benchmarks adds one linear ``affine``
  layer producing the logits; so do these builders.

Differences, on purpose: the class count is a parameter (tf_cnn_benchmarks
uses 1001 for ImageNet, the registry's figures use 1000); ``Flatten`` accepts
any image size at or above the minimum, where tf_cnn_benchmarks hard-codes
the flattened size of its default image size; and channels-first models take
channels-first images (tf_cnn_benchmarks feeds NHWC images and transposes them
inside the graph).

Keras is imported inside the builders, so importing this module is cheap.
"""

from __future__ import annotations

import math

from kerasbench._models._registry import register_model


def _conv(layers, x, filters, kernel, strides=1, padding="same", *, data_format, name):
    """tf_cnn_benchmarks' ``cnn.conv``: convolution, bias and ReLU."""
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        data_format=data_format,
        activation="relu",
        use_bias=True,
        kernel_initializer="lecun_normal",
        bias_initializer="zeros",
        name=name,
    )(x)


def _mpool(layers, x, pool, strides=2, *, data_format, name):
    """tf_cnn_benchmarks' ``cnn.mpool``: max pooling, ``VALID`` padding."""
    return layers.MaxPooling2D(
        pool, strides=strides, padding="valid", data_format=data_format, name=name
    )(x)


def _flatten(layers, x, *, name="flatten"):
    """tf_cnn_benchmarks' ``cnn.reshape([-1, n])``: a plain reshape.

    ``data_format="channels_last"`` keeps Keras from transposing a
    channels-first tensor to channels-last first: tf_cnn_benchmarks reshapes
    the tensor in its own layout, so neither layout pays for a transpose.
    """
    return layers.Flatten(data_format="channels_last", name=name)(x)


def _affine(keras, x, units, *, relu=True, name):
    """tf_cnn_benchmarks' ``cnn.affine``: dense layer with its initialiser."""
    fan_in = x.shape[-1]
    stddev = math.sqrt((2.0 if relu else 1.0) / fan_in)
    return keras.layers.Dense(
        units,
        activation="relu" if relu else None,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=stddev),
        bias_initializer="zeros",
        name=name,
    )(x)


@register_model(
    "alexnet",
    image_size=227,
    min_image_size=67,
    params=61_838_248,
    description="AlexNet as in tf_cnn_benchmarks: 5 convs, 3 max-pools, 2 FC-4096 with dropout.",
    source="tf_cnn_benchmarks alexnet_model.py (AlexnetModel)",
)
def alexnet(input_shape, num_classes, data_format):
    """AlexNet, one tower, as tf_cnn_benchmarks' ``AlexnetModel`` defines it.

    Image size 227 = 224 + 3, so that the 11x11 stride-4 ``VALID`` first
    convolution gives 55x55. Shapes at 227 (channels-last):

    ======== ====================== ============
    layer    op                     output
    ======== ====================== ============
    conv1    64, 11x11 /4, VALID    55x55x64
    pool1    max 3x3 /2             27x27x64
    conv2    192, 5x5, SAME         27x27x192
    pool2    max 3x3 /2             13x13x192
    conv3    384, 3x3, SAME         13x13x384
    conv4    384, 3x3, SAME         13x13x384
    conv5    256, 3x3, SAME         13x13x256
    pool3    max 3x3 /2             6x6x256
    flatten                         9216
    fc1      4096 + dropout 0.5     4096
    fc2      4096 + dropout 0.5     4096
    logits   num_classes, linear    num_classes
    ======== ====================== ============

    The smallest input is 67: it gives 15 after conv1, then 7, 3 and 1 after
    the three pools; 66 would leave pool3 nothing to pool.

    Args:
        input_shape: ``(size, size, 3)`` or ``(3, size, size)``.
        num_classes: Size of the logits layer.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        An uncompiled ``keras.Model`` named ``"alexnet"``.
    """
    import keras

    layers = keras.layers
    df = data_format
    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv(layers, inputs, 64, 11, 4, "valid", data_format=df, name="conv1")
    x = _mpool(layers, x, 3, data_format=df, name="pool1")
    x = _conv(layers, x, 192, 5, data_format=df, name="conv2")
    x = _mpool(layers, x, 3, data_format=df, name="pool2")
    x = _conv(layers, x, 384, 3, data_format=df, name="conv3")
    x = _conv(layers, x, 384, 3, data_format=df, name="conv4")
    x = _conv(layers, x, 256, 3, data_format=df, name="conv5")
    x = _mpool(layers, x, 3, data_format=df, name="pool3")
    x = _flatten(layers, x)
    x = _affine(keras, x, 4096, name="fc1")
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = _affine(keras, x, 4096, name="fc2")
    x = layers.Dropout(0.5, name="dropout2")(x)
    logits = _affine(keras, x, num_classes, relu=False, name="logits")
    return keras.Model(inputs, logits, name="alexnet")


@register_model(
    "trivial",
    image_size=227,
    min_image_size=1,
    params=4_259_780,
    description="tf_cnn_benchmarks' trivial model: flatten, FC-1, FC-4096, logits (input-bound).",
    source="tf_cnn_benchmarks trivial_model.py (TrivialModel)",
)
def trivial(input_shape, num_classes, data_format):
    """The trivial model of tf_cnn_benchmarks: almost no compute per image.

    Flatten the image, a 1-unit ReLU layer, a 4096-unit ReLU layer, then the
    logits. Useful to measure the input pipeline and per-step overhead.
    Default image size 227 (224 + 3) as in tf_cnn_benchmarks; any size works.

    Args:
        input_shape: ``(size, size, 3)`` or ``(3, size, size)``.
        num_classes: Size of the logits layer.
        data_format: ``"channels_last"`` or ``"channels_first"`` (only the
            input layout; the model has no spatial layers).

    Returns:
        An uncompiled ``keras.Model`` named ``"trivial"``.
    """
    del data_format  # No spatial layer: the flatten is a plain reshape.
    import keras

    inputs = keras.Input(shape=input_shape, name="images")
    x = _flatten(keras.layers, inputs)
    x = _affine(keras, x, 1, name="fc1")
    x = _affine(keras, x, 4096, name="fc2")
    logits = _affine(keras, x, num_classes, relu=False, name="logits")
    return keras.Model(inputs, logits, name="trivial")


@register_model(
    "lenet",
    image_size=28,
    min_image_size=4,
    params=2_172_840,
    description="LeNet-5 as in tf_cnn_benchmarks (TF MNIST tutorial): 2 convs, FC-512, 3 channels.",
    source="tf_cnn_benchmarks lenet_model.py (Lenet5Model)",
)
def lenet(input_shape, num_classes, data_format):
    """LeNet-5 as tf_cnn_benchmarks' ``Lenet5Model`` defines it.

    28x28 images with 3 channels (tf_cnn_benchmarks' synthetic data always
    has 3): conv 32 5x5 SAME (28x28x32), max-pool 2x2 /2 (14x14), conv 64 5x5
    SAME (14x14x64), max-pool 2x2 /2 (7x7x64), flatten (3136), FC 512, logits.
    The smallest input is 4 (two 2x2 pools leave 1x1).

    Args:
        input_shape: ``(size, size, 3)`` or ``(3, size, size)``.
        num_classes: Size of the logits layer.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        An uncompiled ``keras.Model`` named ``"lenet"``.
    """
    import keras

    layers = keras.layers
    df = data_format
    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv(layers, inputs, 32, 5, data_format=df, name="conv1")
    x = _mpool(layers, x, 2, data_format=df, name="pool1")
    x = _conv(layers, x, 64, 5, data_format=df, name="conv2")
    x = _mpool(layers, x, 2, data_format=df, name="pool2")
    x = _flatten(layers, x)
    x = _affine(keras, x, 512, name="fc1")
    logits = _affine(keras, x, num_classes, relu=False, name="logits")
    return keras.Model(inputs, logits, name="lenet")
