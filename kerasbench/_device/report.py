"""`DeviceReport`: what produced the numbers, and is the GPU really working.

``DeviceReport.collect()`` gathers facts about the host, the software stack
and every visible GPU without running any computation; ``report.check()``
then runs a short health check on each device (correctness of a matmul and a
convolution against NumPy, achieved matmul TFLOP/s against the theoretical
peak, and host/device copy bandwidth on GPUs).

Every probe is wrapped: a missing fact is recorded as ``None`` (printed as
"unknown") and the exception, if any, lands in ``report.probe_errors``.
Importing this module imports neither TensorFlow nor Keras; `collect` does.
docs/device-report.md explains each field and the check's method.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import warnings

from kerasbench._device import peaks as _device_peaks

SCHEMA_VERSION = 1

# Environment variables that change performance or device visibility; a
# report lists the ones that are set.
PERF_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "NVIDIA_VISIBLE_DEVICES",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_XLA_FLAGS",
    "XLA_FLAGS",
    "TF_GPU_ALLOCATOR",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "TF_GPU_THREAD_MODE",
    "TF_GPU_THREAD_COUNT",
    "TF_CUDNN_USE_AUTOTUNE",
    "TF_CUDNN_DETERMINISTIC",
    "TF_DETERMINISTIC_OPS",
    "TF_ENABLE_AUTO_MIXED_PRECISION",
    "TF_FP16_MATMUL_USE_FP32_COMPUTE",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_CPP_MIN_LOG_LEVEL",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "TF_SET_ONEDNN_FPMATH_MODE",
    "KERAS_BACKEND",
    "LD_LIBRARY_PATH",
)

# Relative error tolerances of the health check's correctness tests:
# max|device - reference| / max|reference|, reference in float64 NumPy on the
# very inputs the device got (already rounded to the tested precision).
# "fp32 (TF32)" applies where TensorFlow may run float32 matmuls and
# convolutions on tensor cores in TF32 (10-bit mantissa) mode; "fp32 (oneDNN
# fpmath)" on CPUs where ONEDNN_DEFAULT_FPMATH_MODE / TF_SET_ONEDNN_FPMATH_MODE
# let oneDNN compute float32 ops in bf16, tf32 or fp16.
TOLERANCES = {
    "fp32": 1e-4,
    "fp32 (TF32)": 5e-3,
    "fp32 (oneDNN fpmath)": 3e-2,
    "fp16": 1e-2,
    "bf16": 3e-2,
}

PRECISIONS = ("fp32", "fp16", "bf16")
_TF_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

# Health-check warning thresholds (fraction of the peak, GB/s).
GPU_LOW_FRACTION = 0.2
CPU_LOW_FRACTION = 0.05
GPU_HIGH_FRACTION = 1.1  # above a datasheet peak: the timing or the table is wrong
LOW_COPY_GBPS = 1.0

# Matmul sizes of the throughput test: start, largest, and the shortest call
# worth timing (smaller matrices are grown until one call takes this long).
_CPU_SIZES = (512, 2048, 0.005)
_GPU_SIZES = (4096, 16384, 0.005)
_COPY_BYTES = 256 * 2**20

_CUDA_ERRORS = {
    0: "CUDA_SUCCESS",
    3: "CUDA_ERROR_NOT_INITIALIZED",
    34: "CUDA_ERROR_STUB_LIBRARY",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
    46: "CUDA_ERROR_DEVICES_UNAVAILABLE",
    100: "CUDA_ERROR_NO_DEVICE",
    101: "CUDA_ERROR_INVALID_DEVICE",
    303: "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
    304: "CUDA_ERROR_OPERATING_SYSTEM",
    802: "CUDA_ERROR_SYSTEM_NOT_READY",
    803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}

# NVML clock-event ("throttle") reason bits.
_THROTTLE_BITS = {
    0x1: "gpu idle",
    0x2: "application clocks setting",
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x10: "sync boost",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
    0x100: "display clock setting",
}

_X86_ISA = (
    ("sse2", "SSE2"),
    ("sse4_2", "SSE4.2"),
    ("avx", "AVX"),
    ("fma", "FMA"),
    ("f16c", "F16C"),
    ("avx2", "AVX2"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512f", "AVX-512F"),
    ("avx512bw", "AVX-512BW"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512_fp16", "AVX-512 FP16"),
    ("amx_tile", "AMX-TILE"),
    ("amx_int8", "AMX-INT8"),
    ("amx_bf16", "AMX-BF16"),
    ("amx_fp16", "AMX-FP16"),
)
_ARM_ISA = (
    ("asimd", "NEON"),
    ("asimdhp", "NEON FP16"),
    ("asimddp", "NEON DOTPROD"),
    ("i8mm", "I8MM"),
    ("bf16", "BF16"),
    ("sve", "SVE"),
    ("sve2", "SVE2"),
    ("sme", "SME"),
)
_ARM_PARTS = {
    ("0x41", "0xd0c"): "Arm Neoverse-N1",
    ("0x41", "0xd40"): "Arm Neoverse-V1",
    ("0x41", "0xd49"): "Arm Neoverse-N2",
    ("0x41", "0xd4f"): "Arm Neoverse-V2",
    ("0x41", "0xd08"): "Arm Cortex-A72",
    ("0x41", "0xd0b"): "Arm Cortex-A76",
    ("0xc0", "0xac3"): "Ampere-1",
}


# ----------------------------------------------------------------------------
# Small helpers.


class _Probes:
    """Runs probes, turning an exception into a default and a recorded error."""

    def __init__(self):
        self.errors = {}

    def run(self, key, fn, *args, default=None):
        try:
            return fn(*args)
        except Exception as e:  # a probe must never take the report down
            self.errors[key] = f"{type(e).__name__}: {e}"[:400]
            return default


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _int(text):
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def _float(text):
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def _fmt_bytes(n):
    if n is None:
        return "unknown"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


def _unknown(value, suffix=""):
    return "unknown" if value is None else f"{value}{suffix}"


def _dist_version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _normalise_pci(bus_id):
    """'00000000:0A:00.0' (NVML) and '0000:0a:00.0' (CUDA) -> '0000:0a:00.0'."""
    bus_id = _str(bus_id)
    if not bus_id:
        return None
    bus_id = bus_id.strip().lower()
    domain, sep, rest = bus_id.partition(":")
    if not sep:
        return bus_id
    try:
        return f"{int(domain, 16):04x}:{rest}"
    except ValueError:
        return bus_id


def _cc_tuple(cc):
    """'8.6' -> (8, 6); None or unparsable -> (0, 0)."""
    m = re.match(r"(\d+)\.(\d+)", str(cc or ""))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _decode_throttle(mask):
    if mask is None:
        return None
    return [name for bit, name in _THROTTLE_BITS.items() if mask & bit]


# ----------------------------------------------------------------------------
# Host probes. The parsers take text so that tests can feed them samples.


def parse_cpuinfo(text):
    """Parses /proc/cpuinfo text into the facts the report needs.

    Args:
        text: Contents of /proc/cpuinfo (x86 or Arm layout).

    Returns:
        A dict with ``model``, ``vendor``, ``family``, ``flags`` (set),
        ``mhz`` (the highest "cpu MHz"), ``physical_cores`` (distinct
        physical id/core id pairs, or None when the file has none),
        ``sockets`` and ``logical`` (processor entries).
    """
    blocks = [b for b in re.split(r"\n\s*\n", text or "") if b.strip()]
    info = dict(model=None, vendor=None, family=None, flags=set(), mhz=None,
                physical_cores=None, sockets=None, logical=0)
    cores, sockets, arm_part = set(), set(), None
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if "processor" in fields and fields["processor"].isdigit():
            info["logical"] += 1
        info["model"] = info["model"] or fields.get("model name")
        info["vendor"] = info["vendor"] or fields.get("vendor_id")
        if info["family"] is None and "cpu family" in fields:
            info["family"] = _int(fields["cpu family"])
        flags = fields.get("flags") or fields.get("features")
        if flags:
            info["flags"].update(flags.split())
        mhz = _float(fields.get("cpu mhz"))
        if mhz and (info["mhz"] is None or mhz > info["mhz"]):
            info["mhz"] = mhz
        if "physical id" in fields and "core id" in fields:
            cores.add((fields["physical id"], fields["core id"]))
            sockets.add(fields["physical id"])
        if "cpu implementer" in fields and "cpu part" in fields:
            arm_part = (fields["cpu implementer"].lower(), fields["cpu part"].lower())
    if cores:
        info["physical_cores"] = len(cores)
        info["sockets"] = len(sockets)
    if info["model"] is None and arm_part is not None:
        info["model"] = _ARM_PARTS.get(arm_part, "Arm CPU (implementer %s, part %s)" % arm_part)
    return info


def isa_names(flags, machine):
    """Maps CPU flags to the instruction-set names the report shows.

    Args:
        flags: Flag words from /proc/cpuinfo (``flags`` on x86, ``Features``
            on Arm).
        machine: ``platform.machine()``, e.g. ``"x86_64"`` or ``"aarch64"``.

    Returns:
        The deep-learning-relevant instruction sets present, in a fixed order.
    """
    flags = set(flags or ())
    arm = str(machine).lower() in ("aarch64", "arm64") or "asimd" in flags
    table = _ARM_ISA if arm else _X86_ISA
    return [name for flag, name in table if flag in flags]


def parse_meminfo(text):
    """Returns ``(total_bytes, available_bytes)`` from /proc/meminfo text."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    return values.get("MemTotal"), values.get("MemAvailable")


def _cpu_caches():
    caches = {}
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        level = _int(_read(os.path.join(index, "level")))
        kind = (_read(os.path.join(index, "type")) or "").strip()
        size = (_read(os.path.join(index, "size")) or "").strip().upper()
        m = re.fullmatch(r"(\d+)([KMG]?)", size)
        if level is None or not m:
            continue
        scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        caches[name] = int(m.group(1)) * scale
    return caches


def _sysfs_topology():
    cores, packages = set(), set()
    for cpu in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology"):
        package = _read(os.path.join(cpu, "physical_package_id"))
        core = _read(os.path.join(cpu, "core_id"))
        if package is None or core is None:
            continue
        cores.add((package.strip(), core.strip()))
        packages.add(package.strip())
    return (len(cores) or None), (len(packages) or None)


def _cgroup_limits():
    """Returns ``(cpu_quota, memory_limit_bytes)``; None where unlimited."""
    quota = None
    text = _read("/sys/fs/cgroup/cpu.max")
    if text:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            quota = int(parts[0]) / int(parts[1])
    else:
        q = _int(_read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"))
        p = _int(_read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
        if q and p and q > 0:
            quota = q / p
    limit = _int(_read("/sys/fs/cgroup/memory.max"))
    if limit is None:
        limit = _int(_read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    if limit is not None and limit >= 2**60:
        limit = None
    return quota, limit


def _cpu_max_mhz():
    values = []
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        khz = _int(_read(path))
        if khz:
            values.append(khz / 1000)
    return max(values) if values else None


def _virtualization(flags):
    """Returns ``(container, virtual_machine, hypervisor)``."""
    container = None
    if os.path.exists("/.dockerenv"):
        container = "docker"
    elif os.path.exists("/run/.containerenv"):
        container = "podman"
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        container = "kubernetes"
    else:
        cgroup = _read("/proc/1/cgroup") or ""
        for word in ("kubepods", "docker", "containerd", "libpod", "lxc"):
            if word in cgroup:
                container = {"kubepods": "kubernetes", "libpod": "podman"}.get(word, word)
                break
        else:
            container = os.environ.get("container") or None
    release = platform.release().lower()
    if "microsoft" in release or "wsl" in release:
        return container, True, "WSL (Hyper-V)"
    vendor = " ".join(
        filter(None, (_read("/sys/class/dmi/id/sys_vendor"),
                      _read("/sys/class/dmi/id/product_name")))
    ).strip()
    known = ("QEMU", "KVM", "VMware", "VirtualBox", "innotek", "Xen", "Amazon EC2",
             "Google Compute Engine", "Virtual Machine", "OpenStack", "Bochs")
    hypervisor = next((vendor for word in known if word.lower() in vendor.lower()), None)
    xen = (_read("/sys/hypervisor/type") or "").strip()
    hypervisor = hypervisor or (xen or None)
    if "hypervisor" in flags or hypervisor:
        return container, True, hypervisor
    if sys.platform.startswith("linux") and flags:
        return container, False, None
    return container, None, None


def _darwin_sysctl(key):
    out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() or None if out.returncode == 0 else None


def _collect_host(probes):
    host = HostInfo()
    host.architecture = platform.machine() or None
    host.logical_cores = os.cpu_count()
    host.os = platform.system() or None
    host.kernel = platform.release() or None
    host.python_version = platform.python_version()
    host.python_implementation = platform.python_implementation()

    def os_release():
        if hasattr(platform, "freedesktop_os_release"):
            return platform.freedesktop_os_release().get("PRETTY_NAME")
        return None

    if host.os == "Linux":
        host.os_release = probes.run("host.os_release", os_release)
    elif host.os == "Darwin":
        host.os_release = "macOS " + platform.mac_ver()[0]
    elif host.os == "Windows":
        host.os_release = f"Windows {platform.version()}"
    if hasattr(os, "sched_getaffinity"):
        host.usable_cpus = probes.run("host.usable_cpus", lambda: len(os.sched_getaffinity(0)))

    cpuinfo = probes.run("host.cpuinfo", parse_cpuinfo, _read("/proc/cpuinfo"), default={}) or {}
    flags = cpuinfo.get("flags") or set()
    host.cpu_model = cpuinfo.get("model")
    host.cpu_vendor = cpuinfo.get("vendor")
    host.cpu_family = cpuinfo.get("family")
    host.cpu_mhz = cpuinfo.get("mhz")
    host.isa = isa_names(flags, host.architecture)
    cores, sockets = probes.run("host.topology", _sysfs_topology, default=(None, None))
    host.physical_cores = cores or cpuinfo.get("physical_cores")
    host.sockets = sockets or cpuinfo.get("sockets")
    nodes = glob.glob("/sys/devices/system/node/node[0-9]*")
    host.numa_nodes = len(nodes) or None
    host.cpu_max_mhz = probes.run("host.cpu_max_mhz", _cpu_max_mhz)
    host.caches = probes.run("host.caches", _cpu_caches, default={}) or {}
    if "SVE" in host.isa:
        vl = _int(_read("/proc/sys/abi/sve_default_vector_length"))
        host.sve_vector_bits = vl * 8 if vl else None
    host.memory_total_bytes, host.memory_available_bytes = probes.run(
        "host.meminfo", parse_meminfo, _read("/proc/meminfo"), default=(None, None)
    )
    if host.memory_total_bytes is None and hasattr(os, "sysconf"):
        def sysconf_memory():
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            avail = None
            if "SC_AVPHYS_PAGES" in os.sysconf_names:
                avail = os.sysconf("SC_AVPHYS_PAGES") * page
            return total, avail

        host.memory_total_bytes, host.memory_available_bytes = probes.run(
            "host.sysconf_memory", sysconf_memory, default=(None, None)
        )
    host.cpu_quota, limit = probes.run("host.cgroup", _cgroup_limits, default=(None, None))
    if limit is not None and (host.memory_total_bytes is None or limit < host.memory_total_bytes):
        host.memory_limit_bytes = limit
    if host.os == "Darwin":
        host.cpu_model = host.cpu_model or probes.run(
            "host.sysctl", _darwin_sysctl, "machdep.cpu.brand_string")
        host.physical_cores = host.physical_cores or _int(
            probes.run("host.sysctl", _darwin_sysctl, "hw.physicalcpu"))
        host.memory_total_bytes = host.memory_total_bytes or _int(
            probes.run("host.sysctl", _darwin_sysctl, "hw.memsize"))
    if host.cpu_model is None:
        host.cpu_model = platform.processor() or None
    host.container, host.virtual_machine, host.hypervisor = probes.run(
        "host.virtualization", _virtualization, flags, default=(None, None, None)
    )
    host.peak = probes.run("host.peak", _host_peak, host)
    return host


def _host_peak(host):
    cores = [c for c in (host.physical_cores, host.usable_cpus) if c]
    cores = min(cores) if cores else host.logical_cores
    if cores and host.cpu_quota and host.cpu_quota < cores:
        cores = round(host.cpu_quota, 2)
    if host.cpu_max_mhz:
        mhz, source = host.cpu_max_mhz, "max clock from cpufreq"
    elif host.cpu_mhz:
        mhz, source = host.cpu_mhz, "current clock, 'cpu MHz' in /proc/cpuinfo"
    else:
        m = re.search(r"@\s*([\d.]+)\s*GHz", host.cpu_model or "")
        mhz, source = None, ""
        if m:
            mhz, source = float(m.group(1)) * 1000, "base clock in the model name"
    return _device_peaks.estimate_cpu_peak(
        cores, mhz, host.isa, host.cpu_vendor, host.cpu_family,
        host.sve_vector_bits, source,
    )


# ----------------------------------------------------------------------------
# Software probes.

_TF_DISTRIBUTIONS = (
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
    "tensorflow-macos", "tensorflow-rocm", "intel-tensorflow", "tf-nightly",
    "tf-nightly-cpu",
)
_EXTRA_DISTRIBUTIONS = (
    "nvidia-ml-py", "nvidia-cudnn-cu12", "nvidia-cublas-cu12",
    "nvidia-cuda-runtime-cu12", "tensorflow-metal",
)


def _keras_backend_from_config():
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        return backend
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    text = _read(os.path.join(base, "keras.json"))
    if text:
        return json.loads(text).get("backend")
    return "tensorflow"


def _backend_devices(backend):
    """Devices of a non-TensorFlow Keras backend, when it is already loaded."""
    if backend == "jax" and "jax" in sys.modules:
        return [f"{d.platform}:{d.id}" for d in sys.modules["jax"].devices()]
    if backend == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu"] + [f"cuda:{i}" for i in range(n)]
    if backend == "numpy":
        return ["cpu"]
    return None


def _onednn_enabled(tf_module):
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def _collect_software(probes, tf, keras):
    sw = SoftwareInfo()
    versions = {
        "tensorflow": getattr(tf, "__version__", None) if tf else None,
        "keras": getattr(keras, "__version__", None) if keras else None,
        "numpy": None,
        "tensorboard": probes.run("software.tensorboard", _dist_version, "tensorboard"),
    }
    np = probes.run("software.numpy", lambda: __import__("numpy"))
    versions["numpy"] = getattr(np, "__version__", None)
    from kerasbench._version import __version__ as kb_version

    versions["kerasbench"] = kb_version
    for name in _EXTRA_DISTRIBUTIONS:
        v = probes.run("software.versions", _dist_version, name)
        if v:
            versions[name] = v
    sw.versions = versions
    sw.tensorflow_distributions = [
        d for d in _TF_DISTRIBUTIONS if probes.run("software.versions", _dist_version, d)
    ]
    if keras is not None:
        sw.keras_backend = probes.run("software.keras_backend", keras.config.backend)
        sw.mixed_precision_policy = probes.run(
            "software.mixed_precision", lambda: keras.config.dtype_policy().name
        )
    else:
        sw.keras_backend = probes.run("software.keras_backend", _keras_backend_from_config)
    if sw.keras_backend and sw.keras_backend != "tensorflow":
        sw.keras_backend_devices = probes.run(
            "software.keras_backend_devices", _backend_devices, sw.keras_backend
        )
    if tf is not None:
        build = probes.run("software.build_info", lambda: dict(tf.sysconfig.get_build_info()))
        if build is not None:
            sw.tf_build = {
                k: (list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in build.items()
                if k in ("is_cuda_build", "is_rocm_build", "cuda_version",
                         "cudnn_version", "cuda_compute_capabilities")
            }
            if build.get("is_cuda_build"):
                sw.tf_build_kind = "CUDA"
            elif build.get("is_rocm_build"):
                sw.tf_build_kind = "ROCm"
            else:
                sw.tf_build_kind = "CPU-only"
        sw.onednn = probes.run("software.onednn", _onednn_enabled, tf)
        jit = probes.run("software.xla_jit", tf.config.optimizer.get_jit)
        sw.xla_jit = (str(jit) if jit else "off") if jit is not None else None
        sw.tensor_float_32 = probes.run(
            "software.tf32", tf.config.experimental.tensor_float_32_execution_enabled
        )

        def determinism():
            from tensorflow.python.framework import config as tf_config

            return bool(tf_config.is_op_determinism_enabled())

        sw.op_determinism = probes.run("software.op_determinism", determinism)
        sw.intra_op_threads = probes.run(
            "software.threads", tf.config.threading.get_intra_op_parallelism_threads
        )
        sw.inter_op_threads = probes.run(
            "software.threads", tf.config.threading.get_inter_op_parallelism_threads
        )
    sw.env = {k: os.environ[k] for k in PERF_ENV_VARS if k in os.environ}
    return sw


# ----------------------------------------------------------------------------
# GPU probes: TensorFlow (what a benchmark can use), the CUDA driver API
# through ctypes (why TensorFlow may see nothing), and NVML / nvidia-smi
# (driver version, clocks, power, utilisation).


def _probe_cuda_driver():
    """Loads libcuda and asks it directly, without TensorFlow."""
    import ctypes

    out = dict(libcuda=None, libcuda_error=None, cuda_driver_version=None,
               cuinit=None, cuda_device_count=None, devices=[])
    if sys.platform.startswith("linux"):
        names = ("libcuda.so.1", "libcuda.so")
    elif sys.platform == "win32":
        names = ("nvcuda.dll",)
    else:
        out["libcuda_error"] = f"no CUDA driver exists for {sys.platform}"
        return out
    lib, errors = None, []
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            out["libcuda"] = name
            break
        except OSError as e:
            errors.append(str(e))
    if lib is None:
        out["libcuda_error"] = f"{names[0]} cannot be loaded ({errors[0]})"
        return out
    version = ctypes.c_int(0)
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
        out["cuda_driver_version"] = f"{version.value // 1000}.{version.value % 1000 // 10}"
    rc = lib.cuInit(0)
    out["cuinit"] = _cuda_error_name(lib, rc)
    if rc != 0:
        return out
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return out
    out["cuda_device_count"] = count.value
    for i in range(count.value):
        dev = ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        info = {}
        buf = ctypes.create_string_buffer(256)
        if lib.cuDeviceGetName(buf, 256, dev) == 0:
            info["model"] = buf.value.decode(errors="replace")
        if lib.cuDeviceGetPCIBusId(buf, 64, dev) == 0:
            info["pci_bus_id"] = _normalise_pci(buf.value.decode())
        total = ctypes.c_size_t(0)
        total_mem = getattr(lib, "cuDeviceTotalMem_v2", None) or lib.cuDeviceTotalMem
        if total_mem(ctypes.byref(total), dev) == 0:
            info["memory_total_bytes"] = total.value
        attr = ctypes.c_int(0)
        values = {}
        for key, code in (("major", 75), ("minor", 76), ("sms", 16)):
            if lib.cuDeviceGetAttribute(ctypes.byref(attr), code, dev) == 0:
                values[key] = attr.value
        if "major" in values and "minor" in values:
            info["compute_capability"] = f"{values['major']}.{values['minor']}"
        info["multiprocessors"] = values.get("sms")
        out["devices"].append(info)
    return out


def _cuda_error_name(lib, rc):
    import ctypes

    name = _CUDA_ERRORS.get(rc)
    if name is None:
        text = ctypes.c_char_p()
        try:
            if lib.cuGetErrorName(rc, ctypes.byref(text)) == 0 and text.value:
                name = text.value.decode()
        except AttributeError:
            pass
    return f"{name or 'CUDA error'} ({rc})" if rc else "CUDA_SUCCESS"


def _probe_nvml():
    """Per-GPU management facts through pynvml (package nvidia-ml-py)."""
    import pynvml as nv

    nv.nvmlInit()
    try:
        def get(fn, *args):
            try:
                return fn(*args)
            except Exception:
                return None

        driver = _str(get(nv.nvmlSystemGetDriverVersion))
        gpus = []
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            g = {"model": _str(get(nv.nvmlDeviceGetName, h))}
            pci = get(nv.nvmlDeviceGetPciInfo, h)
            g["pci_bus_id"] = _normalise_pci(getattr(pci, "busId", None))
            mem = get(nv.nvmlDeviceGetMemoryInfo, h)
            g["memory_total_bytes"] = getattr(mem, "total", None)
            g["memory_free_bytes"] = getattr(mem, "free", None)
            sm, mem_clock = nv.NVML_CLOCK_SM, nv.NVML_CLOCK_MEM
            g["sm_clock_mhz"] = get(nv.nvmlDeviceGetClockInfo, h, sm)
            g["sm_clock_max_mhz"] = get(nv.nvmlDeviceGetMaxClockInfo, h, sm)
            g["memory_clock_mhz"] = get(nv.nvmlDeviceGetClockInfo, h, mem_clock)
            g["memory_clock_max_mhz"] = get(nv.nvmlDeviceGetMaxClockInfo, h, mem_clock)
            draw = get(nv.nvmlDeviceGetPowerUsage, h)
            limit = get(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            g["power_draw_w"] = None if draw is None else round(draw / 1000, 1)
            g["power_limit_w"] = None if limit is None else round(limit / 1000, 1)
            util = get(nv.nvmlDeviceGetUtilizationRates, h)
            g["utilization_gpu_pct"] = getattr(util, "gpu", None)
            g["utilization_memory_pct"] = getattr(util, "memory", None)
            g["temperature_c"] = get(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            g["pcie_gen"] = get(nv.nvmlDeviceGetCurrPcieLinkGeneration, h)
            g["pcie_gen_max"] = get(nv.nvmlDeviceGetMaxPcieLinkGeneration, h)
            g["pcie_width"] = get(nv.nvmlDeviceGetCurrPcieLinkWidth, h)
            g["pcie_width_max"] = get(nv.nvmlDeviceGetMaxPcieLinkWidth, h)
            reasons = None
            for fn in ("nvmlDeviceGetCurrentClocksEventReasons",
                       "nvmlDeviceGetCurrentClocksThrottleReasons"):
                if hasattr(nv, fn):
                    reasons = get(getattr(nv, fn), h)
                    if reasons is not None:
                        break
            g["throttle_reasons"] = _decode_throttle(reasons)
            gpus.append(g)
        return {"driver_version": driver, "gpus": gpus}
    finally:
        try:
            nv.nvmlShutdown()
        except Exception:
            pass


_SMI_FIELDS = (
    ("index", None), ("pci.bus_id", "pci_bus_id"), ("name", "model"),
    ("driver_version", "driver_version"), ("memory.total", "memory_total_mib"),
    ("memory.free", "memory_free_mib"), ("clocks.sm", "sm_clock_mhz"),
    ("clocks.max.sm", "sm_clock_max_mhz"), ("clocks.mem", "memory_clock_mhz"),
    ("clocks.max.mem", "memory_clock_max_mhz"), ("power.draw", "power_draw_w"),
    ("power.limit", "power_limit_w"), ("utilization.gpu", "utilization_gpu_pct"),
    ("utilization.memory", "utilization_memory_pct"),
    ("temperature.gpu", "temperature_c"), ("pcie.link.gen.current", "pcie_gen"),
    ("pcie.link.gen.max", "pcie_gen_max"), ("pcie.link.width.current", "pcie_width"),
    ("pcie.link.width.max", "pcie_width_max"),
)


def parse_nvidia_smi(text, keys):
    """Parses ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``.

    Args:
        text: The command's standard output.
        keys: Report field for each queried column, in order (None to drop
            a column); ``*_mib`` columns become ``*_bytes``.

    Returns:
        A list of per-GPU dicts; "[N/A]"-style values become None.
    """
    gpus = []
    for line in (text or "").strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) != len(keys):
            continue
        g = {}
        for key, value in zip(keys, values):
            if key is None:
                continue
            if value.startswith("[") or value.lower() in ("n/a", ""):
                value = None
            if key.endswith("_mib"):
                mib = _float(value)
                g[key[:-4] + "_bytes"] = None if mib is None else int(mib * 2**20)
            elif key in ("model", "driver_version", "pci_bus_id"):
                g[key] = _normalise_pci(value) if key == "pci_bus_id" else value
            elif key.endswith("_w"):
                g[key] = _float(value)
            else:
                number = _float(value)
                g[key] = None if number is None else int(number)
        gpus.append(g)
    return gpus


def _probe_nvidia_smi():
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    fields = _SMI_FIELDS
    for attempt in (fields, fields[:6]):  # old drivers lack some fields
        query = ",".join(f for f, _ in attempt)
        out = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        )
        if out.returncode == 0:
            gpus = parse_nvidia_smi(out.stdout, [k for _, k in attempt])
            driver = next((g.pop("driver_version") for g in gpus if "driver_version" in g), None)
            for g in gpus:
                g.pop("driver_version", None)
            return {"driver_version": driver, "gpus": gpus}
    raise RuntimeError(f"nvidia-smi failed: {(out.stderr or out.stdout).strip()[:200]}")


def _probe_tf_gpus(tf):
    """TensorFlow's GPUs: (physical count, visible list of (index, details))."""
    physical = tf.config.list_physical_devices("GPU")
    visible = tf.config.get_visible_devices("GPU")
    gpus = []
    for logical, dev in enumerate(visible):
        details = {}
        try:
            details = dict(tf.config.experimental.get_device_details(dev))
        except Exception:
            pass
        try:
            growth = bool(tf.config.experimental.get_memory_growth(dev))
        except Exception:
            growth = None
        cc = details.get("compute_capability")
        gpus.append(dict(
            name=f"gpu:{logical}",
            tf_device=dev.name,
            physical_index=physical.index(dev) if dev in physical else logical,
            model=details.get("device_name"),
            compute_capability=(f"{cc[0]}.{cc[1]}" if isinstance(cc, (tuple, list)) else _str(cc)),
            memory_growth=growth,
        ))
    return len(physical), gpus


def _merge_gpu(gpu, driver_dev, mgmt_dev):
    sources = ["tensorflow"]
    for src, name in ((driver_dev, "cuda-driver"), (mgmt_dev, "nvml")):
        if not src:
            continue
        sources.append(name)
        for key, value in src.items():
            if value is not None and getattr(gpu, key, None) is None and hasattr(gpu, key):
                setattr(gpu, key, value)
    gpu.sources = sources


def _collect_gpus(probes, tf):
    """Returns (accelerators, gpu_driver facts, tf_physical_count)."""
    driver = probes.run("gpu.cuda_driver", _probe_cuda_driver, default={}) or {}
    files = sorted(os.path.basename(p) for p in glob.glob("/dev/nvidia*"))
    facts = dict(
        libcuda=driver.get("libcuda"), libcuda_error=driver.get("libcuda_error"),
        cuda_driver_version=driver.get("cuda_driver_version"),
        cuinit=driver.get("cuinit"), cuda_device_count=driver.get("cuda_device_count"),
        cuda_devices=driver.get("devices") or [], device_files=files,
        driver_version=None, management=None,
        management_error=None, gpus_on_system=None, system_gpu_models=[],
    )
    mgmt = None
    if driver.get("libcuda") or files:
        try:
            mgmt = _probe_nvml()
            facts["management"] = "nvml"
        except ImportError:
            facts["management_error"] = "pynvml (package nvidia-ml-py) is not installed"
        except Exception as e:
            facts["management_error"] = f"NVML: {type(e).__name__}: {e}"[:300]
        if mgmt is None:
            try:
                mgmt = _probe_nvidia_smi()
                if mgmt is not None:
                    facts["management"] = "nvidia-smi"
            except Exception as e:
                probes.errors["gpu.nvidia_smi"] = f"{type(e).__name__}: {e}"[:300]
    if mgmt:
        facts["driver_version"] = mgmt.get("driver_version")
        facts["gpus_on_system"] = len(mgmt["gpus"])
        facts["system_gpu_models"] = [g.get("model") for g in mgmt["gpus"]]

    tf_physical, tf_gpus = 0, []
    if tf is not None:
        tf_physical, tf_gpus = probes.run("gpu.tensorflow", _probe_tf_gpus, tf, default=(0, []))
    driver_devs = driver.get("devices") or []
    mgmt_devs = (mgmt or {}).get("gpus") or []
    by_pci = {g.get("pci_bus_id"): g for g in mgmt_devs if g.get("pci_bus_id")}
    accelerators = []
    for t in tf_gpus:
        gpu = GpuInfo(**{k: v for k, v in t.items() if k != "physical_index"})
        d = driver_devs[t["physical_index"]] if t["physical_index"] < len(driver_devs) else None
        m = by_pci.get((d or {}).get("pci_bus_id"))
        if m is None and len(mgmt_devs) == len(driver_devs or tf_gpus) and \
                "CUDA_VISIBLE_DEVICES" not in os.environ and t["physical_index"] < len(mgmt_devs):
            m = mgmt_devs[t["physical_index"]]
        _merge_gpu(gpu, d, m)
        gpu.driver_version = facts["driver_version"]
        peak = _device_peaks.gpu_peak(gpu.model)
        gpu.peak = peak
        accelerators.append(gpu)
    return accelerators, facts, tf_physical


def explain_no_gpu(facts):
    """Says in plain words why no GPU is usable, from collected facts.

    Args:
        facts: A dict with any of: ``platform`` (``sys.platform``),
            ``tf_error``, ``tf_version``, ``tf_distributions``, ``tf_build``
            (build-info dict), ``keras_backend``, ``keras_backend_devices``,
            ``cuda_visible_devices`` (the variable's value, or None when
            unset), ``driver`` (the report's ``gpu_driver`` dict, whose
            ``cuda_devices`` give compute capabilities),
            ``tf_physical_gpus``, ``container``.

    Returns:
        One or more sentences, most likely cause first.
    """
    parts = []
    backend = facts.get("keras_backend")
    if backend and backend != "tensorflow":
        devs = facts.get("keras_backend_devices")
        parts.append(
            f"The Keras backend is {backend!r}, not 'tensorflow'"
            + (f" (its devices: {', '.join(devs)})" if devs else "")
            + "; kerasbench lists and checks TensorFlow's devices."
        )
    build = facts.get("tf_build") or {}
    driver = facts.get("driver") or {}
    tf_version = facts.get("tf_version") or ""
    plat = facts.get("platform") or sys.platform
    seen = driver.get("gpus_on_system")
    models = [m for m in driver.get("system_gpu_models") or [] if m]
    there = ""
    if seen:
        there = f" The driver reports {seen} GPU(s) on this machine ({', '.join(models)})."
    tf_error = facts.get("tf_error")
    if tf_error:
        parts.append(f"TensorFlow cannot be imported ({tf_error})." + there)
        return " ".join(parts)
    if build and not build.get("is_cuda_build") and not build.get("is_rocm_build"):
        dists = ", ".join(facts.get("tf_distributions") or []) or "tensorflow"
        text = (f"This TensorFlow {tf_version} ({dists}) is a CPU-only build: "
                "it has no CUDA support.")
        if plat == "darwin":
            text += " On macOS, Apple GPUs need the tensorflow-metal plugin."
        elif plat == "win32":
            text += " TensorFlow 2.11 and later have no GPU support on native Windows; use WSL2."
        else:
            text += " Install the CUDA build: pip install 'tensorflow[and-cuda]'."
        parts.append(text + there)
        return " ".join(parts)
    cvd = facts.get("cuda_visible_devices")
    count = driver.get("cuda_device_count")
    cuinit = driver.get("cuinit") or ""
    built = ""
    if build.get("is_cuda_build"):
        built = (f"TensorFlow {tf_version} is a CUDA build (CUDA {build.get('cuda_version')}, "
                 f"cuDNN {build.get('cudnn_version')}), but ")
    cvd_empty = cvd is not None and cvd.strip() in ("", "-1", "none", "NoDevFiles")
    cvd_note = (f" (CUDA_VISIBLE_DEVICES={cvd!r} would hide them anyway.)" if cvd_empty else "")
    if build.get("is_rocm_build"):
        kfd = os.path.exists("/dev/kfd")
        parts.append(
            f"TensorFlow {tf_version} is a ROCm build but found no AMD GPU"
            + ("" if kfd else " (there is no /dev/kfd: the ROCm kernel driver is not loaded)")
            + "."
        )
        return " ".join(parts)
    if driver and driver.get("libcuda") is None:
        files = driver.get("device_files") or []
        text = (f"{built}there is no NVIDIA driver: "
                f"{driver.get('libcuda_error') or 'libcuda cannot be loaded'}")
        if not files and plat.startswith("linux"):
            text += ", and there are no /dev/nvidia* device files"
        text += "."
        if facts.get("container"):
            text += (f" This runs in a {facts['container']} container: if the host has a GPU,"
                     " start the container with GPU access (e.g. docker run --gpus all).")
        else:
            text += " This machine has no usable NVIDIA GPU, or its driver is not installed."
        parts.append(text[0].upper() + text[1:] + there + cvd_note)
        return " ".join(parts)
    cuda_found_none = count == 0 or "NO_DEVICE" in cuinit
    if cvd is not None and (cvd_empty or (cuda_found_none and seen)):
        text = (f"{built}CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU from CUDA"
                " (unset it, or list GPU indices such as '0').")
        parts.append(text[0].upper() + text[1:] + there)
        return " ".join(parts)
    if cuinit and cuinit != "CUDA_SUCCESS":
        hints = {
            "NO_DEVICE": "the driver is loaded but finds no CUDA-capable device",
            "INSUFFICIENT_DRIVER":
                "the NVIDIA driver is older than this CUDA version needs; update the driver",
            "SYSTEM_DRIVER_MISMATCH":
                "the driver's kernel module and user library have different versions"
                " (reboot after a driver update)",
            "COMPAT_NOT_SUPPORTED":
                "the CUDA forward-compatibility library does not support this GPU",
            "DEVICES_UNAVAILABLE": "the GPUs are busy or in exclusive-process mode",
            "STUB_LIBRARY": "the loaded libcuda is a stub, not the real driver",
        }
        hint = next((h for k, h in hints.items() if k in cuinit), "CUDA could not start")
        text = f"{built}initialising CUDA failed with {cuinit}: {hint}."
        parts.append(text[0].upper() + text[1:] + there)
        return " ".join(parts)
    if count:
        caps = build.get("cuda_compute_capabilities") or []
        driver_caps = [d.get("compute_capability") for d in driver.get("cuda_devices") or []]
        low = ""
        nums = [int(m.group(1)) for c in caps for m in [re.search(r"(\d+)", c)] if m]
        for cc in driver_caps:
            major, minor = _cc_tuple(cc)
            if cc and nums and major * 10 + minor < min(nums):
                low = (f" The GPU's compute capability {cc} is below the lowest this"
                       f" build supports ({caps[0]}).")
                break
        parts.append(
            f"CUDA sees {count} GPU(s) but TensorFlow registered none."
            + (low or " Usually TensorFlow could not load its CUDA libraries (cuDNN,"
               " cuBLAS): install them with pip install 'tensorflow[and-cuda]'."
               " TensorFlow's start-up log names the missing library.")
        )
        return " ".join(parts)
    if facts.get("tf_physical_gpus"):
        parts.append(
            f"TensorFlow found {facts['tf_physical_gpus']} GPU(s) but"
            " tf.config.set_visible_devices() hid them all from this process."
        )
        return " ".join(parts)
    parts.append("No GPU was found; the cause could not be determined." + there)
    return " ".join(parts)


# ----------------------------------------------------------------------------
# Data classes.


class _Record:
    """Base of the report's dataclasses: `from_dict` rebuilds nested records."""

    _NESTED = {}

    @classmethod
    def from_dict(cls, d):
        """Rebuilds the record from `dataclasses.asdict` output (unknown keys ignored)."""
        return _from_dict(cls, d, cls._NESTED)


def _from_dict(cls, d, nested=None):
    if not isinstance(d, dict):
        raise TypeError(
            f"`{cls.__name__}.from_dict` expects a dict. Received: d={d!r:.80} "
            f"of type {type(d).__name__}"
        )
    nested = nested or {}
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        sub = nested.get(f.name)
        if sub is not None and value is not None:
            if isinstance(value, list):
                value = [sub.from_dict(v) for v in value]
            else:
                value = sub.from_dict(value)
        kwargs[f.name] = value
    return cls(**kwargs)


@dataclasses.dataclass
class HostInfo(_Record):
    """The machine: CPU, memory, operating system, virtualisation."""

    cpu_model: str | None = None
    cpu_vendor: str | None = None
    cpu_family: int | None = None
    architecture: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    usable_cpus: int | None = None
    cpu_quota: float | None = None
    sockets: int | None = None
    numa_nodes: int | None = None
    cpu_mhz: float | None = None
    cpu_max_mhz: float | None = None
    isa: list = dataclasses.field(default_factory=list)
    sve_vector_bits: int | None = None
    caches: dict = dataclasses.field(default_factory=dict)
    memory_total_bytes: int | None = None
    memory_available_bytes: int | None = None
    memory_limit_bytes: int | None = None
    os: str | None = None
    os_release: str | None = None
    kernel: str | None = None
    python_version: str | None = None
    python_implementation: str | None = None
    container: str | None = None
    virtual_machine: bool | None = None
    hypervisor: str | None = None
    peak: dict | None = None


@dataclasses.dataclass
class SoftwareInfo(_Record):
    """Versions, build, and the settings that change performance."""

    versions: dict = dataclasses.field(default_factory=dict)
    tensorflow_distributions: list = dataclasses.field(default_factory=list)
    keras_backend: str | None = None
    keras_backend_devices: list | None = None
    tf_build: dict | None = None
    tf_build_kind: str | None = None
    onednn: bool | None = None
    xla_jit: str | None = None
    tensor_float_32: bool | None = None
    op_determinism: bool | None = None
    mixed_precision_policy: str | None = None
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    env: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class GpuInfo(_Record):
    """One GPU TensorFlow can use; ``name`` is what `check` and benchmarks take."""

    name: str | None = None
    tf_device: str | None = None
    model: str | None = None
    compute_capability: str | None = None
    multiprocessors: int | None = None
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_growth: bool | None = None
    pci_bus_id: str | None = None
    driver_version: str | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    utilization_gpu_pct: int | None = None
    utilization_memory_pct: int | None = None
    temperature_c: int | None = None
    pcie_gen: int | None = None
    pcie_gen_max: int | None = None
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    throttle_reasons: list | None = None
    peak: dict | None = None
    sources: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CorrectnessResult(_Record):
    """One op at one precision on one device, against a float64 reference."""

    op: str = ""
    precision: str = ""
    shape: str = ""
    max_rel_error: float | None = None
    tolerance: float | None = None
    passed: bool | None = None
    ran_on: str | None = None
    error: str | None = None


@dataclasses.dataclass
class MatmulResult(_Record):
    """Achieved dense matmul throughput at one precision."""

    precision: str = ""
    n: int | None = None
    iterations: int | None = None
    seconds: float | None = None
    tflops: float | None = None
    peak_tflops: float | None = None
    peak_is_estimate: bool | None = None
    fraction_of_peak: float | None = None
    ran_on: str | None = None
    error: str | None = None


@dataclasses.dataclass
class CopyBandwidth(_Record):
    """Host-to-device and device-to-host copy bandwidth (GB/s, 1e9 bytes/s)."""

    bytes: int | None = None
    host_to_device_gbps: float | None = None
    device_to_host_gbps: float | None = None
    error: str | None = None


@dataclasses.dataclass
class DeviceHealth(_Record):
    """The health check of one device."""

    device: str = ""
    model: str | None = None
    status: str = "OK"
    problems: list = dataclasses.field(default_factory=list)
    correctness: list = dataclasses.field(default_factory=list)
    throughput: list = dataclasses.field(default_factory=list)
    bandwidth: CopyBandwidth | None = None
    notes: list = dataclasses.field(default_factory=list)

    _NESTED = {"correctness": CorrectnessResult, "throughput": MatmulResult,
               "bandwidth": CopyBandwidth}


@dataclasses.dataclass
class HealthCheck(_Record):
    """Result of `DeviceReport.check`.

    Attributes:
        ok: False when any device failed (wrong numbers, an op that errors,
            or a GPU that silently ran the work on the CPU). Warnings (low
            throughput or copy bandwidth) leave it True but are listed.
        status: ``"OK"``, ``"WARNING"`` or ``"FAIL"``.
        problems: Every failure and warning, one sentence each.
        devices: One `DeviceHealth` per checked device.
        elapsed_s: Wall time of the check.
        time_budget_s: The budget the timed loops were sized to.
        tolerances: The correctness tolerances used.
    """

    ok: bool = True
    status: str = "OK"
    problems: list = dataclasses.field(default_factory=list)
    devices: list = dataclasses.field(default_factory=list)
    elapsed_s: float | None = None
    time_budget_s: float | None = None
    tolerances: dict = dataclasses.field(default_factory=lambda: dict(TOLERANCES))

    def to_dict(self):
        """Returns a JSON-serialisable dict (see `from_dict`)."""
        return dataclasses.asdict(self)

    _NESTED = {"devices": DeviceHealth}

    def __str__(self):
        return _format_health(self)


@dataclasses.dataclass
class DeviceReport:
    """What produced the numbers: host, software, accelerators, and health.

    Build one with `DeviceReport.collect()`; `print` it, embed `to_dict()` in
    results, and run `check()` to test every device.

    Attributes:
        host: `HostInfo`.
        software: `SoftwareInfo`.
        accelerators: `GpuInfo` for each GPU TensorFlow can use.
        gpu_unavailable_reason: Plain-words reason no GPU is usable, or None
            when at least one is.
        gpu_driver: Driver-level facts (libcuda, cuInit result, CUDA device
            count, /dev/nvidia* files, NVML driver version, GPUs on the
            system whatever CUDA_VISIBLE_DEVICES says), or None if GPUs were
            not probed.
        notes: Remarks worth reading next to the numbers.
        probe_errors: Probe name -> the exception it raised.
        health: The last `check()` result, or None.

    Example:

    ```python
    report = DeviceReport.collect()
    print(report)
    result = report.check()
    assert result.ok, str(result)
    ```
    """

    schema_version: int = SCHEMA_VERSION
    collected_at: str | None = None
    collect_seconds: float | None = None
    host: HostInfo = dataclasses.field(default_factory=HostInfo)
    software: SoftwareInfo = dataclasses.field(default_factory=SoftwareInfo)
    accelerators: list = dataclasses.field(default_factory=list)
    gpu_unavailable_reason: str | None = None
    gpu_driver: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    probe_errors: dict = dataclasses.field(default_factory=dict)
    health: HealthCheck | None = None

    @classmethod
    def collect(cls, probe_gpus=True):
        """Collects the report. Cheap: no computation runs on any device.

        Imports TensorFlow and Keras (a few seconds the first time in a
        process) and asks the CUDA driver and NVML about GPUs. Listing GPUs
        does not initialise TensorFlow's GPU runtime, so memory growth and
        visible devices can still be configured afterwards.

        Args:
            probe_gpus: Whether to look for GPUs at all. False skips the
                TensorFlow device list, the CUDA driver and NVML; the report
                then lists only the CPU and says GPUs were not probed.

        Returns:
            A `DeviceReport`.

        Raises:
            TypeError: If `probe_gpus` is not a bool.

        Example:

        ```python
        report = DeviceReport.collect()
        print(report.devices)  # e.g. ['cpu', 'gpu:0']
        ```
        """
        if not isinstance(probe_gpus, bool):
            raise TypeError(
                "`probe_gpus` must be a bool. "
                f"Received: probe_gpus={probe_gpus!r} of type {type(probe_gpus).__name__}"
            )
        start = time.perf_counter()
        probes = _Probes()
        report = cls()
        report.collected_at = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        )
        tf, tf_error = _import_tensorflow(probes)
        keras = probes.run("software.keras_import", lambda: __import__("keras"))
        report.host = _collect_host(probes)
        report.software = _collect_software(probes, tf, keras)
        sw, host = report.software, report.host
        if probe_gpus:
            report.accelerators, report.gpu_driver, tf_physical = _collect_gpus(probes, tf)
            if not report.accelerators:
                report.gpu_unavailable_reason = probes.run(
                    "gpu.reason", explain_no_gpu, dict(
                        platform=sys.platform, tf_error=tf_error,
                        tf_version=sw.versions.get("tensorflow"),
                        tf_distributions=sw.tensorflow_distributions,
                        tf_build=sw.tf_build, keras_backend=sw.keras_backend,
                        keras_backend_devices=sw.keras_backend_devices,
                        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
                        driver=report.gpu_driver,
                        tf_physical_gpus=tf_physical, container=host.container,
                    ),
                    default="No GPU was found; the cause could not be determined.",
                )
        else:
            report.gpu_unavailable_reason = (
                "GPUs were not probed (DeviceReport.collect(probe_gpus=False))."
            )
        report.notes = _notes(report)
        report.probe_errors = probes.errors
        report.collect_seconds = round(time.perf_counter() - start, 3)
        return report

    @property
    def devices(self):
        """Device names a benchmark can target: ``["cpu", "gpu:0", ...]``.

        TensorFlow's GPUs; with another Keras backend (JAX, PyTorch), the
        GPUs that backend sees (`backend_gpus`) are added, since Keras models
        run there.
        """
        names = ["cpu"] + [g.name for g in self.accelerators if g.name]
        return names + [g for g in self.backend_gpus if g not in names]

    @property
    def backend_gpus(self):
        """GPUs of a non-TensorFlow Keras backend, as ``"gpu:N"`` names."""
        if self.software.keras_backend in (None, "tensorflow"):
            return []
        out = []
        for d in self.software.keras_backend_devices or []:
            kind, _, index = str(d).partition(":")
            if kind.lower() in ("gpu", "cuda") and index.isdigit():
                out.append(f"gpu:{index}")
        return out

    def to_dict(self):
        """Returns the report as a JSON-serialisable dict with stable keys.

        Returns:
            A dict of plain types; `from_dict` rebuilds an equal report.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a report from `to_dict`'s output (e.g. read from JSON).

        Missing keys take their defaults and unknown keys are ignored, so
        reports written by other versions still load.

        Args:
            d: A dict as returned by `to_dict`.

        Returns:
            A `DeviceReport`.

        Raises:
            TypeError: If `d` (or a nested section) is not a dict.
        """
        if isinstance(d, dict) and isinstance(d.get("schema_version"), int) and \
                d["schema_version"] > SCHEMA_VERSION:
            warnings.warn(
                f"This report has schema version {d['schema_version']}, newer than "
                f"this kerasbench's {SCHEMA_VERSION}; fields it does not know are ignored.",
                stacklevel=2,
            )
        return _from_dict(cls, d, {"host": HostInfo, "software": SoftwareInfo,
                                   "accelerators": GpuInfo, "health": HealthCheck})

    def to_json(self, indent=2):
        """Returns `to_dict()` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls, text):
        """Rebuilds a report from `to_json`'s output."""
        return cls.from_dict(json.loads(text))

    def __str__(self):
        return _format_report(self)

    def check(self, devices=None, time_budget_s=4.0, precisions=None):
        """Runs the health check on each device and stores it in `health`.

        For each device: (a) a matmul and a 3x3 convolution at each precision
        are compared with a float64 NumPy reference (tolerances in
        `TOLERANCES`); (b) dense matmul throughput is timed per precision,
        TFLOP/s = 2*N^3*iterations/seconds, next to the peak where known; (c)
        on GPUs, host-to-device and device-to-host copy bandwidth is timed.
        Note that the first use of a GPU initialises TensorFlow's GPU runtime,
        which by default reserves most of the GPU's memory for this process.

        Args:
            devices: None for every device in `devices`, or a name or list of
                names from it (``"cpu"``, ``"gpu:0"``; ``"gpu"`` means all
                GPUs).
            time_budget_s: Seconds the timed loops are sized to, shared among
                devices (one-off start-up costs such as initialising the GPU
                runtime come on top).
            precisions: Subset of ``("fp32", "fp16", "bf16")``; None for all.

        Returns:
            A `HealthCheck`; ``str()`` of it starts with "OK" or says what is
            wrong.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If a device is not available, the budget is not
                positive, or a precision is unknown.

        Example:

        ```python
        result = DeviceReport.collect().check(devices="cpu", time_budget_s=2)
        print(result)
        ```
        """
        names = _validate_devices(devices, self)
        if isinstance(time_budget_s, bool) or not isinstance(time_budget_s, (int, float)):
            raise TypeError(
                "`time_budget_s` must be a number of seconds. "
                f"Received: time_budget_s={time_budget_s!r}"
            )
        if not time_budget_s > 0 or not math.isfinite(time_budget_s):
            raise ValueError(
                "`time_budget_s` must be a positive number of seconds. "
                f"Received: time_budget_s={time_budget_s!r}"
            )
        precisions = _validate_precisions(precisions)
        self.health = run_health_check(self, names, float(time_budget_s), precisions)
        return self.health

    def write_tensorboard(self, log_dir, step=0):
        """Writes the report (and the health check, if run) as text summaries.

        Tags: ``kerasbench/device_report`` (the readable block),
        ``kerasbench/device_report_json`` (`to_json()`), and
        ``kerasbench/health_check`` when `check()` has run.

        Args:
            log_dir: Directory for the event file (created if missing).
            step: Summary step, an int >= 0.

        Raises:
            TypeError: If `log_dir` is not a path or `step` not an int.
            ValueError: If `step` is negative.

        Example:

        ```python
        DeviceReport.collect().write_tensorboard("logs/device")
        ```
        """
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(
                f"`log_dir` must be a path. Received: log_dir={log_dir!r}"
            )
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError(f"`step` must be an int. Received: step={step!r}")
        if step < 0:
            raise ValueError(f"`step` must be >= 0. Received: step={step}")
        import tensorflow as tf

        def code_block(text):
            return "\n".join("    " + line for line in text.splitlines())

        os.makedirs(log_dir, exist_ok=True)
        writer = tf.summary.create_file_writer(os.fspath(log_dir))
        try:
            with writer.as_default():
                tf.summary.text("kerasbench/device_report", code_block(str(self)), step=step)
                tf.summary.text("kerasbench/device_report_json", self.to_json(), step=step)
                if self.health is not None:
                    tf.summary.text(
                        "kerasbench/health_check", code_block(str(self.health)), step=step
                    )
            writer.flush()
        finally:
            writer.close()


def available_devices():
    """Device names a benchmark can target on this machine.

    Asks TensorFlow directly (no driver or NVML probes).

    Returns:
        ``["cpu"]`` followed by ``"gpu:<i>"`` for each visible GPU.

    Example:

    ```python
    if "gpu:0" not in available_devices(): ...
    ```
    """
    try:
        import tensorflow as tf

        n = len(tf.config.get_visible_devices("GPU"))
    except Exception:
        n = 0
    return ["cpu"] + [f"gpu:{i}" for i in range(n)]


def _import_tensorflow(probes):
    try:
        import tensorflow as tf

        return tf, None
    except Exception as e:
        message = f"{type(e).__name__}: {e}"[:300]
        probes.errors["software.tensorflow_import"] = message
        return None, message


def _notes(report):
    notes = []
    sw, host = report.software, report.host
    dists = sw.tensorflow_distributions or []
    if len(dists) > 1:
        notes.append(
            f"Several TensorFlow distributions are installed ({', '.join(dists)}); "
            "they share one 'tensorflow' package folder, and the last one installed wins."
        )
    if sw.keras_backend and sw.keras_backend != "tensorflow":
        notes.append(
            f"The Keras backend is {sw.keras_backend!r}: Keras models run there, while "
            "the device list and health check use TensorFlow."
        )
    if sw.tensor_float_32 and any(
        _cc_tuple(g.compute_capability) >= (8, 0) for g in report.accelerators
    ):
        notes.append(
            "TF32 is on: float32 matmuls and convolutions on this GPU run on tensor "
            "cores with a 10-bit mantissa (tf.config.experimental."
            "enable_tensor_float_32_execution(False) turns it off)."
        )
    if sw.xla_jit not in (None, "off"):
        notes.append(f"XLA auto-clustering is on (tf.config.optimizer.get_jit() = {sw.xla_jit!r}).")
    if host.cpu_quota and host.logical_cores and host.cpu_quota < host.logical_cores:
        notes.append(
            f"A cgroup CPU quota limits this process to {host.cpu_quota:g} CPUs of "
            f"{host.logical_cores}."
        )
    if host.memory_limit_bytes:
        notes.append(f"A cgroup memory limit of {_fmt_bytes(host.memory_limit_bytes)} applies.")
    for gpu in report.accelerators:
        slow = [r for r in gpu.throttle_reasons or [] if r not in ("gpu idle",)]
        if slow:
            notes.append(f"{gpu.name} clocks are held down by: {', '.join(slow)}.")
        if gpu.pcie_width and gpu.pcie_width_max and gpu.pcie_width < gpu.pcie_width_max:
            notes.append(
                f"{gpu.name} PCIe link runs at x{gpu.pcie_width} of x{gpu.pcie_width_max}."
            )
    return notes


# ----------------------------------------------------------------------------
# Health check.


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
        ValueError: If a size or the iteration count is not positive, or
            `seconds` is not positive.
    """
    for name, value in (("m", m), ("n", n), ("k", k), ("iterations", iterations)):
        if not value > 0:
            raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    if not seconds > 0:
        raise ValueError(f"`seconds` must be positive. Received: seconds={seconds!r}")
    return 2.0 * m * n * k * iterations / seconds / 1e12


def _validate_devices(devices, report):
    available = report.devices
    if devices is None:
        return list(available)
    if isinstance(devices, str):
        items = [devices]
    elif isinstance(devices, (list, tuple)) and all(isinstance(d, str) for d in devices):
        items = list(devices)
    else:
        raise TypeError(
            "`devices` must be None, a device name or a list of device names "
            f"from {available}. Received: devices={devices!r}"
        )
    names = []
    for item in items:
        name = item.strip().lower().lstrip("/").replace("device:", "")
        if name in ("cpu", "cpu:0"):
            name = "cpu"
        if name == "gpu":
            gpus = [d for d in available if d.startswith("gpu:")]
            if not gpus:
                raise ValueError(
                    f"`devices` must be names from {available}; there is no GPU: "
                    f"{report.gpu_unavailable_reason} Received: devices={devices!r}"
                )
            names.extend(g for g in gpus if g not in names)
            continue
        if name not in available:
            why = f" ({report.gpu_unavailable_reason})" if name.startswith("gpu") and \
                report.gpu_unavailable_reason else ""
            raise ValueError(
                f"`devices` must be names from {available}{why}. "
                f"Received: devices={devices!r}"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(
            f"`devices` must name at least one device from {available}. "
            f"Received: devices={devices!r}"
        )
    return names


def _validate_precisions(precisions):
    if precisions is None:
        return list(PRECISIONS)
    if isinstance(precisions, str):
        precisions = [precisions]
    if not isinstance(precisions, (list, tuple)) or not all(
        isinstance(p, str) for p in precisions
    ):
        raise TypeError(
            f"`precisions` must be None or a list of names from {list(PRECISIONS)}. "
            f"Received: precisions={precisions!r}"
        )
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise ValueError(
            f"`precisions` must be names from {list(PRECISIONS)}. "
            f"Received: precisions={list(precisions)!r}"
        )
    return list(dict.fromkeys(precisions))


def _tf_device(name):
    return "/CPU:0" if name == "cpu" else "/GPU:" + name.split(":")[1]


def _ran_on(tensor):
    """'cpu' or 'gpu:<i>' from an eager tensor's device string."""
    m = re.search(r"device:(\w+):(\d+)", tensor.device or "")
    if not m:
        return None
    kind, index = m.group(1).lower(), m.group(2)
    return "cpu" if kind == "cpu" else f"{kind}:{index}"


def _sync(tensor):
    """Waits for the device to finish the work producing `tensor`.

    Fetches one element to the host, slicing it on the tensor's own device
    (eager TensorFlow would otherwise place the slice on a GPU, copying the
    whole tensor there): the device's stream completes every op queued
    before it, so the host clock then covers all of that work.
    """
    import tensorflow as tf

    index = (0,) * len(tensor.shape)
    with tf.device(tensor.device):
        return tensor[index].numpy()


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


def _fp32_tolerance_key(device, tf32):
    if device != "cpu":
        return "fp32 (TF32)" if tf32 else "fp32"
    mode = (os.environ.get("TF_SET_ONEDNN_FPMATH_MODE")
            or os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE") or "")
    relaxed = mode.strip().upper() in ("BF16", "TF32", "F16", "ANY")
    return "fp32 (oneDNN fpmath)" if relaxed else "fp32"


def _check_correctness(tf, device, precision, tf32_possible, rng):
    import numpy as np

    dtype = getattr(tf, _TF_DTYPES[precision])
    tol_key = _fp32_tolerance_key(device, tf32_possible) if precision == "fp32" else precision
    results = []
    cases = (
        ("matmul", "256x256 @ 256x256",
         lambda: (rng.standard_normal((256, 256)), rng.standard_normal((256, 256)))),
        ("conv2d", "2x16x16x16 * 3x3x16x32 SAME",
         lambda: (rng.standard_normal((2, 16, 16, 16)), rng.standard_normal((3, 3, 16, 32)))),
    )
    for op, shape, make in cases:
        res = CorrectnessResult(op=op, precision=precision, shape=shape,
                                tolerance=TOLERANCES[tol_key])
        try:
            a, b = make()
            with tf.device("/CPU:0"):
                a_t = tf.cast(tf.constant(a, tf.float32), dtype)
                b_t = tf.cast(tf.constant(b, tf.float32), dtype)
            a64 = a_t.numpy().astype(np.float64)  # the rounded inputs
            b64 = b_t.numpy().astype(np.float64)
            with tf.device(_tf_device(device)):
                if op == "matmul":
                    out = tf.matmul(a_t, b_t)
                else:
                    out = tf.nn.conv2d(a_t, b_t, strides=1, padding="SAME")
            res.ran_on = _ran_on(out)
            got = out.numpy().astype(np.float64)
            ref = a64 @ b64 if op == "matmul" else _conv_reference(a64, b64)
            res.max_rel_error = _rel_error(got, ref)
            res.passed = res.max_rel_error <= res.tolerance
            if math.isinf(res.max_rel_error):
                res.max_rel_error = None
                res.error = "result holds NaN or Inf"
        except Exception as e:
            res.passed = False
            res.error = f"{type(e).__name__}: {e}"[:300]
        results.append(res)
    return results


def _time_matmul(tf, device, precision, slot_s, peak, clock=time.perf_counter,
                 sizes=None, repeats=3, max_bytes=None):
    """Times ``n x n`` matmuls at one precision: best of `repeats` blocks.

    The size starts at ``sizes[0]`` and doubles (up to ``sizes[1]``) while
    one product takes less than ``sizes[2]`` seconds. The block length is
    then found like `timeit`'s autorange (1, 2, 4, ... products, each block
    ended by a device sync) and sized so that all blocks fill `slot_s`.
    Growing stops before the three matrices would exceed `max_bytes`.
    """
    import numpy as np

    start_n, max_n, min_call_s = sizes or (_GPU_SIZES if device != "cpu" else _CPU_SIZES)
    dtype = getattr(tf, _TF_DTYPES[precision])
    res = MatmulResult(precision=precision)
    t_begin = clock()

    def block(a, b, iterations):
        t0 = clock()
        for _ in range(iterations):
            c = tf.matmul(a, b)
        _sync(c)
        return clock() - t0, c

    try:
        n = start_n
        rng = np.random.default_rng(0)
        with tf.device(_tf_device(device)):
            while True:
                a = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
                b = tf.cast(tf.constant(rng.standard_normal((n, n), dtype=np.float32)), dtype)
                _sync(tf.matmul(a, b))  # warm-up: kernels, handles, autotuning
                call_s, c = block(a, b, 1)
                res.ran_on = _ran_on(c)
                bigger = 3 * (2 * n) ** 2 * a.dtype.size
                if not (call_s < min_call_s and n * 2 <= max_n
                        and clock() - t_begin < slot_s / 4
                        and (max_bytes is None or bigger <= max_bytes)):
                    break
                n *= 2
            iterations, seconds = 1, call_s
            while (seconds < slot_s / 10 and iterations < 2**14
                   and clock() - t_begin + 2 * seconds < slot_s / 2):
                iterations *= 2
                seconds, c = block(a, b, iterations)
            per_call = seconds / iterations
            left = slot_s - (clock() - t_begin)
            count = min(int(left / repeats / per_call), 100_000)
            if count >= 1:
                best = min(block(a, b, count)[0] for _ in range(repeats))
                iterations, seconds = count, best
        res.n, res.iterations, res.seconds = n, iterations, seconds
        res.tflops = tflops(n, n, n, iterations, seconds)
    except Exception as e:
        res.error = f"{type(e).__name__}: {e}"[:300]
    if peak:
        res.peak_tflops = peak.get(precision)
        res.peak_is_estimate = bool(peak.get("estimate"))
        if res.tflops is not None and res.peak_tflops:
            res.fraction_of_peak = res.tflops / res.peak_tflops
    return res


def _copy_bandwidth(tf, device, budget_s, nbytes, clock=time.perf_counter):
    """Times host->device and device->host copies of `nbytes`; best of several.

    Eager TensorFlow caches ("mirrors") the device copy of a host tensor on
    the tensor's handle, so copying the same handle twice copies once. Each
    round therefore copies a fresh handle: ``tf.identity`` on the CPU, which
    shares the buffer and costs no copy of its own.
    """
    import numpy as np

    res = CopyBandwidth(bytes=nbytes)
    try:
        with tf.device("/CPU:0"):
            host = tf.constant(np.ones(nbytes // 4, np.float32))
        t_begin = clock()
        h2d, d2h = [], []
        while len(h2d) < 2 or (clock() - t_begin < budget_s and len(h2d) < 10):
            with tf.device("/CPU:0"):
                fresh = tf.identity(host)  # a new handle, no mirror yet
            t0 = clock()
            with tf.device(_tf_device(device)):
                dev = tf.identity(fresh)
            _sync(dev)
            h2d.append(clock() - t0)
            t0 = clock()
            with tf.device("/CPU:0"):
                back = tf.identity(dev)
            _sync(back)
            d2h.append(clock() - t0)
        # The first copy of each direction is a warm-up.
        res.host_to_device_gbps = nbytes / min(h2d[1:]) / 1e9
        res.device_to_host_gbps = nbytes / min(d2h[1:]) / 1e9
    except Exception as e:
        res.error = f"{type(e).__name__}: {e}"[:300]
    return res


def _unsupported(correctness, device):
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


def _check_device(tf, report, device, budget_s, precisions):
    import numpy as np

    gpu = next((g for g in report.accelerators if g.name == device), None)
    health = DeviceHealth(device=device, model=_device_model(report, device))
    is_gpu = gpu is not None
    peak = dict(gpu.peak) if is_gpu and gpu.peak else (report.host.peak if not is_gpu else None)
    cc = _cc_tuple(gpu.compute_capability) if is_gpu else (0, 0)
    tf32 = bool(is_gpu and report.software.tensor_float_32 and cc >= (8, 0))
    if tf32 and peak and peak.get("tf32"):
        peak["fp32"] = peak["tf32"]
        health.notes.append("fp32 matmuls run in TF32 on tensor cores; peak is the TF32 figure.")
    run = list(precisions)
    if is_gpu and "bf16" in run and (0, 0) < cc < (8, 0):
        run.remove("bf16")
        health.notes.append(
            f"bf16 skipped: compute capability {gpu.compute_capability} has no bf16 tensor cores."
        )
    rng = np.random.default_rng(12345)
    for precision in run:
        health.correctness.extend(_check_correctness(tf, device, precision, tf32, rng))
    unsupported = _unsupported(health.correctness, device)
    for p in sorted(unsupported):
        health.notes.append(
            f"{p} is not supported on {device} (the op raised or ran on another device)."
        )
    timed = [p for p in run if p not in unsupported]
    share = 0.6 if is_gpu else 0.75
    slot = budget_s * share / max(len(timed), 1)
    max_bytes = None
    if is_gpu:
        memory = gpu.memory_free_bytes or gpu.memory_total_bytes
        max_bytes = memory // 4 if memory else 3 * 8192**2 * 4
    for precision in timed:
        health.throughput.append(
            _time_matmul(tf, device, precision, slot, peak, max_bytes=max_bytes)
        )
    if is_gpu:
        nbytes = _COPY_BYTES
        if gpu.memory_free_bytes and gpu.memory_free_bytes < 8 * nbytes:
            nbytes = max(gpu.memory_free_bytes // 16, 2**20)
        health.bandwidth = _copy_bandwidth(tf, device, budget_s * 0.15, nbytes)
    _judge(health, device, is_gpu, unsupported)
    return health


def _judge(health, device, is_gpu, unsupported=()):
    """Sets `health.status` and `health.problems` from its measurements."""
    fails, warns = [], []
    for c in health.correctness:
        if c.precision in unsupported:
            continue
        wrong_device = c.ran_on is not None and c.ran_on != device
        if wrong_device:
            fails.append(f"{device}: {c.op} {c.precision} ran on {c.ran_on}, not on {device}.")
        elif c.error and c.max_rel_error is None:
            fails.append(f"{device}: {c.op} {c.precision} failed: {c.error}")
        elif not c.passed:
            fails.append(
                f"{device}: {c.op} {c.precision} is wrong: max relative error "
                f"{c.max_rel_error:.2e} exceeds the tolerance {c.tolerance:.0e}."
            )
    low = GPU_LOW_FRACTION if is_gpu else CPU_LOW_FRACTION
    for t in health.throughput:
        if t.precision in unsupported:
            continue
        if t.error:
            fails.append(f"{device}: {t.precision} matmul timing failed: {t.error}")
        elif t.ran_on is not None and t.ran_on != device:
            fails.append(f"{device}: {t.precision} matmul ran on {t.ran_on}, not on {device}.")
        elif is_gpu and t.fraction_of_peak is not None and t.fraction_of_peak > GPU_HIGH_FRACTION:
            warns.append(
                f"{device}: {t.precision} matmul measured {t.tflops:.4g} TFLOP/s, "
                f"{t.fraction_of_peak:.0%} of the datasheet peak {t.peak_tflops:.4g}: the "
                "timing is suspect, or the peak table does not fit this GPU."
            )
        elif t.fraction_of_peak is not None and t.fraction_of_peak < low:
            warns.append(
                f"{device}: {t.precision} matmul reached {t.tflops:.3g} TFLOP/s, only "
                f"{t.fraction_of_peak:.0%} of the {'estimated ' if t.peak_is_estimate else ''}"
                f"peak {t.peak_tflops:g} (clocks held down, another process on the "
                "device, or thermal/power limits?)."
            )
    b = health.bandwidth
    if b is not None:
        if b.error:
            fails.append(f"{device}: copy bandwidth test failed: {b.error}")
        else:
            for label, v in (("host-to-device", b.host_to_device_gbps),
                             ("device-to-host", b.device_to_host_gbps)):
                if v is not None and v < LOW_COPY_GBPS:
                    warns.append(
                        f"{device}: {label} copies run at {v:.2f} GB/s (PCIe link "
                        "narrow or slow?)."
                    )
    health.problems = fails + warns
    health.status = "FAIL" if fails else ("WARNING" if warns else "OK")


def _device_model(report, device):
    gpu = next((g for g in report.accelerators if g.name == device), None)
    return gpu.model if gpu else report.host.cpu_model


def run_health_check(report, devices, time_budget_s, precisions=PRECISIONS):
    """Runs the health check; see `DeviceReport.check` (which validates)."""
    start = time.perf_counter()
    result = HealthCheck(time_budget_s=time_budget_s)
    try:
        import tensorflow as tf
    except Exception as e:
        result.devices = [
            DeviceHealth(device=d, model=_device_model(report, d), status="FAIL",
                         problems=[f"{d}: TensorFlow cannot be imported: {type(e).__name__}: {e}"])
            for d in devices
        ]
    else:
        per_device = time_budget_s / len(devices)
        for device in devices:
            try:
                result.devices.append(_check_device(tf, report, device, per_device, precisions))
            except Exception as e:  # never crash the caller
                result.devices.append(DeviceHealth(
                    device=device, model=_device_model(report, device), status="FAIL",
                    problems=[f"{device}: the check crashed: {type(e).__name__}: {e}"[:400]],
                ))
    for d in result.devices:
        result.problems.extend(d.problems)
    statuses = {d.status for d in result.devices}
    result.status = "FAIL" if "FAIL" in statuses else ("WARNING" if "WARNING" in statuses else "OK")
    result.ok = result.status != "FAIL"
    result.elapsed_s = round(time.perf_counter() - start, 3)
    return result


# ----------------------------------------------------------------------------
# Formatting.


def _fmt_peak(peak):
    if not peak:
        return "unknown"
    parts = [f"{k} {peak[k]:.4g}" for k in ("fp32", "tf32", "fp16", "bf16") if peak.get(k)]
    label = "estimated " if peak.get("estimate") else ""
    return f"{label}{', '.join(parts)} TFLOP/s [{peak.get('source')}]"


def _format_report(r):
    h, s = r.host, r.software
    lines = [f"kerasbench device report ({r.collected_at or 'time unknown'})", "Host"]

    def row(label, value):
        lines.append(f"  {label:<15}{value}")

    cores = f"{_unknown(h.physical_cores)} physical / {_unknown(h.logical_cores)} logical cores"
    if h.usable_cpus is not None and h.usable_cpus != h.logical_cores:
        cores += f", {h.usable_cpus} usable"
    if h.cpu_quota:
        cores += f", quota {h.cpu_quota:g} CPUs"
    if h.sockets and h.sockets > 1:
        cores += f", {h.sockets} sockets"
    if h.numa_nodes and h.numa_nodes > 1:
        cores += f", {h.numa_nodes} NUMA nodes"
    row("CPU", f"{_unknown(h.cpu_model)} ({_unknown(h.architecture)}), {cores}")
    clock = f"{h.cpu_mhz:.0f} MHz current" if h.cpu_mhz else "current unknown"
    clock += f", {h.cpu_max_mhz:.0f} MHz max" if h.cpu_max_mhz else ", max unknown"
    row("Clock", clock)
    row("Vector ISA", ", ".join(h.isa) if h.isa else "unknown")
    if h.caches:
        row("Caches", ", ".join(f"{k} {_fmt_bytes(v)}" for k, v in h.caches.items()))
    else:
        row("Caches", "unknown")
    mem = (f"{_fmt_bytes(h.memory_total_bytes)} total, "
           f"{_fmt_bytes(h.memory_available_bytes)} available")
    if h.memory_limit_bytes:
        mem += f", cgroup limit {_fmt_bytes(h.memory_limit_bytes)}"
    row("Memory", mem)
    row("OS", f"{_unknown(h.os_release or h.os)}, kernel {_unknown(h.kernel)}")
    row("Python", f"{_unknown(h.python_version)} ({_unknown(h.python_implementation)})")
    virt = []
    if h.container:
        virt.append(f"{h.container} container")
    if h.virtual_machine:
        virt.append("virtual machine" + (f" ({h.hypervisor})" if h.hypervisor else ""))
    elif h.virtual_machine is False:
        virt.append("bare metal")
    if not virt:
        virt = ["none detected" if h.os == "Linux" else "unknown"]
    row("Virtualization", ", ".join(virt))
    row("CPU peak", _fmt_peak(h.peak))

    lines.append("Software")
    v = s.versions or {}
    row("Versions", ", ".join(f"{k} {_unknown(v.get(k))}" for k in
                              ("tensorflow", "keras", "numpy", "tensorboard")))
    extra = [f"{k} {val}" for k, val in v.items()
             if k not in ("tensorflow", "keras", "numpy", "tensorboard") and val]
    if extra:
        row("", ", ".join(extra))
    if s.tensorflow_distributions:
        row("TF package", ", ".join(s.tensorflow_distributions))
    row("Keras backend", _unknown(s.keras_backend)
        + (f" (devices: {', '.join(s.keras_backend_devices)})" if s.keras_backend_devices else ""))
    b = s.tf_build or {}
    if s.tf_build_kind == "CUDA":
        build = (f"CUDA build (CUDA {_unknown(b.get('cuda_version'))}, cuDNN "
                 f"{_unknown(b.get('cudnn_version'))}, for "
                 f"{', '.join(b.get('cuda_compute_capabilities') or []) or 'unknown'})")
    else:
        build = _unknown(s.tf_build_kind)
    row("TF build", build)

    def onoff(x):
        return "unknown" if x is None else ("on" if x else "off")

    row("oneDNN", onoff(s.onednn))
    row("XLA JIT", _unknown(s.xla_jit))
    row("Precision", f"policy {_unknown(s.mixed_precision_policy)}, "
        f"TF32 {onoff(s.tensor_float_32)}, op determinism {onoff(s.op_determinism)}")

    def threads(x):
        return "unknown" if x is None else ("0 (TF default)" if x == 0 else str(x))

    row("Threads", f"intra-op {threads(s.intra_op_threads)}, "
        f"inter-op {threads(s.inter_op_threads)}")
    if s.env:
        row("Environment", "; ".join(f"{k}={val}" for k, val in s.env.items()))
    else:
        row("Environment", "no performance variables set")

    lines.append("Accelerators")
    d = r.gpu_driver or {}
    if d:
        drv = []
        drv.append(f"libcuda {d['libcuda']}" if d.get("libcuda") else "libcuda not loadable")
        if d.get("cuda_driver_version"):
            drv.append(f"CUDA driver API {d['cuda_driver_version']}")
        if d.get("cuinit"):
            drv.append(f"cuInit {d['cuinit']}")
        if d.get("driver_version"):
            drv.append(f"driver {d['driver_version']}")
        drv.append(f"/dev/nvidia*: {', '.join(d.get('device_files') or []) or 'none'}")
        if d.get("gpus_on_system") is not None:
            drv.append(f"{d['gpus_on_system']} GPU(s) on the system")
        if d.get("management"):
            drv.append(f"details from {d['management']}")
        elif d.get("management_error"):
            drv.append(d["management_error"])
        row("Driver", "; ".join(drv))
    for g in r.accelerators:
        row(g.name, f"{_unknown(g.model)}, compute capability {_unknown(g.compute_capability)}"
            + (f", {g.multiprocessors} SMs" if g.multiprocessors else ""))
        row("", f"memory {_fmt_bytes(g.memory_total_bytes)} total, "
            f"{_fmt_bytes(g.memory_free_bytes)} free"
            + ("" if g.memory_growth is None
               else f", growth {'on' if g.memory_growth else 'off'}"))
        if g.sm_clock_mhz is not None or g.power_limit_w is not None:
            row("", f"SM clock {_unknown(g.sm_clock_mhz)}/{_unknown(g.sm_clock_max_mhz)} MHz, "
                f"memory clock {_unknown(g.memory_clock_mhz)}/"
                f"{_unknown(g.memory_clock_max_mhz)} MHz, "
                f"power {_unknown(g.power_draw_w)}/{_unknown(g.power_limit_w)} W")
            row("", f"utilisation {_unknown(g.utilization_gpu_pct, '%')} (memory "
                f"{_unknown(g.utilization_memory_pct, '%')}), {_unknown(g.temperature_c, ' C')}, "
                f"PCIe gen {_unknown(g.pcie_gen)} x{_unknown(g.pcie_width)} (max gen "
                f"{_unknown(g.pcie_gen_max)} x{_unknown(g.pcie_width_max)}), "
                f"bus {_unknown(g.pci_bus_id)}")
        row("", f"peak {_fmt_peak(g.peak)}")
    if not r.accelerators and r.backend_gpus:
        row("GPUs", f"{', '.join(r.backend_gpus)} through the {r.software.keras_backend} "
            "backend; TensorFlow's GPU facts and health check are not available: "
            + (r.gpu_unavailable_reason or ""))
    elif not r.accelerators:
        row("GPUs", "none. " + (r.gpu_unavailable_reason or ""))
    row("Devices", ", ".join(r.devices))
    if r.notes:
        lines.append("Notes")
        lines.extend(f"  - {n}" for n in r.notes)
    if r.probe_errors:
        lines.append("Probe errors (facts reported as unknown)")
        lines.extend(f"  - {k}: {v}" for k, v in r.probe_errors.items())
    if r.health is not None:  # one line; str(report.health) has the details
        hc = r.health
        checked = ", ".join(d.device for d in hc.devices) or "no device"
        summary = f"{hc.status} on {checked}"
        if hc.problems:
            summary += f": {len(hc.problems)} problem(s), first: {hc.problems[0]}"
        lines.append(f"Health check: {summary}")
    return "\n".join(_wrap(lines))


def _wrap(lines, width=100):
    import textwrap

    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = len(line) - len(line.lstrip(" "))
        if line.lstrip().startswith("- "):
            sub = " " * (indent + 2)
        elif indent == 2 and len(line) > 17 and line[17] != " ":
            sub = " " * 17
        else:
            sub = " " * (indent + 2)
        out.extend(textwrap.wrap(line, width, subsequent_indent=sub,
                                 break_long_words=False, break_on_hyphens=False))
    return out


def _format_health(hc):
    head = "OK" if hc.status == "OK" else hc.status
    lines = [f"Health check: {head} ({_unknown(hc.elapsed_s)} s, timed loops sized to "
             f"{_unknown(hc.time_budget_s)} s)"]
    for d in hc.devices:
        lines.append(f"  {d.device} ({_unknown(d.model)}): {d.status}")
        for c in d.correctness:
            err = "n/a" if c.max_rel_error is None else f"{c.max_rel_error:.1e}"
            verdict = "ok" if c.passed else "WRONG"
            where = f" on {c.ran_on}" if c.ran_on and c.ran_on != d.device else ""
            lines.append(f"    {c.op:<7}{c.precision:<5} rel. error {err:>8} (tolerance "
                         f"{c.tolerance:.0e}) {verdict}{where}"
                         + (f" [{c.error}]" if c.error else ""))
        for t in d.throughput:
            if t.error:
                lines.append(f"    matmul {t.precision:<5} throughput: error [{t.error}]")
                continue
            peak = "peak unknown"
            if t.peak_tflops:
                label = "estimated peak" if t.peak_is_estimate else "peak"
                peak = f"{t.fraction_of_peak:.0%} of {label} {t.peak_tflops:.4g}"
            lines.append(f"    matmul {t.precision:<5} {t.tflops:.3f} TFLOP/s  ({t.n}^3 x "
                         f"{t.iterations} in {t.seconds:.3f} s; {peak})")
        b = d.bandwidth
        if b is not None:
            if b.error:
                lines.append(f"    copies: error [{b.error}]")
            else:
                lines.append(f"    copies ({_fmt_bytes(b.bytes)}): host->device "
                             f"{b.host_to_device_gbps:.1f} GB/s, device->host "
                             f"{b.device_to_host_gbps:.1f} GB/s")
        for n in d.notes:
            lines.append(f"    note: {n}")
    if hc.problems:
        lines.append("Problems:")
        lines.extend(f"  - {p}" for p in hc.problems)
    return "\n".join(_wrap(lines))

