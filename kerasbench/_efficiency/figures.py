"""Achieved TFLOP/s and MFU: the formulas, pure Python (docs/metrics.md).

* achieved TFLOP/s = FLOPs per sample x images/sec / 1e12
* MFU (model FLOPs utilisation) = achieved TFLOP/s / peak TFLOP/s of the
  device for the precision in use (PaLM, Chowdhery et al. 2022, appendix B:
  the model's FLOPs, not the hardware's, over the peak)
* joules per image = joules / samples
* images/sec per watt = (samples / seconds) / (joules / seconds)
  = samples / joules, the reciprocal of joules per image
"""

from __future__ import annotations

from kerasbench import _validate


def achieved_tflops(flops_per_sample, images_per_sec):
    """TFLOP/s the model achieved: ``flops_per_sample * images_per_sec / 1e12``."""
    flops = _validate.number("flops_per_sample", flops_per_sample, minimum=0)
    rate = _validate.number("images_per_sec", images_per_sec, minimum=0)
    return flops * rate / 1e12


def mfu(achieved, peak):
    """Model FLOPs utilisation: ``achieved / peak`` (both TFLOP/s); ``None``
    when the peak is unknown."""
    achieved = _validate.number("achieved", achieved, minimum=0)
    peak = _validate.number("peak", peak, positive=True, allow_none=True)
    return None if peak is None else achieved / peak


def device_peak(device_report, device, precision):
    """The peak TFLOP/s of ``device`` at ``precision`` from a device report.

    Args:
        device_report: `DeviceReport.to_dict()` (or ``None``).
        device: ``"cpu"`` or ``"gpu:N"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``.

    Returns:
        ``(tflops, is_estimate)``, or ``(None, None)`` when the report has no
        peak for that device and precision (the CPU's is an estimate from
        cores, clock and vector width; a GPU's comes from its datasheet).
    """
    report = device_report or {}
    if device == "cpu":
        peak = (report.get("host") or {}).get("peak")
    else:
        index = int(str(device).partition(":")[2] or 0)
        gpus = [a for a in report.get("accelerators") or [] if a.get("name") == f"gpu:{index}"]
        peak = gpus[0].get("peak") if gpus else None
    value = (peak or {}).get(precision)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None, None
    return float(value), bool(peak.get("estimate"))


def scaling(images_per_sec, replicas, single_replica_images_per_sec):
    """``(speedup, efficiency)`` of a run on ``replicas`` devices.

    speedup = images/sec on N replicas / images/sec on 1;
    efficiency = speedup / N (1.0 is perfect linear scaling).
    """
    rate = _validate.number("images_per_sec", images_per_sec, minimum=0)
    n = _validate.integer("replicas", replicas, minimum=1)
    single = _validate.number("single_replica_images_per_sec", single_replica_images_per_sec,
                              positive=True)
    speedup = rate / single
    return speedup, speedup / n


def joules_per_image(joules, samples):
    """Energy per image: ``joules / samples``.

    Args:
        joules: Energy over the measured steps, or ``None`` when unknown.
        samples: Images those steps processed, or ``None``.

    Returns:
        The figure, or ``None`` when either input is unknown or zero (a
        counter that did not move measured nothing).
    """
    joules = _validate.number("joules", joules, minimum=0, allow_none=True)
    samples = _validate.number("samples", samples, minimum=0, allow_none=True)
    if not joules or not samples:
        return None
    return joules / samples


def images_per_sec_per_watt(samples, joules):
    """Images/sec per watt: images/sec divided by the mean power in watts.

    Over the same measured time ``t``: ``(samples / t) / (joules / t) =
    samples / joules``, the reciprocal of `joules_per_image`; the time
    cancels, so no clock is needed.

    Returns:
        The figure, or ``None`` when either input is unknown or zero.
    """
    samples = _validate.number("samples", samples, minimum=0, allow_none=True)
    joules = _validate.number("joules", joules, minimum=0, allow_none=True)
    if not joules or not samples:
        return None
    return samples / joules
