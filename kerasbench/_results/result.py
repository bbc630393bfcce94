"""BenchmarkResult: one benchmark configuration, its figures and their provenance.

Pure data (no Keras, no TensorFlow): results are written by `reference` and
by sweeps, read back from JSON Lines files, and compared across machines.
"""

from __future__ import annotations

import dataclasses
import json

#: Version of the result format; bumped when a field changes meaning.
SCHEMA_VERSION = 1

#: ``status`` values.
STATUSES = ("ok", "oom", "error")

#: ``source`` values: measured by kerasbench, or copied from a publication.
SOURCES = ("measured", "published")


@dataclasses.dataclass
class BenchmarkResult:
    """The outcome of one benchmark configuration.

    Attributes:
        model: Registry name (``"resnet50"``).
        mode: ``"train"`` (forward-backward) or ``"inference"`` (forward).
        batch_size: Samples per step.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        device: Where it ran (``"cpu"``, ``"gpu:0"``), or the device a failed
            run was meant for.
        status: ``"ok"``, ``"oom"`` (out of memory) or ``"error"``.
        error: What went wrong, when ``status`` is not ``"ok"``.
        stats: The `ThroughputResult` figures as a dict (``images_per_sec``,
            ``images_per_sec_sem``, ``step_time_p99_s``, ...); empty when the
            run failed; only ``images_per_sec`` for published figures.
        config: Every other setting of the run (steps, warmup, image size,
            classes, optimizer, XLA, data format, steps per execution,
            backend).
        params: Parameter count of the model as built.
        device_report: `DeviceReport.to_dict()` of the machine.
        versions: Versions of kerasbench, keras, tensorflow, numpy, python.
        machine: A label for the machine (host name unless given).
        started_at: ISO 8601 UTC time the run started.
        finished_at: ISO 8601 UTC time it ended.
        source: ``"measured"``, or ``"published"`` for figures copied from
            a publication (see ``reference``).
        reference: For published figures, where they come from.
        schema: Version of this format.
    """

    model: str
    mode: str
    batch_size: int
    precision: str
    device: str
    status: str = "ok"
    error: str | None = None
    stats: dict = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)
    params: int | None = None
    device_report: dict | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    machine: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    source: str = "measured"
    reference: str | None = None
    schema: int = SCHEMA_VERSION

    @property
    def ok(self):
        """Whether the run succeeded."""
        return self.status == "ok"

    @property
    def images_per_sec(self):
        """The headline figure, or ``None`` for a failed run."""
        return self.stats.get("images_per_sec")

    @property
    def throughput(self):
        """The statistics as a `ThroughputResult` (measured, successful runs)."""
        from kerasbench._timing.meter import ThroughputResult

        return ThroughputResult.from_dict(self.stats)

    @property
    def key(self):
        """What identifies a configuration across machines:
        ``(model, mode, batch_size, precision)``."""
        return (self.model, self.mode, self.batch_size, self.precision)

    def to_dict(self):
        """Returns a JSON-serialisable dict of every field."""
        return dataclasses.asdict(self)

    def to_json(self, indent=None):
        """Returns the result as a JSON string (one line unless ``indent``)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a result from `to_dict` output.

        Raises:
            ValueError: If a required field is missing or a value is invalid.
            TypeError: If ``d`` is not a dict.
        """
        if not isinstance(d, dict):
            raise TypeError(f"A result must be a JSON object. Received: {type(d).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in d]
        if missing:
            raise ValueError(f"A result needs the fields {', '.join(missing)}. "
                             f"Received fields: {', '.join(sorted(d)) or 'none'}")
        result = cls(**{k: v for k, v in d.items() if k in fields})
        if result.status not in STATUSES:
            raise ValueError(f"`status` must be one of {', '.join(STATUSES)}. "
                             f"Received: status={result.status!r}")
        if result.source not in SOURCES:
            raise ValueError(f"`source` must be one of {', '.join(SOURCES)}. "
                             f"Received: source={result.source!r}")
        return result

    @classmethod
    def from_json(cls, text):
        """Parses one JSON object (see `from_dict`)."""
        return cls.from_dict(json.loads(text))


# ----------------------------------------------------------- JSON Lines files


class ResultsFileError(ValueError):
    """A results file that cannot be read: names the file and the line."""


def append_result(path, result):
    """Appends one result as a line of JSON, durably and safely.

    The line is written with one ``write`` under an exclusive ``flock`` (on
    platforms that have it), then flushed and fsynced, so a crash or a kill
    loses at most the line being written and two processes appending to the
    same file never interleave.

    Args:
        path: The ``.jsonl`` file (created with its folder if missing).
        result: A `BenchmarkResult`.
    """
    import os

    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    line = (result.to_json() + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _lock(fd)
        try:
            _mend_last_line(fd, path)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _mend_last_line(fd, path):
    """Makes the file end with a newline before a result is appended.

    A writer killed in the middle of a line leaves a fragment at the end;
    under the lock nobody else is writing, so the fragment is cut off (with
    a warning). A complete JSON line that only lacks its newline gets one.
    """
    import os
    import warnings

    size = os.fstat(fd).st_size
    if not size:
        return
    with open(path, "rb") as f:
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read(size)
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
        os.write(fd, b"\n")
    except ValueError:
        os.ftruncate(fd, start)
        warnings.warn(
            f"{path}: removed a last line that was cut short ({size - start} bytes, "
            "from a run stopped while writing it)",
            stacklevel=3,
        )


def _lock(fd):
    try:
        import fcntl
    except ImportError:  # Windows: appends of one write are still whole lines
        return
    fcntl.flock(fd, fcntl.LOCK_EX)


def _unlock(fd):
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def read_results(path):
    """Reads every result of a ``.jsonl`` file, or of each one in a folder.

    A last line cut short (a run killed while writing) is skipped with a
    warning; any other unreadable line is an error naming file and line.

    Args:
        path: A ``.jsonl`` file or a folder of them (read in name order).

    Returns:
        A list of `BenchmarkResult`, in file order.

    Raises:
        ResultsFileError: If the path is missing or unreadable, a folder holds
            no ``.jsonl`` file, or a line is not a valid result.
    """
    import os
    import warnings

    path = os.fspath(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".jsonl"))
        if not files:
            raise ResultsFileError(f"{path}: no results files (*.jsonl) in this folder")
        return [r for f in files for r in read_results(f)]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file or folder") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsFileError(f"{path}: cannot be read ({e})") from None
    lines = text.split("\n")
    results = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            results.append(BenchmarkResult.from_dict(json.loads(line)))
        except (ValueError, TypeError) as e:
            cut_short = number == len(lines) and not text.endswith("\n")
            if cut_short and isinstance(e, json.JSONDecodeError):
                warnings.warn(
                    f"{path}:{number}: skipping the last line, which was cut short "
                    "(a run stopped while writing it)",
                    stacklevel=2,
                )
                continue
            raise ResultsFileError(f"{path}:{number}: not a valid result: {e}") from None
    return results


# ------------------------------------------------------------------- CSV

#: Columns of the CSV export, in order: the configuration, the outcome, the
#: figures (names as in `ThroughputResult`), then settings and provenance.
CSV_COLUMNS = (
    "model", "mode", "batch_size", "precision", "device", "machine", "status", "error",
    "images_per_sec", "images_per_sec_sem", "images_per_sec_jitter",
    "steps_per_sec", "step_time_s", "step_time_sd_s", "step_time_p50_s",
    "step_time_p90_s", "step_time_p99_s", "step_time_min_s", "step_time_max_s",
    "steps", "samples", "warmup_steps", "first_step_s",
    "image_size", "num_classes", "optimizer", "jit_compile", "data_format",
    "steps_per_execution", "backend", "params",
    "keras", "tensorflow", "kerasbench", "source", "started_at", "finished_at",
)
_STATS_COLUMNS = CSV_COLUMNS[8:23]
_CONFIG_COLUMNS = CSV_COLUMNS[23:30]
_VERSION_COLUMNS = ("keras", "tensorflow", "kerasbench")


def csv_row(result):
    """The flat figures of one result, keyed by `CSV_COLUMNS` (``None`` where absent)."""
    row = {name: getattr(result, name) for name in
           ("model", "mode", "batch_size", "precision", "device", "machine", "status",
            "error", "params", "source", "started_at", "finished_at")}
    row.update({name: result.stats.get(name) for name in _STATS_COLUMNS})
    row.update({name: result.config.get(name) for name in _CONFIG_COLUMNS})
    versions = result.versions or {}
    row.update({name: versions.get(name) or versions.get(f"{name}-cpu")
                for name in _VERSION_COLUMNS})
    return {name: row.get(name) for name in CSV_COLUMNS}


def write_csv(results, path):
    """Writes the flat figures of results as CSV, one row per result.

    Args:
        results: `BenchmarkResult`s (failures included: their figures are empty).
        path: The ``.csv`` file to write (its folder is created).

    Returns:
        ``path``.
    """
    import csv
    import os

    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for result in results:
            writer.writerow({k: "" if v is None else v for k, v in csv_row(result).items()})
    return path
