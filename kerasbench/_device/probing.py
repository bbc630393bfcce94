"""Running probes without letting one take the report down.

A probe is a small function that reads one fact. `Probes.run` calls it and
turns an exception into a default value plus an entry in ``errors`` (which
becomes `DeviceReport.probe_errors`); `Probes.run_limited` also stops waiting
after a time limit, for calls into drivers that can hang. The helpers below
read and convert the short text files under /proc and /sys.
"""

from __future__ import annotations

import math
import threading


def describe_error(error, limit=300):
    """``"TypeName: message"``, cut to `limit` characters."""
    return f"{type(error).__name__}: {error}"[:limit]


def call_with_timeout(timeout_s, fn, *args):
    """Calls ``fn(*args)`` in a daemon thread and waits at most `timeout_s`.

    A call that hangs (a driver that never answers) is left running in its
    daemon thread, which does not keep the interpreter alive at exit.

    Returns:
        What `fn` returned.

    Raises:
        TimeoutError: If `fn` has not returned after `timeout_s` seconds.
        Exception: Whatever `fn` raised.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args)
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name="kerasbench-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Probes:
    """Runs probes, turning an exception into a default and a recorded error.

    Args:
        timeout_s: How long `run_limited` waits for a probe.

    Attributes:
        errors: Probe key -> ``"TypeName: message"`` of what it raised.
    """

    def __init__(self, timeout_s=10.0):
        self.errors = {}
        self.timeout_s = timeout_s

    def record(self, key, error, limit=400):
        """Stores `error` (an exception) under `key`."""
        self.errors[key] = describe_error(error, limit)

    def run(self, key, fn, *args, default=None):
        """Returns ``fn(*args)``, or `default` if it raises (recorded under `key`)."""
        try:
            return fn(*args)
        except Exception as e:  # a probe must never take the report down
            self.record(key, e)
            return default

    def run_limited(self, key, fn, *args, default=None):
        """Like `run`, but gives up after ``timeout_s`` (a recorded TimeoutError)."""
        return self.run(key, call_with_timeout, self.timeout_s, fn, *args, default=default)


def read_text(path):
    """The file's text, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def to_int(text):
    """``int`` of the stripped text, or None."""
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def to_float(text):
    """A finite ``float`` of the stripped text, or None."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def to_str(value):
    """``str`` of a value (bytes decoded as UTF-8), or None for None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)
