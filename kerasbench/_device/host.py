"""Host probes: CPU, instruction sets, caches, memory, OS, containers and VMs.

The parsers take text, and every probe takes the directory it reads under
(``root``, ``/`` on the real machine), so a crafted tree of proc/ and sys/
files stands in for another machine. `collect_host` runs them all.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import subprocess
import sys

from kerasbench._device import peaks
from kerasbench._device.probing import read_text, to_float, to_int
from kerasbench._device.records import HostInfo

X86_ISA = (
    ("sse2", "SSE2"),
    ("sse4_2", "SSE4.2"),
    ("avx", "AVX"),
    ("fma", "FMA"),
    ("f16c", "F16C"),
    ("avx2", "AVX2"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx512f", "AVX-512F"),
    ("avx512bw", "AVX-512BW"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512_fp16", "AVX-512 FP16"),
    ("amx_tile", "AMX-TILE"),
    ("amx_int8", "AMX-INT8"),
    ("amx_bf16", "AMX-BF16"),
    ("amx_fp16", "AMX-FP16"),
)
ARM_ISA = (
    ("asimd", "NEON"),
    ("asimdhp", "NEON FP16"),
    ("asimddp", "NEON DOTPROD"),
    ("i8mm", "I8MM"),
    ("bf16", "BF16"),
    ("sve", "SVE"),
    ("sve2", "SVE2"),
    ("sme", "SME"),
)
ARM_PARTS = {
    ("0x41", "0xd0c"): "Arm Neoverse-N1",
    ("0x41", "0xd40"): "Arm Neoverse-V1",
    ("0x41", "0xd49"): "Arm Neoverse-N2",
    ("0x41", "0xd4f"): "Arm Neoverse-V2",
    ("0x41", "0xd08"): "Arm Cortex-A72",
    ("0x41", "0xd0b"): "Arm Cortex-A76",
    ("0xc0", "0xac3"): "Ampere-1",
}
# Words in DMI vendor/product names that mean a virtual machine.
HYPERVISOR_WORDS = ("QEMU", "KVM", "VMware", "VirtualBox", "innotek", "Xen", "Amazon EC2",
                    "Google Compute Engine", "Virtual Machine", "OpenStack", "Bochs")
# Words in /proc/1/cgroup that mean a container, and the container they name.
CGROUP_CONTAINERS = {"kubepods": "kubernetes", "docker": "docker", "containerd": "containerd",
                     "libpod": "podman", "lxc": "lxc"}
_CACHE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def _under(root, relative):
    return os.path.join(root, relative)


def _glob(root, pattern):
    return sorted(glob.glob(os.path.join(glob.escape(root), pattern)))


# ----------------------------------------------------------------------------
# Parsers of /proc and /etc text.


def _cpuinfo_blocks(text):
    """One dict per blank-line-separated block of /proc/cpuinfo, keys lower case."""
    blocks = []
    for block in re.split(r"\n\s*\n", text or ""):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        blocks.append(fields)
    return blocks


def _add_cpuinfo_block(info, fields):
    if fields.get("processor", "").isdigit():
        info["logical"] += 1
    info["model"] = info["model"] or fields.get("model name")
    info["vendor"] = info["vendor"] or fields.get("vendor_id")
    if info["family"] is None and "cpu family" in fields:
        info["family"] = to_int(fields["cpu family"])
    flags = fields.get("flags") or fields.get("features")
    if flags:
        info["flags"].update(flags.split())
    mhz = to_float(fields.get("cpu mhz"))
    if mhz and (info["mhz"] is None or mhz > info["mhz"]):
        info["mhz"] = mhz


def parse_cpuinfo(text):
    """Parses /proc/cpuinfo text into the facts the report needs.

    Args:
        text: Contents of /proc/cpuinfo (x86 or Arm layout).

    Returns:
        A dict with ``model``, ``vendor``, ``family``, ``flags`` (set),
        ``mhz`` (the highest "cpu MHz"), ``physical_cores`` (distinct
        physical id/core id pairs, or None when the file has none),
        ``sockets`` and ``logical`` (processor entries).
    """
    info = dict(model=None, vendor=None, family=None, flags=set(), mhz=None,
                physical_cores=None, sockets=None, logical=0)
    cores, arm_part = set(), None
    for fields in _cpuinfo_blocks(text):
        _add_cpuinfo_block(info, fields)
        if "physical id" in fields and "core id" in fields:
            cores.add((fields["physical id"], fields["core id"]))
        if "cpu implementer" in fields and "cpu part" in fields:
            arm_part = (fields["cpu implementer"].lower(), fields["cpu part"].lower())
    if cores:
        info["physical_cores"] = len(cores)
        info["sockets"] = len({package for package, _ in cores})
    if info["model"] is None and arm_part is not None:
        info["model"] = ARM_PARTS.get(arm_part, "Arm CPU (implementer %s, part %s)" % arm_part)
    return info


def isa_names(flags, machine):
    """Maps CPU flags to the instruction-set names the report shows.

    Args:
        flags: Flag words from /proc/cpuinfo (``flags`` on x86, ``Features``
            on Arm).
        machine: ``platform.machine()``, e.g. ``"x86_64"`` or ``"aarch64"``.

    Returns:
        The deep-learning-relevant instruction sets present, in a fixed order.
    """
    flags = set(flags or ())
    arm = str(machine).lower() in ("aarch64", "arm64") or "asimd" in flags
    table = ARM_ISA if arm else X86_ISA
    return [name for flag, name in table if flag in flags]


def parse_meminfo(text):
    """Returns ``(total_bytes, available_bytes)`` from /proc/meminfo text."""
    values = {}
    for line in (text or "").splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[key.strip()] = int(parts[0]) * scale
    return values.get("MemTotal"), values.get("MemAvailable")


def parse_os_release(text):
    """Returns ``PRETTY_NAME`` from os-release text (quotes removed), or None."""
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if key != "PRETTY_NAME" or not sep:
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return re.sub(r"\\([$\"'\\`])", r"\1", value) or None
    return None


# ----------------------------------------------------------------------------
# Probes of /sys and /proc, each reading under `root`.


def os_release(root="/"):
    """``PRETTY_NAME`` of etc/os-release (or usr/lib/os-release) under `root`."""
    for relative in ("etc/os-release", "usr/lib/os-release"):
        text = read_text(_under(root, relative))
        if text is not None:
            return parse_os_release(text)
    return None


def _cache_entry(index_dir):
    """``("L1d", bytes)`` from one sys/.../cache/indexN directory, or None."""
    level = to_int(read_text(os.path.join(index_dir, "level")))
    kind = (read_text(os.path.join(index_dir, "type")) or "").strip()
    size = (read_text(os.path.join(index_dir, "size")) or "").strip().upper()
    m = re.fullmatch(r"(\d+)([KMG]?)", size)
    if level is None or not m:
        return None
    name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
    return name, int(m.group(1)) * _CACHE_UNITS[m.group(2)]


def cpu_caches(root="/"):
    """Cache name -> size in bytes, for CPU 0 (``{"L1d": 32768, ...}``)."""
    entries = (_cache_entry(d) for d in _glob(root, "sys/devices/system/cpu/cpu0/cache/index*"))
    return dict(entry for entry in entries if entry)


def cpu_topology(root="/"):
    """``(physical_cores, sockets)`` from sysfs topology files; None where absent."""
    cores, packages = set(), set()
    for cpu in _glob(root, "sys/devices/system/cpu/cpu[0-9]*/topology"):
        package = read_text(os.path.join(cpu, "physical_package_id"))
        core = read_text(os.path.join(cpu, "core_id"))
        if package is None or core is None:
            continue
        cores.add((package.strip(), core.strip()))
        packages.add(package.strip())
    return (len(cores) or None), (len(packages) or None)


def cpu_max_mhz(root="/"):
    """Highest ``cpufreq/cpuinfo_max_freq`` in MHz, or None."""
    values = []
    for path in _glob(root, "sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        khz = to_int(read_text(path))
        if khz:
            values.append(khz / 1000)
    return max(values) if values else None


def numa_nodes(root="/"):
    """Number of NUMA nodes in sysfs, or None."""
    return len(_glob(root, "sys/devices/system/node/node[0-9]*")) or None


def sve_vector_bits(root="/"):
    """Arm SVE default vector length in bits, or None."""
    length = to_int(read_text(_under(root, "proc/sys/abi/sve_default_vector_length")))
    return length * 8 if length else None


def cgroup_cpu_quota(root="/"):
    """CPUs the cgroup allows (cgroup v2 cpu.max, else v1); None if unlimited."""
    text = read_text(_under(root, "sys/fs/cgroup/cpu.max"))
    if text:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            return int(parts[0]) / int(parts[1])
        return None
    quota = to_int(read_text(_under(root, "sys/fs/cgroup/cpu/cpu.cfs_quota_us")))
    period = to_int(read_text(_under(root, "sys/fs/cgroup/cpu/cpu.cfs_period_us")))
    return quota / period if quota and period and quota > 0 else None


def cgroup_memory_limit(root="/"):
    """The cgroup memory limit in bytes (v2 memory.max, else v1); None if unlimited."""
    limit = to_int(read_text(_under(root, "sys/fs/cgroup/memory.max")))
    if limit is None:
        limit = to_int(read_text(_under(root, "sys/fs/cgroup/memory/memory.limit_in_bytes")))
    return None if limit is None or limit >= 2**60 else limit


def container_kind(root="/", environ=os.environ):
    """``"docker"``, ``"podman"``, ``"kubernetes"``, ... or None when none is seen."""
    if os.path.exists(_under(root, ".dockerenv")):
        return "docker"
    if os.path.exists(_under(root, "run/.containerenv")):
        return "podman"
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    cgroup = read_text(_under(root, "proc/1/cgroup")) or ""
    for word, kind in CGROUP_CONTAINERS.items():
        if word in cgroup:
            return kind
    return environ.get("container") or None


def hypervisor_name(root="/"):
    """The hypervisor named by DMI or sys/hypervisor/type, or None."""
    parts = (read_text(_under(root, f"sys/class/dmi/id/{name}"))
             for name in ("sys_vendor", "product_name"))
    vendor = " ".join(p.strip() for p in parts if p and p.strip())
    if any(word.lower() in vendor.lower() for word in HYPERVISOR_WORDS):
        return vendor
    return (read_text(_under(root, "sys/hypervisor/type")) or "").strip() or None


def virtualization(flags, root="/", environ=os.environ):
    """Returns ``(container, virtual_machine, hypervisor)``.

    Args:
        flags: CPU flags (the ``hypervisor`` flag marks a VM on x86).
        root: Directory the probes read under.
        environ: Environment variables.
    """
    container = container_kind(root, environ)
    release = platform.release().lower()
    if "microsoft" in release or "wsl" in release:
        return container, True, "WSL (Hyper-V)"
    hypervisor = hypervisor_name(root)
    if "hypervisor" in flags or hypervisor:
        return container, True, hypervisor
    if sys.platform.startswith("linux") and flags:
        return container, False, None
    return container, None, None


def sysconf_memory():
    """``(total_bytes, available_bytes)`` from ``os.sysconf``."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    available = None
    if "SC_AVPHYS_PAGES" in os.sysconf_names:
        available = os.sysconf("SC_AVPHYS_PAGES") * page
    return total, available


def darwin_sysctl(key, run=subprocess.run):
    """``sysctl -n key`` on macOS, or None."""
    out = run(["sysctl", "-n", key], capture_output=True, text=True, timeout=5)
    return out.stdout.strip() or None if out.returncode == 0 else None


# ----------------------------------------------------------------------------
# Collection.


def _fill_platform(host, probes, root):
    host.architecture = platform.machine() or None
    host.logical_cores = os.cpu_count()
    host.os = platform.system() or None
    host.kernel = platform.release() or None
    host.python_version = platform.python_version()
    host.python_implementation = platform.python_implementation()
    if host.os == "Linux":
        host.os_release = probes.run("host.os_release", os_release, root)
    elif host.os == "Darwin":
        host.os_release = "macOS " + platform.mac_ver()[0]
    elif host.os == "Windows":
        host.os_release = f"Windows {platform.version()}"
    if hasattr(os, "sched_getaffinity"):
        host.usable_cpus = probes.run("host.usable_cpus", lambda: len(os.sched_getaffinity(0)))


def _fill_cpu(host, probes, cpuinfo, root):
    host.cpu_model = cpuinfo.get("model")
    host.cpu_vendor = cpuinfo.get("vendor")
    host.cpu_family = cpuinfo.get("family")
    host.cpu_mhz = cpuinfo.get("mhz")
    host.isa = isa_names(cpuinfo.get("flags"), host.architecture)
    cores, sockets = probes.run("host.topology", cpu_topology, root, default=(None, None))
    host.physical_cores = cores or cpuinfo.get("physical_cores")
    host.sockets = sockets or cpuinfo.get("sockets")
    host.numa_nodes = probes.run("host.numa_nodes", numa_nodes, root)
    host.cpu_max_mhz = probes.run("host.cpu_max_mhz", cpu_max_mhz, root)
    host.caches = probes.run("host.caches", cpu_caches, root, default={}) or {}
    if "SVE" in host.isa:
        host.sve_vector_bits = probes.run("host.sve", sve_vector_bits, root)


def _fill_memory(host, probes, root):
    host.memory_total_bytes, host.memory_available_bytes = probes.run(
        "host.meminfo", parse_meminfo, read_text(_under(root, "proc/meminfo")),
        default=(None, None))
    if host.memory_total_bytes is None and hasattr(os, "sysconf"):
        host.memory_total_bytes, host.memory_available_bytes = probes.run(
            "host.sysconf_memory", sysconf_memory, default=(None, None))
    host.cpu_quota = probes.run("host.cgroup", cgroup_cpu_quota, root)
    limit = probes.run("host.cgroup", cgroup_memory_limit, root)
    if limit is not None and (host.memory_total_bytes is None or limit < host.memory_total_bytes):
        host.memory_limit_bytes = limit


def _fill_from_sysctl(host, probes, run):
    def sysctl(key):
        return probes.run("host.sysctl", darwin_sysctl, key, run)

    host.cpu_model = host.cpu_model or sysctl("machdep.cpu.brand_string")
    host.physical_cores = host.physical_cores or to_int(sysctl("hw.physicalcpu"))
    host.memory_total_bytes = host.memory_total_bytes or to_int(sysctl("hw.memsize"))


def cpu_peak(host):
    """The CPU peak estimate for a `HostInfo` (see `peaks.estimate_cpu_peak`)."""
    cores = [c for c in (host.physical_cores, host.usable_cpus) if c]
    cores = min(cores) if cores else host.logical_cores
    if cores and host.cpu_quota and host.cpu_quota < cores:
        cores = round(host.cpu_quota, 2)
    if host.cpu_max_mhz:
        mhz, source = host.cpu_max_mhz, "max clock from cpufreq"
    elif host.cpu_mhz:
        mhz, source = host.cpu_mhz, "current clock, 'cpu MHz' in /proc/cpuinfo"
    else:
        m = re.search(r"@\s*([\d.]+)\s*GHz", host.cpu_model or "")
        mhz, source = None, ""
        if m:
            mhz, source = float(m.group(1)) * 1000, "base clock in the model name"
    return peaks.estimate_cpu_peak(cores, mhz, host.isa, host.cpu_vendor, host.cpu_family,
                                   host.sve_vector_bits, source)


def collect_host(probes, sources):
    """Runs every host probe.

    Args:
        probes: The `Probes` recording failures.
        sources: The `Sources` to read (``root``, ``environ``, ``run_command``).

    Returns:
        A `HostInfo`.
    """
    host = HostInfo()
    _fill_platform(host, probes, sources.root)
    cpuinfo = probes.run("host.cpuinfo", parse_cpuinfo,
                         read_text(_under(sources.root, "proc/cpuinfo")), default={}) or {}
    _fill_cpu(host, probes, cpuinfo, sources.root)
    _fill_memory(host, probes, sources.root)
    if host.os == "Darwin":
        _fill_from_sysctl(host, probes, sources.run_command)
    if host.cpu_model is None:
        host.cpu_model = platform.processor() or None
    host.container, host.virtual_machine, host.hypervisor = probes.run(
        "host.virtualization", virtualization, cpuinfo.get("flags") or set(), sources.root,
        sources.environ, default=(None, None, None))
    host.peak = probes.run("host.peak", cpu_peak, host)
    return host
