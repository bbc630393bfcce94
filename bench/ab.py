"""Two settings of the same reference run, side by side, interleaved.

Runs ``kerasbench.reference`` with settings A and B (any `RunConfig` fields),
alternating which goes first from round to round (A-B, B-A, ...), and prints
images/sec, achieved TFLOP/s of each and the ratio B / A of each round and
their mean. Ratios measured in one round on the same machine state are what
to compare: whole runs on a shared VM drift by several per cent.

    python bench/ab.py resnet50 --a batch_norm=keras --b batch_norm=fused
    python bench/ab.py resnet50,inception3 --a precision=fp32 --b precision=bf16 --rounds 3
    python bench/ab.py alexnet --common batch_size=32 --a precision=fp32 --b precision=bf16
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasbench  # noqa: E402


def settings(text):
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (ints and floats converted)."""
    out = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
        out[name.strip()] = value
    return out


def run(model, common, side):
    r = kerasbench.reference(model, verbose=0, **{**common, **side})
    if not r.ok:
        raise SystemExit(f"{model} {side}: {r.error}")
    return r.images_per_sec, r.stats.get("achieved_tflops")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", help="comma-separated registry names")
    parser.add_argument("--a", required=True, help="settings of A: name=value,...")
    parser.add_argument("--b", required=True, help="settings of B: name=value,...")
    parser.add_argument("--common", default="batch_size=16,steps=20,warmup_steps=5",
                        help="settings of both (default batch_size=16,steps=20,warmup_steps=5)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    a, b, common = settings(args.a), settings(args.b), settings(args.common)

    print(f"kerasbench {kerasbench.__version__}; {common}; A: {a}; B: {b}; {args.rounds} "
          f"rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':<12} {'round':>5} {'A img/s':>8} {'B img/s':>8} {'A TFLOP/s':>9} "
          f"{'B TFLOP/s':>9} {'B / A':>6}")
    for model in args.models.split(","):
        ratios = []
        for i in range(args.rounds):
            order = (("A", a), ("B", b)) if i % 2 == 0 else (("B", b), ("A", a))
            got = {name: run(model, common, side) for name, side in order}
            ratios.append(got["B"][0] / got["A"][0])
            tflops = [f"{t:9.3f}" if t else f"{'-':>9}" for _, t in (got["A"], got["B"])]
            print(f"{model:<12} {i + 1:>5} {got['A'][0]:>8.2f} {got['B'][0]:>8.2f} "
                  f"{tflops[0]} {tflops[1]} {ratios[-1]:>6.3f}", flush=True)
        print(f"{model:<12} {'mean':>5} {'':>8} {'':>8} {'':>9} {'':>9} "
              f"{statistics.fmean(ratios):>6.3f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
