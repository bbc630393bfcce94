"""FusedBatchNormalization and fuse_batch_norm: same numbers as Keras' layer,
one fused kernel on TensorFlow, Keras' own code elsewhere."""

import numpy as np
import pytest

import keras

import kerasbench
from kerasbench._layers import FusedBatchNormalization, fuse_batch_norm

TF = keras.backend.backend() == "tensorflow"
# Tests without the backends marker run on TensorFlow (the suite's default).


def _model(momentum=0.9, epsilon=1e-5, axis=-1, shape=(8, 8, 3)):
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, data_format="channels_last" if axis == -1 else
                            "channels_first")(inp)
    x = keras.layers.BatchNormalization(axis=axis, momentum=momentum, epsilon=epsilon)(x)
    x = keras.layers.ReLU()(x)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D(
        data_format="channels_last" if axis == -1 else "channels_first")(x))
    return keras.Model(inp, out)


def _images(n=5, shape=(8, 8, 3), seed=0):
    return np.random.RandomState(seed).normal(1.0, 2.0, size=(n,) + shape).astype("float32")


def _bn(model):
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)][0]


@pytest.fixture
def policy():
    previous = keras.config.dtype_policy()
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy(previous)


@pytest.mark.backends
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_same_outputs_and_moving_statistics_as_keras(policy, precision):
    policy(precision)
    keras.utils.set_random_seed(1)
    original = _model()
    fused, replaced = fuse_batch_norm(original)
    assert replaced == 1
    assert type(_bn(fused)) is FusedBatchNormalization
    x = _images()
    tolerance = 1e-5 if precision == "float32" else 2e-2
    for training in (True, False):
        a = np.float32(keras.ops.convert_to_numpy(original(x, training=training)))
        b = np.float32(keras.ops.convert_to_numpy(fused(x, training=training)))
        np.testing.assert_allclose(a, b, atol=tolerance * np.abs(a).max())
    # One training call each updated the moving statistics the same way
    # (the kernel's Bessel-corrected variance is undone).
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(_bn(original), name).numpy(),
                                   getattr(_bn(fused), name).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(_bn(fused).moving_variance.numpy(), 1.0)  # it did move


@pytest.mark.backends
def test_same_gradients_as_keras():
    keras.utils.set_random_seed(2)
    original = _model()
    fused, _ = fuse_batch_norm(original)
    x = _images()
    model_grads = {}
    for label, model in (("keras", original), ("fused", fused)):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.train_on_batch(x, np.ones((5, 2), "float32"))
        model_grads[label] = [np.asarray(w) for w in model.get_weights()]
    # After one SGD step from the same weights, the weights agree: the
    # gradients did. The conv bias before batch norm has a zero gradient in
    # exact arithmetic, so both are compared with an absolute tolerance.
    for a, b in zip(model_grads["keras"], model_grads["fused"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_fused_kernel_replaces_the_moments_in_the_graph():
    import tensorflow as tf

    fused, _ = fuse_batch_norm(_model())
    original = _model()
    x = tf.constant(_images())

    def op_types(model):
        graph = tf.function(lambda v: model(v, training=True)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(fused)
    assert "FusedBatchNormV3" not in op_types(original)
    assert "SquaredDifference" in op_types(original)  # Keras' moments
    assert "SquaredDifference" not in op_types(fused)


def test_falls_back_to_keras_code_where_it_cannot_fuse():
    layer = FusedBatchNormalization()
    x4 = keras.ops.ones((2, 4, 4, 3))
    layer.build(x4.shape)
    assert layer.fused_here(x4) is TF
    assert layer.fused_here(x4, mask=keras.ops.ones((2, 4, 4))) is False
    dense = FusedBatchNormalization()
    x2 = keras.ops.ones((2, 3))
    dense.build(x2.shape)
    assert dense.fused_here(x2) is False
    out = dense(np.arange(6, dtype="float32").reshape(2, 3), training=True)
    np.testing.assert_allclose(np.asarray(out), [[-1, -1, -1], [1, 1, 1]], atol=1e-2)
    middle = FusedBatchNormalization(axis=2)
    middle.build(x4.shape)
    assert middle.fused_here(x4) is False  # neither channels-last nor channels-first
    assert FusedBatchNormalization(renorm=True).fused_here(x4) is False


def test_same_configuration_weights_and_parameter_count_for_resnet50():
    keras.utils.set_random_seed(3)
    original = kerasbench.create_model("resnet50", image_size=32, num_classes=10)
    fused, replaced = fuse_batch_norm(original)
    assert replaced == 53  # ResNet-50 v1: one after the stem, 52 in the blocks
    assert fused.count_params() == original.count_params()
    assert [w.shape for w in fused.weights] == [w.shape for w in original.weights]
    assert all(np.array_equal(a, b) for a, b in zip(fused.get_weights(), original.get_weights()))
    layer = next(lyr for lyr in fused.layers if isinstance(lyr, FusedBatchNormalization))
    twin = original.get_layer(layer.name)
    assert layer.get_config() == twin.get_config()
    assert not any(type(lyr) is FusedBatchNormalization for lyr in original.layers)
    # The same outputs given the same weights. Inference (moving statistics):
    # float rounding only. Training (batch statistics): at 32x32 the last
    # stage normalises 4 values per channel, and rounding differences grow
    # through 53 such layers: measured up to 2.2e-3 of the largest logit over
    # three seeds, so 1e-2 of it is the bound (a wrong variance or mean would
    # be off by whole units).
    x = _images(n=4, shape=(32, 32, 3))
    a, b = np.asarray(original(x, training=False)), np.asarray(fused(x, training=False))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(a).max())
    a, b = np.asarray(original(x, training=True)), np.asarray(fused(x, training=True))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-2 * np.abs(a).max())


def test_saved_and_loaded(tmp_path):
    fused, _ = fuse_batch_norm(_model())
    path = tmp_path / "fused.keras"
    fused.save(path)
    loaded = keras.models.load_model(path)
    assert type(_bn(loaded)) is FusedBatchNormalization
    x = _images()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(fused(x)), rtol=1e-6)


def test_subclassed_model_is_refused_with_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn = keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(x)

    with pytest.raises(ValueError, match=r"functional or sequential.*Received: model="):
        fuse_batch_norm(Net())
    with pytest.raises(ValueError, match="Received: model='resnet50'"):
        fuse_batch_norm("resnet50")


def test_public_names():
    assert kerasbench.FusedBatchNormalization is FusedBatchNormalization
    assert kerasbench.fuse_batch_norm is fuse_batch_norm


# ------------------------------------------------------------ reference runs


@pytest.mark.parametrize("backend, device, precision, expected", [
    ("tensorflow", "cpu", "fp32", "fused"),
    ("tensorflow", "cpu", "bf16", "fused"),
    ("tensorflow", "gpu:0", "fp16", "fused"),
    ("jax", "cpu", "bf16", "keras"),
    ("torch", "gpu:0", "fp32", "keras"),
])
def test_the_default_is_the_faster_one_measured(backend, device, precision, expected):
    from kerasbench._runs.config import default_batch_norm

    assert default_batch_norm(backend) == expected
    info = kerasbench.model_info("mobilenet_v2")
    config = kerasbench.RunConfig(model="mobilenet_v2", precision=precision)
    assert config.resolve(info, backend, device).batch_norm == expected
    chosen = config.replace(batch_norm="keras").resolve(info, backend, device)
    assert chosen.batch_norm == "keras"  # an explicit choice is kept


def test_fused_on_another_backend_is_refused():
    info = kerasbench.model_info("mobilenet_v2")
    config = kerasbench.RunConfig(model="mobilenet_v2", batch_norm="fused")
    with pytest.raises(ValueError, match=r"TensorFlow backend only.*Received: "
                                         r"batch_norm='fused', backend='jax'"):
        config.resolve(info, "jax", "cpu")
    with pytest.raises(ValueError, match=r"batch_norm.*Received: batch_norm='cudnn'"):
        kerasbench.RunConfig(batch_norm="cudnn")


def test_reference_records_the_choice_and_runs_the_fused_layer():
    plain = kerasbench.reference("mobilenet_v2", image_size=32, batch_size=2, steps=2,
                                 warmup_steps=1, batch_norm="keras", count_flops=False,
                                 verbose=0)
    assert plain.ok, plain.error
    assert plain.config.batch_norm == "keras" and plain.requested.batch_norm == "keras"
    default = kerasbench.reference("mobilenet_v2", image_size=32, batch_size=2, steps=2,
                                   warmup_steps=1, count_flops=False, verbose=0)
    assert default.ok, default.error
    assert default.config.batch_norm == "fused"  # recorded as run
    assert default.requested.batch_norm is None  # as asked: the default
