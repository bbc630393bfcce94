"""reference(): the classic CNN benchmarks through model.fit / model.predict.

The models come from the registry (`kerasbench._models`), the data is
synthetic and resident on the device, and the timing is `ThroughputCallback`
attached to an ordinary `fit` or `predict` call: the path a user's own
training takes.
"""

from __future__ import annotations

import datetime
import difflib
import platform
import socket

from kerasbench._timing.meter import DEFAULT_WARMUP_STEPS

MODES = ("train", "inference")
PRECISIONS = {"fp32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
OPTIMIZERS = ("sgd", "momentum", "adam")
DATA_FORMATS = ("channels_last", "channels_first")
DEFAULT_STEPS = 100
#: Learning rate of the reference optimizers: small, so random data does not
#: drive weights to inf/NaN (denormals and NaNs can change CPU speed).
LEARNING_RATE = 1e-3


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")


def _check_warmup(warmup_steps, steps):
    _positive_int("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps > steps:
        raise ValueError(
            "`warmup_steps` must not exceed `steps` (at most half of a run is "
            f"warmup). Received: warmup_steps={warmup_steps}, steps={steps}"
        )


def _choice(name, value, allowed):
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, allowed))}.{hint} "
            f"Received: {name}={value!r}"
        )


def versions():
    """Versions that shape the numbers: kerasbench, keras, tensorflow, numpy, python."""
    from importlib import metadata

    from kerasbench._version import __version__

    out = {"kerasbench": __version__, "python": platform.python_version()}
    for dist in ("keras", "tensorflow", "tensorflow-cpu", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def resolve_device(device, report):
    """Turns ``None``/``"cpu"``/``"gpu"``/``"gpu:N"`` into a device that exists.

    Args:
        device: What the user asked for; ``None`` means the best available
            (the first GPU, else the CPU).
        report: A `DeviceReport` listing the devices.

    Returns:
        ``"cpu"`` or ``"gpu:N"``.

    Raises:
        ValueError: If the device does not exist; the message names the
            devices that do and, without a GPU, why there is none.
    """
    available = report.devices
    if device is None:
        return next((d for d in available if d.startswith("gpu")), "cpu")
    if not isinstance(device, str):
        raise ValueError(f"`device` must be 'cpu', 'gpu' or 'gpu:N'. Received: device={device!r}")
    name = device.strip().lower()
    if name == "gpu":
        name = "gpu:0"
    if name in available:
        return name
    reason = ""
    if name.startswith("gpu") and report.gpu_unavailable_reason:
        reason = f" {report.gpu_unavailable_reason}"
    raise ValueError(
        f"`device` must be one of the devices on this machine: {', '.join(available)}."
        f"{reason} Received: device={device!r}"
    )


def _synthetic_model(keras, net, batch_size, image_shape, seed):
    """Wraps ``net`` so its input images come from a variable on the device.

    Like tf_cnn_benchmarks' synthetic mode: the images are generated once,
    stay where the model runs, and cost no input pipeline. The wrapper takes
    a tiny ``(batch, 1)`` placeholder, so the loop still sees real batches
    (and `ThroughputCallback` counts them) while nothing large is copied.
    """

    class SyntheticImages(keras.layers.Layer):
        def build(self, input_shape):
            self.images = self.add_weight(
                shape=(batch_size, *image_shape),
                initializer=keras.initializers.RandomUniform(0.0, 1.0, seed=seed),
                trainable=False,
                name="images",
            )

        def call(self, x):
            return keras.ops.cast(self.images, self.compute_dtype)

        def compute_output_shape(self, input_shape):
            return (batch_size, *image_shape)

    placeholder = keras.Input((1,), name="synthetic_batch")
    outputs = net(SyntheticImages(name="synthetic_images")(placeholder))
    return keras.Model(placeholder, outputs, name=f"{net.name}_synthetic")


def _optimizer(keras, name):
    if name == "sgd":
        return keras.optimizers.SGD(LEARNING_RATE)
    if name == "momentum":
        return keras.optimizers.SGD(LEARNING_RATE, momentum=0.9)
    return keras.optimizers.Adam(LEARNING_RATE)


def reference(
    model,
    *,
    mode="train",
    batch_size=32,
    steps=DEFAULT_STEPS,
    warmup_steps=None,
    image_size=None,
    num_classes=1000,
    precision="fp32",
    optimizer="sgd",
    device=None,
    jit_compile=None,
    data_format=None,
    steps_per_execution=1,
    log_dir=None,
    verbose=1,
    seed=0,
    machine=None,
    device_report=None,
):
    """Benchmarks a registry model on synthetic data through `fit` or `predict`.

    The model is built with random weights (nothing is downloaded), fed
    synthetic images that stay on the device, and run for ``warmup_steps``
    plus ``steps`` steps with `ThroughputCallback` attached; the warmup steps
    are excluded from the figures, as in tf_cnn_benchmarks. Global state is
    restored afterwards: the dtype policy and Keras' image data format; no
    random seed is set globally.

    Args:
        model: Registry name, see `list_models`.
        mode: ``"train"`` (forward-backward, `fit`) or ``"inference"``
            (forward only, `predict`).
        batch_size: Images per step.
        steps: Measured steps (default 100, as tf_cnn_benchmarks).
        warmup_steps: Steps run first and excluded (default 10, or ``steps``
            when fewer); at most ``steps``.
        image_size: Square input size; default the model's own.
        num_classes: Output classes (default 1000).
        precision: ``"fp32"``, ``"fp16"`` (``mixed_float16``, with loss
            scaling in training) or ``"bf16"`` (``mixed_bfloat16``).
        optimizer: ``"sgd"`` (default, as the seed's table), ``"momentum"``
            (SGD with momentum 0.9) or ``"adam"``; used in training.
        device: ``"cpu"``, ``"gpu"``, ``"gpu:N"``, or ``None`` for the best
            available (first GPU, else CPU).
        jit_compile: Compile the step with XLA. Default ``None``: off on
            TensorFlow (graph mode, as tf_cnn_benchmarks ran by default) and
            PyTorch, on with JAX (whose only compiled mode is XLA; without it
            every op runs eagerly, many times slower).
        data_format: ``"channels_last"`` or ``"channels_first"`` (GPU only:
            TensorFlow's CPU kernels need channels_last); default Keras'.
        steps_per_execution: Steps per compiled call (Keras ``compile``).
        log_dir: TensorBoard directory for per-step scalars and the device
            report, or ``None``.
        verbose: 0 silent, 1 progress lines and summary, 2 summary only.
        seed: Seed of the synthetic images and labels.
        machine: Label of this machine in result files (default host name).
        device_report: A `DeviceReport` to embed (default: collect one).

    Returns:
        `BenchmarkResult` with the configuration, the statistics, the
        parameter count, the device report, versions and timestamps.

    Raises:
        ValueError: On an unknown model (with the closest name), an invalid
            argument, a device that does not exist, fp16 on a CPU, or an
            image size below the model's minimum.

    Example:

    ```python
    result = kerasbench.reference("resnet50", batch_size=32, precision="bf16")
    print(result.images_per_sec)
    ```
    """
    from kerasbench._models import model_info

    info = model_info(model)  # unknown names fail here, with a suggestion
    _choice("mode", mode, MODES)
    _positive_int("batch_size", batch_size)
    _positive_int("steps", steps)
    if warmup_steps is None:
        warmup_steps = min(DEFAULT_WARMUP_STEPS, steps)
    _check_warmup(warmup_steps, steps)
    if image_size is None:
        image_size = info.image_size
    _positive_int("image_size", image_size)
    if image_size < info.min_image_size:
        raise ValueError(
            f"`image_size` must be at least {info.min_image_size} for {info.name}. "
            f"Received: image_size={image_size}"
        )
    _positive_int("num_classes", num_classes)
    _choice("precision", precision, tuple(PRECISIONS))
    _choice("optimizer", optimizer, OPTIMIZERS)
    if data_format is not None:
        _choice("data_format", data_format, DATA_FORMATS)
    if jit_compile is not None and not isinstance(jit_compile, bool):
        raise ValueError(
            f"`jit_compile` must be True, False or None. Received: jit_compile={jit_compile!r}"
        )
    _positive_int("steps_per_execution", steps_per_execution)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")

    if device_report is None:
        from kerasbench._device import DeviceReport

        device_report = DeviceReport.collect()
    resolved = resolve_device(device, device_report)
    on_cpu = resolved == "cpu"
    if on_cpu and precision == "fp16":
        raise ValueError(
            "`precision='fp16'` is emulated on CPUs and takes minutes per step (one "
            "ResNet-50 training step took over 500 s here); use precision='bf16' on "
            "CPUs (1.3x faster than fp32 where the CPU has AMX) or run fp16 on a GPU. "
            f"Received: precision='fp16', device={resolved!r}"
        )
    if on_cpu and data_format == "channels_first":
        raise ValueError(
            "`data_format='channels_first'` is not supported on CPUs (TensorFlow's CPU "
            "pooling and convolution kernels need channels_last); use it on a GPU. "
            f"Received: data_format='channels_first', device={resolved!r}"
        )
    config = {
        "steps": steps, "warmup_steps": warmup_steps, "image_size": image_size,
        "num_classes": num_classes, "optimizer": optimizer if mode == "train" else None,
        "jit_compile": jit_compile, "data_format": data_format,
        "steps_per_execution": steps_per_execution, "synthetic_data": True, "seed": seed,
    }
    return _run(info, mode, batch_size, precision, resolved, config, log_dir, verbose,
                machine, device_report)


def _run(info, mode, batch_size, precision, device, config, log_dir, verbose,
         machine, device_report):
    import keras
    import numpy as np

    from kerasbench._callback import ThroughputCallback
    from kerasbench._models import create_model
    from kerasbench._results.result import BenchmarkResult

    config["backend"] = keras.backend.backend()
    if config["jit_compile"] is None:
        config["jit_compile"] = config["backend"] == "jax"
    started = _now()
    steps, warmup = config["steps"], config["warmup_steps"]
    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(PRECISIONS[precision])
        with keras.device(device):
            net = create_model(info.name, image_size=config["image_size"],
                               num_classes=config["num_classes"],
                               data_format=config["data_format"])
            params = net.count_params()
            layout = config["data_format"] or keras.config.image_data_format()
            size = config["image_size"]
            shape = (3, size, size) if layout == "channels_first" else (size, size, 3)
            wrapped = _synthetic_model(keras, net, batch_size, shape, config["seed"])
            wrapped.compile(
                optimizer=_optimizer(keras, config["optimizer"] or "sgd"),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=config["jit_compile"],
                steps_per_execution=config["steps_per_execution"],
            )
            rng = np.random.default_rng(config["seed"])
            total = warmup + steps
            placeholder = np.zeros((batch_size * total, 1), dtype="float32")
            labels = rng.integers(0, config["num_classes"], batch_size * total)
            if verbose:
                print(f"kerasbench: {info.name} {mode}, batch {batch_size}, {precision}, "
                      f"{device}, {size}x{size}, {params:,} params, "
                      f"{warmup} warmup + {steps} steps", flush=True)
            if log_dir is not None:
                device_report.write_tensorboard(log_dir)
            # Every synthetic batch is full: the count is known, no need to read
            # it from the device after each step.
            cb = ThroughputCallback(batch_size=batch_size, warmup_steps=warmup,
                                    log_dir=log_dir, verbose=verbose)
            if mode == "train":
                wrapped.fit(placeholder, labels, batch_size=batch_size, epochs=1,
                            shuffle=False, callbacks=[cb], verbose=0)
                stats = cb.results["train"]
            else:
                wrapped.predict(placeholder, batch_size=batch_size, callbacks=[cb], verbose=0)
                stats = cb.results["predict"]
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return BenchmarkResult(
        model=info.name, mode=mode, batch_size=batch_size, precision=precision,
        device=device, stats=stats.to_dict(), config=config, params=params,
        device_report=device_report.to_dict(), versions=versions(),
        machine=machine or socket.gethostname(), started_at=started, finished_at=_now(),
    )
