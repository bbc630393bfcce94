"""How long does it take to measure images/sec to +/-1 %?

For each model, one adaptive reference run (``target_precision``) in a fresh
worker process, through `kerasbench.sweep`: warmup, then measured steps until
the 95 % confidence interval of images/sec is within the target (overlapping
batch means, docs/metrics.md), or until ``--max-time`` measured seconds or
``--max-steps`` steps. Prints, per model: the measured steps and seconds it
took (or where it stopped and why), the interval, the spread of the step
times (coefficient of variation, lag-1 autocorrelation) and, for a run that
stopped short, about how many steps and seconds the target would need at the
spread seen (the half-width shrinks as 1/sqrt(steps)). The machine's load
average is printed too: other processes' work shows in the step times.

``--replay FILE`` runs nothing: it replays the stopping rule (the callback's
schedule of checks, `kerasbench._timing.intervals`) over the step times
recorded in a results file, from every 10th step on, and prints how many
measured steps and seconds the target took from each start (the median and
the quickest quarter) and from how many starts it was reached at all within
the recording: what a run gets from a quiet stretch of the machine, and what
from a busy one.

    python bench/time_to_precision.py                       # alexnet, resnet50 at batch 32
    python bench/time_to_precision.py --models alexnet,resnet50,inception3,vgg16,nasnet \\
        --max-time 600 --out ttp.jsonl
    python bench/time_to_precision.py --replay ttp.jsonl
"""

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import kerasbench  # noqa: E402


def spread(step_times):
    """(coefficient of variation, lag-1 autocorrelation) of step times."""
    t = np.asarray(step_times, dtype=np.float64)
    if t.size < 3:
        return math.nan, math.nan
    d = t - t.mean()
    return float(t.std(ddof=1) / t.mean()), float((d[:-1] * d[1:]).sum() / (d * d).sum())


def row(r, target):
    s = r.stats
    if not r.ok:
        return f"{r.model:<12} {r.status}: {r.error}"
    cv, lag1 = spread(s["step_times_s"])
    high = s["images_per_sec_ci_high"]
    half = r.throughput.relative_half_width
    text = (f"{r.model:<12} {s['steps']:>6} {s['time_s']:>9.1f} {s['warmup_time_s']:>8.1f} "
            f"{s['images_per_sec']:>9.2f} [{s['images_per_sec_ci_low']:.2f}, "
            f"{'inf' if high is None else f'{high:.2f}'}] "
            f"{'n/a' if half is None else f'{100 * half:.2f}%':>7} "
            f"{'yes' if s['target_reached'] else 'no':>7} {s['stop_reason'] or '-':>9} "
            f"{100 * cv:>6.1f}% {lag1:>6.2f}")
    if not s["target_reached"] and half is not None and math.isfinite(half):
        needed = math.ceil(s["steps"] * (half / target) ** 2)
        text += f"   needs ~{needed} steps, ~{needed * s['step_time_s']:.0f} s"
    return text


def replay(step_times, batch, target, min_steps, every=10):
    """The stopping rule over ``step_times`` from every ``every``-th start:
    ``[(steps, seconds)]`` of each start that reached ``target``, and the
    number of starts."""
    from kerasbench._callback.stopping import CHECK_SPACING
    from kerasbench._timing.intervals import rate_interval

    t = np.asarray(step_times, dtype=np.float64)
    starts = range(0, max(0, t.size - min_steps) + 1, every)
    reached = []
    for start in starts:
        n = min_steps
        while start + n <= t.size:
            window = t[start:start + n]
            interval = rate_interval(window, np.full(n, batch))
            if interval is not None and interval.relative_half_width <= target:
                reached.append((n, float(window.sum())))
                break
            n += max(1, math.ceil(CHECK_SPACING * n))
    return reached, len(starts)


def replay_file(path, target, min_steps):
    from kerasbench._results import read_results

    print(f"replay of {path}: target +/-{100 * target:g}%, checks from {min_steps} steps on")
    print(f"{'model':<12} {'recorded':>9} {'reached from':>13} {'median steps':>13} "
          f"{'median s':>9} {'quickest quarter':>17}")
    for r in read_results(path):
        if not r.ok:
            continue
        times = r.stats["step_times_s"]
        reached, starts = replay(times, r.batch_size, target, min_steps)
        if not reached:
            print(f"{r.model:<12} {len(times):>9} {f'0 of {starts}':>13}")
            continue
        steps = np.array([k for k, _ in reached])
        seconds = np.array([s for _, s in reached])
        print(f"{r.model:<12} {len(times):>9} {f'{len(reached)} of {starts}':>13} "
              f"{np.median(steps):>13.0f} {np.median(seconds):>9.1f} "
              f"{f'{np.percentile(steps, 25):.0f} steps, {np.percentile(seconds, 25):.1f} s':>17}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="alexnet,resnet50")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--target", default="1%", help="target precision (default 1%%)")
    parser.add_argument("--min-steps", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=10_000)
    parser.add_argument("--max-time", type=float, default=600.0,
                        help="most measured seconds per model (default 600)")
    parser.add_argument("--out", default=None, help="also append the results to this .jsonl")
    parser.add_argument("--replay", default=None, metavar="FILE",
                        help="run nothing: replay the rule over the step times in FILE")
    args = parser.parse_args()
    target = kerasbench.RunConfig(target_precision=args.target).target_precision
    if args.replay:
        replay_file(args.replay, target, args.min_steps)
        return

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    load_before = os.getloadavg()
    results = kerasbench.sweep(models, batch_sizes=[args.batch_size],
                               target_precision=args.target, min_steps=args.min_steps,
                               max_steps=args.max_steps, max_time_s=args.max_time,
                               out=args.out, progress=True)
    load_after = os.getloadavg()
    print()
    print(f"kerasbench {kerasbench.__version__}; batch {args.batch_size}; target +/-"
          f"{100 * target:g}%; min {args.min_steps} steps, at most {args.max_steps} steps "
          f"and {args.max_time:g} s measured; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (1 min)")
    print(f"{'model':<12} {'steps':>6} {'measured':>9} {'warmup':>8} {'images/sec':>9} "
          f"[95% interval] {'+/-':>7} {'reached':>7} {'stop':>9} {'cv':>7} {'lag-1':>6}")
    for r in results:
        print(row(r, target))


if __name__ == "__main__":
    main()
