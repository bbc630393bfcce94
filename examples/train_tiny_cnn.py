"""Train a tiny CNN on synthetic images with ThroughputCallback attached.

    python examples/train_tiny_cnn.py                  # about 15 s on a 2-vCPU VM
    python examples/train_tiny_cnn.py --log-dir logs   # then: tensorboard --logdir logs

The same callback works on any `model.fit`, `model.evaluate` and
`model.predict`: add it to the `callbacks` list.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasbench import ThroughputCallback  # noqa: E402


def tiny_cnn(image_size=32, num_classes=10):
    return keras.Sequential([
        keras.Input((image_size, image_size, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes),
    ], name="tiny_cnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--log-dir", default=None, help="TensorBoard directory")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)

    model = tiny_cnn()
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    cb = ThroughputCallback(log_dir=args.log_dir)
    callbacks = [cb]
    if args.log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=args.log_dir))
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=0.1, callbacks=callbacks, verbose=2)
    model.predict(x[:1000], batch_size=args.batch_size, callbacks=[cb], verbose=0)

    summary = {phase: round(r.images_per_sec, 1) for phase, r in cb.results.items()}
    print("images/sec by phase:", json.dumps(summary))


if __name__ == "__main__":
    main()
