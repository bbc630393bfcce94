"""Reference runs and sweeps on every Keras backend, each in its own process.

The test process runs TensorFlow; JAX and PyTorch runs go to worker
processes with ``KERAS_BACKEND`` set (a process cannot switch backends).
These need the ``backends`` extra (``pip install -e ".[test,backends]"``),
which CI installs.
"""

import json
import re

import pytest

import kerasbench
from kerasbench._cli import main

TINY = {"model": "lenet", "batch_size": 4, "steps": 3, "warmup_steps": 1, "image_size": 32,
        "num_classes": 5}
FRAMEWORK = {"jax": "jax", "torch": "torch"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_reference_runs_on_another_backend_in_a_worker(backend, capsys):
    r = kerasbench.reference(backend=backend, verbose=0, **TINY)
    assert r.ok and r.backend == backend and r.config.backend == backend
    assert r.requested.backend == backend
    assert r.stats["steps"] == 3 and r.stats["samples"] == 12 and r.images_per_sec > 0
    assert r.versions[FRAMEWORK[backend]]
    assert r.config.jit_compile is (backend == "jax")  # XLA is JAX's compiled mode


@pytest.mark.slow
def test_errors_of_another_backend_are_raised_here():
    with pytest.raises(ValueError, match=r"Did you mean 'resnet50'.*\(in a worker process, "
                                         r"jax backend\)"):
        kerasbench.reference("resnt50", backend="jax", verbose=0)


@pytest.mark.slow
def test_sweep_puts_backends_side_by_side(tmp_path, capsys):
    argv = ["sweep", "--models", "lenet", "--backends", "tensorflow,jax,torch",
            "--batch-sizes", "4", "--steps", "3", "--warmup-steps", "1", "--image-size", "32",
            "--num-classes", "5", "--out", str(tmp_path), "--machine", "box"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\[3/3\] lenet train bs4 fp32 cpu torch: [0-9.]+ images/sec", out, re.M)
    assert "## images/sec: tensorflow vs jax vs torch" in out
    # images/sec of each backend, the two ratios, then each side's MFU column.
    assert re.search(r"^\| LeNet \| train \| 4 \| fp32 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| "
                     r"[0-9.]+x \| [0-9.]+x \|( [^|]+ \|)+$", out, re.M), out
    with open(tmp_path / "box.jsonl") as f:
        lines = [json.loads(line) for line in f]
    results = [d for d in lines if "kind" not in d]
    assert [d["backend"] for d in results] == ["tensorflow", "jax", "torch"]
    # One device report per backend: each backend lists its own devices.
    assert sum(1 for d in lines if d.get("kind") == "device_report") <= 3
