"""The worker protocol: one benchmark run in a fresh Python process.

The sweep (the parent) never imports a framework. For each configuration it
starts ``python -m kerasbench._runs.worker ANSWER_PATH`` and writes one JSON
line on the child's standard input::

    {"protocol": 1, "config": {...RunConfig...}, "machine": "lab-1",
     "modules": ["mypackage.models"], "device_report": {...} | null,
     "verbose": 0, "log_dir": null}

``modules`` are imported first, so models that a user registered in an
importable module are known to the child; ``device_report``, when given, is
used instead of collecting one. The child runs `reference` and
writes its answer to ANSWER_PATH, whole (a temporary file renamed into
place), as one JSON object::

    {"protocol": 1, "status": "ok", "result": {...BenchmarkResult...}}
    {"protocol": 1, "status": "oom" | "error", "error_type": "ValueError",
     "message": "...", "result": {...BenchmarkResult of the failure...}}

Its standard output and error are a log, kept for the message of a crash and
never parsed. A child that leaves no answer crashed: the parent records the
exit code or signal (`failure_of_exit`). The child keeps its standard input
open and ends itself when it closes, so it never outlives a killed parent;
nothing runs between fork and exec in the parent (no ``preexec_fn``), which
is fork-safe with framework threads running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

PROTOCOL = 1

#: Text in an exception that means the run ran out of (device or host) memory.
OOM_PATTERN = re.compile(
    r"ResourceExhausted|OOM when allocating|out of memory|MemoryError|"
    r"CUDA_ERROR_OUT_OF_MEMORY|failed to allocate",
    re.IGNORECASE,
)
#: Longest error message kept in a result.
MAX_MESSAGE = 2000


def quiet_tensorflow(environ):
    """Quiets TensorFlow's C++ start-up lines unless the user chose a level,
    and records in ``KERASBENCH_SET_ENV`` that kerasbench set it (so the device
    report lists only what the user set)."""
    if "TF_CPP_MIN_LOG_LEVEL" in environ:
        return
    environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    ours = [item for item in environ.get("KERASBENCH_SET_ENV", "").split(",") if item]
    environ["KERASBENCH_SET_ENV"] = ",".join(ours + ["TF_CPP_MIN_LOG_LEVEL=3"])


def status_of(error):
    """``"oom"`` when ``error`` (an exception) says memory ran out, else ``"error"``."""
    text = f"{type(error).__name__}: {error}"
    return "oom" if isinstance(error, MemoryError) or OOM_PATTERN.search(text) else "error"


def one_line(text):
    """``text`` on one line, at most `MAX_MESSAGE` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."


def request(config, machine, modules=(), device_report=None, verbose=0, log_dir=None):
    """The message the parent sends: one JSON line.

    ``device_report`` (a `DeviceReport.to_dict()` from an earlier run of the
    same sweep and backend) spares the child collecting its own, and gives
    every result of a sweep the same device report, stored once in the
    results file. ``verbose`` and ``log_dir`` are `reference`'s.
    """
    return json.dumps({"protocol": PROTOCOL, "config": config.to_dict(), "machine": machine,
                       "modules": list(modules), "device_report": device_report,
                       "verbose": verbose, "log_dir": log_dir}) + "\n"


def failure_of_exit(returncode, log_tail):
    """``(status, error_type, message)`` for a child that left no answer.

    A SIGKILL is most often the kernel's out-of-memory killer, so it counts
    as ``oom``; any other signal or exit code is an ``error``. ``log_tail``
    (the end of the child's output) is added as context, not parsed.
    """
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGKILL:
            return "oom", "signal", (f"killed by {name}: most often the kernel's "
                                     "out-of-memory killer (host memory)")
        return "error", "signal", f"killed by {name}" + _context(log_tail)
    return "error", "crash", f"exited with code {returncode} without a result" + \
        _context(log_tail)


def _context(log_tail):
    lines = [line for line in log_tail.splitlines() if line.strip()]
    return f" (last output: {lines[-1].strip()})" if lines else ""


def read_answer(path):
    """``(answer, problem)``: the child's answer, or ``None`` and what is wrong
    with it (``problem`` is ``None`` too when the child left no answer)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"unreadable answer from the run ({e.strerror or e})"
    try:
        answer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return None, f"answer from the run is not JSON ({one_line(e)[:200]})"
    ok = isinstance(answer, dict) and answer.get("protocol") == PROTOCOL and \
        answer.get("status") in ("ok", "oom", "error") and isinstance(answer.get("result"), dict)
    if not ok:
        return None, f"answer from the run has the wrong shape: {one_line(repr(answer))[:200]}"
    return answer, None


def result_of(answer):
    """The `BenchmarkResult` of a well-shaped answer, or ``(None, problem)``."""
    from kerasbench._results.result import BenchmarkResult

    try:
        result = BenchmarkResult.from_dict(answer["result"])
    except (ValueError, TypeError, RecursionError) as e:
        return None, f"unreadable result from the run: {one_line(e)[:300]}"
    if result.status != answer["status"]:
        return None, (f"the run answered status {answer['status']!r} with a result of "
                      f"status {result.status!r}")
    if result.ok and result.images_per_sec is None:
        return None, "the run reported success without an images/sec figure"
    return result, None


def _write_answer(path, answer):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(answer, f, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _die_with_parent():
    """Ends this process when the parent closes our standard input (or dies)."""
    def watch():  # raw reads: no buffered-reader lock held at interpreter shutdown
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        os._exit(3)

    threading.Thread(target=watch, name="kerasbench-parent-watch", daemon=True).start()
    if sys.platform == "linux":  # belt and braces: the kernel's parent-death signal
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _start_multi_worker(config, answer_path):
    """Joins the cluster of TF_CONFIG before anything else starts the framework
    (TensorFlow, or JAX's processes through `keras.distribution.initialize`).

    The answer for "the other workers never joined" is written first: if
    they have not joined after ``connect_timeout_s``, the join's watchdog
    ends this process and that answer stands.
    """
    from kerasbench._runs import distributed
    from kerasbench._runs.reference import current_backend

    backend = config.backend or current_backend()
    if backend == "jax":
        distributed.jax_cluster()  # a TF_CONFIG JAX cannot use fails here, clearly
    message = (f"RuntimeError: not every worker of TF_CONFIG's cluster joined within "
               f"{config.connect_timeout_s:g} s (connect_timeout_s): start the same run on "
               "every worker, and check that their addresses can be reached")
    if answer_path is not None:
        _write_answer(answer_path, {"protocol": PROTOCOL, "status": "error",
                                    "error_type": "RuntimeError", "message": message,
                                    "result": _unjoined(config, message)})
    distributed.start_strategy(config.connect_timeout_s, backend=backend, device=config.device)
    if answer_path is not None:
        os.remove(answer_path)  # joined: the real answer comes at the end


def _unjoined(config, message, error_type="RuntimeError"):
    """The result (a dict) of a multi-worker run that could not join its cluster."""
    from kerasbench._results.result import BenchmarkResult
    from kerasbench._runs.reference import now, versions

    return BenchmarkResult(config=config, status="error", error=message,
                           error_type=error_type, versions=versions(),
                           finished_at=now()).to_dict()


def run(message, answer_path=None):
    """Runs one request (a dict) and returns the answer (a dict)."""
    from kerasbench._runs.config import RunConfig
    from kerasbench._runs.reference import _Run

    import importlib

    for module in message.get("modules") or ():
        importlib.import_module(module)
    config = RunConfig.from_dict(message["config"])
    if config.strategy == "multi_worker":
        try:
            _start_multi_worker(config, answer_path)
        except ValueError as e:  # a cluster description that cannot be used
            text = one_line(f"ValueError: {e}")
            return {"protocol": PROTOCOL, "status": "error", "error_type": "ValueError",
                    "message": text, "result": _unjoined(config, text, "ValueError")}
    if config.strategy == "mirrored" and (config.num_devices or 1) > 1 and \
            config.device in (None, "cpu"):
        from kerasbench._runs.distributed import split_cpu
        from kerasbench._runs.reference import current_backend

        # Before anything starts the framework (TensorFlow, or JAX's XLA_FLAGS).
        split_cpu(config.num_devices, config.backend or current_backend())
    report = None
    if message.get("device_report") is not None:
        from kerasbench._device import DeviceReport

        report = DeviceReport.from_dict(message["device_report"])
    job = _Run(config, message.get("log_dir"), message.get("verbose") or 0,
               message.get("machine"), report)
    try:
        result = job.execute()
        return {"protocol": PROTOCOL, "status": "ok", "result": result.to_dict()}
    except Exception as e:  # noqa: BLE001 - every failure is an answer
        return failure(job, e)


def failure(job, error):
    """The answer for a run that raised ``error``."""
    result = failure_result(job, error)
    return {"protocol": PROTOCOL, "status": result.status, "error_type": result.error_type,
            "message": result.error, "result": result.to_dict()}


def failure_result(job, error):
    """The `BenchmarkResult` of a run (a `reference` job) that raised ``error``."""
    from kerasbench._results.result import BenchmarkResult
    from kerasbench._runs.reference import now, versions

    try:
        config = job.resolve()
    except Exception:  # noqa: BLE001 - the failure may be in resolving itself
        config = job.requested
    report = job.device_report.to_dict() if job.device_report is not None else None
    return BenchmarkResult(config=config, requested=job.requested, status=status_of(error),
                           error=one_line(f"{type(error).__name__}: {error}"),
                           error_type=type(error).__name__, device_report=report,
                           versions=versions(), machine=job.machine, finished_at=now())


def main(argv=None):
    """``python -m kerasbench._runs.worker ANSWER_PATH``: see the module docstring."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m kerasbench._runs.worker ANSWER_PATH", file=sys.stderr)
        return 2
    quiet_tensorflow(os.environ)
    line = sys.stdin.readline()
    _die_with_parent()
    message = json.loads(line)
    if not isinstance(message, dict) or message.get("protocol") != PROTOCOL:
        print(f"kerasbench worker: unknown request {line[:200]!r}", file=sys.stderr)
        return 2
    _write_answer(argv[0], run(message, argv[0]))
    return 0


# ------------------------------------------------------------ parent side


#: The worker program: this module, run by the same Python.
COMMAND = (sys.executable, "-m", "kerasbench._runs.worker")


def call(config, *, machine, modules=(), device_report=None, timeout_s=None, verbose=0,
         log_dir=None, show_output=False, command=COMMAND):
    """Runs ``config`` in a worker process; returns its `BenchmarkResult`.

    The child gets ``KERAS_BACKEND`` set when ``config.backend`` is. A
    child that fails answers with a failed result; one that dies, hangs past
    ``timeout_s`` or answers nonsense is recorded as such (never raised).

    Args:
        config: The `RunConfig` to run.
        machine: Label of this machine in the result.
        modules: Modules the child imports first (models registered there).
        device_report: A `DeviceReport.to_dict()` to use instead of collecting.
        timeout_s: Seconds after which the child is stopped, or ``None``.
        verbose: `reference`'s verbosity in the child.
        log_dir: `reference`'s TensorBoard folder in the child.
        show_output: Let the child print to this process's stdout and stderr
            (otherwise its output is kept in a log, for crash messages).
        command: The worker program (its answer path is appended); another
            one speaks the same protocol (tests use crafted ones).
    """
    from kerasbench._results.result import BenchmarkResult
    from kerasbench._runs.reference import now, versions

    started = now()
    message = request(config, machine, modules, device_report, verbose, log_dir)
    with tempfile.TemporaryDirectory(prefix="kerasbench-run-") as folder:
        answer_path = os.path.join(folder, "answer.json")
        log_path = os.path.join(folder, "log.txt")
        returncode = _spawn(command, config, message, answer_path,
                            None if show_output else log_path, timeout_s)
        answer, problem = read_answer(answer_path)
        if answer is not None:
            result, problem = result_of(answer)
            if result is not None:
                return result
        if problem is not None:
            failure = ("error", "protocol", problem)
        elif returncode is None:
            failure = ("error", "timeout", f"timed out after {timeout_s:g} s")
        else:
            failure = failure_of_exit(returncode, _tail(log_path))
    status, error_type, text = failure
    return BenchmarkResult(config=config, status=status, error=one_line(text),
                           error_type=error_type, versions=versions(), machine=machine,
                           started_at=started, finished_at=now())


def _spawn(command, config, message, answer_path, log_path, timeout_s):
    """Runs the worker; its exit code, or ``None`` if it timed out."""
    env = dict(os.environ)
    quiet_tensorflow(env)
    if config.backend is not None:
        env["KERAS_BACKEND"] = config.backend
    log = open(log_path, "wb") if log_path is not None else None
    try:
        proc = subprocess.Popen(
            [*command, answer_path],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT if log else None,
            env=env)
    finally:
        if log is not None:
            log.close()
    try:
        proc.stdin.write(message.encode())
        proc.stdin.flush()
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None
    except BrokenPipeError:
        return proc.wait()
    finally:
        _stop(proc)  # on a timeout, Ctrl-C or anything else: never leave it running


def _tail(path, size=4096):
    """The end of a child's log, decoded whatever bytes it holds."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _stop(proc):
    try:
        proc.stdin.close()  # the worker ends itself when this closes
    except OSError:
        pass
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
