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

from kerasbench._runs import reference as _reference
from kerasbench._runs import sweep as _sweep
from kerasbench._cli import main
from kerasbench._results.result import (
    CSV_COLUMNS,
    BenchmarkResult,
    ResultsFileError,
    append_result,
    read_results,
    write_csv,
)
from kerasbench._runs.sweep import Configuration, plan, sweep

TINY = {"steps": 2, "warmup_steps": 1, "image_size": 8, "num_classes": 3}


def tiny_sweep(tmp_path, **kwargs):
    args = dict(TINY, out=str(tmp_path), machine="box", isolate=False, progress=False)
    args.update(kwargs)
    models = args.pop("models", ["lenet"])
    return sweep(models, **args)


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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
    # Each child collected its own device report and versions.
    assert all(r.device_report and r.versions["kerasbench"] for r in results)


def test_plan_order_and_validation():
    configs = plan(["lenet", "alexnet"], [32, 16, 32], ["fp32"], [None, "CPU"], ["train"])
    assert [c.key for c in configs] == [
        ("lenet", "train", 16, "fp32", "auto"), ("lenet", "train", 32, "fp32", "auto"),
        ("lenet", "train", 16, "fp32", "cpu"), ("lenet", "train", 32, "fp32", "cpu"),
        ("alexnet", "train", 16, "fp32", "auto"), ("alexnet", "train", 32, "fp32", "auto"),
        ("alexnet", "train", 16, "fp32", "cpu"), ("alexnet", "train", 32, "fp32", "cpu"),
    ]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"models": []}, "`models` must be a non-empty list. Received: models=[]"),
        ({"models": ["lenet", "resnt50"]}, "Did you mean 'resnet50'?"),
        ({"batch_sizes": [0]}, "`batch_size` must be a positive integer. Received: batch_size=0"),
        ({"precisions": ["fp8"]}, "Received: precision='fp8'"),
        ({"devices": ["tpu"]}, "`device` must be 'cpu', 'gpu' or 'gpu:N'. Received: device='tpu'"),
        ({"modes": ["eval"]}, "Received: mode='eval'"),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, monkeypatch, kwargs, message):
    calls = []
    monkeypatch.setattr(_reference, "reference", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_sweep(tmp_path, **kwargs)
    assert calls == [] and not os.listdir(tmp_path)


def test_output_folder_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="`out` must be a folder or .jsonl file that can be "
                                         "written. Received: out="):
        tiny_sweep(blocker / "results")


# ------------------------------------------------- failures are results


def fake_reference(fail):
    """A stand-in for reference() that fails for some configurations."""

    def run(model, *, batch_size, device_report, machine, **kwargs):
        error = fail(model, batch_size)
        if error is not None:
            raise error
        return BenchmarkResult(model=model, mode=kwargs["mode"], batch_size=batch_size,
                               precision=kwargs["precision"], device="cpu",
                               stats={"images_per_sec": 10.0 * batch_size},
                               config={}, machine=machine)

    return run


def test_oom_and_errors_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def fail(model, batch):
        if model == "alexnet":
            return RuntimeError("boom")
        if batch >= 4:
            return RuntimeError("ResourceExhaustedError: OOM when allocating tensor")
        return None

    monkeypatch.setattr(_reference, "reference", fake_reference(fail))
    results = tiny_sweep(tmp_path, models=["alexnet", "lenet"], batch_sizes=[2, 8])
    assert [(r.model, r.batch_size, r.status) for r in results] == [
        ("alexnet", 2, "error"), ("alexnet", 8, "error"), ("lenet", 2, "ok"), ("lenet", 8, "oom"),
    ]
    assert results[0].error == "RuntimeError: boom"
    assert "OOM when allocating" in results[3].error and results[3].stats == {}
    assert results[3].device == "cpu" and results[3].device_report is not None
    assert [r["status"] for r in lines(tmp_path / "box.jsonl")] == ["error", "error", "ok", "oom"]


def test_oom_retry_halves_the_batch_until_it_fits(tmp_path, monkeypatch):
    def fail(model, batch):
        return MemoryError("out of memory") if batch > 2 else None

    monkeypatch.setattr(_reference, "reference", fake_reference(fail))
    results = tiny_sweep(tmp_path, batch_sizes=[16], oom_retry=True)
    assert [(r.batch_size, r.status) for r in results] == [
        (16, "oom"), (8, "oom"), (4, "oom"), (2, "ok")]
    assert {r.config["requested_batch_size"] for r in results} == {16}


class _InterruptInDel:
    """Ctrl-C landing in a ``__del__``: Python prints the KeyboardInterrupt and ignores it."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_ctrl_c_swallowed_inside_a_run_still_stops_the_sweep(tmp_path, monkeypatch):
    def fail(model, batch):
        if batch == 4:
            _InterruptInDel()  # collected at once; the interrupt is swallowed there
        return None

    monkeypatch.setattr(_reference, "reference", fake_reference(fail))
    with pytest.raises(KeyboardInterrupt):
        tiny_sweep(tmp_path, batch_sizes=[2, 4, 8])
    assert [r["batch_size"] for r in lines(tmp_path / "box.jsonl")] == [2, 4]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_resume(tmp_path, monkeypatch):
    failing = {"on": True}

    def fail(model, batch):
        return RuntimeError("flaky") if failing["on"] and batch == 4 else None

    monkeypatch.setattr(_reference, "reference", fake_reference(fail))
    assert [r.status for r in tiny_sweep(tmp_path, batch_sizes=[2, 4])] == ["ok", "error"]
    failing["on"] = False
    again = tiny_sweep(tmp_path, batch_sizes=[2, 4, 8], resume=True)
    assert [r.batch_size for r in again] == [8]  # 2 ran, 4 failed: both in the file
    retried = tiny_sweep(tmp_path, batch_sizes=[2, 4, 8], resume=True, retry_failed=True)
    assert [(r.batch_size, r.status) for r in retried] == [(4, "ok")]


def failing_child(monkeypatch, code):
    """Makes isolated runs execute `code` in a real child process."""
    monkeypatch.setattr(_sweep._Runner, "_command",
                        lambda self, config: [sys.executable, "-c", code])


@pytest.mark.parametrize(
    "code,status,message",
    [
        ("import sys; sys.stderr.write('noise\\nkerasbench: error: ResourceExhaustedError: OOM "
         "when allocating tensor\\n'); sys.exit(1)", "oom", "ResourceExhaustedError: OOM"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "oom", "killed by SIGKILL"),
        ("import sys; sys.stderr.write('kerasbench: error: ValueError: bad\\n'); sys.exit(2)",
         "error", "ValueError: bad"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "error", "killed by SIGSEGV"),
        ("print('not json')", "error", "unreadable result"),
    ],
)
def test_child_failures_are_classified(tmp_path, monkeypatch, code, status, message):
    failing_child(monkeypatch, code)
    [result] = tiny_sweep(tmp_path, batch_sizes=[2], isolate=True)
    assert result.status == status and message in result.error
    assert read_results(tmp_path / "box.jsonl")[0].status == status


def test_child_timeout(tmp_path, monkeypatch):
    failing_child(monkeypatch, "import time; time.sleep(60)")
    t = time.monotonic()
    [result] = tiny_sweep(tmp_path, batch_sizes=[2], isolate=True, timeout_s=1)
    assert time.monotonic() - t < 30
    assert result.status == "error" and result.error == "timed out after 1 s"


# ---------------------------------------------------- killed and resumed

SWEEP_CMD = [sys.executable, "-m", "kerasbench", "sweep", "--models", "lenet",
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


@pytest.mark.slow
def test_isolated_child_dies_with_the_sweep(tmp_path, monkeypatch):
    marker = tmp_path / "child.pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    script = (
        "import sys; from kerasbench._runs import sweep as _sweep\n"
        f"_sweep._Runner._command = lambda self, c: [sys.executable, '-c', {code!r}]\n"
        f"_sweep.sweep(['lenet'], batch_sizes=[2], out={str(tmp_path)!r}, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(marker.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
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
    return BenchmarkResult(model="lenet", mode="train", batch_size=i, precision="fp32",
                           device="cpu", stats={"images_per_sec": float(i)},
                           config={"padding": "x" * padding})


def _append_many(args):
    path, start, count = args
    for i in range(start, start + count):
        append_result(path, result(i, padding=20_000))


def test_concurrent_writers_never_corrupt_the_file(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(path, 1000 * w, 25) for w in range(4)])
    got = sorted(r.batch_size for r in read_results(path))
    assert got == sorted(1000 * w + i for w in range(4) for i in range(25))


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


def test_cli_sweep_exit_code_says_something_failed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_reference, "reference",
                        fake_reference(lambda m, b: RuntimeError("x") if b == 4 else None))
    assert main(["sweep", "--models", "lenet", "--batch-sizes", "2,4", "--steps", "2",
                 "--out", str(tmp_path), "--no-isolate", "--quiet"]) == 1
    assert "1 of 2 runs succeeded; 1 failed" in capsys.readouterr().out


def test_configuration_label():
    assert Configuration("lenet", "train", 2, "fp32", None).label() == "lenet train bs2 fp32 auto"


def test_csv_export_has_flat_figures_and_failures(tmp_path):
    ok = result(4)
    ok.stats.update(images_per_sec_sem=0.5, step_time_p99_s=0.25, samples=40)
    ok.config.update(image_size=32, optimizer="sgd")
    ok.versions = {"keras": "3.15.1", "tensorflow-cpu": "2.21.0"}
    failed = BenchmarkResult(model="vgg16", mode="train", batch_size=64, precision="fp16",
                             device="gpu:0", status="oom", error="OOM when allocating")
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
