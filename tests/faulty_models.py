"""Models that fail on purpose, registered like any user's models.

Importing this module registers them; an isolated sweep makes its worker
import it too (models registered in an importable module are known to the
child), so the faults below happen for real, in this process or in a child:
an exception, an out-of-memory error above a batch size, a crash by signal,
a hang, a swallowed Ctrl-C, and undecodable bytes on stderr.
"""

import os
import signal
import sys
import time

import kerasbench

SIZE = {"image_size": 8, "min_image_size": 1, "params": 1, "source": "tests"}
#: Batch sizes above this run out of memory in "oom_above_2".
FITS = 2


def _model(input_shape, num_classes, on_call):
    import keras

    class Fault(keras.layers.Layer):
        def call(self, x):
            on_call(x.shape[0])
            return x

    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(Fault()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def _register(name, description, on_build=None, on_call=None):
    @kerasbench.register_model(name, description=description, **SIZE)
    def build(input_shape, num_classes, data_format):
        if on_build is not None:
            on_build()
        return _model(input_shape, num_classes, on_call or (lambda batch: None))

    return build


def _raise(error):
    def fail(*args):
        raise error

    return fail


def _oom_above(batch):
    if batch is not None and batch > FITS:
        raise MemoryError(f"out of memory allocating a batch of {batch}")


def _kill(sig):
    return lambda *args: os.kill(os.getpid(), sig)


def _hang(*args):
    time.sleep(600)


def _garbage_then_exit(*args):
    sys.stderr.buffer.write(b"\xff\xfe not utf-8 \x80\n")
    sys.stderr.flush()
    os._exit(3)


class _InterruptInDel:
    """Ctrl-C landing in a ``__del__``: Python prints the KeyboardInterrupt and ignores it."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)


def _interrupt_swallowed(batch):
    if batch == 4:
        _InterruptInDel()  # collected at once; the interrupt is swallowed there


FAULTS = {
    "boom": ("Raises RuntimeError('boom') when built.",
             {"on_build": _raise(RuntimeError("boom"))}),
    "oom_above_2": ("Out of memory above batch size 2.", {"on_call": _oom_above}),
    "killed": ("Killed by SIGKILL while building.", {"on_build": _kill(signal.SIGKILL)}),
    "segfault": ("Killed by SIGSEGV while building.", {"on_build": _kill(signal.SIGSEGV)}),
    "hangs": ("Sleeps for ten minutes while building.", {"on_build": _hang}),
    "garbage": ("Writes undecodable bytes to stderr and exits.",
                {"on_build": _garbage_then_exit}),
    "swallowed_ctrl_c": ("A Ctrl-C swallowed in __del__ at batch size 4.",
                         {"on_call": _interrupt_swallowed}),
}


def register():
    """Registers every faulty model not registered yet (a worker imports this module)."""
    known = set(kerasbench.list_models())
    for name, (description, hooks) in FAULTS.items():
        if name not in known:
            _register(name, description, **hooks)


register()
