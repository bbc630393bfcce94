"""kerasbench against tf_cnn_benchmarks, side by side, interleaved.

Runs each (model, batch size) with tf_cnn_benchmarks and with
``kerasbench run``, each in a fresh process, alternating which goes first from
round to round, on synthetic data, fp32 (or ``--precision bf16``: kerasbench's
``mixed_bfloat16`` against nothing, tf_cnn_benchmarks has no bf16 flag),
NHWC, plain SGD, the same warmup and measured steps. Prints images/sec of
each and the ratio kerasbench / tf_cnn_benchmarks per round and on average.

tf_cnn_benchmarks is not shipped with kerasbench. To get it (it is TF1-era
code that runs through ``tf.compat.v1`` and needs the legacy Keras package):

    git clone https://github.com/tensorflow/benchmarks /tmp/tfbench
    pip install "tf_keras==2.21.*"          # the same minor version as tensorflow

then

    python bench/vs_tf_cnn_benchmarks.py --tf-cnn-benchmarks /tmp/tfbench/scripts/tf_cnn_benchmarks
    python bench/vs_tf_cnn_benchmarks.py --tf-cnn-benchmarks DIR --runs resnet50:16 --rounds 3

tf_cnn_benchmarks' NASNet does not build on TensorFlow 2.21 (its model lookup
fails with a TypeError), so NASNet has no peer figure.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

DEFAULT_RUNS = "resnet50:16,inception3:16,alexnet:32,vgg16:16"
_TOTAL = re.compile(r"^total images/sec:\s*([0-9.]+)", re.MULTILINE)


def fail(message):
    print(f"vs_tf_cnn_benchmarks: {message}", file=sys.stderr)
    sys.exit(2)


def check_peer(directory):
    """The path of tf_cnn_benchmarks.py, or a clear exit."""
    if not directory:
        fail("pass --tf-cnn-benchmarks DIR (the scripts/tf_cnn_benchmarks folder of a clone "
             "of https://github.com/tensorflow/benchmarks); see this script's docstring")
    script = os.path.join(directory, "tf_cnn_benchmarks.py")
    if not os.path.isfile(script):
        fail(f"no tf_cnn_benchmarks.py in {directory!r}")
    probe = subprocess.run([sys.executable, "-c", "import tf_keras"], capture_output=True)
    if probe.returncode != 0:
        fail("tf_cnn_benchmarks needs the legacy Keras package: pip install "
             "\"tf_keras==<your tensorflow's major.minor>.*\"")
    return script


def environment():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    return env


def run_peer(script, model, batch, args):
    command = [sys.executable, script, "--device=cpu", f"--model={model}",
               f"--batch_size={batch}", f"--num_batches={args.steps}",
               f"--num_warmup_batches={args.warmup_steps}", "--data_format=NHWC",
               "--variable_update=parameter_server", "--local_parameter_device=cpu",
               "--optimizer=sgd"]
    done = subprocess.run(command, capture_output=True, text=True, env=environment(),
                          cwd=os.path.dirname(script))
    found = _TOTAL.search(done.stdout)
    if done.returncode != 0 or not found:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return None, f"tf_cnn_benchmarks failed (exit {done.returncode}): {' | '.join(tail)}"
    return float(found.group(1)), None


def run_kerasbench(model, batch, args):
    command = [sys.executable, "-m", "kerasbench", "run", model, "--batch-size", str(batch),
               "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
               "--precision", args.precision, "--device", "cpu", "--no-count-flops",
               "--json"] + args.kerasbench_flags
    done = subprocess.run(command, capture_output=True, text=True, env=environment())
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = {}
    if done.returncode != 0 or result.get("status") != "ok":
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return None, f"kerasbench failed (exit {done.returncode}): {' | '.join(tail)}"
    return result["stats"]["images_per_sec"], None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-cnn-benchmarks", default=os.environ.get("TF_CNN_BENCHMARKS"),
                        metavar="DIR", help="folder holding tf_cnn_benchmarks.py")
    parser.add_argument("--runs", default=DEFAULT_RUNS, help="model:batch,... "
                        f"(default {DEFAULT_RUNS})")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kerasbench-flags", default="",
                        help="more flags for `kerasbench run`, e.g. '--batch-norm keras'")
    args = parser.parse_args()
    args.kerasbench_flags = args.kerasbench_flags.split()
    script = check_peer(args.tf_cnn_benchmarks)
    runs = [(m, int(b)) for m, b in (item.split(":") for item in args.runs.split(","))]

    print(f"{args.warmup_steps} warmup + {args.steps} measured steps, synthetic data, NHWC, "
          f"SGD; kerasbench {args.precision}, tf_cnn_benchmarks fp32; {args.rounds} rounds; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'model':<11} {'batch':>5} {'round':>5} {'tf_cnn':>8} {'kerasbench':>10} {'ratio':>6}")
    for model, batch in runs:
        ratios = []
        for i in range(args.rounds):
            jobs = [("peer", lambda: run_peer(script, model, batch, args)),
                    ("ours", lambda: run_kerasbench(model, batch, args))]
            rate = {}
            for name, job in (jobs if i % 2 == 0 else jobs[::-1]):
                rate[name], error = job()
                if error:
                    print(f"{model:<11} {batch:>5} {i + 1:>5} {error}", flush=True)
            if rate["peer"] and rate["ours"]:
                ratios.append(rate["ours"] / rate["peer"])
                print(f"{model:<11} {batch:>5} {i + 1:>5} {rate['peer']:>8.2f} "
                      f"{rate['ours']:>10.2f} {ratios[-1]:>6.3f}", flush=True)
        if ratios:
            print(f"{model:<11} {batch:>5} {'mean':>5} {'':>8} {'':>10} "
                  f"{statistics.fmean(ratios):>6.3f}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
