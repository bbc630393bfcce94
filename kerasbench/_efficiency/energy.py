"""Energy of one phase, where the hardware reports it (docs/efficiency.md).

* NVIDIA GPU: NVML's ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules
  since the driver was loaded; Volta and newer), read through ctypes on
  ``libnvidia-ml.so.1`` at the start and the end of the phase. It is the
  board's energy, not the host's.
* CPU: RAPL through the Linux powercap tree, ``/sys/class/powercap``: the sum
  of the package domains ``intel-rapl:N`` whose ``name`` is ``package-N``
  (AMD processors appear under the same names). Subdomains (cores, uncore,
  DRAM, ``intel-rapl:N:M``) lie inside their package and ``psys`` covers the
  whole platform, so both are left out to count nothing twice. The counters
  are in microjoules and wrap at ``max_energy_range_uj``; a wrap between two
  readings is undone, two are not, so a caller that may run longer than a
  wrap takes (minutes at full power) calls `EnergyMeter.poll` now and then.

A meter counts over one span (`start` to `stop`) or over several:
`open` finds the counter without counting, `resume` counts from now on,
`pause` stops counting until the next `resume` (so `ThroughputCallback`
counts a phase's measured steps only: not its warmup, the time between
epochs, nor validation inside a training phase).

Nothing raises out of `EnergyMeter.open`, `start`, `resume`, `pause`,
`poll` or `stop`: a counter that cannot be read gives ``joules=None`` and a
note saying why.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import sys
import typing

from kerasbench import _validate

#: NVML return codes that have words of their own in a note (nvml.h).
NVML_NOT_SUPPORTED = 3
NVML_NO_PERMISSION = 4
_NVML_FUNCTION_NOT_FOUND = 13

_PACKAGE_DOMAIN = re.compile(r"^intel-rapl:\d+$")


@dataclasses.dataclass(frozen=True)
class EnergyReading:
    """The energy of one phase.

    Attributes:
        joules: Energy over the phase, or ``None`` when unknown.
        source: The counter read or tried: ``"nvml"`` or ``"rapl"``.
        note: Why ``joules`` is unknown, or ``None``.
    """

    joules: float | None
    source: str | None
    note: str | None


class NvmlApi:
    """The NVML calls the meter makes, on a library loaded by ctypes.

    Every method returns plain Python values (NVML's return code first), so a
    stand-in with the same methods can replace it.
    """

    def __init__(self, lib):
        self._lib = lib

    @classmethod
    def load(cls, name):
        """Loads the library ``name``; raises OSError when it cannot."""
        return cls(ctypes.CDLL(name))

    def _call(self, function, *args):
        fn = getattr(self._lib, function, None)
        return _NVML_FUNCTION_NOT_FOUND if fn is None else fn(*args)

    def init(self):
        """``nvmlInit_v2()``'s return code (0 on success)."""
        return self._call("nvmlInit_v2")

    def shutdown(self):
        """``nvmlShutdown()``'s return code."""
        return self._call("nvmlShutdown")

    def error_string(self, code):
        """NVML's words for a return code, or None."""
        fn = getattr(self._lib, "nvmlErrorString", None)
        if fn is None:
            return None
        fn.restype = ctypes.c_char_p
        text = fn(code)
        return text.decode(errors="replace") if text else None

    def handle(self, index=None, uuid=None):
        """``(code, handle)`` of the GPU with NVML index ``index`` or ``uuid``."""
        handle = ctypes.c_void_p()
        if uuid is not None:
            code = self._call("nvmlDeviceGetHandleByUUID", uuid.encode(), ctypes.byref(handle))
        else:
            code = self._call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index),
                              ctypes.byref(handle))
        return code, handle

    def total_energy_mj(self, handle):
        """``(code, millijoules)`` from ``nvmlDeviceGetTotalEnergyConsumption``."""
        value = ctypes.c_ulonglong(0)
        code = self._call("nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(value))
        return code, value.value


def read_text(path):
    """The text of the file at ``path``."""
    with open(path) as f:
        return f.read()


@dataclasses.dataclass(frozen=True)
class EnergySources:
    """Where `EnergyMeter` reads (the real machine unless given).

    Attributes:
        powercap_root: The ``/sys/class/powercap`` directory.
        read_text: Takes a path under it and returns the file's text; raises
            OSError (PermissionError for ``energy_uj`` without root).
        load_nvml: Takes a library name and returns an object with
            `NvmlApi`'s methods; raises OSError when it cannot be loaded.
        environ: Environment variables (``CUDA_VISIBLE_DEVICES``).
        platform: ``sys.platform``.
    """

    powercap_root: str = "/sys/class/powercap"
    read_text: typing.Callable = read_text
    load_nvml: typing.Callable = NvmlApi.load
    environ: typing.Mapping[str, str] = dataclasses.field(default_factory=lambda: os.environ)
    platform: str = sys.platform


class _Unknown(Exception):
    """The energy is unknown; the message says why."""


class EnergyMeter:
    """Reads the energy of one phase (see the module docstring).

    Args:
        device_kind: ``"cpu"`` (RAPL) or ``"gpu"`` (NVML).
        gpu_index: The GPU's index as the framework counts it (``gpu:N``):
            mapped through ``CUDA_VISIBLE_DEVICES`` to NVML's GPU.
        sources: `EnergySources`; the real machine when ``None``.

    Example:

    ```python
    meter = EnergyMeter("cpu")
    meter.start()
    reading = meter.stop()
    print(reading.joules, reading.note)
    ```
    """

    def __init__(self, device_kind, gpu_index=0, *, sources=None):
        self.device_kind = _validate.choice("device_kind", device_kind, ("cpu", "gpu"))
        self.gpu_index = _validate.integer("gpu_index", gpu_index, minimum=0)
        if sources is not None and not isinstance(sources, EnergySources):
            raise ValueError("`sources` must be an EnergySources or None. "
                             f"Received: sources={sources!r:.120}")
        self._sources = sources or EnergySources()
        self._source = "rapl" if self.device_kind == "cpu" else "nvml"
        self._counter, self._note = None, "start() was not called"

    def open(self):
        """Finds the counter (loads NVML, lists the RAPL domains) and reads
        nothing: counting begins at `resume`. Never raises."""
        _close(self._counter)
        self._counter, self._note, counter = None, None, None
        s = self._sources
        try:
            counter = _Rapl(s.powercap_root, s.read_text) if self.device_kind == "cpu" else \
                _Nvml(s.load_nvml, s.platform, s.environ, self.gpu_index)
            self._counter = counter
        except Exception as e:
            self._note = _note(e)
            _close(counter)

    def start(self):
        """Finds the counter and counts from now on (`open`, then `resume`).
        Never raises."""
        self.open()
        self.resume()

    def resume(self):
        """Counts from now on (after `open` or `pause`); nothing while
        counting already. Never raises."""
        self._guard(lambda counter: counter.resume())

    def pause(self):
        """Folds in the energy so far and counts nothing until the next
        `resume`. Never raises."""
        self._guard(lambda counter: counter.pause())

    def poll(self):
        """Folds in the counter's progress so far (RAPL: so that it never
        wraps twice between readings). Never raises; a failure makes the
        phase's energy unknown."""
        self._guard(lambda counter: counter.poll())

    @property
    def ready(self):
        """Whether a counter was found (after `open` or `start`) and no
        reading has failed since."""
        return self._counter is not None

    @property
    def counting(self):
        """Whether the meter counts now (between `resume` and `pause`)."""
        return self._counter is not None and self._counter.counting

    def _guard(self, operation):
        if self._counter is None:
            return
        try:
            operation(self._counter)
        except Exception as e:
            _close(self._counter)
            self._counter, self._note = None, _note(e)

    def stop(self):
        """The `EnergyReading` of every span counted since `open` (the one
        running now included). Never raises."""
        counter, self._counter = self._counter, None
        if counter is None:
            return EnergyReading(None, self._source, self._note)
        try:
            counter.pause()
            return EnergyReading(counter.joules, self._source, None)
        except Exception as e:
            return EnergyReading(None, self._source, _note(e))
        finally:
            _close(counter)


class _Counter:
    """A cumulative energy counter read at the ends of counted spans.

    Subclasses give ``read()`` (the counter now), ``delta(last, now)`` (the
    energy between two readings, in the counter's unit), ``scale`` (joules
    per unit) and ``close()``.
    """

    scale = 1.0

    def __init__(self):
        self._total = 0
        self._last = None  # the reading at the start of the span counted now

    @property
    def counting(self):
        return self._last is not None

    @property
    def joules(self):
        """Energy of the spans counted so far, in joules."""
        return self._total * self.scale

    def resume(self):
        if self._last is None:
            self._last = self.read()

    def poll(self):
        if self._last is not None:
            now = self.read()
            self._total += self.delta(self._last, now)
            self._last = now

    def pause(self):
        self.poll()
        self._last = None

    def close(self):
        pass


def _close(counter):
    """Releases a counter (NVML's shutdown); a failure to do so changes no figure."""
    try:
        if counter is not None:
            counter.close()
    except Exception:
        pass


def _note(error):
    if isinstance(error, _Unknown):
        return str(error)
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return f"reading the counter failed ({text[:200]})"


# ------------------------------------------------------------------- RAPL


class _Rapl(_Counter):
    """The package domains of the powercap tree, in microjoules."""

    scale = 1e-6

    def __init__(self, root, read):
        super().__init__()
        self._read = read
        if not os.path.isdir(root):
            raise _Unknown(f"{root} is absent (a virtual machine usually hides it)")
        self._domains = [os.path.join(root, d) for d in sorted(os.listdir(root))
                         if _PACKAGE_DOMAIN.match(d) and self._is_package(os.path.join(root, d))]
        if not self._domains:
            raise _Unknown(f"{root} has no RAPL package domain (intel-rapl:N named package-N)")
        self._ranges = [self._uj(d, "max_energy_range_uj") for d in self._domains]

    def read(self):
        return [self._uj(d, "energy_uj") for d in self._domains]

    def delta(self, last, now):
        """The sum over domains; a counter below its last reading wrapped once."""
        return sum(b - a if b >= a else top - a + b
                   for a, b, top in zip(last, now, self._ranges))

    def _is_package(self, domain):
        try:
            return self._read(os.path.join(domain, "name")).strip().startswith("package")
        except OSError:
            return False

    def _uj(self, domain, name):
        path = os.path.join(domain, name)
        try:
            return int(self._read(path).strip())
        except PermissionError:
            raise _Unknown(f"{os.path.basename(domain)}/{name} is not readable (needs root "
                           "since Linux 5.10, CVE-2020-8694)") from None
        except (OSError, ValueError) as e:
            raise _Unknown(f"{path} cannot be read ({e})") from None


# ------------------------------------------------------------------- NVML


def nvml_library_names(platform):
    """Names of the NVML library on ``platform`` (``sys.platform``)."""
    if platform.startswith("linux"):
        return ("libnvidia-ml.so.1", "libnvidia-ml.so")
    if platform == "win32":
        return ("nvml.dll",)
    return ()


def nvml_device(environ, index):
    """``{"index": N}`` or ``{"uuid": "GPU-..."}``: NVML's name for the
    framework's GPU ``index``, through ``CUDA_VISIBLE_DEVICES`` when set.

    Raises:
        _Unknown: When ``CUDA_VISIBLE_DEVICES`` hides that GPU.
    """
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return {"index": index}
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if index >= len(entries):
        raise _Unknown(f"CUDA_VISIBLE_DEVICES={visible!r} shows no GPU {index}")
    entry = entries[index]
    return {"index": int(entry)} if entry.isdigit() else {"uuid": entry}


class _Nvml(_Counter):
    """NVML's total energy counter of one GPU, in millijoules."""

    scale = 1e-3

    def __init__(self, load, platform, environ, index):
        super().__init__()
        names = nvml_library_names(platform)
        if not names:
            raise _Unknown(f"NVML exists for Linux and Windows only, not {platform}")
        errors = []
        self._api = None
        for name in names:
            try:
                self._api = load(name)
                break
            except OSError as e:
                errors.append(str(e))
        if self._api is None:
            raise _Unknown(f"{names[0]} cannot be loaded (no NVIDIA driver: {errors[0]})")
        which = nvml_device(environ, index)
        self._check(self._api.init(), "nvmlInit_v2")
        self._open = True
        try:
            code, self._handle = self._api.handle(**which)
            self._check(code, f"finding the GPU ({which})")
        except Exception:
            _close(self)
            raise

    def _check(self, code, what):
        if code == 0:
            return
        words = self._api.error_string(code) or "NVML error"
        if code == NVML_NOT_SUPPORTED:
            raise _Unknown(f"this GPU has no total energy counter ({words}; NVML reports it "
                           "on Volta and newer)")
        if code == NVML_NO_PERMISSION:
            raise _Unknown(f"{what}: no permission ({words})")
        raise _Unknown(f"{what} failed: {words} ({code})")

    def read(self):
        code, value = self._api.total_energy_mj(self._handle)
        self._check(code, "nvmlDeviceGetTotalEnergyConsumption")
        return value

    def delta(self, last, now):
        if now < last:
            raise _Unknown("the energy counter went backwards (the driver was reloaded)")
        return now - last

    def close(self):
        if getattr(self, "_open", False):
            self._open = False
            self._api.shutdown()
