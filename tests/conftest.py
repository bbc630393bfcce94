import os

# Quiet TensorFlow's C++ logging in test output (stderr only; results unaffected).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pytest  # noqa: E402


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the model registry that the test may add to; restored afterwards."""
    from kerasbench._models import _registry

    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    return _registry._REGISTRY
