"""strategy='mirrored' on the JAX backend: keras.distribution.DataParallel, for real.

JAX's CPU is split into devices by XLA_FLAGS before JAX starts, so each
check runs in a fresh process (KERAS_BACKEND=jax, bounded in time).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import kerasbench
from kerasbench._runs.distributed import split_cpu

DATA_PARALLEL = textwrap.dedent("""
    import json
    import jax
    import keras
    import numpy as np

    from kerasbench import ThroughputCallback
    from kerasbench._runs.reference import _synthetic_model

    assert jax.device_count("cpu") == 2
    devices = keras.distribution.list_devices("cpu")
    with keras.distribution.DataParallel(devices=devices).scope():
        net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                                keras.layers.Dense(5)])
        model = _synthetic_model(keras, net, 4, (8, 8, 3), 0)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        # Each device computes its own 4 images of the global batch of 8.
        logits = jax.jit(lambda x: model(x))(np.zeros((8, 1), "float32"))
        cb = ThroughputCallback(warmup_steps=1, verbose=0)
        model.fit(np.zeros((40, 1), "float32"), np.zeros(40, "int32"), batch_size=8,
                  callbacks=[cb], verbose=0)
    r = cb.result
    print(json.dumps({"shape": list(logits.shape),
                      "shard": list(logits.sharding.shard_shape(logits.shape)),
                      "devices": len(logits.sharding.device_set),
                      "samples": r.samples, "replicas": r.replicas,
                      "per_replica": r.images_per_sec_per_replica,
                      "images_per_sec": r.images_per_sec, "workers": r.workers}))
""")


def _jax_env(**extra):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", **extra)
    return env


@pytest.mark.slow
def test_data_parallel_splits_each_step_over_the_devices_and_the_callback_sees_it():
    env = _jax_env()
    split_cpu(2, "jax", env)
    out = subprocess.run([sys.executable, "-c", DATA_PARALLEL], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert (got["shape"], got["shard"], got["devices"]) == ([8, 5], [4, 5], 2)
    # 5 global batches of 8, one of them warmup: 32 images, on 2 replicas.
    assert (got["samples"], got["replicas"], got["workers"]) == (32, 2, 1)
    assert got["per_replica"] == pytest.approx(got["images_per_sec"] / 2)


@pytest.mark.slow
def test_reference_mirrored_on_jax_runs_in_a_worker_with_two_cpu_devices():
    script = ("import json, kerasbench\n"
              "r = kerasbench.reference('lenet', strategy='mirrored', num_devices=2, "
              "batch_size=4, steps=4, warmup_steps=1, image_size=32, num_classes=5, "
              "device='cpu', verbose=0)\n"
              "one = kerasbench.reference('lenet', batch_size=4, steps=1, warmup_steps=1, "
              "image_size=32, num_classes=5, device='cpu', verbose=0)\n"
              "print(json.dumps({'backend': r.config.backend, 'stats': r.stats, "
              "'one': one.stats['flops_per_sample']}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=_jax_env())
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    s = got["stats"]
    assert got["backend"] == "jax"
    # 4 steps x 4 per replica x 2 replicas.
    assert (s["samples"], s["replicas"], s["global_batch_size"]) == (32, 2, 8)
    assert s["images_per_sec_per_replica"] == pytest.approx(s["images_per_sec"] / 2)
    # FLOPs per image as on one device, not one device's share of the batch.
    assert s["flops_per_sample"] == got["one"] > 0


def test_split_cpu_on_jax_sets_xla_flags_once():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8"}
    split_cpu(2, "jax", env)
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=2"
    env = {}
    split_cpu(3, "jax", env)
    assert env == {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}


@pytest.mark.parametrize("backend, strategy", [("torch", "mirrored"), ("torch", "multi_worker")])
def test_strategies_a_backend_lacks_are_refused_naming_what_runs(backend, strategy):
    info = kerasbench.model_info("lenet")
    config = kerasbench.RunConfig(model="lenet", strategy=strategy)
    with pytest.raises(ValueError, match=(
            f"`strategy='{strategy}'` is not supported on the {backend} backend: 'mirrored' "
            r"runs on tf.distribute.MirroredStrategy \(TensorFlow\) or "
            r"keras.distribution.DataParallel \(JAX\), 'multi_worker' on "
            r"tf.distribute.MultiWorkerMirroredStrategy \(TensorFlow\) or "
            r"keras.distribution.DataParallel over several processes \(JAX\). "
            f"Received: strategy='{strategy}', backend='{backend}'")):
        config.resolve(info, backend, "cpu")


def test_mirrored_on_jax_resolves_like_tensorflow():
    info = kerasbench.model_info("lenet")
    config = kerasbench.RunConfig(model="lenet", strategy="mirrored", num_devices=2)
    resolved = config.resolve(info, "jax", "cpu")
    assert (resolved.num_devices, resolved.backend, resolved.jit_compile) == (2, "jax", True)


FLOPS_UNDER_DATA_PARALLEL = textwrap.dedent("""
    import json
    import keras
    import numpy as np

    from kerasbench._efficiency.flops import count_flops
    from kerasbench._runs.reference import _synthetic_model

    def dense():
        return keras.Sequential([keras.Input((100,)), keras.layers.Dense(10)])

    x = np.zeros((8, 100), "float32")
    alone = count_flops(dense(), x, training_pass="forward").flops_per_sample
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices("cpu"))
    with distribution.scope():
        under = count_flops(dense(), x, training_pass="forward").flops_per_sample
        # reference()'s synthetic-images model splits its batch over the devices.
        wrapped = _synthetic_model(keras, dense(), 8, (100,), 0)
        split = count_flops(wrapped, np.zeros((8, 1), "float32"),
                            training_pass="forward").flops_per_sample
        still = keras.distribution.distribution() is distribution
    print(json.dumps({"alone": alone, "under": under, "split": split, "still": still}))
""")


@pytest.mark.slow
def test_flops_per_sample_under_data_parallel_count_the_whole_batch():
    env = _jax_env()
    split_cpu(2, "jax", env)
    out = subprocess.run([sys.executable, "-c", FLOPS_UNDER_DATA_PARALLEL],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["alone"] == 2010  # 100 x 10 multiply-adds + 10 bias adds
    # Not one device's share (1005): the whole batch, per sample.
    assert got["under"] == got["alone"]
    assert got["split"] == got["alone"]  # one image's count, however the batch is split
    assert got["still"] is True  # the distribution was put back
