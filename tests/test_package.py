"""The package surface: a small sorted __all__, a cheap import, packaging data."""

import subprocess
import sys

import kerasbench


def test_all_is_sorted_and_every_name_resolves():
    assert kerasbench.__all__ == sorted(kerasbench.__all__)
    for name in kerasbench.__all__:
        assert getattr(kerasbench, name) is not None, name
    public = {n for n in dir(kerasbench) if not n.startswith("_")}
    assert public <= set(kerasbench.__all__)


def test_unknown_attribute():
    try:
        kerasbench.ThroughputCallbak  # noqa: B018
    except AttributeError as e:
        assert "ThroughputCallbak" in str(e)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_cheap():
    """Importing every package but the callback loads no framework (nor matplotlib)."""
    code = ("import sys, kerasbench, kerasbench._timing, kerasbench._results, kerasbench._runs, "
            "kerasbench._runs.worker, kerasbench._runs.sweep, kerasbench._models, kerasbench._device, kerasbench._cli, "
            "kerasbench._validate\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib', 'jax', 'torch') "
            "if m in sys.modules]\nprint(heavy)\nsys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_public_types_are_exported():
    """What public functions return or raise can be named from the package."""
    assert issubclass(kerasbench.ResultsFileError, ValueError)
    assert kerasbench.RunConfig().model == "alexnet"
    assert kerasbench.model_info("lenet").__class__ is kerasbench.ModelInfo
    assert kerasbench.HealthCheck.__name__ == "HealthCheck"
    assert kerasbench.Comparison.__name__ == "Comparison"


def test_bundled_baseline_is_package_data():
    assert "gtx1050ti-fp16" in kerasbench.list_baselines()
    assert len(kerasbench.load_baseline("gtx1050ti-fp16")) == 15
