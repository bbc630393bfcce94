"""How much does ThroughputCallback cost the training it measures?

Two figures, measured side by side in one process on a small model (an MLP of
about 5 ms per step on a 2-core CPU):

(a) Hook time: the seconds spent inside the callback's own hooks, as a share
    of the training time of the same `fit` (per-step hooks and all hooks).
    This is the figure to hold: it does not depend on run-to-run noise.
(b) Whole-`fit` wall time with the callback over without it, interleaved
    round by round, with a 95 % confidence interval of the per-round ratio.

Configurations: no callback, ThroughputCallback (TensorBoard off; and
without its FLOP count, which runs once per callback at the first epoch's
end, outside the timed steps, and shows in "all hooks"), with TensorBoard on, and for reference a naive callback that calls
`tf.summary.scalar` twice per step. Last, the TensorBoard writer's own costs:
compiling its write function (once per process), opening an event file
(once per fit and phase) and writing one value.

    python bench/overhead.py                # about 2 minutes
    python bench/overhead.py --rounds 3     # quicker, wider interval
    KERAS_BACKEND=jax python bench/overhead.py   # on another backend (no naive tf.summary row)
"""

import argparse
import functools
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "tensorflow":  # the naive tf.summary configuration needs it
    import tensorflow as tf  # noqa: E402

import kerasbench  # noqa: E402
from kerasbench._timing.stats import mean_confidence_interval  # noqa: E402

HOOKS = ("on_train_batch_begin", "on_train_batch_end")


class NaiveTensorBoard(keras.callbacks.Callback):
    """The naive design: two eager tf.summary.scalar calls per step."""

    def __init__(self, log_dir):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        d = time.perf_counter() - self.t0
        self.step += 1
        with self.writer.as_default():
            tf.summary.scalar("step_time_s", d, step=self.step)
            tf.summary.scalar("images_per_sec", 1.0 / d, step=self.step)

    def on_train_end(self, logs=None):
        self.writer.close()


def instrument(callback):
    """Wraps every hook of `callback` to add up the time spent inside it."""
    spent = {"step": 0.0, "all": 0.0}
    names = [n for n in dir(keras.callbacks.Callback) if n.startswith("on_")]
    for name in names:
        original = getattr(callback, name)

        @functools.wraps(original)
        def timed(*args, _original=original, _name=name, **kwargs):
            t = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                d = time.perf_counter() - t
                spent["all"] += d
                if _name in HOOKS:
                    spent["step"] += d

        setattr(callback, name, timed)
    return spent


def tensorboard_costs(tmp, repeats=5, rows=400):
    """ms to compile the write function, ms to open a log, us per value written.

    The first open compiles (traces) the shared write function; the others
    only create their event file.
    """
    from kerasbench import _tensorboard
    from kerasbench._callback import _TB_TAGS

    _tensorboard._write_fn = None  # the first open traces the write function again
    opens, per_value = [], []
    for i in range(repeats):
        log = _tensorboard.ScalarLog(os.path.join(tmp, f"costs{i}"), _TB_TAGS,
                                     writer=_tensorboard.default_writer(BACKEND))
        t = time.perf_counter()
        log.open()
        opens.append(time.perf_counter() - t)
        for step in range(rows):  # what the callback adds per measured step
            log.add(step, (0.005, 19200.0, 19000.0, float("nan")))
        values = log.pending
        t = time.perf_counter()
        log.write()
        per_value.append((time.perf_counter() - t) / values)
        log.close()
    open_ms = 1e3 * float(np.median(opens[1:]))
    return 1e3 * opens[0] - open_ms, open_ms, 1e6 * float(np.median(per_value))


def build(units, features):
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds (default 8)")
    parser.add_argument("--steps", type=int, default=400, help="steps per fit (default 400)")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--units", type=int, default=512)
    args = parser.parse_args()

    features = 784
    rng = np.random.default_rng(0)
    x = rng.random((args.steps * args.batch_size, features), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    model = build(args.units, features)
    model.fit(x[: args.batch_size * 20], y[: args.batch_size * 20],
              batch_size=args.batch_size, verbose=0)  # trace once, outside the rounds

    tmp = tempfile.mkdtemp(prefix="kerasbench-overhead-")
    configs = {
        "none": lambda i: None,
        "callback": lambda i: kerasbench.ThroughputCallback(verbose=0),
        # The FLOP count (once per callback, at the first epoch's end) apart.
        "callback, no FLOPs": lambda i: kerasbench.ThroughputCallback(
            verbose=0, count_flops=False),
        "callback+tensorboard": lambda i: kerasbench.ThroughputCallback(
            verbose=0, log_dir=os.path.join(tmp, f"kb{i}")),
    }
    if BACKEND == "tensorflow":
        configs["naive tf.summary"] = lambda i: NaiveTensorBoard(os.path.join(tmp, f"naive{i}"))
    wall = {name: [] for name in configs}
    hook_share = {name: [] for name in configs}
    step_share = {name: [] for name in configs}
    step_time = []
    for i in range(args.rounds):
        order = list(configs) if i % 2 == 0 else list(reversed(configs))
        for name in order:
            cb = configs[name](i)
            callbacks = []
            if cb is not None:
                spent = instrument(cb)
                callbacks = [cb]
            t = time.perf_counter()
            model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0,
                      shuffle=False, callbacks=callbacks)
            elapsed = time.perf_counter() - t
            wall[name].append(elapsed)
            if cb is not None:
                hook_share[name].append(spent["all"] / elapsed)
                step_share[name].append(spent["step"] / elapsed)
            if isinstance(cb, kerasbench.ThroughputCallback) and cb.log_dir is None:
                step_time.append(cb.result.step_time_s)
        print(f"round {i + 1}/{args.rounds} done", flush=True)

    print()
    print(f"kerasbench {kerasbench.__version__}, keras {keras.__version__}, "
          f"backend {BACKEND}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs")
    print(f"model: MLP 784-{args.units}-{args.units}-10, batch {args.batch_size}, "
          f"{args.steps} steps per fit, {args.rounds} interleaved rounds")
    print(f"mean step time (from the callback): {1e3 * float(np.mean(step_time)):.2f} ms")
    print()
    print(f"{'configuration':<22} {'(a) per-step hooks':>20} {'(a) all hooks':>15} "
          f"{'(b) fit time vs none (95% CI)':>32}")
    for name in configs:
        if name == "none":
            mean_wall = float(np.mean(wall[name]))
            print(f"{name:<22} {'-':>20} {'-':>15} {'1 (' + f'{mean_wall:.2f} s per fit)':>32}")
            continue
        ratios = [w / n for w, n in zip(wall[name], wall["none"])]
        m, h = mean_confidence_interval(ratios)
        a_step = 100 * float(np.mean(step_share[name]))
        a_all = 100 * float(np.mean(hook_share[name]))
        print(f"{name:<22} {a_step:>19.2f}% {a_all:>14.2f}% {f'{m:.3f} +/- {h:.3f}':>32}")
    compile_ms, open_ms, value_us = tensorboard_costs(tmp)
    share = 100 * 3 * value_us * 1e-6 / float(np.mean(step_time))
    print()
    print(f"TensorBoard writer: {compile_ms:.0f} ms to compile the write function (once per "
          f"process), {open_ms:.1f} ms to open an event file (once per fit and phase, before "
          f"the first step), {value_us:.1f} us per value written (3 per step: {share:.2f}% "
          f"of the mean step)")

if __name__ == "__main__":
    main()
