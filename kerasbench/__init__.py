"""kerasbench: how fast does my model train on this machine, and is my GPU working?

``import kerasbench`` is cheap: Keras and TensorFlow load on first use of a
name that needs them.

Example:

```python
import kerasbench

cb = kerasbench.ThroughputCallback()          # on any model.fit / evaluate / predict
result = kerasbench.reference("resnet50", batch_size=32, precision="bf16")
print(kerasbench.DeviceReport.collect())
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
    "create_model",
    "list_models",
    "model_info",
    "reference",
    "register_model",
    "summarize",
]

_LAZY = {
    "BenchmarkResult": "kerasbench._results",
    "DeviceReport": "kerasbench._device",
    "PhaseMeter": "kerasbench._meter",
    "StepStats": "kerasbench._stats",
    "ThroughputCallback": "kerasbench._callback",
    "ThroughputResult": "kerasbench._meter",
    "create_model": "kerasbench._models",
    "list_models": "kerasbench._models",
    "model_info": "kerasbench._models",
    "reference": "kerasbench._reference",
    "register_model": "kerasbench._models",
    "summarize": "kerasbench._stats",
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
