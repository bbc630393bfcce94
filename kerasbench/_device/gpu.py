"""GPU probes: the CUDA driver, NVML, nvidia-smi and TensorFlow's GPU list.

The backend's list (TensorFlow's here, JAX's and PyTorch's in ``backends``)
says what a benchmark can use; the CUDA driver API (through ctypes, no
toolkit needed) says why the backend may see nothing; NVML, or nvidia-smi
without it, gives the driver version, clocks, power and utilisation.
`collect_gpus` merges them per GPU, matched by PCI bus id.

Each probe takes what it talks to as an argument (a driver object, the
``pynvml`` module, a command runner, the ``tensorflow`` module), so stand-ins
can replace the real ones.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
import sys

from kerasbench._device import peaks
from kerasbench._device.probing import call_with_timeout, describe_error, to_float, to_str
from kerasbench._device.records import GpuInfo

CUDA_ERRORS = {
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
THROTTLE_BITS = {
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

# nvidia-smi --query-gpu fields and the report field of each (None: dropped).
SMI_FIELDS = (
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

# cuDeviceGetAttribute codes.
_ATTRIBUTES = (("major", 75), ("minor", 76), ("sms", 16))


def normalise_pci(bus_id):
    """'00000000:0A:00.0' (NVML) and '0000:0a:00.0' (CUDA) -> '0000:0a:00.0'."""
    bus_id = to_str(bus_id)
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


def cc_tuple(cc):
    """Compute capability '8.6' -> (8, 6); None or unparsable -> (0, 0)."""
    m = re.match(r"(\d+)\.(\d+)", str(cc or ""))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def decode_throttle(mask):
    """NVML clock-event reason bits -> their names; None stays None."""
    if mask is None:
        return None
    return [name for bit, name in THROTTLE_BITS.items() if mask & bit]


# ----------------------------------------------------------------------------
# The CUDA driver API.


class CudaDriverApi:
    """The CUDA driver API calls the report makes, on a library loaded by ctypes.

    Every method returns plain Python values (None where the call failed),
    so a stand-in with the same methods can replace it.
    """

    def __init__(self, lib):
        self._lib = lib

    @classmethod
    def load(cls, name):
        """Loads the driver library `name`; raises OSError when it cannot."""
        return cls(ctypes.CDLL(name))

    def _out_int(self, fn, *args):
        value = ctypes.c_int(0)
        return value.value if fn(ctypes.byref(value), *args) == 0 else None

    def driver_version(self):
        """The highest CUDA version the driver supports, as 13000 for 13.0."""
        return self._out_int(self._lib.cuDriverGetVersion) or None

    def init(self):
        """``cuInit(0)``'s result code (0 on success)."""
        return self._lib.cuInit(0)

    def error_name(self, code):
        """The driver's own name for an error code, or None."""
        text = ctypes.c_char_p()
        get_name = getattr(self._lib, "cuGetErrorName", None)
        if get_name is not None and get_name(code, ctypes.byref(text)) == 0 and text.value:
            return text.value.decode()
        return None

    def device_count(self):
        """Number of CUDA devices, or None."""
        return self._out_int(self._lib.cuDeviceGetCount)

    def device(self, index):
        """Facts of device `index`: model, pci_bus_id, memory, compute capability, SMs."""
        dev = self._out_int(self._lib.cuDeviceGet, index)
        if dev is None:
            return None
        info, buf = {}, ctypes.create_string_buffer(256)
        if self._lib.cuDeviceGetName(buf, 256, dev) == 0:
            info["model"] = buf.value.decode(errors="replace")
        if self._lib.cuDeviceGetPCIBusId(buf, 64, dev) == 0:
            info["pci_bus_id"] = normalise_pci(buf.value.decode())
        total = ctypes.c_size_t(0)
        total_mem = getattr(self._lib, "cuDeviceTotalMem_v2", None) or self._lib.cuDeviceTotalMem
        if total_mem(ctypes.byref(total), dev) == 0:
            info["memory_total_bytes"] = total.value
        values = {key: self._out_int(self._lib.cuDeviceGetAttribute, code, dev)
                  for key, code in _ATTRIBUTES}
        if values["major"] is not None and values["minor"] is not None:
            info["compute_capability"] = f"{values['major']}.{values['minor']}"
        info["multiprocessors"] = values["sms"]
        return info


def cuda_library_names(platform):
    """Names of the CUDA driver library on `platform` (``sys.platform``)."""
    if platform.startswith("linux"):
        return ("libcuda.so.1", "libcuda.so")
    if platform == "win32":
        return ("nvcuda.dll",)
    return ()


def cuda_error_name(api, code):
    """``"CUDA_SUCCESS"``, or ``"NAME (code)"`` for an error."""
    if code == 0:
        return "CUDA_SUCCESS"
    name = CUDA_ERRORS.get(code) or api.error_name(code)
    return f"{name or 'CUDA error'} ({code})"


def _load_driver(load, names):
    """``(api, name, None)`` for the first library that loads, else ``(None, None, error)``."""
    errors = []
    for name in names:
        try:
            return load(name), name, None
        except OSError as e:
            errors.append(str(e))
    return None, None, errors[0]


def probe_cuda_driver(load=CudaDriverApi.load, platform=sys.platform):
    """Asks the CUDA driver directly, without TensorFlow.

    Args:
        load: Takes a library name and returns a `CudaDriverApi` (or an
            object with its methods); raises OSError when it cannot.
        platform: ``sys.platform``.

    Returns:
        A dict: ``libcuda`` (the library loaded, or None and
        ``libcuda_error``), ``cuda_driver_version``, ``cuinit``,
        ``cuda_device_count`` and ``devices`` (a dict per CUDA device).
    """
    out = dict(libcuda=None, libcuda_error=None, cuda_driver_version=None,
               cuinit=None, cuda_device_count=None, devices=[])
    names = cuda_library_names(platform)
    if not names:
        out["libcuda_error"] = f"no CUDA driver exists for {platform}"
        return out
    api, out["libcuda"], error = _load_driver(load, names)
    if api is None:
        out["libcuda_error"] = f"{names[0]} cannot be loaded ({error})"
        return out
    version = api.driver_version()
    if version:
        out["cuda_driver_version"] = f"{version // 1000}.{version % 1000 // 10}"
    code = api.init()
    out["cuinit"] = cuda_error_name(api, code)
    count = api.device_count() if code == 0 else None
    if count is not None:
        out["cuda_device_count"] = count
        out["devices"] = [d for d in map(api.device, range(count)) if d is not None]
    return out


# ----------------------------------------------------------------------------
# NVML.


def _quiet(fn, *args):
    """``fn(*args)``, or None if it raises (NVML raises for unsupported queries)."""
    try:
        return fn(*args)
    except Exception:
        return None


def _in_units(value, scale):
    return None if value is None else round(value / scale, 1)


def _nvml_clocks(nv, h):
    sm, mem = nv.NVML_CLOCK_SM, nv.NVML_CLOCK_MEM
    return dict(
        sm_clock_mhz=_quiet(nv.nvmlDeviceGetClockInfo, h, sm),
        sm_clock_max_mhz=_quiet(nv.nvmlDeviceGetMaxClockInfo, h, sm),
        memory_clock_mhz=_quiet(nv.nvmlDeviceGetClockInfo, h, mem),
        memory_clock_max_mhz=_quiet(nv.nvmlDeviceGetMaxClockInfo, h, mem),
    )


def _nvml_pcie(nv, h):
    return dict(
        pcie_gen=_quiet(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
        pcie_gen_max=_quiet(nv.nvmlDeviceGetMaxPcieLinkGeneration, h),
        pcie_width=_quiet(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
        pcie_width_max=_quiet(nv.nvmlDeviceGetMaxPcieLinkWidth, h),
    )


def _nvml_throttle_mask(nv, h):
    for name in ("nvmlDeviceGetCurrentClocksEventReasons",
                 "nvmlDeviceGetCurrentClocksThrottleReasons"):
        if hasattr(nv, name):
            mask = _quiet(getattr(nv, name), h)
            if mask is not None:
                return mask
    return None


def _nvml_gpu(nv, h):
    mem = _quiet(nv.nvmlDeviceGetMemoryInfo, h)
    util = _quiet(nv.nvmlDeviceGetUtilizationRates, h)
    return dict(
        model=to_str(_quiet(nv.nvmlDeviceGetName, h)),
        pci_bus_id=normalise_pci(getattr(_quiet(nv.nvmlDeviceGetPciInfo, h), "busId", None)),
        memory_total_bytes=getattr(mem, "total", None),
        memory_free_bytes=getattr(mem, "free", None),
        **_nvml_clocks(nv, h),
        power_draw_w=_in_units(_quiet(nv.nvmlDeviceGetPowerUsage, h), 1000),
        power_limit_w=_in_units(_quiet(nv.nvmlDeviceGetEnforcedPowerLimit, h), 1000),
        utilization_gpu_pct=getattr(util, "gpu", None),
        utilization_memory_pct=getattr(util, "memory", None),
        temperature_c=_quiet(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
        **_nvml_pcie(nv, h),
        throttle_reasons=decode_throttle(_nvml_throttle_mask(nv, h)),
    )


def probe_nvml(nv):
    """Per-GPU management facts through NVML.

    Args:
        nv: The ``pynvml`` module (package nvidia-ml-py), or a stand-in.

    Returns:
        ``{"driver_version": ..., "gpus": [per-GPU dict, ...]}``.
    """
    nv.nvmlInit()
    try:
        driver = to_str(_quiet(nv.nvmlSystemGetDriverVersion))
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        return {"driver_version": driver, "gpus": [_nvml_gpu(nv, h) for h in handles]}
    finally:
        _quiet(nv.nvmlShutdown)


# ----------------------------------------------------------------------------
# nvidia-smi.


def _smi_column(key, value):
    """One nvidia-smi column as the report stores it: ``(field, value)``."""
    if value.startswith("[") or value.lower() in ("n/a", ""):
        value = None
    if key.endswith("_mib"):
        mib = to_float(value)
        return key[:-4] + "_bytes", None if mib is None else int(mib * 2**20)
    if key == "pci_bus_id":
        return key, normalise_pci(value)
    if key in ("model", "driver_version"):
        return key, value
    if key.endswith("_w"):
        return key, to_float(value)
    number = to_float(value)
    return key, None if number is None else int(number)


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
        if len(values) == len(keys):
            gpus.append(dict(_smi_column(k, v) for k, v in zip(keys, values) if k is not None))
    return gpus


def probe_nvidia_smi(environ=os.environ, run=subprocess.run):
    """Management facts from nvidia-smi, found on ``environ["PATH"]``.

    Returns:
        Like `probe_nvml`, or None when there is no nvidia-smi.

    Raises:
        RuntimeError: If nvidia-smi fails.
    """
    exe = shutil.which("nvidia-smi", path=environ.get("PATH", os.defpath))
    if exe is None:
        return None
    for fields in (SMI_FIELDS, SMI_FIELDS[:6]):  # old drivers lack some fields
        query = ",".join(f for f, _ in fields)
        out = run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                  capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            gpus = parse_nvidia_smi(out.stdout, [k for _, k in fields])
            versions = [g.pop("driver_version") for g in gpus if "driver_version" in g]
            return {"driver_version": versions[0] if versions else None, "gpus": gpus}
    raise RuntimeError(f"nvidia-smi failed: {(out.stderr or out.stdout).strip()[:200]}")


# ----------------------------------------------------------------------------
# TensorFlow, and the merge.


def _tf_gpu(tf, logical, dev, physical):
    details, growth = {}, None
    try:
        details = dict(tf.config.experimental.get_device_details(dev))
    except Exception:
        pass
    try:
        growth = bool(tf.config.experimental.get_memory_growth(dev))
    except Exception:
        pass
    cc = details.get("compute_capability")
    return dict(
        name=f"gpu:{logical}",
        tf_device=dev.name,
        physical_index=physical.index(dev) if dev in physical else logical,
        model=details.get("device_name"),
        compute_capability=(f"{cc[0]}.{cc[1]}" if isinstance(cc, (tuple, list)) else to_str(cc)),
        memory_growth=growth,
    )


def probe_tf_gpus(tf):
    """TensorFlow's GPUs: ``(visible per-GPU dicts, {"physical_gpus": count})``.

    Args:
        tf: The ``tensorflow`` module, or a stand-in with its ``config``.
    """
    physical = tf.config.list_physical_devices("GPU")
    visible = tf.config.get_visible_devices("GPU")
    gpus = [_tf_gpu(tf, i, dev, physical) for i, dev in enumerate(visible)]
    return gpus, {"physical_gpus": len(physical)}


def merge_gpu(gpu, driver_dev, mgmt_dev, backend="tensorflow"):
    """Fills the `GpuInfo` fields the backend left empty from the driver, then NVML."""
    filled_by = [backend]
    for answer, name in ((driver_dev, "cuda-driver"), (mgmt_dev, "nvml")):
        if not answer:
            continue
        filled_by.append(name)
        for key, value in answer.items():
            if value is not None and getattr(gpu, key, None) is None and hasattr(gpu, key):
                setattr(gpu, key, value)
    gpu.sources = filled_by


def match_gpus(backend_gpus, driver_devs, mgmt_devs, cuda_visible_devices_set,
               backend="tensorflow"):
    """One merged `GpuInfo` per GPU of the backend.

    The CUDA device is the backend's physical index; the NVML device is found
    by PCI bus id (the backend's, else the CUDA driver's), or by index when
    both lists are complete and in the same order (no CUDA_VISIBLE_DEVICES).
    """
    by_pci = {g.get("pci_bus_id"): g for g in mgmt_devs if g.get("pci_bus_id")}
    same_order = len(mgmt_devs) == len(driver_devs or backend_gpus) and \
        not cuda_visible_devices_set
    gpus = []
    for t in backend_gpus:
        index = t["physical_index"]
        gpu = GpuInfo(**{k: v for k, v in t.items() if k != "physical_index"})
        d = driver_devs[index] if index < len(driver_devs) else None
        m = by_pci.get(gpu.pci_bus_id or (d or {}).get("pci_bus_id"))
        if m is None and same_order and index < len(mgmt_devs):
            m = mgmt_devs[index]
        merge_gpu(gpu, d, m, backend)
        gpus.append(gpu)
    return gpus


def _management(probes, sources, facts):
    """NVML's facts, else nvidia-smi's; says which in `facts`."""
    try:
        mgmt = call_with_timeout(sources.timeout_s, lambda: probe_nvml(sources.import_nvml()))
        facts["management"] = "nvml"
        return mgmt
    except ImportError:
        facts["management_error"] = "pynvml (package nvidia-ml-py) is not installed"
    except Exception as e:
        if isinstance(e, TimeoutError):
            probes.record("gpu.nvml", e)
        facts["management_error"] = ("NVML: " + describe_error(e))[:300]
    try:
        mgmt = probe_nvidia_smi(sources.environ, sources.run_command)
    except Exception as e:
        probes.record("gpu.nvidia_smi", e, limit=300)
        return None
    if mgmt is not None:
        facts["management"] = "nvidia-smi"
    return mgmt


def _driver_facts(driver, device_files):
    keys = ("libcuda", "libcuda_error", "cuda_driver_version", "cuinit", "cuda_device_count")
    return dict(
        {k: driver.get(k) for k in keys},
        cuda_devices=driver.get("devices") or [], device_files=device_files,
        driver_version=None, management=None, management_error=None,
        gpus_on_system=None, system_gpu_models=[],
    )


def device_files(root="/"):
    """Names of the dev/nvidia* files under `root`."""
    pattern = os.path.join(glob.escape(root), "dev/nvidia*")
    return sorted(os.path.basename(p) for p in glob.glob(pattern))


def collect_gpus(probes, backend_gpus, sources, backend="tensorflow"):
    """Runs the driver-level GPU probes and merges their answers with the backend's.

    Args:
        probes: The `Probes` recording failures.
        backend_gpus: The backend's GPUs, per-GPU dicts as `probe_tf_gpus`
            (or ``backends.probe_jax_gpus``, ``probe_torch_gpus``) lists them.
        sources: The `Sources` to ask.
        backend: The backend's name, recorded in each GPU's ``sources``.

    Returns:
        ``(accelerators, gpu_driver facts)``.
    """
    driver = probes.run_limited("gpu.cuda_driver", probe_cuda_driver,
                                sources.load_cuda_driver, default={}) or {}
    facts = _driver_facts(driver, device_files(sources.root))
    mgmt = None
    if driver.get("libcuda") or facts["device_files"]:
        mgmt = _management(probes, sources, facts)
    if mgmt:
        facts["driver_version"] = mgmt.get("driver_version")
        facts["gpus_on_system"] = len(mgmt["gpus"])
        facts["system_gpu_models"] = [g.get("model") for g in mgmt["gpus"]]
    accelerators = match_gpus(backend_gpus, driver.get("devices") or [],
                              (mgmt or {}).get("gpus") or [],
                              "CUDA_VISIBLE_DEVICES" in sources.environ, backend)
    for gpu in accelerators:
        gpu.driver_version = facts["driver_version"]
        gpu.peak = peaks.gpu_peak(gpu.model)
    return accelerators, facts
