"""A user's own training under tf.distribute, with ThroughputCallback attached.

Run by tests/test_distributed_callback.py in fresh processes (the strategy
and logical devices must exist before TensorFlow starts):

    python distributed_user_loop.py mirrored OUT_JSON
    python distributed_user_loop.py multi_worker OUT_JSON [LOG_DIR] [leave]

``mirrored``: `model.fit` under MirroredStrategy over two logical CPU
devices. ``multi_worker``: a custom loop under MultiWorkerMirroredStrategy
(cluster from TF_CONFIG) that drives the callback's hooks, as
docs/custom-loops.md shows; ``leave`` makes this worker exit before the
phase ends, and ``stall`` makes it sleep there (three gather timeouts), so
the others' gather fails (faults injected for real).
"""

import json
import os
import sys

mode, out = sys.argv[1], sys.argv[2]
log_dir = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
leave = "leave" in sys.argv[4:]
stall = "stall" in sys.argv[4:]

import tensorflow as tf  # noqa: E402

if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=60))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasbench import ThroughputCallback  # noqa: E402
from kerasbench._callback import replicas  # noqa: E402

replicas.GATHER_TIMEOUT_S = float(os.environ.get("GATHER_TIMEOUT_S", "60"))

with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
cb = ThroughputCallback(warmup_steps=1, verbose=1, log_every=2, log_dir=log_dir,
                        **({} if mode == "mirrored" else {"batch_size": 8}))

if mode == "mirrored":
    x, y = np.ones((22, 4), "float32"), np.ones((22, 3), "float32")
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
else:
    per_replica = 4  # global batch: 4 x 2 workers = 8
    optimizer, variables = model.optimizer, model.trainable_variables
    optimizer.build(variables)

    @tf.function
    def step():
        def replica_step():
            with tf.GradientTape() as tape:
                pred = model(tf.ones((per_replica, 4)), training=True)
                loss = tf.reduce_sum((pred - 1.0) ** 2) / 8.0
            optimizer.apply(tape.gradient(loss, variables), variables)
            return variables[-1][0]
        return strategy.run(replica_step)

    cb.set_model(model)
    cb.set_params({"epochs": 1, "steps": 5, "verbose": 0})
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    for i in range(5):
        cb.on_train_batch_begin(i)
        strategy.experimental_local_results(step())[0].numpy()  # wait for the step
        cb.on_train_batch_end(i, {})
    cb.on_epoch_end(0, {})
    if leave:
        os._exit(0)  # gone before the phase ends: the others' gather cannot complete
    if stall:  # alive but late: the others' gather must give up on its own
        import time

        time.sleep(3 * float(os.environ.get("GATHER_TIMEOUT_S", "60")))
    cb.on_train_end()

with open(out, "w") as f:
    json.dump(cb.result.to_dict(), f)
