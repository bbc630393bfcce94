"""`Sources`: where `DeviceReport.collect` reads its facts.

Every default is the real machine. Passing other sources shows the report a
different machine without touching this one: a directory laid out like ``/``
with crafted proc/ and sys/ files, an environment mapping, stand-in modules
for TensorFlow, JAX, PyTorch, Keras or NVML, a stand-in CUDA driver, command
runner or package index. The health check computes through the framework
module the same sources give.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import typing

from kerasbench import _validate
from kerasbench._device.gpu import CudaDriverApi
from kerasbench._device.frameworks import IMPORT_FIELDS
from kerasbench._device.software import dist_version


def import_tensorflow():
    """Imports and returns ``tensorflow``."""
    import tensorflow

    return tensorflow


def import_jax():
    """Imports and returns ``jax``."""
    import jax

    return jax


def import_torch():
    """Imports and returns ``torch``."""
    import torch

    return torch


def import_keras():
    """Imports and returns ``keras``."""
    import keras

    return keras


def import_nvml():
    """Imports and returns ``pynvml`` (package nvidia-ml-py)."""
    import pynvml

    return pynvml


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where the probes of `DeviceReport.collect` read.

    Attributes:
        root: Directory the file probes read under, laid out like ``/``:
            proc/ (cpuinfo, meminfo, 1/cgroup), sys/ (CPU topology, caches,
            cpufreq, NUMA nodes, cgroup limits, DMI), dev/ (nvidia*, kfd),
            etc/os-release, .dockerenv and run/.containerenv.
        environ: Environment variables (performance settings,
            CUDA_VISIBLE_DEVICES, KERAS_BACKEND, PATH for nvidia-smi).
        import_tensorflow: Returns the ``tensorflow`` module, or raises.
        import_jax: Returns the ``jax`` module, or raises.
        import_torch: Returns the ``torch`` module, or raises.
        import_keras: Returns the ``keras`` module, or raises.
        import_nvml: Returns the ``pynvml`` module, or raises ImportError.
        load_cuda_driver: Takes a library name (``"libcuda.so.1"``) and
            returns an object with `CudaDriverApi`'s methods; raises OSError
            when the library cannot be loaded.
        run_command: Runs a command like `subprocess.run` (nvidia-smi, and
            sysctl on macOS).
        dist_version: Takes a distribution name (``"jaxlib"``) and returns
            its installed version, or None when it is not installed.
        timeout_s: How long a driver call that can hang (cuInit, NVML) may
            take before its facts count as unknown.
    """

    root: str = "/"
    environ: typing.Mapping[str, str] = dataclasses.field(default_factory=lambda: os.environ)
    import_tensorflow: typing.Callable = import_tensorflow
    import_jax: typing.Callable = import_jax
    import_torch: typing.Callable = import_torch
    import_keras: typing.Callable = import_keras
    import_nvml: typing.Callable = import_nvml
    load_cuda_driver: typing.Callable = CudaDriverApi.load
    run_command: typing.Callable = subprocess.run
    dist_version: typing.Callable = dist_version
    timeout_s: float = 10.0

    def __post_init__(self):
        object.__setattr__(self, "root", _validate.path("root", self.root))
        object.__setattr__(self, "timeout_s",
                           _validate.number("timeout_s", self.timeout_s, positive=True))

    def import_framework(self, backend):
        """The framework module of Keras backend `backend`, through its import field.

        Raises:
            ValueError: If kerasbench has no device support for `backend`
                (``"numpy"``, ``"openvino"``).
            Exception: Whatever the import raised.
        """
        if backend not in IMPORT_FIELDS:
            raise ValueError(f"kerasbench lists devices for the {', '.join(IMPORT_FIELDS)} "
                             f"backends only. Received: backend={backend!r}")
        return getattr(self, IMPORT_FIELDS[backend])()
