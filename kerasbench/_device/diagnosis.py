"""Why no GPU is usable, in plain words: an ordered list of small rules.

`explain_no_gpu` first derives a few `Clues` from the collected facts, then
tries each rule of `RULES` in order; a rule returns its reason, or None when
it does not apply, and the first reason found is the answer. A non-TensorFlow
Keras backend is said first, before that reason. The order is most likely
cause first: TensorFlow missing, a CPU-only build, a ROCm build, a CUDA
driver that did not answer, no NVIDIA driver, CUDA_VISIBLE_DEVICES, cuInit failing, TensorFlow not registering the
GPUs CUDA sees, GPUs hidden by tf.config.set_visible_devices.
"""

from __future__ import annotations

import dataclasses
import re
import sys

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
    build: dict
    driver: dict
    tf_version: str
    platform: str
    cvd: str | None
    cvd_empty: bool
    cuinit: str
    there: str
    built: str

    @classmethod
    def from_facts(cls, facts):
        """Derives the clues from `explain_no_gpu`'s facts."""
        build = facts.get("tf_build") or {}
        driver = facts.get("driver") or {}
        tf_version = facts.get("tf_version") or ""
        cvd = facts.get("cuda_visible_devices")
        built = ""
        if build.get("is_cuda_build"):
            built = (f"TensorFlow {tf_version} is a CUDA build (CUDA {build.get('cuda_version')}, "
                     f"cuDNN {build.get('cudnn_version')}), but ")
        return cls(facts=facts, build=build, driver=driver, tf_version=tf_version,
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


def _capitalised(text):
    return text[0].upper() + text[1:]


# ----------------------------------------------------------------------------
# The rules, in order: each takes `Clues` and returns a reason or None.


def tensorflow_import_failed(c):
    """TensorFlow cannot be imported: the import error, and the GPUs the driver sees."""
    error = c.facts.get("tf_error")
    return f"TensorFlow cannot be imported ({error})." + c.there if error else None


def cpu_only_build(c):
    """The build has neither CUDA nor ROCm: what to install on this platform."""
    if not c.build or c.build.get("is_cuda_build") or c.build.get("is_rocm_build"):
        return None
    dists = ", ".join(c.facts.get("tf_distributions") or []) or "tensorflow"
    text = f"This TensorFlow {c.tf_version} ({dists}) is a CPU-only build: it has no CUDA support."
    if c.platform == "darwin":
        text += " On macOS, Apple GPUs need the tensorflow-metal plugin."
    elif c.platform == "win32":
        text += " TensorFlow 2.11 and later have no GPU support on native Windows; use WSL2."
    else:
        text += " Install the CUDA build: pip install 'tensorflow[and-cuda]'."
    return text + c.there


def rocm_build_without_gpu(c):
    """A ROCm build found no AMD GPU (and whether its kernel driver is loaded)."""
    if not c.build.get("is_rocm_build"):
        return None
    missing = "" if c.facts.get("dev_kfd") else \
        " (there is no /dev/kfd: the ROCm kernel driver is not loaded)"
    return f"TensorFlow {c.tf_version} is a ROCm build but found no AMD GPU{missing}."


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


def tensorflow_registered_none(c):
    """CUDA sees GPUs but TensorFlow has none: too old a GPU, or missing libraries."""
    count = c.driver.get("cuda_device_count")
    if not count:
        return None
    return f"CUDA sees {count} GPU(s) but TensorFlow registered none." + (
        _capability_too_low(c)
        or " Usually TensorFlow could not load its CUDA libraries (cuDNN,"
           " cuBLAS): install them with pip install 'tensorflow[and-cuda]'."
           " TensorFlow's start-up log names the missing library.")


def hidden_by_set_visible_devices(c):
    """TensorFlow found GPUs but tf.config.set_visible_devices() hid them."""
    found = c.facts.get("tf_physical_gpus")
    if not found:
        return None
    return (f"TensorFlow found {found} GPU(s) but"
            " tf.config.set_visible_devices() hid them all from this process.")


def undetermined(c):
    """The last rule: always answers."""
    return UNDETERMINED + c.there


RULES = (
    tensorflow_import_failed,
    cpu_only_build,
    rocm_build_without_gpu,
    cuda_driver_did_not_answer,
    no_nvidia_driver,
    cuda_visible_devices_hides,
    cuinit_failed,
    tensorflow_registered_none,
    hidden_by_set_visible_devices,
    undetermined,
)


def backend_is_not_tensorflow(facts):
    """The sentence said before any reason when Keras runs on another backend."""
    backend = facts.get("keras_backend")
    if not backend or backend == "tensorflow":
        return None
    devices = facts.get("keras_backend_devices")
    return (f"The Keras backend is {backend!r}, not 'tensorflow'"
            + (f" (its devices: {', '.join(devices)})" if devices else "")
            + "; kerasbench lists and checks TensorFlow's devices.")


def explain_no_gpu(facts):
    """Says in plain words why no GPU is usable, from collected facts.

    Args:
        facts: A dict with any of: ``platform`` (``sys.platform``),
            ``tf_error``, ``tf_version``, ``tf_distributions``, ``tf_build``
            (build-info dict), ``keras_backend``, ``keras_backend_devices``,
            ``cuda_visible_devices`` (the variable's value, or None when
            unset), ``driver`` (the report's ``gpu_driver`` dict, whose
            ``cuda_devices`` give compute capabilities),
            ``tf_physical_gpus``, ``container``, ``dev_kfd`` (whether
            /dev/kfd, the ROCm kernel driver's device, exists),
            ``cuda_probe_error`` (what the CUDA driver probe raised, if it
            raised or timed out).

    Returns:
        One or more sentences, most likely cause first.
    """
    clues = Clues.from_facts(facts)
    reason = next(r for r in (rule(clues) for rule in RULES) if r)
    return " ".join(filter(None, (backend_is_not_tensorflow(facts), reason)))
