"""Models from ``keras.applications``, with random weights.

Every builder calls the application with ``weights=None`` (nothing is
downloaded), ``include_top=True``, ``classes=num_classes``, an explicit
``input_shape`` and ``classifier_activation=None``, so that, like the
tf_cnn_benchmarks models, the model ends in logits rather than a softmax.
The data format is the one `create_model` sets in
``keras.config.image_data_format()`` while the builder runs: that is the
setting the applications read.

Minimum image sizes are the ones the applications enforce
(``imagenet_utils.obtain_input_shape``): 75 for InceptionV3, 32 for the
others. NASNet and DenseNet refuse ``channels_first`` in Keras 3, so their
entries list ``channels_last`` only. Parameter counts include the
non-trainable batch-normalisation statistics, as ``model.count_params()``
does; they match the figures of the Keras applications documentation.

Keras is imported inside the builders, so importing this module is cheap.
"""

from __future__ import annotations

from kerasbench._models._registry import DATA_FORMATS, register_model

_CHANNELS_LAST_ONLY = ("channels_last",)


def _register_application(
    name, attr, *, image_size, min_image_size, params, description, data_formats=DATA_FORMATS
):
    """Registers ``keras.applications.<attr>`` under ``name``."""
    source = f"keras.applications.{attr}"

    def build(input_shape, num_classes, data_format):
        del data_format  # The application reads keras.config.image_data_format().
        import keras

        application = getattr(keras.applications, attr)
        return application(
            include_top=True,
            weights=None,
            input_shape=input_shape,
            classes=num_classes,
            classifier_activation=None,
            name=name,
        )

    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = (
        f"`{source}` with random weights, returning logits.\n\n"
        f"Default image size {image_size}, minimum {min_image_size}.\n"
    )
    register_model(
        name,
        image_size=image_size,
        min_image_size=min_image_size,
        params=params,
        description=description,
        source=source,
        data_formats=data_formats,
    )(build)
    return build


resnet50 = _register_application(
    "resnet50",
    "ResNet50",
    image_size=224,
    min_image_size=32,
    params=25_636_712,
    description="ResNet-50 v1 (bottleneck blocks 3-4-6-3), batch norm.",
)
resnet101 = _register_application(
    "resnet101",
    "ResNet101",
    image_size=224,
    min_image_size=32,
    params=44_707_176,
    description="ResNet-101 v1 (bottleneck blocks 3-4-23-3), batch norm.",
)
resnet152 = _register_application(
    "resnet152",
    "ResNet152",
    image_size=224,
    min_image_size=32,
    params=60_419_944,
    description="ResNet-152 v1 (bottleneck blocks 3-8-36-3), batch norm.",
)
inception3 = _register_application(
    "inception3",
    "InceptionV3",
    image_size=299,
    min_image_size=75,
    params=23_851_784,
    description="Inception v3 at 299x299, without the auxiliary classifier.",
)
vgg16 = _register_application(
    "vgg16",
    "VGG16",
    image_size=224,
    min_image_size=32,
    params=138_357_544,
    description="VGG-16: 13 convs 3x3, 5 max-pools, 2 FC-4096, no batch norm.",
)
nasnet = _register_application(
    "nasnet",
    "NASNetMobile",
    image_size=224,
    min_image_size=32,
    params=5_326_716,
    description="NASNet-A Mobile (4 @ 1056) at 224x224.",
    data_formats=_CHANNELS_LAST_ONLY,
)
nasnetlarge = _register_application(
    "nasnetlarge",
    "NASNetLarge",
    image_size=331,
    min_image_size=32,
    params=88_949_818,
    description="NASNet-A Large (6 @ 4032) at 331x331.",
    data_formats=_CHANNELS_LAST_ONLY,
)
mobilenet_v2 = _register_application(
    "mobilenet_v2",
    "MobileNetV2",
    image_size=224,
    min_image_size=32,
    params=3_538_984,
    description="MobileNet v2, width multiplier 1.0, inverted residual blocks.",
)
densenet121 = _register_application(
    "densenet121",
    "DenseNet121",
    image_size=224,
    min_image_size=32,
    params=8_062_504,
    description="DenseNet-121 (dense blocks 6-12-24-16, growth rate 32).",
    data_formats=_CHANNELS_LAST_ONLY,
)
