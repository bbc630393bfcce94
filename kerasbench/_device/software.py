"""Software probes: versions, Keras, TensorFlow's build and settings.

Each probe takes the module it asks (``tf``, ``keras``), the environment
mapping or the package lookup it reads, so stand-ins can replace the real
ones. `collect_software` runs those of the backend in use: TensorFlow's
here, JAX's and PyTorch's in ``backends``.
"""

from __future__ import annotations

import importlib
import os

from kerasbench._device.backends import JAX_PLUGINS, fill_jax, fill_torch
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
    "JAX_PLATFORMS",
    "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_PYTHON_CLIENT_ALLOCATOR",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ENABLE_MPS_FALLBACK",
    "CUBLAS_WORKSPACE_CONFIG",
    "NVIDIA_TF32_OVERRIDE",
)
TF_DISTRIBUTIONS = (
    "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
    "tensorflow-macos", "tensorflow-rocm", "intel-tensorflow", "tf-nightly",
    "tf-nightly-cpu",
)
# CUDA libraries installed from PyPI, and other packages worth listing next
# to each backend's framework.
CUDA_DISTRIBUTIONS = (
    "nvidia-ml-py", "nvidia-cudnn-cu12", "nvidia-cublas-cu12",
    "nvidia-cuda-runtime-cu12", "nvidia-cudnn-cu13", "nvidia-cublas-cu13",
)
EXTRA_DISTRIBUTIONS = {
    "tensorflow": CUDA_DISTRIBUTIONS + ("tensorflow-metal",),
    "jax": JAX_PLUGINS + CUDA_DISTRIBUTIONS,
    "torch": CUDA_DISTRIBUTIONS,
}
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
    """The `PERF_ENV_VARS` the user set, in that order: a variable kerasbench
    itself set (listed as ``NAME=VALUE`` in ``KERASBENCH_SET_ENV``) is left out
    while it still holds kerasbench's value."""
    ours = dict(item.split("=", 1) for item in environ.get("KERASBENCH_SET_ENV", "").split(",")
                if "=" in item)
    return {k: environ[k] for k in PERF_ENV_VARS if k in environ and ours.get(k) != environ[k]}


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


def _versions(probes, backend, module, keras, dist_version):
    """The backend's framework first, then Keras, NumPy, kerasbench and extras."""
    from kerasbench._version import __version__

    numpy = probes.run("software.numpy", importlib.import_module, "numpy")
    versions = {}
    if backend in ("tensorflow", "jax", "torch"):
        versions[backend] = getattr(module, "__version__", None) if module else None
    if backend == "jax":
        versions["jaxlib"] = probes.run("software.versions", dist_version, "jaxlib")
    versions["keras"] = getattr(keras, "__version__", None) if keras else None
    versions["numpy"] = getattr(numpy, "__version__", None)
    if backend == "tensorflow":
        versions["tensorboard"] = probes.run("software.tensorboard", dist_version, "tensorboard")
    versions["kerasbench"] = __version__
    for name in EXTRA_DISTRIBUTIONS.get(backend, CUDA_DISTRIBUTIONS):
        version = probes.run("software.versions", dist_version, name)
        if version:
            versions[name] = version
    return versions


def fill_tensorflow(sw, probes, tf, dist_version):
    """Fills `SoftwareInfo` `sw` from TensorFlow."""
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


def collect_software(probes, backend, module, keras, keras_backend, sources):
    """Runs the software probes of `backend`.

    Args:
        probes: The `Probes` recording failures.
        backend: The Keras backend the report describes.
        module: Its framework module (``tensorflow``, ``jax``, ``torch``),
            or None when it cannot be imported or has none.
        keras: The ``keras`` module, or None.
        keras_backend: The backend as Keras named it (None if it could not).
        sources: The `Sources` (environment, installed packages).

    Returns:
        A `SoftwareInfo`.
    """
    sw = SoftwareInfo(keras_backend=keras_backend)
    sw.versions = _versions(probes, backend, module, keras, sources.dist_version)
    if backend == "tensorflow":
        sw.tensorflow_distributions = [
            d for d in TF_DISTRIBUTIONS
            if probes.run("software.versions", sources.dist_version, d)]
    if keras is not None:
        sw.mixed_precision_policy = probes.run(
            "software.mixed_precision", lambda: keras.config.dtype_policy().name)
    fill = {"tensorflow": fill_tensorflow, "jax": fill_jax, "torch": fill_torch}.get(backend)
    if module is not None and fill is not None:
        fill(sw, probes, module, sources.dist_version)
    sw.env = perf_env(sources.environ)
    return sw
