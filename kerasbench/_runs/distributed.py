"""Multi-worker runs on tf.distribute: a strategy-aware loop that drives the
same `ThroughputCallback` hooks `model.fit` would.

Keras 3's `model.fit` under `MultiWorkerMirroredStrategy` fails in
``_maybe_symbolic_build`` (keras-team/keras#20585); a custom loop under the
same strategy works. So a ``strategy="multi_worker"`` run builds the same
synthetic-data model in the strategy's scope and steps it with
``strategy.run`` inside one `tf.function`, calling the callback's train
hooks around each step (train mode only). Each worker times its own steps;
after the run, every worker's figures are all-gathered so each result holds
every worker's images/sec, and the chief's is the one reported (the slowest
worker decides throughput in a synchronous run).

The strategy must exist before TensorFlow does anything else, so these runs
happen in a worker process (`kerasbench._runs.worker`), which calls
`start_strategy` first. A peer that never connects, or dies, ends the run
with a clear error after ``connect_timeout_s``, never a hang.
"""

from __future__ import annotations

import json
import os

#: The strategy of this process (made once, before anything else starts TF).
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


def start_strategy(timeout_s, log=None):
    """Makes the `MultiWorkerMirroredStrategy` of this process, once.

    Joining blocks inside TensorFlow without letting Python threads run, so
    the time limit is `faulthandler`'s C watchdog: if every worker has not
    joined within ``timeout_s``, it writes the stack to ``log`` and ends the
    process (exit code 1). The caller leaves an answer saying so beforehand.

    Args:
        timeout_s: Seconds to wait for every worker to join.
        log: An open file for the watchdog's stack dump (default stderr).
    """
    global _STRATEGY
    if _STRATEGY is None:
        import faulthandler
        import sys

        faulthandler.dump_traceback_later(timeout_s, exit=True, file=log or sys.stderr)
        try:
            import tensorflow as tf

            options = tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=timeout_s)
            _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(
                communication_options=options)
            _all_reduce_once(_STRATEGY)  # returns only when every worker is there
        finally:
            faulthandler.cancel_dump_traceback_later()
    return _STRATEGY


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


def is_chief(strat):
    """Whether this worker is the chief (task ``chief``, or worker 0 without one)."""
    resolver = strat.cluster_resolver
    kind, index = resolver.task_type, resolver.task_id
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def train(wrapped, config, callback):
    """Runs warmup + steps of ``wrapped`` under the strategy, driving ``callback``.

    Returns:
        The callback's train `ThroughputResult` (of this worker's clock).
    """
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


def gather(images_per_sec):
    """Every worker's images/sec, in task order (an all-gather across workers)."""
    import tensorflow as tf

    strat = strategy()
    mine = tf.constant([[images_per_sec]], dtype=tf.float64)
    gathered = strat.run(lambda: tf.distribute.get_replica_context().all_gather(mine, axis=0))
    values = strat.experimental_local_results(gathered)[0].numpy()[:, 0].tolist()
    local = max(1, len(strat.extended.worker_devices))  # replicas per worker
    return values[::local]


def worker_figures(images_per_sec, chief):
    """The multi-worker figures of a result's stats, gathered from every worker."""
    per_worker = gather(images_per_sec)
    return {"workers": len(per_worker), "chief": chief,
            "images_per_sec_per_worker": per_worker,
            "slowest_worker_images_per_sec": min(per_worker)}
