"""Remarks worth reading next to the numbers, one small function per remark.

Each function takes the `DeviceReport` and returns a sentence, or None when
the remark does not apply; `report_notes` collects them in a fixed order,
then the remarks on each GPU.
"""

from __future__ import annotations

from kerasbench._device.gpu import cc_tuple
from kerasbench._device.text import fmt_bytes


def several_tf_distributions(report):
    """Two TensorFlow distributions share one package folder."""
    dists = report.software.tensorflow_distributions or []
    if len(dists) <= 1:
        return None
    return (f"Several TensorFlow distributions are installed ({', '.join(dists)}); "
            "they share one 'tensorflow' package folder, and the last one installed wins.")


def other_keras_backend(report):
    """Keras runs on another backend than the one the report checks."""
    backend = report.software.keras_backend
    if not backend or backend == "tensorflow":
        return None
    return (f"The Keras backend is {backend!r}: Keras models run there, while "
            "the device list and health check use TensorFlow.")


def tf32_on(report):
    """TF32 is on and a GPU has tensor cores that use it."""
    if not report.software.tensor_float_32 or not any(
            cc_tuple(g.compute_capability) >= (8, 0) for g in report.accelerators):
        return None
    return ("TF32 is on: float32 matmuls and convolutions on this GPU run on tensor "
            "cores with a 10-bit mantissa (tf.config.experimental."
            "enable_tensor_float_32_execution(False) turns it off).")


def xla_on(report):
    """XLA auto-clustering is on."""
    jit = report.software.xla_jit
    if jit in (None, "off"):
        return None
    return f"XLA auto-clustering is on (tf.config.optimizer.get_jit() = {jit!r})."


def cpu_quota(report):
    """A cgroup CPU quota below the logical core count."""
    host = report.host
    if not (host.cpu_quota and host.logical_cores and host.cpu_quota < host.logical_cores):
        return None
    return (f"A cgroup CPU quota limits this process to {host.cpu_quota:g} CPUs of "
            f"{host.logical_cores}.")


def memory_limit(report):
    """A cgroup memory limit below the machine's memory."""
    limit = report.host.memory_limit_bytes
    return f"A cgroup memory limit of {fmt_bytes(limit)} applies." if limit else None


def gpu_remarks(gpu):
    """Clocks held down by something other than idling; a narrowed PCIe link."""
    remarks = []
    slow = [r for r in gpu.throttle_reasons or [] if r != "gpu idle"]
    if slow:
        remarks.append(f"{gpu.name} clocks are held down by: {', '.join(slow)}.")
    if gpu.pcie_width and gpu.pcie_width_max and gpu.pcie_width < gpu.pcie_width_max:
        remarks.append(f"{gpu.name} PCIe link runs at x{gpu.pcie_width} of x{gpu.pcie_width_max}.")
    return remarks


NOTES = (several_tf_distributions, other_keras_backend, tf32_on, xla_on, cpu_quota,
         memory_limit)


def report_notes(report):
    """Every remark that applies to `report`, in order."""
    found = [note for note in (rule(report) for rule in NOTES) if note]
    for gpu in report.accelerators:
        found += gpu_remarks(gpu)
    return found
