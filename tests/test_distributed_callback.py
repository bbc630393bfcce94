"""ThroughputCallback inside a user's own tf.distribute training, for real.

The strategies run in fresh processes (`distributed_user_loop.py`): logical
CPU devices and a multi-worker cluster must exist before TensorFlow starts.
Two workers on 127.0.0.1 use free ports; every wait is bounded and the
processes are always killed (the helpers of test_multi_worker.py).
"""

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from kerasbench._callback import replicas
from kerasbench._timing.throughput import ThroughputResult
from test_multi_worker import _finish, _free_ports

SCRIPT = str(Path(__file__).with_name("distributed_user_loop.py"))


def _env(**extra):
    return dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", **extra)


def _workers(tmp_path, fault=None, gather_timeout_s=60):
    """Runs two workers of the user's custom loop; returns their outputs and results."""
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for i in (0, 1):
        env = _env(GATHER_TIMEOUT_S=str(gather_timeout_s), TF_CONFIG=json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}}))
        args = [sys.executable, SCRIPT, "multi_worker", str(tmp_path / f"r{i}.json"),
                str(tmp_path / f"logs{i}")] + ([fault] if fault and i == 1 else [])
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    outputs = _finish(procs, timeout=240)
    results = []
    for i, (code, out, err) in enumerate(outputs):
        assert code == 0, err[-3000:]
        path = tmp_path / f"r{i}.json"
        results.append(json.loads(path.read_text()) if path.exists() else None)
    return outputs, results


@pytest.mark.slow
def test_users_fit_under_mirrored_strategy_reports_per_replica(tmp_path):
    out = subprocess.run([sys.executable, SCRIPT, "mirrored", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    # 22 samples in global batches of 8 (8, 8, 6), one warmup step: 14 measured.
    assert (r["steps"], r["samples"], r["replicas"], r["workers"]) == (2, 14, 2, 1)
    assert r["images_per_sec_per_replica"] == pytest.approx(r["images_per_sec"] / 2)
    assert r["chief"] is True and r["images_per_sec_per_worker"] is None
    assert f"replicas: 2, {r['images_per_sec_per_replica']:.2f} images/sec per replica" \
        in out.stdout


@pytest.mark.slow
def test_users_loop_under_multi_worker_strategy_chief_reports_every_worker(tmp_path):
    outputs, (chief, other) = _workers(tmp_path)
    chief_out, other_out = outputs[0][1], outputs[1][1]
    for r in (chief, other):
        # 4 measured steps x 4 per replica x 2 workers; the figures are gathered.
        assert (r["samples"], r["replicas"], r["workers"]) == (32, 2, 2)
        assert r["images_per_sec_per_replica"] == pytest.approx(r["images_per_sec"] / 2)
        assert r["notes"] == []
    assert (chief["chief"], other["chief"]) == (True, False)
    per_worker = chief["images_per_sec_per_worker"]
    assert per_worker == other["images_per_sec_per_worker"]
    assert per_worker == [chief["images_per_sec"], other["images_per_sec"]]
    assert chief["step_time_s_per_worker"] == [chief["step_time_s"], other["step_time_s"]]
    assert chief["slowest_worker_images_per_sec"] == min(per_worker)
    # Only the chief prints progress lines and the summary, and writes TensorBoard.
    assert "kerasbench train: 4 steps, 32 images" in chief_out
    assert "replicas: 2 on 2 workers" in chief_out and "workers: " in chief_out
    assert other_out.strip().splitlines() == [
        f"kerasbench (worker 1, not the chief): train {other['images_per_sec']:.1f} "
        "images/sec on this worker's clock; the chief prints the summary"]
    assert os.listdir(tmp_path / "logs0" / "train")
    assert not (tmp_path / "logs1").exists()


@pytest.mark.slow
def test_a_late_worker_ends_the_gather_in_bounded_time_without_failing_training(tmp_path):
    started = time.monotonic()
    outputs, (chief, _) = _workers(tmp_path, fault="stall", gather_timeout_s=5)
    assert time.monotonic() - started < 120
    assert chief["images_per_sec"] > 0 and chief["images_per_sec_per_worker"] is None
    assert chief["slowest_worker_images_per_sec"] is None
    [note] = chief["notes"]
    assert note.startswith("the other workers' figures could not be gathered (")
    assert "could not be gathered" in outputs[0][2]  # the warning, once
    assert "note: the other workers' figures could not be gathered" in outputs[0][1]


@pytest.mark.slow
def test_a_worker_that_left_costs_the_gather_only(tmp_path):
    outputs, (chief, gone) = _workers(tmp_path, fault="leave", gather_timeout_s=30)
    assert gone is None  # it left before its phase ended
    assert chief["samples"] == 32 and chief["images_per_sec_per_worker"] is None
    assert "could not be gathered" in chief["notes"][0]


# --------------------------------------------------- without a framework


def _result(rate=100.0, step=0.04):
    return ThroughputResult(
        steps=10, samples=400, time_s=4.0, observations=10, images_per_sec=rate,
        images_per_sec_sem=1.0, images_per_sec_jitter=1.0, steps_per_sec=2.5,
        steps_per_sec_sem=0.1, steps_per_sec_jitter=0.1, step_time_s=step,
        step_time_sd_s=0.001, step_time_p50_s=step, step_time_p90_s=step,
        step_time_p99_s=step, step_time_min_s=step, step_time_max_s=step,
        percentiles_exact=True, phase="train", warmup_steps=2, warmup_time_s=1.0,
        first_step_s=0.5, step_times_s=(step,) * 10, notes=())


def test_one_replica_leaves_the_result_as_it_is():
    r = _result()
    assert replicas.SINGLE.finish(r) is r
    assert replicas.SINGLE.summary("text", r) == "text"


def test_replicas_and_gathered_workers_in_the_result():
    seen = []

    def gather(row):
        seen.append(row)
        return [[120.0, 0.03], row]

    placement = replicas.Placement(replicas=4, workers=2, chief=False, task="worker 1",
                                   gather=gather)
    r = placement.finish(_result())
    assert seen == [[100.0, 0.04]]
    d = r.to_dict()
    assert (d["replicas"], d["workers"], d["chief"]) == (4, 2, False)
    assert d["images_per_sec_per_replica"] == 25.0
    assert d["images_per_sec_per_worker"] == [120.0, 100.0]
    assert d["step_time_s_per_worker"] == [0.03, 0.04]
    assert d["slowest_worker_images_per_sec"] == 100.0
    assert replicas.ReplicatedResult.from_dict(json.loads(json.dumps(d))).to_dict() == d
    assert ThroughputResult.from_dict(d).images_per_sec == 100.0  # older readers
    assert placement.summary("summary", r) == (
        "kerasbench (worker 1, not the chief): train 100.0 images/sec on this worker's "
        "clock; the chief prints the summary")
    chief = replicas.Placement(replicas=4, workers=2, gather=gather).finish(_result())
    assert replicas.Placement(replicas=4, workers=2).summary("head\ntotal", chief) == (
        "head\nreplicas: 4 on 2 workers, 25.00 images/sec per replica\n"
        "workers: 120.00, 100.00 images/sec (each on its own clock); slowest 100.00\ntotal")


def test_a_failing_gather_is_a_warning_and_a_note():
    def gather(row):
        raise TimeoutError("the other processes did not join within 5 s")

    with pytest.warns(UserWarning, match="could not be gathered.*within 5 s"):
        r = replicas.Placement(replicas=2, workers=2, gather=gather).finish(_result())
    assert r.images_per_sec == 100.0 and r.images_per_sec_per_worker is None
    assert r.notes == ("the other workers' figures could not be gathered (TimeoutError: the "
                       "other processes did not join within 5 s)",)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an exception-ended loop: no gather, no warning
        stale = replicas.Placement(replicas=2, workers=2, gather=gather).finish(
            _result(), stale=True)
    assert "loop ended with an exception" in stale.notes[0]


@pytest.mark.backends
def test_a_plain_fit_has_no_replica_figures():
    import keras
    import numpy as np

    from kerasbench import ThroughputCallback

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    cb = ThroughputCallback(warmup_steps=0, verbose=0)
    model.fit(np.ones((8, 4)), np.ones((8, 3)), batch_size=4, callbacks=[cb], verbose=0)
    assert type(cb.result) is ThroughputResult
    assert "replicas" not in cb.result.to_dict()
