"""RunConfig: every setting of one benchmark run, in one frozen, validated object.

This is the one place a run option is declared. Each field carries its help
text and command-line spelling in its metadata, and from that one table come
`reference`'s keywords, the ``kerasbench run`` and ``kerasbench sweep`` flags
(`kerasbench._cli`), the sweep's plan and resume keys, the worker protocol's
message and the ``config`` of every `BenchmarkResult`. Adding an option is
adding a field here (and using it in `kerasbench._runs.reference`).

Settings left at ``None`` mean "the default for this model, backend and
device"; `RunConfig.resolve` fills them in, and results record the resolved
configuration. Pure Python: importing it loads no framework.
"""

from __future__ import annotations

import dataclasses
import re

from kerasbench import _validate

MODES = ("train", "inference")
#: Precision names and the Keras dtype policy each one sets.
DTYPE_POLICIES = {"fp32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
OPTIMIZERS = ("sgd", "momentum", "adam")
#: Keras 3 backends a run can use.
BACKENDS = ("tensorflow", "jax", "torch")
#: tf.distribute strategies: none, one host with several devices, several hosts.
STRATEGIES = ("none", "mirrored", "multi_worker")
DATA_FORMATS = ("channels_last", "channels_first")
BATCH_NORMS = ("keras", "fused")
DEFAULT_STEPS = 100
#: Bounds of an adaptive run (``target_precision``): measured steps and seconds.
DEFAULT_MIN_STEPS = 20
DEFAULT_MAX_STEPS = 10_000
DEFAULT_MAX_TIME_S = 600.0

#: The annotation of ``target_precision``: a share (0.01) or a percentage text
#: ("1%"). Not ``float``: the command line then passes the text as it is, and
#: `check_target_precision` reads it.
Percentage = float
#: Warmup steps when not given: tf_cnn_benchmarks' 10, or ``steps`` if fewer.
DEFAULT_WARMUP_STEPS = 10
_DEVICE_RE = re.compile(r"cpu|gpu(:\d+)?")


def default_batch_norm(backend):
    """The batch normalisation a run uses unless told: the faster one measured.

    ``"fused"`` (TensorFlow's FusedBatchNormV3) on the TensorFlow backend:
    ResNet-50 and InceptionV3 train 1.16-1.31x faster with it in fp32 and
    1.3-1.9x in bf16, where it also removes two casts per layer, on this
    project's 2-core CPUs (docs/performance.md); on GPUs it is cuDNN's kernel,
    the one Keras 2 used by default. ``"keras"`` elsewhere: JAX's XLA fuses
    Keras' operations itself, and PyTorch has no such kernel for
    channels-last tensors.
    """
    return "fused" if backend == "tensorflow" else "keras"


def _option(default, help, *, flag=None, sweep=None, choices=None, boolean=False):
    """A field with its command-line metadata.

    Args:
        default: The value when not given.
        help: One line for ``--help`` and the docs.
        flag: The command-line flag, when not ``--`` + the name with dashes.
        sweep: The plural flag of ``kerasbench sweep`` that takes a comma
            list of this field (``--batch-sizes``); ``None``: a single value.
        choices: The allowed values, shown in ``--help``.
        boolean: A ``--flag/--no-flag`` pair.
    """
    meta = {"help": help, "flag": flag, "sweep": sweep, "choices": choices,
            "boolean": boolean}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One benchmark run: which model, how, and where.

    Attributes:
        model: Registry name (see `list_models`).
        mode: ``"train"`` (forward-backward through `fit`) or
            ``"inference"`` (forward only, through `predict`).
        batch_size: Images per step.
        precision: ``"fp32"``, ``"fp16"`` (``mixed_float16``, loss scaling;
            GPUs) or ``"bf16"`` (``mixed_bfloat16``).
        device: ``"cpu"``, ``"gpu"``, ``"gpu:N"``, or ``None`` for the best
            available (the first GPU, else the CPU).
        steps: Measured steps after warmup (without ``target_precision``).
        warmup_steps: Steps run first and left out of the figures; ``None``:
            10, or ``steps`` when fewer. At most ``steps``.
        target_precision: Run until the 95 % confidence interval of
            images/sec is within this share of it (``0.01`` or ``"1%"``:
            +/-1 %), between ``min_steps`` and ``max_steps`` measured steps
            and for at most ``max_time_s`` measured seconds, instead of
            ``steps`` steps; the result says whether it got there
            (``target_reached``, ``stop_reason``). ``None``: a fixed length.
        min_steps, max_steps, max_time_s: Those bounds (20, 10,000, 600 s).
        image_size: Square input size in pixels; ``None``: the model's own.
        num_classes: Output classes.
        optimizer: ``"sgd"``, ``"momentum"`` (SGD, momentum 0.9) or
            ``"adam"``; used in training only.
        jit_compile: Compile the step with XLA; ``None``: on with JAX (its
            only compiled mode), off on TensorFlow and PyTorch.
        data_format: ``"channels_last"`` or ``"channels_first"`` (GPUs
            only); ``None``: Keras' setting.
        steps_per_execution: Steps per compiled call.
        seed: Seed of the synthetic images and labels.
        strategy: ``"none"``, or ``"mirrored"``: `tf.distribute.MirroredStrategy`
            (TensorFlow) or `keras.distribution.DataParallel` (JAX) over
            ``num_devices`` devices of this host (GPUs; on a CPU, that many
            logical CPU devices). ``batch_size`` is then per replica,
            as in tf_cnn_benchmarks; the result gives the global batch.
            ``"multi_worker"``: `MultiWorkerMirroredStrategy` (TensorFlow) or
            `keras.distribution.DataParallel` over several processes (JAX)
            with the cluster of ``TF_CONFIG`` (start the same run on every
            worker; training only; the chief reports).
        num_devices: Replicas of the mirrored strategy (default: every GPU,
            or 1 on a CPU); must be ``None`` or 1 without a strategy. For
            multi_worker, the replicas of all workers (resolved).
        connect_timeout_s: multi_worker: seconds to wait for every worker to
            join (and for each collective) before ending with an error.
        count_flops: Count FLOPs per sample (the backend's own cost analysis)
            before the timed steps, for ``achieved_tflops`` and ``mfu``.
        batch_norm: How batch normalisation runs: ``"keras"`` (Keras' own
            layer) or ``"fused"`` (`kerasbench.FusedBatchNormalization`:
            TensorFlow's fused kernel, same weights and outputs; TensorFlow
            backend only). ``None``: the faster one measured
            (`default_batch_norm`): fused on TensorFlow, Keras' elsewhere.
        backend: The Keras backend to run on (``"tensorflow"``, ``"jax"``,
            ``"torch"``); ``None``: this process's (``KERAS_BACKEND``). Another
            backend than this process's runs in a child process, since a
            process cannot switch backends.

    Raises:
        ValueError: When a field is invalid; the message names it, says what
            is allowed and shows the value received.
    """

    model: str = _option("alexnet", "registry name (see 'kerasbench list')",
                         sweep="models")
    mode: str = _option("train", "train: forward-backward with an optimizer; inference: "
                        "forward only", choices=MODES, sweep="modes")
    batch_size: int = _option(32, "images per step", sweep="batch_sizes")
    precision: str = _option("fp32", "fp32, fp16 (mixed_float16, loss scaling; GPUs) or "
                             "bf16 (mixed_bfloat16)", choices=tuple(DTYPE_POLICIES),
                             sweep="precisions")
    device: str | None = _option(None, "cpu, gpu or gpu:N (default: the first GPU, else "
                                 "the CPU)", sweep="devices")
    steps: int = _option(DEFAULT_STEPS, "measured steps after warmup")
    warmup_steps: int | None = _option(None, "steps run first and left out of the figures "
                                       "(default: 10, or --steps if fewer)")
    target_precision: Percentage | None = _option(
        None, "run until the 95%% confidence interval of images/sec is within this share "
        "of it (0.01 or 1%%: +/-1%%), between --min-steps and --max-steps measured steps and "
        "at most --max-time-s measured seconds, instead of --steps")
    min_steps: int = _option(DEFAULT_MIN_STEPS, "with --target-precision: measured steps "
                             "before stopping")
    max_steps: int = _option(DEFAULT_MAX_STEPS, "with --target-precision: most measured "
                             "steps")
    max_time_s: float | None = _option(DEFAULT_MAX_TIME_S, "with --target-precision: most "
                                       "measured seconds")
    image_size: int | None = _option(None, "square input size in pixels (default: the "
                                     "model's own)")
    num_classes: int = _option(1000, "output classes")
    optimizer: str | None = _option("sgd", "training optimizer: sgd, momentum (0.9) or "
                                    "adam", choices=OPTIMIZERS)
    jit_compile: bool | None = _option(None, "compile the step with XLA (default: on with "
                                       "JAX, whose only compiled mode is XLA; off on "
                                       "TensorFlow and PyTorch)", flag="--xla", boolean=True)
    data_format: str | None = _option(None, "image layout (channels_first on GPUs only)",
                                      choices=DATA_FORMATS)
    steps_per_execution: int = _option(1, "steps per compiled call")
    seed: int = _option(0, "seed of the synthetic data")
    strategy: str = _option("none", "none; mirrored: tf.distribute.MirroredStrategy (JAX: "
                            "keras.distribution.DataParallel) over --num-devices devices of "
                            "one host (GPUs, or logical CPU devices on a CPU); multi_worker: "
                            "MultiWorkerMirroredStrategy (JAX: DataParallel over several "
                            "processes), cluster from TF_CONFIG (run on every worker); "
                            "--batch-size is per replica",
                            choices=STRATEGIES)
    num_devices: int | None = _option(None, "replicas of --strategy mirrored, like "
                                      "tf_cnn_benchmarks' --num_gpus (default: every GPU, "
                                      "or 1 on a CPU)")
    connect_timeout_s: float = _option(300.0, "multi_worker: seconds to wait for every "
                                       "worker to join before giving up with an error")
    count_flops: bool = _option(True, "count FLOPs per sample before the timed steps, for "
                                "achieved TFLOP/s and MFU", boolean=True)
    batch_norm: str | None = _option(None, "batch normalisation: keras (Keras' own layer) or "
                                     "fused (TensorFlow's fused kernel, same weights and "
                                     "outputs; TensorFlow only); default: fused on "
                                     "TensorFlow", choices=BATCH_NORMS, sweep="batch_norms")
    backend: str | None = _option(None, "Keras backend: tensorflow, jax or torch (default: "
                                  "KERAS_BACKEND's; another one runs in a child process)",
                                  choices=BACKENDS, sweep="backends")

    def __post_init__(self):
        v = _validate
        checked = {
            "model": v.text("model", self.model, single_line=True),
            "mode": v.choice("mode", self.mode, MODES),
            "batch_size": v.integer("batch_size", self.batch_size, minimum=1),
            "precision": v.choice("precision", self.precision, tuple(DTYPE_POLICIES)),
            "device": _device(self.device),
            "steps": v.integer("steps", self.steps, minimum=1),
            "warmup_steps": v.integer("warmup_steps", self.warmup_steps, minimum=0,
                                      allow_none=True),
            "target_precision": check_target_precision(self.target_precision),
            "min_steps": v.integer("min_steps", self.min_steps, minimum=1),
            "max_steps": v.integer("max_steps", self.max_steps, minimum=1),
            "max_time_s": v.number("max_time_s", self.max_time_s, positive=True,
                                   allow_none=True),
            "image_size": v.integer("image_size", self.image_size, minimum=1,
                                    allow_none=True),
            "num_classes": v.integer("num_classes", self.num_classes, minimum=1),
            "optimizer": v.choice("optimizer", self.optimizer, OPTIMIZERS, allow_none=True),
            "jit_compile": v.boolean("jit_compile", self.jit_compile, allow_none=True),
            "data_format": v.choice("data_format", self.data_format, DATA_FORMATS,
                                    allow_none=True),
            "steps_per_execution": v.integer("steps_per_execution",
                                             self.steps_per_execution, minimum=1),
            "seed": v.integer("seed", self.seed, minimum=0),
            "strategy": v.choice("strategy", self.strategy, STRATEGIES),
            "num_devices": v.integer("num_devices", self.num_devices, minimum=1,
                                     allow_none=True),
            "connect_timeout_s": v.number("connect_timeout_s", self.connect_timeout_s,
                                          positive=True),
            "count_flops": v.boolean("count_flops", self.count_flops),
            "batch_norm": v.choice("batch_norm", self.batch_norm, BATCH_NORMS,
                                   allow_none=True),
            "backend": v.choice("backend", self.backend, BACKENDS, allow_none=True),
        }
        if checked["warmup_steps"] is not None and checked["warmup_steps"] > checked["steps"]:
            raise ValueError(
                "`warmup_steps` must not exceed `steps` (at most half of a run is "
                f"warmup). Received: warmup_steps={self.warmup_steps}, steps={self.steps}")
        if checked["max_steps"] < checked["min_steps"]:
            raise ValueError("`max_steps` must be at least `min_steps`. Received: "
                             f"max_steps={self.max_steps}, min_steps={self.min_steps}")
        if checked["strategy"] == "none" and (checked["num_devices"] or 1) > 1:
            raise ValueError("`num_devices` above 1 needs strategy='mirrored'. "
                             f"Received: num_devices={self.num_devices}, strategy='none'")
        for name, value in checked.items():  # plain Python values (numpy ints become int)
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------ derived

    @property
    def dtype_policy(self):
        """The Keras dtype policy of ``precision`` (``"mixed_bfloat16"``)."""
        return DTYPE_POLICIES[self.precision]

    def label(self):
        """A short name for progress lines: ``resnet50 train bs32 fp32 auto``
        (the backend added when one is asked for)."""
        target = self.target_precision
        return (f"{self.model} {self.mode} bs{self.batch_size} {self.precision} "
                f"{self.device or 'auto'}" + (f" {self.backend}" if self.backend else "")
                + (f" to +/-{target * 100:g}%" if target is not None else ""))

    def key(self):
        """Every setting, as a hashable tuple: equal keys mean the same run."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))

    def replace(self, **changes):
        """A copy with ``changes`` applied (and validated)."""
        _validate.keywords("RunConfig.replace", changes, field_names())
        return dataclasses.replace(self, **changes)

    def check_model(self, info):
        """Checks the settings against the model's `ModelInfo`; returns the image size.

        Raises:
            ValueError: If the image size is below the model's minimum.
        """
        image_size = self.image_size or info.image_size
        if image_size < info.min_image_size:
            raise ValueError(f"`image_size` must be at least {info.min_image_size} for "
                             f"{info.name}. Received: image_size={image_size}")
        return image_size

    def check_device(self, device):
        """Raises ValueError if the precision or data format cannot run on ``device``."""
        if device == "cpu" and self.precision == "fp16":
            raise ValueError(
                "`precision='fp16'` is emulated on CPUs and takes minutes per step (one "
                "ResNet-50 training step took over 500 s here); use precision='bf16' on "
                "CPUs or run fp16 on a GPU. Received: precision='fp16', device='cpu'")
        if device == "cpu" and self.data_format == "channels_first":
            raise ValueError(
                "`data_format='channels_first'` is not supported on CPUs (TensorFlow's "
                "CPU pooling and convolution kernels need channels_last); use it on a "
                "GPU. Received: data_format='channels_first', device='cpu'")

    def _replicas(self, backend, device, available):
        """How many replicas run: 1 without a strategy; see ``num_devices``."""
        if self.strategy == "none":
            return 1
        if backend not in ("tensorflow", "jax"):
            raise ValueError(
                f"`strategy='{self.strategy}'` is not supported on the {backend} backend: "
                "'mirrored' runs on tf.distribute.MirroredStrategy (TensorFlow) or "
                "keras.distribution.DataParallel (JAX), 'multi_worker' on "
                "tf.distribute.MultiWorkerMirroredStrategy (TensorFlow) or "
                "keras.distribution.DataParallel over several processes (JAX). "
                f"Received: strategy='{self.strategy}', backend='{backend}'")
        gpus = sum(1 for d in available if d.startswith("gpu"))
        if self.strategy == "multi_worker":
            from kerasbench._runs.distributed import cluster_size

            if self.mode != "train":
                raise ValueError("`strategy='multi_worker'` measures training only. "
                                 f"Received: mode={self.mode!r}")
            return cluster_size() * (1 if device == "cpu" else max(1, gpus))
        if device == "cpu":
            return self.num_devices or 1
        if device != "gpu:0":
            raise ValueError("`strategy='mirrored'` on GPUs uses gpu:0 to gpu:N-1; leave "
                             f"`device` unset or 'gpu'. Received: device={device!r}")
        wanted = self.num_devices or gpus
        if wanted > gpus:
            raise ValueError(f"`num_devices` must be at most the {gpus} GPU(s) of this "
                             f"machine. Received: num_devices={wanted}")
        return wanted

    def resolve(self, info, backend, device, available=()):
        """The configuration as it runs, every ``None`` default filled in.

        Args:
            info: The model's `ModelInfo` (for its image size and minimum).
            backend: The Keras backend that runs it (``"jax"``).
            device: The device that will run it (``"cpu"``, ``"gpu:0"``).
            available: The devices of this machine (``DeviceReport.devices``),
                for the default number of mirrored replicas.

        Raises:
            ValueError: If the image size is below the model's minimum, the
                precision or data format cannot run on ``device``, or the
                strategy cannot run here.
        """
        image_size = self.check_model(info)
        self.check_device(device)
        if self.batch_norm == "fused" and backend != "tensorflow":
            raise ValueError(
                "`batch_norm='fused'` runs TensorFlow's FusedBatchNormV3 kernel, on the "
                "TensorFlow backend only (XLA fuses batch normalisation itself on JAX). "
                f"Received: batch_norm='fused', backend={backend!r}")
        warmup = self.warmup_steps
        return self.replace(
            model=info.name, device=device, image_size=image_size, backend=backend,
            num_devices=self._replicas(backend, device, available),
            warmup_steps=min(DEFAULT_WARMUP_STEPS, self.steps) if warmup is None else warmup,
            jit_compile=backend == "jax" if self.jit_compile is None else self.jit_compile,
            optimizer=(self.optimizer or "sgd") if self.mode == "train" else None,
            batch_norm=self.batch_norm or default_batch_norm(backend),
        )

    # -------------------------------------------------------- serialising

    def to_dict(self):
        """Every field, by name (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, *, strict=True):
        """Rebuilds a configuration from `to_dict` output.

        Args:
            d: A dict of fields.
            strict: Refuse unknown keys (``False`` ignores them: results
                written by older versions carry a few).

        Raises:
            ValueError: If ``d`` is not a dict or a value is invalid.
            TypeError: With ``strict``, on an unknown key.
        """
        if not isinstance(d, dict):
            raise ValueError(f"A run configuration must be a JSON object. "
                             f"Received: {type(d).__name__}")
        if strict:
            _validate.keywords("RunConfig", d, field_names())
        names = field_names()
        return cls(**{k: v for k, v in d.items() if k in names})


def check_target_precision(value, name="target_precision"):
    """A target half-width as a share of the figure: a number between 0 and 1
    (``0.01``) or a percentage text (``"1%"``); returns a float or ``None``.

    Raises:
        ValueError: Otherwise, in the usual form.
    """
    if value is None:
        return None
    share = value
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            pass
    try:
        share = _validate.number(name, share, positive=True)
    except ValueError:
        share = None
    if share is None or share >= 1:
        raise ValueError(f"`{name}` must be a share of the figure between 0 and 1 (0.01) or "
                         f"a percentage below 100 ('1%'), or None. Received: {name}={value!r}")
    return share


def _device(value):
    if value is None:
        return None
    name = value.strip().lower() if isinstance(value, str) else None
    if name is None or not _DEVICE_RE.fullmatch(name):
        raise ValueError(f"`device` must be 'cpu', 'gpu', 'gpu:N' or None. "
                         f"Received: device={value!r}")
    return "gpu:0" if name == "gpu" else name


def field_names():
    """The names of `RunConfig`'s fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(RunConfig))


def options():
    """``(field, metadata)`` pairs in declaration order, for generating flags."""
    return tuple((f, f.metadata) for f in dataclasses.fields(RunConfig))


def sweep_fields():
    """``{plural name: field name}`` of the fields a sweep takes lists of."""
    return {f.metadata["sweep"]: f.name for f in dataclasses.fields(RunConfig)
            if f.metadata["sweep"]}
