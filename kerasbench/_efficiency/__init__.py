"""How far from possible, and at what cost: FLOPs per sample (counted by each
backend's own cost analysis), achieved TFLOP/s and model FLOPs utilisation
(MFU), peak memory and energy.

``flops`` counts; the formulas (achieved TFLOP/s, MFU, scaling, joules per
image, images/sec per watt) are pure and live in ``figures``; ``memory``
reads peak memory (`PeakMemory`) and ``energy`` the energy counters
(`EnergyMeter`: NVML, RAPL). Nothing here runs inside a timed step.
"""
