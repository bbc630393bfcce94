"""Tests of DeviceReport as a whole: collection, software facts against
installed metadata, degrading without TensorFlow, JSON (and its validation),
printing and TensorBoard.

The probes of each concern have their own files: test_device_host.py,
test_device_gpu.py (diagnosis, peaks), test_device_simulated.py (GPU machines
and failing probes through stand-in sources) and test_device_health.py.
"""

import dataclasses
import glob
import importlib.metadata
import json
import re
import subprocess
import sys
import textwrap
import time

import pytest

from kerasbench._device import DeviceReport, HealthCheck, Sources
from kerasbench._device import backends as device_backends
from kerasbench._device.records import HostInfo


@pytest.fixture(scope="module")
def report():
    return DeviceReport.collect()


# ---------------------------------------------------------------------------
# Import cost and collection.


@pytest.mark.slow
def test_import_is_light_and_collect_leaves_gpu_runtime_uninitialised():
    code = textwrap.dedent("""
        import sys
        import kerasbench._device as d
        print("tf-at-import", "tensorflow" in sys.modules, "keras" in sys.modules)
        r = d.DeviceReport.collect()
        from tensorflow.python.eager import context
        print("context-initialised", context.context()._context_handle is not None)
        print("devices", r.devices)
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "tf-at-import False False" in out.stdout
    # Listing devices must not create TensorFlow's runtime: users can still
    # set memory growth or visible devices after collect().
    assert "context-initialised False" in out.stdout


def test_collect_is_cheap_once_tensorflow_is_loaded(report):
    start = time.perf_counter()
    DeviceReport.collect()
    assert time.perf_counter() - start < 2.0
    assert report.collect_seconds is not None and report.collect_seconds > 0


def test_collect_argument_errors():
    with pytest.raises(ValueError,
                       match=r"`probe_gpus` must be True or False\. Received: probe_gpus='yes'"):
        DeviceReport.collect(probe_gpus="yes")
    with pytest.raises(ValueError, match=r"`sources` must be a Sources or None\. "
                                         r"Received: sources='/'"):
        DeviceReport.collect(sources="/")
    with pytest.raises(ValueError, match=r"`timeout_s` must be a positive number\. "
                                         r"Received: timeout_s=0"):
        Sources(timeout_s=0)
    with pytest.raises(ValueError, match=r"`root` must be a non-empty path"):
        Sources(root="")


def test_collect_without_gpu_probing():
    r = DeviceReport.collect(probe_gpus=False)
    assert r.accelerators == [] and r.gpu_driver is None
    assert r.devices == ["cpu"]
    assert "not probed" in r.gpu_unavailable_reason


def test_no_gpu_is_explained_from_independent_facts(report):
    import ctypes

    import tensorflow as tf

    # The device list is TensorFlow's own, asked directly.
    visible = tf.config.get_visible_devices("GPU")
    assert report.devices == ["cpu"] + [f"gpu:{i}" for i in range(len(visible))]
    if tf.config.list_physical_devices("GPU"):  # not the case on CI machines
        assert report.gpu_unavailable_reason is None and len(report.devices) > 1
        return
    assert report.accelerators == [] and report.devices == ["cpu"]
    reason = report.gpu_unavailable_reason
    build = tf.sysconfig.get_build_info()
    try:
        ctypes.CDLL("libcuda.so.1")
        has_driver = True
    except OSError:
        has_driver = False
    if not build.get("is_cuda_build"):
        assert "CPU-only build" in reason
    elif not has_driver:
        assert "no NVIDIA driver" in reason and "libcuda.so.1" in reason
        if not glob.glob("/dev/nvidia*"):
            assert "no /dev/nvidia* device files" in reason
        assert report.gpu_driver["libcuda"] is None
    else:
        assert "cuInit" in str(report) or "CUDA" in reason
    assert " ".join(reason.split()) in " ".join(str(report).split())


def test_tensorflow_import_failure_degrades(tmp_path):
    def no_tensorflow():
        raise ImportError("no tensorflow here")

    def no_keras():
        raise ImportError("no keras here")

    sources = Sources(import_tensorflow=no_tensorflow, import_keras=no_keras,
                      environ={"KERAS_HOME": str(tmp_path)})
    r = DeviceReport.collect(sources=sources)
    assert r.software.versions["tensorflow"] is None and r.software.versions["keras"] is None
    assert r.software.versions["numpy"] is not None
    reason = r.gpu_unavailable_reason
    assert "TensorFlow cannot be imported (ImportError: no tensorflow here)" in reason
    assert r.software.tf_build is None and r.software.keras_backend == "tensorflow"
    assert r.probe_errors["software.keras_import"] == "ImportError: no keras here"
    assert r.backend == "tensorflow" and r.devices == ["cpu"]
    result = r.check(devices="cpu", time_budget_s=0.2)  # imports through the same sources
    assert result.status == "FAIL" and result.problems == [
        "cpu: TensorFlow cannot be imported: ImportError: no tensorflow here"]
    assert result.devices[0].model == r.host.cpu_model


# ---------------------------------------------------------------------------
# Software facts.


def _installed(dist):
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_software_versions_match_installed_metadata(report):
    v = report.software.versions
    for name in ("tensorflow", "keras", "numpy", "tensorboard"):
        assert v[name] == importlib.metadata.version(name), name
    import keras
    import tensorflow as tf

    assert report.software.keras_backend == keras.config.backend() == report.backend
    build = tf.sysconfig.get_build_info()
    assert report.software.tf_build["is_cuda_build"] == build.get("is_cuda_build", False)
    assert report.software.tf_build_kind == ("CUDA" if build.get("is_cuda_build") else
                                             "ROCm" if build.get("is_rocm_build") else "CPU-only")
    sw = report.software
    assert sw.intra_op_threads == tf.config.threading.get_intra_op_parallelism_threads()
    assert sw.tensor_float_32 == tf.config.experimental.tensor_float_32_execution_enabled()
    assert report.software.mixed_precision_policy == keras.config.dtype_policy().name
    assert isinstance(report.software.onednn, bool)
    assert isinstance(report.software.op_determinism, bool)
    dists = [d for d in ("tensorflow", "tensorflow-cpu") if _installed(d)]
    assert set(dists) <= set(report.software.tensorflow_distributions)


def test_environment_lists_only_variables_that_are_set():
    environ = {"OMP_NUM_THREADS": "3", "TF_XLA_FLAGS": "--tf_xla_auto_jit=2", "HOME": "/x"}
    r = DeviceReport.collect(probe_gpus=False, sources=Sources(environ=environ))
    assert r.software.env == {"TF_XLA_FLAGS": "--tf_xla_auto_jit=2", "OMP_NUM_THREADS": "3"}
    assert "OMP_NUM_THREADS=3" in str(r)


def test_keras_backend_without_keras(tmp_path):
    read = device_backends.keras_backend_from_config
    assert read({"KERAS_BACKEND": "torch", "KERAS_HOME": str(tmp_path)}) == "torch"
    assert read({"KERAS_HOME": str(tmp_path)}) == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert read({"KERAS_HOME": str(tmp_path)}) == "jax"


# ---------------------------------------------------------------------------
# Serialisation and TensorBoard.


def test_to_dict_is_json_with_stable_keys(report):
    d = json.loads(json.dumps(report.to_dict()))
    assert list(d) == ["schema_version", "collected_at", "collect_seconds", "backend", "host",
                       "software", "accelerators", "gpu_unavailable_reason", "gpu_driver",
                       "notes", "probe_errors", "health"]
    assert d["backend"] == "tensorflow"
    assert set(d["host"]) == {f.name for f in dataclasses.fields(HostInfo)}
    restored = DeviceReport.from_dict(d)
    assert restored.to_dict() == d
    assert str(restored) == str(DeviceReport.from_dict(report.to_dict()))


def test_from_dict_tolerates_old_and_new_reports():
    r = DeviceReport.from_dict({"host": {"cpu_model": "X", "future_field": 1}})
    assert r.host.cpu_model == "X" and r.accelerators == [] and r.health is None
    assert r.backend is None  # written before the backend was recorded: TensorFlow's
    assert "  Backend " not in str(r)
    with pytest.warns(UserWarning, match="schema version 99") as record:
        DeviceReport.from_dict({"schema_version": 99})
    assert record[0].filename == __file__  # stacklevel=2 points at the caller
    with pytest.raises(TypeError, match=r"expects a dict\. Received: d='x'"):
        DeviceReport.from_dict("x")
    assert isinstance(HealthCheck.from_dict({"ok": False}), HealthCheck)
    assert DeviceReport.from_dict({"health": None, "gpu_driver": None}).health is None


@pytest.mark.parametrize("d, message", [
    ({"host": []}, r"`host` must be a dict\. Received: host=\[\]"),
    ({"host": None}, r"`host` must be a dict\. Received: host=None"),
    ({"accelerators": {"name": "gpu:0"}}, r"`accelerators` must be a list\."),
    ({"accelerators": ["gpu:0"]}, r"`accelerators\[0\]` must be a dict\. "
                                  r"Received: accelerators\[0\]='gpu:0'"),
    ({"notes": "none"}, r"`notes` must be a list\. Received: notes='none'"),
    ({"software": {"tf_build": [1]}}, r"`software\.tf_build` must be a dict or None\."),
    ({"host": {"cpu_model": ["x"]}}, r"`host\.cpu_model` must be a single value \(str \| None\)"),
    ({"health": {"devices": [{"bandwidth": [1]}]}},
     r"`health\.devices\[0\]\.bandwidth` must be a dict or None\."),
])
def test_from_dict_names_the_malformed_field(d, message):
    with pytest.raises(ValueError, match=message):
        DeviceReport.from_dict(d)


def test_write_tensorboard(report, tmp_path):
    import tensorflow as tf

    report.write_tensorboard(tmp_path / "logs", step=3)
    texts = {}
    for path in glob.glob(str(tmp_path / "logs" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                assert event.step == 3
                texts[value.tag] = tf.make_ndarray(value.tensor).item().decode()
    assert json.loads(texts["kerasbench/device_report_json"]) == report.to_dict()
    assert texts["kerasbench/device_report"].startswith("    kerasbench device report")
    assert ("kerasbench/health_check" in texts) == (report.health is not None)
    with pytest.raises(ValueError,
                       match=r"`step` must be a non-negative integer\. Received: step=-1"):
        report.write_tensorboard(tmp_path, step=-1)
    with pytest.raises(ValueError, match=r"`log_dir` must be a non-empty path"):
        report.write_tensorboard(3)


def test_readable_block_names_every_section(report):
    text = str(report)
    for heading in ("Host", "Software", "Accelerators"):
        assert re.search(rf"^{heading}$", text, re.M), heading
    for label in ("CPU", "Clock", "Vector ISA", "Caches", "Memory", "OS", "Python",
                  "Virtualization", "CPU peak", "Versions", "Keras backend", "TF build",
                  "oneDNN", "XLA JIT", "Precision", "Threads", "Environment", "Backend",
                  "Devices"):
        assert re.search(rf"^  {re.escape(label)}\s", text, re.M), label
    assert max(len(line) for line in text.splitlines()) <= 100


def test_long_rows_wrap_under_their_value_column():
    reason = "because " * 30
    text = str(DeviceReport.from_dict({"gpu_unavailable_reason": reason.strip(),
                                       "notes": ["note " * 30]}))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  GPUs"))
    assert lines[start].startswith("  GPUs           none. because")
    assert lines[start + 1].startswith(" " * 17 + "because")
    note = lines.index("Notes") + 1
    assert lines[note].startswith("  - note") and lines[note + 1].startswith("    note")
    assert max(len(line) for line in lines) <= 100


def test_gpus_of_another_keras_backend_are_targets_in_old_reports():
    """Reports written before `backend` was recorded listed TensorFlow's GPUs
    plus those of another Keras backend; they still read that way."""

    def report(backend, devices):
        return DeviceReport.from_dict({"software": {"keras_backend": backend,
                                                    "keras_backend_devices": devices}})

    assert report("jax", ["gpu:0", "gpu:1"]).devices == ["cpu", "gpu:0", "gpu:1"]
    assert report("torch", ["cpu", "cuda:0"]).devices == ["cpu", "gpu:0"]
    assert report("jax", ["cpu:0"]).devices == ["cpu"]
    # With TensorFlow, only TensorFlow's own GPU list counts.
    assert report("tensorflow", ["gpu:0"]).devices == ["cpu"]
    assert "gpu:0 through the jax backend" in str(report("jax", ["gpu:0"]))
    # A report that names its backend lists that backend's GPUs, nothing more.
    new = DeviceReport.from_dict({"backend": "jax", "software": {
        "keras_backend": "jax", "keras_backend_devices": ["gpu:0"]}})
    assert new.devices == ["cpu"] and new.backend_gpus == []
