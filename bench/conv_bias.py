"""What the convolution biases before batch normalisation cost, side by side.

Keras' ResNet-50 (``keras.applications``) gives every convolution a bias,
followed by batch normalisation, which subtracts the batch mean and so makes
that bias redundant in training; tf_cnn_benchmarks' ResNet-50 has no such
bias. This script trains the registry's model (fused batch normalisation,
kerasbench's default on TensorFlow) and the same model with those biases
removed (``use_bias=False`` on every convolution whose only consumer is a
batch normalisation: a different model, with fewer parameters) through
`model.fit` + `ThroughputCallback`, alternating the order from round to round,
and prints images/sec and the ratio no-bias / with-bias of each round. It
measures what the biases cost; kerasbench keeps them, since the model must
be the one its name says (same layers and parameter count).

    python bench/conv_bias.py                      # resnet50, batch 16, fp32, 2 rounds
    python bench/conv_bias.py --precision bf16 --rounds 3
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402


def without_conv_bias(keras, model):
    """A copy of ``model`` whose convolutions feeding only a batch norm have no bias."""
    feeds_bn = set()
    for layer in model.layers:
        outbound = [node.operation for node in layer._outbound_nodes]
        if (isinstance(layer, keras.layers.Conv2D) and outbound
                and all(isinstance(op, keras.layers.BatchNormalization) for op in outbound)):
            feeds_bn.add(layer.name)

    def clone(layer):
        config = layer.get_config()
        if layer.name in feeds_bn:
            config["use_bias"] = False
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone), len(feeds_bn)


def images_per_sec(keras, kerasbench, net, args):
    net.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    import tensorflow as tf

    x = rng.random((args.batch_size,) + net.input_shape[1:], dtype=np.float32)
    y = rng.integers(0, 1000, args.batch_size)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    cb = kerasbench.ThroughputCallback(warmup_steps=args.warmup_steps, verbose=0,
                                       count_flops=False)
    net.fit(data, steps_per_epoch=args.warmup_steps + args.steps, epochs=1, verbose=0,
            callbacks=[cb])
    return cb.result.images_per_sec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import keras

    import kerasbench

    keras.config.set_dtype_policy({"fp32": "float32", "bf16": "mixed_bfloat16"}[args.precision])
    base, _ = kerasbench.fuse_batch_norm(kerasbench.create_model(args.model))
    bare, removed = without_conv_bias(keras, base)
    print(f"{args.model} bs{args.batch_size} {args.precision}, fused batch norm: "
          f"{base.count_params():,} parameters with the biases, {bare.count_params():,} "
          f"without ({removed} convolutions); {args.warmup_steps} warmup + {args.steps} steps")
    print(f"{'round':>5} {'with bias':>10} {'no bias':>8} {'ratio':>6}")
    ratios = []
    for i in range(args.rounds):
        order = (("with", base), ("without", bare)) if i % 2 == 0 else (("without", bare),
                                                                        ("with", base))
        rate = {name: images_per_sec(keras, kerasbench, net, args) for name, net in order}
        ratios.append(rate["without"] / rate["with"])
        print(f"{i + 1:>5} {rate['with']:>10.2f} {rate['without']:>8.2f} {ratios[-1]:>6.3f}",
              flush=True)
    print(f"{'mean':>5} {'':>10} {'':>8} {statistics.fmean(ratios):>6.3f}")


if __name__ == "__main__":
    main()
