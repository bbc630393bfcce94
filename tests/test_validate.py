"""kerasbench._validate: every argument check, once, with Keras-style messages."""

import math
import pathlib

import numpy as np
import pytest

from kerasbench import _validate as v


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1), np.uint8(2)])
def test_integer_accepts_python_and_numpy_integers(value):
    out = v.integer("batch_size", value, minimum=1)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize(
    "value,minimum,message",
    [
        (0, 1, "`batch_size` must be a positive integer. Received: batch_size=0"),
        (-1, 0, "`batch_size` must be a non-negative integer. Received: batch_size=-1"),
        (True, 1, "Received: batch_size=True"),
        (np.bool_(True), 1, "Received: batch_size=np.True_"),
        (1.0, 1, "Received: batch_size=1.0"),
        ("3", 1, "Received: batch_size='3'"),
        (None, 1, "Received: batch_size=None"),
        (2, 5, "`batch_size` must be an integer >= 5. Received: batch_size=2"),
    ],
)
def test_integer_refuses(value, minimum, message):
    with pytest.raises(ValueError) as e:
        v.integer("batch_size", value, minimum=minimum)
    assert message in str(e.value)


def test_integer_bounds_and_none():
    assert v.integer("n", None, allow_none=True) is None
    assert v.integer("n", 5, minimum=1, maximum=5) == 5
    with pytest.raises(ValueError, match=r"an integer from 1 to 5 or None\. Received: n=6"):
        v.integer("n", 6, minimum=1, maximum=5, allow_none=True)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None])
def test_number_refuses_nan_inf_bool_text(value):
    with pytest.raises(ValueError, match=r"`timeout_s` must be a positive number\. Received"):
        v.number("timeout_s", value, positive=True)


def test_number_accepts_reals_and_returns_float():
    assert v.number("t", np.float32(0.5), positive=True) == 0.5
    assert type(v.number("t", 3, positive=True)) is float
    assert v.number("t", None, allow_none=True) is None
    with pytest.raises(ValueError, match="Received: t=0"):
        v.number("t", 0, positive=True)
    with pytest.raises(ValueError, match=r"a finite number >= 1\.5"):
        v.number("t", 1, minimum=1.5)


def test_boolean():
    assert v.boolean("jit_compile", np.bool_(False)) is False
    assert v.boolean("jit_compile", None, allow_none=True) is None
    for bad in ("yes", 1, 0, None):
        with pytest.raises(ValueError, match=r"`jit_compile` must be True or False"):
            v.boolean("jit_compile", bad)


def test_choice_suggests_the_closest():
    assert v.choice("precision", "bf16", ("fp32", "bf16")) == "bf16"
    with pytest.raises(ValueError) as e:
        v.choice("precision", "bf61", ("fp32", "bf16"))
    assert str(e.value) == ("`precision` must be one of 'fp32', 'bf16'. Did you mean 'bf16'? "
                            "Received: precision='bf61'")
    with pytest.raises(ValueError, match=r"or None\. Received: mode=3"):
        v.choice("mode", 3, ("train",), allow_none=True)


def test_text_and_path():
    assert v.text("machine", "lab 1", single_line=True) == "lab 1"
    for bad in ("", "  ", 3, None):
        with pytest.raises(ValueError, match="`machine` must be a non-empty string"):
            v.text("machine", bad)
    with pytest.raises(ValueError, match="without line breaks"):
        v.text("machine", "a\nb", single_line=True)
    assert v.path("out", pathlib.Path("x")) == "x"
    for bad in ("", 3, b"x"):
        with pytest.raises(ValueError, match="`out` must be a non-empty path"):
            v.path("out", bad)


def test_keywords_names_the_unknown_one_with_a_hint():
    v.keywords("f", ["a"], ["a", "b"])
    with pytest.raises(TypeError) as e:
        v.keywords("reference", ["batchsize"], ["batch_size", "steps"])
    assert "reference() got an unexpected keyword argument 'batchsize'. " \
           "Did you mean 'batch_size'?" in str(e.value)
