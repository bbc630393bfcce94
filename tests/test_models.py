"""Tests of the model registry (kerasbench._models).

The registry drives the per-model tests: every name `list_models()` returns is
built at its minimum image size and trained for one step, and its documented
parameter count is checked by building it at its default size. No weights are
downloaded (every Keras application is built with ``weights=None``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from kerasbench._models import (
    ModelInfo,
    create_model,
    list_models,
    model_info,
    register_model,
)
from kerasbench._models import _registry

#: Models whose build-and-train test takes more than a few seconds here. Their
#: training step runs eagerly: tracing the train function of these deep graphs
#: costs 5-30 s each on two CPU cores (nasnetlarge: 31 s traced, 5 s eager),
#: and graph-mode training is still covered by the other models.
SLOW_MODELS = {
    "densenet121",
    "inception3",
    "nasnet",
    "nasnetlarge",
    "resnet101",
    "resnet152",
}

REQUIRED_MODELS = {
    "alexnet",
    "trivial",
    "lenet",
    "resnet50",
    "resnet101",
    "resnet152",
    "inception3",
    "vgg16",
    "nasnet",
    "nasnetlarge",
    "mobilenet_v2",
    "densenet121",
}

ALL_MODELS = list_models()


def _params(names, slow=()):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


@pytest.fixture
def keras():
    """Keras, with a fresh global state before and after the test."""
    import keras

    keras.backend.clear_session()
    yield keras
    keras.backend.clear_session()


@pytest.fixture
def spy_builders(scratch_registry):
    """Replaces every builder with one that records its calls and builds nothing."""
    calls = []

    def spy(**kwargs):
        calls.append(kwargs)
        return None

    for name, entry in list(scratch_registry.items()):
        scratch_registry[name] = dataclasses.replace(entry, builder=spy)
    return calls


# --------------------------------------------------------------------------
# Every registered model: build, forward, one training step; parameter count.
# --------------------------------------------------------------------------


def test_registry_holds_the_required_models():
    assert REQUIRED_MODELS <= set(ALL_MODELS)


@pytest.mark.parametrize("name", _params(ALL_MODELS, SLOW_MODELS))
def test_model_trains_one_step_at_min_image_size(keras, name):
    info = model_info(name)
    num_classes = 3
    model = create_model(name, image_size=info.min_image_size, num_classes=num_classes)

    assert name in model.name
    assert not model.compiled
    assert tuple(model.input_shape) == (None, info.min_image_size, info.min_image_size, 3)
    assert tuple(model.output_shape) == (None, num_classes)

    rng = np.random.default_rng(0)
    x = rng.random((2, info.min_image_size, info.min_image_size, 3), dtype=np.float32)
    y = np.array([0, num_classes - 1])
    out = keras.ops.convert_to_numpy(model(x, training=False))
    assert out.shape == (2, num_classes)
    assert np.all(np.isfinite(out))

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=name in SLOW_MODELS,
    )
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
    assert math.isfinite(history.history["loss"][0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_documented_params_match_the_built_model(keras, name):
    info = model_info(name)
    model = create_model(name, num_classes=1000)
    assert tuple(model.input_shape) == (None, info.image_size, info.image_size, 3)
    assert tuple(model.output_shape) == (None, 1000)
    assert model.count_params() == info.params


@pytest.mark.parametrize(
    "name", [n for n in ALL_MODELS if model_info(n).min_image_size > 1]
)
def test_min_image_size_is_tight(keras, name):
    # One pixel less than the documented minimum must be refused by the model
    # itself (called directly, past create_model's own check).
    size = model_info(name).min_image_size - 1
    builder = _registry._REGISTRY[name].builder
    with pytest.raises(ValueError):
        builder(input_shape=(size, size, 3), num_classes=3, data_format="channels_last")


# --------------------------------------------------------------------------
# tf_cnn_benchmarks models: layer shapes and definitions.
# --------------------------------------------------------------------------


def _valid(n, k, s):
    """Output size of a VALID window of size k and stride s over n pixels."""
    return (n - k) // s + 1


def _alexnet_expected_shapes(n):
    conv1 = _valid(n, 11, 4)
    pool1 = _valid(conv1, 3, 2)
    pool2 = _valid(pool1, 3, 2)  # conv2 is SAME, stride 1: same size
    pool3 = _valid(pool2, 3, 2)  # conv3-5 are SAME, stride 1
    return {
        "conv1": (conv1, conv1, 64),
        "pool1": (pool1, pool1, 64),
        "conv2": (pool1, pool1, 192),
        "pool2": (pool2, pool2, 192),
        "conv3": (pool2, pool2, 384),
        "conv4": (pool2, pool2, 384),
        "conv5": (pool2, pool2, 256),
        "pool3": (pool3, pool3, 256),
    }


def test_alexnet_shapes_match_tf_cnn_benchmarks(keras):
    expected = _alexnet_expected_shapes(227)
    # The figures tf_cnn_benchmarks' AlexNet gives at 224 + 3.
    assert expected["conv1"] == (55, 55, 64)
    assert expected["pool1"] == (27, 27, 64)
    assert expected["conv2"] == (27, 27, 192)
    assert expected["pool2"] == (13, 13, 192)
    assert expected["conv5"] == (13, 13, 256)
    assert expected["pool3"] == (6, 6, 256)

    model = create_model("alexnet", num_classes=1000)
    assert tuple(model.input_shape) == (None, 227, 227, 3)
    for layer_name, shape in expected.items():
        assert tuple(model.get_layer(layer_name).output.shape) == (None, *shape), layer_name
    assert tuple(model.get_layer("flatten").output.shape) == (None, 256 * 6 * 6)
    assert tuple(model.get_layer("fc1").output.shape) == (None, 4096)
    assert tuple(model.get_layer("fc2").output.shape) == (None, 4096)
    assert tuple(model.get_layer("logits").output.shape) == (None, 1000)


def test_alexnet_layer_definitions_follow_tf_cnn_benchmarks(keras):
    model = create_model("alexnet", num_classes=10)
    convs = {
        "conv1": (64, (11, 11), (4, 4), "valid"),
        "conv2": (192, (5, 5), (1, 1), "same"),
        "conv3": (384, (3, 3), (1, 1), "same"),
        "conv4": (384, (3, 3), (1, 1), "same"),
        "conv5": (256, (3, 3), (1, 1), "same"),
    }
    for name, (filters, kernel, strides, padding) in convs.items():
        layer = model.get_layer(name)
        assert isinstance(layer, keras.layers.Conv2D), name
        assert (layer.filters, layer.kernel_size, layer.strides, layer.padding) == (
            filters,
            kernel,
            strides,
            padding,
        ), name
        assert layer.use_bias and layer.activation is keras.activations.relu, name
    for name in ("pool1", "pool2", "pool3"):
        layer = model.get_layer(name)
        assert isinstance(layer, keras.layers.MaxPooling2D), name
        assert (layer.pool_size, layer.strides, layer.padding) == ((3, 3), (2, 2), "valid")
    for name in ("fc1", "fc2"):
        layer = model.get_layer(name)
        assert layer.units == 4096 and layer.activation is keras.activations.relu, name
    for name in ("dropout1", "dropout2"):
        assert model.get_layer(name).rate == 0.5
    logits = model.get_layer("logits")
    assert logits.units == 10 and logits.use_bias
    assert logits.activation is keras.activations.linear
    # The layer order: conv1 pool1 conv2 pool2 conv3 conv4 conv5 pool3
    # flatten fc1 dropout1 fc2 dropout2 logits.
    order = [layer.name for layer in model.layers[1:]]
    assert order == [
        "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool3",
        "flatten", "fc1", "dropout1", "fc2", "dropout2", "logits",
    ]  # fmt: skip


def test_alexnet_min_image_size_gives_1x1(keras):
    size = model_info("alexnet").min_image_size
    assert _alexnet_expected_shapes(size)["pool3"] == (1, 1, 256)
    assert _valid(_valid(_valid(_valid(size - 1, 11, 4), 3, 2), 3, 2), 3, 2) == 0
    model = create_model("alexnet", image_size=size, num_classes=5)
    assert tuple(model.get_layer("pool3").output.shape) == (None, 1, 1, 256)


def test_alexnet_channels_first(keras):
    model = create_model("alexnet", num_classes=7, data_format="channels_first")
    assert tuple(model.input_shape) == (None, 3, 227, 227)
    for layer_name, (h, w, c) in _alexnet_expected_shapes(227).items():
        assert tuple(model.get_layer(layer_name).output.shape) == (None, c, h, w), layer_name
    assert model.count_params() == create_model("alexnet", num_classes=7).count_params()
    assert keras.config.image_data_format() == "channels_last"

    small = create_model("alexnet", image_size=67, num_classes=7, data_format="channels_first")
    x = np.random.default_rng(1).random((2, 3, 67, 67), dtype=np.float32)
    assert keras.ops.convert_to_numpy(small(x)).shape == (2, 7)


def test_lenet_shapes_match_tf_cnn_benchmarks(keras):
    model = create_model("lenet", num_classes=10)
    assert tuple(model.input_shape) == (None, 28, 28, 3)
    expected = {
        "conv1": (28, 28, 32),
        "pool1": (14, 14, 32),
        "conv2": (14, 14, 64),
        "pool2": (7, 7, 64),
        "flatten": (64 * 7 * 7,),
        "fc1": (512,),
        "logits": (10,),
    }
    for layer_name, shape in expected.items():
        assert tuple(model.get_layer(layer_name).output.shape) == (None, *shape), layer_name
    assert model.get_layer("conv1").kernel_size == (5, 5)
    assert model.get_layer("conv2").kernel_size == (5, 5)


def test_trivial_shapes_match_tf_cnn_benchmarks(keras):
    model = create_model("trivial", num_classes=10)
    assert tuple(model.input_shape) == (None, 227, 227, 3)
    expected = {"flatten": (227 * 227 * 3,), "fc1": (1,), "fc2": (4096,), "logits": (10,)}
    for layer_name, shape in expected.items():
        assert tuple(model.get_layer(layer_name).output.shape) == (None, *shape), layer_name


# --------------------------------------------------------------------------
# Keras applications: data formats.
# --------------------------------------------------------------------------


def test_application_channels_first(keras):
    model = create_model("resnet50", image_size=32, num_classes=4, data_format="channels_first")
    assert tuple(model.input_shape) == (None, 3, 32, 32)
    assert tuple(model.output_shape) == (None, 4)
    assert model.get_layer("conv1_bn").axis in (1, [1])
    assert keras.config.image_data_format() == "channels_last"


def test_data_format_default_follows_keras_config(keras):
    keras.config.set_image_data_format("channels_first")
    try:
        model = create_model("lenet", num_classes=2)
        assert tuple(model.input_shape) == (None, 3, 28, 28)
        with pytest.raises(ValueError, match=r"keras\.config\.image_data_format"):
            create_model("nasnet", image_size=32, num_classes=2)
        assert keras.config.image_data_format() == "channels_first"
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.mark.parametrize("name", ["nasnet", "nasnetlarge", "densenet121"])
def test_channels_last_only_models_refuse_channels_first(keras, spy_builders, name):
    assert model_info(name).data_formats == ("channels_last",)
    with pytest.raises(ValueError, match=f"{name} supports only data_format='channels_last'"):
        create_model(name, data_format="channels_first")
    assert spy_builders == []


def test_image_data_format_restored_when_builder_fails(keras, scratch_registry):
    @register_model(
        "broken",
        image_size=8,
        min_image_size=1,
        params=1,
        description="Always fails.",
        source="test",
    )
    def broken(input_shape, num_classes, data_format):
        assert keras.config.image_data_format() == data_format == "channels_first"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        create_model("broken", data_format="channels_first")
    assert keras.config.image_data_format() == "channels_last"


# --------------------------------------------------------------------------
# list_models, model_info, ModelInfo
# --------------------------------------------------------------------------


def test_list_models_wildcards_and_natural_sort():
    assert list_models("resnet*") == ["resnet50", "resnet101", "resnet152"]
    assert list_models("nasnet*") == ["nasnet", "nasnetlarge"]
    assert list_models("?enet") == ["lenet"]
    assert list_models("*net1*") == ["densenet121", "resnet101", "resnet152"]
    assert list_models("RESNET5*") == ["resnet50"]
    assert list_models("alexnet") == ["alexnet"]
    assert list_models("nothing*") == []
    assert list_models("resnet") == []


def test_list_models_default_lists_everything_in_natural_order():
    names = list_models()
    assert names == list_models("*")
    assert len(names) == len(set(names)) == len(_registry._REGISTRY)
    assert names.index("resnet50") < names.index("resnet101") < names.index("resnet152")
    assert names.index("nasnet") < names.index("nasnetlarge")
    assert names[:3] == ["alexnet", "densenet121", "inception3"]


def test_natural_sort_orders_numbers_by_value(scratch_registry):
    for name in ("net9", "net10", "net2", "net2b", "net"):
        register_model(
            name, image_size=8, min_image_size=1, params=1, description="x", source="test"
        )(lambda **kwargs: None)
    assert list_models("net*") == ["net", "net2", "net2b", "net9", "net10"]


def test_list_models_rejects_non_string_pattern():
    with pytest.raises(ValueError, match="`pattern` must be a string"):
        list_models(["resnet*"])


def test_model_info_fields():
    info = model_info("inception3")
    assert isinstance(info, ModelInfo)
    assert (info.name, info.image_size, info.min_image_size) == ("inception3", 299, 75)
    assert info.source == "keras.applications.InceptionV3"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.image_size = 224
    d = info.to_dict()
    assert d == {
        "name": "inception3",
        "image_size": 299,
        "min_image_size": 75,
        "params": 23_851_784,
        "description": info.description,
        "source": "keras.applications.InceptionV3",
        "data_formats": ["channels_last", "channels_first"],
    }
    assert json.loads(json.dumps(d)) == d


def test_documented_sizes():
    expected = {
        "alexnet": (227, 67),
        "trivial": (227, 1),
        "lenet": (28, 4),
        "resnet50": (224, 32),
        "resnet101": (224, 32),
        "resnet152": (224, 32),
        "inception3": (299, 75),
        "vgg16": (224, 32),
        "nasnet": (224, 32),
        "nasnetlarge": (331, 32),
        "mobilenet_v2": (224, 32),
        "densenet121": (224, 32),
    }
    for name, sizes in expected.items():
        info = model_info(name)
        assert (info.image_size, info.min_image_size) == sizes, name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_info_is_consistent(name):
    info = model_info(name)
    assert info.name == name
    assert info.image_size >= info.min_image_size >= 1
    assert info.params > 0
    assert info.description.strip() and "\n" not in info.description
    assert info.source.strip()
    assert info.data_formats and set(info.data_formats) <= {"channels_last", "channels_first"}


def test_application_sources_name_real_keras_applications():
    import keras

    for name in ALL_MODELS:
        source = model_info(name).source
        if source.startswith("keras.applications."):
            assert callable(getattr(keras.applications, source.rsplit(".", 1)[1])), name
        else:
            assert source.startswith("tf_cnn_benchmarks "), name


def test_import_and_listing_do_not_import_keras():
    code = (
        "import sys\n"
        "import kerasbench._models as m\n"
        "assert 'alexnet' in m.list_models()\n"
        "assert m.model_info('vgg16').params > 0\n"
        "print(sorted(k for k in ('keras', 'tensorflow') if k in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------
# create_model / model_info: argument validation (before any building).
# --------------------------------------------------------------------------


def test_unknown_name_suggests_and_lists(spy_builders):
    available = ", ".join(list_models())
    with pytest.raises(ValueError) as excinfo:
        create_model("resnt50")
    assert str(excinfo.value) == (
        f"Unknown model: 'resnt50'. Did you mean 'resnet50'? Available models: {available}."
    )
    assert "Available models: alexnet, densenet121, " in str(excinfo.value)

    with pytest.raises(ValueError) as excinfo:
        model_info("inception_v3")
    assert "Did you mean 'inception3'?" in str(excinfo.value)

    with pytest.raises(ValueError) as excinfo:
        create_model("zzzz")
    assert str(excinfo.value) == f"Unknown model: 'zzzz'. Available models: {available}."

    with pytest.raises(ValueError, match="Unknown model: None"):
        create_model(None)
    assert spy_builders == []


@pytest.mark.parametrize("image_size", [0, -1, 3.5, 224.0, "224", True, [224]])
def test_image_size_must_be_a_positive_int(spy_builders, image_size):
    with pytest.raises(ValueError) as excinfo:
        create_model("resnet50", image_size=image_size)
    assert str(excinfo.value) == (
        f"`image_size` must be a positive integer or None. Received: image_size={image_size!r}"
    )
    assert spy_builders == []


@pytest.mark.parametrize(
    "name, image_size, minimum",
    [("inception3", 32, 75), ("alexnet", 66, 67), ("resnet50", 31, 32), ("lenet", 3, 4)],
)
def test_image_size_below_minimum(spy_builders, name, image_size, minimum):
    with pytest.raises(ValueError) as excinfo:
        create_model(name, image_size=image_size)
    assert str(excinfo.value) == (
        f"`image_size` must be at least {minimum} for {name}. Received: image_size={image_size}"
    )
    assert spy_builders == []


@pytest.mark.parametrize("num_classes", [0, -3, 2.0, "10", None, True])
def test_num_classes_must_be_a_positive_int(spy_builders, num_classes):
    with pytest.raises(ValueError) as excinfo:
        create_model("alexnet", num_classes=num_classes)
    assert str(excinfo.value) == (
        f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}"
    )
    assert spy_builders == []


@pytest.mark.parametrize("data_format", ["NCHW", "channels-last", "", 0])
def test_data_format_must_be_known(spy_builders, data_format):
    with pytest.raises(ValueError) as excinfo:
        create_model("alexnet", data_format=data_format)
    assert str(excinfo.value) == (
        "`data_format` must be None, 'channels_last' or 'channels_first'. "
        f"Received: data_format={data_format!r}"
    )
    assert spy_builders == []


def test_valid_arguments_reach_the_builder(spy_builders):
    create_model("alexnet")
    create_model("alexnet", image_size=np.int64(100), num_classes=np.int32(1))
    create_model("resnet50", image_size=64, num_classes=10, data_format="channels_first")
    assert spy_builders == [
        {"input_shape": (227, 227, 3), "num_classes": 1000, "data_format": "channels_last"},
        {"input_shape": (100, 100, 3), "num_classes": 1, "data_format": "channels_last"},
        {"input_shape": (3, 64, 64), "num_classes": 10, "data_format": "channels_first"},
    ]
    assert all(type(v) is int for call in spy_builders for v in call["input_shape"])
    assert all(type(call["num_classes"]) is int for call in spy_builders)


# --------------------------------------------------------------------------
# register_model
# --------------------------------------------------------------------------


def test_register_model_adds_a_buildable_model(keras, scratch_registry):
    @register_model(
        "tiny_dense",
        image_size=8,
        min_image_size=2,
        params=8 * 8 * 3 * 5 + 5,
        description="Flatten and one dense layer.",
        source="test",
    )
    def tiny_dense(input_shape, num_classes, data_format):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="tiny_dense")

    assert tiny_dense.__name__ == "tiny_dense"  # the decorator returns the builder
    assert "tiny_dense" in list_models("tiny*")
    model = create_model("tiny_dense", num_classes=5)
    assert model.count_params() == model_info("tiny_dense").params
    with pytest.raises(ValueError, match="at least 2 for tiny_dense"):
        create_model("tiny_dense", image_size=1)


def test_register_model_rejects_duplicates_and_bad_metadata(scratch_registry):
    good = dict(image_size=8, min_image_size=1, params=1, description="d", source="s")
    with pytest.raises(ValueError, match="already registered"):
        register_model("alexnet", **good)
    for bad_name in ("", "ResNet", "9net", "res-net", None):
        with pytest.raises(ValueError, match="`name` must be"):
            register_model(bad_name, **good)
    bad = [
        ({"min_image_size": 0}, "`min_image_size` must be a positive integer"),
        ({"image_size": 4, "min_image_size": 5}, "`image_size` must be an integer >="),
        ({"params": 0}, "`params` must be a positive integer"),
        ({"description": " "}, "`description` must be a non-empty string"),
        ({"source": None}, "`source` must be a non-empty string"),
        ({"data_formats": ()}, "`data_formats` must be a non-empty subset"),
        ({"data_formats": ("NHWC",)}, "`data_formats` must be a non-empty subset"),
    ]
    for override, message in bad:
        with pytest.raises(ValueError, match=message):
            register_model("new_model", **{**good, **override})
    with pytest.raises(ValueError, match="must decorate a callable"):
        register_model("new_model", **good)(42)
    assert "new_model" not in list_models()
