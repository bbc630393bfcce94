"""MultiWorkerMirroredStrategy with two real worker processes on 127.0.0.1.

Each worker runs `kerasbench run --strategy multi_worker` with its own
TF_CONFIG (ports chosen free at run time); the processes are always killed
at the end and every wait is bounded.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

ARGS = ["run", "lenet", "--strategy", "multi_worker", "--batch-size", "4", "--steps", "4",
        "--warmup-steps", "1", "--image-size", "32", "--num-classes", "5", "--no-count-flops"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tf_config(index, cluster):
    """TF_CONFIG of worker ``index`` of a cluster of ``host:port`` workers."""
    return json.dumps({"cluster": {"worker": cluster},
                       "task": {"type": "worker", "index": index}})


def _start(index, cluster, extra=(), command=None, env=None):
    """Starts worker ``index``: ``kerasbench ARGS extra``, or ``command``."""
    env = dict(os.environ, **(env or {}), TF_CONFIG=_tf_config(index, cluster))
    command = command or [sys.executable, "-m", "kerasbench", *ARGS, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _finish(procs, timeout):
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
            outputs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outputs


@pytest.mark.slow
def test_two_workers_train_together_and_the_chief_reports_both():
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = [_start(i, cluster, ["--json"]) for i in (0, 1)]
    outputs = _finish(procs, timeout=300)
    results = []
    for code, out, err in outputs:
        assert code == 0, err[-2000:]
        results.append(json.loads(out))
    chief, other = results
    assert (chief["stats"]["chief"], other["stats"]["chief"]) == (True, False)
    for r in results:
        assert r["status"] == "ok" and r["config"]["strategy"] == "multi_worker"
        # The global sample count is the sum over workers: 4 steps x 4 per replica x 2.
        assert r["stats"]["samples"] == 32 and r["stats"]["workers"] == 2
        assert r["stats"]["global_batch_size"] == 8 and r["config"]["num_devices"] == 2
    # Every worker's figure reached the chief, and agrees with that worker's own.
    per_worker = chief["stats"]["images_per_sec_per_worker"]
    assert per_worker == other["stats"]["images_per_sec_per_worker"]
    assert per_worker == [chief["stats"]["images_per_sec"], other["stats"]["images_per_sec"]]
    assert chief["stats"]["slowest_worker_images_per_sec"] == min(per_worker)


@pytest.mark.slow
def test_a_worker_whose_peer_never_comes_fails_clearly_in_bounded_time():
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    started = time.monotonic()
    [(code, out, err)] = _finish([_start(0, cluster, ["--connect-timeout-s", "8"])],
                                 timeout=120)
    assert time.monotonic() - started < 100
    assert code == 1
    assert "not every worker of TF_CONFIG's cluster joined within 8 s" in err


def test_multi_worker_needs_tf_config(monkeypatch):
    from kerasbench._runs.distributed import cluster_size

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="takes its cluster from the TF_CONFIG"):
        cluster_size()
    assert cluster_size({"TF_CONFIG": json.dumps(
        {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}})}) == 3
