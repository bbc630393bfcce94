"""The printed report and health check: one formatter per section.

`format_report` builds ``str(DeviceReport)``: a heading, then the Host,
Software and Accelerators sections, the notes, the probe errors and a one-line
health summary, each made by its own function from rows of a 15-character
label and a value. `format_health` builds ``str(HealthCheck)``. Lines longer
than 100 characters are wrapped under their value column.
"""

from __future__ import annotations

import textwrap

from kerasbench._device.frameworks import FRAMEWORKS

WIDTH = 100
_LABEL_WIDTH = 15
# The versions on the first "Versions" line, per backend (the rest follow).
_MAIN_VERSIONS = {
    "tensorflow": ("tensorflow", "keras", "numpy", "tensorboard"),
    "jax": ("jax", "jaxlib", "keras", "numpy"),
    "torch": ("torch", "keras", "numpy"),
}


# ----------------------------------------------------------------------------
# Values.


def unknown(value, suffix=""):
    """``"unknown"`` for None, else the value followed by `suffix`."""
    return "unknown" if value is None else f"{value}{suffix}"


def fmt_bytes(n):
    """A byte count in GiB, MiB, KiB or B (``"23.5 GiB"``); "unknown" for None."""
    if n is None:
        return "unknown"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


def fmt_peak(peak):
    """A peak dict as ``"[estimated ]fp32 67, ... TFLOP/s [source]"``."""
    if not peak:
        return "unknown"
    parts = [f"{k} {peak[k]:.4g}" for k in ("fp32", "tf32", "fp16", "bf16") if peak.get(k)]
    label = "estimated " if peak.get("estimate") else ""
    return f"{label}{', '.join(parts)} TFLOP/s [{peak.get('source')}]"


def _on_off(flag):
    return "unknown" if flag is None else ("on" if flag else "off")


def _threads(count):
    return "unknown" if count is None else ("0 (TF default)" if count == 0 else str(count))


def _row(label, value):
    return f"  {label:<{_LABEL_WIDTH}}{value}"


def wrap(lines, width=WIDTH):
    """Wraps long lines: rows under their value column, list items under their text."""
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = len(line) - len(line.lstrip(" "))
        if line.lstrip().startswith("- "):
            sub = " " * (indent + 2)
        elif indent == 2 and len(line) > _LABEL_WIDTH + 2 and line[_LABEL_WIDTH + 2] != " ":
            sub = " " * (_LABEL_WIDTH + 2)
        else:
            sub = " " * (indent + 2)
        out.extend(textwrap.wrap(line, width, subsequent_indent=sub,
                                 break_long_words=False, break_on_hyphens=False))
    return out


# ----------------------------------------------------------------------------
# Host.


def _cores(h):
    cores = f"{unknown(h.physical_cores)} physical / {unknown(h.logical_cores)} logical cores"
    if h.usable_cpus is not None and h.usable_cpus != h.logical_cores:
        cores += f", {h.usable_cpus} usable"
    if h.cpu_quota:
        cores += f", quota {h.cpu_quota:g} CPUs"
    if h.sockets and h.sockets > 1:
        cores += f", {h.sockets} sockets"
    if h.numa_nodes and h.numa_nodes > 1:
        cores += f", {h.numa_nodes} NUMA nodes"
    return cores


def _clock(h):
    clock = f"{h.cpu_mhz:.0f} MHz current" if h.cpu_mhz else "current unknown"
    return clock + (f", {h.cpu_max_mhz:.0f} MHz max" if h.cpu_max_mhz else ", max unknown")


def _memory(h):
    memory = (f"{fmt_bytes(h.memory_total_bytes)} total, "
              f"{fmt_bytes(h.memory_available_bytes)} available")
    if h.memory_limit_bytes:
        memory += f", cgroup limit {fmt_bytes(h.memory_limit_bytes)}"
    return memory


def _virtualization(h):
    found = []
    if h.container:
        found.append(f"{h.container} container")
    if h.virtual_machine:
        found.append("virtual machine" + (f" ({h.hypervisor})" if h.hypervisor else ""))
    elif h.virtual_machine is False:
        found.append("bare metal")
    return ", ".join(found) or ("none detected" if h.os == "Linux" else "unknown")


def _host_section(h):
    caches = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in h.caches.items())
    return [
        "Host",
        _row("CPU", f"{unknown(h.cpu_model)} ({unknown(h.architecture)}), {_cores(h)}"),
        _row("Clock", _clock(h)),
        _row("Vector ISA", ", ".join(h.isa) if h.isa else "unknown"),
        _row("Caches", caches or "unknown"),
        _row("Memory", _memory(h)),
        _row("OS", f"{unknown(h.os_release or h.os)}, kernel {unknown(h.kernel)}"),
        _row("Python", f"{unknown(h.python_version)} ({unknown(h.python_implementation)})"),
        _row("Virtualization", _virtualization(h)),
        _row("CPU peak", fmt_peak(h.peak)),
    ]


# ----------------------------------------------------------------------------
# Software.


def _version_rows(versions, main):
    versions = versions or {}
    rows = [_row("Versions", ", ".join(f"{k} {unknown(versions.get(k))}" for k in main))]
    extra = [f"{k} {v}" for k, v in versions.items() if k not in main and v]
    if extra:
        rows.append(_row("", ", ".join(extra)))
    return rows


def _tf_build(s):
    if s.tf_build_kind != "CUDA":
        return unknown(s.tf_build_kind)
    b = s.tf_build or {}
    targets = ", ".join(b.get("cuda_compute_capabilities") or []) or "unknown"
    return (f"CUDA build (CUDA {unknown(b.get('cuda_version'))}, cuDNN "
            f"{unknown(b.get('cudnn_version'))}, for {targets})")


def _threads_row(s):
    return _row("Threads", f"intra-op {_threads(s.intra_op_threads)}, "
                f"inter-op {_threads(s.inter_op_threads)}")


def _tensorflow_rows(s):
    return [
        _row("TF build", _tf_build(s)),
        _row("oneDNN", _on_off(s.onednn)),
        _row("XLA JIT", unknown(s.xla_jit)),
        _row("Precision", f"policy {unknown(s.mixed_precision_policy)}, "
             f"TF32 {_on_off(s.tensor_float_32)}, op determinism {_on_off(s.op_determinism)}"),
        _threads_row(s),
    ]


def _jax_rows(s):
    b, settings = s.framework_build or {}, s.framework_settings or {}
    plugins = ", ".join(b.get("plugins") or [])
    if s.framework_build_kind == "CPU-only":
        build = (f"CPU-only (jaxlib {unknown(b.get('jaxlib_version'))}; no CUDA or ROCm "
                 "plugin installed)")
    else:
        build = f"{unknown(s.framework_build_kind)} build" + (f" ({plugins})" if plugins else "")
    precision = settings.get("default_matmul_precision") or "default"
    return [
        _row("JAX build", build),
        _row("JAX platform", f"{unknown(settings.get('default_backend'))} (default backend)"),
        _row("Precision", f"policy {unknown(s.mixed_precision_policy)}, default matmul "
             f"precision {precision}, x64 {_on_off(settings.get('x64'))}"),
    ]


def _torch_build(s):
    b = s.framework_build or {}
    if s.framework_build_kind == "CUDA":
        targets = ", ".join(b.get("cuda_compute_capabilities") or []) or "unknown"
        build = (f"CUDA build (CUDA {unknown(b.get('cuda_version'))}, cuDNN "
                 f"{unknown(b.get('cudnn_version'))}, for {targets})")
    elif s.framework_build_kind == "ROCm":
        build = f"ROCm build (HIP {unknown(b.get('hip_version'))})"
    else:
        build = unknown(s.framework_build_kind)
    extras = [name for key, name in (("mkl", "MKL"), ("openmp", "OpenMP"), ("mps_built", "MPS"))
              if b.get(key)]
    return build + (f"; with {', '.join(extras)}" if extras else "")


def _torch_rows(s):
    settings = s.framework_settings or {}
    return [
        _row("Torch build", _torch_build(s)),
        _row("oneDNN", _on_off(s.onednn)),
        _row("Precision", f"policy {unknown(s.mixed_precision_policy)}, float32 matmul "
             f"precision {unknown(settings.get('float32_matmul_precision'))}, TF32 matmul "
             f"{_on_off(settings.get('tf32_matmul'))}, cuDNN TF32 "
             f"{_on_off(settings.get('tf32_cudnn'))}"),
        _threads_row(s),
    ]


def _other_rows(s):
    return [_row("Precision", f"policy {unknown(s.mixed_precision_policy)}")]


_FRAMEWORK_ROWS = {"tensorflow": _tensorflow_rows, "jax": _jax_rows, "torch": _torch_rows}


def _software_section(s, backend):
    backend = backend or "tensorflow"  # reports from before the backend was recorded
    lines = ["Software"] + _version_rows(s.versions,
                                         _MAIN_VERSIONS.get(backend, ("keras", "numpy")))
    if s.tensorflow_distributions:
        lines.append(_row("TF package", ", ".join(s.tensorflow_distributions)))
    devices = s.keras_backend_devices
    lines.append(_row("Keras backend", unknown(s.keras_backend)
                      + (f" (devices: {', '.join(devices)})" if devices else "")))
    lines += _FRAMEWORK_ROWS.get(backend, _other_rows)(s)
    lines.append(_row("Environment", "; ".join(f"{k}={v}" for k, v in s.env.items())
                      or "no performance variables set"))
    return lines


# ----------------------------------------------------------------------------
# Accelerators.


def _driver(d):
    parts = [f"libcuda {d['libcuda']}" if d.get("libcuda") else "libcuda not loadable"]
    if d.get("cuda_driver_version"):
        parts.append(f"CUDA driver API {d['cuda_driver_version']}")
    if d.get("cuinit"):
        parts.append(f"cuInit {d['cuinit']}")
    if d.get("driver_version"):
        parts.append(f"driver {d['driver_version']}")
    parts.append(f"/dev/nvidia*: {', '.join(d.get('device_files') or []) or 'none'}")
    if d.get("gpus_on_system") is not None:
        parts.append(f"{d['gpus_on_system']} GPU(s) on the system")
    if d.get("management"):
        parts.append(f"details from {d['management']}")
    elif d.get("management_error"):
        parts.append(d["management_error"])
    return "; ".join(parts)


def _gpu_state_rows(g):
    """Clocks, power, utilisation and PCIe link, when NVML or nvidia-smi gave them."""
    if g.sm_clock_mhz is None and g.power_limit_w is None:
        return []
    return [
        _row("", f"SM clock {unknown(g.sm_clock_mhz)}/{unknown(g.sm_clock_max_mhz)} MHz, "
             f"memory clock {unknown(g.memory_clock_mhz)}/{unknown(g.memory_clock_max_mhz)} MHz, "
             f"power {unknown(g.power_draw_w)}/{unknown(g.power_limit_w)} W"),
        _row("", f"utilisation {unknown(g.utilization_gpu_pct, '%')} (memory "
             f"{unknown(g.utilization_memory_pct, '%')}), {unknown(g.temperature_c, ' C')}, "
             f"PCIe gen {unknown(g.pcie_gen)} x{unknown(g.pcie_width)} (max gen "
             f"{unknown(g.pcie_gen_max)} x{unknown(g.pcie_width_max)}), "
             f"bus {unknown(g.pci_bus_id)}"),
    ]


def _gpu_rows(g):
    growth = "" if g.memory_growth is None else f", growth {'on' if g.memory_growth else 'off'}"
    return [
        _row(g.name, f"{unknown(g.model)}, compute capability {unknown(g.compute_capability)}"
             + (f", {g.multiprocessors} SMs" if g.multiprocessors else "")),
        _row("", f"memory {fmt_bytes(g.memory_total_bytes)} total, "
             f"{fmt_bytes(g.memory_free_bytes)} free{growth}"),
        *_gpu_state_rows(g),
        _row("", f"peak {fmt_peak(g.peak)}"),
    ]


def _no_gpu_row(r):
    reason = r.gpu_unavailable_reason or ""
    if r.backend_gpus:
        return _row("GPUs", f"{', '.join(r.backend_gpus)} through the {r.software.keras_backend} "
                    "backend; TensorFlow's GPU facts and health check are not available: "
                    + reason)
    return _row("GPUs", "none. " + reason)


def _backend_row(backend):
    if backend is None:  # reports from before the backend was recorded
        return []
    if backend in FRAMEWORKS:
        return [_row("Backend", f"{backend}: GPUs listed and checked through "
                     f"{FRAMEWORKS[backend]}")]
    return [_row("Backend", f"{backend}: kerasbench lists only the CPU for it")]


def _accelerator_section(r):
    lines = ["Accelerators"] + _backend_row(r.backend)
    if r.gpu_driver:
        lines.append(_row("Driver", _driver(r.gpu_driver)))
    for g in r.accelerators:
        lines += _gpu_rows(g)
    if not r.accelerators:
        lines.append(_no_gpu_row(r))
    lines.append(_row("Devices", ", ".join(r.devices)))
    return lines


# ----------------------------------------------------------------------------
# Notes, probe errors, health summary; the whole report.


def _notes_section(notes):
    return ["Notes"] + [f"  - {n}" for n in notes] if notes else []


def _probe_errors_section(errors):
    if not errors:
        return []
    return ["Probe errors (facts reported as unknown)"] + [f"  - {k}: {v}" for k, v in
                                                           errors.items()]


def _health_summary(hc):
    """One line; ``str(report.health)`` has the details."""
    if hc is None:
        return []
    checked = ", ".join(d.device for d in hc.devices) or "no device"
    summary = f"{hc.status} on {checked}"
    if hc.problems:
        summary += f": {len(hc.problems)} problem(s), first: {hc.problems[0]}"
    return [f"Health check: {summary}"]


def format_report(r):
    """The readable block of a `DeviceReport` (``str(report)``)."""
    lines = [f"kerasbench device report ({r.collected_at or 'time unknown'})"]
    lines += _host_section(r.host)
    lines += _software_section(r.software, r.backend)
    lines += _accelerator_section(r)
    lines += _notes_section(r.notes)
    lines += _probe_errors_section(r.probe_errors)
    lines += _health_summary(r.health)
    return "\n".join(wrap(lines))


# ----------------------------------------------------------------------------
# Health check.


def _correctness_line(c, device):
    error = "n/a" if c.max_rel_error is None else f"{c.max_rel_error:.1e}"
    verdict = "ok" if c.passed else "WRONG"
    where = f" on {c.ran_on}" if c.ran_on and c.ran_on != device else ""
    return (f"    {c.op:<7}{c.precision:<5} rel. error {error:>8} (tolerance "
            f"{c.tolerance:.0e}) {verdict}{where}" + (f" [{c.error}]" if c.error else ""))


def _throughput_line(t):
    if t.error:
        return f"    matmul {t.precision:<5} throughput: error [{t.error}]"
    peak = "peak unknown"
    if t.peak_tflops:
        label = "estimated peak" if t.peak_is_estimate else "peak"
        peak = f"{t.fraction_of_peak:.0%} of {label} {t.peak_tflops:.4g}"
    return (f"    matmul {t.precision:<5} {t.tflops:.3f} TFLOP/s  ({t.n}^3 x "
            f"{t.iterations} in {t.seconds:.3f} s; {peak})")


def _bandwidth_line(b):
    if b.error:
        return f"    copies: error [{b.error}]"
    return (f"    copies ({fmt_bytes(b.bytes)}): host->device {b.host_to_device_gbps:.1f} GB/s, "
            f"device->host {b.device_to_host_gbps:.1f} GB/s")


def _device_health_lines(d):
    lines = [f"  {d.device} ({unknown(d.model)}): {d.status}"]
    lines += [_correctness_line(c, d.device) for c in d.correctness]
    lines += [_throughput_line(t) for t in d.throughput]
    if d.bandwidth is not None:
        lines.append(_bandwidth_line(d.bandwidth))
    lines += [f"    note: {n}" for n in d.notes]
    return lines


def format_health(hc):
    """The readable block of a `HealthCheck` (``str(result)``)."""
    lines = [f"Health check: {hc.status} ({unknown(hc.elapsed_s)} s, timed loops sized to "
             f"{unknown(hc.time_budget_s)} s)"]
    if hc.backend:
        lines.append(f"  Backend: {hc.backend} ({FRAMEWORKS.get(hc.backend, hc.backend)})")
    for d in hc.devices:
        lines += _device_health_lines(d)
    if hc.problems:
        lines += ["Problems:"] + [f"  - {p}" for p in hc.problems]
    return "\n".join(wrap(lines))
