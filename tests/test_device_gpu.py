"""GPU facts that need no machine: why no GPU is usable (the ordered rules,
for each backend), the peak table, and the parsers of driver output.
"""

import pytest

from kerasbench._device import diagnosis, peaks
from kerasbench._device import gpu as device_gpu

_CUDA_BUILD = {"is_cuda_build": True, "is_rocm_build": False, "cuda_version": "12.5.1",
               "cudnn_version": "9", "cuda_compute_capabilities": ["sm_60", "sm_70", "compute_90"]}
_DRIVER_OK = {"libcuda": "libcuda.so.1", "cuinit": "CUDA_SUCCESS", "cuda_device_count": 0,
              "device_files": ["nvidia0", "nvidiactl"], "gpus_on_system": 2,
              "system_gpu_models": ["NVIDIA A100-SXM4-40GB"] * 2, "cuda_devices": []}


@pytest.mark.parametrize("facts, expected", [
    (dict(build={"is_cuda_build": False, "is_rocm_build": False}, version="2.21.0",
          distributions=["tensorflow-cpu"], platform="linux"),
     ["CPU-only build", "tensorflow-cpu", "tensorflow[and-cuda]"]),
    (dict(build={"is_cuda_build": False, "is_rocm_build": False}, platform="win32"),
     ["CPU-only build", "native Windows", "WSL2"]),
    (dict(build=_CUDA_BUILD, version="2.21.0", platform="linux", container="docker",
          driver={"libcuda": None, "libcuda_error": "libcuda.so.1 cannot be loaded",
                  "device_files": []}),
     ["CUDA build (CUDA 12.5.1, cuDNN 9)", "no NVIDIA driver", "no /dev/nvidia*",
      "docker run --gpus all"]),
    (dict(build=_CUDA_BUILD, platform="linux", cuda_visible_devices="-1",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_NO_DEVICE (100)", cuda_device_count=None)),
     ["CUDA_VISIBLE_DEVICES='-1' hides every GPU", "driver reports 2 GPU(s)"]),
    (dict(build=_CUDA_BUILD, platform="linux", cuda_visible_devices="7",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_NO_DEVICE (100)")),
     ["CUDA_VISIBLE_DEVICES='7' hides every GPU"]),
    (dict(build=_CUDA_BUILD, platform="linux",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_INSUFFICIENT_DRIVER (35)")),
     ["CUDA_ERROR_INSUFFICIENT_DRIVER", "update the driver"]),
    (dict(build=_CUDA_BUILD, platform="linux", driver=dict(_DRIVER_OK, cuda_device_count=2)),
     ["CUDA sees 2 GPU(s) but TensorFlow registered none", "tensorflow[and-cuda]"]),
    (dict(build=_CUDA_BUILD, platform="linux",
          driver=dict(_DRIVER_OK, cuda_device_count=1,
                      cuda_devices=[{"compute_capability": "3.7"}])),
     ["compute capability 3.7 is below the lowest this build supports (sm_60)"]),
    (dict(build=_CUDA_BUILD, platform="linux", physical_gpus=2,
          driver=dict(_DRIVER_OK, cuda_device_count=None)),
     ["set_visible_devices"]),
    (dict(framework_error="ImportError: libfoo.so"),
     ["TensorFlow cannot be imported (ImportError: libfoo.so)"]),
    # As seen on an H200 machine without TensorFlow installed.
    (dict(framework_error="ModuleNotFoundError: No module named 'tensorflow'",
          driver=dict(_DRIVER_OK, gpus_on_system=1, system_gpu_models=["NVIDIA H200"])),
     ["TensorFlow cannot be imported",
      "The driver reports 1 GPU(s) on this machine (NVIDIA H200)"]),
    (dict(build={"is_rocm_build": True}, version="2.18.0"),
     ["ROCm build but found no AMD GPU", "there is no /dev/kfd"]),
    (dict(build={}, driver={}), ["No GPU was found; the cause could not be determined."]),
    (dict(build=_CUDA_BUILD, version="2.21.0", driver={"libcuda": None},
          cuda_probe_error="TimeoutError: no answer within 10 s"),
     ["TensorFlow 2.21.0 is a CUDA build (CUDA 12.5.1, cuDNN 9), but asking the CUDA driver "
      "failed (TimeoutError: no answer within 10 s)", "dmesg"]),
])
def test_explain_no_gpu(facts, expected):
    text = diagnosis.explain_no_gpu(facts)
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert text[0].isupper() and text.endswith((".", ")"))


def test_each_rule_answers_only_for_its_own_cause():
    """The rules are tried in order; the first that answers wins."""
    clues = diagnosis.Clues.from_facts(dict(
        build=_CUDA_BUILD, platform="linux", cuda_visible_devices="",
        driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_NO_DEVICE (100)")))
    answers = {rule.__name__: rule(clues) for rule in diagnosis.RULES}
    assert answers["framework_import_failed"] is None and answers["cpu_only_build"] is None
    assert answers["no_nvidia_driver"] is None
    assert "hides every GPU" in answers["cuda_visible_devices_hides"]
    assert "initialising CUDA failed" in answers["cuinit_failed"]  # a later, weaker rule
    assert diagnosis.explain_no_gpu(clues.facts) == answers["cuda_visible_devices_hides"]
    assert diagnosis.RULES[-1] is diagnosis.undetermined


_JAX_CPU = {"is_cuda_build": False, "is_rocm_build": False, "jaxlib_version": "0.10.2",
            "plugins": []}
_JAX_CUDA = {"is_cuda_build": True, "is_rocm_build": False, "cuda_version": "12",
             "jaxlib_version": "0.10.2", "plugins": ["jax-cuda12-plugin 0.10.2"]}
_TORCH_CPU = {"is_cuda_build": False, "is_rocm_build": False, "cuda_version": None,
              "mps_built": False}
_TORCH_CUDA = {"is_cuda_build": True, "is_rocm_build": False, "cuda_version": "12.8",
               "cudnn_version": "9.10.2", "cuda_compute_capabilities": ["sm_80", "sm_90"]}


@pytest.mark.parametrize("facts, expected", [
    (dict(backend="jax", version="0.10.2", build=_JAX_CPU, platform="linux",
          driver=dict(_DRIVER_OK, gpus_on_system=1, system_gpu_models=["NVIDIA H200"])),
     ["This jaxlib 0.10.2 is a CPU-only build: no CUDA or ROCm plugin",
      "pip install -U 'jax[cuda12]'", "The driver reports 1 GPU(s) on this machine (NVIDIA H200)"]),
    (dict(backend="jax", build=_JAX_CPU, platform="win32"), ["native Windows; use WSL2"]),
    (dict(backend="jax", version="0.10.2", build=_JAX_CUDA, jax_platforms="cpu",
          driver=_DRIVER_OK),
     ["JAX_PLATFORMS='cpu' keeps JAX off the GPU (unset it, or add 'cuda')."]),
    (dict(backend="jax", version="0.10.2", build=_JAX_CUDA, platform="linux",
          cuda_visible_devices="", driver=dict(_DRIVER_OK, cuda_device_count=0)),
     ["JAX 0.10.2 is a CUDA build (CUDA 12), but CUDA_VISIBLE_DEVICES='' hides every GPU"]),
    (dict(backend="jax", version="0.10.2", build=_JAX_CUDA, platform="linux",
          driver=dict(_DRIVER_OK, cuda_device_count=2),
          gpu_error="RuntimeError: Backend 'cuda' failed to initialize: DNN library not found"),
     ["CUDA sees 2 GPU(s) but JAX registered none. JAX says: RuntimeError: Backend 'cuda' "
      "failed to initialize: DNN library not found"]),
    (dict(backend="jax", version="0.10.2", build=_JAX_CUDA, platform="linux",
          driver=dict(_DRIVER_OK, cuda_device_count=2), gpu_error="RuntimeError: Unknown backend"),
     ["JAX registered none. Usually the CUDA plugin could not load its CUDA libraries"]),
    (dict(backend="jax", framework_error="ModuleNotFoundError: No module named 'jax'"),
     ["JAX cannot be imported (ModuleNotFoundError: No module named 'jax')."]),
    (dict(backend="torch", version="2.13.0+cpu", build=_TORCH_CPU, platform="linux",
          driver={"libcuda": None, "device_files": []}),
     ["This PyTorch 2.13.0+cpu was built without CUDA (a CPU-only build)",
      "download.pytorch.org/whl/cu128"]),
    (dict(backend="torch", version="2.13.0", build=dict(_TORCH_CPU, mps_built=True),
          platform="darwin"),
     ["PyTorch 2.13.0 cannot use the Apple GPU: MPS is not available (it needs macOS 12.3"]),
    (dict(backend="torch", version="2.13.0", build=_TORCH_CPU, platform="darwin"),
     ["this PyTorch was built without MPS"]),
    (dict(backend="torch", version="2.13.0", build=_TORCH_CUDA, platform="linux",
          driver=dict(_DRIVER_OK, cuda_driver_version="11.4", cuda_device_count=1)),
     ["The NVIDIA driver supports CUDA up to 11.4, but this PyTorch 2.13.0 build needs "
      "CUDA 12: update the driver"]),
    (dict(backend="torch", version="2.13.0", build=_TORCH_CUDA, platform="linux",
          driver=dict(_DRIVER_OK, cuinit="CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)")),
     ["PyTorch 2.13.0 is a CUDA build (CUDA 12.8, cuDNN 9.10.2), but initialising CUDA failed "
      "with CUDA_ERROR_SYSTEM_DRIVER_MISMATCH (803)", "reboot after a driver update"]),
    (dict(backend="torch", version="2.13.0", build=_TORCH_CUDA, platform="linux",
          driver=dict(_DRIVER_OK, cuda_device_count=1)),
     ["CUDA sees 1 GPU(s) but PyTorch registered none. torch.cuda.is_available() is False"]),
    (dict(backend="torch", version="6.3", build={"is_rocm_build": True}, dev_kfd=True),
     ["PyTorch 6.3 is a ROCm build but found no AMD GPU."]),
    (dict(backend="numpy"), ["The Keras backend is 'numpy': kerasbench lists GPUs only for the "
                             "tensorflow, jax, torch backends."]),
])
def test_explain_no_gpu_for_jax_and_torch(facts, expected):
    text = diagnosis.explain_no_gpu(facts)
    for fragment in expected:
        assert fragment in text, (fragment, text)
    assert "TensorFlow" not in text  # the reason speaks for the backend in use


def test_a_driver_older_than_the_build_is_said_for_every_framework():
    facts = dict(build=_CUDA_BUILD, version="2.21.0", platform="linux",
                 driver=dict(_DRIVER_OK, cuda_driver_version="11.8", cuda_device_count=1))
    assert diagnosis.explain_no_gpu(facts).startswith(
        "The NVIDIA driver supports CUDA up to 11.8, but this TensorFlow 2.21.0 build needs "
        "CUDA 12")
    # Minor versions are compatible within a major version: no such reason.
    facts["driver"]["cuda_driver_version"] = "12.2"
    assert "registered none" in diagnosis.explain_no_gpu(facts)


def test_rocm_build_with_its_kernel_driver_loaded():
    text = diagnosis.explain_no_gpu(dict(build={"is_rocm_build": True}, dev_kfd=True))
    assert text.endswith("is a ROCm build but found no AMD GPU.")


def test_a_no_driver_reason_notes_a_hiding_cuda_visible_devices():
    text = diagnosis.explain_no_gpu(dict(
        build=_CUDA_BUILD, platform="linux", cuda_visible_devices="-1",
        driver={"libcuda": None, "device_files": ["nvidia0"]}))
    assert "libcuda cannot be loaded. This machine has no usable NVIDIA GPU" in text
    assert text.endswith("(CUDA_VISIBLE_DEVICES='-1' would hide them anyway.)")
    assert "no /dev/nvidia*" not in text


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
    peak = peaks.gpu_peak(name)
    assert peak[key] == value
    assert peak["estimate"] is False and "NVIDIA" in peak["source"]


@pytest.mark.parametrize("name", ["NVIDIA A10G", "NVIDIA GeForce RTX 3090 Ti",
                                  "NVIDIA GeForce RTX 4090 D", "NVIDIA B200", "", None])
def test_gpu_peak_table_does_not_guess(name):
    assert peaks.gpu_peak(name) is None


def test_parse_nvidia_smi_handles_missing_values():
    keys = ["model", "memory_total_mib", "power_draw_w", "sm_clock_mhz"]
    gpus = device_gpu.parse_nvidia_smi("Tesla T4, 15360, [N/A], 1590\nbad line\n", keys)
    assert gpus == [dict(model="Tesla T4", memory_total_bytes=15360 * 2**20,
                         power_draw_w=None, sm_clock_mhz=1590)]


def test_pci_bus_ids_from_nvml_and_cuda_compare_equal():
    assert device_gpu.normalise_pci(b"00000000:0A:00.0") == "0000:0a:00.0"
    assert device_gpu.normalise_pci("0000:0a:00.0") == "0000:0a:00.0"
    assert device_gpu.normalise_pci(None) is None and device_gpu.normalise_pci("odd") == "odd"
    assert device_gpu.decode_throttle(0x1 | 0x40) == ["gpu idle", "hardware thermal slowdown"]
    assert device_gpu.decode_throttle(None) is None
