"""The documentation runs: every command and Python block in README.md and
docs/*.md, and every pasted output still has the shape of what the tool prints.

Conventions for the pages (also stated in README.md, "Documentation"):

* Every fenced block says what it is, by its language or a marker:

  - ```` ```bash ```` (or ``sh``, ``shell``, ``console``): commands, one per
    line (a trailing ``\\`` continues a line, ``#`` starts a comment,
    ``&&`` chains commands). They run in order, each in a fresh ``bash``, in a
    temporary folder of the page's own, and each must exit with 0.
  - ```` ```python ````: the page's Python blocks run in order as one script,
    like notebook cells (a later block may use a name an earlier one
    defined), in another temporary folder.
  - ```` ```text ```` (or any other language): not a command: a pasted output,
    a diagram, a table. Never run.
  - A fence with no language must be marked as an output (below): an
    unlabelled block is an error, so that no command goes unrun by accident.

* ``<!-- output -->`` on the line before a fence: the block is what the
  previous block printed. ``<!-- output: COMMAND -->``: what ``COMMAND``
  prints (run at that point, in the page's folder; a command the page ran
  already is not run again). The shape is checked: each pasted line becomes
  a pattern (numbers generalised, runs of spaces flexible, the device names
  ``cpu`` and ``gpu:N`` interchangeable; consecutive lines of one pattern
  match one or more lines; a line ``...`` stands for lines left out), and
  the patterns must match lines of the real output in order. Lines the tool
  prints beyond the pasted ones are allowed: a pasted output may be an excerpt.

The checkout is never written to: each page's folders get copies of
`COPIED` (the paths the pages' commands read, such as ``docs/data``), and a
command that changes those copies fails the test, since run as written it
would write into the reader's checkout.

Scaling. Runs are cut down through ``KERASBENCH_DOCS_SCALE`` (a JSON object,
`SCALE`), which a ``sitecustomize`` module put on ``PYTHONPATH`` (`SHIM`)
applies in every Python process the pages start, sweep workers included:
every `RunConfig` gets at most ``steps`` measured steps, at most
``batch_size`` images per step, a warmup no longer than its steps, and the
models in ``models`` are replaced (the heavy ones by LeNet); a model without
an ``image_size`` runs at its minimum size, but at least 32 pixels (and never
above its own size); a sweep runs only its first ``sweep_models`` model(s).
The flags and the code paths are the documented ones; only the sizes shrink.
A command's own ``PYTHONPATH=...`` keeps the shim (its folder is appended).
The environment is a new user's otherwise: no ``TF_CPP_MIN_LOG_LEVEL``.
Pages run two at a time; on the 2-vCPU development VM the whole file takes
about two to three minutes, README.md (about 70 s) the longest.

Commands that are not run, each for a stated reason and with a check in its
place: `NOT_RUN`. Commands that name a GPU (``--device gpu``, ``--devices
cpu,gpu``): on a machine without a GPU they must fail saying that this
machine has none (`NO_GPU_MESSAGE`), and what remains with the GPUs taken out
of their device lists must succeed; on a machine with a GPU they run as
written.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md",
         *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
#: Checkout paths the pages' commands read; copied into each temporary folder.
COPIED = ("docs/data", "examples")
#: How runs are scaled down (see the module docstring).
SCALE = {
    "steps": 10,
    "batch_size": 16,
    "sweep_models": 1,
    "models": {name: "lenet" for name in (
        "resnet50", "resnet101", "resnet152", "inception3", "vgg16", "nasnet",
        "nasnetlarge", "mobilenet_v2", "densenet121")},
}
#: The message every command that needs a GPU must fail with on a machine without one.
NO_GPU_MESSAGE = "must be one of the devices on this machine"
#: Seconds a single command or a page's Python script may take.
TIMEOUT_S = 600
SHELLS = ("bash", "sh", "shell", "console")

SHIM = '''\
"""Scales kerasbench runs down for tests/test_docs.py: see SCALE there."""
import json
import os

_scale = os.environ.get("KERASBENCH_DOCS_SCALE")
if _scale:
    _scale = json.loads(_scale)
    from kerasbench._runs import config as _config
    from kerasbench._runs import sweep as _sweep

    _RunConfig = _config.RunConfig
    _post_init, _check_model, _plan = (
        _RunConfig.__post_init__, _RunConfig.check_model, _sweep.plan)

    def __post_init__(self):
        _post_init(self)
        steps = min(self.steps, _scale["steps"])
        object.__setattr__(self, "model", _scale["models"].get(self.model, self.model))
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "batch_size", min(self.batch_size, _scale["batch_size"]))
        if self.warmup_steps is not None:
            object.__setattr__(self, "warmup_steps", min(self.warmup_steps, steps))

    def check_model(self, info):
        if self.image_size is None:
            return min(info.image_size, max(info.min_image_size, 32))
        return _check_model(self, info)

    def plan(models, **options):
        if isinstance(models, (list, tuple)):
            mapped = [_scale["models"].get(m, m) if isinstance(m, str) else m for m in models]
            models = list(dict.fromkeys(mapped))[:_scale["sweep_models"]]
        return _plan(models, **options)

    _RunConfig.__post_init__ = __post_init__
    _RunConfig.check_model = check_model
    _sweep.plan = plan
'''


# ---------------------------------------------------------------- parsing


@dataclasses.dataclass
class Block:
    page: str
    line: int            # line of the opening fence, 1-based
    lang: str
    text: str
    output: str | None   # None: no output marker; "": the previous block's; else a command

    @property
    def where(self):
        return f"{self.page}:{self.line}"


_FENCE = re.compile(r"^( *)(`{3,})\s*([\w+-]*)")
_OUTPUT_MARKER = re.compile(r"^\s*<!--\s*output\s*(?::\s*(?P<command>.*?))?\s*-->\s*$")


@functools.lru_cache(maxsize=None)
def parse(page):
    """The fenced blocks of a page, with their output markers."""
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[indent:] if not line[:indent].strip() else line
                         for line in lines[i + 1:end])
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _OUTPUT_MARKER.match(before)
        output = None if marker is None else (marker.group("command") or "")
        blocks.append(Block(page, i + 1, lang, body + "\n", output))
        i = end + 1
    return tuple(blocks)


def commands(block):
    """The commands of a shell block, as token lists (comments dropped, ``&&`` split)."""
    joined = re.sub(r"\\\n", " ", block.text)
    out = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        current = []
        for token in tokens:
            if token == "&&":
                out.append(current)
                current = []
            else:
                current.append(token)
        if current:
            out.append(current)
    return [c for c in out if c]


def program(tokens):
    """The command's words after any ``NAME=value`` environment assignments."""
    i = 0
    while i < len(tokens) and re.fullmatch(r"[A-Za-z_]\w*=.*", tokens[i]):
        i += 1
    return tokens[i:]


# --------------------------------------------------- commands not run here


def _check_pip(words, folder):
    """pip is not run: the packages and extras it names must exist."""
    assert words[:3] == ["python", "-m", "pip"] and "install" in words, words
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    for target in words[words.index("install") + 1:]:
        if target.startswith("-"):
            continue
        m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", target)
        assert m, f"pip installs {target!r}: the docs install this checkout ('.' or '.[extras]')"
        for extra in filter(None, (m.group(1) or "").split(",")):
            assert re.search(rf'"{re.escape(extra)}":\s*\[', setup), \
                f"setup.py has no extra {extra!r}"


def _check_pytest(words, folder):
    """pytest is not run (it would run this test): its markers must be declared."""
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        markers = tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]
    declared = {m.split(":")[0].strip() for m in markers}
    args = words[3:]
    if "-m" in args:
        expression = args[args.index("-m") + 1]
        for word in re.findall(r"\w+", expression):
            assert word in {"and", "or", "not"} | declared, \
                f"pytest -m {expression!r}: marker {word!r} is not declared in pyproject.toml"


def _check_tensorboard(words, folder):
    """TensorBoard is not started: it is installed, and the folder it is given
    holds event files written by an earlier block of the page."""
    assert Path(sys.executable).with_name("tensorboard").exists(), "tensorboard is not installed"
    assert "--logdir" in words, words
    logdir = Path(folder) / words[words.index("--logdir") + 1]
    events = list(logdir.rglob("events.out.tfevents.*"))
    assert events, f"{logdir} holds no event files: no earlier block of the page wrote them"


#: Commands that are not run, why, and what is checked in their place.
NOT_RUN = {
    ("python", "-m", "pip"): ("installs packages into the environment running the tests",
                              _check_pip),
    ("python", "-m", "pytest"): ("runs the test suite, which runs this test", _check_pytest),
    ("tensorboard",): ("starts a web server that runs until it is stopped", _check_tensorboard),
}


def not_run(words):
    for prefix, (reason, check) in NOT_RUN.items():
        if tuple(words[:len(prefix)]) == prefix:
            return reason, check
    return None


# -------------------------------------------------------------------- GPU


def gpu_free(words):
    """``(names a GPU, the command with the GPUs taken out of its device
    lists or None when nothing is left)``."""
    out, names_gpu, nothing_left = [], False, False
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=")
        if flag in ("--device", "--devices") and (eq or i + 1 < len(words)):
            if not eq:
                i += 1
                value = words[i]
            items = value.split(",")
            kept = [d for d in items if not re.fullmatch(r"gpu(:\d+)?", d.strip())]
            if len(kept) < len(items):
                names_gpu = True
                nothing_left = nothing_left or not kept
            if kept:
                out += [flag, ",".join(kept)]
        else:
            out.append(word)
        i += 1
    return names_gpu, (None if nothing_left else out)


@functools.lru_cache(maxsize=None)
def has_gpu():
    code = "import tensorflow as tf; print(bool(tf.config.list_physical_devices('GPU')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=_env())
    return out.stdout.strip().endswith("True")


# ------------------------------------------------------------ shape check


NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?"
_TOKENS = re.compile(rf"(?P<num>{NUMBER})|(?P<dev>\b(?:cpu|gpu:\d+)\b)|(?P<space>\s+)")


def line_pattern(line):
    """A pasted line as a regular expression: numbers generalised, runs of
    spaces flexible, ``cpu`` and ``gpu:N`` interchangeable."""
    parts, pos = [], 0
    line = line.strip()
    for m in _TOKENS.finditer(line):
        parts.append(re.escape(line[pos:m.start()]))
        parts.append(NUMBER if m.group("num") else
                     r"(?:cpu|gpu:\d+)" if m.group("dev") else r"\s+")
        pos = m.end()
    parts.append(re.escape(line[pos:]))
    return "".join(parts)


def shape_mismatch(pasted, actual):
    """None if ``actual`` has the shape of ``pasted`` (see the module
    docstring), else a sentence saying which pasted line found no match."""
    patterns = []
    for line in pasted.splitlines():
        if not line.strip() or line.strip() in ("...", "\u2026"):
            continue
        pattern = line_pattern(line)
        if not patterns or patterns[-1][0] != pattern:
            patterns.append((pattern, line.strip()))
    lines = [line.strip() for line in actual.splitlines() if line.strip()]
    i = 0
    for pattern, original in patterns:
        regex = re.compile(pattern)
        while i < len(lines) and not regex.fullmatch(lines[i]):
            i += 1
        if i == len(lines):
            return (f"no line of the output (after the ones matched before) has the "
                    f"shape of {original!r}")
        i += 1
    return None


# ------------------------------------------------------------------ running


@functools.lru_cache(maxsize=None)
def _shim_dir():
    folder = Path(tempfile.mkdtemp(prefix="kerasbench-docs-shim-"))
    (folder / "sitecustomize.py").write_text(SHIM)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return str(folder)


def _env():
    """The environment of a new user, with the runs scaled down."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASBENCH_SET_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = _shim_dir()
    env["KERASBENCH_DOCS_SCALE"] = json.dumps(SCALE)
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def _workspace():
    folder = Path(tempfile.mkdtemp(prefix="kerasbench-docs-"))
    for rel in COPIED:
        shutil.copytree(ROOT / rel, folder / rel)
    return folder


def _fingerprint(folder):
    out = {}
    for rel in COPIED:
        for path in sorted((folder / rel).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                out[path.relative_to(folder).as_posix()] = digest
    return out


def _with_shim(command):
    """A command whose own ``PYTHONPATH=...`` assignment keeps the scaling shim."""
    tokens = shlex.split(command)
    for i, token in enumerate(program_prefix(tokens)):
        if token.startswith("PYTHONPATH="):
            tokens[i] = f"{token}{os.pathsep}{_shim_dir()}"
    return shlex.join(tokens)


def program_prefix(tokens):
    """The ``NAME=value`` assignments in front of a command."""
    return tokens[:len(tokens) - len(program(tokens))]


def _run(command, folder):
    """Runs a command line in ``bash``; returns ``(exit code, stdout and stderr)``."""
    try:
        done = subprocess.run(["bash", "-c", _with_shim(command)], cwd=folder, env=_env(),
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT_S, errors="replace")
        return done.returncode, done.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return 124, out + f"\n(timed out after {TIMEOUT_S} s)"


def _tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


_BLOCK_MARK = "@@kerasbench-docs-block {}@@"


def run_python(page, blocks):
    """Runs the page's Python blocks as one script; returns ``(failures,
    output by block line)``."""
    if not blocks:
        return [], {}
    folder = _workspace()
    before = _fingerprint(folder)
    script = Path(tempfile.mkdtemp(prefix="kerasbench-docs-py-")) / "page_blocks.py"
    parts = []
    for block in blocks:
        parts.append(f"print({_BLOCK_MARK.format(block.line)!r}, flush=True)\n")
        parts.append(block.text)
    script.write_text("".join(parts), encoding="utf-8")
    code, out = _run(shlex.join([sys.executable, str(script)]), folder)
    outputs, current = {}, None
    for line in out.splitlines():
        m = re.fullmatch(r"@@kerasbench-docs-block (\d+)@@", line.strip())
        if m:
            current = int(m.group(1))
            outputs[current] = ""
        elif current is not None:
            outputs[current] += line + "\n"
    failures = []
    if code != 0:
        where = f"{page}:{current}" if current is not None else page
        failures.append(f"{where}: the Python block failed (exit code {code}):\n{_tail(out)}")
    if _fingerprint(folder) != before:
        failures.append(f"{page}: a Python block wrote into {', '.join(COPIED)} (the checkout, "
                        "run as written)")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(script.parent, ignore_errors=True)
    return failures, outputs


def run_page(page):
    """Runs every block of a page; returns a list of failure messages."""
    blocks = parse(page)
    failures, py_outputs = run_python(page, [b for b in blocks if b.lang == "python"])
    folder = _workspace()
    before = _fingerprint(folder)
    ran = {}            # command text -> output, for output markers
    previous = None     # output of the previous block
    gpu = None
    for block in blocks:
        if block.output is not None:
            if block.output:
                command = shlex.join(shlex.split(block.output))
                output = ran.get(command)
                if output is None:
                    code, output = _run(command, folder)
                    if code != 0:
                        failures.append(f"{block.where}: `{command}` exited with {code}:\n"
                                        f"{_tail(output)}")
                        continue
            else:
                output = previous
            if output is None:
                failures.append(f"{block.where}: <!-- output --> follows no block that was run")
                continue
            problem = shape_mismatch(block.text, output)
            if problem:
                failures.append(f"{block.where}: the pasted output is out of date: {problem}.\n"
                                f"What the tool prints now:\n{_tail(output, 60)}")
            continue
        if block.lang == "python":
            previous = py_outputs.get(block.line)
            continue
        if block.lang not in SHELLS:
            previous = None
            continue
        previous = ""
        for tokens in commands(block):
            words = program(tokens)
            text = shlex.join(tokens)
            skip = not_run(words)
            if skip:
                try:
                    skip[1](words, folder)
                except AssertionError as e:
                    failures.append(f"{block.where}: `{text}` (not run: {skip[0]}): {e}")
                continue
            names_gpu, remainder = gpu_free(tokens)
            if names_gpu:
                gpu = has_gpu() if gpu is None else gpu
            code, output = _run(text, folder)
            ran[text] = output
            previous += output
            if names_gpu and not gpu:
                if code == 0 or NO_GPU_MESSAGE not in output:
                    failures.append(f"{block.where}: `{text}` names a GPU: on this machine, "
                                    f"which has none, it must fail saying {NO_GPU_MESSAGE!r}; "
                                    f"it exited with {code}:\n{_tail(output)}")
                if remainder is not None:
                    text = shlex.join(remainder)
                    code, output = _run(text, folder)
                    if code != 0:
                        failures.append(f"{block.where}: `{text}` (the command without its "
                                        f"GPUs) exited with {code}:\n{_tail(output)}")
            elif code != 0:
                failures.append(f"{block.where}: `{text}` exited with {code}:\n{_tail(output)}")
    if _fingerprint(folder) != before:
        changed = sorted(set(_fingerprint(folder).items()) ^ set(before.items()))
        failures.append(f"{page}: a command wrote into the checkout (as written, for a reader): "
                        f"{sorted({path for path, _ in changed})}")
    shutil.rmtree(folder, ignore_errors=True)
    return failures


def runnable(page):
    return any(b.lang in SHELLS or b.lang == "python" or b.output for b in parse(page))


# -------------------------------------------------------------------- tests


@pytest.mark.parametrize("page", PAGES)
def test_every_block_says_what_it_is(page):
    """A fence without a language is an error unless it is marked as an output."""
    unlabelled = [f"{b.where}: first line {b.text.splitlines()[0] if b.text.strip() else ''!r}"
                  for b in parse(page) if not b.lang and b.output is None]
    assert not unlabelled, (
        "fenced blocks without a language: tag them ```bash or ```python (run by this "
        "test) or ```text (not run), or mark an output with <!-- output --> / "
        "<!-- output: COMMAND -->:\n" + "\n".join(unlabelled))


@pytest.mark.parametrize("page", PAGES)
def test_output_markers_are_outputs(page):
    """An output marker stands before a block that is not itself run."""
    wrong = [b.where for b in parse(page)
             if b.output is not None and (b.lang in SHELLS or b.lang == "python")]
    assert not wrong, f"output markers before runnable blocks: {wrong}"


def test_the_readme_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [p for p in PAGES if p != "README.md" and f"({p})" not in readme]
    assert not missing, f"README.md does not link {missing}"


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES)
def test_links_resolve(page):
    """Every relative link of a page names a file that exists, and a heading in it."""
    path = ROOT / page
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, fragment = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page}: broken links:\n" + "\n".join(broken)


def test_scale_maps_to_registered_models():
    from kerasbench import list_models

    names = set(list_models())
    assert set(SCALE["models"]) | set(SCALE["models"].values()) <= names


@pytest.mark.parametrize("pasted,actual,ok", [
    ("total images/sec: 38.62", "total images/sec: 1,234.5", True),
    ("total images/sec: 38.62", "total steps/sec: 38.62", False),
    ("kerasbench: alexnet train, batch 32, cpu", "kerasbench: alexnet train, batch 8, gpu:0", True),
    ("a 1\na 2\na 3\nb", "x\na 5\nb", True),            # repeats collapse to one or more
    ("a 1\nb\n...\nc", "a 7\nb\nnoise\nc", True),       # excerpts: other lines allowed
    ("b\na 1", "a 1\nb", False),                         # order matters
    ("p50 0.826, p90 0.850", "p50 0.826 p90 0.850", False),
])
def test_shape_check(pasted, actual, ok):
    assert (shape_mismatch(pasted, actual) is None) is ok


@pytest.mark.parametrize("command,names,rest", [
    ("kerasbench run resnet50 --device gpu --json", True, None),
    ("kerasbench sweep --models a --devices cpu,gpu:1 --out r/", True,
     "kerasbench sweep --models a --devices cpu --out r/"),
    ("kerasbench sweep --models a --devices=gpu,cpu", True,
     "kerasbench sweep --models a --devices cpu"),
    ("kerasbench run lenet --device cpu", False, "kerasbench run lenet --device cpu"),
])
def test_gpu_commands_are_recognised(command, names, rest):
    found, remainder = gpu_free(shlex.split(command))
    assert found is names
    assert (None if remainder is None else shlex.join(remainder)) == rest


def test_scaling_shim_scales_configs_and_sweeps(tmp_path):
    code = ("from kerasbench import RunConfig; from kerasbench._runs.sweep import plan; "
            "c = RunConfig(model='resnet50', steps=100, batch_size=64, warmup_steps=50); "
            "print(c.model, c.steps, c.batch_size, c.warmup_steps); "
            "print([(p.model, p.batch_size) for p in plan(['vgg16', 'alexnet'], "
            "batch_sizes=[16, 32, 64])])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["lenet 10 16 10", "[('lenet', 16)]"]




@pytest.fixture(scope="module")
def page_runs(request):
    """Runs the selected pages two at a time (most of a run is Python and
    TensorFlow starting up, one core each)."""
    pages = [item.callspec.params["page"] for item in request.session.items
             if item.originalname == "test_page_runs" and hasattr(item, "callspec")]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    futures = {page: pool.submit(run_page, page) for page in dict.fromkeys(pages)}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)])
def test_page_runs(page, page_runs):
    """Every command and Python block of the page runs as the reader would run
    it, and every marked output still has the tool's shape."""
    failures = page_runs[page].result()
    assert not failures, "\n\n".join(failures)
