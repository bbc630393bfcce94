"""kerasbench: how fast does my model train on this machine, and is my GPU working?

``import kerasbench`` is cheap: Keras and TensorFlow load on first use of a
name that needs them.
"""

from kerasbench._version import __version__

__all__ = [
    "PhaseMeter",
    "StepStats",
    "ThroughputCallback",
    "ThroughputResult",
    "__version__",
    "summarize",
]

_LAZY = {
    "PhaseMeter": "kerasbench._meter",
    "StepStats": "kerasbench._stats",
    "ThroughputCallback": "kerasbench._callback",
    "ThroughputResult": "kerasbench._meter",
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
