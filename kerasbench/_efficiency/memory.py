"""Peak memory of one phase: device memory on GPUs, resident host memory on CPUs.

`PeakMemory` reads the counter each backend keeps (docs/efficiency.md):

* TensorFlow GPU: ``tf.config.experimental.get_memory_info(dev)["peak"]``,
  reset at the phase start by ``reset_memory_stats``.
* JAX GPU: ``device.memory_stats()["peak_bytes_in_use"]``. JAX cannot reset
  it: when the peak at the end equals the peak at the start, the peak was
  reached before the phase, and the reading says so.
* PyTorch GPU: ``torch.cuda.max_memory_allocated``, reset by
  ``reset_peak_memory_stats``.
* CPU (host): the process's peak resident set size. On Linux, ``VmHWM`` in
  ``/proc/self/status``, reset by writing ``5`` to ``/proc/self/clear_refs``
  (Linux 4.0 and later); without that, the peak since the process started,
  said so. Elsewhere ``resource.getrusage`` (the process's peak, never reset).

A counter that resets is shared by every phase of the process: when a phase
starts inside another (validation inside a training phase), the peak reached
so far is kept for the outer one before the reset, so each phase gets the
peak of its own whole span.

A phase can also cover several spans: `PeakMemory.pause` keeps the peak so
far and stops watching, `PeakMemory.resume` watches again (resetting the
counter as `start` does), and `stop` gives the largest peak of the spans.
`ThroughputCallback` reads validation that way: each epoch's validation is
a span, so the training between them never counts toward validation's peak.

Nothing raises out of `PeakMemory.start`, `pause`, `resume` or `stop`: a
failure becomes a reading with ``peak_bytes=None`` and a note saying why.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import threading
import typing
import weakref

from kerasbench import _validate
from kerasbench._device import sources as _device_sources

#: Keras backends; device memory is read on the first three only.
BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")

_DEVICE = re.compile(r"^(cpu|gpu)(?::(\d+))?$")


@dataclasses.dataclass(frozen=True)
class MemoryReading:
    """The peak memory of one phase.

    Attributes:
        peak_bytes: The peak in bytes, or ``None`` when unknown.
        kind: ``"device"`` (GPU memory) or ``"host"`` (resident memory of the
            process on the host), or ``None`` when unknown.
        source: The counter read: ``"tensorflow.get_memory_info"``,
            ``"jax.memory_stats"``, ``"torch.cuda.max_memory_allocated"``,
            ``"proc.VmHWM"`` or ``"getrusage.ru_maxrss"``.
        note: Why the figure is unknown, or what it covers beyond the phase;
            ``None`` when it is the phase's own peak.
    """

    peak_bytes: int | None
    kind: str | None
    source: str | None
    note: str | None


def _default_getrusage():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF)


@dataclasses.dataclass(frozen=True)
class MemorySources:
    """Where `PeakMemory` reads (the real process unless given).

    Attributes:
        proc_root: The ``/proc`` directory (``self/status``, ``self/clear_refs``).
        import_tensorflow, import_jax, import_torch: Return the framework
            module, or raise.
        getrusage: Returns an object with ``ru_maxrss`` (for systems without
            ``/proc``).
        platform: ``sys.platform`` (``ru_maxrss`` is bytes on ``darwin``,
            KiB elsewhere).
    """

    proc_root: str = "/proc"
    import_tensorflow: typing.Callable = _device_sources.import_tensorflow
    import_jax: typing.Callable = _device_sources.import_jax
    import_torch: typing.Callable = _device_sources.import_torch
    getrusage: typing.Callable = _default_getrusage
    platform: str = sys.platform


def _check_device(device):
    """``None`` or ``(kind, index)`` from ``"cpu"``, ``"gpu"``, ``"gpu:N"``."""
    if device is None:
        return None
    match = _DEVICE.match(device.lower()) if isinstance(device, str) else None
    if not match:
        raise ValueError('`device` must be None, "cpu" or "gpu:N" (N >= 0). '
                         f"Received: device={device!r}")
    return match.group(1), int(match.group(2) or 0)


#: What a reading's note says when the peak may have been reached before the phase.
PREDATES = "the peak predates the phase: it is the process's peak so far, an upper bound"


def _reset_failure(source, error):
    if isinstance(error, OSError) and source == "proc.VmHWM":
        return f"/proc/self/clear_refs is not writable ({error.strerror or error})"
    return _why(f"resetting {source}", error)


def _why(action, error):
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return f"{action} failed ({text[:200]})"


class PeakMemory:
    """Reads the peak memory of one phase (see the module docstring).

    Args:
        backend: The Keras backend (``"tensorflow"``, ``"jax"``, ``"torch"``,
            ``"numpy"``, ``"openvino"``).
        device: ``"cpu"`` (host memory), ``"gpu:N"`` (device memory), or
            ``None``: the backend's default device (its first GPU when it
            has one).
        sources: `MemorySources`; the real process when ``None``.

    Example:

    ```python
    meter = PeakMemory("tensorflow", "cpu")
    meter.start()
    blocks = [bytearray(1 << 20) for _ in range(8)]
    reading = meter.stop()
    print(reading.kind, reading.peak_bytes > 0)
    ```
    """

    def __init__(self, backend, device=None, *, sources=None):
        self.backend = _validate.choice("backend", backend, BACKENDS)
        self.device = device
        self._device = _check_device(device)
        if sources is not None and not isinstance(sources, MemorySources):
            raise ValueError("`sources` must be a MemorySources or None. "
                             f"Received: sources={sources!r:.120}")
        self._sources = sources or MemorySources()
        self._reader = None
        self._failure = None

    def start(self):
        """Resets the peak counter where the backend has one, else remembers
        the peak so far. Never raises."""
        self._reader, self._failure = None, None
        try:
            reader = self._make_reader()
        except Exception as e:  # a framework that cannot tell its device
            self._failure = MemoryReading(None, None, None, _why("finding the device", e))
            return
        try:
            reader.start()
            self._reader = reader
        except Exception as e:
            self._failure = MemoryReading(None, reader.kind, reader.source,
                                          _why(f"reading {reader.source}", e))

    def pause(self):
        """Keeps the peak so far and stops watching until `resume`. Never raises."""
        self._guarded("pause")

    def resume(self):
        """Watches again after `pause`, from a reset counter where it can be
        reset. Never raises."""
        self._guarded("resume")

    def _guarded(self, operation):
        reader = self._reader
        if reader is None:
            return
        try:
            getattr(reader, operation)()
        except Exception as e:
            self._reader = None
            _forget(reader)
            self._failure = MemoryReading(None, reader.kind, reader.source,
                                          _why(f"reading {reader.source}", e))

    def stop(self):
        """The `MemoryReading` of the phase (the largest peak of its spans).
        Never raises."""
        if self._failure is not None:
            return self._failure
        reader = self._reader
        if reader is None:
            return MemoryReading(None, None, None, "start() was not called")
        try:
            return reader.stop()
        except Exception as e:
            return MemoryReading(None, reader.kind, reader.source,
                                 _why(f"reading {reader.source}", e))
        finally:
            _forget(reader)

    def _make_reader(self):
        kind, index = self._device or self._default_device()
        if kind == "cpu":
            return _host_reader(self._sources)
        if self.backend == "tensorflow":
            return _TensorFlowGpu(self._sources.import_tensorflow(), index)
        if self.backend == "torch":
            return _TorchGpu(self._sources.import_torch(), index)
        if self.backend == "jax":
            return _JaxGpu(self._sources.import_jax(), index)
        return _Unknown("device", f"kerasbench reads device memory on the TensorFlow, JAX "
                                  f"and PyTorch backends only, not on {self.backend}")

    def _default_device(self):
        """``("gpu", 0)`` when the backend's first device is a GPU, else ``("cpu", 0)``."""
        s = self._sources
        if self.backend == "tensorflow":
            gpu = bool(s.import_tensorflow().config.list_logical_devices("GPU"))
        elif self.backend == "jax":
            gpu = s.import_jax().devices()[0].platform == "gpu"
        elif self.backend == "torch":
            gpu = bool(s.import_torch().cuda.is_available())
        else:
            gpu = False
        return ("gpu" if gpu else "cpu"), 0


# ----------------------------------------------------------------- readers

_LOCK = threading.Lock()
#: The readers running now on each resettable counter.
_OPEN: dict = {}


def _forget(reader):
    with _LOCK:
        _OPEN.get(reader.key, set()).discard(reader)


class _Unknown:
    key = None
    source = None

    def __init__(self, kind, note):
        self.kind, self.note = kind, note

    def start(self):
        pass

    pause = resume = start

    def stop(self):
        return MemoryReading(None, self.kind, None, self.note)


class _Resettable:
    """A peak counter that can be reset: subclasses give ``key``, ``kind``,
    ``source``, ``read()`` (the peak in bytes) and ``reset()``."""

    def start(self):
        self.kept, self.note, self.upper_bound = 0, None, False
        self.paused = False
        self._enter()

    def _enter(self):
        self.baseline = None
        with _LOCK:
            peers = _OPEN.setdefault(self.key, weakref.WeakSet())
            if peers:  # keep the peak so far for the phases this one is inside
                current = self.read()
                for peer in peers:
                    peer.kept = max(peer.kept, current)
            try:
                self.reset()
            except Exception as e:
                self.baseline = self.read()
                self.note = f"{_reset_failure(self.source, e)}; {PREDATES}"
            peers.add(self)

    def _leave(self):
        """Folds the span's peak into ``kept``. Called under ``_LOCK``."""
        peak = self.read()
        # Without a reset, only a peak above the one at the span's start was
        # reached within the span.
        if self.baseline is not None and peak <= self.baseline:
            self.upper_bound = True
        self.kept = max(self.kept, peak)

    def pause(self):
        if self.paused:
            return
        with _LOCK:
            self._leave()
            _OPEN.get(self.key, set()).discard(self)
        self.paused = True

    def resume(self):
        if self.paused:
            self.paused = False
            self._enter()

    def stop(self):
        if not self.paused:
            with _LOCK:
                self._leave()
        return MemoryReading(int(self.kept), self.kind, self.source,
                             self.note if self.upper_bound else None)


class _TensorFlowGpu(_Resettable):
    kind, source = "device", "tensorflow.get_memory_info"

    def __init__(self, tf, index):
        self._tf, self._name = tf, f"GPU:{index}"
        self.key = ("tensorflow", index)

    def read(self):
        return int(self._tf.config.experimental.get_memory_info(self._name)["peak"])

    def reset(self):
        self._tf.config.experimental.reset_memory_stats(self._name)


class _TorchGpu(_Resettable):
    kind, source = "device", "torch.cuda.max_memory_allocated"

    def __init__(self, torch, index):
        self._cuda, self._index = torch.cuda, index
        self.key = ("torch", index)

    def read(self):
        return int(self._cuda.max_memory_allocated(self._index))

    def reset(self):
        self._cuda.reset_peak_memory_stats(self._index)


class _ProcHost(_Resettable):
    """VmHWM of /proc/self/status, reset through /proc/self/clear_refs."""

    kind, source = "host", "proc.VmHWM"

    def __init__(self, proc_root):
        self._root = proc_root
        self.key = ("host", proc_root)

    def read(self):
        with open(os.path.join(self._root, "self", "status")) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    value, unit = line.split()[1:3]
                    if unit != "kB":
                        raise ValueError(f"VmHWM in unexpected units: {line.strip()!r}")
                    return int(value) * 1024
        raise ValueError("VmHWM is missing from /proc/self/status")

    def reset(self):
        # Documentation/filesystems/proc.rst: "echo 5 > /proc/PID/clear_refs"
        # resets the peak RSS to the current RSS (Linux 4.0 and later).
        with open(os.path.join(self._root, "self", "clear_refs"), "w") as f:
            f.write("5")


class _Baseline:
    """A peak counter that cannot be reset: its value at a span's start tells
    whether the span reached a new peak. Subclasses give ``read()``."""

    key = None

    def start(self):
        self._peak, self._upper_bound, self._missing = None, False, False
        self.paused = False
        self._enter()

    def _enter(self):
        self._before = self.read()

    def _leave(self):
        peak = self.read()
        if peak is None:
            self._missing = True
            return
        if self._before is not None and peak <= self._before:
            self._upper_bound = True
        self._peak = peak if self._peak is None else max(self._peak, peak)

    def pause(self):
        if not self.paused:
            self._leave()
            self.paused = True

    def resume(self):
        if self.paused:
            self.paused = False
            self._enter()

    def stop(self):
        if not self.paused:
            self._leave()
        if self._missing or self._peak is None:
            return MemoryReading(None, self.kind, self.source, self.missing)
        note = f"{self.cannot_reset}, and {PREDATES}" if self._upper_bound else None
        return MemoryReading(self._peak, self.kind, self.source, note)


class _JaxGpu(_Baseline):
    """peak_bytes_in_use of a JAX device."""

    kind, source = "device", "jax.memory_stats"
    cannot_reset = "JAX cannot reset its peak counter"

    def __init__(self, jax, index):
        self._device = jax.devices("gpu")[index]
        self.missing = f"{self._device} reports no peak_bytes_in_use"

    def read(self):
        stats = self._device.memory_stats()
        if not stats or "peak_bytes_in_use" not in stats:
            return None
        return int(stats["peak_bytes_in_use"])


class _RusageHost(_Baseline):
    """ru_maxrss of getrusage: the process's peak."""

    kind, source = "host", "getrusage.ru_maxrss"
    cannot_reset = "getrusage cannot reset its peak"
    missing = None

    def __init__(self, getrusage, platform):
        self._getrusage, self._scale = getrusage, 1 if platform == "darwin" else 1024

    def read(self):
        return int(self._getrusage().ru_maxrss) * self._scale


def _host_reader(sources):
    if os.path.exists(os.path.join(sources.proc_root, "self", "status")):
        return _ProcHost(sources.proc_root)
    if sources.platform == "win32":
        return _Unknown("host", "kerasbench has no reader of peak host memory on Windows")
    return _RusageHost(sources.getrusage, sources.platform)
