"""The TensorBoard writers: the same event files with and without TensorFlow.

``"compiled"`` and ``"eager"`` need TensorFlow (the default run has it);
``"events"`` needs only the ``tensorboard`` package, which the JAX and
PyTorch backends use: checked in child processes where TensorFlow is
installed but must stay unimported, and where it cannot be imported at all.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from kerasbench import ThroughputCallback
from kerasbench._tensorboard import WRITERS, ScalarLog, check_log_dir, masked_crc32c
from test_callback import read_scalars


@pytest.mark.parametrize("writer", WRITERS)
def test_scalar_log_writes_every_value_once(tmp_path, writer):
    # Two logs: the compiled function is shared, each events file is its own.
    for n, name in enumerate(("one", "two")):
        log = ScalarLog(str(tmp_path / name), ("a", "b"), writer=writer)
        log.open()
        assert log.compiled is (writer == "compiled") and log.error is None
        for step in range(1, 6):
            log.add(step, (step * 0.5 + n, float("nan") if step % 2 else step * 10.0))
        log.write()
        log.add(6, (9.0, 9.5))
        log.close()
        s = read_scalars(tmp_path / name)
        assert s["kerasbench/a"] == [(k, k * 0.5 + n) for k in range(1, 6)] + [(6, 9.0)]
        assert s["kerasbench/b"] == [(2, 20.0), (4, 40.0), (6, 9.5)]  # NaN skipped


def test_events_files_of_one_directory_are_read_in_order(tmp_path):
    for start in (1, 3):  # two fits in one second: two files, one series
        log = ScalarLog(str(tmp_path), ("a",), writer="events")
        log.add(start, (1.0,))
        log.add(start + 1, (2.0,))
        log.close()
    assert read_scalars(tmp_path)["kerasbench/a"] == [(1, 1.0), (2, 2.0), (3, 1.0), (4, 2.0)]


def test_masked_crc32c_matches_tensorboard():
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as one

    rng = random.Random(0)
    chunks = [bytes(rng.getrandbits(8) for _ in range(n)) for n in (0, 1, 7, 8, 9, 150, 301)]
    assert masked_crc32c(chunks) == [one(c) for c in chunks]
    assert masked_crc32c([]) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_a_failing_file_is_kept_in_error_not_raised(tmp_path, writer):
    log = ScalarLog(str(tmp_path / "gone"), ("a",), writer=writer)
    log.open()
    log.add(1, (1.0,))
    log.flush()
    shutil.rmtree(tmp_path / "gone")
    log.add(2, (2.0,))
    log.flush()  # the folder is gone: recorded, not raised
    assert isinstance(log.error, FileNotFoundError)
    log.add(3, (3.0,))
    log.close()  # and nothing more is written, nor raised
    assert log.pending == 0 and not (tmp_path / "gone").exists()


def test_check_log_dir(tmp_path, monkeypatch):
    check_log_dir(str(tmp_path / "new" / "deeper"))  # creatable: fine, and nothing made
    assert not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is an existing file"):
        check_log_dir(str(tmp_path / "f"))
    with pytest.raises(ValueError, match="is a file, not a directory"):
        check_log_dir(str(tmp_path / "f" / "logs"))
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ImportError, match=r"`log_dir` needs the `tensorboard` package"):
        ThroughputCallback(log_dir=str(tmp_path))


CHILD = textwrap.dedent(
    """
    import json, sys
    if sys.argv[2] == "blocked":
        sys.modules["tensorflow"] = None  # TensorFlow not installed
    import keras, numpy as np
    from kerasbench import ThroughputCallback
    x, y = np.ones((10, 4), "float32"), np.ones((10, 3), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    cb = ThroughputCallback(warmup_steps=1, verbose=0, log_dir=sys.argv[1])
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), callbacks=[cb], verbose=0)
    model.predict(x, batch_size=4, callbacks=[cb], verbose=0)
    print(json.dumps({"backend": keras.backend.backend(),
                      "tensorflow_imported": sys.modules.get("tensorflow") is not None,
                      "results": {k: r.to_dict() for k, r in cb.results.items()}}))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("backend,tensorflow", [("jax", "installed"), ("torch", "installed"),
                                                ("jax", "blocked")])
def test_other_backends_write_event_files_without_tensorflow(tmp_path, backend, tensorflow):
    env = dict(os.environ, KERAS_BACKEND=backend)
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), tensorflow],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == backend and got["tensorflow_imported"] is False
    for phase, steps in (("train", 6), ("validation", 6), ("predict", 3)):
        result = got["results"][phase]
        s = read_scalars(tmp_path / phase)
        assert [k for k, _ in s["kerasbench/step_time_s"]] == list(range(1, steps + 1))
        warm = result["warmup_steps"]
        values = [v for _, v in s["kerasbench/step_time_s"]][warm:]
        assert values == pytest.approx(result["step_times_s"], rel=1e-6)
        assert s["kerasbench/images_per_sec"][-1][1] == pytest.approx(
            result["images_per_sec"], rel=1e-6)
