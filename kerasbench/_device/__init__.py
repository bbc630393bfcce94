"""What produced the numbers: host, software and accelerators, and whether they work."""

from kerasbench._device.report import DeviceReport, HealthCheck

__all__ = ["DeviceReport", "HealthCheck"]
