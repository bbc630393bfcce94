"""Does reference() cost anything over a hand-written training loop?

For each model, in one process and interleaved round by round:

* reference(): `model.fit` on device-resident synthetic images with
  ThroughputCallback attached (its images/sec after warmup);
* a plain loop: the same registry model, batch, precision, optimizer (SGD)
  and synthetic images, trained by a `tf.function` step with
  `tf.GradientTape`, each step timed with `time.perf_counter` (and waited
  for), over the same number of steps after the same warmup.

Prints, per round and on average with a 95 % confidence interval, the ratio
reference / loop of images/sec (total over total) and of the median step
speed. On a shared 2-core VM whole segments drift by 10 % and more; the
median ratio is the robust figure. Target: >= 0.98.

    python bench/reference_vs_loop.py                      # ResNet-50 and AlexNet, batch 16
    python bench/reference_vs_loop.py --models alexnet --rounds 5
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kerasbench  # noqa: E402
from kerasbench._runs.config import DTYPE_POLICIES  # noqa: E402
from kerasbench._runs.reference import LEARNING_RATE  # noqa: E402
from kerasbench._timing.stats import mean_confidence_interval  # noqa: E402


class PlainLoop:
    """The hand-written baseline: tf.function + GradientTape, nothing else."""

    def __init__(self, name, batch_size, precision, seed=0):
        keras.config.set_dtype_policy(DTYPE_POLICIES[precision])
        try:
            self.net = kerasbench.create_model(name)
            size = kerasbench.model_info(name).image_size
            rng = np.random.default_rng(seed)
            self.images = tf.Variable(
                rng.random((batch_size, size, size, 3), dtype=np.float32), trainable=False)
            self.labels = tf.constant(rng.integers(0, 1000, batch_size))
            self.optimizer = keras.optimizers.SGD(LEARNING_RATE)
            if precision == "fp16":
                self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        finally:
            keras.config.set_dtype_policy("float32")
        self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.batch_size = batch_size
        self.step = tf.function(self._step)

    def _step(self):
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.net(self.images, training=True)
            loss = self.loss(self.labels, logits)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss

    def run(self, steps):
        """Runs `steps` steps; returns each one's duration."""
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            float(self.step())  # wait for the step
            times.append(time.perf_counter() - t)
        return times

    def measure(self, warmup, steps):
        """``(images/sec, median step time)`` after `warmup` steps."""
        self.run(warmup)
        times = self.run(steps)
        return self.batch_size * steps / sum(times), float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,alexnet")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", choices=tuple(DTYPE_POLICIES), default="fp32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", default="resnet50=20,alexnet=50",
                        help="measured steps per model (name=steps,...; others 30)")
    parser.add_argument("--warmup-steps", type=int, default=5)
    args = parser.parse_args()
    steps_for = dict(item.split("=") for item in args.steps.split(",") if item)
    report = kerasbench.DeviceReport.collect()
    print(f"{report.host.cpu_model}, {os.cpu_count()} logical CPUs; keras {keras.__version__}, "
          f"tensorflow {tf.__version__}; batch {args.batch_size}, {args.precision}, "
          f"{args.warmup_steps} warmup steps; {args.rounds} interleaved rounds", flush=True)
    summary = []
    for name in args.models.split(","):
        steps = int(steps_for.get(name, 30))
        loop = PlainLoop(name, args.batch_size, args.precision)
        loop.run(1)  # trace outside the rounds, as reference() traces outside its timing
        ref_rates, loop_rates, median_ratios = [], [], []
        for i in range(args.rounds):
            order = ("loop", "reference") if i % 2 == 0 else ("reference", "loop")
            for which in order:
                if which == "loop":
                    rate, loop_median = loop.measure(args.warmup_steps, steps)
                    loop_rates.append(rate)
                else:
                    r = kerasbench.reference(
                        name, batch_size=args.batch_size, precision=args.precision,
                        steps=steps, warmup_steps=args.warmup_steps, device="cpu",
                        verbose=0, device_report=report)
                    ref_rates.append(r.images_per_sec)
                    ref_median = r.stats["step_time_p50_s"]
            median_ratios.append(loop_median / ref_median)  # speed = 1 / time
            print(f"{name} round {i + 1}: images/sec reference {ref_rates[-1]:.2f}, loop "
                  f"{loop_rates[-1]:.2f} (ratio {ref_rates[-1] / loop_rates[-1]:.4f}); "
                  f"median step reference {ref_median:.4f} s, loop {loop_median:.4f} s "
                  f"(speed ratio {median_ratios[-1]:.4f})", flush=True)
        ratios = [r / p for r, p in zip(ref_rates, loop_rates)]
        summary.append((name, steps, float(np.mean(ref_rates)), float(np.mean(loop_rates)),
                        *mean_confidence_interval(ratios),
                        *mean_confidence_interval(median_ratios)))
    print()
    print(f"{'model':<10} {'steps':>5} {'reference()':>12} {'plain loop':>11} "
          f"{'images/sec ratio':>18} {'median speed ratio':>20}   (95% CI)")
    for name, steps, ref, plain, mean, half, mmean, mhalf in summary:
        print(f"{name:<10} {steps:>5} {ref:>12.2f} {plain:>11.2f} "
              f"{f'{mean:.3f} +/- {half:.3f}':>18} {f'{mmean:.3f} +/- {mhalf:.3f}':>20}")


if __name__ == "__main__":
    main()
