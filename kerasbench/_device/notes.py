"""Remarks worth reading next to the numbers, one small function per remark.

Each function takes the `DeviceReport` and returns a sentence, or None when
the remark does not apply; `report_notes` collects them in a fixed order,
then the remarks on each GPU.
"""

from __future__ import annotations

from kerasbench._device.gpu import cc_tuple
from kerasbench._device.ops import OPS
from kerasbench._device.text import fmt_bytes

# How to turn TF32 off, per backend.
TF32_OFF = {
    "tensorflow": "tf.config.experimental.enable_tensor_float_32_execution(False) turns it off",
    "jax": "jax.config.update('jax_default_matmul_precision', 'highest') turns it off",
    "torch": "torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 "
             "switch it",
}


def several_tf_distributions(report):
    """Two TensorFlow distributions share one package folder."""
    dists = report.software.tensorflow_distributions or []
    if len(dists) <= 1:
        return None
    return (f"Several TensorFlow distributions are installed ({', '.join(dists)}); "
            "they share one 'tensorflow' package folder, and the last one installed wins.")


def backend_without_check(report):
    """The Keras backend is one kerasbench lists no GPUs for and cannot check."""
    backend = report.backend
    if backend is None or backend in OPS:
        return None
    return (f"The Keras backend is {backend!r}: kerasbench lists only the CPU for it and has "
            f"no health check for it (it has for {', '.join(OPS)}).")


def tf32_on(report):
    """TF32 is on and a GPU has tensor cores that use it."""
    backend = report.backend or "tensorflow"
    ops = OPS[backend].tf32_ops(report.software) if backend in OPS else ()
    if not ops or not any(cc_tuple(g.compute_capability) >= (8, 0) for g in report.accelerators):
        return None
    what = " and ".join(name for op, name in (("matmul", "matmuls"), ("conv2d", "convolutions"))
                        if op in ops)
    return (f"TF32 is on: float32 {what} on this GPU run on tensor "
            f"cores with a 10-bit mantissa ({TF32_OFF[backend]}).")


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


NOTES = (several_tf_distributions, backend_without_check, tf32_on, xla_on, cpu_quota,
         memory_limit)


def report_notes(report):
    """Every remark that applies to `report`, in order."""
    found = [note for note in (rule(report) for rule in NOTES) if note]
    for gpu in report.accelerators:
        found += gpu_remarks(gpu)
    return found
