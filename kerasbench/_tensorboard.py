"""TensorBoard scalars through ``tf.summary``, batched to stay off the hot path.

The only module of kerasbench that calls TensorFlow at run time. Calling
``tf.summary.scalar`` eagerly costs about 0.3 ms per value on a CPU, more than
a small model's whole step, so values are buffered in Python lists (about
1 us per step) and handed to a ``tf.summary`` file writer in one call of a
compiled ``tf.function`` that loops over the buffer with the op
``tf.summary.write`` runs (``WriteSummary``). The function is traced once
per process and shared by every log (costs measured in docs/performance.md).
"""

from __future__ import annotations

import math
import os

import numpy as np

TAG_PREFIX = "kerasbench"


_write_fn = None


def _compiled_writer(handle):
    """The compiled write function, traced once per process and shared.

    It takes the writer's resource handle as an argument (as
    ``tf.summary.write`` itself does), so every event file (train,
    validation, later fits) reuses one trace. Measured costs are in
    docs/performance.md: tens of ms once, then about 15 us per value.

    Args:
        handle: The resource handle of a ``tf.summary`` writer, for the first
            (empty) run.

    Returns:
        The ``tf.function``: ``(handle, tag_names, steps, values, tag_indices)``.
    """
    global _write_fn
    if _write_fn is not None:
        return _write_fn
    import tensorflow as tf
    from tensorboard.plugins.scalar import metadata as scalar_metadata

    # tf.summary.scalar would prefix the tag with the loop's name scope;
    # writing with the scalar plugin's metadata keeps the tag exact.
    scalar = scalar_metadata.create_summary_metadata(
        display_name=None, description=None).SerializeToString()

    # One flat loop over (step, value, tag index) triples: the smallest graph,
    # so the least tracing time.
    @tf.function(
        input_signature=[tf.TensorSpec([], tf.resource),
                         tf.TensorSpec([None], tf.string),
                         tf.TensorSpec([None], tf.int64),
                         tf.TensorSpec([None], tf.float64),
                         tf.TensorSpec([None], tf.int32)],
        autograph=False,
    )
    def write_values(writer, tag_names, steps, values, tags):
        def body(i):
            written = tf.raw_ops.WriteSummary(
                writer=writer, step=steps[i], tensor=tf.cast(values[i], tf.float32),
                tag=tf.gather(tag_names, tags[i]), summary_metadata=scalar)
            with tf.control_dependencies([written]):
                return (i + 1,)

        tf.while_loop(lambda i: i < tf.shape(steps)[0], body, (tf.constant(0),))

    # Trace and run it once now (the first run also builds the runtime's copy
    # of the graph: hundreds of ms), not inside a timed step.
    empty = np.zeros(0)
    write_values(handle, np.asarray([""], dtype=object), empty.astype(np.int64), empty,
                 empty.astype(np.int32))
    _write_fn = write_values
    return _write_fn


class ScalarLog:
    """Buffered scalar series for one event-file directory.

    Args:
        path: Directory of the event file (e.g. ``logs/train``).
        tags: Names of the series; each is written as ``kerasbench/<name>``.
        compiled: Whether to write through the shared compiled function
            (default). False writes value by value with ``tf.summary.scalar``:
            slower, the same file; this also happens, whatever ``compiled``
            says, with a TensorFlow whose writer hides its resource handle.

    `open` creates the event file (and, the first time in a process, compiles
    the write function: tens of ms; call it outside timed regions); values
    given to `add` reach the file on `write`, `flush` or `close`.
    """

    def __init__(self, path, tags, compiled=True):
        self.path = path
        self._use_compiled = compiled
        self.tags = tuple(f"{TAG_PREFIX}/{t}" for t in tags)
        self._tag_names = np.asarray(self.tags, dtype=object)
        self._steps = []
        self._values = []
        self._tags = []
        self._writer = None
        self._handle = None

    def open(self):
        """Creates the event file and makes sure the write function is compiled."""
        if self._writer is not None:
            return
        import tensorflow as tf

        os.makedirs(self.path, exist_ok=True)
        writer = tf.summary.create_file_writer(self.path, max_queue=10_000,
                                               flush_millis=10**9)
        # The handle tf.summary.write itself passes to the op. Should a future
        # TensorFlow rename it, values are written one by one (slower, same file).
        self._handle = getattr(writer, "_resource", None) if self._use_compiled else None
        if self._handle is not None:
            _compiled_writer(self._handle)
        self._writer = writer

    def add(self, step, values):
        """Buffers ``values[i]`` for ``tags[i]`` at ``step``; NaN skips a value."""
        for i, value in enumerate(values):
            if not math.isnan(value):
                self._steps.append(step)
                self._values.append(value)
                self._tags.append(i)

    @property
    def compiled(self):
        """Whether values go through the compiled function (known once open)."""
        return self._handle is not None

    @property
    def pending(self):
        """Values waiting to be written."""
        return len(self._values)

    def write(self):
        """Hands the buffered values to the writer (one compiled call)."""
        if not self._values:
            return
        self.open()
        if self._handle is not None:
            _compiled_writer(self._handle)(self._handle, self._tag_names,
                               np.asarray(self._steps, dtype=np.int64),
                               np.asarray(self._values, dtype=np.float64),
                               np.asarray(self._tags, dtype=np.int32))
        else:
            import tensorflow as tf

            with self._writer.as_default():
                for step, value, tag in zip(self._steps, self._values, self._tags):
                    tf.summary.scalar(self.tags[tag], value, step=step)
        self._steps.clear()
        self._values.clear()
        self._tags.clear()

    def flush(self):
        """Writes buffered values and flushes the event file to disk."""
        self.write()
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Flushes and closes the event file; a later `open` starts a new one."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
        self._writer = self._handle = None
