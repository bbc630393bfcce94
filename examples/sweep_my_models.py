"""Sweep a model of your own (registered in my_models.py) next to a built-in one.

    PYTHONPATH=examples python examples/sweep_my_models.py

Each configuration runs in a fresh worker process, which imports my_models by
name before it runs: PYTHONPATH (or installing your package, or running from
the folder that holds the module) is what makes it importable there. A
``sys.path.insert`` in this script would not: it changes this process only.
"""

import my_models  # noqa: F401  (registers "small_cnn")

import kerasbench

results = kerasbench.sweep(["small_cnn", "lenet"], batch_sizes=[16, 32], steps=20,
                           out="results/", progress=False)
for r in results:
    figure = f"{r.images_per_sec:.1f} images/sec" if r.ok else f"{r.status}: {r.error}"
    print(f"{r.model} batch {r.batch_size}: {figure}")
