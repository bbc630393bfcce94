"""The health check: TFLOP/s arithmetic, timing with a fake clock, the real
check on the CPU (TensorFlow; JAX and PyTorch in test_device_backends.py),
wrong results, tolerances, the verdict, argument errors.
"""

import dataclasses
import json
import time

import pytest

from kerasbench._device import DeviceReport, Sources
from kerasbench._device import health as device_health
from kerasbench._device import ops as device_ops
from kerasbench._device import verdict
from kerasbench._device.records import TOLERANCES, CopyBandwidth, DeviceHealth, MatmulResult


@pytest.fixture(scope="module")
def report():
    return DeviceReport.collect()


def test_tflops_formula_by_hand():
    # 2 * 1024^3 * 10 FLOP in 0.5 s = 42.94967296 GFLOP/s.
    assert device_health.tflops(1024, 1024, 1024, 10, 0.5) == pytest.approx(
        0.04294967296, rel=1e-12)
    assert device_health.tflops(4096, 2048, 1024, 3, 2.0) == pytest.approx(
        2 * 4096 * 2048 * 1024 * 3 / 2.0 / 1e12, rel=1e-12)
    with pytest.raises(ValueError,
                       match=r"`seconds` must be a positive number\. Received: seconds=0"):
        device_health.tflops(1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match=r"`iterations` must be a positive integer"):
        device_health.tflops(1, 1, 1, 0, 1.0)


def test_matmul_timing_with_a_fake_clock():
    """Each timed block spans exactly one tick of the fake clock (0.1 s)."""
    import tensorflow as tf

    ticks = iter(range(10_000))

    def clock():
        return next(ticks) * 0.1

    ops = device_ops.TensorFlowOps(tf, "cpu")
    res = device_health.time_matmul(ops, "fp32", slot_s=3.0, peak={"fp32": 1.0},
                                    clock=clock, sizes=(64, 64, 0.0))
    assert res.error is None and res.n == 64 and res.ran_on == "cpu"
    assert res.seconds == pytest.approx(0.1) and 1 < res.iterations < 10_000
    # 2 * 64^3 FLOP per product, `iterations` products in 0.1 s.
    assert res.tflops == pytest.approx(2 * 64**3 * res.iterations / 0.1 / 1e12, rel=1e-9)
    assert res.fraction_of_peak == pytest.approx(res.tflops / 1.0)


def test_check_on_cpu(report):
    result = report.check(devices="cpu", time_budget_s=1.0)
    assert report.health is result
    assert result.ok and result.status == "OK" and result.problems == []
    assert str(result).startswith("Health check: OK")
    assert result.backend == "tensorflow" and "  Backend: tensorflow (TensorFlow)" in str(result)
    (cpu,) = result.devices
    assert cpu.device == "cpu" and cpu.bandwidth is None
    seen = {(c.op, c.precision) for c in cpu.correctness}
    assert seen == {(op, p) for op in ("matmul", "conv2d") for p in ("fp32", "fp16", "bf16")}
    for c in cpu.correctness:
        assert c.passed and c.ran_on == "cpu"
        assert c.max_rel_error <= c.tolerance == TOLERANCES[c.precision]
        assert c.max_rel_error > 0  # rounding happens; zero would mean no comparison
    fp32 = next(c for c in cpu.correctness if c.precision == "fp32" and c.op == "matmul")
    assert fp32.max_rel_error < 1e-5
    assert [t.precision for t in cpu.throughput] == ["fp32", "fp16", "bf16"]
    for t in cpu.throughput:
        assert t.tflops == pytest.approx(device_health.tflops(t.n, t.n, t.n, t.iterations,
                                                              t.seconds))
        assert 0 < t.tflops < 100
    assert cpu.throughput[0].peak_is_estimate is True and cpu.throughput[0].fraction_of_peak > 0
    assert result.elapsed_s < 10
    # The check result travels with the report.
    again = DeviceReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.health == result and again == report
    # The printed report carries a one-line status; the details print apart.
    assert str(report).splitlines()[-1] == "Health check: OK on cpu"
    assert "matmul fp32" not in str(report)


class WrongMatmulTensorFlow:
    """TensorFlow whose matmul is 5% off: everything else is the real module."""

    def __init__(self):
        import tensorflow

        self._tf = tensorflow

    def __getattr__(self, name):
        return getattr(self._tf, name)

    def matmul(self, a, b):
        return self._tf.matmul(a, b) * self._tf.cast(1.05, a.dtype)


def test_check_detects_wrong_results():
    wrong = WrongMatmulTensorFlow()
    r = DeviceReport.collect(probe_gpus=False, sources=Sources(import_tensorflow=lambda: wrong))
    result = r.check(devices=["cpu"], precisions=["fp32", "bf16"], time_budget_s=0.2)
    assert not result.ok and result.status == "FAIL"
    assert any("matmul fp32 is wrong" in p and "exceeds the tolerance 1e-04" in p
               for p in result.problems)
    assert any("matmul bf16 is wrong" in p for p in result.problems)
    assert not any("conv2d" in p for p in result.problems)
    assert "WRONG" in str(result)


def test_fp32_tolerance_follows_tf32_and_onednn_fpmath():
    key = device_health.fp32_tolerance_key
    assert key("cpu", False, {}) == "fp32"
    assert key("gpu:0", True, {}) == "fp32 (TF32)"
    assert key("gpu:0", False, {"ONEDNN_DEFAULT_FPMATH_MODE": "bf16"}) == "fp32"
    assert key("cpu", False, {"ONEDNN_DEFAULT_FPMATH_MODE": "bf16"}) == "fp32 (oneDNN fpmath)"
    assert key("cpu", False, {"TF_SET_ONEDNN_FPMATH_MODE": " any "}) == "fp32 (oneDNN fpmath)"
    assert TOLERANCES["fp32"] < TOLERANCES["fp32 (TF32)"] < TOLERANCES["fp32 (oneDNN fpmath)"]


def test_tf32_follows_each_backends_settings():
    from kerasbench._device.records import SoftwareInfo

    tf = device_ops.TensorFlowOps.tf32_ops
    assert tf(SoftwareInfo(tensor_float_32=True)) == {"matmul", "conv2d"}
    assert tf(SoftwareInfo(tensor_float_32=False)) == set()
    jax = device_ops.JaxOps.tf32_ops  # JAX's default precision is TF32 on such GPUs
    assert jax(SoftwareInfo(framework_settings={"default_matmul_precision": None})) == \
        {"matmul", "conv2d"}
    assert jax(SoftwareInfo(framework_settings={"default_matmul_precision": "highest"})) == set()
    torch = device_ops.TorchOps.tf32_ops  # PyTorch: cuDNN convolutions only, by default
    defaults = {"tf32_matmul": False, "tf32_cudnn": True, "float32_matmul_precision": "highest"}
    assert torch(SoftwareInfo(framework_settings=defaults)) == {"conv2d"}
    assert torch(SoftwareInfo(framework_settings=dict(
        defaults, float32_matmul_precision="high", tf32_cudnn=False))) == {"matmul"}


def test_low_throughput_is_a_warning_not_a_failure():
    health = DeviceHealth(device="gpu:0", throughput=[MatmulResult(
        precision="fp16", n=8192, iterations=1, seconds=1.0, tflops=10.0,
        peak_tflops=989.5, fraction_of_peak=10.0 / 989.5, ran_on="gpu:0")],
        bandwidth=CopyBandwidth(bytes=2**28, host_to_device_gbps=0.5, device_to_host_gbps=20.0))
    verdict.judge(health, "gpu:0", is_gpu=True)
    assert health.status == "WARNING" and len(health.problems) == 2
    assert "only 1% of the peak 989.5" in health.problems[0]
    assert "host-to-device copies run at 0.50 GB/s" in health.problems[1]
    # Above a GPU's datasheet peak is suspect; above a CPU estimate is not.
    fast = MatmulResult(precision="bf16", n=8192, iterations=1, seconds=1.0, tflops=1500.0,
                        peak_tflops=989.5, fraction_of_peak=1500.0 / 989.5, ran_on="gpu:0")
    health = DeviceHealth(device="gpu:0", throughput=[fast])
    verdict.judge(health, "gpu:0", is_gpu=True)
    assert health.status == "WARNING" and "timing is suspect" in health.problems[0]
    cpu = DeviceHealth(device="cpu", throughput=[dataclasses.replace(
        fast, ran_on="cpu", peak_is_estimate=True)])
    verdict.judge(cpu, "cpu", is_gpu=False)
    assert cpu.status == "OK" and cpu.problems == []


def test_failures_come_before_warnings():
    health = DeviceHealth(device="gpu:0", throughput=[
        MatmulResult(precision="fp16", tflops=1.0, peak_tflops=100.0, fraction_of_peak=0.01,
                     ran_on="gpu:0"),
        MatmulResult(precision="fp32", error="RuntimeError: out of memory")],
        bandwidth=CopyBandwidth(error="RuntimeError: copy failed"))
    verdict.judge(health, "gpu:0", is_gpu=True)
    assert health.status == "FAIL"
    assert health.problems == [
        "gpu:0: fp32 matmul timing failed: RuntimeError: out of memory",
        "gpu:0: copy bandwidth test failed: RuntimeError: copy failed",
        "gpu:0: fp16 matmul reached 1 TFLOP/s, only 1% of the peak 100 (clocks held down, "
        "another process on the device, or thermal/power limits?).",
    ]


@pytest.mark.slow
def test_default_check_finishes_in_under_10_seconds(report):
    start = time.perf_counter()
    result = report.check()
    elapsed = time.perf_counter() - start
    assert result.ok, str(result)
    assert elapsed < 10.0, elapsed


def test_check_argument_errors(report):
    with pytest.raises(ValueError,
                       match=r"`devices` must be None, a device name .* Received: devices=5"):
        report.check(devices=5)
    with pytest.raises(ValueError, match=r"`devices` must be a non-empty string\. "
                                         r"Received: devices=7"):
        report.check(devices=["cpu", 7])
    with pytest.raises(ValueError, match=r"non-empty list .* Received: devices=\[\]"):
        report.check(devices=[])
    with pytest.raises(ValueError,
                       match=r"`devices` must be names from \['cpu'\].* Received: devices='gpu:3'"):
        report.check(devices="gpu:3")
    with pytest.raises(ValueError, match=r"there is no GPU"):
        report.check(devices="gpu")
    with pytest.raises(ValueError, match=r"`time_budget_s` must be a positive number\. "
                                         r"Received: time_budget_s=0"):
        report.check(time_budget_s=0)
    with pytest.raises(ValueError, match=r"Received: time_budget_s=-1"):
        report.check(time_budget_s=-1)
    with pytest.raises(ValueError, match=r"`time_budget_s` must be a positive number"):
        report.check(time_budget_s="fast")
    with pytest.raises(ValueError, match=r"`precisions` must be one of 'fp32', 'fp16', 'bf16'\."
                                         r" Received: precisions='fp8'"):
        report.check(precisions=["fp8"])
    with pytest.raises(ValueError, match=r"Did you mean 'bf16'\?"):
        report.check(precisions="bf61")
    with pytest.raises(ValueError, match=r"`precisions` must be None, a precision name"):
        report.check(precisions=[])


def test_precision_names_keep_order_once_each():
    assert device_health.precision_names(None) == ["fp32", "fp16", "bf16"]
    assert device_health.precision_names(("bf16", "fp32", "bf16")) == ["bf16", "fp32"]
    assert device_health.precision_names("fp16") == ["fp16"]
