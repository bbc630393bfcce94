"""Distributed runs: multi-worker runs on each backend's engine, and the
per-backend pieces of mirrored runs.

On TensorFlow, Keras 3's `model.fit` under `MultiWorkerMirroredStrategy`
fails in ``_maybe_symbolic_build`` (keras-team/keras#20585); a custom loop
under the same strategy works. So a ``strategy="multi_worker"`` run builds
the same synthetic-data model in the strategy's scope and steps it with
``strategy.run`` inside one `tf.function`, calling the callback's train
hooks around each step (train mode only).

On JAX, the processes of the same cluster (``TF_CONFIG``; the first address
is JAX's coordinator) join through `keras.distribution.initialize`, with
gloo collectives between CPU devices, and train one `model.fit` under
`keras.distribution.DataParallel` over every device of every process; each
process feeds its own share of each global batch (`train_jax`).

Each worker times its own steps; when the phase ends, the callback
all-gathers every worker's figures (`kerasbench._callback.replicas`, the one
place that gathers), so each result holds every worker's images/sec, and the
chief's is the one reported (the slowest worker decides throughput in a
synchronous run).

Mirrored runs on one host use each backend's engine (`mirrored_scope`):
`tf.distribute.MirroredStrategy` on TensorFlow, `keras.distribution.DataParallel`
on JAX; on a CPU the devices are made before the framework starts
(`split_cpu`).

The cluster must be joined before the framework does anything else, so
these runs happen in a worker process (`kerasbench._runs.worker`), which
calls `start_strategy` first. A peer that never connects ends the run with a
clear error after ``connect_timeout_s``, never a hang.
"""

from __future__ import annotations

import contextlib
import json
import os

#: The strategy of this process (made once, before anything else starts the
#: framework): a tf.distribute strategy, or a keras.distribution distribution on JAX.
_STRATEGY = None


def cluster_size(environ=None):
    """Workers in ``TF_CONFIG``'s cluster (chief included), or raises ValueError."""
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    try:
        cluster = json.loads(text)["cluster"] if text else None
        size = sum(len(cluster.get(k) or []) for k in ("chief", "worker"))
    except (ValueError, KeyError, TypeError, AttributeError):
        size = 0
    if not size:
        raise ValueError("`strategy='multi_worker'` takes its cluster from the TF_CONFIG "
                         "environment variable, like tf.distribute; it must list the "
                         "workers and this task. Received: TF_CONFIG="
                         f"{(text or '')[:200]!r}")
    return size


def start_strategy(timeout_s, log=None, backend="tensorflow", device=None):
    """Joins the cluster of ``TF_CONFIG`` and makes this process's strategy, once.

    On TensorFlow, a `MultiWorkerMirroredStrategy`; on JAX, the processes
    join through `keras.distribution.initialize` (the first address of the
    cluster is JAX's coordinator) and the strategy is a
    `keras.distribution.DataParallel` over every device of every process.

    Joining blocks inside the framework without letting Python threads run,
    so the time limit is `faulthandler`'s C watchdog: if every worker has not
    joined within ``timeout_s``, it writes the stack to ``log`` and ends the
    process (exit code 1). The caller leaves an answer saying so beforehand.

    Args:
        timeout_s: Seconds to wait for every worker to join.
        log: An open file for the watchdog's stack dump (default stderr).
        backend: The Keras backend of this process (``"tensorflow"``, ``"jax"``).
        device: The run's requested device (JAX: ``"cpu"`` picks CPU devices
            on a machine with GPUs).
    """
    global _STRATEGY
    if _STRATEGY is None:
        with _watchdog(timeout_s, log):
            _STRATEGY = _join_jax(device) if backend == "jax" else _join_tensorflow(timeout_s)
    return _STRATEGY


@contextlib.contextmanager
def _watchdog(timeout_s, log):
    """Ends the process (exit code 1, stack on ``log``) if the block outlasts
    ``timeout_s``; works while a C call holds the interpreter."""
    import faulthandler
    import sys

    faulthandler.dump_traceback_later(timeout_s, exit=True, file=log or sys.stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _join_tensorflow(timeout_s):
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    strat = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    _all_reduce_once(strat)  # returns only when every worker is there
    return strat


def _join_jax(device):
    """Joins the JAX processes of ``TF_CONFIG``; their `DataParallel` distribution."""
    import jax

    addresses, index = jax_cluster()
    # Cross-process collectives on CPU devices (the default in recent JAX,
    # absent in older ones): set before JAX starts its CPU backend.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras
    from jax.experimental import multihost_utils

    keras.distribution.initialize(",".join(addresses), len(addresses), index)
    multihost_utils.sync_global_devices("kerasbench-joined")  # every process is there
    kind = "cpu" if device == "cpu" else None
    # Each process feeds its own share of the global batch (`train_jax`).
    return keras.distribution.DataParallel(devices=keras.distribution.list_devices(kind),
                                           auto_shard_dataset=False)


def jax_cluster(environ=None):
    """``(addresses, process_id)`` of ``TF_CONFIG`` for multi-process JAX.

    The processes are the cluster's ``chief`` (if any) then its ``worker``
    list, in order; the first one's address is JAX's coordinator (the other
    ports are not used). ``task`` names this process.

    Raises:
        ValueError: If ``TF_CONFIG`` does not describe the cluster and a
            task in it.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    try:
        description = json.loads(text)
        cluster, task = description["cluster"], description["task"]
        chiefs, workers = list(cluster.get("chief") or []), list(cluster.get("worker") or [])
        position = _position(task["type"], task["index"], len(chiefs), len(workers))
        addresses = chiefs + workers
        if position is not None and all(isinstance(a, str) and a for a in addresses):
            return addresses, position
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    raise ValueError("`strategy='multi_worker'` on the JAX backend takes its processes from "
                     "the TF_CONFIG environment variable, like tf.distribute: "
                     '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": '
                     '"worker", "index": i}}; the first address is JAX\'s coordinator. '
                     f"Received: TF_CONFIG={(text or '')[:200]!r}")


def _position(kind, index, chiefs, workers):
    """Where task ``kind index`` is among the chiefs then the workers, or ``None``."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return None
    if kind == "chief" and index < chiefs:
        return index
    if kind == "worker" and index < workers:
        return chiefs + index
    return None


def _all_reduce_once(strategy):
    import tensorflow as tf

    value = strategy.run(lambda: tf.constant(1.0))
    strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy()


def strategy():
    """This process's multi-worker strategy (`start_strategy` must have run)."""
    if _STRATEGY is None:
        raise RuntimeError("a multi-worker run must start its strategy first: it runs in a "
                           "kerasbench worker process (reference() does this by itself)")
    return _STRATEGY


def _is_jax(strat):
    return hasattr(strat, "device_mesh")  # a keras.distribution distribution


def is_chief(strat):
    """Whether this worker is the chief (task ``chief``, or worker 0 without
    one; on JAX, process 0)."""
    if _is_jax(strat):
        import jax

        return jax.process_index() == 0
    from kerasbench._callback.replicas import tf_task

    return tf_task(strat)[1]


def train(wrapped, config, callback):
    """Runs warmup + steps of ``wrapped`` under the strategy, driving ``callback``.

    On TensorFlow, a strategy-aware loop that calls the callback's hooks; on
    JAX, `model.fit` under the `DataParallel` distribution (`train_jax`).

    Returns:
        The callback's train `ThroughputResult` (of this worker's clock).
    """
    if _is_jax(strategy()):
        return train_jax(wrapped, config, callback)
    import keras
    import tensorflow as tf

    strat = strategy()
    per_replica = config.batch_size
    global_batch = per_replica * strat.num_replicas_in_sync
    variables = wrapped.trainable_variables
    optimizer = wrapped.optimizer
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    rng = tf.random.Generator.from_seed(config.seed)
    labels = rng.uniform((per_replica,), 0, config.num_classes, dtype=tf.int32)

    def replica_step():
        with tf.GradientTape() as tape:
            logits = wrapped(tf.zeros((per_replica, 1)), training=True)
            loss = loss_fn(labels, logits) / global_batch
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    step = tf.function(lambda: strat.run(replica_step))
    total = config.warmup_steps + config.steps
    callback.set_model(wrapped)
    callback.set_params({"epochs": 1, "steps": total, "verbose": 0})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    for i in range(total):
        callback.on_train_batch_begin(i)
        loss = step()
        strat.experimental_local_results(loss)[0].numpy()  # wait for the step
        callback.on_train_batch_end(i, {})
    callback.on_epoch_end(0, {})
    callback.on_train_end()
    return callback.results["train"]


def train_jax(wrapped, config, callback):
    """`model.fit` of warmup + steps under multi-process `DataParallel`.

    Each process feeds its own share of every global batch (``batch_size``
    per replica, times this process's replicas); Keras assembles the global
    batch from the processes' shares, in process order.

    Raises:
        RuntimeError: If the cluster's devices are not the replicas the run
            was resolved with (``num_devices``).
    """
    import jax

    from kerasbench._callback.replicas import jax_replicas

    replicas, processes = jax_replicas(strategy()), jax.process_count()
    if replicas != config.num_devices or replicas % processes:
        raise RuntimeError(
            f"the JAX cluster has {replicas} devices in {processes} process(es), but the run "
            f"was resolved for {config.num_devices} replicas (one per process on a CPU, "
            "or every GPU of each host): give every process the same devices")
    total = config.warmup_steps + config.steps
    local = config.batch_size * replicas // processes
    placeholder, labels = process_share(config, total, processes, jax.process_index())
    wrapped.fit(placeholder, labels, batch_size=local, epochs=1, shuffle=False,
                callbacks=[callback], verbose=0)
    return callback.results["train"]


def process_share(config, steps, processes, index):
    """This process's placeholder inputs and labels for ``steps`` global batches.

    The labels of all processes are drawn from ``config.seed`` for the global
    batches; process ``index`` takes its slice of each, so the assembled
    global batch is the same whatever the number of processes.
    """
    import numpy as np

    local = config.batch_size * config.num_devices // processes
    rng = np.random.default_rng(config.seed)
    every = rng.integers(0, config.num_classes, (steps, processes, local))
    labels = every[:, index, :].reshape(-1)
    return np.zeros((steps * local, 1), dtype="float32"), labels


def worker_figures(result, chief):
    """The multi-worker figures of a result's stats. ``ThroughputCallback``
    gathered them from every worker when the phase ended
    (`kerasbench._callback.replicas`); ``None`` where that failed (its note
    says why)."""
    names = ("workers", "images_per_sec_per_worker", "step_time_s_per_worker",
             "slowest_worker_images_per_sec")
    return {"chief": chief, **{name: getattr(result, name, None) for name in names}}


# ------------------------------------------- mirrored runs, per backend


def cpus_missing(config, backend):
    """Whether a mirrored CPU run needs more CPU devices than this process
    has: they can only be made before the framework starts (in a worker)."""
    if config.strategy != "mirrored" or (config.num_devices or 1) <= 1 or \
            config.device not in (None, "cpu"):
        return False
    if backend == "jax":
        import jax

        return jax.device_count("cpu") < config.num_devices
    import tensorflow as tf

    return len(tf.config.list_logical_devices("CPU")) < config.num_devices


def split_cpu(n, backend, environ=None):
    """Makes ``n`` CPU devices, before the framework starts: logical devices
    on TensorFlow; on JAX, ``--xla_force_host_platform_device_count=n`` added
    to ``XLA_FLAGS`` (read when JAX starts its CPU backend)."""
    if backend == "jax":
        environ = os.environ if environ is None else environ
        flags = [f for f in environ.get("XLA_FLAGS", "").split()
                 if not f.startswith("--xla_force_host_platform_device_count")]
        environ["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={n}"])
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])


def mirrored_scope(keras, config):
    """The scope a mirrored run builds and trains in: `tf.distribute.MirroredStrategy`
    on TensorFlow, `keras.distribution.DataParallel` on JAX, over devices
    ``0..num_devices-1`` of the run's kind (restored when the scope ends)."""
    kind = "cpu" if config.device == "cpu" else "gpu"
    if keras.backend.backend() == "jax":
        devices = keras.distribution.list_devices(kind)[:config.num_devices]
        return keras.distribution.DataParallel(devices=devices).scope()
    import tensorflow as tf

    devices = [f"/{kind}:{i}" for i in range(config.num_devices)]
    return tf.distribute.MirroredStrategy(devices).scope()


def replica_images(keras, images):
    """The synthetic images of every replica, on JAX under `keras.distribution`.

    Each replica has ``batch_size`` images, as with tf.distribute; JAX's step
    sees the global batch, so the images are tiled to it and split over the
    devices along the batch (a sharding constraint: each device computes its
    own share). Elsewhere ``images`` as they are.
    """
    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        return images
    from kerasbench._callback.replicas import jax_replicas

    distribution = keras.distribution.distribution()
    n = jax_replicas(distribution)
    if n > 1:
        images = keras.ops.tile(images, (n,) + (1,) * (len(images.shape) - 1))
    return keras.distribution.distribute_tensor(
        images, distribution.get_data_layout(images.shape))
