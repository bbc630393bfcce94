"""Simulated machines: stand-ins for the CUDA driver, NVML, nvidia-smi,
TensorFlow and Keras, passed to `DeviceReport.collect` through `Sources`.

This machine has no GPU. A GPU machine is simulated by a `FakeCudaDriver`
(what ``cuInit``/``cuDeviceGet*`` return), a `FakeNvml` (what pynvml
returns, in NVML's own units), a `FakeTensorFlow` (its GPU list and
settings) and a crafted root with /dev/nvidia* files. The probes' own code
runs on those answers.
"""

import ctypes
import dataclasses
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from kerasbench._device import DeviceReport, Sources
from kerasbench._device import gpu as device_gpu
from kerasbench._device import health as device_health
from kerasbench._device import probing


# ---------------------------------------------------------------------------
# Stand-ins.


class FakeCudaDriver:
    """The CUDA driver API as `CudaDriverApi` wraps it: given answers, optional delay."""

    def __init__(self, devices=(), version=13000, init_code=0, init_delay_s=0.0,
                 loadable=("libcuda.so.1",)):
        self.devices = [dict(d) for d in devices]
        self.version, self.init_code, self.init_delay_s = version, init_code, init_delay_s
        self.loadable = loadable

    def load(self, name):
        if name not in self.loadable:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return self

    def driver_version(self):
        return self.version

    def init(self):
        time.sleep(self.init_delay_s)
        return self.init_code

    def error_name(self, code):
        return "CUDA_ERROR_FAKE" if code == 12345 else None

    def device_count(self):
        return len(self.devices)

    def device(self, index):
        return dict(self.devices[index])


class NvmlError(Exception):
    """What pynvml raises for a query the GPU does not support."""


class FakeNvml:
    """The pynvml calls `probe_nvml` makes, answered from per-GPU dicts.

    Each GPU dict holds NVML's raw values: ``busId`` as NVML spells it, power
    in mW, the clock-event reason bit mask. A missing or None value raises
    `NvmlError`, as NVML does for unsupported queries.
    """

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 0, 2, 0

    def __init__(self, gpus, driver="580.159.04", init_error=None, init_delay_s=0.0):
        self.gpus, self.driver = gpus, driver
        self.init_error, self.init_delay_s = init_error, init_delay_s
        self.shut_down = False

    @staticmethod
    def _get(h, key):
        if h.get(key) is None:
            raise NvmlError(f"{key}: not supported")
        return h[key]

    def nvmlInit(self):
        time.sleep(self.init_delay_s)
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self):
        return self.driver.encode()

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetName(self, h):
        return self._get(h, "name").encode()

    def nvmlDeviceGetPciInfo(self, h):
        return SimpleNamespace(busId=self._get(h, "busId").encode())

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=self._get(h, "total"), free=self._get(h, "free"))

    def nvmlDeviceGetClockInfo(self, h, kind):
        return self._get(h, "sm_clock" if kind == self.NVML_CLOCK_SM else "mem_clock")

    def nvmlDeviceGetMaxClockInfo(self, h, kind):
        return self._get(h, "sm_clock_max" if kind == self.NVML_CLOCK_SM else "mem_clock_max")

    def nvmlDeviceGetPowerUsage(self, h):
        return self._get(h, "power_mw")

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return self._get(h, "power_limit_mw")

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self._get(h, "util"), memory=self._get(h, "util_mem"))

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._get(h, "temp")

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h):
        return self._get(h, "gen")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h):
        return self._get(h, "gen_max")

    def nvmlDeviceGetCurrPcieLinkWidth(self, h):
        return self._get(h, "width")

    def nvmlDeviceGetMaxPcieLinkWidth(self, h):
        return self._get(h, "width_max")

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return self._get(h, "reasons")


_CUDA_BUILD = {"is_cuda_build": True, "is_rocm_build": False, "cuda_version": "12.5.1",
               "cudnn_version": "9", "cuda_compute_capabilities": ["sm_60", "sm_70", "compute_90"]}


class FakeTensorFlow:
    """The ``tensorflow`` calls `DeviceReport.collect` makes.

    Its device list, build and settings are given; the health check's ops
    (``tf.matmul``, ``tf.device``, ...) are the real TensorFlow's, so a GPU
    listed here computes on the CPU (TensorFlow's soft placement).

    Args:
        gpus: ``(model, (major, minor), memory_growth)`` per physical GPU.
        visible: Indices of the GPUs left visible (default: all).
        error: If set, every call raises it.
    """

    __name__ = "fake_tensorflow"
    __version__ = "2.21.0"

    def __init__(self, gpus=(), visible=None, build=_CUDA_BUILD, tf32=True, jit="",
                 threads=(0, 0), error=None):
        self.physical = [SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU")
                         for i in range(len(gpus))]
        self.visible = [self.physical[i] for i in (range(len(gpus)) if visible is None
                                                   else visible)]
        self.details = {dev.name: g for dev, g in zip(self.physical, gpus)}
        self.error = error
        answer = self._answer
        self.sysconfig = SimpleNamespace(get_build_info=answer(lambda: dict(build)))
        self.config = SimpleNamespace(
            list_physical_devices=answer(lambda kind: list(self.physical)),
            get_visible_devices=answer(lambda kind: list(self.visible)),
            optimizer=SimpleNamespace(get_jit=answer(lambda: jit)),
            threading=SimpleNamespace(
                get_intra_op_parallelism_threads=answer(lambda: threads[0]),
                get_inter_op_parallelism_threads=answer(lambda: threads[1])),
            experimental=SimpleNamespace(
                get_device_details=answer(self._device_details),
                get_memory_growth=answer(lambda dev: self.details[dev.name][2]),
                tensor_float_32_execution_enabled=answer(lambda: tf32)),
        )

    def _answer(self, fn):
        def call(*args):
            if self.error is not None:
                raise self.error
            return fn(*args)
        return call

    def __getattr__(self, name):
        import tensorflow

        return getattr(tensorflow, name)

    def _device_details(self, dev):
        model, cc, _ = self.details[dev.name]
        return {"device_name": model, "compute_capability": cc}


@pytest.fixture
def tf_internals(monkeypatch):
    """Registers the two private TensorFlow modules the report reads, for FakeTensorFlow."""
    state = SimpleNamespace(onednn=True, determinism=False, error=None)

    def answer(value):
        def call():
            if state.error is not None:
                raise state.error
            return getattr(state, value)
        return call

    monkeypatch.setitem(sys.modules, "fake_tensorflow.python.util._pywrap_util_port",
                        SimpleNamespace(IsMklEnabled=answer("onednn")))
    monkeypatch.setitem(sys.modules, "fake_tensorflow.python.framework.config",
                        SimpleNamespace(is_op_determinism_enabled=answer("determinism")))
    return state


def _nvml_gpus(order=(0, 1), h200_free_mib=140000):
    gpus = [
        dict(name="NVIDIA H200", busId="00000000:0A:00.0", total=143771 * 2**20,
             free=h200_free_mib * 2**20, sm_clock=345, sm_clock_max=1980, mem_clock=3201,
             mem_clock_max=3201, power_mw=75500, power_limit_mw=700000, util=0, util_mem=0,
             temp=31, gen=5, gen_max=5, width=16, width_max=16, reasons=0x1),
        dict(name="Tesla T4", busId="00000000:0B:00.0", total=15360 * 2**20, free=1024 * 2**20,
             sm_clock=300, sm_clock_max=1590, mem_clock=405, mem_clock_max=5001, power_mw=9000,
             power_limit_mw=70000, util=3, util_mem=1, temp=40, gen=1, gen_max=3, width=8,
             width_max=16, reasons=0x1 | 0x40),
    ]
    return [gpus[i] for i in order]


_CUDA_DEVICES = [
    dict(model="NVIDIA H200", pci_bus_id="0000:0a:00.0", memory_total_bytes=150 * 10**9,
         compute_capability="9.0", multiprocessors=132),
    dict(model="Tesla T4", pci_bus_id="0000:0b:00.0", memory_total_bytes=16 * 10**9,
         compute_capability="7.5", multiprocessors=40),
]
_TF_GPUS = (("NVIDIA H200", (9, 0), False), ("Tesla T4", (7, 5), True))


def _no_nvml():
    raise ImportError("No module named 'pynvml'")


def gpu_machine(root, nvml=None, tf=None, **changes):
    """`Sources` for a machine with an H200 and a T4, driver, NVML and TensorFlow all working."""
    for name in ("nvidia0", "nvidia1", "nvidiactl"):
        (root / "dev").mkdir(exist_ok=True)
        (root / "dev" / name).write_text("")
    nvml = nvml or FakeNvml(_nvml_gpus())
    tf = tf or FakeTensorFlow(_TF_GPUS)
    fields = dict(root=str(root), environ={"PATH": ""}, import_tensorflow=lambda: tf,
                  import_nvml=lambda: nvml, load_cuda_driver=FakeCudaDriver(_CUDA_DEVICES).load)
    return Sources(**dict(fields, **changes))


# ---------------------------------------------------------------------------
# A GPU machine.


@pytest.mark.parametrize("nvml_order", [(0, 1), (1, 0)])
def test_simulated_gpu_machine(tmp_path, tf_internals, nvml_order):
    nvml = FakeNvml(_nvml_gpus(nvml_order))
    r = DeviceReport.collect(sources=gpu_machine(tmp_path, nvml=nvml))
    assert r.probe_errors == {}
    assert r.devices == ["cpu", "gpu:0", "gpu:1"]
    assert r.gpu_unavailable_reason is None
    h200, t4 = r.accelerators
    # NVML facts are matched by PCI bus id, whatever NVML's order.
    assert h200.model == "NVIDIA H200" and h200.compute_capability == "9.0"
    assert h200.memory_free_bytes == 140000 * 2**20 and h200.power_limit_w == 700.0
    assert h200.power_draw_w == 75.5 and h200.pci_bus_id == "0000:0a:00.0"
    assert h200.multiprocessors == 132 and h200.driver_version == "580.159.04"
    assert h200.memory_total_bytes == 150 * 10**9  # CUDA's figure first
    assert h200.peak["bf16"] == 989.5 and "H200" in h200.peak["source"]
    assert h200.sources == ["tensorflow", "cuda-driver", "nvml"]
    assert h200.memory_growth is False and h200.throttle_reasons == ["gpu idle"]
    assert t4.memory_growth is True and t4.utilization_gpu_pct == 3
    assert t4.peak["fp16"] == 65.0 and t4.peak["bf16"] is None
    assert r.gpu_driver["gpus_on_system"] == 2 and r.gpu_driver["management"] == "nvml"
    assert r.gpu_driver["cuda_driver_version"] == "13.0" and r.gpu_driver["cuinit"] == \
        "CUDA_SUCCESS"
    assert r.gpu_driver["device_files"] == ["nvidia0", "nvidia1", "nvidiactl"]
    assert nvml.shut_down
    text = str(r)
    for fragment in ("NVIDIA H200", "compute capability 9.0", "132 SMs", "Tesla T4",
                     "PCIe gen 1 x8 (max gen 3 x16)", "driver 580.159.04",
                     "/dev/nvidia*: nvidia0, nvidia1, nvidiactl", "power 75.5/700.0 W"):
        assert fragment in text, fragment
    notes = " ".join(r.notes)
    assert "gpu:1 clocks are held down by: hardware thermal slowdown" in notes
    assert "gpu:1 PCIe link runs at x8 of x16" in notes
    assert "TF32 is on" in notes
    assert DeviceReport.from_json(r.to_json()) == r


def test_cuda_visible_devices_hides_a_gpu_from_tensorflow(tmp_path, tf_internals):
    """With CUDA_VISIBLE_DEVICES=1 CUDA lists only the T4; NVML still sees both."""
    tf = FakeTensorFlow(_TF_GPUS[1:])
    sources = gpu_machine(tmp_path, tf=tf, environ={"PATH": "", "CUDA_VISIBLE_DEVICES": "1"},
                          load_cuda_driver=FakeCudaDriver(_CUDA_DEVICES[1:]).load)
    r = DeviceReport.collect(sources=sources)
    (t4,) = r.accelerators
    assert t4.name == "gpu:0" and t4.model == "Tesla T4" and t4.pci_bus_id == "0000:0b:00.0"
    assert t4.power_limit_w == 70.0  # NVML's T4, found by bus id
    assert r.gpu_driver["gpus_on_system"] == 2 and r.software.env["CUDA_VISIBLE_DEVICES"] == "1"


def test_tensorflow_hiding_every_gpu_is_explained(tmp_path, tf_internals):
    tf = FakeTensorFlow(_TF_GPUS, visible=[])
    r = DeviceReport.collect(sources=gpu_machine(tmp_path, tf=tf))
    assert r.accelerators == [] and r.devices == ["cpu"]
    assert "CUDA sees 2 GPU(s) but TensorFlow registered none" in r.gpu_unavailable_reason


def test_simulated_gpu_falling_back_to_cpu_is_a_failure(tmp_path, tf_internals):
    """A GPU that TensorFlow lists but that silently runs nothing must FAIL.

    No GPU exists here, so TensorFlow's soft placement runs the '/GPU:0' ops
    on the CPU: exactly the symptom of a broken GPU setup. The H200 reports
    64 MiB free, which keeps the copy test small (4 MiB).
    """
    nvml = FakeNvml(_nvml_gpus(h200_free_mib=64))
    r = DeviceReport.collect(sources=gpu_machine(tmp_path, nvml=nvml))
    result = r.check(devices="gpu:0", precisions=["fp32"], time_budget_s=0.3)
    assert not result.ok and result.status == "FAIL"
    assert any("ran on cpu, not on gpu:0" in p for p in result.problems)
    assert str(result).startswith("Health check: FAIL")
    assert result.devices[0].bandwidth.bytes == 4 * 2**20
    assert "fp32 matmuls run in TF32" in result.devices[0].notes[0]
    assert result.devices[0].correctness[0].tolerance == 5e-3  # TF32 tolerance


def test_device_names_are_normalised(tmp_path, tf_internals):
    r = DeviceReport.collect(sources=gpu_machine(tmp_path))
    assert device_health.device_names(["/GPU:1", "CPU:0", "gpu:1"], r) == ["gpu:1", "cpu"]
    assert device_health.device_names("gpu", r) == ["gpu:0", "gpu:1"]
    assert device_health.device_names(("/device:GPU:0",), r) == ["gpu:0"]


# ---------------------------------------------------------------------------
# Management facts without NVML.


def test_nvidia_smi_fallback_when_pynvml_is_missing(tmp_path, tf_internals):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo '0, 00000000:0A:00.0, NVIDIA H200, 580.159.04, 143771, 143000, 345, 1980, "
        "3201, 3201, 75.51, 700.00, 0, 0, 31, 5, 5, 16, 16'\n"
        "echo '1, 00000000:0B:00.0, Tesla T4, 580.159.04, 15360, 15000, [N/A], 1590, "
        "405, 5001, [Not Supported], 70.00, 3, 1, 40, 3, 3, 16, 16'\n"
    )
    smi.chmod(0o755)
    sources = gpu_machine(tmp_path, import_nvml=_no_nvml, environ={"PATH": str(bin_dir)})
    r = DeviceReport.collect(sources=sources)
    assert r.gpu_driver["management"] == "nvidia-smi"
    assert "nvidia-ml-py" in r.gpu_driver["management_error"]
    h200, t4 = r.accelerators
    assert h200.memory_free_bytes == 143000 * 2**20 and h200.power_draw_w == 75.51
    assert t4.sm_clock_mhz is None and t4.power_draw_w is None and t4.sm_clock_max_mhz == 1590
    assert h200.driver_version == "580.159.04"
    assert h200.sources == ["tensorflow", "cuda-driver", "nvml"]


def test_nvidia_smi_retries_with_the_fields_old_drivers_know(tmp_path):
    (tmp_path / "nvidia-smi").write_text("")
    (tmp_path / "nvidia-smi").chmod(0o755)
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            return subprocess.CompletedProcess(args, 6, "", "Field 'clocks.max.sm' is not valid")
        return subprocess.CompletedProcess(args, 0, "0, 00000000:0A:00.0, Tesla K80, 470.1, 11441, "
                                           "11000\n", "")

    mgmt = device_gpu.probe_nvidia_smi({"PATH": str(tmp_path)}, run)
    assert len(calls) == 2 and calls[1][1].count(",") == 5
    assert mgmt == {"driver_version": "470.1", "gpus": [dict(
        pci_bus_id="0000:0a:00.0", model="Tesla K80", memory_total_bytes=11441 * 2**20,
        memory_free_bytes=11000 * 2**20)]}
    with pytest.raises(RuntimeError, match="nvidia-smi failed: broken"):
        device_gpu.probe_nvidia_smi(
            {"PATH": str(tmp_path)}, lambda args, **kw: subprocess.CompletedProcess(
                args, 9, "", "broken"))
    assert device_gpu.probe_nvidia_smi({"PATH": str(tmp_path / "none")}, run) is None


def test_real_nvml_probe_fails_cleanly_without_a_driver(tmp_path, tf_internals):
    """The real pynvml (or its absence) here: collect() records it, never crashes."""
    try:
        nv = Sources().import_nvml()
    except ImportError:
        nv = None
    if nv is not None and os.path.exists("/dev/nvidiactl"):  # not the case on CI machines
        assert device_gpu.probe_nvml(nv)["gpus"]
        return
    if nv is not None:
        with pytest.raises(Exception) as info:
            device_gpu.probe_nvml(nv)
        assert type(info.value).__name__.startswith("NVMLError")
    sources = gpu_machine(tmp_path, import_nvml=Sources().import_nvml,
                          environ={"PATH": str(tmp_path)})  # and no nvidia-smi there
    r = DeviceReport.collect(sources=sources)
    assert r.gpu_driver["management"] is None and r.gpu_driver["management_error"]
    assert r.accelerators[0].power_limit_w is None  # unknown, not invented
    assert "power unknown/unknown W" not in str(r)  # the row is left out instead


# ---------------------------------------------------------------------------
# The CUDA driver probe.


def test_cuda_driver_probe():
    fake = FakeCudaDriver(_CUDA_DEVICES, version=12040)
    out = device_gpu.probe_cuda_driver(fake.load, "linux")
    assert out["libcuda"] == "libcuda.so.1" and out["cuda_driver_version"] == "12.4"
    assert out["cuinit"] == "CUDA_SUCCESS" and out["cuda_device_count"] == 2
    assert out["devices"] == _CUDA_DEVICES
    fake = FakeCudaDriver(_CUDA_DEVICES, init_code=100)
    out = device_gpu.probe_cuda_driver(fake.load, "linux")
    assert out["cuinit"] == "CUDA_ERROR_NO_DEVICE (100)" and out["cuda_device_count"] is None
    fake = FakeCudaDriver(init_code=12345)
    assert device_gpu.probe_cuda_driver(fake.load, "linux")["cuinit"] == "CUDA_ERROR_FAKE (12345)"
    fake = FakeCudaDriver(loadable=("libcuda.so",))  # only the unversioned name
    assert device_gpu.probe_cuda_driver(fake.load, "linux")["libcuda"] == "libcuda.so"
    missing = device_gpu.probe_cuda_driver(FakeCudaDriver(loadable=()).load, "linux")
    assert missing["libcuda"] is None
    assert missing["libcuda_error"].startswith("libcuda.so.1 cannot be loaded (libcuda.so.1: ")
    assert device_gpu.probe_cuda_driver(fake.load, "darwin")["libcuda_error"] == \
        "no CUDA driver exists for darwin"


def _c_function(*argtypes):
    return lambda fn: ctypes.CFUNCTYPE(ctypes.c_int, *argtypes)(fn)


def _put(pointer, value):
    pointer[0] = value
    return 0


def _write(address, size, text):
    data = text.encode() + b"\0"
    ctypes.memmove(address, data, min(len(data), size))
    return 0


def test_cuda_driver_api_passes_out_parameters_and_buffers_as_c_does():
    """`CudaDriverApi` on C-callable stand-ins for libcuda's functions."""
    p_int, p_size, p_text = (ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_size_t),
                             ctypes.POINTER(ctypes.c_char_p))
    attributes = {75: 9, 76: 0, 16: 132}  # major, minor, multiprocessors
    error_names = {77: b"CUDA_ERROR_SEVENTY_SEVEN"}
    lib = SimpleNamespace(
        cuDriverGetVersion=_c_function(p_int)(lambda p: _put(p, 12080)),
        cuInit=_c_function(ctypes.c_uint)(lambda flags: 0),
        cuDeviceGetCount=_c_function(p_int)(lambda p: _put(p, 1)),
        cuDeviceGet=_c_function(p_int, ctypes.c_int)(lambda p, i: _put(p, 7)),
        cuDeviceGetName=_c_function(ctypes.c_void_p, ctypes.c_int, ctypes.c_int)(
            lambda buf, n, dev: _write(buf, n, "NVIDIA H200") if dev == 7 else 101),
        cuDeviceGetPCIBusId=_c_function(ctypes.c_void_p, ctypes.c_int, ctypes.c_int)(
            lambda buf, n, dev: _write(buf, n, "0000:0A:00.0")),
        cuDeviceTotalMem_v2=_c_function(p_size, ctypes.c_int)(lambda p, dev: _put(p, 150 * 10**9)),
        cuDeviceGetAttribute=_c_function(p_int, ctypes.c_int, ctypes.c_int)(
            lambda p, code, dev: _put(p, attributes[code])),
        cuGetErrorName=_c_function(ctypes.c_int, p_text)(
            lambda code, p: _put(p, error_names[code]) if code in error_names else 1),
    )
    out = device_gpu.probe_cuda_driver(lambda name: device_gpu.CudaDriverApi(lib), "linux")
    assert out["cuda_driver_version"] == "12.8" and out["cuinit"] == "CUDA_SUCCESS"
    assert out["devices"] == [dict(model="NVIDIA H200", pci_bus_id="0000:0a:00.0",
                                   memory_total_bytes=150 * 10**9, compute_capability="9.0",
                                   multiprocessors=132)]
    api = device_gpu.CudaDriverApi(lib)
    assert api.error_name(77) == "CUDA_ERROR_SEVENTY_SEVEN" and api.error_name(5) is None
    assert device_gpu.cuda_error_name(api, 77) == "CUDA_ERROR_SEVENTY_SEVEN (77)"


def test_the_real_cuda_driver_probe_answers():
    out = device_gpu.probe_cuda_driver()
    assert (out["libcuda"] is None) == (out["libcuda_error"] is not None)
    if out["libcuda"] is not None:
        assert out["cuinit"] is not None


def test_no_driver_in_a_container_is_explained(tmp_path, tf_internals):
    (tmp_path / ".dockerenv").write_text("")
    sources = Sources(root=str(tmp_path), environ={}, import_tensorflow=FakeTensorFlow,
                      load_cuda_driver=FakeCudaDriver(loadable=()).load)
    r = DeviceReport.collect(sources=sources)
    assert r.gpu_driver["libcuda"] is None and r.gpu_driver["management"] is None
    reason = r.gpu_unavailable_reason
    assert reason.startswith("TensorFlow 2.21.0 is a CUDA build (CUDA 12.5.1, cuDNN 9), but")
    assert "no /dev/nvidia* device files" in reason and "docker run --gpus all" in reason


# ---------------------------------------------------------------------------
# Failing and hanging probes.


def test_probe_failures_degrade_to_unknown(tmp_path, tf_internals):
    def boom(*args, **kwargs):
        raise RuntimeError("probe exploded")

    (tmp_path / "sys/fs/cgroup").mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/cpu.max").write_text("lots 100000\n")  # unparsable
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nvidia0").write_text("")
    tf_internals.error = RuntimeError("probe exploded")
    keras = SimpleNamespace(__version__="3.15.1",
                            config=SimpleNamespace(backend=boom, dtype_policy=boom))
    exploding_tf = FakeTensorFlow(error=RuntimeError("probe exploded"))
    sources = Sources(root=str(tmp_path), environ={"PATH": str(tmp_path)},
                      import_tensorflow=lambda: exploding_tf,
                      import_keras=lambda: keras, import_nvml=boom, load_cuda_driver=boom,
                      run_command=boom)
    r = DeviceReport.collect(sources=sources)
    assert r.host.caches == {} and r.host.cpu_quota is None
    assert r.software.onednn is None and r.software.tf_build is None
    assert r.software.keras_backend is None and r.host.container is None
    assert r.devices == ["cpu"]
    assert r.gpu_unavailable_reason.startswith(
        "Asking the CUDA driver failed (RuntimeError: probe exploded)")
    assert r.gpu_driver["management_error"] == "NVML: RuntimeError: probe exploded"
    for key in ("gpu.cuda_driver", "gpu.tensorflow", "software.build_info", "software.onednn",
                "software.xla_jit", "software.threads", "software.keras_backend"):
        assert r.probe_errors[key] == "RuntimeError: probe exploded", key
    assert r.probe_errors["host.cgroup"].startswith("ValueError")
    text = str(r)
    assert "Caches         unknown" in text and "oneDNN         unknown" in text
    assert "Probe errors" in text and "  - gpu.cuda_driver: RuntimeError: probe exploded" in text
    assert DeviceReport.from_json(r.to_json()) == r


def test_call_with_timeout():
    assert probing.call_with_timeout(1.0, lambda a, b: a + b, 2, 3) == 5
    with pytest.raises(KeyError):
        probing.call_with_timeout(1.0, {}.__getitem__, "missing")
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"no answer within 0\.1 s"):
        probing.call_with_timeout(0.1, time.sleep, 2.0)
    assert time.perf_counter() - start < 1.0


def test_hanging_driver_probes_time_out(tmp_path, tf_internals):
    """cuInit or nvmlInit that never returns: facts unknown, the wait bounded."""
    nvml = FakeNvml(_nvml_gpus(), init_delay_s=3.0)
    sources = gpu_machine(tmp_path, nvml=nvml, timeout_s=0.2,
                          load_cuda_driver=FakeCudaDriver(_CUDA_DEVICES, init_delay_s=3.0).load)
    start = time.perf_counter()
    r = DeviceReport.collect(sources=sources)
    assert time.perf_counter() - start < 2.0
    assert r.probe_errors["gpu.cuda_driver"] == "TimeoutError: no answer within 0.2 s"
    assert r.probe_errors["gpu.nvml"] == "TimeoutError: no answer within 0.2 s"
    assert r.gpu_driver["cuinit"] is None and r.gpu_driver["management"] is None
    assert r.gpu_driver["management_error"] == "NVML: TimeoutError: no answer within 0.2 s"
    # TensorFlow's own list still names the GPUs; the driver's facts are unknown.
    assert [g.name for g in r.accelerators] == ["gpu:0", "gpu:1"]
    assert r.accelerators[0].multiprocessors is None


# ---------------------------------------------------------------------------
# Software facts from stand-in modules.


def test_software_facts_from_stand_in_modules(tmp_path, tf_internals):
    tf_internals.onednn, tf_internals.determinism = False, True
    tf = FakeTensorFlow(build={"is_cuda_build": False, "is_rocm_build": False},
                        jit="autoclustering", tf32=False, threads=(4, 2))
    keras = SimpleNamespace(__version__="3.99.0", config=SimpleNamespace(
        backend=lambda: "tensorflow",
        dtype_policy=lambda: SimpleNamespace(name="mixed_bfloat16")))
    sources = Sources(root=str(tmp_path), environ={}, import_tensorflow=lambda: tf,
                      import_keras=lambda: keras)
    r = DeviceReport.collect(probe_gpus=False, sources=sources)
    sw = r.software
    assert sw.versions["tensorflow"] == "2.21.0" and sw.versions["keras"] == "3.99.0"
    assert (sw.tf_build_kind, sw.onednn, sw.op_determinism) == ("CPU-only", False, True)
    assert (sw.xla_jit, sw.tensor_float_32) == ("autoclustering", False)
    assert (sw.intra_op_threads, sw.inter_op_threads) == (4, 2)
    assert (sw.keras_backend, sw.mixed_precision_policy) == ("tensorflow", "mixed_bfloat16")
    assert any("XLA auto-clustering is on" in n for n in r.notes)
    text = str(r)
    assert "Threads        intra-op 4, inter-op 2" in text
    assert "Precision      policy mixed_bfloat16, TF32 off, op determinism on" in text
    assert dataclasses.asdict(sw) == r.to_dict()["software"]
