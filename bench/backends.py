"""Which Keras backend trains a model fastest on this machine, and which settings?

Runs `reference()` for every (model, precision, backend, XLA setting), each in
its own worker process (`kerasbench.sweep`, isolated), interleaved round by
round so that drift on a shared machine hits every backend alike. Prints, per
configuration, the median images/sec over rounds and the median of the
per-round ratios to TensorFlow (same round, same model and precision), and
writes every result to a JSON Lines file for `kerasbench report`/`compare`.

    python bench/backends.py                                   # seed models, fp32 + bf16
    python bench/backends.py --models lenet,resnet50 --rounds 3 --steps 10
    python bench/backends.py --models lenet --xla-choices      # XLA on/off per backend

With ``--xla-choices`` each backend runs with ``jit_compile`` False and True
(PyTorch's True is `torch.compile`), which is how the per-backend defaults in
docs/backends.md were chosen.
"""

import argparse
import collections
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasbench  # noqa: E402
from kerasbench import RunConfig  # noqa: E402


def _configs(args, round_index):
    """This round's configurations, in an order rotated by round."""
    backends = args.backends.split(",")
    shift = round_index % len(backends)
    backends = backends[shift:] + backends[:shift]  # no backend always first
    xla = (False, True) if args.xla_choices else (None,)
    out = []
    for model in args.models.split(","):
        for precision in args.precisions.split(","):
            for backend in backends:
                for jit in xla:
                    out.append(RunConfig(model=model, batch_size=args.batch_size,
                                         precision=precision, backend=backend,
                                         jit_compile=jit, steps=args.steps,
                                         warmup_steps=args.warmup_steps, device="cpu"))
    return out


def _key(result):
    c = result.requested
    return (c.model, c.precision, c.backend, c.jit_compile)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="alexnet,resnet50,inception3,vgg16,nasnet")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--xla-choices", action="store_true",
                        help="run each backend with jit_compile False and True")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", default="results/backends.jsonl")
    args = parser.parse_args(argv)

    by_key = collections.defaultdict(list)  # key -> [(round, images/sec)]
    started = time.monotonic()
    for r in range(args.rounds):
        results = kerasbench.sweep(_configs(args, r), out=args.out, machine="bench-backends",
                                   timeout_s=args.timeout, progress=True)
        for result in results:
            by_key[_key(result)].append((r, result.images_per_sec if result.ok else None,
                                         result.error))
    print(f"\n{args.rounds} rounds in {time.monotonic() - started:.0f} s; "
          f"batch {args.batch_size}, {args.warmup_steps} warmup + {args.steps} steps, cpu")
    print(f"kerasbench {kerasbench.__version__}, python {sys.version.split()[0]}\n")
    _print_table(by_key, args.rounds)
    return 0


def _print_table(by_key, rounds):
    print("| model | precision | backend | XLA | images/sec (median) | per round | "
          "ratio to tensorflow (median of per-round ratios) |")
    print("|---|---|---|---|---:|---|---:|")
    for (model, precision, backend, jit), runs in by_key.items():
        values = [v for _, v, _ in runs if v is not None]
        errors = [e for _, v, e in runs if v is None]
        base = by_key.get((model, precision, "tensorflow", jit)) or \
            by_key.get((model, precision, "tensorflow", None)) or []
        base_by_round = {r: v for r, v, _ in base if v is not None}
        ratios = [v / base_by_round[r] for r, v, _ in runs
                  if v is not None and base_by_round.get(r)]
        median = f"{statistics.median(values):.2f}" if values else "failed"
        ratio = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
        each = ", ".join(f"{v:.2f}" if v is not None else "fail" for _, v, _ in runs)
        note = f" ({errors[0][:80]})" if errors else ""
        print(f"| {model} | {precision} | {backend} | {_xla(backend, jit)} | {median}{note} | "
              f"{each} | {ratio} |")


def _xla(backend, jit):
    if jit is None:
        return "default (" + ("on" if backend == "jax" else "off") + ")"
    return "on" if jit else "off"


if __name__ == "__main__":
    sys.exit(main())
