"""Theoretical peak throughput of common NVIDIA GPUs, and CPU peak estimates.

All GPU figures are dense (no 2:4 structured sparsity) peak TFLOP/s taken from
NVIDIA's own datasheets and architecture whitepapers, named in each entry's
``source``. Where a datasheet gives only the "with sparsity" figure (marked
with an asterisk there), the dense figure is half of it. "fp16"/"bf16" are the
tensor-core rates with FP32 accumulation (what TensorFlow's matmul uses); "tf32"
is the rate of FP32 matmuls run on tensor cores in TF32 mode (Ampere and newer,
on by default in TensorFlow). ``None`` means the GPU has no fast path for that
precision (or NVIDIA publishes no figure), so no peak is claimed.

The CPU figure is an estimate, not a datasheet value: cores x clock x FLOPs per
cycle per core, the last from the vector instruction set (see
`estimate_cpu_peak`). docs/device-report.md explains both.
"""

from __future__ import annotations

import re

# Each entry: (regex on the normalised device name, peaks, source).
# Names are normalised by `_normalise`: upper case, '-' and '_' as spaces.
# Order matters: the first match wins, so variants come before the base name.
GPU_PEAKS = (
    # Hopper. H200 SXM and H100 SXM share the GH100 compute rates.
    (r"\bH200\b.*\bNVL\b", dict(fp32=60.0, tf32=417.5, fp16=835.5, bf16=835.5),
     "NVIDIA H200 Tensor Core GPU datasheet (H200 NVL; TF32/FP16/BF16 "
     "given with sparsity: 835/1671/1671)"),
    (r"\bH200\b", dict(fp32=67.0, tf32=494.5, fp16=989.5, bf16=989.5),
     "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM; TF32/FP16/BF16 "
     "given with sparsity: 989/1979/1979)"),
    (r"\bH100\b.*\bNVL\b", dict(fp32=60.0, tf32=417.5, fp16=835.5, bf16=835.5),
     "NVIDIA H100 Tensor Core GPU datasheet (H100 NVL; TF32/FP16/BF16 "
     "given with sparsity: 835/1671/1671)"),
    (r"\bH100\b.*\bPCIE\b", dict(fp32=51.0, tf32=378.0, fp16=756.0, bf16=756.0),
     "NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe; TF32/FP16/BF16 "
     "given with sparsity: 756/1513/1513)"),
    (r"\bH100\b", dict(fp32=67.0, tf32=494.5, fp16=989.5, bf16=989.5),
     "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM; TF32/FP16/BF16 "
     "given with sparsity: 989/1979/1979)"),
    # Ada data-centre parts.
    (r"\bL40S\b", dict(fp32=91.6, tf32=183.0, fp16=362.0, bf16=362.0),
     "NVIDIA L40S datasheet (TF32/FP16/BF16 given with sparsity: 366/733/733)"),
    (r"\bL4\b", dict(fp32=30.3, tf32=60.0, fp16=121.0, bf16=121.0),
     "NVIDIA L4 Tensor Core GPU datasheet (TF32/FP16/BF16 given with "
     "sparsity: 120/242/242)"),
    # Ampere data-centre parts. A100 SXM4 and PCIe have the same peaks.
    (r"\bA100\b", dict(fp32=19.5, tf32=156.0, fp16=312.0, bf16=312.0),
     "NVIDIA A100 Tensor Core GPU datasheet"),
    (r"\bA40\b", dict(fp32=37.4, tf32=74.8, fp16=149.7, bf16=149.7),
     "NVIDIA A40 datasheet"),
    (r"\bA30\b", dict(fp32=10.3, tf32=82.0, fp16=165.0, bf16=165.0),
     "NVIDIA A30 Tensor Core GPU datasheet"),
    # \bA10\b does not match "A10G" (AWS), whose rates differ.
    (r"\bA10\b", dict(fp32=31.2, tf32=62.5, fp16=125.0, bf16=125.0),
     "NVIDIA A10 Tensor Core GPU datasheet"),
    # Consumer Ampere/Ada: the whitepapers give FP16/BF16 tensor rates with
    # FP32 accumulate at half the FP16-accumulate rate.
    (r"\bRTX 4090\b(?! D\b)", dict(fp32=82.6, tf32=82.6, fp16=165.2, bf16=165.2),
     "NVIDIA Ada GPU Architecture whitepaper, GeForce RTX 4090 (FP16/BF16 "
     "tensor with FP32 accumulate)"),
    (r"\bRTX 3090\b(?! TI\b)", dict(fp32=35.6, tf32=35.6, fp16=71.0, bf16=71.0),
     "NVIDIA Ampere GA102 GPU Architecture whitepaper, GeForce RTX 3090 "
     "(FP16/BF16 tensor with FP32 accumulate)"),
    # Turing.
    (r"\bT4\b", dict(fp32=8.1, tf32=None, fp16=65.0, bf16=None),
     "NVIDIA T4 Tensor Core GPU datasheet (mixed precision FP16/FP32)"),
    # Volta.
    (r"\bV100S\b", dict(fp32=16.4, tf32=None, fp16=130.0, bf16=None),
     "NVIDIA V100 Tensor Core GPU datasheet (V100S PCIe; tensor performance)"),
    (r"\bV100\b.*\bPCIE\b", dict(fp32=14.0, tf32=None, fp16=112.0, bf16=None),
     "NVIDIA V100 Tensor Core GPU datasheet (V100 PCIe; tensor performance)"),
    (r"\bV100\b", dict(fp32=15.7, tf32=None, fp16=125.0, bf16=None),
     "NVIDIA V100 Tensor Core GPU datasheet (V100 SXM2; tensor performance)"),
    # Pascal.
    (r"\bP100\b.*\bPCIE\b", dict(fp32=9.3, tf32=None, fp16=18.7, bf16=None),
     "NVIDIA Tesla P100 datasheet (PCIe)"),
    (r"\bP100\b", dict(fp32=10.6, tf32=None, fp16=21.2, bf16=None),
     "NVIDIA Tesla P100 datasheet (SXM2/NVLink)"),
    (r"\bGTX 1050 TI\b", dict(fp32=2.1, tf32=None, fp16=None, bf16=None),
     "NVIDIA GeForce GTX 1050 Ti specifications: 768 CUDA cores x 1392 MHz "
     "boost x 2 FLOP (FMA); consumer Pascal has no fast FP16"),
    # Kepler. One K80 board is two GK210 GPUs; TensorFlow shows each as a
    # device, so the per-GPU half of the board's 8.73 TFLOP/s boost figure.
    (r"\bK80\b", dict(fp32=4.37, tf32=None, fp16=None, bf16=None),
     "NVIDIA Tesla K80 datasheet (8.73 TFLOP/s per board with GPU Boost, two "
     "GPUs per board)"),
)

def _normalise(name):
    return re.sub(r"[-_]+", " ", str(name).upper()).strip()


def gpu_peak(name):
    """Looks up a GPU's dense peak throughput by device name.

    Args:
        name: Device name as the driver reports it, e.g. ``"NVIDIA H200"``,
            ``"Tesla V100-SXM2-16GB"`` or ``"NVIDIA GeForce RTX 4090"``.

    Returns:
        A dict with keys ``fp32``, ``tf32``, ``fp16``, ``bf16`` (TFLOP/s or
        None), ``estimate`` (always False here) and ``source``; or None when
        the name matches no table entry.
    """
    if not name:
        return None
    norm = _normalise(name)
    for pattern, peaks, source in GPU_PEAKS:
        if re.search(pattern, norm):
            return dict(peaks, estimate=False, source=source)
    return None


# ----------------------------------------------------------------------------
# CPU estimate.

# Intel's figure for AMX (Sapphire Rapids and later): 1024 BF16 (and FP16 on
# parts with AMX-FP16) operations per cycle per core.
AMX_FLOP_PER_CYCLE = 1024


def cpu_fp32_flop_per_cycle(isa, vendor=None, family=None, sve_bits=None):
    """FP32 FLOPs per cycle per core implied by the vector instruction set.

    Two FMA pipes per core are assumed, each doing ``lanes`` fused
    multiply-adds (2 FLOPs) per cycle: AVX-512 64, AVX2+FMA 32, AVX 16 (no
    FMA: one multiply and one add pipe), SSE 8. AMD Zen 4 (family 0x19) runs
    AVX-512 on 256-bit datapaths, so 32. Arm: NEON (2 x 128-bit) 16; SVE at
    its vector length when known.

    Args:
        isa: Instruction-set names as reported in `DeviceReport.host.isa`.
        vendor: ``/proc/cpuinfo`` vendor_id (``"GenuineIntel"``,
            ``"AuthenticAMD"``) or None.
        family: x86 CPU family number, or None.
        sve_bits: Arm SVE vector length in bits, or None.

    Returns:
        ``(flops, why)``: the figure and a few words on how it was chosen, or
        ``(None, why)`` when the instruction set gives no basis.
    """
    isa = set(isa or ())
    if "AVX-512F" in isa:
        if vendor == "AuthenticAMD" and family == 0x19:
            return 32, "AVX-512 on Zen 4's two 256-bit FMA pipes"
        return 64, "AVX-512, assuming two 512-bit FMA units per core"
    if "AVX2" in isa and "FMA" in isa:
        return 32, "AVX2 with two 256-bit FMA units per core"
    if "AVX" in isa:
        return 16, "AVX, one 256-bit multiply and one add per cycle"
    if "SSE2" in isa:
        return 8, "SSE2, one 128-bit multiply and one add per cycle"
    if "SVE" in isa and sve_bits:
        lanes = sve_bits // 32
        return 2 * 2 * lanes, f"SVE {sve_bits}-bit, assuming two FMA pipes"
    if "NEON" in isa:
        return 16, "NEON, assuming two 128-bit FMA pipes"
    return None, "no known vector instruction set"


def estimate_cpu_peak(
    cores, mhz, isa, vendor=None, family=None, sve_bits=None, clock_source=""
):
    """Estimates a CPU's peak throughput from cores, clock and vector width.

    peak (TFLOP/s) = cores x clock (Hz) x FLOPs per cycle per core / 1e12.

    BF16 and FP16 get a figure only with a native path: AMX (1024 FLOP per
    cycle per core, Intel's figure), or AVX-512 BF16 / AVX-512 FP16 (twice the
    FP32 rate: two 16-bit lanes per 32-bit lane). Without one, TensorFlow
    converts to FP32 and no peak is claimed.

    Args:
        cores: Physical cores the process can use.
        mhz: Clock in MHz.
        isa: Instruction-set names (see `cpu_fp32_flop_per_cycle`).
        vendor: x86 vendor id or None.
        family: x86 family number or None.
        sve_bits: Arm SVE vector length in bits, or None.
        clock_source: Where ``mhz`` came from, quoted in the result.

    Returns:
        A dict like `gpu_peak`'s with ``estimate=True`` and a ``source`` that
        spells the arithmetic out, or None when cores or clock are unknown.
    """
    if not cores or not mhz:
        return None
    per_cycle, why = cpu_fp32_flop_per_cycle(isa, vendor, family, sve_bits)
    if per_cycle is None:
        return None
    (bf16, bf16_why), (fp16, fp16_why) = _half_precision_flop_per_cycle(isa, per_cycle)

    hz = mhz * 1e6

    def rate(flop_per_cycle):
        if flop_per_cycle is None:
            return None
        return round(cores * hz * flop_per_cycle / 1e12, 4)

    source = (
        f"estimate: {cores} cores x {mhz:.0f} MHz"
        f"{f' ({clock_source})' if clock_source else ''} x {per_cycle} FP32 "
        f"FLOP/cycle ({why})"
    )
    extra = [w for w in (bf16_why, fp16_why) if w]
    if extra:
        source += "; " + ", ".join(extra)
    return dict(fp32=rate(per_cycle), tf32=None, fp16=rate(fp16), bf16=rate(bf16),
                estimate=True, source=source)


def _half_precision_flop_per_cycle(isa, fp32_per_cycle):
    """BF16 and FP16 FLOPs per cycle per core where a native path exists.

    Returns:
        ``((bf16, why), (fp16, why))``, each ``(None, None)`` without one.
    """
    isa = set(isa or ())
    if "AMX-BF16" in isa:
        bf16 = AMX_FLOP_PER_CYCLE, "AMX-BF16 1024 FLOP/cycle"
    elif "AVX-512 BF16" in isa or "BF16" in isa:  # "BF16": the Arm extension
        bf16 = 2 * fp32_per_cycle, "BF16 dot products at 2x FP32"
    else:
        bf16 = None, None
    if "AMX-FP16" in isa:
        fp16 = AMX_FLOP_PER_CYCLE, "AMX-FP16 1024 FLOP/cycle"
    elif "AVX-512 FP16" in isa or "NEON FP16" in isa:
        fp16 = 2 * fp32_per_cycle, "FP16 arithmetic at 2x FP32"
    else:
        fp16 = None, None
    return bf16, fp16
