"""What produced the numbers: host, software and accelerators, and whether they work.

Modules, each one concern:

- ``report``: `DeviceReport` (collect, devices, JSON, printing, check).
- ``sources``: `Sources`, where `DeviceReport.collect` reads its facts.
- ``frameworks``: the Keras backends described, and their frameworks.
- ``host``, ``software``, ``gpu``: the probes, grouped by what they ask
  (``software`` and ``gpu`` hold TensorFlow's).
- ``backends``: the backend in use; JAX's and PyTorch's probes.
- ``diagnosis``: why no GPU is usable, as an ordered list of rules.
- ``notes``: remarks printed next to the facts.
- ``records``: the dataclasses a report is made of, to and from JSON.
- ``health``: the health check (correctness, TFLOP/s, copy bandwidth),
  written once for every backend.
- ``ops``: the check's primitives per backend (TensorFlow, JAX, PyTorch).
- ``verdict``: the check's failures and warnings.
- ``peaks``: GPU datasheet peaks and the CPU peak estimate.
- ``text``: the printed report and health check.
- ``probing``: running probes safely (errors, time limits) and reading files.
"""

from kerasbench._device.records import HealthCheck
from kerasbench._device.report import DeviceReport
from kerasbench._device.sources import Sources

__all__ = ["DeviceReport", "HealthCheck", "Sources"]
