"""Why no GPU is usable, in plain words: an ordered list of small rules.

`explain_no_gpu` first derives a few `Clues` from the collected facts, then
tries each rule of `RULES` in order; a rule returns its reason, or None when
it does not apply, and the first reason found is the answer. The rules speak
for the backend in use (TensorFlow, JAX or PyTorch). The order is most
likely cause first: a backend without GPU support in kerasbench, the
framework missing, JAX_PLATFORMS keeping JAX off the GPU, a CPU-only build
(or no MPS on a Mac), a ROCm build, a CUDA driver that did not answer, no
NVIDIA driver, CUDA_VISIBLE_DEVICES, cuInit failing, a driver older than the
build's CUDA, the framework not registering the GPUs CUDA sees, GPUs hidden
by tf.config.set_visible_devices.
"""

from __future__ import annotations

import dataclasses
import re
import sys

from kerasbench._device.frameworks import FRAMEWORKS
from kerasbench._device.gpu import cc_tuple

UNDETERMINED = "No GPU was found; the cause could not be determined."

# Words in a cuInit error name, and what they mean.
CUINIT_HINTS = {
    "NO_DEVICE": "the driver is loaded but finds no CUDA-capable device",
    "INSUFFICIENT_DRIVER":
        "the NVIDIA driver is older than this CUDA version needs; update the driver",
    "SYSTEM_DRIVER_MISMATCH":
        "the driver's kernel module and user library have different versions"
        " (reboot after a driver update)",
    "COMPAT_NOT_SUPPORTED": "the CUDA forward-compatibility library does not support this GPU",
    "DEVICES_UNAVAILABLE": "the GPUs are busy or in exclusive-process mode",
    "STUB_LIBRARY": "the loaded libcuda is a stub, not the real driver",
}
# CUDA_VISIBLE_DEVICES values that hide every GPU.
_HIDING_VALUES = ("", "-1", "none", "NoDevFiles")


@dataclasses.dataclass
class Clues:
    """What the rules read, derived once from the facts."""

    facts: dict
    backend: str
    framework: str
    build: dict
    driver: dict
    version: str
    platform: str
    cvd: str | None
    cvd_empty: bool
    cuinit: str
    there: str
    built: str

    @classmethod
    def from_facts(cls, facts):
        """Derives the clues from `explain_no_gpu`'s facts."""
        backend = facts.get("backend") or "tensorflow"
        framework = FRAMEWORKS.get(backend, backend)
        build = facts.get("build") or {}
        driver = facts.get("driver") or {}
        version = facts.get("version") or ""
        cvd = facts.get("cuda_visible_devices")
        built = ""
        if build.get("is_cuda_build"):
            cudnn = build.get("cudnn_version")
            built = (f"{framework} {version} is a CUDA build (CUDA {build.get('cuda_version')}"
                     + (f", cuDNN {cudnn}" if cudnn or backend == "tensorflow" else "")
                     + "), but ")
        return cls(facts=facts, backend=backend, framework=framework, build=build,
                   driver=driver, version=version,
                   platform=facts.get("platform") or sys.platform, cvd=cvd,
                   cvd_empty=cvd is not None and cvd.strip() in _HIDING_VALUES,
                   cuinit=driver.get("cuinit") or "", there=_driver_sees(driver), built=built)


def _driver_sees(driver):
    """`` The driver reports N GPU(s) on this machine (models).`` or ``""``."""
    seen = driver.get("gpus_on_system")
    if not seen:
        return ""
    models = [m for m in driver.get("system_gpu_models") or [] if m]
    return f" The driver reports {seen} GPU(s) on this machine ({', '.join(models)})."


def _framework_says(c):
    """`` JAX says: Backend 'cuda' failed to initialize: ...`` when it said so, else ``""``."""
    error = c.facts.get("gpu_error")
    return f" {c.framework} says: {error}" if error and "initialize" in error else ""


def _capitalised(text):
    return text[0].upper() + text[1:]


# ----------------------------------------------------------------------------
# The rules, in order: each takes `Clues` and returns a reason or None.


def backend_without_gpu_support(c):
    """A Keras backend kerasbench lists no GPUs for (numpy, openvino)."""
    if c.backend in FRAMEWORKS:
        return None
    return (f"The Keras backend is {c.backend!r}: kerasbench lists GPUs only for the "
            f"{', '.join(FRAMEWORKS)} backends.")


def framework_import_failed(c):
    """The framework cannot be imported: the import error, and the GPUs the driver sees."""
    error = c.facts.get("framework_error")
    return f"{c.framework} cannot be imported ({error})." + c.there if error else None


def jax_platforms_exclude_gpus(c):
    """JAX_PLATFORMS names no GPU platform, so JAX does not even try one."""
    platforms = c.facts.get("jax_platforms")
    if c.backend != "jax" or not platforms or \
            any(p.strip() in ("cuda", "gpu", "rocm") for p in platforms.split(",")):
        return None
    return (f"JAX_PLATFORMS={platforms!r} keeps JAX off the GPU (unset it, or add 'cuda')."
            + c.there)


# What to do about a CPU-only build, per backend and platform ("" for any other).
CPU_ONLY_HINTS = {
    "tensorflow": {
        "darwin": " On macOS, Apple GPUs need the tensorflow-metal plugin.",
        "win32": " TensorFlow 2.11 and later have no GPU support on native Windows; use WSL2.",
        "": " Install the CUDA build: pip install 'tensorflow[and-cuda]'.",
    },
    "jax": {
        "darwin": " On macOS, JAX's GPU support is the experimental jax-metal plugin.",
        "win32": " JAX has no CUDA support on native Windows; use WSL2.",
        "": " Install the CUDA plugin: pip install -U 'jax[cuda12]' (or 'jax[cuda13]').",
    },
    "torch": {
        "": " Install a CUDA build: see https://pytorch.org/get-started/locally/ (e.g. pip"
            " install torch --index-url https://download.pytorch.org/whl/cu128).",
    },
}


def _cpu_only(c):
    """The first sentence: which build is CPU-only."""
    if c.backend == "tensorflow":
        dists = ", ".join(c.facts.get("distributions") or []) or "tensorflow"
        return f"This TensorFlow {c.version} ({dists}) is a CPU-only build: it has no CUDA support."
    if c.backend == "jax":
        return (f"This jaxlib {c.build.get('jaxlib_version') or c.version} is a CPU-only build:"
                " no CUDA or ROCm plugin (jax-cuda12-plugin, jax-cuda13-plugin, ...) is installed.")
    return f"This PyTorch {c.version} was built without CUDA (a CPU-only build)."


def _no_mps(c):
    """PyTorch on a Mac: no CUDA there; the Apple GPU is reached through MPS."""
    why = "it needs macOS 12.3 or later and an Apple silicon or AMD GPU" \
        if c.build.get("mps_built") else "this PyTorch was built without MPS"
    return f"PyTorch {c.version} cannot use the Apple GPU: MPS is not available ({why})."


def cpu_only_build(c):
    """The build has neither CUDA nor ROCm: what to install on this platform."""
    if not c.build or c.build.get("is_cuda_build") or c.build.get("is_rocm_build"):
        return None
    if c.backend == "torch" and c.platform == "darwin":
        return _no_mps(c) + c.there
    hints = CPU_ONLY_HINTS[c.backend]
    return _cpu_only(c) + hints.get(c.platform, hints[""]) + c.there


def rocm_build_without_gpu(c):
    """A ROCm build found no AMD GPU (and whether its kernel driver is loaded)."""
    if not c.build.get("is_rocm_build"):
        return None
    missing = "" if c.facts.get("dev_kfd") else \
        " (there is no /dev/kfd: the ROCm kernel driver is not loaded)"
    return f"{c.framework} {c.version} is a ROCm build but found no AMD GPU{missing}."


def cuda_driver_did_not_answer(c):
    """The CUDA driver probe raised or hung, so the driver's facts are unknown."""
    error = c.facts.get("cuda_probe_error")
    if not error:
        return None
    return _capitalised(f"{c.built}asking the CUDA driver failed ({error}); nvidia-smi and "
                        "the kernel log (dmesg) may say why.") + c.there


def no_nvidia_driver(c):
    """libcuda cannot be loaded: no NVIDIA driver (and a hint inside a container)."""
    if not c.driver or c.driver.get("libcuda") is not None:
        return None
    text = (f"{c.built}there is no NVIDIA driver: "
            f"{c.driver.get('libcuda_error') or 'libcuda cannot be loaded'}")
    if not c.driver.get("device_files") and c.platform.startswith("linux"):
        text += ", and there are no /dev/nvidia* device files"
    container = c.facts.get("container")
    if container:
        text += (f". This runs in a {container} container: if the host has a GPU,"
                 " start the container with GPU access (e.g. docker run --gpus all).")
    else:
        text += ". This machine has no usable NVIDIA GPU, or its driver is not installed."
    hidden = f" (CUDA_VISIBLE_DEVICES={c.cvd!r} would hide them anyway.)" if c.cvd_empty else ""
    return _capitalised(text) + c.there + hidden


def cuda_visible_devices_hides(c):
    """CUDA_VISIBLE_DEVICES is empty or -1, or CUDA sees none of the GPUs NVML sees."""
    count = c.driver.get("cuda_device_count")
    cuda_found_none = count == 0 or "NO_DEVICE" in c.cuinit
    seen = c.driver.get("gpus_on_system")
    if c.cvd is None or not (c.cvd_empty or (cuda_found_none and seen)):
        return None
    return _capitalised(f"{c.built}CUDA_VISIBLE_DEVICES={c.cvd!r} hides every GPU from CUDA"
                        " (unset it, or list GPU indices such as '0').") + c.there


def cuinit_failed(c):
    """cuInit returned an error: its name and what it usually means."""
    if not c.cuinit or c.cuinit == "CUDA_SUCCESS":
        return None
    hint = next((h for k, h in CUINIT_HINTS.items() if k in c.cuinit), "CUDA could not start")
    return _capitalised(f"{c.built}initialising CUDA failed with {c.cuinit}: {hint}.") + c.there


def _major(version):
    m = re.match(r"(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


def driver_older_than_build(c):
    """The driver supports an older CUDA major version than the build was made for."""
    driver, build = (_major(c.driver.get("cuda_driver_version")),
                     _major(c.build.get("cuda_version")))
    if not c.build.get("is_cuda_build") or driver is None or build is None or driver >= build:
        return None
    return (f"The NVIDIA driver supports CUDA up to {c.driver['cuda_driver_version']}, but this "
            f"{c.framework} {c.version} build needs CUDA {build}: update the driver (or install "
            f"a {c.framework} build for CUDA {driver}).") + c.there


def _capability_too_low(c):
    """A sentence when a GPU is older than every compute capability of the build."""
    targets = c.build.get("cuda_compute_capabilities") or []
    numbers = [int(m.group(1)) for t in targets for m in [re.search(r"(\d+)", t)] if m]
    for device in c.driver.get("cuda_devices") or []:
        cc = device.get("compute_capability")
        major, minor = cc_tuple(cc)
        if cc and numbers and major * 10 + minor < min(numbers):
            return (f" The GPU's compute capability {cc} is below the lowest this"
                    f" build supports ({targets[0]}).")
    return None


# Why a framework usually registers none of the GPUs CUDA sees.
REGISTERED_NONE_HINTS = {
    "tensorflow": " Usually TensorFlow could not load its CUDA libraries (cuDNN, cuBLAS):"
                  " install them with pip install 'tensorflow[and-cuda]'. TensorFlow's"
                  " start-up log names the missing library.",
    "jax": " Usually the CUDA plugin could not load its CUDA libraries (cuDNN, cuBLAS) or"
           " does not match jaxlib's version: pip install -U 'jax[cuda12]' installs"
           " matching ones.",
    "torch": " torch.cuda.is_available() is False; the warning PyTorch prints when it is"
             " asked names the cause.",
}


def framework_registered_none(c):
    """CUDA sees GPUs but the framework has none: too old a GPU, its error, missing libraries."""
    count = c.driver.get("cuda_device_count")
    if not count:
        return None
    return f"CUDA sees {count} GPU(s) but {c.framework} registered none." + (
        _capability_too_low(c) or _framework_says(c)
        or REGISTERED_NONE_HINTS.get(c.backend, ""))


def hidden_by_set_visible_devices(c):
    """TensorFlow found GPUs but tf.config.set_visible_devices() hid them."""
    found = c.facts.get("physical_gpus")
    if not found or c.backend != "tensorflow":
        return None
    return (f"TensorFlow found {found} GPU(s) but"
            " tf.config.set_visible_devices() hid them all from this process.")


def undetermined(c):
    """The last rule: always answers (with the framework's own words, if it said any)."""
    return UNDETERMINED + c.there + _framework_says(c)


RULES = (
    backend_without_gpu_support,
    framework_import_failed,
    jax_platforms_exclude_gpus,
    cpu_only_build,
    rocm_build_without_gpu,
    cuda_driver_did_not_answer,
    no_nvidia_driver,
    cuda_visible_devices_hides,
    cuinit_failed,
    driver_older_than_build,
    framework_registered_none,
    hidden_by_set_visible_devices,
    undetermined,
)


def explain_no_gpu(facts):
    """Says in plain words why no GPU is usable, from collected facts.

    Args:
        facts: A dict with any of: ``backend`` (the Keras backend the report
            describes; default ``"tensorflow"``), ``platform``
            (``sys.platform``), ``framework_error`` (why its framework cannot
            be imported), ``version`` (the framework's), ``distributions``
            (TensorFlow's installed distributions), ``build`` (build facts
            under TensorFlow's build-info keys: ``is_cuda_build``,
            ``is_rocm_build``, ``cuda_version``, ``cudnn_version``,
            ``cuda_compute_capabilities``; JAX adds ``jaxlib_version``,
            PyTorch ``mps_built``), ``cuda_visible_devices`` (the variable's
            value, or None when unset), ``jax_platforms`` (JAX_PLATFORMS),
            ``driver`` (the report's ``gpu_driver`` dict, whose
            ``cuda_devices`` give compute capabilities), ``physical_gpus``
            (TensorFlow's physical GPU count), ``gpu_error`` (what the
            framework said when asked for its GPUs), ``container``,
            ``dev_kfd`` (whether /dev/kfd, the ROCm kernel driver's device,
            exists), ``cuda_probe_error`` (what the CUDA driver probe raised,
            if it raised or timed out).

    Returns:
        One or more sentences, most likely cause first.
    """
    clues = Clues.from_facts(facts)
    return next(r for r in (rule(clues) for rule in RULES) if r)
