"""ThroughputCallback with TensorFlow-only inputs: tf.data, tf.distribute, GradientTape.

Not marked `backends`: these need the TensorFlow backend (the default run).
The backend-neutral cases are in test_callback.py.
"""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import keras
import pytest
import tensorflow as tf

from test_callback import data, observations, quiet, read_scalars, tiny_model


def test_tf_data_known_length():
    x, y = data(10)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(3)
    cb = quiet()
    tiny_model().fit(ds, epochs=1, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, 3), (1, 3), (1, 3), (1, 1)]


def test_tf_data_unknown_length():
    x, y = data(10)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(4)
    assert ds.cardinality() == tf.data.UNKNOWN_CARDINALITY
    cb = quiet()
    tiny_model().fit(ds, epochs=2, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(1, 4), (1, 4), (1, 2)] * 2


def test_steps_per_execution_unknown_length_tf_data():
    x, y = data(10)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).filter(lambda a, b: True).batch(1)
    cb = quiet()
    tiny_model(steps_per_execution=4).fit(ds, epochs=1, callbacks=[cb], verbose=0)
    assert observations(cb, "train") == [(4, 4), (4, 4), (2, 2)]


class OwnTrainStep(keras.Model):
    """A custom train_step that never touches Keras' loss tracker."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((self(x) - y) ** 2)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"my_loss": loss}


def test_unknown_counts_warn_once_and_give_steps_per_sec():
    model = OwnTrainStep()
    model.compile("sgd")
    x, y = data(12)
    cb = quiet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=2, callbacks=[cb], verbose=0)
    ours = [w for w in caught if "cannot count the samples" in str(w.message)]
    assert len(ours) == 1
    assert cb.result.samples is None and cb.result.images_per_sec is None
    assert cb.result.steps == 6 and cb.result.steps_per_sec > 0
    assert any("steps/sec" in n for n in cb.result.notes)


MIRRORED = textwrap.dedent(
    """
    import os, json
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from kerasbench import ThroughputCallback
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile("sgd", "mse")
    x, y = np.ones((22, 4), "float32"), np.ones((22, 3), "float32")
    cb = ThroughputCallback(warmup_steps=0, verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    model.predict(x, batch_size=8, callbacks=[cb], verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "train": [cb.result.steps, cb.result.samples],
                      "predict": [cb.results["predict"].steps, cb.results["predict"].samples]}))
    """
)


@pytest.mark.slow
def test_mirrored_strategy_counts_global_samples():
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    out = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["replicas"] == 2
    # 22 samples in global batches of 8: 8, 8, 6, split over two replicas.
    assert got["train"] == [3, 22]
    assert got["predict"] == [3, 22]


def test_tensorboard_side_by_side_with_keras(tmp_path):
    x, y = data(8)
    cb = quiet(log_dir=str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model().fit(x, y, batch_size=2, epochs=2, verbose=0,
                         callbacks=[cb, keras.callbacks.TensorBoard(log_dir=str(tmp_path))])
    assert not [w for w in caught if "ThroughputCallback comes after" in str(w.message)]
    s = read_scalars(tmp_path / "train")
    assert "epoch_loss" in s and "kerasbench/step_time_s" in s
    assert "epoch_images_per_sec" in s  # listed first, the callback's figures reach Keras' logger
    assert len(os.listdir(tmp_path / "train")) == 2  # one event file each
