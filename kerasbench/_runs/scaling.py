"""scaling(): the same model on 1..N replicas: images/sec, speedup, efficiency.

Each point is a `reference` run with ``strategy="mirrored"`` in its own
worker process (the CPU is split into logical devices there before
TensorFlow starts). Speedup and
efficiency (`kerasbench._efficiency.figures.scaling`) are relative to the
1-replica run and are added to each result's ``stats``.
"""

from __future__ import annotations

from kerasbench import _validate


def scaling(model, *, devices=(1, 2), out=None, machine=None, progress=False, **options):
    """Runs ``model`` on each number of replicas in ``devices``, each in a
    worker process (through `sweep`: a failed point is recorded, the rest run).

    Args:
        model: Registry name.
        devices: Replica counts, e.g. ``(1, 2, 4)``; 1 is added if missing
            (it is what speedups are relative to).
        out: A ``.jsonl`` file or folder to append each result to, or ``None``.
        machine: Label of this machine in the results.
        progress: Show progress lines.
        **options: Any other `RunConfig` field (``batch_size`` is per replica).

    Returns:
        The `BenchmarkResult`s, fewest replicas first, each with ``speedup``
        and ``scaling_efficiency`` in its stats (``None`` where a run failed).
    """
    from kerasbench._efficiency.figures import scaling as figures
    from kerasbench._runs.config import RunConfig
    from kerasbench._runs.sweep import sweep

    if isinstance(devices, (str, bytes)) or not isinstance(devices, (list, tuple)) or \
            not devices:
        raise ValueError(f"`devices` must be a non-empty list. Received: devices={devices!r}")
    counts = sorted({1, *(_validate.integer("devices", n, minimum=1) for n in devices)})
    for name in ("strategy", "num_devices"):
        if name in options:
            raise TypeError(f"scaling() sets `{name}` itself. Received: {name}="
                            f"{options[name]!r}")
    configs = [RunConfig(model=model, strategy="mirrored", num_devices=n, **options)
               for n in counts]
    results = sweep(configs, out=None, machine=machine, progress=progress)
    single = results[0].images_per_sec
    for r in results:
        speedup = efficiency = None
        if r.images_per_sec is not None and single:
            speedup, efficiency = figures(r.images_per_sec, r.config.num_devices, single)
        r.stats.update(speedup=speedup, scaling_efficiency=efficiency)
    if out is not None:
        _append(results, out, machine)
    return results


def _append(results, out, machine):
    import socket

    from kerasbench._results import append_result
    from kerasbench._runs.sweep import results_path

    path = results_path(out, machine or socket.gethostname())
    for r in results:
        append_result(path, r)


def scaling_table(results):
    """A Markdown table: replicas, global batch, images/sec, per replica,
    speedup, efficiency."""
    lines = ["| Replicas | Global batch | images/sec | per replica | Speedup | Efficiency |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        s = r.stats
        cells = [r.config.num_devices, s.get("global_batch_size", r.batch_size),
                 _num(r.images_per_sec), _num(s.get("images_per_sec_per_replica")),
                 _ratio(s.get("speedup")), _percent(s.get("scaling_efficiency"))]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _num(value):
    return "failed" if value is None else f"{value:.1f}"


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.0f} %"
