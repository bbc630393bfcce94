"""reference(): the classic CNN benchmarks through model.fit / model.predict.

The models come from the registry (`kerasbench._models`), the data is
synthetic and resident on the device, and the timing is `ThroughputCallback`
attached to an ordinary `fit` or `predict` call: the path a user's own
training takes.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import platform
import socket

from kerasbench import _validate
from kerasbench._runs.config import RunConfig, field_names

#: Learning rate of the reference optimizers: small, so random data does not
#: drive weights to inf/NaN (denormals and NaNs can change CPU speed).
LEARNING_RATE = 1e-3
#: Distributions whose versions shape the numbers, when installed.
_VERSIONED = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy")


def now():
    """The current UTC time, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions():
    """Versions that shape the numbers: kerasbench, python, and those of
    keras, tensorflow, jax, torch and numpy that are installed.

    Read from package metadata: nothing is imported.
    """
    from importlib import metadata

    from kerasbench._version import __version__

    out = {"kerasbench": __version__, "python": platform.python_version()}
    for dist in _VERSIONED:
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
            from kerasbench._runs.distributed import replica_images  # JAX: every replica's

            return replica_images(keras, keras.ops.cast(self.images, self.compute_dtype))

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


def reference(model=None, *, config=None, log_dir=None, verbose=1, machine=None,
              device_report=None, **options):
    """Benchmarks a registry model on synthetic data through `fit` or `predict`.

    The model is built with random weights (nothing is downloaded), fed
    synthetic images that stay on the device, and run for ``warmup_steps``
    plus ``steps`` steps with `ThroughputCallback` attached; the warmup steps
    are excluded from the figures, as in tf_cnn_benchmarks. Global state is
    restored afterwards: the dtype policy and Keras' image data format; no
    random seed is set globally.

    Args:
        model: Registry name, see `list_models`.
        config: A `RunConfig` to run (``model`` and ``**options`` then change
            fields of it).
        log_dir: TensorBoard directory for per-step scalars and the device
            report, or ``None``.
        verbose: 0 silent, 1 progress lines and summary, 2 summary only.
        machine: Label of this machine in result files (default host name).
        device_report: A `DeviceReport` to embed (default: collect one).
        **options: Any field of `RunConfig`: ``mode`` (``"train"`` or
            ``"inference"``), ``batch_size`` (32), ``steps`` (100),
            ``warmup_steps``, ``image_size``, ``num_classes`` (1000),
            ``precision`` (``"fp32"``, ``"fp16"``, ``"bf16"``), ``optimizer``,
            ``device`` (``"cpu"``, ``"gpu"``, ``"gpu:N"``; default the first
            GPU, else the CPU), ``jit_compile``, ``data_format``,
            ``steps_per_execution``, ``seed``, ``target_precision`` (``0.01``
            or ``"1%"``: run until the 95 % confidence interval of images/sec
            is within +/-1 % of it, with ``min_steps``, ``max_steps`` and
            ``max_time_s`` as bounds, instead of ``steps``; a multi-worker
            run only reports it). See `RunConfig` for each.

    Returns:
        `BenchmarkResult` whose ``config`` is the configuration as it ran
        (defaults resolved) and ``requested`` the one asked for, with the
        statistics (images/sec with its 95 % confidence interval; with
        ``target_precision``, ``target_reached`` and ``stop_reason``), the
        parameter count, the device report, versions and timestamps.

    Raises:
        ValueError: On an unknown model (with the closest name), an invalid
            argument, a device that does not exist, fp16 on a CPU, or an
            image size below the model's minimum.
        TypeError: On an unknown keyword (with the closest one).

    Example:

    ```python
    result = kerasbench.reference("resnet50", batch_size=32, precision="bf16")
    print(result.images_per_sec)
    sure = kerasbench.reference("alexnet", target_precision="1%", max_time_s=120)
    print(sure.stats["target_reached"], sure.stats["images_per_sec_ci_low"])
    ```
    """
    requested = make_config(model, config, options, function="reference")
    _validate.path("log_dir", log_dir, allow_none=True)
    verbose = _validate.integer("verbose", verbose, minimum=0, maximum=2)
    _validate.text("machine", machine, allow_none=True, single_line=True)
    if requested.backend not in (None, current_backend()) or _needs_logical_cpus(requested) \
            or requested.strategy == "multi_worker":
        return _run_elsewhere(requested, log_dir, verbose, machine)
    return _Run(requested, log_dir, verbose, machine, device_report).execute()


def current_backend():
    """This process's Keras backend, read without importing Keras when it is not
    imported yet (``KERAS_BACKEND``, then ``keras.json``, then TensorFlow)."""
    import os
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        import json

        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return json.load(f).get("backend") or "tensorflow"
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _needs_logical_cpus(config):
    """Whether a mirrored CPU run needs more CPU devices than this process
    has (they can only be made before the framework starts: in a worker)."""
    from kerasbench._runs.distributed import cpus_missing

    return cpus_missing(config, current_backend())


def _run_elsewhere(requested, log_dir, verbose, machine):
    """Runs ``requested`` in a worker process on its own backend; raises its error."""
    from kerasbench._runs import worker

    result = worker.call(requested, machine=machine or socket.gethostname(),
                         verbose=verbose, log_dir=log_dir, show_output=verbose > 0)
    if not result.ok:
        error = ValueError if result.error_type == "ValueError" else RuntimeError
        text = result.error.removeprefix(f"{result.error_type}: ")
        where = f" (in a worker process, {requested.backend} backend)" if requested.backend \
            else " (in a worker process)"
        raise error(text + where)
    return result


def make_config(model, config, options, *, function):
    """The `RunConfig` of ``model``/``config``/``options`` (see `reference`)."""
    _validate.keywords(function, options, field_names())
    if config is not None and not isinstance(config, RunConfig):
        raise ValueError(f"`config` must be a RunConfig or None. Received: config={config!r}")
    if model is not None:
        options = {**options, "model": model}
    base = config or RunConfig()
    if config is None and "model" not in options:
        raise TypeError(f"{function}() needs a model: a registry name or config=RunConfig(...)")
    return base.replace(**options)


def _signature():
    """`reference`'s signature as help() shows it: every `RunConfig` field a keyword."""
    fixed = inspect.signature(reference).parameters
    params = [fixed["model"], fixed["config"]]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
               for f in dataclasses.fields(RunConfig) if f.name != "model"]
    params += [fixed[n] for n in ("log_dir", "verbose", "machine", "device_report")]
    return inspect.Signature(params)


reference.__signature__ = _signature()


class _Run:
    """One `reference` call: resolve the configuration, run it, build the result."""

    def __init__(self, requested, log_dir, verbose, machine, device_report):
        self.requested, self.log_dir, self.verbose = requested, log_dir, verbose
        self.machine = machine or socket.gethostname()
        self.device_report = device_report

    def resolve(self):
        """The resolved `RunConfig` (the device report is collected if needed)."""
        import keras

        from kerasbench._models import model_info

        info = model_info(self.requested.model)  # unknown names fail here, with a hint
        if self.device_report is None:
            from kerasbench._device import DeviceReport

            self.device_report = DeviceReport.collect()
        device = resolve_device(self.requested.device, self.device_report)
        return self.requested.resolve(info, keras.backend.backend(), device,
                                      self.device_report.devices)

    def execute(self):
        import keras

        from kerasbench._results.result import BenchmarkResult

        config = self.resolve()
        started = now()
        stats, extra, params = _measure(config, self.log_dir, self.verbose,
                                        self.device_report)
        report = self.device_report.to_dict()
        figures = stats.to_dict()  # FLOPs, achieved TFLOP/s and MFU by ThroughputCallback
        figures.update(replica_figures(config, stats.images_per_sec), **extra)
        return BenchmarkResult(
            config=config, requested=self.requested, stats=figures, params=params,
            backend=keras.backend.backend(), device_report=report,
            versions=versions(), machine=self.machine, started_at=started,
            finished_at=now(),
        )


def _measure(config, log_dir, verbose, device_report):
    """Builds, compiles and runs ``config`` (resolved).

    Returns:
        ``(stats, extra, params)``: the `ThroughputResult` (with FLOPs per
        sample, achieved TFLOP/s and MFU, which `ThroughputCallback` counts
        outside the timed steps), figures to add to it (multi-worker) and
        the parameter count.
    """
    import keras

    previous_policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy(config.dtype_policy)
        with _placement(keras, config):
            wrapped, net, shape = _build(keras, config)
            params = net.count_params()
            if verbose:
                size = config.image_size
                print(f"kerasbench: {config.model} {config.mode}, batch {config.batch_size}, "
                      f"{config.precision}, {config.device}, {size}x{size}, {params:,} params, "
                      f"{_length_text(config)}"
                      + (f", {config.num_devices} replicas" if config.num_devices > 1 else ""),
                      flush=True)
            if log_dir is not None:
                device_report.write_tensorboard(log_dir)
            stats, extra = _fit_or_predict(wrapped, config, log_dir, verbose, device_report)
            return stats, extra, params
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _placement(keras, config):
    """Where the model lives: one device, or a mirrored strategy's scope."""
    if config.strategy == "multi_worker":
        from kerasbench._runs import distributed

        return distributed.strategy().scope()
    if config.strategy != "mirrored":
        return keras.device(config.device)
    from kerasbench._runs.distributed import mirrored_scope

    return mirrored_scope(keras, config)  # tf.distribute, or keras.distribution on JAX


def _build(keras, config):
    """The compiled synthetic-data model of ``config``, the bare model and its
    input shape (one image)."""
    from kerasbench._models import create_model

    net = create_model(config.model, image_size=config.image_size,
                       num_classes=config.num_classes, data_format=config.data_format)
    if config.batch_norm == "fused":
        from kerasbench._layers import fuse_batch_norm

        net, _ = fuse_batch_norm(net)
    layout = config.data_format or keras.config.image_data_format()
    size = config.image_size
    shape = (3, size, size) if layout == "channels_first" else (size, size, 3)
    wrapped = _synthetic_model(keras, net, config.batch_size, shape, config.seed)
    wrapped.compile(
        optimizer=_optimizer(keras, config.optimizer or "sgd"),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return wrapped, net, shape


def replica_figures(config, images_per_sec):
    """``replicas``, ``global_batch_size`` and ``images_per_sec_per_replica``
    of a mirrored run (``images_per_sec`` is global); empty otherwise."""
    if config.strategy == "none":
        return {}
    n = config.num_devices
    return {"replicas": n, "global_batch_size": config.batch_size * n,
            "images_per_sec_per_replica": None if images_per_sec is None
            else images_per_sec / n}


def _efficiency(config, device_report):
    """`ThroughputCallback`'s efficiency arguments for ``config``: FLOPs
    counted by the callback (on the synthetic-data model, whose images come
    from a variable: the same FLOPs as the bare model) and the run's device
    report for the peak."""
    return {"count_flops": config.count_flops, "device_report": device_report}


def _multi_worker(config, wrapped, batch, log_dir, verbose, device_report):
    """A multi-worker training run; only the chief prints and writes TensorBoard."""
    from kerasbench._callback import ThroughputCallback
    from kerasbench._runs import distributed

    chief = distributed.is_chief(distributed.strategy())
    cb = ThroughputCallback(batch_size=batch, warmup_steps=config.warmup_steps,
                            log_dir=log_dir if chief else None, verbose=verbose if chief else 0,
                            target_precision=config.target_precision,
                            **_efficiency(config, device_report))
    stats = distributed.train(wrapped, config, cb)
    extra = distributed.worker_figures(stats, chief)
    if verbose and not chief:
        print(f"kerasbench (worker, not the chief): {stats.images_per_sec:.1f} images/sec "
              "on this worker's clock; the chief prints the summary", flush=True)
    return stats, extra


def measured_steps(config):
    """The measured steps a run provides data for: ``steps``, or with
    ``target_precision`` at most ``max_steps`` (the callback stops it sooner)."""
    return config.steps if config.target_precision is None else config.max_steps


def stopping(config):
    """`ThroughputCallback`'s precision arguments for ``config``: none for a
    fixed length; else stop at ``target_precision`` within the bounds."""
    if config.target_precision is None:
        return {}
    return {"stop_at_precision": config.target_precision, "min_steps": config.min_steps,
            "max_steps": config.max_steps, "max_time_s": config.max_time_s}


def _length_text(config):
    """``10 warmup + 100 steps``, or for an adaptive run ``10 warmup + 20 to
    10000 steps until +/-1% (at most 600 s)``."""
    text = f"{config.warmup_steps} warmup + "
    if config.target_precision is None:
        return text + f"{config.steps} steps"
    limit = "" if config.max_time_s is None else f" (at most {config.max_time_s:g} s)"
    return (text + f"{config.min_steps} to {config.max_steps} steps until "
            f"+/-{config.target_precision * 100:g}%{limit}")


def _fit_or_predict(wrapped, config, log_dir, verbose, device_report):
    """Runs warmup + steps through `fit` (train) or `predict` (or the
    multi-worker loop); returns the stats and any figures to add to them."""
    import numpy as np

    from kerasbench._callback import ThroughputCallback

    batch = config.batch_size * config.num_devices  # global: batch_size per replica
    total = config.warmup_steps + measured_steps(config)
    placeholder = np.zeros((batch * total, 1), dtype="float32")
    labels = np.random.default_rng(config.seed).integers(0, config.num_classes, batch * total)
    # Every synthetic batch is full: the count is known, no need to read it
    # from the device after each step.
    if config.strategy == "multi_worker":
        return _multi_worker(config, wrapped, batch, log_dir, verbose, device_report)
    cb = ThroughputCallback(batch_size=batch, warmup_steps=config.warmup_steps,
                            log_dir=log_dir, verbose=verbose, **stopping(config),
                            **_efficiency(config, device_report))
    if config.mode == "train":
        wrapped.fit(placeholder, labels, batch_size=batch, epochs=1, shuffle=False,
                    callbacks=[cb], verbose=0)
        return cb.results["train"], {}
    wrapped.predict(placeholder, batch_size=batch, callbacks=[cb], verbose=0)
    return cb.results["predict"], {}
