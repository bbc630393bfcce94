"""With Keras' interactive logging off, the progress lines are never lost."""

import subprocess
import sys

import pytest

SCRIPT = """
import logging, sys
import numpy as np, keras, kerasbench
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="LOG %(name)s: %(message)s")
keras.config.disable_interactive_logging()
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.zeros((64, 4), "float32"), np.zeros((64, 2), "float32"), batch_size=8,
          verbose=0, callbacks=[kerasbench.ThroughputCallback(warmup_steps=2)])
"""


@pytest.mark.backends
@pytest.mark.parametrize("logging_setup", ["none", "configured"])
def test_progress_lines_reach_the_user_without_interactive_logging(logging_setup):
    out = subprocess.run([sys.executable, "-c", SCRIPT, logging_setup], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    if logging_setup == "none":  # no handler anywhere: written to stderr
        assert "total images/sec:" in out.stderr and "total images/sec" not in out.stdout
    else:  # through the configured logging, as a record of the `kerasbench` logger
        assert "LOG kerasbench: " in out.stdout and "total images/sec:" in out.stdout
