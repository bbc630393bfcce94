"""Packaging for kerasbench (setuptools; build-system and tool config live in pyproject.toml)."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "kerasbench" / "_version.py").read_text(),
    re.M,
).group(1)

setup(
    name="kerasbench",
    version=VERSION,
    description=(
        "Throughput benchmarks for Keras 3: a model.fit callback with honest "
        "statistics, device reports and the classic CNN reference models."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["kerasbench", "kerasbench.*"]),
    include_package_data=True,
    package_data={"kerasbench": ["baselines/*.jsonl"]},
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "numpy>=1.26",
        # TensorFlow 2.21 no longer depends on tensorboard; the callback's
        # writer and the tests' event reader need it.
        "tensorboard>=2.21,<2.22",
        # Charts of results (kerasbench report): the standard plotting library,
        # used headless through its Agg backend.
        "matplotlib>=3.7",
        # Sweep progress (configuration i of n, elapsed, time left) on terminals.
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=8"],
        # The other Keras 3 backends, CPU builds, for the cross-backend tests:
        # JAX (jax[cpu]) and PyTorch 2.13.0 (the CPU wheel where pip is set
        # up to find it; plain `torch` from PyPI is a multi-GB CUDA build).
        "backends": ["jax[cpu]>=0.4.36", "torch==2.13.0"],
        # GPU users: TensorFlow with its CUDA libraries.
        "gpu": ["tensorflow[and-cuda]>=2.21,<2.22"],
    },
    entry_points={"console_scripts": ["kerasbench=kerasbench._cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: System :: Benchmark",
    ],
)
