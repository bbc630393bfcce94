"""Tests of `EnergyMeter` (a crafted powercap tree, a stand-in NVML: wrap
arounds, missing files, permission errors, NVML errors), of `NvmlApi`'s
ctypes calls on a stand-in library, and of the energy formulas against
hand-computed values. This machine has no /sys/class/powercap and no NVIDIA
driver: the reasons given for real are checked too.
"""

import ctypes
import types

import pytest

from kerasbench._efficiency.energy import (
    EnergyMeter,
    EnergyReading,
    EnergySources,
    NvmlApi,
    nvml_device,
)
from kerasbench._efficiency.figures import images_per_sec_per_watt, joules_per_image

MAX_RANGE = 262143328850  # a real max_energy_range_uj (Zen 4, Skylake alike)


def domain(root, name, label, energy_uj, max_range=MAX_RANGE):
    d = root / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


def set_energy(d, uj):
    (d / "energy_uj").write_text(f"{uj}\n")


def powercap(tmp_path):
    """Two packages, with the entries that must not be counted beside them."""
    root = tmp_path / "powercap"
    p0 = domain(root, "intel-rapl:0", "package-0", 1_000_000)
    p1 = domain(root, "intel-rapl:1", "package-1", 5_000_000)
    core = domain(root, "intel-rapl:0:0", "core", 400_000)           # inside package 0
    psys = domain(root, "intel-rapl:2", "psys", 9_000_000)            # the whole platform
    mmio = domain(root, "intel-rapl-mmio:0", "package-0", 1_000_000)  # package 0 again
    (root / "intel-rapl").mkdir()                                     # the control type
    return root, p0, p1, (core, psys, mmio)


def rapl(root, **kwargs):
    return EnergyMeter("cpu", sources=EnergySources(powercap_root=str(root), **kwargs))


# ------------------------------------------------------------------- formulas


def test_joules_per_image_and_images_per_sec_per_watt_by_hand():
    # 250 J over 1,000 images: 0.25 J each; 10 s at 25 W, 100 images/sec: 4 per watt.
    assert joules_per_image(250.0, 1000) == 0.25
    assert images_per_sec_per_watt(1000, 250.0) == 4.0
    assert images_per_sec_per_watt(1000, 250.0) == 1 / joules_per_image(250.0, 1000)
    assert joules_per_image(3, 4) == 0.75 and images_per_sec_per_watt(3, 4) == 0.75


@pytest.mark.parametrize("joules, samples", [(None, 10), (10.0, None), (0, 10), (10.0, 0)])
def test_energy_figures_are_none_when_an_input_is_unknown_or_zero(joules, samples):
    assert joules_per_image(joules, samples) is None
    assert images_per_sec_per_watt(samples, joules) is None


def test_energy_figures_refuse_bad_input():
    with pytest.raises(ValueError, match=r"`joules` must be .*Received: joules=-1"):
        joules_per_image(-1, 10)
    with pytest.raises(ValueError, match=r"Received: samples=nan"):
        images_per_sec_per_watt(float("nan"), 10.0)


# ----------------------------------------------------------------------- RAPL


def test_rapl_sums_the_package_domains_only(tmp_path):
    root, p0, p1, others = powercap(tmp_path)
    meter = rapl(root)
    meter.start()
    set_energy(p0, 1_000_000 + 30_000_000)  # 30 J
    set_energy(p1, 5_000_000 + 12_500_000)  # 12.5 J
    for d in others:
        set_energy(d, 999_000_000)          # would add hundreds of joules if counted
    assert meter.stop() == EnergyReading(42.5, "rapl", None)


def test_rapl_counter_wrap_is_undone(tmp_path):
    root = tmp_path / "powercap"
    p0 = domain(root, "intel-rapl:0", "package-0", MAX_RANGE - 1_000_000)
    meter = rapl(root)
    meter.start()
    set_energy(p0, 2_000_000)  # wrapped: 1 J to the top, then 2 J
    assert meter.stop().joules == pytest.approx(3.0)


def test_rapl_poll_keeps_two_wraps_apart(tmp_path):
    root = tmp_path / "powercap"
    p0 = domain(root, "intel-rapl:0", "package-0", 100, max_range=1000)
    meter = rapl(root)
    meter.start()
    set_energy(p0, 50)    # +950 uJ (one wrap)
    meter.poll()
    set_energy(p0, 40)    # +990 uJ (another)
    assert meter.stop().joules == pytest.approx(1940 / 1e6)


def test_rapl_spans_with_a_wrap_inside_one(tmp_path):
    root = tmp_path / "powercap"
    p0 = domain(root, "intel-rapl:0", "package-0", 900, max_range=1000)
    p1 = domain(root, "intel-rapl:1", "package-1", 0, max_range=1000)
    meter = rapl(root)
    meter.open()
    set_energy(p0, 950)                      # before resume: not counted
    meter.resume()
    set_energy(p0, 30)                       # +80 uJ, through the wrap
    set_energy(p1, 7)                        # +7 uJ
    meter.pause()
    set_energy(p0, 500)                      # paused: not counted
    meter.resume()
    set_energy(p0, 510)                      # +10 uJ
    assert meter.stop().joules == pytest.approx(97 / 1e6)


def test_rapl_absent_for_real_on_this_machine():
    reading = rapl("/sys/class/powercap")
    reading.start()
    assert reading.stop() == EnergyReading(
        None, "rapl", "/sys/class/powercap is absent (a virtual machine usually hides it)")


def test_rapl_without_a_package_domain(tmp_path):
    root = tmp_path / "powercap"
    domain(root, "intel-rapl:0", "psys", 1)
    domain(root, "intel-rapl:0:0", "core", 1)
    meter = rapl(root)
    meter.start()
    assert meter.stop().note == \
        f"{root} has no RAPL package domain (intel-rapl:N named package-N)"


def test_rapl_energy_uj_readable_by_root_only(tmp_path):
    root, *_ = powercap(tmp_path)

    def read_text(path):
        if path.endswith("energy_uj") and not path.endswith("max_energy_range_uj"):
            raise PermissionError(13, "Permission denied", path)
        with open(path) as f:
            return f.read()

    meter = rapl(root, read_text=read_text)
    meter.start()
    assert meter.stop() == EnergyReading(
        None, "rapl", "intel-rapl:0/energy_uj is not readable (needs root since Linux 5.10, "
                      "CVE-2020-8694)")


def test_rapl_file_vanishing_mid_phase(tmp_path):
    root, p0, _, _ = powercap(tmp_path)
    meter = rapl(root)
    meter.start()
    (p0 / "energy_uj").unlink()
    reading = meter.stop()
    assert reading.joules is None
    assert reading.note.startswith(f"{p0 / 'energy_uj'} cannot be read (")
    (p0 / "energy_uj").write_text("garbage\n")
    meter.start()
    assert "cannot be read (invalid literal" in meter.stop().note


# ----------------------------------------------------------------------- NVML


class FakeNvml:
    """NVML as `NvmlApi` presents it, with the counter and the codes given."""

    def __init__(self, energies_mj=(1_000_000, 1_250_500), *, init=0, handle=0, energy=0):
        self.energies = iter(energies_mj)
        self.codes = {"init": init, "handle": handle, "energy": energy}
        self.calls = []

    def init(self):
        self.calls.append("init")
        return self.codes["init"]

    def shutdown(self):
        self.calls.append("shutdown")
        return 0

    def error_string(self, code):
        return {3: "Not Supported", 4: "Insufficient Permissions",
                9: "Driver Not Loaded", 999: "Unknown Error"}.get(code)

    def handle(self, index=None, uuid=None):
        self.calls.append(("handle", index, uuid))
        return self.codes["handle"], "h"

    def total_energy_mj(self, handle):
        assert handle == "h"
        return self.codes["energy"], next(self.energies)


def nvml(fake, index=0, environ=None, platform="linux"):
    def load(name):
        assert name == "libnvidia-ml.so.1"
        return fake

    return EnergyMeter("gpu", index, sources=EnergySources(
        load_nvml=load, environ=environ or {}, platform=platform))


def test_nvml_energy_over_the_phase(tmp_path):
    fake = FakeNvml(energies_mj=(1_000_000, 1_100_000, 1_250_500))
    meter = nvml(fake)
    meter.start()
    meter.poll()  # 100 J so far
    assert meter.stop() == EnergyReading(250.5, "nvml", None)  # + 150.5 J
    assert fake.calls == ["init", ("handle", 0, None), "shutdown"]


def test_nvml_spans_leave_out_the_paused_time():
    # readings: open reads nothing; resume 1000, pause 1400 (+400 mJ),
    # [the GPU burns 10 J while paused], resume 11400, stop 11500 (+100 mJ).
    fake = FakeNvml(energies_mj=(1000, 1400, 11_400, 11_500))
    meter = nvml(fake)
    meter.open()
    assert not meter.counting
    meter.resume()
    meter.resume()  # counting already: reads nothing
    assert meter.counting
    meter.pause()
    meter.pause()   # paused already: reads nothing
    meter.resume()
    assert meter.stop() == EnergyReading(0.5, "nvml", None)


def test_a_meter_opened_and_never_resumed_counted_nothing():
    fake = FakeNvml(energies_mj=())
    meter = nvml(fake)
    meter.open()
    assert meter.stop() == EnergyReading(0.0, "nvml", None)
    assert fake.calls == ["init", ("handle", 0, None), "shutdown"]


def test_nvml_gpu_index_follows_cuda_visible_devices():
    assert nvml_device({}, 1) == {"index": 1}
    assert nvml_device({"CUDA_VISIBLE_DEVICES": "3, 1"}, 1) == {"index": 1}
    assert nvml_device({"CUDA_VISIBLE_DEVICES": "3,1"}, 0) == {"index": 3}
    assert nvml_device({"CUDA_VISIBLE_DEVICES": "GPU-8a1b"}, 0) == {"uuid": "GPU-8a1b"}
    fake = FakeNvml()
    meter = nvml(fake, index=1, environ={"CUDA_VISIBLE_DEVICES": "2,5"})
    meter.start()
    meter.stop()
    assert ("handle", 5, None) in fake.calls
    hidden = nvml(FakeNvml(), index=2, environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    hidden.start()
    assert hidden.stop().note == "CUDA_VISIBLE_DEVICES='0,1' shows no GPU 2"


@pytest.mark.parametrize("codes, note", [
    ({"energy": 3}, "this GPU has no total energy counter (Not Supported; NVML reports it on "
                    "Volta and newer)"),
    ({"init": 9}, "nvmlInit_v2 failed: Driver Not Loaded (9)"),
    ({"handle": 4}, "finding the GPU ({'index': 0}): no permission (Insufficient Permissions)"),
    ({"energy": 999}, "nvmlDeviceGetTotalEnergyConsumption failed: Unknown Error (999)"),
])
def test_nvml_errors_give_the_reason(codes, note):
    fake = FakeNvml(**codes)
    meter = nvml(fake)
    meter.start()
    assert meter.stop() == EnergyReading(None, "nvml", note)
    assert fake.calls.count("shutdown") == (fake.calls.count("init") if "init" not in codes
                                            else 0)


def test_nvml_counter_going_backwards_and_raising():
    meter = nvml(FakeNvml(energies_mj=(5000, 10)))
    meter.start()
    assert meter.stop().note == "the energy counter went backwards (the driver was reloaded)"

    fake = FakeNvml()
    fake.total_energy_mj = lambda handle: 1 / 0
    meter = nvml(fake)
    meter.start()
    assert meter.stop().note == "reading the counter failed (ZeroDivisionError: division by zero)"
    assert fake.calls[-1] == "shutdown"


def test_nvml_library_missing_for_real_and_other_platforms():
    meter = EnergyMeter("gpu")
    meter.start()
    reading = meter.stop()
    assert reading.joules is None and reading.source == "nvml"
    assert reading.note.startswith("libnvidia-ml.so.1 cannot be loaded (no NVIDIA driver: ")
    meter = nvml(FakeNvml(), platform="darwin")
    meter.start()
    assert meter.stop().note == "NVML exists for Linux and Windows only, not darwin"


def test_nvml_api_marshals_through_ctypes():
    """`NvmlApi` on a stand-in library: out-arguments written through the
    pointers it passes; a function the driver lacks is FUNCTION_NOT_FOUND."""

    def get_handle(index, out):
        assert index.value == 2
        out._obj.value = 0xBEEF
        return 0

    def energy(handle, out):
        assert handle.value == 0xBEEF
        out._obj.value = 123456789012
        return 0

    lib = types.SimpleNamespace(nvmlInit_v2=lambda: 0, nvmlDeviceGetHandleByIndex_v2=get_handle,
                                nvmlDeviceGetTotalEnergyConsumption=energy)
    api = NvmlApi(lib)
    assert api.init() == 0
    code, handle = api.handle(index=2)
    assert code == 0 and isinstance(handle, ctypes.c_void_p)
    assert api.total_energy_mj(handle) == (0, 123456789012)
    assert api.shutdown() == 13 and api.error_string(3) is None
    assert api.handle(uuid="GPU-1")[0] == 13


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"Received: device_kind='tpu'"):
        EnergyMeter("tpu")
    with pytest.raises(ValueError, match=r"`gpu_index` must be a non-negative integer. "
                                         r"Received: gpu_index=-1"):
        EnergyMeter("gpu", -1)
    assert EnergyMeter("cpu").stop() == EnergyReading(None, "rapl", "start() was not called")
