"""The health check's verdict: failures and warnings from its measurements.

`judge` turns one device's measurements into a status (``"OK"``,
``"WARNING"``, ``"FAIL"``) and one sentence per problem. It reads only the
records, whichever backend measured them.
"""

from __future__ import annotations

# Warning thresholds (fraction of the peak, GB/s).
GPU_LOW_FRACTION = 0.2
CPU_LOW_FRACTION = 0.05
GPU_HIGH_FRACTION = 1.1  # above a datasheet peak: the timing or the table is wrong
LOW_COPY_GBPS = 1.0


def unsupported_precisions(correctness, device):
    """Precisions other than fp32 whose ops errored or ran on another device."""
    out = set()
    for c in correctness:
        if c.precision == "fp32":
            continue
        elsewhere = c.ran_on is not None and c.ran_on != device
        raised = c.error is not None and c.max_rel_error is None and "NaN" not in c.error
        if elsewhere or raised:
            out.add(c.precision)
    return out


def _correctness_failures(correctness, device, unsupported):
    fails = []
    for c in correctness:
        if c.precision in unsupported:
            continue
        if c.ran_on is not None and c.ran_on != device:
            fails.append(f"{device}: {c.op} {c.precision} ran on {c.ran_on}, not on {device}.")
        elif c.error and c.max_rel_error is None:
            fails.append(f"{device}: {c.op} {c.precision} failed: {c.error}")
        elif not c.passed:
            fails.append(
                f"{device}: {c.op} {c.precision} is wrong: max relative error "
                f"{c.max_rel_error:.2e} exceeds the tolerance {c.tolerance:.0e}.")
    return fails


def _throughput_problems(throughput, device, is_gpu, unsupported):
    """``(failures, warnings)`` of the matmul timings."""
    fails, warns = [], []
    low = GPU_LOW_FRACTION if is_gpu else CPU_LOW_FRACTION
    for t in throughput:
        if t.precision in unsupported:
            continue
        fraction = t.fraction_of_peak
        if t.error:
            fails.append(f"{device}: {t.precision} matmul timing failed: {t.error}")
        elif t.ran_on is not None and t.ran_on != device:
            fails.append(f"{device}: {t.precision} matmul ran on {t.ran_on}, not on {device}.")
        elif is_gpu and fraction is not None and fraction > GPU_HIGH_FRACTION:
            warns.append(
                f"{device}: {t.precision} matmul measured {t.tflops:.4g} TFLOP/s, "
                f"{fraction:.0%} of the datasheet peak {t.peak_tflops:.4g}: the "
                "timing is suspect, or the peak table does not fit this GPU.")
        elif fraction is not None and fraction < low:
            warns.append(
                f"{device}: {t.precision} matmul reached {t.tflops:.3g} TFLOP/s, only "
                f"{fraction:.0%} of the {'estimated ' if t.peak_is_estimate else ''}"
                f"peak {t.peak_tflops:g} (clocks held down, another process on the "
                "device, or thermal/power limits?).")
    return fails, warns


def _bandwidth_problems(b, device):
    """``(failures, warnings)`` of the copy test."""
    if b is None:
        return [], []
    if b.error:
        return [f"{device}: copy bandwidth test failed: {b.error}"], []
    directions = (("host-to-device", b.host_to_device_gbps),
                  ("device-to-host", b.device_to_host_gbps))
    return [], [f"{device}: {label} copies run at {v:.2f} GB/s (PCIe link narrow or slow?)."
                for label, v in directions if v is not None and v < LOW_COPY_GBPS]


def judge(health, device, is_gpu, unsupported=()):
    """Sets `health.status` and `health.problems` from its measurements.

    Failures (wrong results, errors, work run on another device) make it
    ``"FAIL"``; warnings alone (low throughput, slow copies) ``"WARNING"``.
    """
    fails = _correctness_failures(health.correctness, device, unsupported)
    timing_fails, timing_warns = _throughput_problems(health.throughput, device, is_gpu,
                                                      unsupported)
    copy_fails, copy_warns = _bandwidth_problems(health.bandwidth, device)
    fails += timing_fails + copy_fails
    warns = timing_warns + copy_warns
    health.problems = fails + warns
    health.status = "FAIL" if fails else ("WARNING" if warns else "OK")
