"""TensorBoard scalars, batched to stay off the hot path, on every backend.

Where `ThroughputCallback`'s event files are written. Values are buffered in
Python lists (about 1 us per step) and written in batches by one of three
writers:

* ``"compiled"`` (the TensorFlow backend): a ``tf.summary`` file writer fed
  by one call of a compiled ``tf.function`` that loops over the buffer with
  the op ``tf.summary.write`` runs (``WriteSummary``). Calling
  ``tf.summary.scalar`` eagerly costs about 0.3 ms per value on a CPU, more
  than a small model's whole step; the function is traced once per process
  and shared by every log (costs measured in docs/performance.md).
* ``"eager"``: the same file writer, value by value (slower, the same file).
* ``"events"`` (the JAX and PyTorch backends): the event file written with the
  ``tensorboard`` package's protocol buffers and record format only, in plain
  Python, so TensorFlow is neither needed nor imported. (Creating a
  ``tf.summary`` writer starts TensorFlow's runtime, which on a GPU claims
  most of its memory, next to the JAX or PyTorch runtime that trains.) Each
  batch is appended to the file in one ``open``/``write``/``close``.

Writing never raises: a failure (a full disk, a folder removed or made
read-only) is kept in `ScalarLog.error`, the log stops writing, and the
caller decides what to say.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import socket
import struct
import time

import numpy as np

from kerasbench import _validate

TAG_PREFIX = "kerasbench"
WRITERS = ("compiled", "eager", "events")

_write_fn = None
_file_ids = itertools.count()


def default_writer(backend):
    """The writer for a Keras backend: ``"compiled"`` on TensorFlow, else ``"events"``."""
    return "compiled" if backend == "tensorflow" else "events"


def check_log_dir(log_dir):
    """Raises ``ValueError`` unless event files can be written under ``log_dir``.

    Creates nothing: ``log_dir`` must be a directory, or not exist yet below a
    directory, and that directory must be writable (permissions and
    read-only file systems both count, for root too). Also raises
    ``ImportError`` when the ``tensorboard`` package is missing.
    """
    if not _importable("tensorboard"):
        raise ImportError(
            "`log_dir` needs the `tensorboard` package to write event files "
            f"(pip install tensorboard). Received: log_dir={log_dir!r}")
    path = os.path.abspath(log_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError("`log_dir` must be a directory (it is created if missing), but it "
                         f"is an existing file. Received: log_dir={log_dir!r}")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"`log_dir` cannot be created: {existing!r} is a file, not a "
                         f"directory. Received: log_dir={log_dir!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"`log_dir` cannot be written: {existing!r} is not writable "
                         f"(permissions or a read-only file system). Received: "
                         f"log_dir={log_dir!r}")


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


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

    # tf.summary.scalar would prefix the tag with the loop's name scope;
    # writing with the scalar plugin's metadata keeps the tag exact.
    scalar = _scalar_metadata().SerializeToString()

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


def _scalar_metadata():
    from tensorboard.plugins.scalar import metadata

    return metadata.create_summary_metadata(display_name=None, description=None)


class _TFFile:
    """A ``tf.summary`` file writer: compiled batches, or value by value."""

    def __init__(self, path, compiled):
        import tensorflow as tf

        os.makedirs(path, exist_ok=True)
        self._path = path
        self._writer = tf.summary.create_file_writer(path, max_queue=10_000,
                                                     flush_millis=10**9)
        # The handle tf.summary.write itself passes to the op. Should a future
        # TensorFlow rename it, values are written one by one (slower, same file).
        self.handle = getattr(self._writer, "_resource", None) if compiled else None
        if self.handle is not None:
            _compiled_writer(self.handle)

    def write(self, tags, tag_names, steps, values, indices):
        if self.handle is not None:
            _compiled_writer(self.handle)(self.handle, tag_names,
                                          np.asarray(steps, dtype=np.int64),
                                          np.asarray(values, dtype=np.float64),
                                          np.asarray(indices, dtype=np.int32))
            return
        import tensorflow as tf

        with self._writer.as_default():
            for step, value, tag in zip(steps, values, indices):
                tf.summary.scalar(tags[tag], value, step=step)

    def flush(self):
        # TensorFlow's writer goes on writing, silently, into a file whose
        # folder was removed: the values would be lost without a word.
        if not os.path.isdir(self._path):
            raise FileNotFoundError(f"the folder of the event file was removed: {self._path}")
        self._writer.flush()

    def close(self):
        self._writer.close()


def _crc32c_table():
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(chunks):
    """The masked CRC-32C (Castagnoli) of each of ``chunks`` (bytes), as TFRecords use.

    Computed for all chunks at once, one byte column at a time with NumPy:
    about 1 us per 150-byte chunk in batches of thousands, against 60 us for
    a byte-by-byte loop in Python (``tensorboard``'s own fallback, against
    which this is tested).

    Returns:
        A list of ints, one per chunk.
    """
    lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    width = int(lengths.max()) if len(chunks) else 0
    padded = np.zeros((len(chunks), width), dtype=np.uint8)
    for row, chunk in enumerate(chunks):
        padded[row, :len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
    crc = np.full(len(chunks), 0xFFFFFFFF, dtype=np.uint32)
    for column in range(width):
        updated = _CRC32C_TABLE[(crc ^ padded[:, column]) & 0xFF] ^ (crc >> np.uint32(8))
        crc = np.where(column < lengths, updated, crc)
    crc = crc ^ np.uint32(0xFFFFFFFF)
    masked = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(0xA282EAD8)
    return masked.astype(np.uint32).tolist()


class _EventFile:
    """An event file written with the ``tensorboard`` package only (no TensorFlow).

    The file holds TFRecords (length, masked CRC-32C of the length, the
    serialized ``Event``, masked CRC-32C of the data): one ``Event`` per step
    with that step's values as scalar tensors, as ``tf.summary.scalar`` writes
    them; the scalar plugin's metadata goes with each tag's first value.
    """

    handle = None

    def __init__(self, path):
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self._tensor, self._float = tensor_pb2.TensorProto, types_pb2.DT_FLOAT
        self._metadata = _scalar_metadata()
        self._described = set()
        os.makedirs(path, exist_ok=True)
        self.path = os.path.join(path, "events.out.tfevents.%010d.%s.%d.%d.kerasbench" % (
            time.time(), socket.gethostname(), os.getpid(), next(_file_ids)))
        self._append([self._event(wall_time=time.time(), file_version="brain.Event:2")])

    def write(self, tags, tag_names, steps, values, indices):
        events, event, step = [], None, None
        now = time.time()
        for s, value, i in zip(steps, values, indices):
            if event is None or s != step:
                event, step = self._event(wall_time=now, step=s), s
                events.append(event)
            v = event.summary.value.add(tag=tags[i])
            v.tensor.CopyFrom(self._tensor(dtype=self._float, float_val=[value],
                                           tensor_shape={}))
            if i not in self._described:
                self._described.add(i)
                v.metadata.CopyFrom(self._metadata)
        self._append(events)

    def _append(self, events):
        data = [event.SerializeToString() for event in events]
        headers = [struct.pack("<Q", len(d)) for d in data]
        header_crcs, data_crcs = masked_crc32c(headers), masked_crc32c(data)
        records = []
        for header, header_crc, d, data_crc in zip(headers, header_crcs, data, data_crcs):
            records += (header, struct.pack("<I", header_crc), d, struct.pack("<I", data_crc))
        with open(self.path, "ab") as f:
            f.write(b"".join(records))

    def flush(self):
        pass  # every write is appended and closed

    def close(self):
        pass


class ScalarLog:
    """Buffered scalar series for one event-file directory.

    Args:
        path: Directory of the event file (e.g. ``logs/train``).
        tags: Names of the series; each is written as ``kerasbench/<name>``.
        writer: ``"compiled"`` (default), ``"eager"`` or ``"events"``; see the
            module description. ``"compiled"`` falls back to value by value
            with a TensorFlow whose writer hides its resource handle.

    `open` creates the event file (and, for ``"compiled"``, the first time in
    a process, compiles the write function: tens of ms; call it outside timed
    regions); values given to `add` reach the file on `write`, `flush` or
    `close`. None of these raises: the first failure is kept in `error`,
    the values are dropped and the log writes nothing more.
    """

    def __init__(self, path, tags, writer="compiled"):
        self.path = path
        self.writer = _validate.choice("writer", writer, WRITERS)
        self.tags = tuple(f"{TAG_PREFIX}/{t}" for t in tags)
        self._tag_names = np.asarray(self.tags, dtype=object)
        self._index = {tag: i for i, tag in enumerate(self.tags)}
        self._steps = []
        self._values = []
        self._tags = []
        self._file = None
        #: The exception that stopped the log, or ``None``.
        self.error = None

    def open(self):
        """Creates the event file (and compiles the write function if needed)."""
        if self._file is None and self.error is None:
            self._attempt(self._open)

    def _open(self):
        if self.writer == "events":
            self._file = _EventFile(self.path)
        else:
            self._file = _TFFile(self.path, compiled=self.writer == "compiled")

    def add(self, step, values):
        """Buffers ``values[i]`` for ``tags[i]`` at ``step``; NaN skips a value."""
        for i, value in enumerate(values):
            if not math.isnan(value):
                self._steps.append(step)
                self._values.append(value)
                self._tags.append(i)

    def add_named(self, step, values):
        """Buffers ``values`` (a dict by tag name, without the prefix) at
        ``step``; NaN skips a value. For figures written once per epoch or
        phase next to the per-step series.

        Raises:
            KeyError: If a name is not one of the log's tags.
        """
        for name, value in values.items():
            index = self._index[f"{TAG_PREFIX}/{name}"]
            if not math.isnan(value):
                self._steps.append(step)
                self._values.append(value)
                self._tags.append(index)

    @property
    def compiled(self):
        """Whether values go through the compiled function (known once open)."""
        return self._file is not None and self._file.handle is not None

    @property
    def pending(self):
        """Values waiting to be written."""
        return len(self._values)

    def write(self):
        """Hands the buffered values to the writer (one call)."""
        if not self._values:
            return
        self.open()
        if self._file is not None:
            self._attempt(self._file.write, self.tags, self._tag_names, self._steps,
                          self._values, self._tags)
        self._steps.clear()
        self._values.clear()
        self._tags.clear()

    def flush(self):
        """Writes buffered values and flushes the event file to disk."""
        self.write()
        if self._file is not None:
            self._attempt(self._file.flush)

    def close(self):
        """Flushes and closes the event file; a later `open` starts a new one."""
        self.flush()
        if self._file is not None:
            self._attempt(self._file.close)
        self._file = None

    def _attempt(self, operation, *args):
        try:
            operation(*args)
        except Exception as error:  # a full disk, a removed folder: never the caller's crash
            self.error = error
            broken, self._file = self._file, None
            if broken is not None:
                try:
                    broken.close()
                except Exception:  # noqa: S110 -- it already failed once; the first error stands
                    pass
