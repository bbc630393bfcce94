"""The ``kerasbench`` command: a thin layer over the library.

Every subcommand parses its flags, calls one library function and prints what
it returns. ``main(argv)`` returns the exit code: 0 on success, 1 when a run
failed or a health check found a failing device (a WARNING exits 0), 2 on bad
input (one line on stderr), 130 when interrupted. Set ``KERASBENCH_TRACEBACK=1``
to see the full traceback of an error.

TensorFlow's C++ start-up log is quieted (see `_quiet_tensorflow`) unless the
user set ``TF_CPP_MIN_LOG_LEVEL`` themselves; a variable kerasbench set is
named in ``KERASBENCH_SET_ENV`` so that device reports list only the user's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from kerasbench._version import __version__

PROG = "kerasbench"


class _UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _converter(convert, words):
    """An argparse type that converts with ``convert`` (its range is
    `RunConfig`'s to check) and says ``must be <words>`` otherwise."""
    def parse(text):
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}") from None

    return parse


_integer = _converter(int, "an integer")
_real = _converter(float, "a number")


def _field_type(field):
    """The argparse type of a `RunConfig` field: int, float or str."""
    kind = str(field.type)
    return _integer if "int" in kind else (_real if "float" in kind else str)


def _flag(field):
    return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def _add_config_flags(parser, *, lists=False, skip=()):
    """Adds a flag per `RunConfig` field (the one table of run options).

    Flags default to ``None``: only what is given reaches `RunConfig`, whose
    defaults and checks apply. With ``lists``, fields a sweep combines take
    comma lists under their plural name (``--batch-sizes``, alias
    ``--batch-size``).
    """
    from kerasbench._runs.config import options

    for field, meta in options():
        if field.name in skip:
            continue
        default = "" if field.default is None else f" (default: {field.default})"
        kwargs = {"default": None, "help": meta["help"] + default}
        if meta["boolean"]:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif lists and meta["sweep"]:
            plural = "--" + meta["sweep"].replace("_", "-")
            convert = _field_type(field)
            parser.add_argument(plural, _flag(field), dest=meta["sweep"],
                                type=_comma_list(convert, field.name.replace("_", " ")),
                                metavar="A,B", help=f"comma list: {meta['help']}")
            continue
        else:
            kwargs["type"] = _field_type(field)
            kwargs["metavar"] = "N" if kwargs["type"] is not str else None
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
        parser.add_argument(_flag(field), dest=field.name, **kwargs)


def _config_options(args, *, lists=False, skip=()):
    """The `RunConfig` fields given on the command line, by name."""
    from kerasbench._runs.config import options

    given = {}
    for field, meta in options():
        if field.name in skip:
            continue
        name = meta["sweep"] if lists and meta["sweep"] and not meta["boolean"] else field.name
        value = getattr(args, name, None)
        if value is not None:
            given[name] = value
    return given


#: Environment variables kerasbench set itself, as comma-separated NAME=VALUE
#: pairs: a device report leaves such a variable out while it still holds
#: that value, so it lists only what the user set. Child processes inherit it.
SET_ENV = "KERASBENCH_SET_ENV"
#: TensorFlow's C++ log level the command line uses when the user set none:
#: errors too are hidden (the "failed call to cuInit" a machine without a GPU
#: prints); the device report explains a missing GPU in plain words instead.
TF_LOG_LEVEL = "3"
# What TensorFlow's C++ libraries print while they load, before its logging is
# set up, whatever TF_CPP_MIN_LOG_LEVEL says: absl's preamble and I/W/E lines
# ("I0000 00:00:1795946979.260148   32186 port.cc:153] oneDNN custom ...").
_STARTUP_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} [\d:.]+ +\d+ [\w.\-]+:\d+\] .*")


def set_by_kerasbench(environ=None):
    """The variables kerasbench set itself, ``{name: value}`` (from `SET_ENV`)."""
    environ = os.environ if environ is None else environ
    pairs = (item.partition("=") for item in environ.get(SET_ENV, "").split(","))
    return {name: value for name, sep, value in pairs if name and sep}


def _quiet_tensorflow(load=False):
    """Quiets TensorFlow's C++ log, unless the user set its level.

    TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once, when it loads. So, before
    anything loads it, this sets the variable to `TF_LOG_LEVEL` when the user
    did not set it, and records that in `SET_ENV` (child processes, such as
    sweep workers, inherit both). Once TensorFlow is loaded it does nothing.

    Args:
        load: Also import Keras (and so its backend's framework) now, with
            the process's stderr captured at the file-descriptor level, and
            write back what it printed except TensorFlow's start-up lines
            (they come before its logging is set up and ignore
            ``TF_CPP_MIN_LOG_LEVEL``). For commands that load the framework
            in this process anyway. Once TensorFlow has loaded, the variable
            has done its work and the environment is restored to the user's,
            so a device report collected in this process lists only what the
            user set. Nothing is captured when the user set the level: then
            they asked for TensorFlow's log.
    """
    name = "TF_CPP_MIN_LOG_LEVEL"
    if "tensorflow" in sys.modules:
        return  # too late to change anything
    ours = set_by_kerasbench()
    if name in os.environ and ours.get(name) != os.environ[name]:
        return  # the user's setting: their log, untouched
    before = {key: os.environ.get(key) for key in (name, SET_ENV)}
    os.environ[name] = TF_LOG_LEVEL
    os.environ[SET_ENV] = ",".join(f"{k}={v}" for k, v in {**ours, name: TF_LOG_LEVEL}.items())
    if not load:
        return
    _import_quietly("keras")
    if "tensorflow" in sys.modules:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _import_quietly(module):
    """Imports ``module`` with fd 2 captured; writes back all but start-up noise.

    An import that fails is left for the caller's own import to report: what
    it printed is written back whole.
    """
    import importlib
    import importlib.util
    import tempfile

    if module in sys.modules:
        return
    try:
        if importlib.util.find_spec(module) is None:
            return
    except (ImportError, ValueError):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - reported by the caller's own import
            failed = True
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        log.seek(0)
        text = log.read().decode("utf-8", errors="replace")
    kept = [line for line in text.splitlines()
            if failed or not _STARTUP_NOISE.fullmatch(line)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()


# ------------------------------------------------------------------- run


def _add_run(sub):
    p = sub.add_parser(
        "run",
        help="benchmark a reference model on synthetic data",
        description=(
            "Benchmark a reference model on synthetic images through model.fit "
            "(--mode train) or model.predict (--mode inference), timed by "
            "ThroughputCallback. Prints a line every 10 steps, a summary, and "
            "ends with 'total images/sec: N'."
        ),
    )
    p.add_argument("model", nargs="?", default=None,
                   help="registry name (default: alexnet; see 'kerasbench list')")
    _add_config_flags(p, skip=("model",))
    p.add_argument("--log-dir", default=None,
                   help="write TensorBoard scalars and the device report here")
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON instead of progress lines")
    p.add_argument("--quiet", action="store_true",
                   help="print only the summary, not the per-step lines")
    p.set_defaults(handler=_run)


def _run(args):
    _quiet_tensorflow()
    from kerasbench._runs.reference import reference

    result = reference(args.model or "alexnet", log_dir=args.log_dir,
                       verbose=0 if args.json else (2 if args.quiet else 1),
                       **_config_options(args, skip=("model",)))
    if args.json:
        print(result.to_json(indent=2))
    return 0


# ------------------------------------------------------------------ list


def _add_list(sub):
    p = sub.add_parser("list", help="list the reference models",
                       description="List the reference models, with image size and size.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style wildcard, e.g. 'resnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_list)


def _list(args):
    import json

    from kerasbench._models import list_models, model_info

    infos = [model_info(name) for name in list_models(args.pattern)]
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    if not infos:
        print(f"no model matches {args.pattern!r}")
        return 0
    width = max(len(i.name) for i in infos)
    print(f"{'model':<{width}}  {'image':>5}  {'min':>4}  {'params':>12}  description")
    for i in infos:
        print(f"{i.name:<{width}}  {i.image_size:>5}  {i.min_image_size:>4}  "
              f"{i.params:>12,}  {i.description}")
    return 0


# ---------------------------------------------------------------- device


def _add_device(sub):
    p = sub.add_parser(
        "device", help="describe this machine and check its devices",
        description=("Describe the hardware and software that produce the numbers; with "
                     "--check, test each device (correctness, TFLOP/s, copy bandwidth). "
                     "Exit code 1 if a device FAILs the check (a wrong result, an error, "
                     "or GPU work that ran on the CPU); a WARNING (correct, but slower "
                     "than expected) exits 0."),
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--check", action="store_true",
                   help="run the health check too (a few seconds); exit code 1 if a "
                        "device FAILs, 0 on OK or WARNING")
    p.set_defaults(handler=_device)


def _device(args):
    """``kerasbench device [--check] [--json]``: 1 if a device FAILs the check."""
    _quiet_tensorflow()
    from kerasbench._device import DeviceReport

    report = DeviceReport.collect()
    health = report.check() if args.check else None
    if args.json:
        print(report.to_json(indent=2))
    else:
        print(report)
        if health is not None:
            print()
            print(health)
    # `ok` is False only on a failure: a WARNING (slow, but correct) is still 0.
    return 0 if health is None or health.ok else 1


# ----------------------------------------------------------------- sweep


def _comma_list(convert, name):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must list at least one {name}, got {text!r}")
        return [convert(t) for t in items]

    return parse


def _add_sweep(sub):
    p = sub.add_parser(
        "sweep",
        help="run many configurations, keeping every result in a file",
        description=(
            "Run every combination of models, batch sizes, precisions, devices and "
            "modes, each in a fresh process, appending each result to "
            "OUT/MACHINE.jsonl the moment it finishes. Failures (out of memory, "
            "errors) are recorded and the sweep goes on; the exit code is 1 if any "
            "configuration failed. Lists are comma-separated; defaults: batch sizes "
            "16,32,64, precision fp32, the best device, mode train."
        ),
    )
    _add_config_flags(p, lists=True)
    p.add_argument("--out", default="results",
                   help="folder for MACHINE.jsonl, or a .jsonl file (default: results)")
    p.add_argument("--machine", default=None,
                   help="label of this machine in the results (default: host name)")
    p.add_argument("--repeats", type=_integer, default=1, metavar="N",
                   help="run each configuration N times, each in a fresh process, in rounds "
                        "(every configuration once, then again); reports and comparisons "
                        "show the mean and its 95%% interval across the runs (default: 1)")
    p.add_argument("--resume", action="store_true",
                   help="skip configurations this machine already has in the results file "
                        "(with --repeats, run only the missing repeats)")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume, run failed configurations again")
    p.add_argument("--oom-retry", action="store_true",
                   help="after an out-of-memory failure, retry at half the batch size "
                        "(down to 1)")
    p.add_argument("--no-isolate", action="store_true",
                   help="run configurations in this process (faster to start, but a "
                        "crash ends the sweep; --timeout needs isolation)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds after which a run is stopped and recorded as an error")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(handler=_sweep)


def _sweep(args):
    _quiet_tensorflow()
    from kerasbench._runs.sweep import sweep

    options = _config_options(args, lists=True)
    if "models" not in options:
        raise _UsageError(f"{PROG} sweep: error: the following arguments are required: "
                          f"--models (see '{PROG} sweep --help')")
    results = sweep(
        options.pop("models"), out=args.out, machine=args.machine, repeats=args.repeats,
        resume=args.resume,
        retry_failed=args.retry_failed, oom_retry=args.oom_retry,
        isolate=not args.no_isolate, timeout_s=args.timeout, progress=not args.quiet,
        **options,
    )
    failed = [r for r in results if not r.ok]
    if results and not args.quiet:
        from kerasbench._results import compare, markdown_tables

        print()
        print(markdown_tables(results))
        backends = list(dict.fromkeys(r.backend for r in results if r.backend))
        if len(backends) > 1:  # the backends side by side, with ratios to the first
            print(compare([(b, [r for r in results if r.backend == b]) for b in backends])
                  .to_markdown())
    print(f"{len(results) - len(failed)} of {len(results)} runs succeeded"
          + (f"; {len(failed)} failed (see 'status' and 'error' in the results file)"
             if failed else ""))
    return 1 if failed else 0


# --------------------------------------------------------------- scaling


def _add_scaling(sub):
    p = sub.add_parser(
        "scaling", help="one model on 1..N replicas: speedup and efficiency",
        description=("Run a reference model with tf.distribute.MirroredStrategy on each "
                     "number of replicas in --devices (GPUs, or logical CPU devices on a "
                     "CPU), each in its own process, and print images/sec, speedup and "
                     "efficiency = images/sec / (N x 1-replica images/sec). --batch-size "
                     "is per replica."),
    )
    p.add_argument("model", help="registry name (see 'kerasbench list')")
    p.add_argument("--devices", type=_comma_list(_integer, "replica count"), default=[1, 2],
                   metavar="A,B", help="replica counts (default: 1,2)")
    _add_config_flags(p, skip=("model", "strategy", "num_devices"))
    p.add_argument("--out", default=None, help="append the results to this .jsonl file "
                                               "or folder")
    p.add_argument("--machine", default=None, help="label of this machine in the results")
    p.set_defaults(handler=_scaling)


def _scaling(args):
    _quiet_tensorflow()
    from kerasbench._runs.scaling import scaling, scaling_table

    results = scaling(args.model, devices=args.devices, out=args.out, machine=args.machine,
                      progress=True, **_config_options(args, skip=("model",)))
    print()
    print(scaling_table(results))
    return 0 if all(r.ok for r in results) else 1


# ---------------------------------------------------------------- report


def _add_report(sub):
    p = sub.add_parser(
        "report", help="Markdown tables and a PNG chart from results",
        description=("Write report.md (tables in the seed's shape: rows = batch sizes, "
                     "columns = models, cells = images/sec +/- the half-width of its 95% "
                     "confidence interval; the mean of the runs for repeated "
                     "configurations), report.png (images/sec per model, grouped by machine "
                     "and device, with speedups and error bars) and results.csv next to the "
                     "results, and print the tables."),
    )
    p.add_argument("results", help="a results .jsonl file or a folder of them")
    p.add_argument("--out", default=None,
                   help="folder for report.md, report.png and results.csv (default: the "
                        "results folder)")
    p.add_argument("--models", type=_comma_list(str, "model"), default=None,
                   help="column order, e.g. inception3,resnet50,vgg16,alexnet,nasnet")
    p.add_argument("--batch-size", type=_integer, default=None,
                   help="chart only this batch size (default: one panel per batch size)")
    p.add_argument("--baseline", default=None,
                   help="series the chart's speedups are relative to (default: the slowest)")
    p.add_argument("--with-baseline", action="append", default=[], metavar="NAME",
                   help="add a bundled published baseline (e.g. gtx1050ti-fp16) to the "
                        "tables and the chart; may be repeated")
    p.set_defaults(handler=_report)


def _report(args):
    from kerasbench._results import (
        load_baseline,
        markdown_tables,
        read_results,
        write_csv,
        write_report,
    )

    results = read_results(args.results)
    for name in args.with_baseline:
        results += load_baseline(name)
    out = args.out or (args.results if os.path.isdir(args.results)
                       else os.path.dirname(os.path.abspath(args.results)))
    paths = write_report(results, out, models=args.models, batch_size=args.batch_size,
                         baseline=args.baseline)
    csv_path = write_csv(results, os.path.join(out, "results.csv"))
    print(markdown_tables(results, models=args.models))
    print(f"wrote {paths['markdown']}")
    print(f"wrote {csv_path}")
    if paths.get("png"):
        print(f"wrote {paths['png']}")
    else:
        print("no chart: no run succeeded")
    return 0


# --------------------------------------------------------------- compare


def _add_compare(sub):
    from kerasbench._results import list_baselines

    p = sub.add_parser(
        "compare", help="compare result sets side by side, with ratios",
        description=("Compare result sets (files, folders, bundled baselines) side by side, "
                     "matching configurations by model, mode, batch size and precision; "
                     "ratios are relative to the first set or to --baseline, with their 95% "
                     "interval (Fieller) where both sides have one and 'n.s.' where the "
                     "difference is not significant; configurations found on one side "
                     "only are listed."),
    )
    p.add_argument("results", nargs="+", help="results .jsonl files or folders")
    p.add_argument("--baseline", default=None,
                   help="a bundled baseline (" + ", ".join(list_baselines()) + ") or the "
                        "label of one of the inputs; ratios are relative to it")
    p.add_argument("--ignore", type=_comma_list(str, "field"), default=(),
                   help="fields not to match on, e.g. precision (to set a CPU's fp32 or "
                        "bf16 beside a GPU's fp16)")
    p.add_argument("--models", type=_comma_list(str, "model"), default=None,
                   help="compare only these models, e.g. inception3,resnet50,vgg16")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=_compare)


def _compare(args):
    import json

    from kerasbench._results import compare, load_baseline, read_results

    sets = [(os.path.basename(os.path.normpath(path)) or path, read_results(path))
            for path in args.results]
    baseline = args.baseline
    if baseline is not None and baseline not in {label for label, _ in sets}:
        # Not one of the inputs: a bundled baseline (unknown names fail with a hint).
        sets.insert(0, (baseline, load_baseline(baseline)))
    if args.models is not None:
        from kerasbench._models import model_info

        keep = {model_info(name).name for name in args.models}  # unknown names: a hint
        sets = [(label, [r for r in results if r.model in keep]) for label, results in sets]
    comparison = compare(sets, baseline=baseline, ignore=tuple(args.ignore))
    if args.json:
        print(comparison.to_json(indent=2))
    else:
        print(comparison.to_markdown())
    return 0


# ------------------------------------------------------------ bottleneck


def _add_bottleneck(sub):
    from kerasbench._bottleneck.command import add_command, run_command

    add_command(sub, _integer, _real, run_command)


# ------------------------------------------------------------------ main


COMMANDS = (_add_run, _add_list, _add_device, _add_sweep, _add_scaling, _add_report,
            _add_compare, _add_bottleneck)


def build_parser():
    """The argument parser of the ``kerasbench`` command."""
    parser = _Parser(
        prog=PROG,
        description=("kerasbench: how fast does my model train on this machine, and is "
                     "my GPU working?"),
        epilog="Run 'kerasbench COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"kerasbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


#: Commands that load Keras and its framework in this process (the sweep
#: process never does: its runs are worker processes).
_LOADS_FRAMEWORK = ("run", "device", "bottleneck")


def main(argv=None):
    """Runs the command line; returns the exit code.

    Args:
        argv: Arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success; 1 if a run failed or ``device --check`` found a device
        that FAILs (a WARNING is 0); 2 on bad input; 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        _quiet_tensorflow(load=args.command in _LOADS_FRAMEWORK and _runs_here(args))
        return args.handler(args)
    except _UsageError as e:
        print(e, file=sys.stderr)
        return 2
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    except (ValueError, TypeError, OSError) as e:
        if os.environ.get("KERASBENCH_TRACEBACK"):
            raise
        print(f"{PROG}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failed run: one line, not a stack trace
        if os.environ.get("KERASBENCH_TRACEBACK"):
            raise
        print(f"{PROG}: error: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 1


def _runs_here(args):
    """Whether the command runs on this process's Keras backend (``run
    --backend other`` runs in a worker process: nothing to load here)."""
    backend = getattr(args, "backend", None)
    if backend is None:
        return True
    from kerasbench._runs.reference import current_backend

    return backend == current_backend()


def _one_line(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 2000 else text[:1997] + "..."
