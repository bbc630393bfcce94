"""The health check's primitives, once per Keras backend.

``health`` writes the check once (inputs, float64 references, tolerances,
timing, verdict); an adapter here does the few steps that differ per
framework, bound to one device (``"cpu"`` or ``"gpu:N"``):

- ``host(array, precision)``: a host tensor rounded to the precision (what
  the float64 reference is computed from);
- ``to_device(t)``, ``to_host(t)``: copies (each call copies again);
- ``matmul(a, b)``, ``conv2d(x, w)``: run on the device (NHWC input, HWIO
  filter, stride 1, "SAME" padding);
- ``sync(t)``: waits until the device has produced `t` (GPU work is
  asynchronous);
- ``to_numpy(t)``: the values as float64 NumPy;
- ``ran_on(t)``: where `t` is, ``"cpu"`` or ``"gpu:N"``;
- ``tf32_ops(software)``: the ops a GPU of compute capability 8.0 or more
  runs in TF32 for float32 inputs, with the settings the report read.

`TensorFlowOps`, `JaxOps` and `TorchOps` implement them; `OPS` maps a
Keras backend to its adapter. Importing this module imports no framework:
each adapter is given the module (which `Sources` imported).
"""

from __future__ import annotations

import re

from kerasbench._device.backends import jax_gpu_devices

# The framework dtype of each precision, and its size in bytes.
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ITEMSIZE = {"fp32": 4, "fp16": 2, "bf16": 2}
BOTH = frozenset({"matmul", "conv2d"})


def gpu_index(device):
    """``"gpu:1"`` -> 1."""
    return int(device.split(":")[1])


def _float64(values):
    import numpy as np

    return np.asarray(values).astype(np.float64)


class Ops:
    """One framework's primitives on one device; see the module docstring.

    Args:
        module: The framework module (``tensorflow``, ``jax``, ``torch``) or
            a stand-in for it.
        device: ``"cpu"`` or ``"gpu:N"``.
        gpu: The device's `GpuInfo` from the report, or None for the CPU.
    """

    backend = None

    def __init__(self, module, device, gpu=None):
        self.m, self.device, self.gpu = module, device, gpu

    @staticmethod
    def tf32_ops(software):
        """The ops run in TF32 on an Ampere-or-newer GPU with these settings."""
        return frozenset()


class TensorFlowOps(Ops):
    """TensorFlow: ops placed with ``tf.device``; sync by fetching one element."""

    backend = "tensorflow"

    def __init__(self, module, device, gpu=None):
        super().__init__(module, device, gpu)
        self._name = "/CPU:0" if device == "cpu" else f"/GPU:{gpu_index(device)}"

    @staticmethod
    def tf32_ops(software):
        return BOTH if software.tensor_float_32 else frozenset()

    def host(self, array, precision):
        tf = self.m
        with tf.device("/CPU:0"):
            return tf.cast(tf.constant(array, tf.float32), getattr(tf, DTYPES[precision]))

    def to_numpy(self, t):
        return _float64(t.numpy())

    def to_device(self, t):
        """A copy on the device, made from a fresh host handle.

        Eager TensorFlow caches ("mirrors") the device copy of a host tensor
        on the tensor's handle, so copying one handle twice copies once.
        ``tf.identity`` on the CPU makes a new handle sharing the buffer,
        at no copy of its own.
        """
        tf = self.m
        with tf.device("/CPU:0"):
            fresh = tf.identity(t)
        with tf.device(self._name):
            return tf.identity(fresh)

    def to_host(self, t):
        tf = self.m
        with tf.device("/CPU:0"):
            return tf.identity(t)

    def matmul(self, a, b):
        with self.m.device(self._name):
            return self.m.matmul(a, b)

    def conv2d(self, x, w):
        with self.m.device(self._name):
            return self.m.nn.conv2d(x, w, strides=1, padding="SAME")

    def sync(self, t):
        """Fetches one element to the host, sliced on the tensor's own device.

        Eager TensorFlow would otherwise place the slice on a GPU, copying
        the whole tensor there; the device's stream completes every op
        queued before it, so the host clock then covers all of that work.
        """
        with self.m.device(t.device):
            return t[(0,) * len(t.shape)].numpy()

    def ran_on(self, t):
        m = re.search(r"device:(\w+):(\d+)", t.device or "")
        if not m:
            return None
        kind, index = m.group(1).lower(), m.group(2)
        return "cpu" if kind == "cpu" else f"{kind}:{index}"


class JaxOps(Ops):
    """JAX: arrays committed to a device with ``jax.device_put``; ops follow
    their inputs; sync with ``block_until_ready()``."""

    backend = "jax"

    def __init__(self, module, device, gpu=None):
        super().__init__(module, device, gpu)
        self._gpus = [] if device == "cpu" else jax_gpu_devices(module)[0]
        self._target = module.devices("cpu")[0] if device == "cpu" else \
            self._gpus[gpu_index(device)]

    @staticmethod
    def tf32_ops(software):
        precision = str((software.framework_settings or {}).get("default_matmul_precision"))
        return frozenset() if precision.lower() in ("highest", "float32") else BOTH

    def host(self, array, precision):
        import numpy as np

        return np.asarray(array, np.float32).astype(getattr(self.m.numpy, DTYPES[precision]))

    def to_numpy(self, t):
        return _float64(self.m.device_get(t))

    def to_device(self, t):
        return self.m.device_put(t, self._target)

    def to_host(self, t):
        return self.m.device_get(t)

    def matmul(self, a, b):
        return self.m.numpy.matmul(a, b)

    def conv2d(self, x, w):
        return self.m.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def sync(self, t):
        ready = getattr(t, "block_until_ready", None)  # NumPy arrays are ready
        if ready is not None:
            ready()

    def ran_on(self, t):
        d = next(iter(t.devices()))
        if d.platform == "cpu":
            return "cpu"
        return f"gpu:{self._gpus.index(d)}" if d in self._gpus else f"{d.platform}:{d.id}"


class TorchOps(Ops):
    """PyTorch: tensors moved with ``.to(device)``; ops follow their inputs;
    sync with ``torch.cuda.synchronize`` (``torch.mps.synchronize`` on a Mac;
    CPU ops are synchronous)."""

    backend = "torch"

    def __init__(self, module, device, gpu=None):
        super().__init__(module, device, gpu)
        name = "cpu" if device == "cpu" else \
            ((gpu.backend_device if gpu else None) or f"cuda:{gpu_index(device)}")
        self._kind = name.split(":")[0]
        self._target = module.device(name)

    @staticmethod
    def tf32_ops(software):
        s = software.framework_settings or {}
        matmul = s.get("tf32_matmul") or s.get("float32_matmul_precision") in ("high", "medium")
        return frozenset({"matmul"} if matmul else ()) | \
            frozenset({"conv2d"} if s.get("tf32_cudnn") is not False else ())

    def host(self, array, precision):
        import numpy as np

        torch = self.m
        return torch.from_numpy(np.asarray(array, np.float32)).to(getattr(torch, DTYPES[precision]))

    def to_numpy(self, t):
        return _float64(t.detach().to("cpu", self.m.float32).numpy())

    def to_device(self, t):
        return t.to(self._target)

    def to_host(self, t):
        return t.to("cpu")

    def matmul(self, a, b):
        return self.m.matmul(a, b)

    def conv2d(self, x, w):
        """NHWC x HWIO as PyTorch's NCHW x OIHW, back to NHWC."""
        y = self.m.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1),
                                        padding="same")
        return y.permute(0, 2, 3, 1)

    def sync(self, t):
        if self._kind == "cuda":
            self.m.cuda.synchronize(self._target)
        elif self._kind == "mps":
            self.m.mps.synchronize()

    def ran_on(self, t):
        d = t.device
        if d.type == "cpu":
            return "cpu"
        return "gpu:0" if d.type == "mps" else f"gpu:{d.index or 0}"


OPS = {"tensorflow": TensorFlowOps, "jax": JaxOps, "torch": TorchOps}
