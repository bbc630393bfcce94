"""``kerasbench bottleneck MODEL``: `bottleneck()` on a reference model, no script.

The model comes from the registry, built as `reference` builds it (random
weights, SGD); the data is a `keras.utils.PyDataset` of synthetic images (one
batch made once and handed out again, so the pipeline itself costs next to
nothing), optionally slowed by ``--data-delay-ms`` per batch to see what an
input-bound run looks like. Works on every backend.
"""

from __future__ import annotations

import time

from kerasbench import _validate
from kerasbench._bottleneck.run import DEFAULT_STEPS, DEFAULT_WARMUP_STEPS


def add_command(sub, integer, real, handler):
    """Adds the ``bottleneck`` subcommand to ``sub`` (argparse subparsers).

    Args:
        sub: The subparsers of the ``kerasbench`` parser.
        integer, real: The command line's argparse types.
        handler: What runs the parsed command.
    """
    p = sub.add_parser(
        "bottleneck", help="is training input-bound, compute-bound or held by the host?",
        description=("Measure a reference model on a synthetic PyDataset three ways: the "
                     "input pipeline alone, the model's train step on one batch already on "
                     "the device, and model.fit with both; print the verdict (input-bound, "
                     "compute-bound or host-overhead), the figures, the share of time lost "
                     "and the usual remedies. --data-delay-ms slows the pipeline on purpose."),
    )
    p.add_argument("model", help="registry name (see 'kerasbench list')")
    p.add_argument("--batch-size", type=integer, default=32, metavar="N",
                   help="images per step (default: 32)")
    p.add_argument("--steps", type=integer, default=DEFAULT_STEPS, metavar="N",
                   help=f"measured steps of each measurement (default: {DEFAULT_STEPS})")
    p.add_argument("--warmup-steps", type=integer, default=DEFAULT_WARMUP_STEPS, metavar="N",
                   help="steps left out at the start of each measurement "
                        f"(default: {DEFAULT_WARMUP_STEPS})")
    p.add_argument("--image-size", type=integer, default=None, metavar="N",
                   help="square image size (default: the model's)")
    p.add_argument("--data-delay-ms", type=real, default=0.0, metavar="X",
                   help="sleep this long in the pipeline for each batch (default: 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=handler)


def run_command(args):
    """Runs a parsed ``kerasbench bottleneck``; returns the exit code (0)."""
    from kerasbench._bottleneck.run import bottleneck

    delay_s = _validate.number("data_delay_ms", args.data_delay_ms, minimum=0) / 1000
    config, image_size = _config(args)
    model, data = synthetic_run(config, image_size, delay_s)
    if not args.json:
        print(f"kerasbench: bottleneck of {config.model}, batch {config.batch_size}, "
              f"{image_size}x{image_size}, {config.warmup_steps} warmup + {config.steps} steps "
              f"per measurement, data delay {delay_s * 1000:g} ms/batch", flush=True)
    found = bottleneck(model, data, steps=config.steps, warmup_steps=config.warmup_steps,
                       verbose=0 if args.json else 1)
    if args.json:
        print(found.to_json(indent=2))
    return 0


def _config(args):
    """The `RunConfig` of the flags (its checks and messages) and the image size."""
    from kerasbench._models import model_info
    from kerasbench._runs.config import RunConfig

    config = RunConfig(model=args.model, batch_size=args.batch_size, steps=args.steps,
                       warmup_steps=args.warmup_steps, image_size=args.image_size)
    return config, config.check_model(model_info(config.model))


def synthetic_run(config, image_size, delay_s):
    """The compiled registry model of ``config`` and its synthetic `PyDataset`."""
    import keras
    import numpy as np

    from kerasbench._models import create_model
    from kerasbench._runs.reference import LEARNING_RATE

    net = create_model(config.model, image_size=image_size, num_classes=config.num_classes)
    net.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    shape = net.input_shape[1:]
    rng = np.random.default_rng(config.seed)
    images = rng.random((config.batch_size, *shape), dtype="float32")
    labels = rng.integers(0, config.num_classes, config.batch_size)
    data = synthetic_images(images, labels, config.warmup_steps + config.steps, delay_s)
    return net, data


def synthetic_images(images, labels, batches, delay_s):
    """A `PyDataset` of ``batches`` copies of one batch, each after ``delay_s``."""
    import keras

    class SyntheticImages(keras.utils.PyDataset):
        def __len__(self):
            return batches

        def __getitem__(self, index):
            if delay_s:
                time.sleep(delay_s)
            return images, labels

    return SyntheticImages()
