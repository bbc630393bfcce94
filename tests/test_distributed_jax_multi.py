"""strategy='multi_worker' on the JAX backend: several JAX processes, for real.

Each process runs `kerasbench run --strategy multi_worker` under
KERAS_BACKEND=jax with its own TF_CONFIG (ports chosen free at run time, the
first address being JAX's coordinator); the processes join through
`keras.distribution.initialize` and train one `model.fit` under
`keras.distribution.DataParallel`. Every wait is bounded and the processes
are always killed at the end (`test_multi_worker._finish`).
"""

import json
import re
import sys
import textwrap
import time

import numpy as np
import pytest

import kerasbench
from kerasbench._runs import worker
from kerasbench._runs.distributed import jax_cluster, process_share
from test_multi_worker import ARGS, _finish, _free_ports, _start

JAX = {"KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}

# `kerasbench run ...` through the CLI's own main(), with the result it
# printed the summary of also written to a file (argv[1]) for the test.
RUN_AND_KEEP = textwrap.dedent("""
    import sys
    import kerasbench._runs.reference as ref
    from kerasbench._cli import main

    def keep(*args, real=ref.reference, **kwargs):
        result = real(*args, **kwargs)
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(result.to_json())
        return result

    ref.reference = keep
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.slow
def test_two_jax_processes_train_together_and_only_the_chief_prints_the_summary(tmp_path):
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    kept = [tmp_path / f"result{i}.json" for i in (0, 1)]
    procs = [_start(i, cluster, env=JAX,
                    command=[sys.executable, "-c", RUN_AND_KEEP, str(kept[i]), *ARGS])
             for i in (0, 1)]
    outputs = _finish(procs, timeout=400)
    for code, out, err in outputs:
        assert code == 0, (out[-2000:], err[-3000:])
    chief, other = (json.loads(path.read_text()) for path in kept)
    for r in (chief, other):
        s = r["stats"]
        assert r["status"] == "ok" and r["backend"] == "jax"
        assert r["config"]["strategy"] == "multi_worker" and r["config"]["num_devices"] == 2
        # Each process fed 4 images a step; the count is global: 4 steps x 4 x 2.
        assert (s["samples"], s["global_batch_size"], s["workers"], s["replicas"]) == (32, 8, 2, 2)
        assert s["images_per_sec_per_replica"] == pytest.approx(s["images_per_sec"] / 2)
    assert (chief["stats"]["chief"], other["stats"]["chief"]) == (True, False)
    # The callback's JAX gather: every process's figure, in process order, on both.
    per_worker = chief["stats"]["images_per_sec_per_worker"]
    assert per_worker == other["stats"]["images_per_sec_per_worker"]
    assert per_worker == [chief["stats"]["images_per_sec"], other["stats"]["images_per_sec"]]
    assert chief["stats"]["slowest_worker_images_per_sec"] == min(per_worker)
    # Only the chief prints the summary; it names both workers' figures.
    chief_out, other_out = outputs[0][1], outputs[1][1]
    assert "kerasbench train: 4 steps, 32 images" in chief_out
    assert f"workers: {per_worker[0]:.2f}, {per_worker[1]:.2f} images/sec" in chief_out
    assert "kerasbench train:" not in other_out and "workers:" not in other_out
    assert "images/sec:" not in other_out
    assert re.search(r"kerasbench \(worker, not the chief\): [0-9.]+ images/sec", other_out)


@pytest.mark.slow
def test_a_jax_process_whose_peer_never_comes_fails_clearly_in_bounded_time():
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    for index in (0, 1):  # the coordinator alone, then a process without one
        started = time.monotonic()
        [(code, out, err)] = _finish(
            [_start(index, cluster, ["--connect-timeout-s", "6"], env=JAX)], timeout=120)
        assert time.monotonic() - started < 90
        assert code == 1
        assert "not every worker of TF_CONFIG's cluster joined within 6 s" in err


GATHER = textwrap.dedent("""
    import json, os, time
    from kerasbench._runs import distributed
    from kerasbench._callback.replicas import jax_gather

    distributed.start_strategy(60, backend="jax", device="cpu")
    import jax

    index = jax.process_index()
    rows = jax_gather([index + 0.1, 184.29146649149817 * (index + 1)], timeout_s=60)
    late = None
    if index == 1:  # process 0 stays alive but never comes: this gather gives up
        started = time.monotonic()
        try:
            jax_gather([0.0, 0.0], timeout_s=3)
        except TimeoutError as error:
            late = [str(error), time.monotonic() - started]
    else:
        time.sleep(15)  # outlives the other's time limit (it hosts JAX's coordinator)
    print(json.dumps({"index": index, "rows": rows, "late": late}), flush=True)
    os._exit(0)  # no shutdown barrier with a peer that has gone
""")


@pytest.mark.slow
def test_the_callbacks_jax_gather_across_two_processes_and_its_time_limit():
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [_start(i, cluster, env=JAX, command=[sys.executable, "-c", GATHER])
             for i in (0, 1)]
    outputs = _finish(procs, timeout=200)
    got = []
    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        got.append(json.loads(out.strip().splitlines()[-1]))
    for g in got:  # float64 exactly (float32 would round 0.1 and 184.29146649149817)
        assert g["rows"] == [[0.1, 184.29146649149817], [1.1, 184.29146649149817 * 2]]
    message, waited = got[1]["late"]
    assert message == "the other processes did not join within 3 s"
    assert 3 <= waited < 12
    assert got[0]["late"] is None


# ------------------------------------------------------------ no processes


def test_jax_cluster_reads_tf_config_the_first_address_coordinates():
    workers = {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker",
                                                                      "index": 2}}
    assert jax_cluster({"TF_CONFIG": json.dumps(workers)}) == (["a:1", "b:2", "c:3"], 2)
    chief = {"cluster": {"chief": ["m:9"], "worker": ["a:1", "b:2"]},
             "task": {"type": "worker", "index": 0}}
    assert jax_cluster({"TF_CONFIG": json.dumps(chief)}) == (["m:9", "a:1", "b:2"], 1)
    chief["task"] = {"type": "chief", "index": 0}
    assert jax_cluster({"TF_CONFIG": json.dumps(chief)}) == (["m:9", "a:1", "b:2"], 0)


@pytest.mark.parametrize("text", [
    None, "not json", json.dumps({"cluster": {"worker": ["a:1"]}}),  # no task
    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}),
    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
    json.dumps({"cluster": {"worker": [5]}, "task": {"type": "worker", "index": 0}}),
    json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": True}}),
])
def test_jax_cluster_refuses_what_it_cannot_use_naming_tf_config(text):
    environ = {} if text is None else {"TF_CONFIG": text}
    with pytest.raises(ValueError, match=(
            r"`strategy='multi_worker'` on the JAX backend takes its processes from the "
            r"TF_CONFIG environment variable.*Received: TF_CONFIG=")) as info:
        jax_cluster(environ)
    assert repr((text or "")[:200]) in str(info.value)


def test_a_jax_worker_without_a_usable_tf_config_answers_with_the_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = kerasbench.RunConfig(model="lenet", strategy="multi_worker", backend="jax")
    answer = worker.run({"protocol": worker.PROTOCOL, "config": config.to_dict()})
    assert (answer["status"], answer["error_type"]) == ("error", "ValueError")
    assert "takes its processes from the TF_CONFIG environment variable" in answer["message"]
    assert answer["result"]["status"] == "error"


def test_each_process_feeds_its_share_of_the_same_global_batches():
    config = kerasbench.RunConfig(model="lenet", batch_size=3, num_classes=7, seed=5,
                                  strategy="multi_worker").replace(num_devices=2)
    (x0, y0), (x1, y1) = (process_share(config, 4, 2, i) for i in (0, 1))
    assert x0.shape == x1.shape == (12, 1) and y0.shape == y1.shape == (12,)
    # Step by step, process 0's then process 1's share make the global batch,
    # which is what one process holding both replicas would feed.
    global_batches = np.concatenate([y0.reshape(4, 3), y1.reshape(4, 3)], axis=1)
    _, whole = process_share(config, 4, 1, 0)
    np.testing.assert_array_equal(global_batches.reshape(-1), whole)


def test_multi_worker_resolves_on_jax_with_one_replica_per_process(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))
    config = kerasbench.RunConfig(model="lenet", strategy="multi_worker")
    resolved = config.resolve(kerasbench.model_info("lenet"), "jax", "cpu")
    assert (resolved.num_devices, resolved.backend) == (2, "jax")
    with pytest.raises(ValueError, match="measures training only"):
        config.replace(mode="inference").resolve(kerasbench.model_info("lenet"), "jax", "cpu")



def test_a_cluster_whose_devices_are_not_the_resolved_replicas_is_refused(monkeypatch):
    from types import SimpleNamespace

    from kerasbench._runs import distributed

    three = SimpleNamespace(batch_dim_name="batch",
                            device_mesh=SimpleNamespace(axis_names=("batch",), shape=(3,)))
    monkeypatch.setattr(distributed, "_STRATEGY", three)
    config = kerasbench.RunConfig(model="lenet", strategy="multi_worker").replace(num_devices=2)
    with pytest.raises(RuntimeError, match=(
            r"the JAX cluster has 3 devices in 1 process\(es\), but the run was resolved "
            r"for 2 replicas")):
        distributed.train(None, config, None)  # refused before anything runs
