"""`DeviceReport`: what produced the numbers, and is the GPU really working.

``DeviceReport.collect()`` gathers facts about the host, the software stack
and every GPU the Keras backend in use can see (through TensorFlow, JAX or
PyTorch) without running any computation; ``report.check()``
then runs a short health check on each device (correctness of a matmul and a
convolution against NumPy, achieved matmul TFLOP/s against the theoretical
peak, and host/device copy bandwidth on GPUs).

Every probe is wrapped: a missing fact is recorded as ``None`` (printed as
"unknown") and the exception, if any, lands in ``report.probe_errors``.
Importing this module imports no framework and not Keras; `collect` imports
Keras and the framework of its backend.
docs/device-report.md explains each field and the check's method.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
import warnings

from kerasbench import _validate
from kerasbench._device import text
from kerasbench._device.backends import GPU_PROBES, backend_in_use
from kerasbench._device.diagnosis import UNDETERMINED, explain_no_gpu
from kerasbench._device.gpu import collect_gpus
from kerasbench._device.health import device_names, precision_names, run_health_check
from kerasbench._device.host import collect_host
from kerasbench._device.notes import report_notes
from kerasbench._device.probing import Probes
from kerasbench._device.records import GpuInfo, HealthCheck, HostInfo, Record, SoftwareInfo
from kerasbench._device.software import collect_software
from kerasbench._device.sources import Sources

SCHEMA_VERSION = 1
NOT_PROBED = "GPUs were not probed (DeviceReport.collect(probe_gpus=False))."


@dataclasses.dataclass
class DeviceReport(Record):
    """What produced the numbers: host, software, accelerators, and health.

    Build one with `DeviceReport.collect()`; `print` it, embed `to_dict()` in
    results, and run `check()` to test every device.

    Attributes:
        backend: The Keras backend the report describes (``"tensorflow"``,
            ``"jax"``, ``"torch"``, ...): its framework lists the GPUs, gives
            the software facts and runs the health check. None in reports
            written before it was recorded (they describe TensorFlow).
        host: `HostInfo`.
        software: `SoftwareInfo`.
        accelerators: `GpuInfo` for each GPU the backend can use.
        gpu_unavailable_reason: Plain-words reason no GPU is usable, or None
            when at least one is.
        gpu_driver: Driver-level facts (libcuda, cuInit result, CUDA device
            count, /dev/nvidia* files, NVML driver version, GPUs on the
            system whatever CUDA_VISIBLE_DEVICES says), or None if GPUs were
            not probed.
        notes: Remarks worth reading next to the numbers.
        probe_errors: Probe name -> the exception it raised.
        health: The last `check()` result, or None.

    Example:

    ```python
    report = DeviceReport.collect()
    print(report)
    result = report.check()
    assert result.ok, str(result)
    ```
    """

    schema_version: int = SCHEMA_VERSION
    collected_at: str | None = None
    collect_seconds: float | None = None
    backend: str | None = None
    host: HostInfo = dataclasses.field(default_factory=HostInfo)
    software: SoftwareInfo = dataclasses.field(default_factory=SoftwareInfo)
    accelerators: list = dataclasses.field(default_factory=list)
    gpu_unavailable_reason: str | None = None
    gpu_driver: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    probe_errors: dict = dataclasses.field(default_factory=dict)
    health: HealthCheck | None = None

    _RECORDS = {"host": HostInfo, "software": SoftwareInfo, "health": HealthCheck}
    _RECORD_LISTS = {"accelerators": GpuInfo}
    _sources = None  # the `Sources` of `collect`, which `check` imports through; not a field

    @classmethod
    def collect(cls, probe_gpus=True, sources=None):
        """Collects the report. Cheap: no computation runs on any device.

        Imports Keras and the framework of the backend in use (Keras' own
        ``keras.config.backend()``, or ``KERAS_BACKEND``/keras.json when
        Keras cannot be imported): TensorFlow, JAX or PyTorch, a few seconds
        the first time in a process. Then asks that framework, the CUDA
        driver and NVML about GPUs. With TensorFlow, listing GPUs does not
        initialise its GPU runtime, so memory growth and visible devices can
        still be configured afterwards; JAX starts its backends when asked
        for its devices (as Keras does at its first op).

        Args:
            probe_gpus: Whether to look for GPUs at all. False skips the
                backend's GPU list, the CUDA driver and NVML; the report
                then lists only the CPU and says GPUs were not probed. (JAX's
                software facts still ask for its default platform, which
                starts its backends.)
            sources: Where to read the facts, a `Sources`; None for this
                machine.

        Returns:
            A `DeviceReport`.

        Raises:
            ValueError: If `probe_gpus` is not a bool or `sources` not a
                `Sources`.

        Example:

        ```python
        report = DeviceReport.collect()
        print(report.devices)  # e.g. ['cpu', 'gpu:0']
        ```
        """
        probe_gpus = _validate.boolean("probe_gpus", probe_gpus)
        sources = _sources(sources)
        start = time.perf_counter()
        probes = Probes(timeout_s=sources.timeout_s)
        report = cls(collected_at=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"))
        report._sources = sources
        keras = probes.run("software.keras_import", sources.import_keras)
        keras_backend, report.backend = backend_in_use(probes, keras, sources.environ)
        module, error = _import_framework(probes, report.backend, sources)
        report.host = collect_host(probes, sources)
        report.software = collect_software(probes, report.backend, module, keras, keras_backend,
                                           sources)
        if probe_gpus:
            _fill_gpus(report, probes, module, error, sources)
        else:
            report.gpu_unavailable_reason = NOT_PROBED
        report.notes = report_notes(report)
        report.probe_errors = probes.errors
        report.collect_seconds = round(time.perf_counter() - start, 3)
        return report

    @property
    def devices(self):
        """Device names a benchmark can target: ``["cpu", "gpu:0", ...]``.

        The GPUs of the backend the report describes. A report written
        before the backend was recorded lists TensorFlow's GPUs plus those
        of another Keras backend (`backend_gpus`).
        """
        names = ["cpu"] + [g.name for g in self.accelerators if g.name]
        return names + [g for g in self.backend_gpus if g not in names]

    @property
    def backend_gpus(self):
        """In a report without ``backend`` (older versions), the GPUs of a
        non-TensorFlow Keras backend as ``"gpu:N"`` names; else ``[]``."""
        if self.backend is not None or self.software.keras_backend in (None, "tensorflow"):
            return []
        out = []
        for d in self.software.keras_backend_devices or []:
            kind, _, index = str(d).partition(":")
            if kind.lower() in ("gpu", "cuda") and index.isdigit():
                out.append(f"gpu:{index}")
        return out

    def to_dict(self):
        """Returns the report as a JSON-serialisable dict with stable keys.

        Returns:
            A dict of plain types; `from_dict` rebuilds an equal report.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a report from `to_dict`'s output (e.g. read from JSON).

        Missing keys take their defaults and unknown keys are ignored, so
        reports written by other versions still load.

        Args:
            d: A dict as returned by `to_dict`.

        Returns:
            A `DeviceReport`.

        Raises:
            TypeError: If `d` is not a dict.
            ValueError: If a field holds a value of the wrong shape (a
                section that is not a dict, a list that is not a list); the
                message names the field.
        """
        if isinstance(d, dict) and isinstance(d.get("schema_version"), int) and \
                d["schema_version"] > SCHEMA_VERSION:
            warnings.warn(
                f"This report has schema version {d['schema_version']}, newer than "
                f"this kerasbench's {SCHEMA_VERSION}; fields it does not know are ignored.",
                stacklevel=2,
            )
        return super().from_dict(d)

    def to_json(self, indent=2):
        """Returns `to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls, text):
        """Rebuilds a report from `to_json`'s output."""
        return cls.from_dict(json.loads(text))

    def __str__(self):
        return text.format_report(self)

    def check(self, devices=None, time_budget_s=4.0, precisions=None):
        """Runs the health check on each device and stores it in `health`.

        For each device: (a) a matmul and a 3x3 convolution at each precision
        are compared with a float64 NumPy reference (tolerances in
        `HealthCheck.tolerances`); (b) dense matmul throughput is timed per
        precision, TFLOP/s = 2*N^3*iterations/seconds, next to the peak where
        known; (c) on GPUs, host-to-device and device-to-host copy bandwidth
        is timed. The framework of the report's backend computes (TensorFlow,
        JAX or PyTorch, imported through the `Sources` given to `collect`).
        Note that the first use of a GPU initialises the framework's GPU
        runtime, which (TensorFlow, JAX) by default reserves most of the
        GPU's memory for this process.

        Args:
            devices: None for every device in `devices`, or a name or list of
                names from it (``"cpu"``, ``"gpu:0"``; ``"gpu"`` means all
                GPUs).
            time_budget_s: Seconds the timed loops are sized to, shared among
                devices (one-off start-up costs such as initialising the GPU
                runtime come on top).
            precisions: Subset of ``("fp32", "fp16", "bf16")``; None for all.

        Returns:
            A `HealthCheck`; ``str()`` of it starts with "Health check: OK"
            (or WARNING/FAIL) and ends with what is wrong.

        Raises:
            ValueError: If a device is not available, the budget is not a
                positive number, or a precision is unknown.

        Example:

        ```python
        result = DeviceReport.collect().check(devices="cpu", time_budget_s=2)
        print(result)
        ```
        """
        names = device_names(devices, self)
        budget = _validate.number("time_budget_s", time_budget_s, positive=True)
        precisions = precision_names(precisions)
        self.health = run_health_check(self, names, budget, precisions,
                                       self._sources or Sources())
        return self.health

    def write_tensorboard(self, log_dir, step=0):
        """Writes the report (and the health check, if run) as text summaries.

        Tags: ``kerasbench/device_report`` (the readable block),
        ``kerasbench/device_report_json`` (`to_json()`), and
        ``kerasbench/health_check`` when `check()` has run. Written with the
        ``tensorboard`` package alone, so TensorFlow is neither needed nor
        started (on a GPU its runtime would claim memory next to JAX's or
        PyTorch's).

        Args:
            log_dir: Directory for the event file (created if missing).
            step: Summary step, an int >= 0.

        Raises:
            ValueError: If `log_dir` is not a path or `step` not an int >= 0.

        Example:

        ```python
        DeviceReport.collect().write_tensorboard("logs/device")
        ```
        """
        log_dir = _validate.path("log_dir", log_dir)
        step = _validate.integer("step", step, minimum=0)
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.text.summary_v2 import text_pb
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        texts = [("kerasbench/device_report", _code_block(str(self))),
                 ("kerasbench/device_report_json", self.to_json())]
        if self.health is not None:
            texts.append(("kerasbench/health_check", _code_block(str(self.health))))
        os.makedirs(log_dir, exist_ok=True)
        writer = EventFileWriter(log_dir)
        try:
            for tag, block in texts:
                writer.add_event(event_pb2.Event(wall_time=time.time(), step=step,
                                                 summary=text_pb(tag, block)))
            writer.flush()
        finally:
            writer.close()


def _code_block(block):
    """Indents every line by four spaces: preformatted text in TensorBoard."""
    return "\n".join("    " + line for line in block.splitlines())


def _sources(sources):
    if sources is None:
        return Sources()
    if not isinstance(sources, Sources):
        raise ValueError(f"`sources` must be a Sources or None. Received: sources={sources!r}")
    return sources


def _import_framework(probes, backend, sources):
    """``(the backend's framework module, None)``, ``(None, the import error)``,
    or ``(None, None)`` for a backend kerasbench lists no devices for."""
    if backend not in GPU_PROBES:
        return None, None
    key = f"software.{backend}_import"
    try:
        return sources.import_framework(backend), None
    except Exception as e:
        probes.record(key, e, limit=300)
        return None, probes.errors[key]


def _fill_gpus(report, probes, module, error, sources):
    """Probes the GPUs; explains why there is none when the backend has none."""
    backend = report.backend
    listed, facts = [], {}
    if module is not None:
        listed, facts = probes.run(f"gpu.{backend}", GPU_PROBES[backend], module,
                                   default=([], {}))
    report.accelerators, report.gpu_driver = collect_gpus(probes, listed, sources, backend)
    if report.accelerators:
        return
    sw = report.software
    tf = backend == "tensorflow"
    facts.update(
        backend=backend, platform=sys.platform, framework_error=error,
        version=sw.versions.get(backend), distributions=sw.tensorflow_distributions,
        build=sw.tf_build if tf else sw.framework_build,
        cuda_visible_devices=sources.environ.get("CUDA_VISIBLE_DEVICES"),
        jax_platforms=sources.environ.get("JAX_PLATFORMS"),
        driver=report.gpu_driver, container=report.host.container,
        dev_kfd=os.path.exists(os.path.join(sources.root, "dev/kfd")),
        cuda_probe_error=probes.errors.get("gpu.cuda_driver"),
    )
    report.gpu_unavailable_reason = probes.run("gpu.reason", explain_no_gpu, facts,
                                               default=UNDETERMINED)
