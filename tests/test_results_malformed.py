"""Lines that are JSON of the wrong shape: each gives one ResultsFileError
naming file and line, never a traceback from deeper down; and every JSON
kerasbench writes is standard JSON (no NaN, no Infinity).

Nothing here imports TensorFlow or Keras.
"""

import copy
import json
import math
import warnings

import pytest

from kerasbench._results import (
    BenchmarkResult,
    ResultsFileError,
    append_result,
    compare,
    markdown_tables,
    read_results,
    write_csv,
    write_report,
)
from kerasbench._results.result import loads
from kerasbench._runs.config import RunConfig


def make(batch_size=32, images_per_sec=100.0, machine="box", **fields):
    return BenchmarkResult(
        config=RunConfig(model="resnet50", batch_size=batch_size, device="cpu",
                         optimizer="sgd", steps=10),
        stats={"images_per_sec": images_per_sec, "images_per_sec_sem": 1.0,
               "step_times_s": [0.1, 0.2], "notes": ["a note"], "phase": "train",
               "percentiles_exact": True},
        device_report={"host": {"cpu_model": "CPU"}, "accelerators": []},
        versions={"keras": "3.15.1"}, machine=machine, backend="tensorflow",
        started_at="2025-01-01T00:00:00Z", finished_at="2025-01-01T00:01:00Z", **fields)


def good_line():
    return make().to_dict()


def write(tmp_path, *records):
    """A file whose line 1 is a good result and whose next lines are ``records``
    (dicts, or raw text)."""
    path = tmp_path / "r.jsonl"
    lines = [json.dumps(good_line())]
    lines += [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def changed(path_in_record, value):
    d = good_line()
    *parents, last = path_in_record
    target = d
    for key in parents:
        target = target[key]
    target[last] = value
    return d


WRONG_SHAPES = [
    (("config", "batch_size"), "32", r"`batch_size` must be a positive integer"),
    (("config", "batch_size"), 10 ** 25, None),  # a valid, if silly, integer
    (("config",), [1, 2], r"must be a JSON object"),
    (("config", "model"), {"a": 1}, r"`model` must be a non-empty string"),
    (("stats", "images_per_sec"), "fast", r"`stats.images_per_sec` must be a finite number"),
    (("stats", "images_per_sec"), [100.0], r"`stats.images_per_sec` must be a finite number"),
    (("stats", "images_per_sec"), True, r"`stats.images_per_sec` must be a finite number"),
    (("stats", "images_per_sec"), -5.0, r"`stats.images_per_sec` must be 0 or from"),
    (("stats", "images_per_sec"), 1e300, r"at most 1e\+15 in size"),
    (("stats", "images_per_sec_sem"), "1.0", r"`stats.images_per_sec_sem` must be a finite"),
    (("stats", "step_times_s"), [0.1, {"a": 1}], r"`stats.step_times_s` must be a number, a "),
    (("stats", "notes"), {"a": "b"}, r"`stats.notes` must be a number, a string"),
    (("stats",), [1, 2], r"`stats` must be a dict \(a JSON object\)"),
    (("stats",), None, r"`stats` must be a dict"),
    (("device_report",), [1, 2], r"`device_report` must be a dict"),
    (("device_report",), "cpu", r"`device_report` must be a dict"),
    (("versions",), ["3.15"], r"`versions` must be a dict"),
    (("versions", "keras"), 3.15, r"`versions.keras` must be a non-empty string"),
    (("machine",), 5, r"`machine` must be a non-empty string or None"),
    (("finished_at",), ["2025"], r"`finished_at` must be a non-empty string or None"),
    (("error",), {"a": 1}, r"`error` must be"),
    (("citation",), 5, r"`citation` must be"),
    (("params",), "many", r"`params` must be a non-negative integer or None"),
    (("params",), -1, r"`params` must be a non-negative integer or None"),
    (("status",), "maybe", r"`status` must be one of 'ok', 'oom', 'error'"),
    (("status",), ["ok"], r"`status` must be one of"),
    (("source",), 1, r"`source` must be one of"),
    (("schema",), 99, r"`schema` 99 is newer than this kerasbench reads \(2\)"),
    (("schema",), "2", r"`schema` must be a positive integer"),
    (("requested",), [1], r"must be a JSON object"),
]


@pytest.mark.parametrize("where,value,message", WRONG_SHAPES,
                         ids=[f"{'.'.join(w)}={v!r:.20}" for w, v, _ in WRONG_SHAPES])
def test_wrong_shapes_name_file_and_line(tmp_path, where, value, message):
    path = write(tmp_path, changed(where, value))
    if message is None:
        assert len(read_results(path)) == 2
        return
    with pytest.raises(ResultsFileError, match=rf"^{path}:2: not a valid result: .*{message}"):
        read_results(path)


RAW_LINES = [
    ("[1, 2]", r"A result must be a JSON object\. Received: list"),
    ('"a string"', r"A result must be a JSON object\. Received: str"),
    ("42", r"A result must be a JSON object"),
    ("null", r"A result must be a JSON object"),
    ('{"a": NaN}', r"NaN is not a number in standard JSON"),
    ('{"a": Infinity}', r"Infinity is not a number in standard JSON"),
    ('{"a": -Infinity}', r"-Infinity is not a number in standard JSON"),
    ('{"a": 1e999}', r"the number 1e999 is out of range"),
    ('{"a": -1e400}', r"the number -1e400 is out of range"),
    ('{"a": 1' + "0" * 40 + "}", r"an integer of 41 digits is too large"),
    ('{"a": 1' + "0" * 5000 + "}", r"an integer of 5001 digits is too large"),
    ('{"a": ' + "[" * 100 + "]" * 100 + "}", r"nested more than 64 levels deep"),
    ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", r"nested more than 64 levels deep"),
    ('{"a": ' + '{"b": ' * 70 + "1" + "}" * 70 + "}", r"nested more than 64 levels deep"),
    ("garbage", r"Expecting value"),
    ('{"model": "lenet"}', r"A result needs the fields mode, batch_size"),
]


@pytest.mark.parametrize("line,message", RAW_LINES, ids=[f"{line[:24]!r}" for line, _ in RAW_LINES])
def test_bad_json_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, line, json.dumps(good_line()))
    with pytest.raises(ResultsFileError, match=rf"^{path}:2: not a valid result: .*{message}"):
        read_results(path)


def test_a_long_bad_value_gives_a_short_message(tmp_path):
    path = write(tmp_path, changed(("machine",), list(range(100_000))))
    with pytest.raises(ResultsFileError) as info:
        read_results(path)
    assert len(str(info.value)) < 400


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(json.dumps(good_line()).encode() + b"\n{\"machine\": \"\xff\xfe\"}\n")
    with pytest.raises(ResultsFileError, match=r"r.jsonl:2: not a valid result: .*utf-8"):
        read_results(path)


# ------------------------------------------------------- fuzz: no tracebacks

ODD_VALUES = [None, "", "x", "=1+1", "a|b\nc", [], [1, "a"], {}, {"a": [1]}, -1, 0, 2.5,
              10 ** 20, True, 1e-12]


def _paths(d, prefix=()):
    for key, value in d.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def test_any_odd_value_anywhere_reads_or_fails_cleanly_and_then_reports(tmp_path):
    """Every field of a line, at every depth, set to each odd value: reading
    either fails with a ResultsFileError or gives results that the tables,
    the CSV, the comparison and the report all handle."""
    base = good_line()
    outcomes = {"read": 0, "refused": 0}
    for where in _paths(base):
        for value in ODD_VALUES:
            record = changed(where, copy.deepcopy(value))
            path = write(tmp_path, record)
            try:
                results = read_results(path)
            except ResultsFileError as e:
                assert str(e).startswith(f"{path}:2: not a valid result: ")
                outcomes["refused"] += 1
                continue
            outcomes["read"] += 1
            markdown_tables(results)
            write_csv(results, tmp_path / "r.csv")
            other = [make(machine="other", images_per_sec=50.0)]
            comparison = compare([("a", results), ("b", other)], ignore=("precision",))
            comparison.to_markdown()
            json.dumps(comparison.to_dict(), allow_nan=False)
    assert outcomes["read"] > 50 and outcomes["refused"] > 50


def test_odd_values_still_draw_a_report(tmp_path):
    results = [make(16, 0.0), make(32, 1e-9), make(64, 1e15, machine="a|b\nc $x$ $\\frac"),
               make(128, None, status="error", error="x" * 10_000)]
    for r in results:
        append_result(tmp_path / "r.jsonl", r)
    paths = write_report(read_results(tmp_path / "r.jsonl"), tmp_path / "out")
    assert paths["png"] and (tmp_path / "out" / "report.png").stat().st_size > 1000


# --------------------------------------------------------- standard JSON out


def test_non_finite_figures_are_refused_when_a_result_is_built():
    for value in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="`stats.images_per_sec` must be a finite number"):
            make(images_per_sec=value)
        with pytest.raises(ValueError, match="`stats.step_time_s` must be a finite number"):
            BenchmarkResult(config=RunConfig(), stats={"step_time_s": value})


def test_a_result_that_would_not_read_back_is_not_written(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make())
    before = path.read_bytes()
    bad = make()
    bad.device_report = {"host": {"peak": math.nan}}
    with pytest.raises(ValueError, match=r"cannot be written to .*r.jsonl, as it would not read "
                                         r"back: Out of range float values"):
        append_result(path, bad)
    late = make()
    late.stats["images_per_sec"] = math.inf  # changed after it was built
    with pytest.raises(ValueError, match="would not read back"):
        append_result(path, late)
    odd = make()
    odd.machine = 5
    with pytest.raises(ValueError, match="`machine` must be"):
        append_result(path, odd)
    assert path.read_bytes() == before


def test_comparison_json_is_standard(tmp_path):
    a = [make(32, 100.0), make(64, None, status="oom")]
    b = [make(32, 250.0, machine="desk"), make(64, 80.0, machine="desk")]
    c = compare([("a", a), ("b", b)])
    c.rows[0].cells[1].ratio = math.nan  # a ratio that is undefined
    c.rows[1].cells[1].ratio = math.inf
    d = c.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert loads(text)["rows"][0]["cells"][1]["ratio"] is None
    assert d["rows"][1]["cells"][1]["ratio"] is None
    assert loads(c.to_json(indent=2)) == d


def test_result_lines_are_standard_json(tmp_path):
    path = tmp_path / "r.jsonl"
    append_result(path, make())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for line in path.read_text().splitlines():
            loads(line)  # the strict parser: no NaN, no Infinity
