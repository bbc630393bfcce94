"""sweep(): a list of run configurations, one file of results.

Each `RunConfig` runs through `reference`, by default in a fresh Python
process (`kerasbench._runs.worker`), so a crash, an out-of-memory kill or
leaked GPU memory cannot touch the next one; its result is appended to a
JSON Lines file the moment it finishes. Failures are results: an
out-of-memory run is recorded with status ``oom`` (optionally retried at half
the batch size), any other failure with status ``error``, and the sweep goes
on. The sweep process itself imports no framework when runs are isolated.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import threading

from kerasbench import _validate
from kerasbench._runs import worker
from kerasbench._runs.config import RunConfig, sweep_fields
from kerasbench._runs.progress import Progress
from kerasbench._runs.reference import current_backend, make_config


#: What a sweep combines when not told: these batch sizes, and for every
#: other list (``precisions``, ``devices``, ``modes``, ``backends``) the
#: `RunConfig` default alone.
DEFAULT_BATCH_SIZES = (16, 32, 64)


def plan(models, **options):
    """Every configuration of a sweep, validated before anything runs.

    Args:
        models: Registry names (at least one).
        **options: For each field a sweep combines, a list under its plural
            name: ``batch_sizes`` (default 16, 32, 64), ``precisions``,
            ``devices`` (``None``: the best available), ``modes``,
            ``backends``. Any other `RunConfig` field (``steps=20``) is the
            same for every run.

    Returns:
        A list of `RunConfig`: models outermost, batch sizes (ascending)
        innermost, the other lists in between in `RunConfig`'s order;
        duplicates dropped.

    Raises:
        ValueError: On an empty list or any unknown or invalid value (unknown
            models are named with the closest valid name).
        TypeError: On an unknown option.
    """
    from kerasbench._models import model_info

    plural = sweep_fields()  # {"models": "model", "batch_sizes": "batch_size", ...}
    lists = {name: options.pop(name) for name in list(options) if name in plural}
    lists["models"] = models
    for name, field in plural.items():  # a single value is a list of one
        if field in options:
            if name in lists:
                raise TypeError(f"sweep() got both `{field}` and `{name}`: give one. "
                                f"Received: {field}={options[field]!r}, {name}={lists[name]!r}")
            lists[name] = [options.pop(field)]
    lists.setdefault("batch_sizes", DEFAULT_BATCH_SIZES)
    for name, values in lists.items():
        if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"`{name}` must be a non-empty list. Received: {name}={values!r}")
    base = make_config(None, RunConfig(), options, function="sweep")
    infos = {m: model_info(m) for m in models}  # unknown names fail here, with a hint
    for info in infos.values():
        base.check_model(info)  # image size vs the model's minimum
    for b in lists["batch_sizes"]:  # sorted below: each must be an integer first
        _validate.integer("batch_size", b, minimum=1)
    lists["batch_sizes"] = sorted(set(lists["batch_sizes"]))
    order = ["models"] + [p for p in plural if p in lists and p not in
                          ("models", "batch_sizes")] + ["batch_sizes"]
    seen, out = set(), []
    for values in itertools.product(*(lists[name] for name in order)):
        fields = {plural[name]: value for name, value in zip(order, values)}
        c = base.replace(**{**fields, "model": infos[fields["model"]].name})
        if c.key() not in seen:
            seen.add(c.key())
            out.append(c)
    for c in out:  # a device named up front is checked up front (fp16 on a CPU)
        if c.device is not None:
            c.check_device(c.device)
    return out


def results_path(out, machine):
    """The JSON Lines file for ``out``: itself if it ends in ``.jsonl``, else
    ``<out>/<machine>.jsonl``."""
    out = _validate.path("out", out)
    if out.endswith(".jsonl"):
        return out
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", machine).strip("-") or "results"
    return os.path.join(out, f"{safe}.jsonl")


def _check_writable(path):
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                     0o644)
        os.close(fd)
    except OSError as e:
        raise ValueError(
            f"`out` must be a folder or .jsonl file that can be written (not a link). "
            f"Received: out={path!r} ({e.strerror or e})"
        ) from None


def sweep(models, *, out=None, machine=None, repeats=1, resume=False, retry_failed=False,
          oom_retry=False, isolate=True, timeout_s=None, progress=True, **options):
    """Runs `reference` over every configuration and keeps every result.

    Args:
        models: Registry names (combined with the lists in ``options``, see
            `plan`), or a list of `RunConfig` to run as they are.
        out: A folder (results go to ``<out>/<machine>.jsonl``), a ``.jsonl``
            file, or ``None`` to keep results in memory only. Each result is
            appended the moment its run ends (flushed, fsynced, locked: safe
            with several sweeps writing to the same file).
        machine: Label of this machine in the results (default host name).
        repeats: Run each configuration this many times, each time in a
            fresh process (with ``isolate``), in rounds: every configuration
            once, then every one again, so that a slow drift of the machine
            spreads over all of them. Reports and comparisons show the mean
            of the runs and its 95 % interval across them. Default 1.
        resume: Skip configurations this machine already has in the file
            (same machine label and every setting equal); with ``repeats``,
            run only the repeats missing.
        retry_failed: With ``resume``, run again those recorded as failed.
        oom_retry: After an out-of-memory failure, retry at half the batch
            size, and again, down to 1; every attempt is recorded.
        isolate: Run each configuration in a fresh Python process (default).
            A crash or an out-of-memory kill then becomes a recorded failure
            instead of ending the sweep, and no state leaks between runs.
        timeout_s: Stop a run after this many seconds and record it as an
            error (isolated runs only: with ``isolate=False`` it is refused).
        progress: Show configuration i of n, elapsed time and an estimate of
            the time left. ``False`` prints nothing.
        **options: Lists to combine, by plural name: ``batch_sizes``
            (default 16, 32, 64), ``precisions`` (``fp32``, ``fp16``,
            ``bf16``), ``devices`` (``cpu``, ``gpu``, ``gpu:N``; ``None`` the
            best available), ``modes`` (``train``, ``inference``), ``backends``
            (``tensorflow``, ``jax``, ``torch``: each in its own process). And
            any other `RunConfig` field, the same for every run (``steps``,
            ``warmup_steps``, ``image_size``, ``num_classes``, ``optimizer``,
            ``jit_compile``, ``data_format``, ``steps_per_execution``, ``seed``).

    Returns:
        The list of `BenchmarkResult` of this call, in the order run,
        failures included (configurations skipped by ``resume`` are not in
        it).

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
    configs = _configs(models, options)
    repeats = _validate.integer("repeats", repeats, minimum=1)
    _validate.number("timeout_s", timeout_s, positive=True, allow_none=True)
    isolate = _validate.boolean("isolate", isolate)
    if timeout_s is not None and not isolate:
        raise ValueError("`timeout_s` needs isolated runs: a run in this process cannot be "
                         f"stopped. Received: timeout_s={timeout_s!r}, isolate=False")
    machine = _validate.text("machine", machine, allow_none=True, single_line=True) or \
        socket.gethostname()
    path = results_path(out, machine) if out is not None else None
    if path is not None:
        _check_writable(path)
    modules = _model_modules(configs) if isolate else ()
    done = finished_counts(path, machine, retry_failed) if resume and path is not None else {}
    # Rounds: repeat r of every configuration before repeat r + 1 of any.
    schedule = [(c, r) for r in range(1, repeats + 1) for c in configs
                if done.get(c.key(), 0) < r]
    runner = _Runner(machine, isolate, timeout_s, modules)
    display = Progress(len(schedule), enabled=progress, repeats=repeats)
    return _run_all(schedule, runner, path, oom_retry, display)


def _configs(models, options):
    if isinstance(models, (list, tuple)) and models and \
            all(isinstance(m, RunConfig) for m in models):
        _validate.keywords("sweep (with a list of RunConfig)", options, ())
        return list(dict.fromkeys(models))
    return plan(models, **options)


def finished_keys(path, machine, retry_failed=False):
    """The `RunConfig.key` of every run ``machine`` already has in ``path``.

    Results carry the configuration as requested, so this matches a plan
    exactly: the same model, settings and machine label. Failed runs count
    as finished unless ``retry_failed``.
    """
    return set(finished_counts(path, machine, retry_failed))


def finished_counts(path, machine, retry_failed=False):
    """How many times ``machine`` already ran each `RunConfig.key` in ``path``.

    A run is counted once, however many out-of-memory retries it took: its
    first attempt is the result at the requested batch size (retries ran at
    smaller ones). With ``retry_failed`` only successful runs count.

    Returns:
        A dict key -> count, for the keys counted at least once.
    """
    from kerasbench._results import read_results

    if not os.path.getsize(path):
        return {}
    counts = {}
    for r in read_results(path):
        asked = r.requested or r.config
        first_attempt = r.config.batch_size == asked.batch_size
        if r.machine == machine and (r.ok if retry_failed else first_attempt):
            counts[asked.key()] = counts.get(asked.key(), 0) + 1
    return counts


def _model_modules(configs):
    """Modules the worker must import to know every model of ``configs``.

    Models registered in an importable module are made known to the child by
    importing that module there; a model registered in ``__main__`` (a script
    or a notebook) cannot be, and is refused before anything runs.
    """
    from kerasbench._models._registry import builder_module

    modules = []
    for name in dict.fromkeys(c.model for c in configs):
        module = builder_module(name)
        if module == "__main__":
            raise ValueError(
                f"`models` includes {name!r}, registered in __main__: an isolated run "
                "starts a fresh Python process that cannot see it. Register it in an "
                "importable module, or pass isolate=False (--no-isolate). "
                f"Received: models=[..., {name!r}, ...]")
        if not module.startswith("kerasbench."):
            modules.append(module)
    return tuple(dict.fromkeys(modules))


def _run_all(schedule, runner, path, oom_retry, display):
    from kerasbench._results import append_result

    results = []
    guard = _InterruptGuard()
    try:
        for config, repeat in schedule:
            guard.check()
            display.start(config, repeat)
            attempt = config
            while True:
                result = runner.run(attempt, requested=config)
                results.append(result)
                if path is not None:
                    append_result(path, result)
                retry = oom_retry and result.status == "oom" and attempt.batch_size > 1
                display.finished(result, final=not retry)
                if not retry:
                    break
                attempt = attempt.replace(batch_size=attempt.batch_size // 2)
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


class _Runner:
    """Runs one configuration, in a worker process or in this one."""

    def __init__(self, machine, isolate, timeout_s, modules=()):
        self.machine, self.isolate = machine, isolate
        self.timeout_s, self.modules = timeout_s, modules
        self._device_reports = {}  # backend -> the first device report a worker sent
        self._local_report = None  # a DeviceReport, for runs in this process

    def run(self, config, requested):
        here = not self.isolate and config.backend in (None, current_backend())
        result = self._run_here(config) if here else self._run_child(config)
        result.machine = self.machine
        result.requested = requested
        return result

    def _run_here(self, config):
        from kerasbench._runs.reference import _Run

        job = _Run(config, None, 0, self.machine, self._local_report)
        try:
            return job.execute()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - every failure is a result
            return worker.failure_result(job, e)
        finally:
            self._local_report = job.device_report  # collected once per sweep

    def _run_child(self, config):
        report = self._device_reports.get(config.backend)
        result = worker.call(config, machine=self.machine, modules=self.modules,
                             device_report=report, timeout_s=self.timeout_s)
        if report is None and result.device_report is not None:
            self._device_reports[config.backend] = result.device_report
        return result
