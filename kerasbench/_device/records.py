"""The report's records: plain dataclasses that go to and from JSON.

`Record.from_dict` rebuilds a record from `dataclasses.asdict` output. It
ignores unknown keys and lets missing ones take their defaults, so reports
written by other versions load, but it refuses a value of the wrong shape (a
list where a section belongs, a dict where a single value belongs) with a
ValueError that names the field.
"""

from __future__ import annotations

import dataclasses

from kerasbench._device import text

# Relative error tolerances of the health check's correctness tests:
# max|device - reference| / max|reference|, reference in float64 NumPy on the
# very inputs the device got (already rounded to the tested precision).
# "fp32 (TF32)" applies where TensorFlow may run float32 matmuls and
# convolutions on tensor cores in TF32 (10-bit mantissa) mode; "fp32 (oneDNN
# fpmath)" on CPUs where ONEDNN_DEFAULT_FPMATH_MODE / TF_SET_ONEDNN_FPMATH_MODE
# let oneDNN compute float32 ops in bf16, tf32 or fp16.
TOLERANCES = {
    "fp32": 1e-4,
    "fp32 (TF32)": 5e-3,
    "fp32 (oneDNN fpmath)": 3e-2,
    "fp16": 1e-2,
    "bf16": 3e-2,
}


class Record:
    """Base of the report's dataclasses: `from_dict` rebuilds nested records.

    Subclasses name their nested records: ``_RECORDS`` maps a field to the
    record class it holds, ``_RECORD_LISTS`` a field to the class of each
    item of its list.
    """

    _RECORDS = {}
    _RECORD_LISTS = {}

    @classmethod
    def from_dict(cls, d):
        """Rebuilds the record from `dataclasses.asdict` output (unknown keys ignored).

        Raises:
            TypeError: If `d` is not a dict.
            ValueError: If a field holds a value of the wrong shape.
        """
        if not isinstance(d, dict):
            raise TypeError(
                f"`{cls.__name__}.from_dict` expects a dict. Received: d={d!r:.80} "
                f"of type {type(d).__name__}"
            )
        return _build(cls, d, "")


def _build(cls, d, path):
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in d:
            where = f"{path}.{field.name}" if path else field.name
            kwargs[field.name] = _field_value(cls, field, d[field.name], where)
    return cls(**kwargs)


def _field_value(cls, field, value, path):
    kinds = [kind.strip() for kind in str(field.type).split("|")]
    if value is None and "None" in kinds:
        return None
    if field.name in cls._RECORDS:
        return _build(cls._RECORDS[field.name], _expect(value, dict, kinds, path), path)
    if field.name in cls._RECORD_LISTS:
        item_cls = cls._RECORD_LISTS[field.name]
        items = _expect(value, list, kinds, path)
        return [_build(item_cls, _expect(v, dict, ["dict"], f"{path}[{i}]"), f"{path}[{i}]")
                for i, v in enumerate(items)]
    if kinds[0] in ("list", "dict"):
        return _expect(value, list if kinds[0] == "list" else dict, kinds, path)
    if isinstance(value, (list, dict)):
        raise ValueError(f"`{path}` must be a single value ({field.type}), not a "
                         f"{type(value).__name__}. Received: {path}={value!r:.80}")
    return value


def _expect(value, kind, kinds, path):
    if isinstance(value, kind):
        return value
    allowed = f"a {kind.__name__}" + (" or None" if "None" in kinds else "")
    raise ValueError(f"`{path}` must be {allowed}. Received: {path}={value!r:.80}")


@dataclasses.dataclass
class HostInfo(Record):
    """The machine: CPU, memory, operating system, virtualisation."""

    cpu_model: str | None = None
    cpu_vendor: str | None = None
    cpu_family: int | None = None
    architecture: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    usable_cpus: int | None = None
    cpu_quota: float | None = None
    sockets: int | None = None
    numa_nodes: int | None = None
    cpu_mhz: float | None = None
    cpu_max_mhz: float | None = None
    isa: list = dataclasses.field(default_factory=list)
    sve_vector_bits: int | None = None
    caches: dict = dataclasses.field(default_factory=dict)
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    memory_limit_bytes: int | None = None
    os: str | None = None
    os_release: str | None = None
    kernel: str | None = None
    python_version: str | None = None
    python_implementation: str | None = None
    container: str | None = None
    virtual_machine: bool | None = None
    hypervisor: str | None = None
    peak: dict | None = None


@dataclasses.dataclass
class SoftwareInfo(Record):
    """Versions, build, and the settings that change performance.

    The ``tf_*`` fields describe TensorFlow (the tensorflow backend); the
    ``framework_*`` fields JAX or PyTorch (the jax and torch backends):
    ``framework_build`` holds the build facts under TensorFlow's build-info
    keys where they mean the same (``is_cuda_build``, ``cuda_version``,
    ...), ``framework_settings`` the settings read at run time (default
    platform, matmul precision, TF32, the framework's device list).
    ``onednn``, ``tensor_float_32`` and the thread counts are filled by
    whichever framework has them.
    """

    versions: dict = dataclasses.field(default_factory=dict)
    tensorflow_distributions: list = dataclasses.field(default_factory=list)
    keras_backend: str | None = None
    keras_backend_devices: list | None = None
    tf_build: dict | None = None
    tf_build_kind: str | None = None
    framework_build: dict | None = None
    framework_build_kind: str | None = None
    framework_settings: dict | None = None
    onednn: bool | None = None
    xla_jit: str | None = None
    tensor_float_32: bool | None = None
    op_determinism: bool | None = None
    mixed_precision_policy: str | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    env: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GpuInfo(Record):
    """One GPU the backend can use; ``name`` is what `check` and benchmarks take.

    ``tf_device`` is TensorFlow's name for it, ``backend_device`` JAX's or
    PyTorch's (``"cuda:0"``, ``"mps"``).
    """

    name: str | None = None
    tf_device: str | None = None
    backend_device: str | None = None
    model: str | None = None
    compute_capability: str | None = None
    multiprocessors: int | None = None
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_growth: bool | None = None
    pci_bus_id: str | None = None
    driver_version: str | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    utilization_gpu_pct: int | None = None
    utilization_memory_pct: int | None = None
    temperature_c: int | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    throttle_reasons: list | None = None
    peak: dict | None = None
    sources: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CorrectnessResult(Record):
    """One op at one precision on one device, against a float64 reference."""

    op: str = ""
    precision: str = ""
    shape: str = ""
    max_rel_error: float | None = None
    tolerance: float | None = None
    passed: bool | None = None
    ran_on: str | None = None
    error: str | None = None


@dataclasses.dataclass
class MatmulResult(Record):
    """Achieved dense matmul throughput at one precision."""

    precision: str = ""
    n: int | None = None
    iterations: int | None = None
    seconds: float | None = None
    tflops: float | None = None
    peak_tflops: float | None = None
    peak_is_estimate: bool | None = None
    fraction_of_peak: float | None = None
    ran_on: str | None = None
    error: str | None = None


@dataclasses.dataclass
class CopyBandwidth(Record):
    """Host-to-device and device-to-host copy bandwidth (GB/s, 1e9 bytes/s)."""

    bytes: int | None = None
    host_to_device_gbps: float | None = None
    device_to_host_gbps: float | None = None
    error: str | None = None


@dataclasses.dataclass
class DeviceHealth(Record):
    """The health check of one device."""

    device: str = ""
    model: str | None = None
    status: str = "OK"
    problems: list = dataclasses.field(default_factory=list)
    correctness: list = dataclasses.field(default_factory=list)
    throughput: list = dataclasses.field(default_factory=list)
    bandwidth: CopyBandwidth | None = None
    notes: list = dataclasses.field(default_factory=list)

    _RECORDS = {"bandwidth": CopyBandwidth}
    _RECORD_LISTS = {"correctness": CorrectnessResult, "throughput": MatmulResult}


@dataclasses.dataclass
class HealthCheck(Record):
    """Result of `DeviceReport.check`.

    Attributes:
        backend: The Keras backend whose framework ran the check.
        ok: False when any device failed (wrong numbers, an op that errors,
            or a GPU that silently ran the work on the CPU). Warnings (low
            throughput or copy bandwidth) leave it True but are listed.
        status: ``"OK"``, ``"WARNING"`` or ``"FAIL"``.
        problems: Every failure and warning, one sentence each.
        devices: One `DeviceHealth` per checked device.
        elapsed_s: Wall time of the check.
        time_budget_s: The budget the timed loops were sized to.
        tolerances: The correctness tolerances used.
    """

    backend: str | None = None
    ok: bool = True
    status: str = "OK"
    problems: list = dataclasses.field(default_factory=list)
    devices: list = dataclasses.field(default_factory=list)
    elapsed_s: float | None = None
    time_budget_s: float | None = None
    tolerances: dict = dataclasses.field(default_factory=lambda: dict(TOLERANCES))

    _RECORD_LISTS = {"devices": DeviceHealth}

    def to_dict(self):
        """Returns a JSON-serialisable dict (see `from_dict`)."""
        return dataclasses.asdict(self)

    def __str__(self):
        return text.format_health(self)
