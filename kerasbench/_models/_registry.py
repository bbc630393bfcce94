"""The model registry: names, metadata and builders of the benchmark models.

A small, closed registry in the style of timm's: each family module decorates
its builders with `register_model`, and `create_model` looks a builder up by
name, validates the arguments (before building anything) and calls it.

Pure code: this module never imports Keras at import time, so `list_models`
and `model_info` work without loading Keras or TensorFlow. `create_model`
imports Keras only to resolve the default data format and to set it while a
builder runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import fnmatch
import re

from kerasbench import _validate

#: Data formats a builder may support, in Keras' spelling.
DATA_FORMATS = ("channels_last", "channels_first")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model, without building it.

    Attributes:
        name: Registry name, as passed to `create_model`.
        image_size: Default square input size (height = width), in pixels.
        min_image_size: Smallest square input size the model accepts.
        params: Total parameter count (trainable and non-trainable, as
            ``model.count_params()`` reports it) at ``image_size`` with 1000
            classes.
        description: One line saying what the model is.
        source: Where the definition comes from, e.g.
            ``"keras.applications.ResNet50"``.
        data_formats: The data formats the model can be built in.
    """

    name: str
    image_size: int
    min_image_size: int
    params: int
    description: str
    source: str
    data_formats: tuple = DATA_FORMATS

    def to_dict(self):
        """Returns the fields as a plain dict (``data_formats`` as a list).

        Returns:
            A JSON-serialisable dict keyed by field name.
        """
        d = dataclasses.asdict(self)
        d["data_formats"] = list(self.data_formats)
        return d


@dataclasses.dataclass(frozen=True)
class _Entry:
    info: ModelInfo
    builder: object


_REGISTRY: dict[str, _Entry] = {}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _natural_key(name):
    """Sort key that orders the digit runs of a name by value.

    ``"resnet50" < "resnet101" < "resnet152"``: the name is split into
    alternating text and number parts, ``["resnet", 50, ""]``, so equal
    positions always hold the same type.
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def register_model(
    name,
    *,
    image_size,
    min_image_size,
    params,
    description,
    source,
    data_formats=DATA_FORMATS,
):
    """Decorator that adds a model builder to the registry.

    The builder is called as ``fn(input_shape=..., num_classes=...,
    data_format=...)`` and must return an uncompiled ``keras.Model`` whose
    name contains the registry name. ``input_shape`` is already laid out for
    ``data_format`` (``(size, size, 3)`` or ``(3, size, size)``), and
    ``data_format`` is always resolved to one of ``data_formats``; while the
    builder runs, ``keras.config.image_data_format()`` returns it too.
    Builders should import Keras inside the function, so the registry stays
    cheap to import.

    A registered model runs wherever a built-in one does: `create_model`,
    `reference` and, in this process, ``sweep(..., isolate=False)``. An
    isolated sweep (the default) runs each configuration in a fresh Python
    process, which imports the module that registered the model: register
    it in an importable module (installed, on ``PYTHONPATH`` or in the
    folder the sweep runs from). A model registered in ``__main__`` (a
    script or a notebook) cannot reach that process, and such a sweep is
    refused before anything runs. The ``kerasbench`` command knows only the
    built-in models. See docs/adding-models.md.

    Args:
        name: Registry name: lowercase letters, digits and underscores,
            starting with a letter. Must not be registered already.
        image_size: Default square input size, an int ``>= min_image_size``.
        min_image_size: Smallest square input size accepted, an int ``>= 1``.
        params: Parameter count at ``image_size`` with 1000 classes, an int
            ``>= 1`` (documented; a test checks it by building the model).
        description: One-line description.
        source: Where the definition comes from.
        data_formats: The data formats the builder supports, a non-empty
            subset of ``("channels_last", "channels_first")``.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: If the name is malformed or taken, or the metadata is
            inconsistent.

    Example (``params``: 32 * 32 * 3 inputs times 1000 classes, plus 1000
    biases):

    ```python
    @register_model(
        "tiny", image_size=32, min_image_size=1, params=3_073_000,
        description="Flatten and one dense layer.", source="example",
    )
    def tiny(input_shape, num_classes, data_format):
        import keras
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten(data_format=data_format)(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes)(x), name="tiny")
    ```
    """
    info = _model_info(name, image_size, min_image_size, params, description, source,
                       data_formats)

    def decorator(fn):
        if not callable(fn):
            raise ValueError(f"register_model({name!r}) must decorate a callable. Received: {fn!r}")
        _REGISTRY[name] = _Entry(info=info, builder=fn)
        return fn

    return decorator


def _model_info(name, image_size, min_image_size, params, description, source,
                data_formats):
    """The validated `ModelInfo` of a registration (see `register_model`)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            "`name` must be lowercase letters, digits and underscores, "
            f"starting with a letter. Received: name={name!r}"
        )
    if name in _REGISTRY:
        raise ValueError(f"Model {name!r} is already registered.")
    min_image_size = _validate.integer("min_image_size", min_image_size, minimum=1)
    image_size = _validate.integer("image_size", image_size, minimum=min_image_size)
    params = _validate.integer("params", params, minimum=1)
    _validate.text("description", description)
    _validate.text("source", source)
    data_formats = tuple(data_formats) if not isinstance(data_formats, str) else (data_formats,)
    if not data_formats or any(f not in DATA_FORMATS for f in data_formats):
        raise ValueError(
            f"`data_formats` must be a non-empty subset of {DATA_FORMATS}. "
            f"Received: data_formats={data_formats!r}"
        )
    return ModelInfo(name=name, image_size=image_size, min_image_size=min_image_size,
                     params=params, description=description, source=source,
                     data_formats=data_formats)


def list_models(pattern="*"):
    """Names of the registered models that match a pattern.

    Args:
        pattern: A shell-style wildcard pattern (``fnmatch``: ``*``, ``?``,
            ``[seq]``), matched against the whole name, case-insensitively.

    Returns:
        The matching names in natural order (``resnet50``, ``resnet101``,
        ``resnet152``); ``[]`` when none match.

    Raises:
        ValueError: If ``pattern`` is not a string.

    Example:

    >>> list_models("resnet*")
    ['resnet50', 'resnet101', 'resnet152']
    """
    if not isinstance(pattern, str):
        raise ValueError(f"`pattern` must be a string. Received: pattern={pattern!r}")
    pattern = pattern.lower()
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=_natural_key)


def _unknown_model_error(name):
    available = list_models()
    message = f"Unknown model: {name!r}."
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), available, n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
    message += f" Available models: {', '.join(available)}."
    return ValueError(message)


def _entry(name):
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise _unknown_model_error(name)
    return entry


def builder_module(name):
    """The name of the module that registered ``name`` (``"__main__"`` for a script).

    Raises:
        ValueError: If the name is not registered.
    """
    return getattr(_entry(name).builder, "__module__", None) or "__main__"


def model_info(name):
    """Metadata of a registered model, without building it.

    Args:
        name: Registry name, e.g. ``"alexnet"``.

    Returns:
        A `ModelInfo`.

    Raises:
        ValueError: If the name is not registered (the message suggests the
            closest name and lists all of them).

    Example:

    >>> model_info("inception3").image_size
    299
    """
    return _entry(name).info


@contextlib.contextmanager
def _image_data_format(keras, data_format):
    """Sets Keras' global image data format for the duration of a build."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(data_format)
    try:
        yield
    finally:
        keras.config.set_image_data_format(previous)


def create_model(name, *, image_size=None, num_classes=1000, data_format=None):
    """Builds a registered model with fresh (random) weights.

    Every argument is checked before anything is built. The model takes
    float images of shape ``(batch, image_size, image_size, 3)`` (or
    ``(batch, 3, image_size, image_size)`` with ``channels_first``) and
    returns **logits** of shape ``(batch, num_classes)``: no softmax, so
    compile with ``SparseCategoricalCrossentropy(from_logits=True)``. The
    model is named after its registry name and is not compiled. No weights
    are downloaded.

    Args:
        name: Registry name, see `list_models`.
        image_size: Square input size in pixels; ``None`` for the model's
            default (`ModelInfo.image_size`). At least
            `ModelInfo.min_image_size`.
        num_classes: Number of output classes, an int ``>= 1``.
        data_format: ``"channels_last"``, ``"channels_first"``, or ``None``
            for ``keras.config.image_data_format()``. Keras' global setting is
            switched to it while the model is built and restored afterwards
            (not thread-safe).

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: If the name is unknown, ``image_size`` is not a positive
            integer or is below the model's minimum, ``num_classes`` is not a
            positive integer, or ``data_format`` is invalid or not supported
            by the model.

    Example:

    ```python
    model = create_model("resnet50", image_size=128, num_classes=10)
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ```
    """
    entry = _entry(name)
    info = entry.info
    image_size = _validate.integer("image_size", image_size, minimum=1, allow_none=True)
    if image_size is None:
        image_size = info.image_size
    if image_size < info.min_image_size:
        raise ValueError(
            f"`image_size` must be at least {info.min_image_size} for {info.name}. "
            f"Received: image_size={image_size!r}"
        )
    num_classes = _validate.integer("num_classes", num_classes, minimum=1)
    if data_format is not None and data_format not in DATA_FORMATS:
        raise ValueError(
            "`data_format` must be None, 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )

    import keras

    resolved = data_format or keras.config.image_data_format()
    if resolved not in info.data_formats:
        origin = "" if data_format is not None else " (from keras.config.image_data_format())"
        raise ValueError(
            f"{info.name} supports only data_format="
            f"{' or '.join(repr(f) for f in info.data_formats)}. "
            f"Received: data_format={resolved!r}{origin}"
        )
    size = int(image_size)
    if resolved == "channels_first":
        input_shape = (3, size, size)
    else:
        input_shape = (size, size, 3)
    with _image_data_format(keras, resolved):
        model = entry.builder(
            input_shape=input_shape, num_classes=int(num_classes), data_format=resolved
        )
    return model
