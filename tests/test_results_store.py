"""The results file: its format (device reports stored once), concurrent
appends, and each fault for real: short writes, a full file size limit,
symbolic links, cut-off and foreign last lines, FIFOs and devices.

Nothing here imports TensorFlow or Keras.
"""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from kerasbench._results import BenchmarkResult, ResultsFileError, append_result, read_results
from kerasbench._results.store import _append, device_report_id
from kerasbench._runs.config import RunConfig

REPORT_A = {"host": {"cpu_model": "CPU A", "logical_cores": 2}, "accelerators": []}
REPORT_B = {"host": {"cpu_model": "CPU B", "logical_cores": 8}, "accelerators": []}


def make(batch_size, report=REPORT_A, padding=0):
    return BenchmarkResult(
        config=RunConfig(model="lenet", batch_size=batch_size, device="cpu"),
        stats={"images_per_sec": float(batch_size), "notes": ["x" * padding]},
        device_report=report, machine="box", finished_at="2025-01-01T00:00:00Z")


def lines_of(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines() if line.strip()]


def kinds(path):
    return [d.get("kind", "result") for d in lines_of(path)]


# --------------------------------------------------------------------- format


def test_device_report_is_written_once_per_distinct_report(tmp_path):
    path = tmp_path / "box.jsonl"
    written = [make(1), make(2), make(3, REPORT_B), make(4), make(5, None)]
    for r in written:
        append_result(path, r)
    assert kinds(path) == ["device_report", "result", "result", "device_report", "result",
                           "result", "result"]
    d = lines_of(path)
    assert d[0] == {"kind": "device_report", "id": device_report_id(REPORT_A),
                    "device_report": REPORT_A}
    assert d[3]["id"] == device_report_id(REPORT_B) != d[0]["id"]
    assert [x.get("device_report_id") for x in d if "kind" not in x] == [
        d[0]["id"], d[0]["id"], d[3]["id"], d[0]["id"], None]
    assert all("device_report" not in x for x in d[1:3] + d[4:6])
    assert d[6]["device_report"] is None
    assert [r.to_dict() for r in read_results(path)] == [r.to_dict() for r in written]


def test_exact_lines(tmp_path):
    path = tmp_path / "box.jsonl"
    append_result(path, make(1, {"host": {"cpu_model": "X"}}))
    report_line, result_line = path.read_text().splitlines()
    report_id = hashlib.sha256(b'{"host":{"cpu_model":"X"}}').hexdigest()[:16]
    assert report_line == ('{"kind": "device_report", "id": "%s", "device_report": '
                           '{"host": {"cpu_model": "X"}}}' % report_id)
    assert result_line.startswith('{"config": {"model": "lenet", "mode": "train", '
                                  '"batch_size": 1, ')
    assert f'"params": null, "device_report_id": "{report_id}", "versions": {{}}, ' \
        in result_line
    assert result_line.endswith('"source": "measured", "citation": null, "schema": 2}')


def test_the_file_is_much_smaller_than_with_inline_reports(tmp_path):
    # A report of about 3 KB, as a real one (a result line without it is
    # under 1 KB, and grows as RunConfig gains fields).
    report = {"host": {"cpu_model": "AMD EPYC", "isa": ["AVX2"] * 400}}
    path = tmp_path / "box.jsonl"
    for i in range(1, 21):
        append_result(path, make(i, report))
    inline = sum(len(make(i, report).to_json()) + 1 for i in range(1, 21))
    assert os.path.getsize(path) < inline / 3


def test_schema_1_lines_with_inline_reports_still_read(tmp_path):
    old = {"model": "alexnet", "mode": "train", "batch_size": 16, "precision": "fp32",
           "device": "cpu", "status": "ok", "error": None, "stats": {"images_per_sec": 33.7},
           "config": {"optimizer": "sgd", "backend": "tensorflow", "steps": 10,
                      "requested_batch_size": 32, "requested_device": None},
           "device_report": REPORT_A, "machine": "vm", "reference": "a post",
           "source": "published", "schema": 1}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(old) + "\n")
    append_result(path, make(2))  # a new line after an old one
    first, second = read_results(path)
    assert (first.model, first.batch_size, first.backend, first.citation) == \
        ("alexnet", 16, "tensorflow", "a post")
    assert first.requested.batch_size == 32 and first.device_report == REPORT_A
    assert second.device_report == REPORT_A
    assert kinds(path) == ["result", "device_report", "result"]


def test_the_docs_data_still_reads():
    data = os.path.join(os.path.dirname(__file__), "..", "docs", "data")
    results = read_results(data)
    assert len(results) == 48 + 9
    assert all(r.device_report["host"]["cpu_model"] for r in results)


def test_each_result_gets_its_own_copy_of_the_report(tmp_path):
    path = tmp_path / "box.jsonl"
    append_result(path, make(1))
    append_result(path, make(2))
    a, b = read_results(path)
    a.device_report["host"]["cpu_model"] = "changed"
    assert b.device_report == REPORT_A


@pytest.mark.parametrize("line,message", [
    ('{"kind": "device_report", "id": "x", "device_report": {}}\n'
     '{"config": {"model": "lenet"}, "status": "ok", "device_report_id": "y"}\n',
     r"r.jsonl:2: .*`device_report_id` 'y' names no device report line above"),
    ('{"config": {"model": "lenet"}, "status": "ok", "device_report_id": "x"}\n'
     '{"kind": "device_report", "id": "x", "device_report": {}}\n',
     r"r.jsonl:1: .*names no device report line above"),
    ('{"kind": "device_report", "id": 5, "device_report": {}}\n', r"r.jsonl:1: .*needs an `id`"),
    ('{"kind": "device_report", "id": "x", "device_report": []}\n', r"r.jsonl:1: .*`id`"),
    ('{"kind": "summary"}\n', r"r.jsonl:1: .*unknown kind of line\. Received: kind='summary'"),
])
def test_broken_device_report_ids_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    path.write_text(line)
    with pytest.raises(ResultsFileError, match=message):
        read_results(path)


# ----------------------------------------------------------------- concurrency


def _append_many(args):
    path, start, count = args
    for i in range(start, start + count):
        append_result(path, make(i, REPORT_A if i % 2 else REPORT_B, padding=5_000))


def test_concurrent_writers_write_each_report_once_and_never_interleave(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_append_many, [(path, 1000 * w + 1, 30) for w in range(4)])
    results = read_results(path)
    assert sorted(r.batch_size for r in results) == \
        sorted(1000 * w + i for w in range(4) for i in range(1, 31))
    assert all(r.device_report == (REPORT_A if r.batch_size % 2 else REPORT_B)
               for r in results)
    assert kinds(path).count("device_report") == 2


# ----------------------------------------------------------------- short writes


def test_short_writes_are_completed(tmp_path):
    path = tmp_path / "r.jsonl"
    calls = []

    def seven_bytes_at_a_time(fd, data):
        calls.append(len(data))
        return os.write(fd, bytes(data[:7]))

    _append(str(path), make(1), seven_bytes_at_a_time)
    assert len(calls) > 20
    assert [r.batch_size for r in read_results(path)] == [1]


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    before = path.read_bytes()

    def half_then_disk_full(fd, data):
        if len(data) > 10:
            return os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=rf"Could not append a result to {path}: No space left "
                                      r"on device\. The file was cut back"):
        _append(str(path), make(2, REPORT_B), half_then_disk_full)
    assert path.read_bytes() == before

    def writes_nothing(fd, data):
        return 0

    with pytest.raises(OSError, match="stored no byte") as info:
        _append(str(path), make(3), writes_nothing)
    assert info.value.errno == 28
    assert path.read_bytes() == before
    append_result(path, make(4))
    assert [r.batch_size for r in read_results(path)] == [1, 4]


_FSIZE_CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    sys.path.insert(0, sys.argv[2])
    from test_results_store import make
    from kerasbench._results import append_result

    path = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    limit = os.path.getsize(path) + 100  # room for 100 bytes of the next line
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        append_result(path, make(2, {"host": {"cpu_model": "another"}}))
        print(json.dumps({"raised": None}))
    except OSError as e:
        print(json.dumps({"raised": str(e), "errno": e.errno}))
""")


def test_a_file_size_limit_cuts_no_line(tmp_path):
    """A real short write: RLIMIT_FSIZE lets the kernel store 100 bytes of
    the line, then refuses the rest (EFBIG), as a full disk or quota does."""
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    before = path.read_bytes()
    out = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(path),
                          os.path.dirname(__file__)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    outcome = json.loads(out.stdout)
    assert outcome["errno"] == 27  # EFBIG
    assert outcome["raised"].startswith(f"Could not append a result to {path}: File too large")
    assert path.read_bytes() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r.batch_size for r in read_results(path)] == [1]


# --------------------------------------------------------------------- links


def test_a_symbolic_link_at_the_results_path_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "box.jsonl"
    link.symlink_to(victim)
    with pytest.raises(OSError, match=rf"{link} is a symbolic link; results are appended "
                                      r"to a regular file only"):
        append_result(link, make(1))
    assert victim.read_text() == "precious\n"

    dangling = tmp_path / "other.jsonl"
    dangling.symlink_to(tmp_path / "created-through-the-link.jsonl")
    with pytest.raises(OSError, match="is a symbolic link"):
        append_result(dangling, make(1))
    assert not (tmp_path / "created-through-the-link.jsonl").exists()


def test_a_link_to_the_folder_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "results").symlink_to(tmp_path / "real")
    append_result(tmp_path / "results" / "box.jsonl", make(1))
    assert [r.batch_size for r in read_results(tmp_path / "real")] == [1]


# --------------------------------------------------------------- last lines


def test_a_cut_off_record_is_removed_before_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    with open(path, "ab") as f:
        f.write(b'{"kind": "device_report", "id": "12')  # killed while writing
    with pytest.warns(UserWarning, match=r"r.jsonl:3: skipping the last line"):
        assert [r.batch_size for r in read_results(path)] == [1]
    with pytest.warns(UserWarning, match=r"r.jsonl:3: removed a last line that was cut short"):
        append_result(path, make(2, REPORT_B))
    assert kinds(path) == ["device_report", "result", "device_report", "result"]
    assert [r.device_report for r in read_results(path)] == [REPORT_A, REPORT_B]


def test_a_line_cut_inside_a_character_is_removed(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write('{"config": {"model": "lenet", "machine": "Zü'.encode()[:-1])
    with pytest.warns(UserWarning, match="skipping the last line"):
        assert len(read_results(path)) == 1
    with pytest.warns(UserWarning, match="removed a last line"):
        append_result(path, make(2))
    assert path.read_bytes().startswith(whole)
    assert [r.batch_size for r in read_results(path)] == [1, 2]


def test_a_cut_off_report_line_is_written_again(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    data = path.read_bytes()
    path.write_bytes(data[:40])  # the report line, cut short
    with pytest.warns(UserWarning, match="removed a last line"):
        append_result(path, make(2))
    assert kinds(path) == ["device_report", "result"]
    assert read_results(path)[0].device_report == REPORT_A


@pytest.mark.parametrize("content", [
    b"hello\nworld",  # not ours at all
    b'{"a": 1}\n{"b": 2}\n{"c": ',  # JSON lines, but not kerasbench records
    b'{"kind": "device_report", "id": "1", "device_report": {}}\nnot json\n{"config": {',
    b'{"kind": "device_report", "id": "1", "device_report": {}}\n[1, 2]',
    b'{"kind": "device_report", "id": "1", "device_report": {}}\n{"status": "ok", "mo',
])
def test_a_last_line_that_is_not_a_kerasbench_record_is_left_alone(tmp_path, content):
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    number = content.count(b"\n") + 1
    with pytest.raises(ResultsFileError, match=rf"r.jsonl:{number}: the last line has no newline "
                                               r"and this file does not look like a kerasbench "
                                               r"results file; nothing was appended"):
        append_result(path, make(1))
    assert path.read_bytes() == content


def test_a_whole_last_record_without_newline_gets_one(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make(1))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    append_result(path, make(2))
    assert [r.batch_size for r in read_results(path)] == [1, 2]


# --------------------------------------------------------- not regular files


_READ_CHILD = textwrap.dedent("""
    import json, sys, warnings
    from kerasbench._results import read_results, ResultsFileError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = [r.batch_size for r in read_results(sys.argv[1])]
            error = None
        except ResultsFileError as e:
            got, error = None, str(e)
    print(json.dumps({"got": got, "error": error,
                      "warnings": [str(w.message) for w in caught]}))
""")


def read_in_child(path):
    """read_results in a child process, so that a hang fails the test
    instead of stopping the suite."""
    try:
        out = subprocess.run([sys.executable, "-c", _READ_CHILD, str(path)],
                             capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"read_results({path}) hung")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_fifo_given_directly_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "x.jsonl"
    os.mkfifo(fifo)
    outcome = read_in_child(fifo)
    assert outcome["error"] == (f"{fifo} is a FIFO (named pipe), not a regular file: results "
                                "are read from regular files only")


def test_a_fifo_in_a_folder_is_skipped_with_a_warning(tmp_path):
    append_result(tmp_path / "a.jsonl", make(1))
    os.mkfifo(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").mkdir()
    append_result(tmp_path / "d.jsonl", make(4))
    outcome = read_in_child(tmp_path)
    assert outcome["got"] == [1, 4]
    assert outcome["warnings"] == [
        f"{tmp_path / 'b.jsonl'}: skipped: it is a FIFO (named pipe), not a regular file",
        f"{tmp_path / 'c.jsonl'}: skipped: it is a folder, not a regular file"]


def test_a_device_is_not_a_results_file():
    outcome = read_in_child("/dev/null")
    assert outcome["error"].startswith("/dev/null is a character device, not a regular file")
    with pytest.raises(OSError, match="/dev/null is a character device; results are appended "
                                      "to a regular file only"):
        append_result("/dev/null", make(1))


def test_appending_to_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "x.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"x.jsonl is a FIFO \(named pipe\); results are "
                                      "appended to a regular file only"):
        append_result(fifo, make(1))


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="`result` must be a BenchmarkResult. Received: result "
                                        "of type dict"):
        append_result(tmp_path / "r.jsonl", {"model": "lenet"})
    with pytest.raises(ValueError, match="`path` must be a non-empty path"):
        read_results("")
    assert not (tmp_path / "r.jsonl").exists()
