"""The health check: correctness, matmul throughput, copy bandwidth.

For each device: (a) a matmul and a 3x3 convolution per precision against a
float64 NumPy reference (`check_correctness`); (b) dense matmul TFLOP/s
(`time_matmul`, using the `tflops` formula) next to the peak; (c) on GPUs,
host/device copy bandwidth (`copy_bandwidth`). ``verdict.judge`` turns the
measurements into a status and one sentence per problem;
`run_health_check` does it all. The check is written once: the framework
steps (make a tensor, copy it, matmul, convolve, sync) go through the
backend's adapter in ``ops``. docs/device-report.md explains the method.
"""

from __future__ import annotations

import math
import os
import time

from kerasbench import _validate
from kerasbench._device.frameworks import FRAMEWORKS
from kerasbench._device.gpu import cc_tuple
from kerasbench._device.ops import ITEMSIZE, OPS
from kerasbench._device.probing import describe_error
from kerasbench._device.records import (TOLERANCES, CopyBandwidth, CorrectnessResult,
                                        DeviceHealth, HealthCheck, MatmulResult)
from kerasbench._device.verdict import judge, unsupported_precisions

PRECISIONS = ("fp32", "fp16", "bf16")

# Matmul sizes of the throughput test: start, largest, and the shortest call
# worth timing (smaller matrices are grown until one call takes this long).
CPU_SIZES = (512, 2048, 0.005)
GPU_SIZES = (4096, 16384, 0.005)
COPY_BYTES = 256 * 2**20

# The correctness cases: op, shape as printed, shapes of the two inputs.
_CASES = (
    ("matmul", "256x256 @ 256x256", ((256, 256), (256, 256))),
    ("conv2d", "2x16x16x16 * 3x3x16x32 SAME", ((2, 16, 16, 16), (3, 3, 16, 32))),
)


def tflops(m, n, k, iterations, seconds):
    """Dense matmul throughput: 2*M*N*K*iterations / seconds, in TFLOP/s.

    An (M x K) @ (K x N) product does M*N*K multiply-adds, two FLOPs each.

    Args:
        m: Rows of the left matrix.
        n: Columns of the right matrix.
        k: The shared (contracted) dimension.
        iterations: Number of products timed.
        seconds: Their total wall time.

    Returns:
        TFLOP/s (1e12 FLOP per second).

    Raises:
        ValueError: If a size or the iteration count is not a positive
            integer, or `seconds` is not a positive number.
    """
    for name, value in (("m", m), ("n", n), ("k", k), ("iterations", iterations)):
        _validate.integer(name, value, minimum=1)
    _validate.number("seconds", seconds, positive=True)
    return 2.0 * m * n * k * iterations / seconds / 1e12


# ----------------------------------------------------------------------------
# Arguments of `DeviceReport.check`.


def _normalise_device(name):
    name = name.strip().lower().lstrip("/").replace("device:", "")
    return "cpu" if name in ("cpu", "cpu:0") else name


def _expand_device(name, report, devices):
    """``[name]``, or every GPU for ``"gpu"``; raises for a device not in the report."""
    available = report.devices
    if name == "gpu":
        gpus = [d for d in available if d.startswith("gpu:")]
        if not gpus:
            raise ValueError(
                f"`devices` must be names from {available}; there is no GPU: "
                f"{report.gpu_unavailable_reason} Received: devices={devices!r}")
        return gpus
    if name not in available:
        why = f" ({report.gpu_unavailable_reason})" if name.startswith("gpu") and \
            report.gpu_unavailable_reason else ""
        raise ValueError(
            f"`devices` must be names from {available}{why}. Received: devices={devices!r}")
    return [name]


def device_names(devices, report):
    """The devices `check` runs on: names from ``report.devices``, in order, once each.

    Args:
        devices: None (every device), a name or a list of names; names are
            normalised (``"/GPU:0"`` -> ``"gpu:0"``) and ``"gpu"`` means
            every GPU.
        report: The `DeviceReport`.

    Raises:
        ValueError: If `devices` is malformed or names a missing device.
    """
    available = report.devices
    if devices is None:
        return list(available)
    items = [devices] if isinstance(devices, str) else devices
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            "`devices` must be None, a device name or a non-empty list of device names "
            f"from {available}. Received: devices={devices!r}")
    names = []
    for item in items:
        _validate.text("devices", item)
        names += [n for n in _expand_device(_normalise_device(item), report, devices)
                  if n not in names]
    return names


def precision_names(precisions):
    """The precisions `check` tests: None means all of `PRECISIONS`.

    Raises:
        ValueError: If `precisions` is not a name or a non-empty list of
            names from `PRECISIONS`.
    """
    if precisions is None:
        return list(PRECISIONS)
    items = [precisions] if isinstance(precisions, str) else precisions
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            f"`precisions` must be None, a precision name or a non-empty list of names from "
            f"{list(PRECISIONS)}. Received: precisions={precisions!r}")
    return list(dict.fromkeys(_validate.choice("precisions", p, PRECISIONS) for p in items))


# ----------------------------------------------------------------------------
# (a) Correctness.


def fp32_tolerance_key(device, tf32, environ=os.environ):
    """The `TOLERANCES` key for fp32 on `device`: TF32 on GPUs, oneDNN fpmath on CPUs."""
    if device != "cpu":
        return "fp32 (TF32)" if tf32 else "fp32"
    mode = (environ.get("TF_SET_ONEDNN_FPMATH_MODE")
            or environ.get("ONEDNN_DEFAULT_FPMATH_MODE") or "")
    relaxed = mode.strip().upper() in ("BF16", "TF32", "F16", "ANY")
    return "fp32 (oneDNN fpmath)" if relaxed else "fp32"


def _rel_error(result, reference):
    import numpy as np

    result = np.asarray(result, dtype=np.float64)
    if not np.all(np.isfinite(result)):
        return math.inf
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(result - reference))) / scale


def _conv_reference(x, w):
    import numpy as np

    kh, kw = w.shape[:2]
    xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    return np.einsum("nhwcij,ijco->nhwo", windows, w)


def _check_case(ops, op, inputs, res):
    """Runs one op on the adapter's device and compares it with float64 NumPy; fills `res`."""
    a_h, b_h = (ops.host(x, res.precision) for x in inputs)
    a64, b64 = ops.to_numpy(a_h), ops.to_numpy(b_h)  # the rounded inputs
    a_d, b_d = ops.to_device(a_h), ops.to_device(b_h)
    out = ops.matmul(a_d, b_d) if op == "matmul" else ops.conv2d(a_d, b_d)
    res.ran_on = ops.ran_on(out)
    reference = a64 @ b64 if op == "matmul" else _conv_reference(a64, b64)
    res.max_rel_error = _rel_error(ops.to_numpy(out), reference)
    res.passed = res.max_rel_error <= res.tolerance
    if math.isinf(res.max_rel_error):
        res.max_rel_error = None
        res.error = "result holds NaN or Inf"


def check_correctness(ops, precision, tf32_ops, rng, environ=os.environ):
    """A matmul and a convolution at `precision` on the adapter's device, against NumPy.

    Args:
        ops: The backend's adapter (``ops.Ops``) for the device.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.
        tf32_ops: The ops that may run in TF32 there (their fp32 tolerance
            is TF32's).
        rng: A NumPy random generator for the inputs.
        environ: Environment variables (oneDNN's fpmath mode).

    Returns:
        A `CorrectnessResult` per op.
    """
    results = []
    for op, shape, input_shapes in _CASES:
        key = precision if precision != "fp32" else \
            fp32_tolerance_key(ops.device, op in tf32_ops, environ)
        res = CorrectnessResult(op=op, precision=precision, shape=shape, tolerance=TOLERANCES[key])
        try:
            inputs = [rng.standard_normal(s) for s in input_shapes]
            _check_case(ops, op, inputs, res)
        except Exception as e:
            res.passed = False
            res.error = describe_error(e)
        results.append(res)
    return results


# ----------------------------------------------------------------------------
# (b) Throughput.


def _block(ops, a, b, iterations, clock):
    """Times `iterations` products ended by one device sync: ``(seconds, result)``."""
    t0 = clock()
    for _ in range(iterations):
        c = ops.matmul(a, b)
    ops.sync(c)
    return clock() - t0, c


def _pick_size(ops, precision, sizes, slot_s, elapsed, clock, max_bytes, res):
    """Grows N while one product is too quick to time: ``(a, b, n, seconds of one)``."""
    import numpy as np

    n, max_n, min_call_s = sizes
    while max_bytes is not None and n > 256 and 3 * n * n * ITEMSIZE[precision] > max_bytes:
        n //= 2  # three matrices must fit, even at the start
    rng = np.random.default_rng(0)
    while True:
        a, b = (ops.to_device(ops.host(rng.standard_normal((n, n), dtype=np.float32), precision))
                for _ in range(2))
        ops.sync(ops.matmul(a, b))  # warm-up: kernels, handles, autotuning
        call_s, c = _block(ops, a, b, 1, clock)
        res.ran_on = ops.ran_on(c)
        bigger = 3 * (2 * n) ** 2 * ITEMSIZE[precision]
        if not (call_s < min_call_s and n * 2 <= max_n and elapsed() < slot_s / 4
                and (max_bytes is None or bigger <= max_bytes)):
            return a, b, n, call_s
        n *= 2


def _best_block(ops, a, b, call_s, slot_s, repeats, elapsed, clock):
    """timeit-style autorange, then the best of `repeats` blocks filling the slot.

    Returns:
        ``(iterations, seconds)`` of the block reported.
    """
    iterations, seconds = 1, call_s
    while (seconds < slot_s / 10 and iterations < 2**14
           and elapsed() + 2 * seconds < slot_s / 2):
        iterations *= 2
        seconds, _ = _block(ops, a, b, iterations, clock)
    per_call = seconds / iterations
    count = min(int((slot_s - elapsed()) / repeats / per_call), 100_000)
    if count >= 1:
        seconds = min(_block(ops, a, b, count, clock)[0] for _ in range(repeats))
        iterations = count
    return iterations, seconds


def _set_peak(res, peak):
    if not peak:
        return
    res.peak_tflops = peak.get(res.precision)
    res.peak_is_estimate = bool(peak.get("estimate"))
    if res.tflops is not None and res.peak_tflops:
        res.fraction_of_peak = res.tflops / res.peak_tflops


def time_matmul(ops, precision, slot_s, peak, clock=time.perf_counter,
                sizes=None, repeats=3, max_bytes=None):
    """Times ``n x n`` matmuls at one precision on the adapter's device: best of `repeats` blocks.

    The size starts at ``sizes[0]`` and doubles (up to ``sizes[1]``) while
    one product takes less than ``sizes[2]`` seconds. The block length is
    then found like `timeit`'s autorange (1, 2, 4, ... products, each block
    ended by a device sync) and sized so that all blocks fill `slot_s`.
    The three matrices stay within `max_bytes`: the start size is halved
    until they fit, and growing stops before they would not.

    Returns:
        A `MatmulResult` (with ``error`` set if anything raised).
    """
    sizes = sizes or (GPU_SIZES if ops.device != "cpu" else CPU_SIZES)
    res = MatmulResult(precision=precision)
    t_begin = clock()

    def elapsed():
        return clock() - t_begin

    try:
        a, b, n, call_s = _pick_size(ops, precision, sizes, slot_s, elapsed, clock, max_bytes, res)
        iterations, seconds = _best_block(ops, a, b, call_s, slot_s, repeats, elapsed, clock)
        res.n, res.iterations, res.seconds = n, iterations, seconds
        res.tflops = tflops(n, n, n, iterations, seconds)
    except Exception as e:
        res.error = describe_error(e)
    _set_peak(res, peak)
    return res


# ----------------------------------------------------------------------------
# (c) Copy bandwidth.


def _copy_round(ops, host, clock):
    """One host->device and one device->host copy: their seconds."""
    t0 = clock()
    on_device = ops.to_device(host)
    ops.sync(on_device)
    to_device_s = clock() - t0
    t0 = clock()
    back = ops.to_host(on_device)
    ops.sync(back)
    return to_device_s, clock() - t0


def copy_bandwidth(ops, budget_s, nbytes, clock=time.perf_counter):
    """Times host->device and device->host copies of `nbytes`; best of several.

    Each round copies anew (the TensorFlow adapter makes a fresh handle for
    each, so that no cached device copy is reused).
    """
    import numpy as np

    res = CopyBandwidth(bytes=nbytes)
    try:
        host = ops.host(np.ones(nbytes // 4, np.float32), "fp32")
        t_begin = clock()
        rounds = []
        while len(rounds) < 2 or (clock() - t_begin < budget_s and len(rounds) < 10):
            rounds.append(_copy_round(ops, host, clock))
        # The first copy of each direction is a warm-up.
        res.host_to_device_gbps = nbytes / min(r[0] for r in rounds[1:]) / 1e9
        res.device_to_host_gbps = nbytes / min(r[1] for r in rounds[1:]) / 1e9
    except Exception as e:
        res.error = describe_error(e)
    return res


# ----------------------------------------------------------------------------
# One device; the whole check.


def _device_model(report, device):
    gpu = next((g for g in report.accelerators if g.name == device), None)
    return gpu.model if gpu else report.host.cpu_model


def _device_peak(report, gpu, tf32, health):
    """The peaks to compare with; fp32 on a TF32 GPU is compared with tf32."""
    if gpu is None:
        return report.host.peak
    peak = dict(gpu.peak) if gpu.peak else None
    if tf32 and peak and peak.get("tf32"):
        peak["fp32"] = peak["tf32"]
        health.notes.append("fp32 matmuls run in TF32 on tensor cores; peak is the TF32 figure.")
    return peak


def _precisions_to_run(gpu, precisions, health):
    run = list(precisions)
    cc = cc_tuple(gpu.compute_capability) if gpu is not None else (0, 0)
    if "bf16" in run and (0, 0) < cc < (8, 0):
        run.remove("bf16")
        health.notes.append(
            f"bf16 skipped: compute capability {gpu.compute_capability} has no bf16 tensor cores.")
    return run


def _gpu_memory_limits(gpu):
    """``(max bytes of the matmul matrices, bytes per copy)`` for a GPU's memory."""
    memory = gpu.memory_free_bytes or gpu.memory_total_bytes
    max_bytes = memory // 4 if memory else 3 * 8192**2 * 4
    nbytes = COPY_BYTES
    if gpu.memory_free_bytes and gpu.memory_free_bytes < 8 * nbytes:
        nbytes = max(gpu.memory_free_bytes // 16, 2**20)
    return max_bytes, nbytes


def _tf32_ops(ops, report, gpu):
    """The ops that run in TF32 on this device: none on a CPU or a GPU older than 8.0."""
    if gpu is None or cc_tuple(gpu.compute_capability) < (8, 0):
        return frozenset()
    return ops.tf32_ops(report.software)


def check_device(ops, report, budget_s, precisions):
    """Correctness, throughput and (on GPUs) copies of the adapter's device, judged.

    Args:
        ops: The backend's adapter (``ops.Ops``) for the device.
        report: The `DeviceReport`.
        budget_s: Seconds the timed loops of this device are sized to.
        precisions: The precisions to test.

    Returns:
        A `DeviceHealth`.
    """
    import numpy as np

    device, gpu = ops.device, ops.gpu
    health = DeviceHealth(device=device, model=_device_model(report, device))
    tf32 = _tf32_ops(ops, report, gpu)
    peak = _device_peak(report, gpu, "matmul" in tf32, health)
    run = _precisions_to_run(gpu, precisions, health)
    rng = np.random.default_rng(12345)
    for precision in run:
        health.correctness += check_correctness(ops, precision, tf32, rng)
    unsupported = unsupported_precisions(health.correctness, device)
    health.notes += [f"{p} is not supported on {device} (the op raised or ran on another "
                     "device)." for p in sorted(unsupported)]
    timed = [p for p in run if p not in unsupported]
    is_gpu = gpu is not None
    slot = budget_s * (0.6 if is_gpu else 0.75) / max(len(timed), 1)
    max_bytes, nbytes = _gpu_memory_limits(gpu) if is_gpu else (None, None)
    health.throughput = [time_matmul(ops, p, slot, peak, max_bytes=max_bytes) for p in timed]
    if is_gpu:
        health.bandwidth = copy_bandwidth(ops, budget_s * 0.15, nbytes)
    judge(health, device, is_gpu, unsupported)
    return health


def _failed(report, device, problem):
    return DeviceHealth(device=device, model=_device_model(report, device), status="FAIL",
                        problems=[problem])


def _framework(backend, sources):
    """``(the adapter class, the framework module, None)``, or ``(None, None, why not)``."""
    if backend not in OPS:
        return None, None, (f"kerasbench has no health check for the {backend!r} Keras backend "
                            f"(it has one for {', '.join(OPS)}).")
    try:
        return OPS[backend], sources.import_framework(backend), None
    except Exception as e:
        return None, None, f"{FRAMEWORKS[backend]} cannot be imported: {describe_error(e)}"


def _check_each(report, devices, time_budget_s, precisions, sources):
    adapter, module, why_not = _framework(report.backend or "tensorflow", sources)
    if why_not:
        return [_failed(report, d, f"{d}: {why_not}") for d in devices]
    results = []
    for device in devices:
        gpu = next((g for g in report.accelerators if g.name == device), None)
        try:
            results.append(check_device(adapter(module, device, gpu), report,
                                        time_budget_s / len(devices), precisions))
        except Exception as e:  # never crash the caller
            results.append(_failed(report, device,
                                   f"{device}: the check crashed: {describe_error(e, 400)}"[:400]))
    return results


def run_health_check(report, devices, time_budget_s, precisions, sources):
    """Runs the health check; see `DeviceReport.check` (which validates).

    Args:
        report: The `DeviceReport`; its ``backend`` (TensorFlow for reports
            that do not name one) picks the framework.
        devices: Device names from ``report.devices``.
        time_budget_s: Seconds the timed loops are sized to, shared.
        precisions: The precisions to test.
        sources: The `Sources` whose import gives the framework module.

    Returns:
        A `HealthCheck`.
    """
    start = time.perf_counter()
    result = HealthCheck(backend=report.backend or "tensorflow", time_budget_s=time_budget_s)
    result.devices = _check_each(report, devices, time_budget_s, precisions, sources)
    for d in result.devices:
        result.problems.extend(d.problems)
    statuses = {d.status for d in result.devices}
    result.status = "FAIL" if "FAIL" in statuses else ("WARNING" if "WARNING" in statuses else "OK")
    result.ok = result.status != "FAIL"
    result.elapsed_s = round(time.perf_counter() - start, 3)
    return result
