"""Is ThroughputCallback's images/sec honest? Check it against an outside clock.

The model is compiled and warmed up first; then each round times a
`model.fit` of `--steps` steps from outside: `time.perf_counter` just before
the call, and again at `on_train_end` after reading a weight back from the
device (which waits for every queued update). The ratio of the callback's
figure for the same fit to `batch * steps / wall` should sit slightly above 1
(the outside clock also counts fit's start-up); on a GPU with asynchronous
execution a ratio well above 1 would mean the callback times work that was
only queued. (The clock stops at `on_train_end` because Keras can spend over
a second after it, tearing down the tf.data iterator: not training time.)

Works with any Keras backend and device:

    python bench/callback_vs_clock.py --model resnet50 --batch-size 16 --steps 30
    KERAS_BACKEND=jax python bench/callback_vs_clock.py --model resnet50 \\
        --batch-size 128 --steps 200 --precision bf16
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasbench  # noqa: E402
from kerasbench._runs.config import DTYPE_POLICIES  # noqa: E402
from kerasbench._runs.reference import _synthetic_model  # noqa: E402
from kerasbench._timing.stats import mean_confidence_interval  # noqa: E402


class StopClock(keras.callbacks.Callback):
    """Reads the clock at the end of training, once the device is done."""

    def on_train_end(self, logs=None):
        keras.ops.convert_to_numpy(self.model.trainable_weights[-1])  # waits for the device
        self.t = time.perf_counter()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--precision", choices=tuple(DTYPE_POLICIES), default="fp32")
    args = parser.parse_args()

    keras.config.set_dtype_policy(DTYPE_POLICIES[args.precision])
    info = kerasbench.model_info(args.model)
    size = args.image_size or info.image_size
    net = kerasbench.create_model(args.model, image_size=size)
    model = _synthetic_model(keras, net, args.batch_size, (size, size, 3), seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    b = args.batch_size
    x = np.zeros((b * args.steps, 1), "float32")
    y = np.zeros(len(x), "int32")

    t = time.perf_counter()
    # The same arrays as the timed fits, so nothing is built for the first time later.
    model.fit(x, y, batch_size=b, steps_per_epoch=args.warmup_steps, verbose=0, shuffle=False)
    print(f"compile + {args.warmup_steps} warmup steps: {time.perf_counter() - t:.1f} s",
          flush=True)

    ratios = []
    for i in range(args.rounds):
        cb = kerasbench.ThroughputCallback(batch_size=b, warmup_steps=0, verbose=0)
        stop = StopClock()
        t = time.perf_counter()
        model.fit(x, y, batch_size=b, verbose=0, shuffle=False, callbacks=[cb, stop])
        wall = stop.t - t
        outside = b * args.steps / wall
        ratios.append(cb.result.images_per_sec / outside)
        print(f"round {i + 1}: callback {cb.result.images_per_sec:.1f} images/sec "
              f"(+/- {cb.result.images_per_sec_sem:.1f}), outside clock {outside:.1f}, "
              f"ratio {ratios[-1]:.4f}", flush=True)

    mean, half = mean_confidence_interval(ratios) if len(ratios) > 1 else (ratios[0], 0.0)
    print()
    print(f"{args.model} {args.precision} batch {b}, {args.steps} steps x {args.rounds} "
          f"rounds, keras {keras.__version__} ({keras.backend.backend()} backend), "
          f"{platform.machine()}")
    print(f"callback / outside clock: {mean:.4f} +/- {half:.4f} (95% CI)")


if __name__ == "__main__":
    main()
