"""JAX and PyTorch: their software facts and their GPUs.

The report describes the Keras backend in use (`backend_in_use`). For the
tensorflow backend the probes are in ``software`` and ``gpu``; this module
holds those of the jax and torch backends. Each probe takes the module it
asks (``jax``, ``torch``) and, where it reads installed packages, a
``dist_version`` lookup, so stand-ins can replace the real ones:

- ``jax``: jax/jaxlib versions; the build, from the installed GPU plugins
  (a jaxlib without a ``jax-cuda*``/``jax-rocm*`` plugin is CPU-only); the
  default platform, device list, x64 and default matmul precision; the GPUs
  from ``jax.devices("gpu")`` (device kind, compute capability, cores,
  memory statistics of JAX's allocator).
- ``torch``: the version; the build (``torch.version.cuda``/``hip``,
  cuDNN, the CUDA architectures, MKL-DNN/oneDNN, MKL, MPS); threads, the
  float32 matmul precision and TF32 switches; the GPUs from
  ``torch.cuda.device_count()``/``get_device_properties`` (or the MPS
  device on a Mac).

Nothing here infers a GPU from build facts: GPUs come from the device lists.
"""

from __future__ import annotations

import json
import os

from kerasbench._device.gpu import probe_tf_gpus
from kerasbench._device.probing import describe_error, read_text, to_str

# JAX's GPU plugins (and the older jaxlib builds with CUDA inside, whose
# version ends in "+cudaNN"); the first CUDA or ROCm one found names the build.
JAX_PLUGINS = ("jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin", "jax-cuda12-pjrt",
               "jax-rocm7-plugin", "jax-rocm7-pjrt", "jax-rocm60-plugin", "jax-rocm60-pjrt",
               "jax-metal", "libtpu")


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


def backend_in_use(probes, keras, environ):
    """``(what Keras says its backend is, the backend the report describes)``.

    Keras' own answer when it is imported (``keras.config.backend()``), else
    ``KERAS_BACKEND`` or keras.json. The first is None when Keras could not
    say; the report then describes the backend its configuration names.
    """
    if keras is not None:
        said = probes.run("software.keras_backend", keras.config.backend)
    else:
        said = probes.run("software.keras_backend", keras_backend_from_config, environ)
    if said:
        return said, str(said).strip().lower()
    fallback = probes.run("software.keras_backend_config", keras_backend_from_config, environ,
                          default="tensorflow")
    return None, str(fallback or "tensorflow").strip().lower()


# ----------------------------------------------------------------------------
# JAX.


def jax_gpu_devices(jax):
    """``(JAX's GPU devices, None)``, or ``([], why there are none)``.

    Asks ``jax.devices(platform)`` for CUDA, then ROCm (then "gpu", the name
    older JAX versions know); a plugin that failed to start says so here
    ("Backend 'cuda' failed to initialize: ...", or "Unable to initialize
    backend 'cuda'" when JAX_PLATFORMS insists on it).
    """
    errors = []
    for platform in ("cuda", "rocm", "gpu"):
        try:
            return list(jax.devices(platform)), None
        except RuntimeError as e:
            errors.append(describe_error(e))
    failed = [e for e in errors if "initialize" in e]
    return [], (failed or errors)[0]


def _plugin_kind(name):
    return "CUDA" if "cuda" in name else ("ROCm" if "rocm" in name else None)


def jax_build(jax, dist_version):
    """``(build facts, kind)``; kind is ``"CUDA"``, ``"ROCm"`` or ``"CPU-only"``.

    The facts use TensorFlow's build-info keys where they mean the same:
    ``is_cuda_build``, ``is_rocm_build``, ``cuda_version`` (the plugin's
    CUDA major version), plus ``jaxlib_version`` and ``plugins``.
    """
    jaxlib = dist_version("jaxlib")
    plugins = {name: v for name in JAX_PLUGINS if (v := dist_version(name))}
    kinds = [k for k in map(_plugin_kind, plugins) if k]
    if jaxlib and "+cuda" in jaxlib:
        kinds.insert(0, "CUDA")
    kind = kinds[0] if kinds else "CPU-only"
    cuda = next((n.split("-")[1][4:] for n in plugins if _plugin_kind(n) == "CUDA"), None)
    if cuda is None and jaxlib and "+cuda" in jaxlib:
        cuda = jaxlib.split("+cuda")[1].split(".")[0]
    facts = dict(is_cuda_build=kind == "CUDA", is_rocm_build=kind == "ROCm", cuda_version=cuda,
                 jaxlib_version=jaxlib, plugins=[f"{n} {v}" for n, v in plugins.items()])
    return facts, kind


def jax_settings(jax):
    """Default platform, device list, x64 and default matmul precision."""
    config = jax.config
    return dict(
        default_backend=jax.default_backend(),
        devices=[f"{d.platform}:{d.id}" for d in jax.devices()],
        x64=bool(getattr(config, "jax_enable_x64", False)),
        default_matmul_precision=to_str(getattr(config, "jax_default_matmul_precision", None)),
    )


def _jax_memory_free(device):
    """Bytes JAX's allocator can still hand out on `device`, or None."""
    try:
        stats = device.memory_stats() or {}
    except Exception:
        return None
    limit, used = stats.get("bytes_limit"), stats.get("bytes_in_use", 0)
    return limit - used if isinstance(limit, int) else None


def probe_jax_gpus(jax):
    """JAX's GPUs: ``(per-GPU dicts, facts for the diagnosis)``.

    ``gpu:N`` is the N-th of JAX's CUDA (or ROCm) devices; its CUDA device
    is ``local_hardware_id``. Free memory is what JAX's allocator has left (it
    reserves most of the GPU when it starts), not the driver's figure.
    """
    devices, error = jax_gpu_devices(jax)
    gpus = []
    for i, d in enumerate(devices):
        hardware = getattr(d, "local_hardware_id", None)
        gpus.append(dict(
            name=f"gpu:{i}", backend_device=f"{d.platform}:{d.id}",
            physical_index=i if hardware is None else hardware,
            model=to_str(getattr(d, "device_kind", None)),
            compute_capability=to_str(getattr(d, "compute_capability", None)),
            multiprocessors=getattr(d, "core_count", None),
            memory_free_bytes=_jax_memory_free(d),
        ))
    return gpus, {"gpu_error": error}


def fill_jax(sw, probes, jax, dist_version):
    """Fills `SoftwareInfo` `sw` from JAX."""
    sw.framework_build, sw.framework_build_kind = probes.run(
        "software.build_info", jax_build, jax, dist_version, default=(None, None))
    sw.framework_settings = probes.run("software.jax_settings", jax_settings, jax)
    settings = sw.framework_settings or {}
    sw.keras_backend_devices = settings.get("devices")
    if settings:
        precision = str(settings.get("default_matmul_precision")).lower()
        sw.tensor_float_32 = precision not in ("highest", "float32")


# ----------------------------------------------------------------------------
# PyTorch.


def cudnn_version_text(number):
    """cuDNN's version number as text: 91002 -> '9.10.2', 8902 -> '8.9.2'."""
    if not isinstance(number, int) or number <= 0:
        return None
    major, rest = (number // 10000, number % 10000) if number >= 10000 else \
        (number // 1000, number % 1000)
    return f"{major}.{rest // 100}.{rest % 100}"


def torch_build(torch):
    """``(build facts, kind)``; kind is ``"CUDA"``, ``"ROCm"`` or ``"CPU-only"``."""
    cuda = to_str(torch.version.cuda)
    hip = to_str(getattr(torch.version, "hip", None))
    backends = torch.backends
    facts = dict(
        is_cuda_build=cuda is not None, is_rocm_build=hip is not None, cuda_version=cuda,
        hip_version=hip,
        cudnn_version=cudnn_version_text(backends.cudnn.version()) if cuda else None,
        cuda_compute_capabilities=list(torch.cuda.get_arch_list()) if cuda else [],
        mkldnn=bool(backends.mkldnn.is_available()), mkl=bool(backends.mkl.is_available()),
        openmp=bool(backends.openmp.is_available()), mps_built=bool(backends.mps.is_built()),
    )
    return facts, "CUDA" if cuda else ("ROCm" if hip else "CPU-only")


def torch_devices(torch):
    """PyTorch's device names: ``["cpu", "cuda:0", ...]`` (or ``"mps"``)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    elif torch.backends.mps.is_available():
        names.append("mps")
    return names


def torch_settings(torch):
    """Float32 matmul precision, TF32 switches, MPS, and the device list."""
    backends = torch.backends
    return dict(
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        tf32_matmul=bool(backends.cuda.matmul.allow_tf32),
        tf32_cudnn=bool(backends.cudnn.allow_tf32),
        mps_available=bool(backends.mps.is_available()),
        devices=torch_devices(torch),
    )


def _torch_pci(props):
    """``"0000:0a:00.0"`` from device properties that have PCI ids, else None."""
    ids = [getattr(props, k, None) for k in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
    if not all(isinstance(i, int) for i in ids):
        return None
    return f"{ids[0]:04x}:{ids[1]:02x}:{ids[2]:02x}.0"


def probe_torch_gpus(torch):
    """PyTorch's GPUs: ``(per-GPU dicts, facts for the diagnosis)``.

    ``gpu:N`` is ``cuda:N`` (CUDA's device N, after CUDA_VISIBLE_DEVICES),
    or ``mps`` on a Mac.
    """
    gpus = []
    for name in torch_devices(torch)[1:]:
        if name == "mps":
            gpus.append(dict(name="gpu:0", backend_device="mps", physical_index=0,
                             model="Apple GPU (MPS)"))
            continue
        index = int(name.split(":")[1])
        p = torch.cuda.get_device_properties(index)
        gpus.append(dict(
            name=f"gpu:{index}", backend_device=name, physical_index=index,
            model=to_str(p.name), compute_capability=f"{p.major}.{p.minor}",
            multiprocessors=getattr(p, "multi_processor_count", None),
            memory_total_bytes=getattr(p, "total_memory", None), pci_bus_id=_torch_pci(p),
        ))
    return gpus, {}


def fill_torch(sw, probes, torch, dist_version):
    """Fills `SoftwareInfo` `sw` from PyTorch (`dist_version`, unused, keeps
    the signature of the other backends' fills)."""
    sw.framework_build, sw.framework_build_kind = probes.run(
        "software.build_info", torch_build, torch, default=(None, None))
    sw.framework_settings = probes.run("software.torch_settings", torch_settings, torch)
    settings = sw.framework_settings or {}
    sw.keras_backend_devices = settings.get("devices")
    if settings:
        sw.tensor_float_32 = settings["tf32_matmul"] or settings["tf32_cudnn"]
    sw.onednn = probes.run("software.onednn", lambda: bool(torch.backends.mkldnn.is_available()))
    sw.intra_op_threads = probes.run("software.threads", torch.get_num_threads)
    sw.inter_op_threads = probes.run("software.threads", torch.get_num_interop_threads)


# Per backend, the probe listing its GPUs: ``(per-GPU dicts, diagnosis facts)``.
GPU_PROBES = {"tensorflow": probe_tf_gpus, "jax": probe_jax_gpus, "torch": probe_torch_gpus}
