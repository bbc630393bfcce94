"""BenchmarkResult: one benchmark run, its figures and their provenance.

Pure data (no Keras, no TensorFlow): results are made by `reference` and by
sweeps, written to and read back from JSON Lines files (`store`), and shown
in tables, charts and comparisons. Every field is checked when a result is
built, so a result read from a file is as sound as one just measured: stats
are finite numbers, texts are strings, the configuration is a `RunConfig`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

from kerasbench import _validate
from kerasbench._runs.config import RunConfig

#: Version of the result format; bumped when a field changes meaning.
#: 1: settings split between top-level fields and a free ``config`` dict;
#: 2: ``config`` is a whole `RunConfig`, plus ``requested`` and ``backend``.
SCHEMA_VERSION = 2

#: ``status`` values.
STATUSES = ("ok", "oom", "error")

#: ``source`` values: measured by kerasbench, or copied from a publication.
SOURCES = ("measured", "published")

#: Stats that must be numbers (or ``None``): the `ThroughputResult` figures.
NUMERIC_STATS = (
    "images_per_sec", "images_per_sec_sem", "images_per_sec_jitter",
    "steps_per_sec", "steps_per_sec_sem", "steps_per_sec_jitter",
    "step_time_s", "step_time_sd_s", "step_time_p50_s", "step_time_p90_s",
    "step_time_p99_s", "step_time_min_s", "step_time_max_s",
    "steps", "samples", "time_s", "observations", "warmup_steps", "warmup_time_s",
    "first_step_s",
)

#: Largest magnitude of a numeric stat: beyond it a figure is no measurement
#: (and would overflow a chart's axis).
MAX_STAT = 1e15

#: Smallest ``images_per_sec`` above zero (one image in 30 years).
MIN_IMAGES_PER_SEC = 1e-9

#: Fields that hold free text (or ``None``).
_TEXT_FIELDS = ("error", "error_type", "backend", "machine", "started_at", "finished_at",
                "citation")


@dataclasses.dataclass
class BenchmarkResult:
    """The outcome of one benchmark run.

    Attributes:
        config: The `RunConfig` that ran, every default resolved (the model's
            image size, the device, warmup, XLA). For a run that failed
            before it could resolve them, the configuration as requested.
        status: ``"ok"``, ``"oom"`` (out of memory) or ``"error"``.
        error: What went wrong, when ``status`` is not ``"ok"``.
        error_type: The exception's class name (``"ValueError"``), or
            ``"signal"``/``"timeout"``/``"crash"`` for a run that died.
        stats: The `ThroughputResult` figures as a dict (``images_per_sec``,
            ``images_per_sec_sem``, ``step_time_p99_s``, ...); empty when the
            run failed; only ``images_per_sec`` for published figures.
        requested: The `RunConfig` as asked for, before defaults were filled
            in and before an out-of-memory retry halved the batch; ``None``
            means the same as ``config``. A sweep's resume matches on it.
        backend: The Keras backend that ran it (``"tensorflow"``, ``"jax"``).
        params: Parameter count of the model as built.
        device_report: `DeviceReport.to_dict()` of the machine.
        versions: Versions of kerasbench, keras, the backend's framework,
            numpy and python.
        machine: A label for the machine (host name unless given).
        started_at: ISO 8601 UTC time the run started.
        finished_at: ISO 8601 UTC time it ended.
        source: ``"measured"``, or ``"published"`` for figures copied from
            a publication (see ``citation``).
        citation: For published figures, where they come from.
        schema: Version of this format.
    """

    config: RunConfig
    status: str = "ok"
    error: str | None = None
    error_type: str | None = None
    stats: dict = dataclasses.field(default_factory=dict)
    requested: RunConfig | None = None
    backend: str | None = None
    params: int | None = None
    device_report: dict | None = None
    versions: dict = dataclasses.field(default_factory=dict)
    machine: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    source: str = "measured"
    citation: str | None = None
    schema: int = SCHEMA_VERSION

    def __post_init__(self):
        if not isinstance(self.config, RunConfig):
            raise ValueError("`config` must be a RunConfig. "
                             f"Received: config={_short(self.config)}")
        if self.requested is not None and not isinstance(self.requested, RunConfig):
            raise ValueError("`requested` must be a RunConfig or None. "
                             f"Received: requested={_short(self.requested)}")
        _check_fields(self)

    # The configuration's headline settings, read through.
    model = property(lambda self: self.config.model, doc="Registry name.")
    mode = property(lambda self: self.config.mode, doc="``train`` or ``inference``.")
    batch_size = property(lambda self: self.config.batch_size, doc="Images per step.")
    precision = property(lambda self: self.config.precision, doc="``fp32``/``fp16``/``bf16``.")
    device = property(lambda self: self.config.device,
                      doc="Where it ran (``cpu``, ``gpu:0``); ``None`` if never resolved.")

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
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["config"] = self.config.to_dict()
        d["requested"] = None if self.requested is None else self.requested.to_dict()
        return copy.deepcopy(d)

    def to_json(self, indent=None):
        """Returns the result as a JSON string (one line unless ``indent``)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a result from `to_dict` output (this or an older schema).

        Raises:
            ValueError: If ``d`` is not a dict, a required field is missing
                or a value is invalid.
        """
        if not isinstance(d, dict):
            raise ValueError(f"A result must be a JSON object. Received: {type(d).__name__}")
        if d.get("schema", 1) == 1:
            d = _from_schema_1(d)
        if "config" not in d:
            raise ValueError("A result needs the field config. "
                             f"Received fields: {', '.join(sorted(d)) or 'none'}")
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields}
        values["config"] = RunConfig.from_dict(d["config"], strict=False)
        if d.get("requested") is not None:
            values["requested"] = RunConfig.from_dict(d["requested"], strict=False)
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        """Parses one JSON object (see `from_dict` and `loads`)."""
        return cls.from_dict(loads(text))


def _from_schema_1(d):
    """A schema-1 result as a schema-2 dict: settings gathered into ``config``."""
    required = [k for k in ("model", "mode", "batch_size", "precision", "device") if k not in d]
    if required:
        raise ValueError(f"A result needs the fields {', '.join(required)}. "
                         f"Received fields: {', '.join(sorted(d)) or 'none'}")
    old = d.get("config") or {}
    if not isinstance(old, dict):
        raise ValueError(f"`config` must be a JSON object. Received: config={_short(old)}")
    config = {**old, **{k: d[k] for k in ("model", "mode", "batch_size", "precision",
                                          "device")}}
    requested = None
    if "requested_batch_size" in old or "requested_device" in old:
        requested = {**config, "batch_size": old.get("requested_batch_size", d["batch_size"]),
                     "device": old.get("requested_device")}
    return {**d, "config": config, "requested": requested, "backend": old.get("backend"),
            "citation": d.get("reference"), "schema": SCHEMA_VERSION}


# ------------------------------------------------------------------ checks


def _check_fields(r):
    """Raises ValueError for a field of the wrong type or value (Keras-style)."""
    _validate.choice("status", r.status, STATUSES)
    _validate.choice("source", r.source, SOURCES)
    _validate.integer("schema", r.schema, minimum=1)
    if r.schema > SCHEMA_VERSION:
        raise ValueError(f"`schema` {r.schema} is newer than this kerasbench reads "
                         f"({SCHEMA_VERSION}); upgrade kerasbench. Received: schema={r.schema}")
    _validate.integer("params", r.params, minimum=0, allow_none=True)
    for name in _TEXT_FIELDS:
        _optional_text(name, getattr(r, name))
    _check_object("stats", r.stats)
    _check_object("versions", r.versions)
    if r.device_report is not None:
        _check_object("device_report", r.device_report)
    for name, value in r.versions.items():
        _optional_text(f"versions.{name}", value)
    for name, value in r.stats.items():
        _check_stat(name, value)


def _check_object(name, value):
    if not isinstance(value, dict):
        raise ValueError(f"`{name}` must be a dict (a JSON object). "
                         f"Received: {name}={_short(value)}")


def _optional_text(name, value):
    if value is not None and not isinstance(value, str):
        _validate.text(name, value, allow_none=True)  # raises, with the usual message


def _check_stat(name, value):
    """The `NUMERIC_STATS` are finite numbers or None; any other stat is a
    number, a string, a bool, None or a list of them. Numbers are finite and
    at most `MAX_STAT` in size; ``images_per_sec`` is 0 or from
    `MIN_IMAGES_PER_SEC` to `MAX_STAT`."""
    if name in NUMERIC_STATS:
        _number(f"stats.{name}", value)
        if name == "images_per_sec" and value is not None and \
                not (value == 0 or MIN_IMAGES_PER_SEC <= value):
            raise ValueError(f"`stats.images_per_sec` must be 0 or from {MIN_IMAGES_PER_SEC:g} "
                             f"to {MAX_STAT:g}. Received: stats.images_per_sec={value!r}")
        return
    for item in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(item, (dict, list, tuple)):
            raise ValueError(f"`stats.{name}` must be a number, a string, True, False, None "
                             f"or a list of them. Received: stats.{name}={_short(value)}")
        if not (item is None or isinstance(item, (str, bool))):
            _number(f"stats.{name}", item)


def _number(name, value):
    """A finite number of at most `MAX_STAT` in size, or None."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if not is_int:  # (an int too large for a float would overflow _validate.number)
        _validate.number(name, value, allow_none=True)
    if value is not None and abs(value) > MAX_STAT:
        raise ValueError(f"`{name}` must be a finite number of at most {MAX_STAT:g} in size. "
                         f"Received: {name}={_short(value, 40)}")


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -------------------------------------------------------------------- JSON

#: Deepest nesting of objects and lists a JSON line may have.
MAX_DEPTH = 64

#: Most digits an integer in a JSON line may have.
MAX_DIGITS = 30


def loads(text):
    """Parses standard JSON strictly: the one JSON parser of results files.

    Refuses what Python's `json` accepts but standard JSON does not, or what
    no result holds: ``NaN``, ``Infinity``, numbers beyond a float
    (``1e999``), integers of more than `MAX_DIGITS` digits and nesting deeper
    than `MAX_DEPTH`.

    Args:
        text: One JSON document (``str`` or UTF-8 ``bytes``).

    Raises:
        json.JSONDecodeError: If it is not JSON (a line cut short, say).
        ValueError: If it holds one of the values above, or is not UTF-8.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_float,
                           parse_int=_int)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    _check_depth(value)
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number in standard JSON")


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _int(text):
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is too large")
    return int(text)


def _check_depth(value):
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else \
            item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_DEPTH:
                    raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
                stack.append((child, depth + 1))
