"""Sweeps: real small runs, killed runs, injected failures, result files."""

import csv
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import warnings

import pytest

from kerasbench import RunConfig
from kerasbench._cli import main
from kerasbench._results import (
    BenchmarkResult,
    ResultsFileError,
    append_result,
    read_results,
    write_csv,
)
from kerasbench._results.export import CSV_COLUMNS
from kerasbench._runs.sweep import finished_keys, plan, sweep

TESTS = os.path.dirname(os.path.abspath(__file__))
TINY = {"steps": 2, "warmup_steps": 1, "image_size": 8, "num_classes": 3}


def tiny_sweep(tmp_path, **kwargs):
    args = dict(TINY, out=str(tmp_path), machine="box", isolate=False, progress=False)
    args.update(kwargs)
    models = args.pop("models", ["lenet"])
    return sweep(models, **args)


@pytest.fixture
def faulty(monkeypatch, scratch_registry):
    """Registers the failing models (in a scratch registry) and makes their
    module importable by workers."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (TESTS, os.environ.get("PYTHONPATH")) if p))
    import faulty_models

    faulty_models.register()
    return faulty_models


def lines(path):
    """The result lines of a file (device report lines, ``"kind"``, left out)."""
    with open(path) as f:
        return [d for d in map(json.loads, filter(str.strip, f)) if "kind" not in d]


# ------------------------------------------------------------- real sweeps


def test_small_real_sweep_writes_every_result(tmp_path):
    results = tiny_sweep(tmp_path, models=["lenet", "trivial"], batch_sizes=[2, 4],
                         precisions=["fp32", "bf16"])
    assert [(r.model, r.precision, r.batch_size) for r in results] == [
        (m, p, b) for m in ("lenet", "trivial") for p in ("fp32", "bf16") for b in (2, 4)
    ]
    assert all(r.ok and r.images_per_sec > 0 and r.machine == "box" for r in results)
    assert all(r.stats["samples"] == 2 * r.batch_size for r in results)
    written = read_results(tmp_path / "box.jsonl")
    assert [r.to_dict() for r in written] == [r.to_dict() for r in results]
    assert written[0].device_report["host"]["logical_cores"] == os.cpu_count()


@pytest.mark.slow
def test_isolated_sweep_runs_each_configuration_in_a_child(tmp_path):
    results = tiny_sweep(tmp_path, batch_sizes=[2, 3], isolate=True)
    assert [r.status for r in results] == ["ok", "ok"]
    assert [r.stats["samples"] for r in results] == [4, 6]
    # The first child's device report serves the whole sweep: stored once.
    assert results[0].device_report and results[0].device_report == results[1].device_report
    assert all(r.versions["kerasbench"] for r in results)
    with open(tmp_path / "box.jsonl") as f:
        kinds = [json.loads(line).get("kind") for line in f]
    assert kinds == ["device_report", None, None]


def test_plan_order_and_validation():
    configs = plan(["lenet", "alexnet"], batch_sizes=[32, 16, 32], precisions=["fp32"],
                   devices=[None, "CPU"], modes=["train"], steps=7)
    assert [(c.model, c.batch_size, c.device) for c in configs] == [
        ("lenet", 16, None), ("lenet", 32, None), ("lenet", 16, "cpu"), ("lenet", 32, "cpu"),
        ("alexnet", 16, None), ("alexnet", 32, None), ("alexnet", 16, "cpu"),
        ("alexnet", 32, "cpu"),
    ]
    assert all(isinstance(c, RunConfig) and c.steps == 7 for c in configs)
    one = plan(["lenet"], batch_size=8, backends=["jax", "torch"])
    assert [(c.backend, c.batch_size) for c in one] == [("jax", 8), ("torch", 8)]
    assert [c.batch_size for c in plan(["lenet"])] == [16, 32, 64]
    with pytest.raises(TypeError, match="got both `batch_size` and `batch_sizes`"):
        plan(["lenet"], batch_size=8, batch_sizes=[4])


def test_a_sweep_is_a_list_of_run_configs(tmp_path):
    configs = [RunConfig(model="lenet", batch_size=b, **TINY) for b in (2, 3)]
    results = sweep(configs, out=str(tmp_path), machine="box", isolate=False, progress=False)
    assert [r.requested for r in results] == configs
    assert [r.config.image_size for r in results] == [8, 8]
    with pytest.raises(TypeError, match="unexpected keyword argument 'steps'"):
        sweep(configs, steps=3)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"models": []}, "`models` must be a non-empty list. Received: models=[]"),
        ({"models": ["lenet", "resnt50"]}, "Did you mean 'resnet50'?"),
        ({"batch_sizes": [0]}, "`batch_size` must be a positive integer. Received: batch_size=0"),
        ({"precisions": ["fp8"]}, "Received: precision='fp8'"),
        ({"devices": ["tpu"]}, "`device` must be 'cpu', 'gpu', 'gpu:N' or None. "
                               "Received: device='tpu'"),
        ({"modes": ["eval"]}, "Received: mode='eval'"),
        ({"timeout_s": True, "isolate": True}, "Received: timeout_s=True"),
        ({"timeout_s": float("inf"), "isolate": True}, "Received: timeout_s=inf"),
        ({"timeout_s": 5}, "`timeout_s` needs isolated runs"),
        ({"image_size": -5}, "Received: image_size=-5"),
        ({"num_classes": 0}, "Received: num_classes=0"),
        ({"seed": "x"}, "Received: seed='x'"),
        ({"steps_per_execution": 0}, "Received: steps_per_execution=0"),
        ({"jit_compile": "yes"}, "Received: jit_compile='yes'"),
        ({"out": ""}, "`out` must be a non-empty path. Received: out=''"),
        ({"machine": "a\nb"}, "`machine` must be a non-empty string without line breaks"),
        ({"batchsize": 3}, "Did you mean 'batch_size'"),
        ({"repeats": 0}, "`repeats` must be a positive integer. Received: repeats=0"),
        ({"repeats": 2.0}, "Received: repeats=2.0"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        tiny_sweep(tmp_path / "out", **kwargs)
    assert not os.path.exists(tmp_path / "out")


def test_models_registered_in_main_are_refused_for_isolated_runs(tmp_path):
    code = ("import kerasbench\n"
            "@kerasbench.register_model('mine', image_size=8, min_image_size=1, params=1, "
            "description='d', source='s')\n"
            "def mine(input_shape, num_classes, data_format): pass\n"
            f"kerasbench.sweep(['mine'], out={str(tmp_path)!r}, progress=False)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert "'mine', registered in __main__" in out.stderr and "isolate=False" in out.stderr


def test_output_folder_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"`out` must be a folder or .jsonl file that can be "
                                         r"written \(not a link\). Received: out="):
        tiny_sweep(blocker / "results")


def test_results_file_that_is_a_link_is_refused(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("someone else's file\n")
    (tmp_path / "box.jsonl").symlink_to(target)
    with pytest.raises(ValueError, match=r"\(not a link\)"):
        tiny_sweep(tmp_path)
    assert target.read_text() == "someone else's file\n"


# ------------------------------------------------- failures are results


def test_oom_and_errors_are_recorded_and_the_sweep_goes_on(tmp_path, faulty):
    results = tiny_sweep(tmp_path, models=["boom", "oom_above_2", "lenet"],
                         batch_sizes=[2, 8])
    assert [(r.model, r.batch_size, r.status) for r in results] == [
        ("boom", 2, "error"), ("boom", 8, "error"), ("oom_above_2", 2, "ok"),
        ("oom_above_2", 8, "oom"), ("lenet", 2, "ok"), ("lenet", 8, "ok"),
    ]
    assert results[0].error == "RuntimeError: boom" and results[0].error_type == "RuntimeError"
    assert "out of memory allocating a batch of 8" in results[3].error
    assert results[3].stats == {} and results[3].device == "cpu"
    assert results[3].device_report is not None
    assert [r["status"] for r in lines(tmp_path / "box.jsonl")] == \
        ["error", "error", "ok", "oom", "ok", "ok"]


def test_oom_retry_halves_the_batch_until_it_fits(tmp_path, faulty):
    results = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[16], oom_retry=True)
    assert [(r.batch_size, r.status) for r in results] == [
        (16, "oom"), (8, "oom"), (4, "oom"), (2, "ok")]
    assert {r.requested.batch_size for r in results} == {16}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_inside_a_run_still_stops_the_sweep(tmp_path, faulty):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            tiny_sweep(tmp_path, models=["swallowed_ctrl_c"], batch_sizes=[2, 4, 8])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [r["config"]["batch_size"] for r in lines(tmp_path / "box.jsonl")] == [2, 4]


def test_resume_matches_machine_and_every_setting(tmp_path, faulty):
    assert [r.status for r in tiny_sweep(tmp_path, models=["oom_above_2"],
                                         batch_sizes=[2, 4])] == ["ok", "oom"]
    again = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[2, 4, 1], resume=True)
    assert [r.batch_size for r in again] == [1]  # 2 ran, 4 failed: both in the file
    retried = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[2, 4], resume=True,
                         retry_failed=True)
    assert [(r.batch_size, r.status) for r in retried] == [(4, "oom")]
    # Another machine sharing the file, or other settings, run again.
    other = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[2], resume=True,
                       out=str(tmp_path / "box.jsonl"), machine="other")
    assert [r.machine for r in other] == ["other"]
    longer = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[2], resume=True,
                        steps=3)
    assert [r.stats["steps"] for r in longer] == [3]
    keys = finished_keys(tmp_path / "box.jsonl", "box")
    assert RunConfig(model="oom_above_2", batch_size=2, **TINY).key() in keys


def test_repeats_run_in_rounds_and_resume_runs_only_the_missing_ones(tmp_path, capsys):
    results = tiny_sweep(tmp_path, batch_sizes=[2, 3], repeats=2, progress=True)
    # Rounds: every configuration once, then again.
    assert [r.batch_size for r in results] == [2, 3, 2, 3]
    assert all(r.ok for r in results)
    out = capsys.readouterr().out
    assert "[3/4] lenet train bs2 fp32 auto (run 2 of 2): running" in out
    assert re.search(r"\[4/4\] lenet train bs3 fp32 cpu \(run 2 of 2\): [\d.]+ images/sec",
                     out)
    key = RunConfig(model="lenet", batch_size=2, **TINY).key()
    from kerasbench._runs.sweep import finished_counts
    assert finished_counts(tmp_path / "box.jsonl", "box")[key] == 2
    # A third repeat runs once more per configuration; asking for two again, nothing.
    third = tiny_sweep(tmp_path, batch_sizes=[2, 3], repeats=3, resume=True)
    assert [r.batch_size for r in third] == [2, 3]
    assert tiny_sweep(tmp_path, batch_sizes=[2, 3], repeats=3, resume=True) == []


def test_a_repeat_counts_once_however_many_oom_retries_it_took(tmp_path, faulty):
    from kerasbench._runs.sweep import finished_counts

    first = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[4], oom_retry=True)
    assert [(r.batch_size, r.status) for r in first] == [(4, "oom"), (2, "ok")]
    key = RunConfig(model="oom_above_2", batch_size=4, **TINY).key()
    assert finished_counts(tmp_path / "box.jsonl", "box") == {key: 1}
    assert finished_counts(tmp_path / "box.jsonl", "box", retry_failed=True) == {key: 1}
    again = tiny_sweep(tmp_path, models=["oom_above_2"], batch_sizes=[4], oom_retry=True,
                       repeats=2, resume=True)
    assert [(r.batch_size, r.status) for r in again] == [(4, "oom"), (2, "ok")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "model,status,error_type,message",
    [
        ("oom_above_2", "oom", "MemoryError", "out of memory allocating a batch of 4"),
        ("boom", "error", "RuntimeError", "RuntimeError: boom"),
        ("killed", "oom", "signal", "killed by SIGKILL"),
        ("segfault", "error", "signal", "killed by SIGSEGV"),
        ("garbage", "error", "crash", "exited with code 3 without a result"),
    ],
)
def test_child_failures_are_classified(tmp_path, faulty, model, status, error_type, message):
    [result] = tiny_sweep(tmp_path, models=[model], batch_sizes=[4], isolate=True)
    assert (result.status, result.error_type) == (status, error_type)
    assert message in result.error
    assert read_results(tmp_path / "box.jsonl")[0].status == status
    if model == "garbage":
        assert "not utf-8" in result.error  # the log's tail, decoded whatever its bytes


@pytest.mark.slow
def test_child_timeout(tmp_path, faulty):
    t = time.monotonic()
    [result] = tiny_sweep(tmp_path, models=["hangs"], batch_sizes=[2], isolate=True,
                          timeout_s=8)
    assert time.monotonic() - t < 60
    assert result.status == "error" and result.error == "timed out after 8 s"
    assert result.error_type == "timeout"


@pytest.mark.slow
def test_isolated_sweep_never_imports_a_framework(tmp_path):
    code = ("import sys, kerasbench\n"
            f"r = kerasbench.sweep(['lenet'], batch_sizes=[2], steps=2, warmup_steps=1, "
            f"image_size=8, num_classes=3, out={str(tmp_path)!r}, progress=False)\n"
            "assert r[0].ok, r[0].error\n"
            "print([m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_worker_answers_a_structured_failure_without_running(tmp_path):
    """The protocol end to end: a bad request gets an answer, never text to parse."""
    answer = tmp_path / "answer.json"
    request = json.dumps({"protocol": 1, "config": RunConfig(model="resnt50").to_dict(),
                          "machine": "box", "modules": []})
    proc = subprocess.Popen([sys.executable, "-m", "kerasbench._runs.worker", str(answer)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdin.write(request + "\n")
    proc.stdin.flush()  # kept open: the worker ends itself when it closes
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    proc.stdin.close()
    got = json.loads(answer.read_text())
    assert (got["status"], got["error_type"]) == ("error", "ValueError")
    assert "Did you mean 'resnet50'" in got["message"]
    assert BenchmarkResult.from_dict(got["result"]).requested.model == "resnt50"


@pytest.mark.slow
def test_worker_ends_when_its_parent_goes_away(tmp_path):
    """Closing the worker's stdin (what a parent's death does) ends it at once."""
    proc = subprocess.Popen([sys.executable, "-m", "kerasbench._runs.worker",
                             str(tmp_path / "answer.json")], stdin=subprocess.PIPE)
    proc.stdin.write(json.dumps({"protocol": 1, "config": RunConfig(model="lenet").to_dict(),
                                 "machine": "box", "modules": ["faulty_models"]}).encode())
    proc.stdin.close()
    assert proc.wait(timeout=60) != 0 and not (tmp_path / "answer.json").exists()


# ---------------------------------------------------- killed and resumed

# As `kerasbench sweep`, with Ctrl-C raising KeyboardInterrupt even where the test
# runner ignores SIGINT (background jobs, nohup, some CI runners): a child
# inherits an ignored SIGINT, and the test relies on the terminal's behaviour.
SWEEP_CMD = [sys.executable, "-c",
             "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from kerasbench._cli import main; sys.exit(main(sys.argv[1:]))",
             "sweep", "--models", "lenet",
             "--batch-sizes", "1,2,3,4,5,6,7,8", "--steps", "2", "--warmup-steps", "1",
             "--image-size", "8", "--num-classes", "3", "--machine", "box", "--no-isolate"]


def wait_for_lines(path, n, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and len(lines(path)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("sweep produced no results in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_sweep_keeps_results_and_resumes(tmp_path, sig):
    out = tmp_path / "box.jsonl"
    proc = subprocess.Popen(SWEEP_CMD + ["--out", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_lines(out, 2, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130)
    kept = read_results(out)
    assert 2 <= len(kept) < 8 and all(r.ok for r in kept)
    done = [r.batch_size for r in kept]
    assert done == sorted(done) == list(range(1, len(done) + 1))

    rerun = subprocess.run(SWEEP_CMD + ["--out", str(tmp_path), "--resume", "--quiet"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    final = read_results(out)
    assert sorted(r.batch_size for r in final) == [1, 2, 3, 4, 5, 6, 7, 8]  # nothing twice
    assert f"{8 - len(kept)} of {8 - len(kept)} runs succeeded" in rerun.stdout


def _workers_of(pid):
    """Process ids of the kerasbench workers whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"kerasbench._runs.worker" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.slow
def test_isolated_child_dies_with_the_sweep(tmp_path, faulty):
    script = (f"import kerasbench, faulty_models\n"
              f"kerasbench.sweep(['hangs'], batch_sizes=[2], out={str(tmp_path)!r}, "
              "progress=False)\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not _workers_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    [child] = _workers_of(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived the sweep")


# ---------------------------------------------------------- result files


def result(i, padding=0):
    return BenchmarkResult(config=RunConfig(model="lenet", batch_size=i, device="cpu"),
                           stats={"images_per_sec": float(i)}, error="x" * padding or None)


def _append_many(args):
    path, start, count = args
    for i in range(start + 1, start + count + 1):
        append_result(path, result(i, padding=20_000))


def test_concurrent_writers_never_corrupt_the_file(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(path, 1000 * w, 25) for w in range(4)])
    got = sorted(r.batch_size for r in read_results(path))
    assert got == sorted(1000 * w + i for w in range(4) for i in range(1, 26))


def test_truncated_last_line_is_skipped_then_mended(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, result(1))
    with open(path, "a") as f:
        f.write(result(2).to_json()[:40])  # a writer killed mid-line
    with pytest.warns(UserWarning, match=r"r.jsonl:2: skipping the last line"):
        assert [r.batch_size for r in read_results(path)] == [1]
    with pytest.warns(UserWarning, match="removed a last line that was cut short"):
        append_result(path, result(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.batch_size for r in read_results(path)] == [1, 3]


def test_missing_newline_on_a_complete_line_is_added(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(result(1).to_json())
    append_result(path, result(2))
    assert [r.batch_size for r in read_results(path)] == [1, 2]


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"model": "lenet"}\n', r"r.jsonl:1: not a valid result: A result needs the fields"),
        ("garbage\n" + result(1).to_json() + "\n", r"r.jsonl:1: not a valid result"),
        (result(1).to_json() + "\n[1, 2]\n", r"r.jsonl:2: not a valid result"),
        (result(1).to_json().replace('"ok"', '"maybe"') + "\n", r"`status` must be one of"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "r.jsonl"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match=message):
        read_results(path)


def test_missing_paths(tmp_path):
    with pytest.raises(ResultsFileError, match="no such file or folder"):
        read_results(tmp_path / "nope.jsonl")
    with pytest.raises(ResultsFileError, match=r"no results files \(\*.jsonl\)"):
        read_results(tmp_path)


# -------------------------------------------------------------------- CLI


def test_cli_sweep_report_and_compare(tmp_path, capsys):
    argv = ["sweep", "--models", "lenet,trivial", "--batch-sizes", "2,4", "--precision",
            "fp32,bf16", "--steps", "2", "--warmup-steps", "1", "--image-size", "8",
            "--num-classes", "3", "--out", str(tmp_path), "--machine", "box", "--no-isolate"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\[8/8\] trivial train bs4 bf16 cpu: [0-9.]+ images/sec", out, re.M)
    assert "| Batch size | LeNet | Trivial |" in out
    assert re.search(r"^\| 4 \| \d+ \| \d+ \|$", out, re.M)
    assert "8 of 8 runs succeeded" in out

    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "report.md").read_text().startswith("#")
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["model"] for r in rows} == {"lenet", "trivial"}
    assert all(float(r["images_per_sec"]) > 0 and r["samples"] == str(2 * int(r["batch_size"]))
               for r in rows)
    png = (tmp_path / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "wrote" in out

    assert main(["compare", str(tmp_path / "box.jsonl"), "--baseline", "gtx1050ti-fp16",
                 "--ignore", "precision"]) == 0
    out = capsys.readouterr().out
    assert "gtx1050ti-fp16 (published)" in out and "Only in some columns" in out
    assert "Trivial, train" in out

    assert main(["compare", str(tmp_path / "box.jsonl"), "--baseline", "gtx1050ti-fp16",
                 "--ignore", "precision", "--models", "lenet,resnet50"]) == 0
    out = capsys.readouterr().out
    assert "LeNet, train" in out and "ResNet-50, train" in out
    assert "Trivial" not in out and "AlexNet" not in out
    assert main(["compare", str(tmp_path / "box.jsonl"), "--models", "lenett"]) == 2
    assert "Did you mean 'lenet'" in capsys.readouterr().err


def test_cli_repeats_show_the_mean_and_the_ratio_interval(tmp_path, capsys):
    base = ["sweep", "--models", "lenet", "--batch-sizes", "2", "--steps", "3",
            "--warmup-steps", "1", "--image-size", "8", "--num-classes", "3",
            "--no-isolate", "--repeats", "2"]
    for machine in ("a", "b"):
        assert main(base + ["--out", str(tmp_path / f"{machine}.jsonl"),
                            "--machine", machine]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^\| 2 \| [\d.]+ \+/- [\d.>]+% \(2 runs\) \|$", out, re.M)
        assert "2 of 2 runs succeeded" in out
    assert main(["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]) == 0
    out = capsys.readouterr().out
    # Two tiny runs a side: Fieller's interval exists only when the baseline's
    # mean is clearly above zero (t_{0.975, 1} = 12.7), so it may be left out.
    row = re.search(r"^\| LeNet \| train \| 2 \| fp32 \| (.*) \|$", out, re.M).group(1)
    # ... then each side's MFU (and achieved TFLOP/s).
    assert re.fullmatch(r"[\d.]+ \+/- [\d.>]+% \(2 runs\) \| [\d.]+ \+/- [\d.>]+% "
                        r"\(2 runs\) \| [\d.]+x( \[[\d.]+, [\d.]+\]( n\.s\.)?)?"
                        r"( \| [\d.]+% \([\d.]+ TFLOP/s\)){2}", row), row
    assert "across them (the mean of the runs, Student's t)" in out


def test_cli_sweep_exit_code_says_something_failed(tmp_path, capsys, faulty):
    assert main(["sweep", "--models", "lenet,boom", "--batch-sizes", "2", "--steps", "2",
                 "--image-size", "8", "--num-classes", "3", "--out", str(tmp_path),
                 "--no-isolate", "--quiet"]) == 1
    assert "1 of 2 runs succeeded; 1 failed" in capsys.readouterr().out


def test_cli_timeout_without_isolation_is_refused(tmp_path, capsys):
    assert main(["sweep", "--models", "lenet", "--out", str(tmp_path), "--no-isolate",
                 "--timeout", "5"]) == 2
    assert "`timeout_s` needs isolated runs" in capsys.readouterr().err


def test_csv_export_has_flat_figures_and_failures(tmp_path):
    ok = result(4)
    ok.stats.update(images_per_sec_sem=0.5, step_time_p99_s=0.25, samples=40)
    ok.config = ok.config.replace(image_size=32, optimizer="sgd")
    ok.versions = {"keras": "3.15.1", "tensorflow-cpu": "2.21.0"}
    failed = BenchmarkResult(config=RunConfig(model="vgg16", batch_size=64, precision="fp16",
                                              device="gpu:0"),
                             status="oom", error="OOM when allocating")
    path = write_csv([ok, failed], tmp_path / "sub" / "r.csv")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        first, second = list(reader)
    assert (first["model"], first["images_per_sec"], first["images_per_sec_sem"]) == \
        ("lenet", "4.0", "0.5")
    assert (first["step_time_p99_s"], first["samples"], first["image_size"]) == ("0.25", "40", "32")
    assert (first["keras"], first["tensorflow"]) == ("3.15.1", "2.21.0")
    assert (second["status"], second["error"], second["images_per_sec"]) == \
        ("oom", "OOM when allocating", "")


# ------------------------------------------------- crafted worker answers


def _crafted_worker(tmp_path, body):
    """A worker program that reads the request and writes ``body`` (bytes) as its answer."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import sys\n"
        "sys.stdin.readline()\n"
        f"open(sys.argv[1], 'wb').write({body!r})\n"
        "sys.stderr.buffer.write(b'\\xff\\xfe bytes that are not utf-8\\n')\n")
    return (sys.executable, str(script))


OK_RESULT = BenchmarkResult(config=RunConfig(model="lenet", device="cpu"),
                            stats={"images_per_sec": 5.0}).to_dict()


@pytest.mark.parametrize(
    "answer,message",
    [
        (b"[1, 2]", "answer from the run has the wrong shape: [1, 2]"),
        (b"\xff\xfe not json", "answer from the run is not JSON"),
        (b'{"protocol": 1, "status": "ok", "result": "x"}', "wrong shape"),
        (b'{"protocol": 7, "status": "ok", "result": {}}', "wrong shape"),
        (json.dumps({"protocol": 1, "status": "ok", "result": {**OK_RESULT, "stats": {}}})
         .encode(), "the run reported success without an images/sec figure"),
        (json.dumps({"protocol": 1, "status": "error", "result": OK_RESULT}).encode(),
         "answered status 'error' with a result of status 'ok'"),
        (json.dumps({"protocol": 1, "status": "ok", "result": {"config": []}}).encode(),
         "unreadable result from the run"),
        (b"[" * 100_000, "answer from the run is not JSON"),
    ],
)
def test_a_bad_answer_is_a_recorded_failure_never_a_crash(tmp_path, answer, message):
    from kerasbench._runs import worker

    result = worker.call(RunConfig(model="lenet"), machine="box",
                         command=_crafted_worker(tmp_path, answer))
    assert (result.status, result.error_type) == ("error", "protocol")
    assert message in result.error and result.machine == "box"


def test_a_good_crafted_answer_is_taken_as_it_is(tmp_path):
    from kerasbench._runs import worker

    answer = json.dumps({"protocol": 1, "status": "ok", "result": OK_RESULT}).encode()
    result = worker.call(RunConfig(model="lenet"), machine="box",
                         command=_crafted_worker(tmp_path, answer))
    assert result.ok and result.images_per_sec == 5.0
