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
    code = ("import sys, kerasbench, kerasbench._timing.stats, kerasbench._timing.meter, kerasbench._results.result, "
            "kerasbench._results.tables, kerasbench._results.compare, kerasbench._results.baselines, kerasbench._models\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib', 'jax', 'torch') "
            "if m in sys.modules]\nprint(heavy)\nsys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bundled_baseline_is_package_data():
    assert "gtx1050ti-fp16" in kerasbench.list_baselines()
    assert len(kerasbench.load_baseline("gtx1050ti-fp16")) == 15
