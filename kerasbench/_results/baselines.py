"""Bundled baselines: published benchmark figures to compare against.

A baseline is a results file (see `kerasbench._results.store` for the
format: one line per table cell, ``source="published"`` and a ``citation``
saying where the figures come from) in ``kerasbench/baselines/<name>.jsonl``. Adding one is adding a
file: setup.py ships every ``baselines/*.jsonl`` as package data, and the
files are read with `importlib.resources`, so they load from an installed
wheel as well as from a source checkout.

Bundled:

- ``gtx1050ti-fp16``: training throughput on an NVIDIA GeForce GTX 1050 Ti,
  fp16, SGD, synthetic data, batch sizes 16/32/64, for InceptionV3,
  ResNet-50, VGG16, AlexNet and NASNet-A Mobile, as published by
  schoenemeyer ("Running Benchmarks with Tensorflow backend on NVIDIA GeForce
  GPUs", convolution-cpu-vs-gpu on GitHub; tf_cnn_benchmarks, TensorFlow
  1.10, CUDA 9.1). Not measured by kerasbench.
"""

from __future__ import annotations

from kerasbench import _validate
from kerasbench._results.store import parse_results

_PACKAGE = "kerasbench"
_FOLDER = "baselines"
_SUFFIX = ".jsonl"


def _folder():
    from importlib import resources

    return resources.files(_PACKAGE).joinpath(_FOLDER)


def list_baselines():
    """Names of the bundled baselines, sorted.

    Returns:
        A list of names accepted by `load_baseline` (``["gtx1050ti-fp16"]``).
    """
    folder = _folder()
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(_SUFFIX)] for entry in folder.iterdir()
                  if entry.name.endswith(_SUFFIX) and entry.is_file())


def load_baseline(name):
    """Loads a bundled baseline.

    Args:
        name: A name from `list_baselines` (``"gtx1050ti-fp16"``); a trailing
            ``.jsonl`` is accepted.

    Returns:
        A list of `BenchmarkResult`, in file order, each with
        ``source="published"``.

    Raises:
        ValueError: If no baseline has that name; the message lists the
            bundled ones and suggests the closest.
        kerasbench._results.ResultsFileError: If the bundled file is damaged
            (names the file and the line).

    Example:

    ```python
    results = load_baseline("gtx1050ti-fp16")
    print(len(results), results[0].images_per_sec)   # 15 34.0
    ```
    """
    if isinstance(name, str) and name.endswith(_SUFFIX):
        name = name[: -len(_SUFFIX)]
    name = _validate.choice("name", name, list_baselines())
    data = _folder().joinpath(name + _SUFFIX).read_bytes()
    return parse_results(data, f"{_PACKAGE}/{_FOLDER}/{name}{_SUFFIX}")
