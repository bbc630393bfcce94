"""TensorBoard scalars through ``tf.summary``, batched to stay off the hot path.

The only module of kerasbench that calls TensorFlow at run time. Calling
``tf.summary.scalar`` eagerly costs about 0.3 ms per value on a CPU, more than
a small model's whole step, so values are buffered in Python lists and
written in one call of a compiled ``tf.function`` that loops over the buffer
(about 0.6 ms per call plus 5 us per value; see docs/performance.md).
"""

from __future__ import annotations

import logging
import os

TAG_PREFIX = "kerasbench"


def _drop_retracing_warning(record):
    return "triggered tf.function retracing" not in record.getMessage()


class ScalarLog:
    """Buffered scalar series for one event-file directory.

    Args:
        path: Directory of the event file (e.g. ``logs/train``).
        tags: Names of the series; each is written as ``kerasbench/<name>``.

    The writer and its compiled write function are made by `open` (call it
    outside timed regions: tracing takes about 0.15 s); values added with
    `add` reach the file on `write`, `flush` or `close`.
    """

    def __init__(self, path, tags):
        self.path = path
        self.tags = tuple(f"{TAG_PREFIX}/{t}" for t in tags)
        self._steps = []
        self._values = []
        self._writer = None
        self._write_fn = None

    def open(self):
        """Creates the event file and compiles the write function."""
        if self._writer is not None:
            return
        import tensorflow as tf
        from tensorboard.plugins.scalar import metadata as scalar_metadata

        os.makedirs(self.path, exist_ok=True)
        writer = tf.summary.create_file_writer(
            self.path, max_queue=10_000, flush_millis=10**9
        )
        tags = self.tags
        # tf.summary.scalar would prefix the tag with the loop's name scopes
        # ("while/cond/..."); tf.summary.write keeps it exact.
        scalar = scalar_metadata.create_summary_metadata(
            display_name=None, description=None
        ).SerializeToString()

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int64),
                tf.TensorSpec([None, len(tags)], tf.float64),
            ]
        )
        def write_rows(steps, values):
            with writer.as_default():
                for i in tf.range(tf.shape(steps)[0]):
                    for j, tag in enumerate(tags):
                        value = values[i, j]
                        if tf.math.is_finite(value):
                            tf.summary.write(
                                tag, tf.cast(value, tf.float32), step=steps[i],
                                metadata=scalar,
                            )

        # Trace now, not inside a timed step. Each log traces its own copy (it
        # captures its writer), which TensorFlow would report as "retracing".
        tf_logger = logging.getLogger("tensorflow")
        tf_logger.addFilter(_drop_retracing_warning)
        try:
            write_rows(tf.zeros([0], tf.int64), tf.zeros([0, len(tags)], tf.float64))
        finally:
            tf_logger.removeFilter(_drop_retracing_warning)
        self._writer, self._write_fn = writer, write_rows

    def add(self, step, values):
        """Buffers one row: ``values[i]`` for ``tags[i]``; NaN skips a value."""
        self._steps.append(step)
        self._values.append(values)

    @property
    def pending(self):
        return len(self._steps)

    def write(self):
        """Hands the buffered rows to the writer (one compiled call)."""
        if not self._steps:
            return
        self.open()
        import numpy as np

        self._write_fn(
            np.asarray(self._steps, dtype=np.int64),
            np.asarray(self._values, dtype=np.float64),
        )
        self._steps.clear()
        self._values.clear()

    def flush(self):
        """Writes buffered rows and flushes the event file to disk."""
        self.write()
        if self._writer is not None:
            self._writer.flush()

    def close(self):
        """Flushes and closes the event file; a later `open` starts a new one."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
        self._writer = self._write_fn = None
