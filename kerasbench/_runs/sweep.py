"""sweep(): models x batch sizes x precisions x devices x modes, one file of results.

Each configuration runs through `reference` (by default in a fresh Python
process, so a crash, an out-of-memory kill or leaked GPU memory cannot touch
the next one) and its result is appended to a JSON Lines file the moment it
finishes. Failures are results: an out-of-memory run is recorded with status
``oom`` (optionally retried at half the batch size), any other failure with
status ``error``, and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from kerasbench._runs.reference import (
    DATA_FORMATS,
    DEFAULT_STEPS,
    MODES,
    OPTIMIZERS,
    PRECISIONS,
    _check_warmup,
    _choice,
    _now,
    _positive_int,
    resolve_device,
    versions,
)
from kerasbench._results.result import BenchmarkResult, append_result, read_results

#: Text in an error that means the run ran out of (device or host) memory.
OOM_PATTERN = re.compile(
    r"ResourceExhausted|OOM when allocating|out of memory|MemoryError|"
    r"CUDA_ERROR_OUT_OF_MEMORY|failed to allocate",
    re.IGNORECASE,
)

#: Options of `reference` a sweep passes through unchanged.
PASS_THROUGH = ("image_size", "num_classes", "optimizer", "jit_compile", "data_format",
                "steps_per_execution", "seed")


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One point of a sweep, as asked for (the device may be ``None``: best)."""

    model: str
    mode: str
    batch_size: int
    precision: str
    device: str | None

    @property
    def key(self):
        return (self.model, self.mode, self.batch_size, self.precision, self.device or "auto")

    def label(self):
        return (f"{self.model} {self.mode} bs{self.batch_size} {self.precision} "
                f"{self.device or 'auto'}")


def plan(models, batch_sizes=(16, 32, 64), precisions=("fp32",), devices=(None,),
         modes=("train",)):
    """Every configuration of a sweep, validated before anything runs.

    Args:
        models: Registry names (at least one).
        batch_sizes: Positive integers.
        precisions: Among ``fp32``, ``fp16``, ``bf16``.
        devices: ``"cpu"``, ``"gpu"``, ``"gpu:N"`` or ``None`` (best available).
        modes: ``"train"`` and/or ``"inference"``.

    Returns:
        A list of `Configuration`, models outermost, then modes, precisions,
        devices and batch sizes.

    Raises:
        ValueError: On an empty list or any unknown or invalid value (unknown
            models are named with the closest valid name).
    """
    from kerasbench._models import model_info

    lists = {"models": models, "batch_sizes": batch_sizes, "precisions": precisions,
             "devices": devices, "modes": modes}
    for name, values in lists.items():
        if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"`{name}` must be a non-empty list. Received: {name}={values!r}")
    for m in models:
        model_info(m)  # unknown names fail here, before anything runs
    for b in batch_sizes:
        _positive_int("batch_size", b)
    for p in precisions:
        _choice("precision", p, tuple(PRECISIONS))
    for m in modes:
        _choice("mode", m, MODES)
    for d in devices:
        if d is not None and not re.fullmatch(r"cpu|gpu(:\d+)?", str(d).strip().lower()):
            raise ValueError(f"`device` must be 'cpu', 'gpu' or 'gpu:N'. Received: device={d!r}")
    seen, out = set(), []
    for model, mode, precision, device, batch in itertools.product(
            models, modes, precisions, devices, sorted(set(batch_sizes))):
        c = Configuration(model, mode, batch, precision,
                          None if device is None else str(device).strip().lower())
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


def results_path(out, machine):
    """The JSON Lines file for ``out``: itself if it ends in ``.jsonl``, else
    ``<out>/<machine>.jsonl``."""
    out = os.fspath(out)
    if out.endswith(".jsonl"):
        return out
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", machine).strip("-") or "results"
    return os.path.join(out, f"{safe}.jsonl")


def _check_writable(path):
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as e:
        raise ValueError(
            f"`out` must be a folder or .jsonl file that can be written. "
            f"Received: out={path!r} ({e.strerror or e})"
        ) from None


def sweep(
    models,
    *,
    batch_sizes=(16, 32, 64),
    precisions=("fp32",),
    devices=(None,),
    modes=("train",),
    steps=DEFAULT_STEPS,
    warmup_steps=None,
    out=None,
    machine=None,
    resume=False,
    retry_failed=False,
    oom_retry=False,
    isolate=True,
    timeout_s=None,
    progress=True,
    **options,
):
    """Runs `reference` over every combination and keeps every result.

    Args:
        models: Registry names.
        batch_sizes, precisions, devices, modes: The values to combine (see
            `plan`).
        steps, warmup_steps: Steps per run, as in `reference`.
        out: A folder (results go to ``<out>/<machine>.jsonl``), a ``.jsonl``
            file, or ``None`` to keep results in memory only. Each result is
            appended the moment its run ends (flushed, fsynced, locked: safe
            with several sweeps writing to the same file).
        machine: Label of this machine in the results (default host name).
        resume: Skip configurations already in the results file.
        retry_failed: With ``resume``, run again those recorded as failed.
        oom_retry: After an out-of-memory failure, retry at half the batch
            size, and again, down to 1; every attempt is recorded.
        isolate: Run each configuration in a fresh Python process (default).
            A crash or an out-of-memory kill then becomes a recorded failure
            instead of ending the sweep, and no state leaks between runs.
        timeout_s: With ``isolate``, stop a run after this many seconds and
            record it as an error.
        progress: Show configuration i of n, elapsed time and an estimate of
            the time left (a progress bar on a terminal, plain lines
            otherwise). ``False`` prints nothing.
        **options: Passed to `reference`: ``image_size``, ``num_classes``,
            ``optimizer``, ``jit_compile``, ``data_format``,
            ``steps_per_execution``, ``seed``.

    Returns:
        The list of `BenchmarkResult` of this call, failures included
        (configurations skipped by ``resume`` are not in it).

    Raises:
        ValueError: On invalid input, before anything runs.
        KeyboardInterrupt: When interrupted; every finished result is
            already in the file.

    Example:

    ```python
    results = kerasbench.sweep(["alexnet", "resnet50"], batch_sizes=[16, 32],
                               precisions=["fp32", "bf16"], out="results/")
    ```
    """
    unknown = sorted(set(options) - set(PASS_THROUGH))
    if unknown:
        raise TypeError(f"Unknown argument for sweep: {unknown[0]}. "
                        f"Allowed options: {', '.join(PASS_THROUGH)}")
    configs = plan(models, batch_sizes, precisions, devices, modes)
    _positive_int("steps", steps)
    if warmup_steps is not None:
        _check_warmup(warmup_steps, steps)
    if "optimizer" in options:
        _choice("optimizer", options["optimizer"], OPTIMIZERS)
    if options.get("data_format") is not None:
        _choice("data_format", options["data_format"], DATA_FORMATS)
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"`timeout_s` must be a positive number. Received: timeout_s={timeout_s!r}")
    machine = machine or socket.gethostname()
    path = results_path(out, machine) if out is not None else None
    if path is not None:
        _check_writable(path)
    if resume and path is not None and os.path.getsize(path):
        done = {_requested_key(r) for r in read_results(path)
                if r.ok or not retry_failed}
        configs = [c for c in configs if c.key not in done]

    runner = _Runner(steps, warmup_steps, options, machine, isolate, timeout_s)
    display = _Progress(len(configs), enabled=progress)
    results = []
    guard = _InterruptGuard()
    try:
        for config in configs:
            guard.check()
            display.start(config)
            batch = config.batch_size
            while True:
                attempt = dataclasses.replace(config, batch_size=batch)
                result = runner.run(attempt, requested=config)
                results.append(result)
                if path is not None:
                    append_result(path, result)
                retry = oom_retry and result.status == "oom" and batch > 1
                display.finished(result, final=not retry)
                if not retry:
                    break
                batch //= 2
                guard.check()
        guard.check()
    finally:
        guard.close()
        display.close()
    return results


class _InterruptGuard:
    """Makes Ctrl-C stop the sweep even when the interrupt is swallowed.

    Python turns SIGINT into `KeyboardInterrupt` wherever the main thread
    happens to be; when that is a ``__del__`` method or a weakref callback
    (TensorFlow has many), the exception is printed and ignored and the run
    goes on. The guard remembers the signal, and `check` (called between
    configurations) raises it again. Only installed in the main thread and
    only over Python's default handler.
    """

    def __init__(self):
        self.interrupted = False
        self._previous = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.interrupted = True
        raise KeyboardInterrupt

    def check(self):
        if self.interrupted:
            raise KeyboardInterrupt

    def close(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _requested_key(result):
    c = result.config
    return (result.model, result.mode, c.get("requested_batch_size", result.batch_size),
            result.precision, c.get("requested_device") or "auto")


class _Runner:
    """Runs one configuration, in a child process or in this one."""

    def __init__(self, steps, warmup_steps, options, machine, isolate, timeout_s):
        self.steps, self.warmup_steps = steps, warmup_steps
        self.options, self.machine = options, machine
        self.isolate, self.timeout_s = isolate, timeout_s
        self._report = None

    def run(self, config, requested):
        started = _now()
        if self.isolate:
            result, status, error = self._run_child(config)
        else:
            result, status, error = self._run_here(config)
        if result is None:
            report = self._device_report()
            try:
                device = resolve_device(config.device, report)
            except ValueError:
                device = config.device  # a device that does not exist: as asked
            result = BenchmarkResult(
                model=config.model, mode=config.mode, batch_size=config.batch_size,
                precision=config.precision, device=device,
                status=status, error=error, config=self._config(config),
                versions=versions(), started_at=started, finished_at=_now(),
                device_report=report.to_dict(),
            )
        result.machine = self.machine
        result.config["requested_batch_size"] = requested.batch_size
        result.config["requested_device"] = requested.device
        return result

    def _config(self, config):
        """The settings a failed run was given (what `reference` would record)."""
        from kerasbench._models import model_info

        o = self.options
        return {
            "steps": self.steps, "warmup_steps": self.warmup_steps,
            "image_size": o.get("image_size") or model_info(config.model).image_size,
            "num_classes": o.get("num_classes", 1000),
            "optimizer": o.get("optimizer", "sgd") if config.mode == "train" else None,
            "jit_compile": o.get("jit_compile"), "data_format": o.get("data_format"),
            "steps_per_execution": o.get("steps_per_execution", 1),
            "synthetic_data": True, "seed": o.get("seed", 0),
        }

    def _device_report(self):
        if self._report is None:
            from kerasbench._device import DeviceReport

            self._report = DeviceReport.collect()
        return self._report

    def _run_here(self, config):
        from kerasbench._runs.reference import reference

        try:
            result = reference(
                config.model, mode=config.mode, batch_size=config.batch_size,
                precision=config.precision, device=config.device, steps=self.steps,
                warmup_steps=self.warmup_steps, verbose=0, machine=self.machine,
                device_report=self._device_report(), **self.options,
            )
            return result, "ok", None
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure is a result
            message = f"{type(e).__name__}: {' '.join(str(e).split())}"[:2000]
            return None, _status_of(message), message

    def _command(self, config):
        cmd = [sys.executable, "-m", "kerasbench", "run", config.model,
               "--mode", config.mode, "--batch-size", str(config.batch_size),
               "--precision", config.precision, "--steps", str(self.steps), "--json"]
        if self.warmup_steps is not None:
            cmd += ["--warmup-steps", str(self.warmup_steps)]
        if config.device is not None:
            cmd += ["--device", config.device]
        o = self.options
        for name, flag in (("image_size", "--image-size"), ("num_classes", "--num-classes"),
                           ("optimizer", "--optimizer"), ("data_format", "--data-format"),
                           ("steps_per_execution", "--steps-per-execution"),
                           ("seed", "--seed")):
            if o.get(name) is not None:
                cmd += [flag, str(o[name])]
        if o.get("jit_compile") is not None:
            cmd.append("--xla" if o["jit_compile"] else "--no-xla")
        return cmd

    def _run_child(self, config):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        proc = subprocess.Popen(
            self._command(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            out, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            return None, "error", f"timed out after {self.timeout_s:g} s"
        except BaseException:
            _stop(proc)  # Ctrl-C or anything else: never leave the child running
            raise
        if proc.returncode == 0:
            try:
                return BenchmarkResult.from_dict(json.loads(out)), "ok", None
            except ValueError as e:
                return None, "error", f"unreadable result from the run: {e}"
        if proc.returncode < 0:
            sig = -proc.returncode
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            if sig == signal.SIGKILL:
                return None, "oom", (f"killed by {name}: most often the kernel's "
                                     "out-of-memory killer (host memory)")
            return None, "error", f"killed by {name}"
        lines = [line for line in err.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {proc.returncode}"
        message = message.removeprefix("kerasbench: error: ")
        status = "oom" if OOM_PATTERN.search(err) else "error"
        return None, status, message[:2000]


def _status_of(message):
    return "oom" if OOM_PATTERN.search(message) else "error"


def _die_with_parent():
    """In the child: ask Linux to kill it when the sweep process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _clock(seconds):
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _Progress:
    """Configuration i of n, elapsed and estimated time left.

    On a terminal: a tqdm bar, with a line per finished configuration printed
    above it. Otherwise: plain lines, one when a configuration starts and one
    when it ends. The estimate is the mean time of the finished
    configurations times the number left.
    """

    def __init__(self, total, enabled=True):
        self.total, self.enabled = total, enabled
        self.done = 0
        self.t0 = time.monotonic()
        self._bar = None
        if enabled and total and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="config", dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                        "[{elapsed}<{remaining}]")

    def _eta(self):
        if not self.done:
            return "unknown"
        return _clock((time.monotonic() - self.t0) / self.done * (self.total - self.done))

    def start(self, config):
        self.index = self.done + 1
        if self._bar is not None:
            self._bar.set_description_str(config.label())
        elif self.enabled:
            print(f"[{self.index}/{self.total}] {config.label()}: running "
                  f"(elapsed {_clock(time.monotonic() - self.t0)}, about {self._eta()} left)",
                  flush=True)

    def finished(self, result, final=True):
        if result.ok:
            outcome = f"{result.images_per_sec:.1f} images/sec"
        else:
            outcome = f"{result.status.upper()}: {result.error}"
            if not final:
                outcome += f" (retrying at batch size {result.batch_size // 2})"
        line = (f"[{self.index}/{self.total}] {result.model} {result.mode} "
                f"bs{result.batch_size} {result.precision} {result.device}: {outcome}")
        if final:
            self.done += 1
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line)
            if final:
                self._bar.update(1)
        else:
            print(f"{line} (elapsed {_clock(time.monotonic() - self.t0)}, "
                  f"about {self._eta()} left)", flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
