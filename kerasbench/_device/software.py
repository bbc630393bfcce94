"""Software probes: versions, Keras backend, TensorFlow build and settings.

Each probe takes the module it asks (``tf``, ``keras``) or the environment
mapping it reads, so stand-ins can replace the real ones. `collect_software`
runs them all.
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from kerasbench._device.probing import read_text
from kerasbench._device.records import SoftwareInfo

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
TF_DISTRIBUTIONS = (
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
    "tensorflow-macos", "tensorflow-rocm", "intel-tensorflow", "tf-nightly",
    "tf-nightly-cpu",
)
EXTRA_DISTRIBUTIONS = (
    "nvidia-ml-py", "nvidia-cudnn-cu12", "nvidia-cublas-cu12",
    "nvidia-cuda-runtime-cu12", "tensorflow-metal",
)
_TF_BUILD_KEYS = ("is_cuda_build", "is_rocm_build", "cuda_version", "cudnn_version",
                  "cuda_compute_capabilities")


def dist_version(name):
    """The installed version of distribution `name`, or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def perf_env(environ=os.environ):
    """The `PERF_ENV_VARS` that are set, in that order."""
    return {k: environ[k] for k in PERF_ENV_VARS if k in environ}


# ----------------------------------------------------------------------------
# Keras.


def keras_backend_from_config(environ=os.environ):
    """The backend Keras would pick (KERAS_BACKEND, else keras.json), without Keras."""
    backend = environ.get("KERAS_BACKEND")
    if backend:
        return backend
    base = environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    text = read_text(os.path.join(base, "keras.json"))
    if text:
        return json.loads(text).get("backend")
    return "tensorflow"


def backend_devices(backend, modules=sys.modules):
    """Devices of a non-TensorFlow Keras backend, when it is already loaded."""
    if backend == "jax" and "jax" in modules:
        return [f"{d.platform}:{d.id}" for d in modules["jax"].devices()]
    if backend == "torch" and "torch" in modules:
        torch = modules["torch"]
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ["cpu"] + [f"cuda:{i}" for i in range(n)]
    if backend == "numpy":
        return ["cpu"]
    return None


# ----------------------------------------------------------------------------
# TensorFlow.


def _tf_internal(tf, name):
    """A private module of this TensorFlow (``tf.python.<name>``)."""
    return importlib.import_module(f"{tf.__name__}.python.{name}")


def onednn_enabled(tf):
    """Whether TensorFlow's oneDNN CPU optimisations are on (IsMklEnabled)."""
    return bool(_tf_internal(tf, "util._pywrap_util_port").IsMklEnabled())


def op_determinism_enabled(tf):
    """Whether `tf.config.experimental.enable_op_determinism` is in effect."""
    return bool(_tf_internal(tf, "framework.config").is_op_determinism_enabled())


def tf_build(tf):
    """``(build facts, kind)``: the build-info keys the report keeps, and
    ``"CUDA"``, ``"ROCm"`` or ``"CPU-only"``."""
    build = dict(tf.sysconfig.get_build_info())
    facts = {k: (list(v) if isinstance(v, (list, tuple)) else v)
             for k, v in build.items() if k in _TF_BUILD_KEYS}
    if build.get("is_cuda_build"):
        return facts, "CUDA"
    return facts, "ROCm" if build.get("is_rocm_build") else "CPU-only"


def xla_jit(tf):
    """``tf.config.optimizer.get_jit()`` as text: ``"off"`` when empty."""
    jit = tf.config.optimizer.get_jit()
    if jit is None:
        return None
    return str(jit) if jit else "off"


# ----------------------------------------------------------------------------
# Collection.


def _versions(probes, tf, keras):
    from kerasbench._version import __version__

    numpy = probes.run("software.numpy", importlib.import_module, "numpy")
    versions = {
        "tensorflow": getattr(tf, "__version__", None) if tf else None,
        "keras": getattr(keras, "__version__", None) if keras else None,
        "numpy": getattr(numpy, "__version__", None),
        "tensorboard": probes.run("software.tensorboard", dist_version, "tensorboard"),
        "kerasbench": __version__,
    }
    for name in EXTRA_DISTRIBUTIONS:
        version = probes.run("software.versions", dist_version, name)
        if version:
            versions[name] = version
    return versions


def _fill_keras(sw, probes, keras, environ):
    if keras is not None:
        sw.keras_backend = probes.run("software.keras_backend", keras.config.backend)
        sw.mixed_precision_policy = probes.run(
            "software.mixed_precision", lambda: keras.config.dtype_policy().name)
    else:
        sw.keras_backend = probes.run("software.keras_backend", keras_backend_from_config,
                                      environ)
    if sw.keras_backend and sw.keras_backend != "tensorflow":
        sw.keras_backend_devices = probes.run(
            "software.keras_backend_devices", backend_devices, sw.keras_backend)


def _fill_tensorflow(sw, probes, tf):
    sw.tf_build, sw.tf_build_kind = probes.run("software.build_info", tf_build, tf,
                                               default=(None, None))
    sw.onednn = probes.run("software.onednn", onednn_enabled, tf)
    sw.xla_jit = probes.run("software.xla_jit", xla_jit, tf)
    sw.tensor_float_32 = probes.run(
        "software.tf32", lambda: tf.config.experimental.tensor_float_32_execution_enabled())
    sw.op_determinism = probes.run("software.op_determinism", op_determinism_enabled, tf)
    sw.intra_op_threads = probes.run(
        "software.threads", lambda: tf.config.threading.get_intra_op_parallelism_threads())
    sw.inter_op_threads = probes.run(
        "software.threads", lambda: tf.config.threading.get_inter_op_parallelism_threads())


def collect_software(probes, tf, keras, environ=os.environ):
    """Runs every software probe.

    Args:
        probes: The `Probes` recording failures.
        tf: The ``tensorflow`` module, or None when it cannot be imported.
        keras: The ``keras`` module, or None.
        environ: Environment variables.

    Returns:
        A `SoftwareInfo`.
    """
    sw = SoftwareInfo()
    sw.versions = _versions(probes, tf, keras)
    sw.tensorflow_distributions = [
        d for d in TF_DISTRIBUTIONS if probes.run("software.versions", dist_version, d)]
    _fill_keras(sw, probes, keras, environ)
    if tf is not None:
        _fill_tensorflow(sw, probes, tf)
    sw.env = perf_env(environ)
    return sw
