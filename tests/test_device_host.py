"""Host facts: against independent sources on this machine, and from crafted
/proc and /sys trees standing in for other machines (``Sources(root=...)``).
"""

import glob
import os
import platform
import shutil
import subprocess
import sys

import pytest

from kerasbench._device import DeviceReport, Sources
from kerasbench._device import host as device_host
from kerasbench._device import peaks
from kerasbench._device.records import HostInfo


@pytest.fixture(scope="module")
def report():
    return DeviceReport.collect()


def _meminfo_kib(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{key} not in /proc/meminfo")


def _cpuinfo_field(name):
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    return None


def _write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------
# This machine, against independent sources.


def test_host_counts_and_memory_match_the_os(report):
    h = report.host
    assert h.logical_cores == os.cpu_count()
    assert h.usable_cpus == len(os.sched_getaffinity(0))
    assert h.memory_total_bytes == _meminfo_kib("MemTotal") * 1024
    # Available memory moves; a second reading brackets it loosely.
    assert abs(h.memory_available_bytes - _meminfo_kib("MemAvailable") * 1024) < 2 * 2**30
    assert h.kernel == os.uname().release
    assert h.os == "Linux" and h.architecture == os.uname().machine
    assert h.python_version == ".".join(map(str, sys.version_info[:3]))
    if hasattr(platform, "freedesktop_os_release"):
        try:
            expected = platform.freedesktop_os_release().get("PRETTY_NAME")
        except OSError:
            expected = None
        assert h.os_release == expected


def test_physical_cores_match_lscpu_or_sysfs(report):
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu", "-p=CORE,SOCKET"], capture_output=True, text=True)
        pairs = {line for line in out.stdout.splitlines() if not line.startswith("#")}
        expected = len(pairs)
    else:  # the test's own reading of the topology files
        pairs = set()
        for cpu in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology"):
            with open(f"{cpu}/core_id") as a, open(f"{cpu}/physical_package_id") as b:
                pairs.add((a.read(), b.read()))
        expected = len(pairs)
    assert report.host.physical_cores == expected


def test_cpu_model_isa_and_caches(report):
    h = report.host
    assert h.cpu_model == (_cpuinfo_field("model name") or platform.processor())
    flags = set((_cpuinfo_field("flags") or "").split())
    for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512F"),
                       ("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX-BF16"),
                       ("avx512_fp16", "AVX-512 FP16")):
        assert (name in h.isa) == (flag in flags), name
    # glibc's getconf reads the caches from CPUID, not from sysfs.
    for key, name in (("LEVEL1_DCACHE_SIZE", "L1d"), ("LEVEL2_CACHE_SIZE", "L2")):
        out = subprocess.run(["getconf", key], capture_output=True, text=True)
        if out.stdout.strip().isdigit() and int(out.stdout) > 0:
            assert h.caches[name] == int(out.stdout), name
    assert h.container == ("docker" if os.path.exists("/.dockerenv") else h.container)
    assert h.virtual_machine == ("hypervisor" in flags or h.hypervisor is not None)


def test_cpu_peak_is_a_labelled_estimate_from_cores_clock_and_width(report):
    h = report.host
    peak = h.peak
    assert peak["estimate"] is True and peak["source"].startswith("estimate:")
    per_cycle, _ = peaks.cpu_fp32_flop_per_cycle(h.isa, h.cpu_vendor, h.cpu_family)
    cores = min(h.physical_cores, h.usable_cpus)
    mhz = h.cpu_max_mhz or h.cpu_mhz
    assert peak["fp32"] == pytest.approx(cores * mhz * 1e6 * per_cycle / 1e12, rel=1e-3)
    assert ("cpufreq" in peak["source"]) == (h.cpu_max_mhz is not None)


def test_cpu_peak_estimates_by_hand():
    # AMD Zen 4: AVX-512 on 256-bit pipes, 32 FP32 FLOP/cycle.
    zen4 = peaks.estimate_cpu_peak(
        2, 2596.0, ["AVX2", "FMA", "AVX-512F", "AVX-512 BF16"], "AuthenticAMD", 0x19,
        clock_source="test")
    assert zen4["fp32"] == pytest.approx(2 * 2596e6 * 32 / 1e12, abs=1e-4)
    assert zen4["bf16"] == pytest.approx(2 * zen4["fp32"], abs=1e-4)
    assert zen4["fp16"] is None and zen4["estimate"] is True
    # Intel Sapphire Rapids: AVX-512 with two FMA units (64) and AMX (1024).
    spr = peaks.estimate_cpu_peak(
        56, 2000.0, ["AVX2", "FMA", "AVX-512F", "AMX-BF16", "AVX-512 FP16"], "GenuineIntel", 6)
    assert spr["fp32"] == pytest.approx(56 * 2e9 * 64 / 1e12, abs=1e-4)
    assert spr["bf16"] == pytest.approx(56 * 2e9 * 1024 / 1e12, abs=1e-4)
    assert spr["fp16"] == pytest.approx(2 * spr["fp32"], abs=1e-4)
    # AVX2 + FMA: 32; Arm NEON: 16; unknown clock: no estimate.
    assert peaks.estimate_cpu_peak(4, 3000.0, ["AVX2", "FMA"])["fp32"] == \
        pytest.approx(4 * 3e9 * 32 / 1e12, abs=1e-4)
    assert peaks.estimate_cpu_peak(8, 2500.0, ["NEON"])["fp32"] == \
        pytest.approx(8 * 2.5e9 * 16 / 1e12, abs=1e-4)
    assert peaks.estimate_cpu_peak(8, None, ["NEON"]) is None


def test_cpu_peak_falls_back_to_the_clock_in_the_model_name():
    h = HostInfo(cpu_model="Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz", physical_cores=14,
                 usable_cpus=28, cpu_quota=7.0, isa=["AVX", "AVX2", "FMA"])
    peak = device_host.cpu_peak(h)
    assert peak["fp32"] == pytest.approx(7 * 2.6e9 * 32 / 1e12, abs=1e-4)  # quota: 7 CPUs
    assert "base clock in the model name" in peak["source"]
    assert device_host.cpu_peak(HostInfo(physical_cores=4, isa=["AVX2", "FMA"])) is None


# ---------------------------------------------------------------------------
# Parsers.


_XEON_CPUINFO = "\n\n".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
    f"model name\t: Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz\n"
    f"physical id\t: {i // 4}\ncore id\t\t: {i % 4 // 2}\ncpu MHz\t\t: {2000 + i}.5\n"
    "flags\t\t: fpu avx2 fma avx512f amx_bf16 amx_tile hypervisor\n"
    for i in range(8)
)


def test_parse_cpuinfo_two_socket_x86_and_arm():
    info = device_host.parse_cpuinfo(_XEON_CPUINFO)
    assert info["logical"] == 8 and info["physical_cores"] == 4 and info["sockets"] == 2
    assert info["mhz"] == 2007.5 and info["family"] == 6
    assert device_host.isa_names(info["flags"], "x86_64") == [
        "FMA", "AVX2", "AVX-512F", "AMX-TILE", "AMX-BF16"]
    arm = ("processor\t: 0\nFeatures\t: fp asimd asimdhp bf16 sve i8mm\n"
           "CPU implementer\t: 0x41\nCPU part\t: 0xd40\n")
    info = device_host.parse_cpuinfo(arm)
    assert info["model"] == "Arm Neoverse-V1" and info["physical_cores"] is None
    assert device_host.isa_names(info["flags"], "aarch64") == [
        "NEON", "NEON FP16", "I8MM", "BF16", "SVE"]


def test_parse_meminfo():
    text = "MemTotal:  1000 kB\nMemFree: 5 kB\nMemAvailable: 600 kB\n"
    total, avail = device_host.parse_meminfo(text)
    assert (total, avail) == (1000 * 1024, 600 * 1024)
    assert device_host.parse_meminfo("") == (None, None)


def test_parse_os_release():
    text = 'NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\n'
    assert device_host.parse_os_release(text) == "Ubuntu 24.04.1 LTS"
    assert device_host.parse_os_release("PRETTY_NAME='It\\'s'\n") == "It's"
    assert device_host.parse_os_release("PRETTY_NAME=Plain\n") == "Plain"
    assert device_host.parse_os_release("NAME=x\n") is None


# ---------------------------------------------------------------------------
# Crafted machines: a directory laid out like / stands in for the host.


@pytest.fixture
def xeon_root(tmp_path):
    """A two-socket, 4-core, 8-thread Xeon VM in a Docker container with cgroup v2 limits."""
    _write(tmp_path, "proc/cpuinfo", _XEON_CPUINFO)
    _write(tmp_path, "proc/meminfo", "MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n")
    for i in range(8):
        _write(tmp_path, f"sys/devices/system/cpu/cpu{i}/topology/core_id", f"{i % 4 // 2}\n")
        _write(tmp_path, f"sys/devices/system/cpu/cpu{i}/topology/physical_package_id",
               f"{i // 4}\n")
        _write(tmp_path, f"sys/devices/system/cpu/cpu{i}/cpufreq/cpuinfo_max_freq",
               f"{3800000 - i * 1000}\n")
    for index, (level, kind, size) in enumerate(
            [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
             (3, "Unified", "105M")]):
        base = f"sys/devices/system/cpu/cpu0/cache/index{index}"
        _write(tmp_path, f"{base}/level", f"{level}\n")
        _write(tmp_path, f"{base}/type", f"{kind}\n")
        _write(tmp_path, f"{base}/size", f"{size}\n")
    for node in (0, 1):
        (tmp_path / f"sys/devices/system/node/node{node}").mkdir(parents=True)
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "150000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/memory.max", f"{4 * 2**30}\n")
    _write(tmp_path, "sys/class/dmi/id/sys_vendor", "QEMU\n")
    _write(tmp_path, "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n")
    _write(tmp_path, "etc/os-release", 'PRETTY_NAME="Crafted Linux 1.0"\n')
    _write(tmp_path, ".dockerenv", "")
    return tmp_path


def test_crafted_xeon_host(xeon_root):
    r = DeviceReport.collect(probe_gpus=False, sources=Sources(root=str(xeon_root), environ={}))
    h = r.host
    assert h.cpu_model == "Intel(R) Xeon(R) Platinum 8480+ @ 2.00GHz"
    assert (h.cpu_vendor, h.cpu_family, h.cpu_mhz) == ("GenuineIntel", 6, 2007.5)
    assert (h.physical_cores, h.sockets, h.numa_nodes) == (4, 2, 2)
    assert h.cpu_max_mhz == 3800.0
    assert h.caches == {"L1d": 48 * 2**10, "L1i": 32 * 2**10, "L2": 2 * 2**20, "L3": 105 * 2**20}
    assert (h.memory_total_bytes, h.memory_available_bytes) == (16 * 2**30, 8 * 2**30)
    assert h.cpu_quota == 1.5 and h.memory_limit_bytes == 4 * 2**30
    assert (h.container, h.virtual_machine) == ("docker", True)
    assert h.hypervisor == "QEMU Standard PC (Q35 + ICH9, 2009)"
    assert h.os_release == "Crafted Linux 1.0"
    # Peak: physical cores capped by the usable CPUs and the quota, at the cpufreq maximum.
    cores = min(4, len(os.sched_getaffinity(0)))
    cores = 1.5 if 1.5 < cores else cores
    assert h.peak["fp32"] == pytest.approx(cores * 3800e6 * 64 / 1e12, abs=1e-4)
    assert "max clock from cpufreq" in h.peak["source"]
    text = str(r)
    assert "Caches         L1d 48.0 KiB, L1i 32.0 KiB, L2 2.0 MiB, L3 105 MiB" in text
    assert "Memory         16.0 GiB total, 8.0 GiB available, cgroup limit 4.0 GiB" in text
    assert "docker container, virtual machine (QEMU Standard PC" in text
    assert "A cgroup memory limit of 4.0 GiB applies." in r.notes
    assert r.probe_errors == {}


def test_empty_root_gives_unknown_host_facts_not_errors(tmp_path):
    r = DeviceReport.collect(probe_gpus=False, sources=Sources(root=str(tmp_path), environ={}))
    h = r.host
    assert h.caches == {} and h.physical_cores is None and h.cpu_mhz is None
    assert h.container is None and h.cpu_quota is None and h.memory_limit_bytes is None
    # No /proc/meminfo: os.sysconf answers instead.
    assert h.memory_total_bytes == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert "Caches         unknown" in str(r)
    assert not any(key.startswith("host.") for key in r.probe_errors)


def test_cgroup_v1_limits_and_unlimited_values(tmp_path):
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n")
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", f"{2**63 - 4096}\n")
    assert device_host.cgroup_cpu_quota(str(tmp_path)) == 2.0
    assert device_host.cgroup_memory_limit(str(tmp_path)) is None  # "unlimited"
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")  # v2 wins, and is unlimited
    assert device_host.cgroup_cpu_quota(str(tmp_path)) is None


@pytest.mark.parametrize("files, environ, expected", [
    ({"run/.containerenv": ""}, {}, "podman"),
    ({"proc/1/cgroup": "0::/kubepods/burstable/pod1\n"}, {}, "kubernetes"),
    ({"proc/1/cgroup": "0::/system.slice/containerd.service\n"}, {}, "containerd"),
    ({}, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
    ({}, {"container": "lxc"}, "lxc"),
    ({"proc/1/cgroup": "0::/\n"}, {}, None),
])
def test_container_kind(tmp_path, files, environ, expected):
    for relative, text in files.items():
        _write(tmp_path, relative, text)
    assert device_host.container_kind(str(tmp_path), environ) == expected


def test_bare_metal_and_xen(tmp_path):
    flags = {"avx2", "fma"}
    assert device_host.virtualization(flags, str(tmp_path), {})[1:] == (False, None)
    _write(tmp_path, "sys/hypervisor/type", "xen\n")
    assert device_host.virtualization(flags, str(tmp_path), {})[1:] == (True, "xen")
