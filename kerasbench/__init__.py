"""kerasbench: how fast does my model train on this machine, and is my GPU working?

``import kerasbench`` is cheap: Keras and TensorFlow load on first use of a
name that needs them.

Example:

```python
import kerasbench

cb = kerasbench.ThroughputCallback()          # on any model.fit / evaluate / predict
result = kerasbench.reference("resnet50", batch_size=32, precision="bf16")
config = kerasbench.RunConfig(model="resnet50", batch_size=32)   # one run, every setting
print(kerasbench.DeviceReport.collect())
results = kerasbench.sweep(["alexnet", "resnet50"], batch_sizes=[16, 32], out="results/")
found = kerasbench.bottleneck(model, dataset)  # input-bound, compute-bound or host-overhead?
```
"""

from kerasbench._version import __version__

__all__ = [
    "BenchmarkResult",
    "Bottleneck",
    "Comparison",
    "DeviceReport",
    "FusedBatchNormalization",
    "HealthCheck",
    "ModelInfo",
    "PhaseMeter",
    "ResultsFileError",
    "RunConfig",
    "StepStats",
    "ThroughputCallback",
    "ThroughputResult",
    "__version__",
    "bottleneck",
    "compare",
    "create_model",
    "fuse_batch_norm",
    "list_baselines",
    "list_models",
    "load_baseline",
    "model_info",
    "read_results",
    "reference",
    "register_model",
    "scaling",
    "summarize",
    "sweep",
    "write_csv",
    "write_report",
]

_LAZY = {
    "BenchmarkResult": "kerasbench._results",
    "Bottleneck": "kerasbench._bottleneck",
    "Comparison": "kerasbench._results",
    "DeviceReport": "kerasbench._device",
    "FusedBatchNormalization": "kerasbench._layers",
    "HealthCheck": "kerasbench._device",
    "ModelInfo": "kerasbench._models",
    "PhaseMeter": "kerasbench._timing",
    "ResultsFileError": "kerasbench._results",
    "RunConfig": "kerasbench._runs.config",
    "StepStats": "kerasbench._timing",
    "ThroughputCallback": "kerasbench._callback",
    "ThroughputResult": "kerasbench._timing",
    "bottleneck": "kerasbench._bottleneck",
    "compare": "kerasbench._results",
    "create_model": "kerasbench._models",
    "fuse_batch_norm": "kerasbench._layers",
    "list_baselines": "kerasbench._results",
    "list_models": "kerasbench._models",
    "load_baseline": "kerasbench._results",
    "model_info": "kerasbench._models",
    "read_results": "kerasbench._results",
    "reference": "kerasbench._runs.reference",
    "register_model": "kerasbench._models",
    "scaling": "kerasbench._runs.scaling",
    "summarize": "kerasbench._timing",
    "sweep": "kerasbench._runs.sweep",
    "write_csv": "kerasbench._results",
    "write_report": "kerasbench._results",
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
