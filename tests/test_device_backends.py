"""The device report on the jax and torch Keras backends.

GPU machines are simulated through `Sources`: a `FakeJax` or `FakeTorch`
module lists GPUs (with the CUDA driver and NVML stand-ins of
test_device_simulated.py), and `SimulatedJax`/`SimulatedTorch`, the real
frameworks with a GPU that computes on the CPU, drive the health check's GPU
path. The real CPU paths run for real, each in one subprocess with
``KERAS_BACKEND`` set and TensorFlow made unimportable.
"""

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from test_device_simulated import _CUDA_DEVICES, FakeCudaDriver, FakeNvml, _nvml_gpus

from kerasbench._device import DeviceReport, Sources
from kerasbench._device import backends as device_backends

# ---------------------------------------------------------------------------
# Stand-ins.


def _no_tensorflow():
    raise AssertionError("a jax or torch report must not import TensorFlow")


def _keras(backend):
    return SimpleNamespace(__version__="3.15.1", config=SimpleNamespace(
        backend=lambda: backend, dtype_policy=lambda: SimpleNamespace(name="float32")))


def _packages(**versions):
    """A `Sources.dist_version` answering from keyword arguments (``_`` for ``-``)."""
    table = {k.replace("_", "-"): v for k, v in versions.items()}
    return table.get


class FakeJaxDevice(SimpleNamespace):
    def memory_stats(self):
        return self.stats


class FakeJax:
    """The ``jax`` calls the report makes: devices, default backend, config."""

    __version__ = "0.10.2"

    def __init__(self, gpus=(), gpu_error=None, precision=None):
        self.cpu = FakeJaxDevice(platform="cpu", id=0, device_kind="cpu", stats=None)
        self.gpus = [FakeJaxDevice(platform="gpu", id=i, device_kind=model, local_hardware_id=i,
                                   compute_capability=cc, core_count=sms, stats=stats)
                     for i, (model, cc, sms, stats) in enumerate(gpus)]
        self.gpu_error = gpu_error
        self.config = SimpleNamespace(jax_enable_x64=False, jax_default_matmul_precision=precision)

    def devices(self, platform=None):
        if platform is None:
            return list(self.gpus or [self.cpu])
        if platform == "cpu":
            return [self.cpu]
        if platform == "cuda" and self.gpus:
            return list(self.gpus)
        raise RuntimeError(self.gpu_error or
                           f"Unknown backend {platform}. Available backends are ['cpu']")

    def default_backend(self):
        return "gpu" if self.gpus else "cpu"


_JAX_GPUS = (("NVIDIA H200", "9.0", 132, {"bytes_limit": 100 * 2**30, "bytes_in_use": 2**30}),
             ("Tesla T4", "7.5", 40, None))
_JAX_CUDA = _packages(jaxlib="0.10.2", jax_cuda12_plugin="0.10.2", jax_cuda12_pjrt="0.10.2")


class FakeTorch:
    """The ``torch`` calls the report makes, with `gpus` CUDA devices."""

    __version__ = "2.13.0+cu128"
    float32 = "float32"

    def __init__(self, gpus=(), cuda="12.8"):
        self.props = [SimpleNamespace(name=model, major=major, minor=minor, total_memory=memory,
                                      multi_processor_count=sms, pci_domain_id=0,
                                      pci_bus_id=bus, pci_device_id=0)
                      for model, (major, minor), memory, sms, bus in gpus]
        self.version = SimpleNamespace(cuda=cuda, hip=None)
        self.cuda = SimpleNamespace(
            is_available=lambda: bool(self.props), device_count=lambda: len(self.props),
            get_device_properties=lambda i: self.props[i],
            get_arch_list=lambda: ["sm_75", "sm_80", "sm_90"] if self.props else [])
        answer = SimpleNamespace(is_available=lambda: True)
        self.backends = SimpleNamespace(
            cudnn=SimpleNamespace(version=lambda: 91002, allow_tf32=True),
            cuda=SimpleNamespace(matmul=SimpleNamespace(allow_tf32=False)),
            mkldnn=answer, mkl=answer, openmp=answer,
            mps=SimpleNamespace(is_built=lambda: False, is_available=lambda: False))

    def get_float32_matmul_precision(self):
        return "highest"

    def get_num_threads(self):
        return 8

    def get_num_interop_threads(self):
        return 4


_TORCH_T4 = ("Tesla T4", (7, 5), 15 * 2**30, 40, 0x0B)


def gpu_machine(root, **changes):
    """`Sources` of a machine with an H200 and a T4 (driver and NVML working), no TensorFlow."""
    (root / "dev").mkdir(exist_ok=True)
    for name in ("nvidia0", "nvidia1", "nvidiactl"):
        (root / "dev" / name).write_text("")
    nvml = FakeNvml(_nvml_gpus((1, 0)))  # NVML's order differs from CUDA's
    fields = dict(root=str(root), environ={"PATH": ""}, import_tensorflow=_no_tensorflow,
                  import_nvml=lambda: nvml, load_cuda_driver=FakeCudaDriver(_CUDA_DEVICES).load)
    return Sources(**dict(fields, **changes))


# ---------------------------------------------------------------------------
# Simulated GPU machines.


def test_simulated_jax_gpu_machine(tmp_path):
    jax = FakeJax(_JAX_GPUS)
    sources = gpu_machine(tmp_path, import_keras=lambda: _keras("jax"), import_jax=lambda: jax,
                          dist_version=_JAX_CUDA)
    r = DeviceReport.collect(sources=sources)
    assert r.probe_errors == {} and r.backend == "jax"
    assert r.devices == ["cpu", "gpu:0", "gpu:1"] and r.gpu_unavailable_reason is None
    h200, t4 = r.accelerators
    assert (h200.model, h200.compute_capability, h200.multiprocessors) == ("NVIDIA H200", "9.0",
                                                                           132)
    assert h200.backend_device == "gpu:0" and h200.sources == ["jax", "cuda-driver", "nvml"]
    assert h200.memory_free_bytes == 99 * 2**30  # what JAX's allocator has left
    assert h200.memory_total_bytes == 150 * 10**9 and h200.power_limit_w == 700.0
    assert t4.memory_free_bytes == 1024 * 2**20  # no JAX figure: NVML's, found by bus id
    sw = r.software
    assert sw.versions["jax"] == "0.10.2" and sw.versions["jaxlib"] == "0.10.2"
    assert sw.versions["jax-cuda12-plugin"] == "0.10.2" and "tensorflow" not in sw.versions
    assert sw.framework_build_kind == "CUDA" and sw.framework_build["cuda_version"] == "12"
    assert sw.framework_settings["default_backend"] == "gpu" and sw.tensor_float_32 is True
    assert sw.keras_backend_devices == ["gpu:0", "gpu:1"] and sw.tf_build is None
    text = str(r)
    for fragment in ("Versions       jax 0.10.2, jaxlib 0.10.2, keras 3.15.1, numpy",
                     "JAX build      CUDA build (jax-cuda12-plugin 0.10.2, jax-cuda12-pjrt",
                     "JAX platform   gpu (default backend)",
                     "Backend        jax: GPUs listed and checked through JAX",
                     "Precision      policy float32, default matmul precision default, x64 off"):
        assert fragment in text, fragment
    assert "TF build" not in text and "XLA JIT" not in text
    assert any("TF32 is on: float32 matmuls and convolutions" in n and "jax.config.update" in n
               for n in r.notes)
    assert DeviceReport.from_json(r.to_json()) == r


def test_simulated_torch_gpu_machine_with_cuda_visible_devices(tmp_path):
    """CUDA_VISIBLE_DEVICES=1: PyTorch's cuda:0 is the T4; NVML, seeing both, matches by bus id."""
    sources = gpu_machine(tmp_path, environ={"PATH": "", "KERAS_BACKEND": "torch",
                                             "CUDA_VISIBLE_DEVICES": "1"},
                          import_keras=lambda: (_ for _ in ()).throw(ImportError("no keras")),
                          import_torch=lambda: FakeTorch([_TORCH_T4]),
                          load_cuda_driver=FakeCudaDriver(_CUDA_DEVICES[1:]).load)
    r = DeviceReport.collect(sources=sources)
    assert r.backend == "torch" and r.software.keras_backend == "torch"  # from KERAS_BACKEND
    assert r.devices == ["cpu", "gpu:0"]
    (t4,) = r.accelerators
    assert (t4.model, t4.compute_capability, t4.backend_device) == ("Tesla T4", "7.5", "cuda:0")
    assert t4.pci_bus_id == "0000:0b:00.0" and t4.power_limit_w == 70.0
    assert t4.memory_total_bytes == 15 * 2**30 and t4.sources == ["torch", "cuda-driver", "nvml"]
    sw = r.software
    assert sw.framework_build["cudnn_version"] == "9.10.2" and sw.onednn is True
    assert (sw.intra_op_threads, sw.inter_op_threads) == (8, 4)
    assert sw.keras_backend_devices == ["cpu", "cuda:0"]
    text = str(r)
    for fragment in ("Versions       torch 2.13.0+cu128, keras unknown, numpy",
                     "Torch build    CUDA build (CUDA 12.8, cuDNN 9.10.2, for sm_75, sm_80, "
                     "sm_90); with MKL, OpenMP",
                     "Precision      policy unknown, float32 matmul precision highest, TF32 "
                     "matmul off, cuDNN TF32 on",
                     "Threads        intra-op 8, inter-op 4"):
        assert fragment in text, fragment
    assert "gpu:0 clocks are held down by: hardware thermal slowdown" in " ".join(r.notes)
    assert not any("TF32" in n for n in r.notes)  # a T4 has no TF32


@pytest.mark.parametrize("backend, changes, expected", [
    ("jax", dict(import_jax=lambda: FakeJax(), dist_version=_packages(jaxlib="0.10.2")),
     "This jaxlib 0.10.2 is a CPU-only build"),
    ("jax", dict(import_jax=lambda: FakeJax(gpu_error="Backend 'cuda' failed to initialize: "
                                                      "no supported devices found"),
                 dist_version=_JAX_CUDA),
     "CUDA sees 2 GPU(s) but JAX registered none. JAX says: RuntimeError: Backend 'cuda' failed"),
    ("torch", dict(import_torch=lambda: FakeTorch(cuda=None)),
     "This PyTorch 2.13.0+cu128 was built without CUDA"),
    ("torch", dict(import_torch=lambda: (_ for _ in ()).throw(ImportError("no torch"))),
     "PyTorch cannot be imported (ImportError: no torch)."),
])
def test_no_gpu_is_explained_for_the_backend_in_use(tmp_path, backend, changes, expected):
    r = DeviceReport.collect(sources=gpu_machine(
        tmp_path, import_keras=lambda: _keras(backend), **changes))
    assert r.devices == ["cpu"] and r.accelerators == []
    assert r.gpu_unavailable_reason.startswith(expected), r.gpu_unavailable_reason
    if "CUDA sees" not in expected:
        assert "The driver reports 2 GPU(s) on this machine" in r.gpu_unavailable_reason


def test_a_backend_without_device_support_lists_the_cpu(tmp_path):
    sources = Sources(root=str(tmp_path), environ={}, import_keras=lambda: _keras("numpy"),
                      import_tensorflow=_no_tensorflow,
                      load_cuda_driver=FakeCudaDriver(loadable=()).load)
    r = DeviceReport.collect(sources=sources)
    assert r.backend == "numpy" and r.devices == ["cpu"]
    assert r.gpu_unavailable_reason.startswith("The Keras backend is 'numpy'")
    assert "no health check for it" in r.notes[0]
    assert "Backend        numpy: kerasbench lists only the CPU for it" in str(r)
    result = r.check(time_budget_s=0.1)
    assert result.status == "FAIL" and "no health check for the 'numpy' Keras backend" in \
        result.problems[0]


# ---------------------------------------------------------------------------
# The health check's GPU path, on a simulated GPU that computes on the CPU.


class SimulatedJax:
    """The real JAX, whose "cuda" device is in truth its CPU."""

    def __init__(self):
        import jax

        self._jax = jax

    def __getattr__(self, name):
        return getattr(self._jax, name)

    def devices(self, platform=None):
        return self._jax.devices("cpu")


class SimulatedTorch:
    """The real PyTorch with one CUDA device that is in truth its CPU."""

    def __init__(self):
        import torch

        self._torch, self.synchronized = torch, []
        self.version = SimpleNamespace(cuda="12.8", hip=None)
        self.cuda = SimpleNamespace(
            is_available=lambda: True, device_count=lambda: 1, get_arch_list=lambda: ["sm_90"],
            get_device_properties=lambda i: SimpleNamespace(
                name="NVIDIA H200", major=9, minor=0, total_memory=140 * 2**30,
                multi_processor_count=132),
            synchronize=self.synchronized.append)

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def device(self, name):
        return self._torch.device("cpu")


@pytest.mark.parametrize("backend, module", [("jax", SimulatedJax), ("torch", SimulatedTorch)])
def test_simulated_gpu_falling_back_to_cpu_is_a_failure(tmp_path, backend, module):
    """The GPU path (device placement, sync, sizes, copies) runs; the CPU fallback is caught.

    NVML says the H200 has 64 MiB free, which keeps the copy test at 4 MiB.
    """
    simulated = module()
    nvml = FakeNvml(_nvml_gpus(h200_free_mib=64))
    sources = gpu_machine(tmp_path, import_keras=lambda: _keras(backend), import_nvml=lambda: nvml,
                          dist_version=_JAX_CUDA, **{f"import_{backend}": lambda: simulated})
    r = DeviceReport.collect(sources=sources)
    assert r.devices[:2] == ["cpu", "gpu:0"]
    assert r.accelerators[0].compute_capability == "9.0"  # the CUDA driver's H200
    result = r.check(devices="gpu:0", precisions=["fp32"], time_budget_s=0.3)
    assert result.backend == backend and not result.ok and result.status == "FAIL"
    assert any("matmul fp32 ran on cpu, not on gpu:0" in p for p in result.problems)
    gpu = result.devices[0]
    assert gpu.bandwidth.bytes == 4 * 2**20 and gpu.bandwidth.error is None
    assert gpu.bandwidth.host_to_device_gbps > 0 and gpu.throughput[0].tflops > 0
    tolerances = {c.op: c.tolerance for c in gpu.correctness}
    if backend == "torch":  # cuDNN convolutions run in TF32 by default, matmuls do not
        assert tolerances == {"matmul": 1e-4, "conv2d": 5e-3}
        assert len(simulated.synchronized) >= 5  # every timed block and copy waited
        assert str(simulated.synchronized[0]) == "cpu"  # the device it resolved
    else:  # JAX's default precision lets both run in TF32
        assert tolerances == {"matmul": 5e-3, "conv2d": 5e-3}


# ---------------------------------------------------------------------------
# The real CPU paths, without TensorFlow.


_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
    from kerasbench._device import DeviceReport
    report = DeviceReport.collect()
    text = str(report)
    health = report.check(time_budget_s=1.0)
    report.write_tensorboard(sys.argv[1])
    print(json.dumps({"report": report.to_dict(), "text": text, "health": str(health),
                      "summary": str(report).splitlines()[-1],
                      "tensorflow": sys.modules["tensorflow"] is not None}))
""")


def _versions(*names):
    return {n: importlib.metadata.version(n) for n in names}


@pytest.mark.slow
@pytest.mark.parametrize("backend, framework", [("jax", ("jax", "jaxlib")), ("torch", ("torch",))])
def test_real_cpu_report_and_check_without_tensorflow(backend, framework, tmp_path):
    import os

    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    d, health = answer["report"], answer["report"]["health"]
    assert answer["tensorflow"] is False
    assert d["backend"] == backend and d["accelerators"] == [] and d["probe_errors"] == {}
    assert DeviceReport.from_dict(d).devices == ["cpu"]
    sw = d["software"]
    assert {n: sw["versions"][n] for n in framework} == _versions(*framework)
    assert sw["framework_build_kind"] == "CPU-only" and sw["tf_build"] is None
    assert sw["keras_backend"] == backend and sw["keras_backend_devices"][0].startswith("cpu")
    assert "CPU-only build" in d["gpu_unavailable_reason"]
    assert f"Backend        {backend}: GPUs listed and checked through" in answer["text"]
    assert health["ok"] and health["backend"] == backend, answer["health"]
    # A busy machine may slow a CPU below 5% of its estimated peak: a warning, nothing else.
    assert all("matmul reached" in p and "of the estimated peak" in p
               for p in health["problems"]), answer["health"]
    assert answer["summary"].startswith(f"Health check: {health['status']} on cpu")
    (cpu,) = health["devices"]
    assert {(c["op"], c["precision"]) for c in cpu["correctness"]} == {
        (op, p) for op in ("matmul", "conv2d") for p in ("fp32", "fp16", "bf16")}
    for c in cpu["correctness"]:
        assert c["passed"] and c["ran_on"] == "cpu" and 0 < c["max_rel_error"] <= c["tolerance"]
    for t in cpu["throughput"]:
        assert t["tflops"] == pytest.approx(2 * t["n"] ** 3 * t["iterations"] / t["seconds"] / 1e12)
    assert health["elapsed_s"] < 20
    # The TensorBoard text summaries were written without TensorFlow; TensorFlow reads them.
    import tensorflow as tf

    (path,) = tmp_path.glob("events.out.tfevents.*")
    texts = {v.tag: tf.make_ndarray(v.tensor).item().decode()
             for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value}
    assert json.loads(texts["kerasbench/device_report_json"]) == d
    assert texts["kerasbench/health_check"].startswith("    Health check: OK")


def test_backend_in_use_follows_keras_then_its_configuration(tmp_path):
    from kerasbench._device.probing import Probes

    probes = Probes()
    assert device_backends.backend_in_use(probes, _keras("JAX"), {}) == ("JAX", "jax")
    broken = SimpleNamespace(config=SimpleNamespace(backend=lambda: 1 / 0))
    environ = {"KERAS_BACKEND": "torch"}
    assert device_backends.backend_in_use(probes, broken, environ) == (None, "torch")
    assert probes.errors["software.keras_backend"].startswith("ZeroDivisionError")
    assert device_backends.backend_in_use(probes, None, {"KERAS_HOME": str(tmp_path)}) == \
        ("tensorflow", "tensorflow")
