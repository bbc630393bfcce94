"""TensorBoard scalars through ``tf.summary``, batched to stay off the hot path.

The only module of kerasbench that calls TensorFlow at run time. Calling
``tf.summary.scalar`` eagerly costs about 0.3 ms per value on a CPU, more than
a small model's whole step, so values are buffered in Python lists (about
1 us per step) and handed over in one call of a compiled ``tf.function``
that loops over the buffer with ``tf.summary.write`` (about 20-25 us per
value here; measured in docs/performance.md).
"""

from __future__ import annotations

import logging
import math
import os

TAG_PREFIX = "kerasbench"


def _drop_retracing_warning(record):
    return "triggered tf.function retracing" not in record.getMessage()


class ScalarLog:
    """Buffered scalar series for one event-file directory.

    Args:
        path: Directory of the event file (e.g. ``logs/train``).
        tags: Names of the series; each is written as ``kerasbench/<name>``.

    `open` creates the event file and compiles the write function (call it
    outside timed regions: tracing takes about 60 ms); values given to `add`
    reach the file on `write`, `flush` or `close`.
    """

    def __init__(self, path, tags):
        self.path = path
        self.tags = tuple(f"{TAG_PREFIX}/{t}" for t in tags)
        self._steps = []
        self._values = []
        self._tags = []
        self._writer = None
        self._write_fn = None

    def open(self):
        """Creates the event file and compiles the write function."""
        if self._writer is not None:
            return
        import tensorflow as tf
        from tensorboard.plugins.scalar import metadata as scalar_metadata

        os.makedirs(self.path, exist_ok=True)
        writer = tf.summary.create_file_writer(self.path, max_queue=10_000,
                                               flush_millis=10**9)
        tag_names = tf.constant(self.tags)
        # tf.summary.scalar would prefix the tag with the loop's name scope;
        # tf.summary.write with the scalar plugin's metadata keeps it exact.
        scalar = scalar_metadata.create_summary_metadata(
            display_name=None, description=None).SerializeToString()

        # One flat loop over (step, value, tag index) triples: the smallest
        # graph, so the least tracing time.
        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.int64),
                             tf.TensorSpec([None], tf.float64),
                             tf.TensorSpec([None], tf.int32)],
            autograph=False,
        )
        def write_values(steps, values, tags):
            with writer.as_default():
                def body(i):
                    tf.summary.write(tf.gather(tag_names, tags[i]),
                                     tf.cast(values[i], tf.float32),
                                     step=steps[i], metadata=scalar)
                    return (i + 1,)

                tf.while_loop(lambda i: i < tf.shape(steps)[0], body, (tf.constant(0),))

        # Trace now, not inside a timed step. Each log traces its own copy (it
        # captures its writer), which TensorFlow would report as "retracing".
        tf_logger = logging.getLogger("tensorflow")
        tf_logger.addFilter(_drop_retracing_warning)
        try:
            write_values(tf.zeros([0], tf.int64), tf.zeros([0], tf.float64),
                         tf.zeros([0], tf.int32))
        finally:
            tf_logger.removeFilter(_drop_retracing_warning)
        self._writer, self._write_fn = writer, write_values

    def add(self, step, values):
        """Buffers ``values[i]`` for ``tags[i]`` at ``step``; NaN skips a value."""
        for i, value in enumerate(values):
            if not math.isnan(value):
                self._steps.append(step)
                self._values.append(value)
                self._tags.append(i)

    @property
    def pending(self):
        """Values waiting to be written."""
        return len(self._values)

    def write(self):
        """Hands the buffered values to the writer (one compiled call)."""
        if not self._values:
            return
        self.open()
        import numpy as np

        self._write_fn(np.asarray(self._steps, dtype=np.int64),
                       np.asarray(self._values, dtype=np.float64),
                       np.asarray(self._tags, dtype=np.int32))
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
        self._writer = self._write_fn = None
