"""kerasbench: how fast does my model train on this machine, and is my GPU working?

``import kerasbench`` is cheap: Keras and TensorFlow load on first use of a
name that needs them.

Example:

```python
import kerasbench

cb = kerasbench.ThroughputCallback()          # on any model.fit / evaluate / predict
result = kerasbench.reference("resnet50", batch_size=32, precision="bf16")
print(kerasbench.DeviceReport.collect())
results = kerasbench.sweep(["alexnet", "resnet50"], batch_sizes=[16, 32], out="results/")
```
"""

from kerasbench._version import __version__

__all__ = [
    "BenchmarkResult",
    "DeviceReport",
    "PhaseMeter",
    "StepStats",
    "ThroughputCallback",
    "ThroughputResult",
    "__version__",
    "compare",
    "create_model",
    "list_baselines",
    "list_models",
    "load_baseline",
    "model_info",
    "read_results",
    "reference",
    "register_model",
    "summarize",
    "sweep",
    "write_csv",
    "write_report",
]

_LAZY = {
    "BenchmarkResult": "kerasbench._results",
    "DeviceReport": "kerasbench._device",
    "PhaseMeter": "kerasbench._meter",
    "StepStats": "kerasbench._stats",
    "ThroughputCallback": "kerasbench._callback",
    "ThroughputResult": "kerasbench._meter",
    "compare": "kerasbench._compare",
    "create_model": "kerasbench._models",
    "list_baselines": "kerasbench._baselines",
    "list_models": "kerasbench._models",
    "load_baseline": "kerasbench._baselines",
    "model_info": "kerasbench._models",
    "read_results": "kerasbench._results",
    "reference": "kerasbench._reference",
    "register_model": "kerasbench._models",
    "summarize": "kerasbench._stats",
    "sweep": "kerasbench._sweep",
    "write_csv": "kerasbench._results",
    "write_report": "kerasbench._report",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kerasbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
