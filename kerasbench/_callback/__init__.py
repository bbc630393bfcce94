"""ThroughputCallback: per-step timing and images/sec for any Keras 3 loop.

A thin adapter: the hooks read the clock and Keras' counters and hand the
numbers to a `PhaseMeter`; every figure comes from `kerasbench._timing.stats`,
every progress line and summary from `kerasbench._timing.text`, every
TensorBoard value goes through `kerasbench._tensorboard`. Only Keras APIs are
used, on every backend.

* `callback`: `ThroughputCallback`, its hooks and phases.
* `counting`: what it reads of Keras on each backend (samples, steps);
  docs/backends.md.
* `loops`: which loop a hook belongs to (threads, Keras' frames, loops an
  exception ended).
* `stopping`: when to check ``stop_at_precision``.
* `efficiency`: FLOPs per sample, achieved TFLOP/s, MFU, peak memory and
  energy of each phase, and the figures added to Keras' epoch logs;
  docs/efficiency.md.
* `replicas`: the replicas and workers of a distributed loop, per-replica
  figures, workers' results gathered; docs/distributed.md.

It never stops training for a problem of its own: a hook that meets one (a
counter that cannot be read, a failing event file, an unusable clock
reading, a bug) gives one warning and a note in the result, and measuring
goes on without the part that failed (docs/reliability.md).
"""

from kerasbench._callback.callback import _TB_TAGS, ThroughputCallback

__all__ = ["ThroughputCallback"]
