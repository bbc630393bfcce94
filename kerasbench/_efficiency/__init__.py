"""How far from possible, and why: FLOPs per sample (counted by each backend's
own cost analysis), achieved TFLOP/s and model FLOPs utilisation (MFU).

``flops`` counts; the formulas (achieved TFLOP/s, MFU) are pure and live in
``figures``. Nothing here runs inside a timed step.
"""
