"""Where a training step's time goes, by TensorFlow op type.

Builds a reference model (`kerasbench.create_model`), optionally fuses its
batch normalisation (`kerasbench.fuse_batch_norm`), trains it with SGD on
synthetic data at the given precision, profiles a few steps with
TensorFlow's profiler (``tf.profiler.experimental``, the data TensorBoard's
profile plugin shows) and prints, per op type, the self-time per step and its
share of all op time. oneDNN's kernels appear under their own names
(``_MklNativeConv2D...``, ``_MklFusedBatchNormV3``...), which shows which
ops oneDNN covers and which fall back to Eigen. TensorFlow backend only.

    python bench/op_profile.py                                # resnet50, bs16, 4 variants
    python bench/op_profile.py --models inception3 --variants keras:bf16,fused:bf16 --top 25
"""

import argparse
import collections
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}
SKIPPED = {"IDLE", "Dataset"}


def op_times(log_dir):
    """{op type: total self-time in microseconds} from the profile in ``log_dir``."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    files = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
    data, ok = plugin.xspace_to_tools_data(files, "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"the profiler could not convert {files}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    kind, self_time = columns.index("type"), columns.index("total_self_time")
    totals = collections.Counter()
    for row in table["rows"]:
        cells = [c.get("v") for c in row["c"]]
        if cells[kind] not in SKIPPED:
            totals[cells[kind]] += cells[self_time]
    return totals


def profile(model_name, batch_norm, precision, args):
    import keras
    import tensorflow as tf

    import kerasbench

    keras.config.set_dtype_policy(POLICIES[precision])
    net = kerasbench.create_model(model_name, image_size=args.image_size)
    if batch_norm == "fused":
        net, _ = kerasbench.fuse_batch_norm(net)
    net.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    shape = net.input_shape[1:]
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size,) + shape, dtype=np.float32)
    y = rng.integers(0, 1000, args.batch_size)
    data = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
    net.fit(data, steps_per_epoch=args.warmup_steps, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir)
        net.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        totals = op_times(log_dir)
    keras.config.set_dtype_policy("float32")
    return totals


def show(title, totals, steps, top):
    whole = sum(totals.values())
    print(f"\n{title}: {whole / steps / 1e3:.0f} ms of op time per step")
    for kind, micros in totals.most_common(top):
        print(f"  {kind:<44} {micros / steps / 1e3:>8.1f} ms {100 * micros / whole:>5.1f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50")
    parser.add_argument("--variants", default="keras:fp32,fused:fp32,keras:bf16,fused:bf16",
                        help="batch_norm:precision,... (batch_norm keras or fused)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for model_name in args.models.split(","):
        for variant in args.variants.split(","):
            batch_norm, precision = variant.split(":")
            totals = profile(model_name, batch_norm, precision, args)
            show(f"{model_name} bs{args.batch_size} {precision}, batch_norm={batch_norm}",
                 totals, args.steps, args.top)


if __name__ == "__main__":
    main()
