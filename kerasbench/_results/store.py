"""The results file: JSON Lines, appended safely, read back whole.

File format. A results file (``results/<machine>.jsonl``) is UTF-8 text, one
JSON object per line, every line ending in ``\\n``; standard JSON only (no
``NaN`` or ``Infinity``). A line is one of:

- A *device report line*: a `DeviceReport.to_dict()` stored once, under an
  id (the first 16 hex digits of the SHA-256 of the report as compact,
  key-sorted JSON)::

    {"kind": "device_report", "id": "5d0c5e0e3cb1a4f2", "device_report": {"host": ...}}

- A *result line*: `BenchmarkResult.to_dict()` with its ``device_report``
  replaced by ``device_report_id``, the id of a device report line above
  it::

    {"config": {"model": "resnet50", ...}, "status": "ok", ..., "device_report_id": "5d0c5e0e3cb1a4f2", ..., "schema": 2}

  A result without a device report has ``"device_report": null``. Lines of
  older files (schema 1, and any line with the report inline as
  ``"device_report": {...}``) still read.

`read_results` resolves the ids, so every result it returns carries its
``device_report`` as before. `append_result` writes, under an exclusive lock
and in one write, the device report line (when no line of the file holds
that id yet: the file is scanned under the lock) and then the result line:
so every id refers upward, two processes appending to one file never
interleave, and a kill leaves at most one cut-off last line, which readers
skip with a warning and the next append removes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import stat
import warnings

from kerasbench import _validate
from kerasbench._results import files
from kerasbench._results.result import BenchmarkResult, loads

#: ``kind`` of a device report line.
DEVICE_REPORT_KIND = "device_report"

#: How lines written by kerasbench begin: a device report line, a result line
#: (schema 2), a result line of schema 1. A cut-off last line is removed
#: only when it begins like one of them.
_LINE_STARTS = (b'{"kind": "device_report", "id": "', b'{"config": {', b'{"model": "')


class ResultsFileError(ValueError):
    """A results file that cannot be read or appended to: names the file and the line."""


def device_report_id(report):
    """The id of a device report: 16 hex digits of the SHA-256 of its JSON."""
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ------------------------------------------------------------------ appending


def append_result(path, result):
    """Appends one result to a results file, whole or not at all.

    Under an exclusive ``flock`` the file is read, a cut-off last line left
    by a killed writer is removed (with a warning), and the device report
    line (if the file lacks it) and the result line are written with
    ``os.write`` until every byte is stored, then fsynced.

    Args:
        path: The ``.jsonl`` file (created with its folder if missing).
        result: A `BenchmarkResult`.

    Raises:
        OSError: If the result could not be stored whole (a full disk, a file
            size limit): the file is cut back to its size before the write,
            and the message names it. Also if ``path`` is a symbolic link or
            not a regular file.
        ResultsFileError: If the file's last line is cut off or lacks its
            newline and the file does not look like a results file (the file
            is left untouched; the message names file and line).
        ValueError: If ``result`` would not read back (a NaN in its device
            report, say); nothing is written.
        TypeError: If ``result`` is not a `BenchmarkResult`.
    """
    _append(path, result, os.write)


def _append(path, result, write):
    """`append_result` with the write function as a parameter (for tests)."""
    path = _validate.path("path", path)
    report_id, report_line, result_line = _lines(result, path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd = files.open_for_append(path)
    try:
        with files.locked(fd):
            data = _mend(fd, path)
            if report_id is None or report_id in _report_ids(data):
                report_line = b""
            _write_or_restore(fd, path, data, report_line + result_line, write)
    finally:
        os.close(fd)


def _lines(result, path):
    """``(device report id, device report line, result line)`` of a result
    (``None``, ``b""`` for a result without a report), after checking that
    the result reads back: nothing unreadable is written."""
    if not isinstance(result, BenchmarkResult):
        raise TypeError("`result` must be a BenchmarkResult. "
                        f"Received: result of type {type(result).__name__}")
    d = result.to_dict()
    try:
        BenchmarkResult.from_dict(loads(json.dumps(d, allow_nan=False)))
    except (ValueError, TypeError, RecursionError) as e:
        raise ValueError(f"The result cannot be written to {path}, as it would not read "
                         f"back: {e}") from None
    report = d["device_report"]
    if report is None:
        return None, b"", _json_line(d)
    report_id = device_report_id(report)
    report_line = {"kind": DEVICE_REPORT_KIND, "id": report_id, "device_report": report}
    # The id in the place of the report, key order kept.
    d = {("device_report_id" if k == "device_report" else k):
         (report_id if k == "device_report" else v) for k, v in d.items()}
    return report_id, _json_line(report_line), _json_line(d)


def _json_line(d):
    return (json.dumps(d, allow_nan=False) + "\n").encode("utf-8")


def _report_ids(data):
    """The ids of the device report lines in a file's bytes."""
    ids = set()
    for line in data.split(b"\n"):
        if line.startswith(_LINE_STARTS[0]):
            try:
                ids.add(loads(line)["id"])
            except (ValueError, KeyError, TypeError):
                pass  # not ours after all: the report is written again
    return ids


def _write_or_restore(fd, path, data, payload, write):
    """Writes ``payload`` after ``data`` (adding the newline ``data`` may
    lack), fsyncs, or cuts the file back to ``len(data)`` and raises."""
    if data and not data.endswith(b"\n"):
        payload = b"\n" + payload
    try:
        files.write_all(fd, payload, write)
        os.fsync(fd)
    except OSError as e:
        undo = ""
        try:
            os.ftruncate(fd, len(data))
        except OSError as again:
            undo = f"; cutting it back failed too ({again.strerror or again})"
        raise files.os_error(e.errno, f"Could not append a result to {path}: "
                             f"{e.strerror or e}. The file was cut back to its {len(data)} "
                             f"bytes before the write{undo}.") from e


def _mend(fd, path):
    """Reads the file under the lock; removes a cut-off last line.

    Returns:
        The file's bytes after the repair. A last line that is a whole record
        without its newline is kept (the append adds the newline).

    Raises:
        ResultsFileError: If the last line is incomplete and the file does
            not look like a results file; nothing is changed.
    """
    data = files.read_all(fd, os.fstat(fd).st_size)
    if not data or data.endswith(b"\n"):
        return data
    start = data.rfind(b"\n") + 1
    tail, number = data[start:], data.count(b"\n") + 1
    state = _last_line_state(tail)
    if state == "foreign" or not _all_records(data[:start]):
        raise ResultsFileError(
            f"{path}:{number}: the last line has no newline and this file does not look "
            "like a kerasbench results file; nothing was appended and the file is "
            "unchanged (end the line, or remove it, by hand)")
    if state == "record":
        return data  # whole: the append adds its newline
    os.ftruncate(fd, start)
    warnings.warn(f"{path}:{number}: removed a last line that was cut short "
                  f"({len(tail)} bytes, from a run stopped while writing it)", stacklevel=4)
    return data[:start]


def _last_line_state(tail):
    """``"record"`` (a whole kerasbench line), ``"cut"`` (the start of one,
    cut off) or ``"foreign"`` (anything else)."""
    try:
        return "record" if _is_record(loads(tail)) else "foreign"
    except (json.JSONDecodeError, UnicodeDecodeError):  # cut, maybe inside a character
        return "cut" if any(tail[:len(s)] == s[:len(tail)] for s in _LINE_STARTS) \
            else "foreign"
    except ValueError:  # JSON, but with values no record holds
        return "foreign"


def _is_record(d):
    """Whether a parsed line is shaped like a kerasbench line."""
    return isinstance(d, dict) and (d.get("kind") == DEVICE_REPORT_KIND or (
        "status" in d and ("config" in d or "model" in d)))


def _all_records(data):
    """Whether every line of ``data`` is a kerasbench line."""
    for line in data.split(b"\n"):
        if line.strip():
            try:
                if not _is_record(loads(line)):
                    return False
            except ValueError:
                return False
    return True


# -------------------------------------------------------------------- reading


def read_results(path):
    """Reads every result of a ``.jsonl`` file, or of each one in a folder.

    A last line cut short (a run killed while writing) is skipped with a
    warning; any other unreadable line is an error naming file and line.

    Args:
        path: A ``.jsonl`` file or a folder of them (read in name order;
            only regular files: a FIFO or a device named ``*.jsonl`` is
            skipped with a warning).

    Returns:
        A list of `BenchmarkResult`, in file order, each with its
        ``device_report``.

    Raises:
        ResultsFileError: If the path is missing, unreadable or not a regular
            file (a FIFO given directly is refused, not waited on), a folder
            holds no ``.jsonl`` file, or a line is not a valid result.
    """
    path = _validate.path("path", path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such file or folder") from None
    except OSError as e:
        raise ResultsFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if is_folder:
        return [r for f in _files_in(path) for r in read_results(f)]
    try:
        data = files.read_regular(path)
    except files.NotRegularFileError as e:
        raise ResultsFileError(f"{e}: results are read from regular files only") from None
    except OSError as e:
        raise ResultsFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    return parse_results(data, path)


def _files_in(folder):
    """The regular ``*.jsonl`` files of a folder, by name; warns of the others."""
    chosen = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if not entry.name.endswith(".jsonl"):
                continue
            try:
                mode = os.stat(entry.path).st_mode
            except OSError as e:
                warnings.warn(f"{entry.path}: skipped ({e.strerror or e})", stacklevel=3)
                continue
            if stat.S_ISREG(mode):
                chosen.append(entry.path)
            else:
                warnings.warn(f"{entry.path}: skipped: it is {files.kind_of(mode)}, not a "
                              "regular file", stacklevel=3)
    if not chosen:
        raise ResultsFileError(f"{folder}: no results files (*.jsonl) in this folder")
    return chosen


def parse_results(data, where):
    """Parses the bytes of a results file (see the module docstring).

    Args:
        data: The file's content.
        where: The file's name, for messages.

    Returns:
        A list of `BenchmarkResult`.

    Raises:
        ResultsFileError: For the first line that is not a valid line,
            naming ``where`` and the line number.
    """
    lines = data.split(b"\n")
    reports, results = {}, []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = loads(line)
        except ValueError as e:
            if number == len(lines) and isinstance(e, (json.JSONDecodeError,
                                                       UnicodeDecodeError)):
                warnings.warn(f"{where}:{number}: skipping the last line, which was cut "
                              "short (a run stopped while writing it)", stacklevel=3)
                continue
            raise _line_error(where, number, e) from None
        try:
            result = _read_record(record, reports)
        except (ValueError, TypeError, OverflowError, RecursionError) as e:
            raise _line_error(where, number, e) from None
        if result is not None:
            results.append(result)
    return results


def _read_record(record, reports):
    """The `BenchmarkResult` of a line, or None for a device report line
    (which is added to ``reports``)."""
    if isinstance(record, dict) and "kind" in record:
        if record["kind"] != DEVICE_REPORT_KIND:
            raise ValueError(f"unknown kind of line. Received: kind={record['kind']!r:.80}")
        report_id, report = record.get("id"), record.get("device_report")
        if not isinstance(report_id, str) or not isinstance(report, dict):
            raise ValueError("a device report line needs an `id` (a string) and a "
                             "`device_report` (an object)")
        reports[report_id] = report
        return None
    if isinstance(record, dict) and "device_report_id" in record:
        report_id = record["device_report_id"]
        if not isinstance(report_id, str) or report_id not in reports:
            raise ValueError(f"`device_report_id` {report_id!r:.80} names no device report "
                             "line above this one")
        record = {**record, "device_report": copy.deepcopy(reports[report_id])}
    return BenchmarkResult.from_dict(record)


def _line_error(where, number, error):
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return ResultsFileError(f"{where}:{number}: not a valid result: {text}")
