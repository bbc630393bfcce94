"""Every argument check, written once, with Keras-style messages.

Each function takes the argument's ``name`` and ``value``, returns the value
in its plain Python form (a numpy integer becomes an ``int``) and raises
``ValueError`` (``TypeError`` for unknown keywords) with a message that names
the argument, says what is allowed and ends with ``Received: name=value``::

    `batch_size` must be a positive integer. Received: batch_size=0

Booleans are never numbers here (``True`` is not a batch size), and NaN and
infinity are never numbers either. Pure Python: importing it loads nothing.
"""

from __future__ import annotations

import difflib
import math
import numbers

__all__ = [
    "boolean",
    "choice",
    "integer",
    "keywords",
    "number",
    "path",
    "text",
]


def _fail(name, allowed, value):
    raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")


def _is_bool(value):
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy" and
                                       kind.__name__ in ("bool", "bool_"))


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def integer(name, value, *, minimum=None, maximum=None, allow_none=False):
    """An integer (Python or numpy), optionally bounded; returns an ``int``.

    Args:
        name: The argument's name, used in the message.
        value: What the caller passed.
        minimum: Smallest value allowed, or ``None``.
        maximum: Largest value allowed, or ``None``.
        allow_none: Whether ``None`` is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    ok = _is_integer(value) and (minimum is None or value >= minimum) and \
        (maximum is None or value <= maximum)
    if not ok:
        _fail(name, _integer_words(minimum, maximum) + (" or None" if allow_none else ""),
              value)
    return int(value)


def _integer_words(minimum, maximum):
    if minimum == 1 and maximum is None:
        return "a positive integer"
    if minimum == 0 and maximum is None:
        return "a non-negative integer"
    if minimum is not None and maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def number(name, value, *, positive=False, minimum=None, allow_none=False):
    """A finite real number (not a bool, NaN or infinity); returns a ``float``.

    Args:
        name: The argument's name.
        value: What the caller passed.
        positive: Whether the number must be above zero.
        minimum: Smallest value allowed (inclusive), or ``None``.
        allow_none: Whether ``None`` is accepted (and returned).
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not _is_bool(value) and math.isfinite(value) and \
        (not positive or value > 0) and (minimum is None or value >= minimum)
    if not ok:
        words = "a positive number" if positive else (
            f"a finite number >= {minimum}" if minimum is not None else "a finite number")
        _fail(name, words + (" or None" if allow_none else ""), value)
    return float(value)


def boolean(name, value, *, allow_none=False):
    """``True`` or ``False`` (numpy booleans too); ``None`` when allowed."""
    if value is None and allow_none:
        return None
    if _is_bool(value):
        return bool(value)
    _fail(name, "True or False" + (" or None" if allow_none else ""), value)


def choice(name, value, allowed, *, allow_none=False):
    """One of ``allowed``; the message suggests the closest when there is one."""
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value in allowed:
        return value
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(repr(a) for a in allowed) + (" or None" if allow_none else "")
    raise ValueError(f"`{name}` must be one of {listed}.{hint} Received: {name}={value!r}")


def text(name, value, *, allow_none=False, single_line=False):
    """A non-empty string (with ``single_line``, without line breaks)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, str) and value.strip() != "" and \
        not (single_line and ("\n" in value or "\r" in value))
    if not ok:
        words = "a non-empty string" + (" without line breaks" if single_line else "")
        _fail(name, words + (" or None" if allow_none else ""), value)
    return value


def path(name, value, *, allow_none=False):
    """A file-system path (``str`` or ``os.PathLike``) that is not empty."""
    import os

    if value is None and allow_none:
        return None
    try:
        as_text = os.fspath(value)
    except TypeError:
        as_text = None
    if not isinstance(as_text, str) or not as_text.strip():
        _fail(name, "a non-empty path" + (" or None" if allow_none else ""), value)
    return as_text


def keywords(function, given, allowed):
    """Raises ``TypeError`` for keywords of ``function`` outside ``allowed``.

    Args:
        function: Name of the callable, for the message (``"reference"``).
        given: The keyword names the caller passed.
        allowed: The keyword names the callable accepts.
    """
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], list(allowed), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}.{hint} "
                    f"Allowed: {', '.join(sorted(allowed))}")
