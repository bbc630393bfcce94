"""Which Keras loop a hook belongs to: threads, frames, and loops an exception ended.

Keras calls a callback's end hooks only when a loop finishes: after an
exception inside `fit` (a ``KeyboardInterrupt`` in a notebook, a failing
callback) `on_train_end` never comes. So a loop is not taken as running
because its begin hook came and its end hook did not; it runs while the
frame of Keras' own `fit`/`evaluate`/`predict` call is on its thread's stack
and that call's `CallbackList` (one of its locals) exists. Without such a
frame (hooks called by hand, a loop that is not Keras') only a finished
thread proves the loop ended.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref

import keras

_KERAS_DIR = os.path.dirname(keras.__file__) + os.sep
_OWN_DIR = os.path.dirname(__file__) + os.sep
END_HOOK = {"fit": "on_train_end", "evaluate": "on_test_end", "predict": "on_predict_end"}

RUNNING, ENDED, UNKNOWN = "running", "ended", "unknown"


class Loop:
    """One call of `fit`, `evaluate` or `predict` that the callback measures.

    It keeps what Keras gave for that call (the model and the `params`,
    both of which the next loop's `CallbackList` overwrites on the callback),
    the thread and the Keras frame that run it, its phases, the warnings it
    gave, and why TensorBoard stopped for it (``tb_failed``, a note, or "").
    """

    __slots__ = ("kind", "thread", "frame", "model", "params", "phases", "warned",
                 "tb_failed")

    def __init__(self, kind, model, params):
        self.kind = kind
        self.thread = threading.current_thread()
        self.frame = keras_frame(model, kind)
        self.model = model
        self.params = params
        self.phases = {}
        self.warned = set()
        self.tb_failed = ""

    def param(self, name):
        return (self.params or {}).get(name)

    def state(self):
        """`RUNNING`, `ENDED` (an exception ended it) or `UNKNOWN` (no Keras frame)."""
        if not self.thread.is_alive():
            return ENDED
        if self.frame is None:
            return UNKNOWN
        frame_id, code, ref = self.frame
        if ref is not None and ref() is None:
            return ENDED
        frame = sys._current_frames().get(self.thread.ident)
        while frame is not None:
            if id(frame) == frame_id and frame.f_code is code:
                return RUNNING
            frame = frame.f_back
        return ENDED

    def ended(self, thread, proven_only=False):
        """Whether an exception ended this loop, seen from a hook in ``thread``.

        A loop without a Keras frame counts as ended when a new loop begins
        in its own thread, unless ``proven_only``.
        """
        state = self.state()
        return state == ENDED or (state == UNKNOWN and not proven_only
                                  and self.thread is thread)

    def runs_this_hook(self):
        """Whether only Keras' frames lie between the current hook and this loop's call.

        How a fit's validation (`evaluate` called by `fit` itself) is told
        from an `evaluate` called by a user's callback during the fit.
        """
        if self.frame is None:
            return False
        frame_id, code, _ = self.frame
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIR):
            frame = frame.f_back
        while frame is not None and frame.f_code.co_filename.startswith(_KERAS_DIR):
            if id(frame) == frame_id and frame.f_code is code:
                return True
            frame = frame.f_back
        return False

    def refusal(self, kind):
        """The message of the error for a `kind` loop begun while this one runs."""
        where = ("this thread (is the instance listed twice in `callbacks`?)"
                 if self.thread is threading.current_thread()
                 else f"thread {self.thread.name!r}")
        return (f"This ThroughputCallback is already measuring a `{self.kind}` call running "
                f"in {where}, so it cannot also measure this `{kind}`: one instance measures "
                "one loop at a time. Give each concurrent loop its own ThroughputCallback.")


def keras_frame(model, kind):
    """Marks the frame of Keras' `model.<kind>` call running this hook, or None.

    Returns ``(id, code, ref)``: the frame's id and code, and a weak
    reference to that call's `CallbackList` (a local of the call, so it dies
    with it and tells a new call whose frame took the old one's address from
    the old call).
    """
    frame = sys._getframe(1)
    for _ in range(40):
        if frame is None:
            return None
        if frame.f_code.co_name == kind and frame.f_code.co_filename.startswith(_KERAS_DIR) \
                and frame.f_locals.get("self") is model:
            try:
                ref = weakref.ref(frame.f_locals.get("callbacks"))
            except TypeError:
                ref = None
            return id(frame), frame.f_code, ref
        frame = frame.f_back
    return None
