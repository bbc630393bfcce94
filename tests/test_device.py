"""Tests of DeviceReport: facts against independent sources, the no-GPU
explanation, simulated GPU machines and failing probes, the health check
(correctness, TFLOP/s arithmetic, CPU-fallback detection), JSON and
TensorBoard output.

This machine has no GPU: GPU machines are simulated by replacing the three
GPU probes (TensorFlow's device list, the CUDA driver, NVML) with fakes.
"""

import ctypes
import glob
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from kerasbench._device import peaks as _device_peaks
from kerasbench._device import report as _device
from kerasbench._device.report import DeviceReport, HealthCheck


_real_probe_nvml = _device._probe_nvml


@pytest.fixture(scope="module")
def report():
    return DeviceReport.collect()


def _meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{key} not in /proc/meminfo")


def _cpuinfo_field(name):
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


# ---------------------------------------------------------------------------
# Import cost and collection.


@pytest.mark.slow
def test_import_is_light_and_collect_leaves_gpu_runtime_uninitialised():
    code = textwrap.dedent("""
        import sys
        import kerasbench._device.report as d
        print("tf-at-import", "tensorflow" in sys.modules, "keras" in sys.modules)
        r = d.DeviceReport.collect()
        from tensorflow.python.eager import context
        print("context-initialised", context.context()._context_handle is not None)
        print("devices", r.devices)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tf-at-import False False" in out.stdout
    # Listing devices must not create TensorFlow's runtime: users can still
    # set memory growth or visible devices after collect().
    assert "context-initialised False" in out.stdout


def test_collect_is_cheap_once_tensorflow_is_loaded(report):
    start = time.perf_counter()
    DeviceReport.collect()
    assert time.perf_counter() - start < 2.0
    assert report.collect_seconds is not None and report.collect_seconds > 0


def test_collect_rejects_non_bool_probe_gpus():
    match = r"`probe_gpus` must be a bool\. Received: probe_gpus='yes'"
    with pytest.raises(TypeError, match=match):
        DeviceReport.collect(probe_gpus="yes")


def test_collect_without_gpu_probing():
    r = DeviceReport.collect(probe_gpus=False)
    assert r.accelerators == [] and r.gpu_driver is None
    assert r.devices == ["cpu"]
    assert "not probed" in r.gpu_unavailable_reason


# ---------------------------------------------------------------------------
# Host facts against independent sources.


def test_host_counts_and_memory_match_the_os(report):
    h = report.host
    assert h.logical_cores == os.cpu_count()
    assert h.usable_cpus == len(os.sched_getaffinity(0))
    assert h.memory_total_bytes == _meminfo_kib("MemTotal") * 1024
    # Available memory moves; a second reading brackets it loosely.
    assert abs(h.memory_available_bytes - _meminfo_kib("MemAvailable") * 1024) < 2 * 2**30
    assert h.kernel == os.uname().release
    assert h.os == "Linux" and h.architecture == os.uname().machine
    assert h.python_version == ".".join(map(str, sys.version_info[:3]))


def test_physical_cores_match_lscpu_or_sysfs(report):
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu", "-p=CORE,SOCKET"], capture_output=True, text=True)
        pairs = {line for line in out.stdout.splitlines() if not line.startswith("#")}
        expected = len(pairs)
    else:  # the test's own reading of the topology files
        pairs = set()
        for cpu in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology"):
            with open(f"{cpu}/core_id") as a, open(f"{cpu}/physical_package_id") as b:
                pairs.add((a.read(), b.read()))
        expected = len(pairs)
    assert report.host.physical_cores == expected


def test_cpu_model_isa_and_caches(report):
    h = report.host
    assert h.cpu_model == (_cpuinfo_field("model name") or platform.processor())
    flags = set((_cpuinfo_field("flags") or "").split())
    for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512F"),
                       ("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX-BF16"),
                       ("avx512_fp16", "AVX-512 FP16")):
        assert (name in h.isa) == (flag in flags), name
    # glibc's getconf reads the caches from CPUID, not from sysfs.
    for key, name in (("LEVEL1_DCACHE_SIZE", "L1d"), ("LEVEL2_CACHE_SIZE", "L2")):
        out = subprocess.run(["getconf", key], capture_output=True, text=True)
        if out.stdout.strip().isdigit() and int(out.stdout) > 0:
            assert h.caches[name] == int(out.stdout), name
    assert h.container == ("docker" if os.path.exists("/.dockerenv") else h.container)
    assert h.virtual_machine == ("hypervisor" in flags or h.hypervisor is not None)


def test_cpu_peak_is_a_labelled_estimate_from_cores_clock_and_width(report):
    h = report.host
    peak = h.peak
    assert peak["estimate"] is True and peak["source"].startswith("estimate:")
    per_cycle, _ = _device_peaks.cpu_fp32_flop_per_cycle(h.isa, h.cpu_vendor, h.cpu_family)
    cores = min(h.physical_cores, h.usable_cpus)
    mhz = h.cpu_max_mhz or h.cpu_mhz
    assert peak["fp32"] == pytest.approx(cores * mhz * 1e6 * per_cycle / 1e12, rel=1e-3)
    assert ("cpufreq" in peak["source"]) == (h.cpu_max_mhz is not None)


def test_cpu_peak_estimates_by_hand():
    # AMD Zen 4: AVX-512 on 256-bit pipes, 32 FP32 FLOP/cycle.
    zen4 = _device_peaks.estimate_cpu_peak(
        2, 2596.0, ["AVX2", "FMA", "AVX-512F", "AVX-512 BF16"], "AuthenticAMD", 0x19,
        clock_source="test")
    assert zen4["fp32"] == pytest.approx(2 * 2596e6 * 32 / 1e12, abs=1e-4)
    assert zen4["bf16"] == pytest.approx(2 * zen4["fp32"], abs=1e-4)
    assert zen4["fp16"] is None and zen4["estimate"] is True
    # Intel Sapphire Rapids: AVX-512 with two FMA units (64) and AMX (1024).
    spr = _device_peaks.estimate_cpu_peak(
        56, 2000.0, ["AVX2", "FMA", "AVX-512F", "AMX-BF16", "AVX-512 FP16"], "GenuineIntel", 6)
    assert spr["fp32"] == pytest.approx(56 * 2e9 * 64 / 1e12, abs=1e-4)
    assert spr["bf16"] == pytest.approx(56 * 2e9 * 1024 / 1e12, abs=1e-4)
    assert spr["fp16"] == pytest.approx(2 * spr["fp32"], abs=1e-4)
    # AVX2 + FMA: 32; Arm NEON: 16; unknown clock: no estimate.
    assert _device_peaks.estimate_cpu_peak(4, 3000.0, ["AVX2", "FMA"])["fp32"] == \
        pytest.approx(4 * 3e9 * 32 / 1e12, abs=1e-4)
    assert _device_peaks.estimate_cpu_peak(8, 2500.0, ["NEON"])["fp32"] == \
        pytest.approx(8 * 2.5e9 * 16 / 1e12, abs=1e-4)
    assert _device_peaks.estimate_cpu_peak(8, None, ["NEON"]) is None


def test_parse_cpuinfo_two_socket_x86_and_arm():
    x86 = "\n\n".join(
        f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
        f"model name\t: Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz\n"
        f"physical id\t: {i // 4}\ncore id\t\t: {i % 4 // 2}\ncpu MHz\t\t: {2000 + i}.5\n"
        "flags\t\t: fpu avx2 fma avx512f amx_bf16 amx_tile\n"
        for i in range(8)
    )
    info = _device.parse_cpuinfo(x86)
    assert info["logical"] == 8 and info["physical_cores"] == 4 and info["sockets"] == 2
    assert info["mhz"] == 2007.5 and info["family"] == 6
    assert _device.isa_names(info["flags"], "x86_64") == [
        "FMA", "AVX2", "AVX-512F", "AMX-TILE", "AMX-BF16"]
    arm = ("processor\t: 0\nFeatures\t: fp asimd asimdhp bf16 sve i8mm\n"
           "CPU implementer\t: 0x41\nCPU part\t: 0xd40\n")
    info = _device.parse_cpuinfo(arm)
    assert info["model"] == "Arm Neoverse-V1" and info["physical_cores"] is None
    assert _device.isa_names(info["flags"], "aarch64") == [
        "NEON", "NEON FP16", "I8MM", "BF16", "SVE"]


def test_parse_meminfo():
    text = "MemTotal:  1000 kB\nMemFree: 5 kB\nMemAvailable: 600 kB\n"
    total, avail = _device.parse_meminfo(text)
    assert (total, avail) == (1000 * 1024, 600 * 1024)
    assert _device.parse_meminfo("") == (None, None)


# ---------------------------------------------------------------------------
# Software facts against independent sources.


def test_software_versions_match_installed_metadata(report):
    v = report.software.versions
    for name in ("tensorflow", "keras", "numpy", "tensorboard"):
        assert v[name] == importlib.metadata.version(name), name
    import keras
    import tensorflow as tf

    assert report.software.keras_backend == keras.config.backend()
    build = tf.sysconfig.get_build_info()
    assert report.software.tf_build["is_cuda_build"] == build.get("is_cuda_build", False)
    assert report.software.tf_build_kind == ("CUDA" if build.get("is_cuda_build") else
                                             "ROCm" if build.get("is_rocm_build") else "CPU-only")
    sw = report.software
    assert sw.intra_op_threads == tf.config.threading.get_intra_op_parallelism_threads()
    assert sw.tensor_float_32 == tf.config.experimental.tensor_float_32_execution_enabled()
    assert report.software.mixed_precision_policy == keras.config.dtype_policy().name
    assert isinstance(report.software.onednn, bool)
    dists = [d for d in ("tensorflow", "tensorflow-cpu")
             if _installed(d)]
    assert set(dists) <= set(report.software.tensorflow_distributions)


def _installed(dist):
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_environment_lists_only_variables_that_are_set(monkeypatch):
    for name in _device.PERF_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    r = DeviceReport.collect(probe_gpus=False)
    assert r.software.env == {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2", "OMP_NUM_THREADS": "3"}
    assert "OMP_NUM_THREADS=3" in str(r)


# ---------------------------------------------------------------------------
# No GPU on this machine: the explanation.


def test_no_gpu_is_explained_from_independent_facts(report):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):  # not the case on CI machines
        assert report.gpu_unavailable_reason is None and len(report.devices) > 1
        return
    assert report.accelerators == [] and report.devices == ["cpu"]
    assert _device.available_devices() == ["cpu"]
    reason = report.gpu_unavailable_reason
    build = tf.sysconfig.get_build_info()
    try:
        ctypes.CDLL("libcuda.so.1")
        has_driver = True
    except OSError:
        has_driver = False
    if not build.get("is_cuda_build"):
        assert "CPU-only build" in reason
    elif not has_driver:
        assert "no NVIDIA driver" in reason and "libcuda.so.1" in reason
        if not glob.glob("/dev/nvidia*"):
            assert "no /dev/nvidia* device files" in reason
        assert report.gpu_driver["libcuda"] is None
    else:
        assert "cuInit" in str(report) or "CUDA" in reason
    assert " ".join(reason.split()) in " ".join(str(report).split())


_CUDA_BUILD = {"is_cuda_build": True, "is_rocm_build": False, "cuda_version": "12.5.1",
               "cudnn_version": "9", "cuda_compute_capabilities": ["sm_60", "sm_70", "compute_90"]}
_DRIVER_OK = {"libcuda": "libcuda.so.1", "cuinit": "CUDA_SUCCESS", "cuda_device_count": 0,
              "device_files": ["nvidia0", "nvidiactl"], "gpus_on_system": 2,
              "system_gpu_models": ["NVIDIA A100-SXM4-40GB"] * 2, "cuda_devices": []}


@pytest.mark.parametrize("facts, expected", [
    (dict(tf_build={"is_cuda_build": False, "is_rocm_build": False}, tf_version="2.21.0",
          tf_distributions=["tensorflow-cpu"], platform="linux"),
     ["CPU-only build", "tensorflow-cpu", "tensorflow[and-cuda]"]),
    (dict(tf_build={"is_cuda_build": False, "is_rocm_build": False}, platform="win32"),
     ["CPU-only build", "native Windows", "WSL2"]),
    (dict(tf_build=_CUDA_BUILD, tf_version="2.21.0", platform="linux", container="docker",
          driver={"libcuda": None, "libcuda_error": "libcuda.so.1 cannot be loaded",
                  "device_files": []}),
     ["CUDA build (CUDA 12.5.1, cuDNN 9)", "no NVIDIA driver", "no /dev/nvidia*",
      "docker run --gpus all"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux", cuda_visible_devices="-1",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_NO_DEVICE (100)", cuda_device_count=None)),
     ["CUDA_VISIBLE_DEVICES='-1' hides every GPU", "driver reports 2 GPU(s)"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux", cuda_visible_devices="7",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_NO_DEVICE (100)")),
     ["CUDA_VISIBLE_DEVICES='7' hides every GPU"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_INSUFFICIENT_DRIVER (35)")),
     ["CUDA_ERROR_INSUFFICIENT_DRIVER", "update the driver"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux", driver=dict(_DRIVER_OK, cuda_device_count=2)),
     ["CUDA sees 2 GPU(s) but TensorFlow registered none", "tensorflow[and-cuda]"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux",
          driver=dict(_DRIVER_OK, cuda_device_count=1,
                      cuda_devices=[{"compute_capability": "3.7"}])),
     ["compute capability 3.7 is below the lowest this build supports (sm_60)"]),
    (dict(tf_build=_CUDA_BUILD, platform="linux", tf_physical_gpus=2,
          driver=dict(_DRIVER_OK, cuda_device_count=None)),
     ["set_visible_devices"]),
    (dict(tf_error="ImportError: libfoo.so", keras_backend="jax",
          keras_backend_devices=["cuda:0"]),
     ["Keras backend is 'jax'", "cuda:0",
      "TensorFlow cannot be imported (ImportError: libfoo.so)"]),
    # As seen on an H200 machine without TensorFlow installed.
    (dict(tf_error="ModuleNotFoundError: No module named 'tensorflow'",
          driver=dict(_DRIVER_OK, gpus_on_system=1, system_gpu_models=["NVIDIA H200"])),
     ["TensorFlow cannot be imported",
      "The driver reports 1 GPU(s) on this machine (NVIDIA H200)"]),
])
def test_explain_no_gpu(facts, expected):
    text = _device.explain_no_gpu(facts)
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert text[0].isupper() and text.endswith((".", ")"))


# ---------------------------------------------------------------------------
# Simulated GPU machines and failing probes.


def _fake_nvml(order=(0, 1)):
    gpus = [
        dict(model="NVIDIA H200", pci_bus_id="0000:0a:00.0", memory_total_bytes=143771 * 2**20,
             memory_free_bytes=140000 * 2**20, sm_clock_mhz=345, sm_clock_max_mhz=1980,
             memory_clock_mhz=3201, memory_clock_max_mhz=3201, power_draw_w=75.5,
             power_limit_w=700.0, utilization_gpu_pct=0, utilization_memory_pct=0,
             temperature_c=31, pcie_gen=5, pcie_gen_max=5, pcie_width=16, pcie_width_max=16,
             throttle_reasons=["gpu idle"]),
        dict(model="Tesla T4", pci_bus_id="0000:0b:00.0", memory_total_bytes=15360 * 2**20,
             memory_free_bytes=1024 * 2**20, sm_clock_mhz=300, sm_clock_max_mhz=1590,
             memory_clock_mhz=405, memory_clock_max_mhz=5001, power_draw_w=9.0,
             power_limit_w=70.0, utilization_gpu_pct=3, utilization_memory_pct=1,
             temperature_c=40, pcie_gen=1, pcie_gen_max=3, pcie_width=8, pcie_width_max=16,
             throttle_reasons=["gpu idle", "hardware thermal slowdown"]),
    ]
    return {"driver_version": "580.159.04", "gpus": [gpus[i] for i in order]}


def _simulate_gpus(monkeypatch, nvml_order=(0, 1)):
    driver = dict(
        libcuda="libcuda.so.1", libcuda_error=None, cuda_driver_version="13.0",
        cuinit="CUDA_SUCCESS", cuda_device_count=2,
        devices=[dict(model="NVIDIA H200", pci_bus_id="0000:0a:00.0",
                      memory_total_bytes=150 * 10**9, compute_capability="9.0",
                      multiprocessors=132),
                 dict(model="Tesla T4", pci_bus_id="0000:0b:00.0",
                      memory_total_bytes=16 * 10**9, compute_capability="7.5",
                      multiprocessors=40)],
    )
    tf_gpus = [
        dict(name="gpu:0", tf_device="/physical_device:GPU:0", physical_index=0,
             model="NVIDIA H200", compute_capability="9.0", memory_growth=False),
        dict(name="gpu:1", tf_device="/physical_device:GPU:1", physical_index=1,
             model="Tesla T4", compute_capability="7.5", memory_growth=True),
    ]
    monkeypatch.setattr(_device, "_probe_cuda_driver", lambda: driver)
    monkeypatch.setattr(_device, "_probe_nvml", lambda: _fake_nvml(nvml_order))
    monkeypatch.setattr(_device, "_probe_tf_gpus", lambda tf: (2, tf_gpus))


@pytest.mark.parametrize("nvml_order", [(0, 1), (1, 0)])
def test_simulated_gpu_machine(monkeypatch, nvml_order):
    _simulate_gpus(monkeypatch, nvml_order)
    r = DeviceReport.collect()
    assert r.devices == ["cpu", "gpu:0", "gpu:1"]
    assert r.gpu_unavailable_reason is None
    h200, t4 = r.accelerators
    # NVML facts are matched by PCI bus id, whatever NVML's order.
    assert h200.model == "NVIDIA H200" and h200.compute_capability == "9.0"
    assert h200.memory_free_bytes == 140000 * 2**20 and h200.power_limit_w == 700.0
    assert h200.multiprocessors == 132 and h200.driver_version == "580.159.04"
    assert h200.peak["bf16"] == 989.5 and "H200" in h200.peak["source"]
    assert h200.sources == ["tensorflow", "cuda-driver", "nvml"]
    assert t4.memory_growth is True and t4.utilization_gpu_pct == 3
    assert t4.peak["fp16"] == 65.0 and t4.peak["bf16"] is None
    assert r.gpu_driver["gpus_on_system"] == 2 and r.gpu_driver["management"] == "nvml"
    text = str(r)
    for fragment in ("NVIDIA H200", "compute capability 9.0", "132 SMs", "Tesla T4",
                     "PCIe gen 1 x8 (max gen 3 x16)", "driver 580.159.04"):
        assert fragment in text, fragment
    notes = " ".join(r.notes)
    assert "gpu:1 clocks are held down by: hardware thermal slowdown" in notes
    assert "gpu:1 PCIe link runs at x8 of x16" in notes
    if r.software.tensor_float_32:
        assert "TF32 is on" in notes
    assert DeviceReport.from_json(r.to_json()) == r


def test_simulated_gpu_falling_back_to_cpu_is_a_failure(monkeypatch):
    """A GPU that TensorFlow lists but that silently runs nothing must FAIL.

    No GPU exists here, so TensorFlow's soft placement runs the '/GPU:0' ops
    on the CPU: exactly the symptom of a broken GPU setup.
    """
    _simulate_gpus(monkeypatch)
    monkeypatch.setattr(_device, "_COPY_BYTES", 4 * 2**20)
    r = DeviceReport.collect()
    result = r.check(devices="gpu:0", precisions=["fp32"], time_budget_s=0.3)
    assert not result.ok and result.status == "FAIL"
    assert any("ran on cpu, not on gpu:0" in p for p in result.problems)
    assert str(result).startswith("Health check: FAIL")
    assert result.devices[0].bandwidth is not None


def test_nvidia_smi_fallback_when_pynvml_is_missing(monkeypatch, tmp_path):
    _simulate_gpus(monkeypatch)  # fake driver and TensorFlow GPUs ...
    monkeypatch.setattr(_device, "_probe_nvml", _real_probe_nvml)  # ... but real NVML probe
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo '0, 00000000:0A:00.0, NVIDIA H200, 580.159.04, 143771, 143000, 345, 1980, "
        "3201, 3201, 75.51, 700.00, 0, 0, 31, 5, 5, 16, 16'\n"
        "echo '1, 00000000:0B:00.0, Tesla T4, 580.159.04, 15360, 15000, [N/A], 1590, "
        "405, 5001, [Not Supported], 70.00, 3, 1, 40, 3, 3, 16, 16'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    r = DeviceReport.collect()
    assert r.gpu_driver["management"] == "nvidia-smi"
    assert "nvidia-ml-py" in r.gpu_driver["management_error"]
    h200, t4 = r.accelerators
    assert h200.memory_free_bytes == 143000 * 2**20 and h200.power_draw_w == 75.51
    assert t4.sm_clock_mhz is None and t4.power_draw_w is None and t4.sm_clock_max_mhz == 1590
    assert h200.driver_version == "580.159.04"


def test_probe_failures_degrade_to_unknown(monkeypatch):
    def boom(*args):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(_device, "_probe_cuda_driver", boom)
    monkeypatch.setattr(_device, "_probe_tf_gpus", boom)
    monkeypatch.setattr(_device, "_cpu_caches", boom)
    monkeypatch.setattr(_device, "parse_meminfo", boom)
    monkeypatch.setattr(_device, "_onednn_enabled", boom)
    monkeypatch.setattr(_device, "_virtualization", boom)
    r = DeviceReport.collect()
    assert r.host.caches == {}
    # /proc/meminfo failed: the sysconf fallback answers instead.
    assert r.host.memory_total_bytes == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert r.software.onednn is None and r.host.container is None
    assert r.devices == ["cpu"] and r.gpu_unavailable_reason
    for key in ("gpu.cuda_driver", "gpu.tensorflow", "host.caches", "host.meminfo",
                "software.onednn", "host.virtualization"):
        assert "RuntimeError: probe exploded" in r.probe_errors[key], key
    text = str(r)
    assert "Caches         unknown" in text and "oneDNN         unknown" in text
    assert "Probe errors" in text
    assert DeviceReport.from_json(r.to_json()) == r


def test_tensorflow_import_failure_degrades(monkeypatch):
    monkeypatch.setattr(_device, "_import_tensorflow",
                        lambda probes: (None, "ImportError: no tensorflow here"))
    monkeypatch.setitem(sys.modules, "keras", None)
    r = DeviceReport.collect()
    assert r.software.versions["tensorflow"] is None and r.software.versions["keras"] is None
    assert r.software.versions["numpy"] is not None
    reason = r.gpu_unavailable_reason
    assert "TensorFlow cannot be imported (ImportError: no tensorflow here)" in reason
    assert r.software.tf_build is None and r.software.keras_backend == "tensorflow"
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    result = r.check(devices="cpu", time_budget_s=0.2)
    assert result.status == "FAIL" and "TensorFlow cannot be imported" in result.problems[0]
    assert result.devices[0].model == r.host.cpu_model


def test_real_nvml_probe_fails_cleanly_without_a_driver(monkeypatch):
    """pynvml, if installed, raises here; collect() records it, never crashes."""
    if glob.glob("/dev/nvidia*"):  # not the case on CI machines
        assert _real_probe_nvml()["gpus"]
        return
    with pytest.raises(Exception) as info:
        _real_probe_nvml()
    # ImportError when nvidia-ml-py is not installed, else NVML's own error.
    assert isinstance(info.value, ImportError) or type(info.value).__name__.startswith("NVMLError")
    _simulate_gpus(monkeypatch)
    monkeypatch.setattr(_device, "_probe_nvml", _real_probe_nvml)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # and no nvidia-smi
    r = DeviceReport.collect()
    assert r.gpu_driver["management"] is None and r.gpu_driver["management_error"]
    assert r.accelerators[0].power_limit_w is None  # unknown, not invented
    assert "power unknown/unknown W" not in str(r)  # the row is left out instead


# ---------------------------------------------------------------------------
# Peak table.


@pytest.mark.parametrize("name, key, value", [
    ("NVIDIA H200", "bf16", 989.5),
    ("NVIDIA H200 NVL", "bf16", 835.5),
    ("NVIDIA H100 80GB HBM3", "fp16", 989.5),
    ("NVIDIA H100 PCIe", "fp16", 756.0),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA A100 80GB PCIe", "tf32", 156.0),
    ("NVIDIA A10", "fp32", 31.2),
    ("NVIDIA L4", "fp16", 121.0),
    ("NVIDIA L40S", "fp32", 91.6),
    ("Tesla V100-SXM2-16GB", "fp16", 125.0),
    ("Tesla V100-PCIE-32GB", "fp16", 112.0),
    ("Tesla T4", "fp32", 8.1),
    ("Tesla P100-PCIE-16GB", "fp16", 18.7),
    ("Tesla K80", "fp32", 4.37),
    ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
    ("NVIDIA GeForce RTX 3090", "fp16", 71.0),
    ("NVIDIA GeForce GTX 1050 Ti", "fp32", 2.1),
])
def test_gpu_peak_table(name, key, value):
    peak = _device_peaks.gpu_peak(name)
    assert peak[key] == value
    assert peak["estimate"] is False and "NVIDIA" in peak["source"]


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA GeForce RTX 3090 Ti",
                                  "NVIDIA GeForce RTX 4090 D", "NVIDIA B200", "", None])
def test_gpu_peak_table_does_not_guess(name):
    assert _device_peaks.gpu_peak(name) is None


def test_parse_nvidia_smi_handles_missing_values():
    keys = ["model", "memory_total_mib", "power_draw_w", "sm_clock_mhz"]
    gpus = _device.parse_nvidia_smi("Tesla T4, 15360, [N/A], 1590\nbad line\n", keys)
    assert gpus == [dict(model="Tesla T4", memory_total_bytes=15360 * 2**20,
                         power_draw_w=None, sm_clock_mhz=1590)]


# ---------------------------------------------------------------------------
# Health check.


def test_tflops_formula_by_hand():
    # 2 * 1024^3 * 10 FLOP in 0.5 s = 42.94967296 GFLOP/s.
    assert _device.tflops(1024, 1024, 1024, 10, 0.5) == pytest.approx(0.04294967296, rel=1e-12)
    assert _device.tflops(4096, 2048, 1024, 3, 2.0) == pytest.approx(
        2 * 4096 * 2048 * 1024 * 3 / 2.0 / 1e12, rel=1e-12)
    with pytest.raises(ValueError, match=r"`seconds` must be positive\. Received: seconds=0"):
        _device.tflops(1, 1, 1, 1, 0)
    with pytest.raises(ValueError, match=r"`iterations` must be positive"):
        _device.tflops(1, 1, 1, 0, 1.0)


def test_matmul_timing_with_a_fake_clock():
    """Each timed block spans exactly one tick of the fake clock (0.1 s)."""
    import tensorflow as tf

    ticks = iter(range(10_000))

    def clock():
        return next(ticks) * 0.1

    res = _device._time_matmul(tf, "cpu", "fp32", slot_s=3.0, peak={"fp32": 1.0},
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
    (cpu,) = result.devices
    assert cpu.device == "cpu" and cpu.bandwidth is None
    seen = {(c.op, c.precision) for c in cpu.correctness}
    assert seen == {(op, p) for op in ("matmul", "conv2d") for p in ("fp32", "fp16", "bf16")}
    for c in cpu.correctness:
        assert c.passed and c.ran_on == "cpu"
        assert c.max_rel_error <= c.tolerance == _device.TOLERANCES[c.precision]
        assert c.max_rel_error > 0  # rounding happens; zero would mean no comparison
    fp32 = next(c for c in cpu.correctness if c.precision == "fp32" and c.op == "matmul")
    assert fp32.max_rel_error < 1e-5
    assert [t.precision for t in cpu.throughput] == ["fp32", "fp16", "bf16"]
    for t in cpu.throughput:
        assert t.tflops == pytest.approx(_device.tflops(t.n, t.n, t.n, t.iterations, t.seconds))
        assert 0 < t.tflops < 100
    assert cpu.throughput[0].peak_is_estimate is True and cpu.throughput[0].fraction_of_peak > 0
    assert result.elapsed_s < 10
    # The check result travels with the report.
    again = DeviceReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.health == result and again == report
    # The printed report carries a one-line status; the details print apart.
    assert str(report).splitlines()[-1] == "Health check: OK on cpu"
    assert "matmul fp32" not in str(report)


def test_check_detects_wrong_results(monkeypatch):
    import tensorflow as tf

    real = tf.matmul
    monkeypatch.setattr(tf, "matmul", lambda a, b: real(a, b) * tf.cast(1.05, a.dtype))
    r = DeviceReport.collect(probe_gpus=False)
    result = r.check(devices=["cpu"], precisions=["fp32", "bf16"], time_budget_s=0.2)
    assert not result.ok and result.status == "FAIL"
    assert any("matmul fp32 is wrong" in p and "exceeds the tolerance 1e-04" in p
               for p in result.problems)
    assert any("matmul bf16 is wrong" in p for p in result.problems)
    assert not any("conv2d" in p for p in result.problems)
    assert "WRONG" in str(result)


def test_fp32_tolerance_follows_tf32_and_onednn_fpmath(monkeypatch):
    monkeypatch.delenv("TF_SET_ONEDNN_FPMATH_MODE", raising=False)
    monkeypatch.delenv("ONEDNN_DEFAULT_FPMATH_MODE", raising=False)
    assert _device._fp32_tolerance_key("cpu", False) == "fp32"
    assert _device._fp32_tolerance_key("gpu:0", True) == "fp32 (TF32)"
    assert _device._fp32_tolerance_key("gpu:0", False) == "fp32"
    monkeypatch.setenv("ONEDNN_DEFAULT_FPMATH_MODE", "bf16")
    assert _device._fp32_tolerance_key("cpu", False) == "fp32 (oneDNN fpmath)"
    assert _device.TOLERANCES["fp32"] < _device.TOLERANCES["fp32 (TF32)"] \
        < _device.TOLERANCES["fp32 (oneDNN fpmath)"]


def test_low_throughput_is_a_warning_not_a_failure():
    health = _device.DeviceHealth(device="gpu:0", throughput=[_device.MatmulResult(
        precision="fp16", n=8192, iterations=1, seconds=1.0, tflops=10.0,
        peak_tflops=989.5, fraction_of_peak=10.0 / 989.5, ran_on="gpu:0")],
        bandwidth=_device.CopyBandwidth(bytes=2**28, host_to_device_gbps=0.5,
                                        device_to_host_gbps=20.0))
    _device._judge(health, "gpu:0", is_gpu=True)
    assert health.status == "WARNING" and len(health.problems) == 2
    assert "only 1% of the peak 989.5" in health.problems[0]
    assert "host-to-device copies run at 0.50 GB/s" in health.problems[1]
    # Above a GPU's datasheet peak is suspect; above a CPU estimate is not.
    fast = _device.MatmulResult(precision="bf16", n=8192, iterations=1, seconds=1.0,
                                tflops=1500.0, peak_tflops=989.5,
                                fraction_of_peak=1500.0 / 989.5, ran_on="gpu:0")
    health = _device.DeviceHealth(device="gpu:0", throughput=[fast])
    _device._judge(health, "gpu:0", is_gpu=True)
    assert health.status == "WARNING" and "timing is suspect" in health.problems[0]
    cpu = _device.DeviceHealth(device="cpu", throughput=[_device.dataclasses.replace(
        fast, ran_on="cpu", peak_is_estimate=True)])
    _device._judge(cpu, "cpu", is_gpu=False)
    assert cpu.status == "OK" and cpu.problems == []


@pytest.mark.slow
def test_default_check_finishes_in_under_10_seconds(report):
    start = time.perf_counter()
    result = report.check()
    elapsed = time.perf_counter() - start
    assert result.ok, str(result)
    assert elapsed < 10.0, elapsed


# ---------------------------------------------------------------------------
# Argument errors.


def test_check_argument_errors(report):
    with pytest.raises(TypeError,
                       match=r"`devices` must be None, a device name .* Received: devices=5"):
        report.check(devices=5)
    with pytest.raises(ValueError,
                       match=r"`devices` must be names from \['cpu'\].* Received: devices='gpu:3'"):
        report.check(devices="gpu:3")
    with pytest.raises(ValueError, match=r"there is no GPU"):
        report.check(devices="gpu")
    with pytest.raises(ValueError,
                       match=r"`time_budget_s` must be a positive .* Received: time_budget_s=0"):
        report.check(time_budget_s=0)
    with pytest.raises(TypeError, match=r"`time_budget_s` must be a number"):
        report.check(time_budget_s="fast")
    with pytest.raises(ValueError,
                       match=r"`precisions` must be names from .* Received: precisions=\['fp8'\]"):
        report.check(precisions=["fp8"])


def test_device_names_are_normalised(monkeypatch):
    _simulate_gpus(monkeypatch)
    r = DeviceReport.collect()
    assert _device._validate_devices(["/GPU:1", "CPU:0", "gpu:1"], r) == ["gpu:1", "cpu"]
    assert _device._validate_devices("gpu", r) == ["gpu:0", "gpu:1"]


# ---------------------------------------------------------------------------
# Serialisation and TensorBoard.


def test_to_dict_is_json_with_stable_keys(report):
    d = json.loads(json.dumps(report.to_dict()))
    assert list(d) == ["schema_version", "collected_at", "collect_seconds", "host", "software",
                       "accelerators", "gpu_unavailable_reason", "gpu_driver", "notes",
                       "probe_errors", "health"]
    assert set(d["host"]) == {f.name for f in _device.dataclasses.fields(_device.HostInfo)}
    restored = DeviceReport.from_dict(d)
    assert restored.to_dict() == d
    assert str(restored) == str(DeviceReport.from_dict(report.to_dict()))


def test_from_dict_tolerates_old_and_new_reports():
    r = DeviceReport.from_dict({"host": {"cpu_model": "X", "future_field": 1}})
    assert r.host.cpu_model == "X" and r.accelerators == [] and r.health is None
    with pytest.warns(UserWarning, match="schema version 99") as record:
        DeviceReport.from_dict({"schema_version": 99})
    assert record[0].filename == __file__  # stacklevel=2 points at the caller
    with pytest.raises(TypeError, match=r"expects a dict\. Received: d='x'"):
        DeviceReport.from_dict("x")
    assert isinstance(HealthCheck.from_dict({"ok": False}), HealthCheck)


def test_write_tensorboard(report, tmp_path):
    import tensorflow as tf

    report.write_tensorboard(tmp_path / "logs", step=3)
    texts = {}
    for path in glob.glob(str(tmp_path / "logs" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert event.step == 3
                texts[value.tag] = tf.make_ndarray(value.tensor).item().decode()
    assert json.loads(texts["kerasbench/device_report_json"]) == report.to_dict()
    assert "kerasbench device report" in texts["kerasbench/device_report"]
    assert ("kerasbench/health_check" in texts) == (report.health is not None)
    with pytest.raises(ValueError, match=r"`step` must be >= 0\. Received: step=-1"):
        report.write_tensorboard(tmp_path, step=-1)
    with pytest.raises(TypeError, match=r"`log_dir` must be a path"):
        report.write_tensorboard(3)


def test_readable_block_names_every_section(report):
    text = str(report)
    for heading in ("Host", "Software", "Accelerators"):
        assert re.search(rf"^{heading}$", text, re.M), heading
    for label in ("CPU", "Clock", "Vector ISA", "Caches", "Memory", "OS", "Python",
                  "Virtualization", "CPU peak", "Versions", "Keras backend", "TF build",
                  "oneDNN", "XLA JIT", "Precision", "Threads", "Environment", "Devices"):
        assert re.search(rf"^  {re.escape(label)}\s", text, re.M), label
    assert max(len(line) for line in text.splitlines()) <= 100


def test_gpus_of_another_keras_backend_are_targets():
    from kerasbench._device.report import DeviceReport

    def report(backend, devices):
        return DeviceReport.from_dict({"software": {"keras_backend": backend,
                                                    "keras_backend_devices": devices}})

    assert report("jax", ["gpu:0", "gpu:1"]).devices == ["cpu", "gpu:0", "gpu:1"]
    assert report("torch", ["cpu", "cuda:0"]).devices == ["cpu", "gpu:0"]
    assert report("jax", ["cpu:0"]).devices == ["cpu"]
    # With TensorFlow, only TensorFlow's own GPU list counts.
    assert report("tensorflow", ["gpu:0"]).devices == ["cpu"]
    assert "gpu:0 through the jax backend" in str(report("jax", ["gpu:0"]))
