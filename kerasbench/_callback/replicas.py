"""Replicas and workers of the distribution a loop runs under, for `ThroughputCallback`.

A model trained under ``tf.distribute`` (TensorFlow backend) or
``keras.distribution`` (JAX backend) runs each step on several replicas,
possibly in several worker processes. `detect` finds that out from the
model when a loop begins, without importing TensorFlow on other backends;
the callback then:

* adds ``replicas`` and ``images_per_sec_per_replica`` (global images/sec
  divided by the replicas) to each phase result (a `ReplicatedResult`);
* on several workers, writes progress lines, summaries and TensorBoard on
  the chief only (the others print one labelled line per phase), and at
  each phase end all-gathers every worker's images/sec and step time, so
  every worker's result holds ``images_per_sec_per_worker``,
  ``step_time_s_per_worker`` and ``slowest_worker_images_per_sec`` (the
  straggler decides a synchronous run's throughput).

The gather is bounded (`GATHER_TIMEOUT_S`, through the collective's own
timeout) and never raises: a failure becomes one warning and a note in the
result, whose gathered figures are then ``None``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import warnings

from kerasbench._timing.throughput import ThroughputResult

#: Seconds a phase-end gather may wait for the other workers.
GATHER_TIMEOUT_S = 120.0
_LISTS = ("images_per_sec_per_worker", "step_time_s_per_worker")


@dataclasses.dataclass(frozen=True)
class ReplicatedResult(ThroughputResult):
    """A `ThroughputResult` of a loop that ran on several replicas.

    ``images_per_sec`` stays global (every image of every replica over this
    worker's step time).

    Attributes:
        replicas: Replicas in sync (all workers together).
        images_per_sec_per_replica: ``images_per_sec / replicas``.
        workers: Worker processes (1 on one host).
        chief: Whether this worker is the chief (it prints and writes).
        images_per_sec_per_worker: Each worker's images/sec on its own
            clock, in task order (several workers only; ``None`` if the
            gather failed).
        step_time_s_per_worker: Each worker's mean step time, same order.
        slowest_worker_images_per_sec: The lowest of them.
    """

    replicas: int | None = None
    images_per_sec_per_replica: float | None = None
    workers: int | None = None
    chief: bool | None = None
    images_per_sec_per_worker: list | None = None
    step_time_s_per_worker: list | None = None
    slowest_worker_images_per_sec: float | None = None

    def to_dict(self):
        d = super().to_dict()
        for name in _LISTS:
            d[name] = None if d[name] is None else list(d[name])
        return d


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a loop runs: replicas, workers, this worker's place, how to gather."""

    replicas: int = 1
    workers: int = 1
    chief: bool = True
    task: str = ""
    gather: object = None  # rows -> every worker's row, or None on one worker
    problem: str = ""

    @property
    def distributed(self):
        return self.replicas > 1 or self.workers > 1

    def finish(self, result, stale=False):
        """``result`` with the replica (and gathered worker) figures, or as it
        is (with a warning) if adding them fails: never raises."""
        if not self.distributed and not self.problem:
            return result
        try:
            return self._finish(result, stale)
        except Exception as error:  # noqa: BLE001 -- never stop training
            warnings.warn(f"ThroughputCallback: no replica figures ({type(error).__name__}: "
                          f"{error}); the global figures stand.", stacklevel=2)
            return result

    def _finish(self, result, stale):
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
        notes = list(result.notes) + ([self.problem] if self.problem else [])
        extra = {}
        if self.distributed:
            rate = result.images_per_sec
            extra = {"replicas": self.replicas, "workers": self.workers, "chief": self.chief,
                     "images_per_sec_per_replica": None if rate is None
                     else rate / self.replicas}
        if self.workers > 1:
            rows, problem = self._gathered(result, stale)
            if problem:
                notes.append(problem)
            extra.update(worker_figures(rows))
        fields.update(extra, notes=tuple(notes))
        return ReplicatedResult(**fields) if extra else ThroughputResult(**fields)

    def _gathered(self, result, stale):
        if stale:
            return None, ("the other workers' figures were not gathered: the loop ended "
                          "with an exception")
        row = [_number(result.images_per_sec), _number(result.step_time_s)]
        try:
            return self.gather(row), ""
        except Exception as error:  # noqa: BLE001 -- never stop training
            text = (f"the other workers' figures could not be gathered "
                    f"({type(error).__name__}: {' '.join(str(error).split())[:300]})")
            warnings.warn(f"ThroughputCallback: {text}; this worker's result stands.",
                          stacklevel=2)
            return None, text

    def summary(self, text, result):
        """The summary to print: ``text`` with replica lines (chief), or one
        labelled line (another worker)."""
        if not self.chief:
            rate = result.images_per_sec
            figure = "n/a" if rate is None else f"{rate:.1f} images/sec"
            return (f"kerasbench ({self.task}, not the chief): {result.phase} {figure} on "
                    "this worker's clock; the chief prints the summary")
        if not isinstance(result, ReplicatedResult):
            return text
        lines = text.split("\n")
        lines[-1:-1] = replica_lines(result)
        return "\n".join(lines)


def replica_lines(result):
    """The summary lines of a `ReplicatedResult`'s replica and worker figures."""
    per = result.images_per_sec_per_replica
    lines = [f"replicas: {result.replicas}"
             + (f" on {result.workers} workers" if result.workers > 1 else "")
             + ("" if per is None else f", {per:.2f} images/sec per replica")]
    if result.images_per_sec_per_worker:
        each = ", ".join("n/a" if v is None else f"{v:.2f}"
                         for v in result.images_per_sec_per_worker)
        lines.append(f"workers: {each} images/sec (each on its own clock); slowest "
                     f"{_text(result.slowest_worker_images_per_sec)}")
    return lines


def worker_figures(rows):
    """``images_per_sec_per_worker``, ``step_time_s_per_worker`` and
    ``slowest_worker_images_per_sec`` of gathered rows (``None`` each when
    ``rows`` is ``None``)."""
    if rows is None:
        return dict.fromkeys((*_LISTS, "slowest_worker_images_per_sec"))
    rates = [_value(r[0]) for r in rows]
    known = [v for v in rates if v is not None]
    return {"images_per_sec_per_worker": rates,
            "step_time_s_per_worker": [_value(r[1]) for r in rows],
            "slowest_worker_images_per_sec": min(known) if known else None}


def _number(value):
    return math.nan if value is None else float(value)


def _value(value):
    value = float(value)
    return None if math.isnan(value) else value


def _text(value):
    return "n/a" if value is None else f"{value:.2f}"


SINGLE = Placement()


def detect(model):
    """The `Placement` of a loop of ``model``; `SINGLE` when it is not
    distributed. Never raises: a failure is a `Placement` with a ``problem``."""
    import keras

    try:
        backend = keras.backend.backend()
        if backend == "tensorflow":
            return _tensorflow(model)
        if backend == "jax":
            return _jax(keras)
    except Exception as error:  # noqa: BLE001 -- never stop training
        text = (f"replicas unknown: reading the model's distribution failed "
                f"({type(error).__name__}: {str(error)[:300]})")
        warnings.warn(f"ThroughputCallback: {text}; figures are per this process.",
                      stacklevel=2)
        return Placement(problem=text)
    return SINGLE


# ------------------------------------------------------------- TensorFlow


def _tensorflow(model):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return SINGLE  # the default strategy: no tf.distribute at all
    workers, chief, task = tf_task(strategy)
    gather = None
    if workers > 1:
        gather = lambda row: tf_gather(strategy, row)  # noqa: E731
    return Placement(replicas=int(strategy.num_replicas_in_sync), workers=workers,
                     chief=chief, task=task, gather=gather)


def tf_task(strategy):
    """``(workers, chief, task)`` of a `tf.distribute` strategy: workers in its
    cluster (chief included; 1 without one), whether this is the chief (task
    ``chief``, or worker 0 without one) and this task's name (``worker 1``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = sum(len(spec.get(kind) or []) for kind in ("chief", "worker"))
    if workers <= 1:
        return 1, True, ""
    kind, index = resolver.task_type, resolver.task_id
    chief = kind == "chief" or (not spec.get("chief") and kind == "worker" and index == 0)
    return workers, chief, f"{kind} {index}"


def tf_gather(strategy, row, timeout_s=None):
    """Every worker's ``row`` (a list of floats), in task order: an all-gather
    across the strategy's workers, bounded by ``timeout_s`` (default
    `GATHER_TIMEOUT_S`) through the collective's own timeout."""
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=GATHER_TIMEOUT_S if timeout_s is None else timeout_s)
    mine = tf.constant([row], dtype=tf.float64)

    def replica_fn():
        return tf.distribute.get_replica_context().all_gather(mine, axis=0, options=options)

    gathered = tf.function(lambda: strategy.run(replica_fn))()  # eager would warn
    values = strategy.experimental_local_results(gathered)[0].numpy().tolist()
    local = max(1, len(strategy.extended.worker_devices))  # replicas per worker
    return values[::local]


# -------------------------------------------------------------------- JAX


def _jax(keras):
    distribution = keras.distribution.distribution()
    if distribution is None:
        return SINGLE
    replicas = jax_replicas(distribution)
    import jax

    workers, index = jax.process_count(), jax.process_index()
    gather = jax_gather if workers > 1 else None
    return Placement(replicas=int(replicas), workers=workers, chief=index == 0,
                     task=f"process {index}" if workers > 1 else "", gather=gather)


def jax_replicas(distribution):
    """Replicas of a `keras.distribution` distribution: devices along its batch axis."""
    mesh = distribution.device_mesh
    axis = getattr(distribution, "batch_dim_name", None)
    names = list(mesh.axis_names)
    return int(mesh.shape[names.index(axis)]) if axis in names else 1


def jax_gather(row, timeout_s=None):
    """Every JAX process's ``row``, in process order (multi-process JAX).

    JAX's collectives take no timeout, so the gather runs in a daemon thread
    and is given up after ``timeout_s`` (default `GATHER_TIMEOUT_S`). The
    float64 values travel as their bits (32-bit words): without
    ``jax_enable_x64``, JAX would round them to float32.

    Raises:
        TimeoutError: If the other processes did not join in time.
    """
    import numpy as np
    from jax.experimental import multihost_utils

    box = []
    words = np.asarray(row, dtype=np.float64).view(np.uint32)

    def run():
        try:
            box.append(multihost_utils.process_allgather(words))
        except Exception as error:  # noqa: BLE001 -- handed to the caller
            box.append(error)

    thread = threading.Thread(target=run, name="kerasbench-gather", daemon=True)
    thread.start()
    limit = GATHER_TIMEOUT_S if timeout_s is None else timeout_s
    thread.join(limit)
    if not box:
        raise TimeoutError(f"the other processes did not join within {limit:g} s")
    if isinstance(box[0], Exception):
        raise box[0]
    gathered = np.ascontiguousarray(np.asarray(box[0]), dtype=np.uint32)
    return gathered.view(np.float64).reshape(-1, len(row)).tolist()

