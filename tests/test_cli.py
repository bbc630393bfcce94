"""The kerasbench command, called through main([...])."""

import json
import os
import re
import subprocess
import sys

import pytest

from kerasbench._cli import main

TINY = ["lenet", "--batch-size", "2", "--steps", "3", "--warmup-steps", "1"]


def test_help_explains_every_flag(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--mode", "--batch-size", "--steps", "--warmup-steps", "--image-size",
                 "--num-classes", "--precision", "--optimizer", "--device", "--xla",
                 "--data-format", "--steps-per-execution", "--log-dir", "--seed",
                 "--json", "--quiet"):
        assert flag in out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("run", "list", "device"))


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: kerasbench" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert re.match(r"kerasbench \d+\.\d+\.\d+", capsys.readouterr().out)


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "25,636,712" in out and "nasnetlarge" in out
    assert main(["list", "resnet*"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["resnet50", "resnet101", "resnet152"]
    assert main(["list", "--json", "vgg*"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["params"] == 138357544


def test_run_prints_lines_summary_and_headline(capsys):
    assert main(["run", *TINY, "--steps", "10"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^train step 10, duration = [0-9.]+ s, images/sec: ", out, re.M)
    assert "Forward-backward across 10 steps" in out
    assert re.fullmatch(r"total images/sec: \d+\.\d\d", out.rstrip().splitlines()[-1])


def test_run_inference_quiet(capsys):
    assert main(["run", *TINY, "--mode", "inference", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "predict step" not in out and "Forward across 3 steps" in out


def test_run_json(capsys):
    assert main(["run", *TINY, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["model"] == "lenet" and result["status"] == "ok"
    assert result["requested"]["steps"] == 3 and result["schema"] == 2
    assert result["stats"]["steps"] == 3 and result["stats"]["samples"] == 6


@pytest.mark.parametrize(
    "argv,message",
    [
        (["run", "lenet", "--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
        (["run", "lenet", "--batch-size", "0"],
         "`batch_size` must be a positive integer. Received: batch_size=0"),
        (["run", "lenet", "--steps", "x"], "argument --steps: must be an integer, got 'x'"),
        (["run", "lenet", "--warmup-steps", "5", "--steps", "2"], "must not exceed `steps`"),
        (["run", "lenet", "--log-dir", ""], "`log_dir` must be a non-empty path"),
        (["sweep", "--batch-sizes", "2"], "the following arguments are required: --models"),
        (["sweep", "--models", "lenet", "--batch-sizes", "2,x"], "must be an integer, got 'x'"),
        (["sweep", "--models", "lenet", "--out", ""], "`out` must be a non-empty path"),
        (["run", "resnt50"], "Did you mean 'resnet50'?"),
        (["run", "lenet", "--device", "gpu"], "must be one of the devices on this machine: cpu"),
        (["run", "inception3", "--image-size", "32"], "must be at least 75 for inception3"),
        (["run", "lenet", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and err.startswith("kerasbench")


def test_device(capsys):
    assert main(["device"]) == 0
    out = capsys.readouterr().out
    assert "cpu" in out.lower()
    assert main(["device", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "host" in d and "software" in d


@pytest.mark.slow
def test_device_check_exit_code(capsys):
    assert main(["device", "--check"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_and_module_entry_points():
    for cmd in (["kerasbench", "list", "alex*"], [sys.executable, "-m", "kerasbench", "list", "alex*"]):
        if cmd[0] == "kerasbench":
            cmd[0] = str(__import__("pathlib").Path(sys.executable).with_name("kerasbench"))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[1].startswith("alexnet")


# ------------------------------------------------- device --check exit codes


class _FakeHealth:
    def __init__(self, status):
        self.status, self.ok = status, status != "FAIL"

    def __str__(self):
        return f"Health check: {self.status}"


class _FakeReport:
    status = "OK"

    @classmethod
    def collect(cls):
        return cls()

    def check(self):
        return _FakeHealth(self.status)

    def __str__(self):
        return "kerasbench device report (fake)"


@pytest.mark.parametrize("status,code", [("OK", 0), ("WARNING", 0), ("FAIL", 1)])
def test_device_check_exits_1_only_when_a_device_fails(status, code, monkeypatch, capsys):
    import kerasbench._device

    report = type("Report", (_FakeReport,), {"status": status})
    monkeypatch.setattr(kerasbench._device, "DeviceReport", report)
    assert main(["device", "--check"]) == code
    assert f"Health check: {status}" in capsys.readouterr().out
    assert main(["device"]) == 0   # no check, no verdict


def test_device_help_states_the_exit_codes(capsys):
    assert main(["device", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit code 1 if a device FAILs, 0 on OK or WARNING" in text


# ------------------------------------------------ TensorFlow's start-up log


@pytest.fixture
def no_tensorflow_yet(monkeypatch):
    """This process as the command line finds it: TensorFlow not loaded and
    TF_CPP_MIN_LOG_LEVEL not set (the test session sets it in conftest)."""
    from kerasbench import _cli

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv(_cli.SET_ENV, raising=False)
    return _cli


def test_quiet_tensorflow_sets_the_level_and_says_it_did(no_tensorflow_yet):
    cli = no_tensorflow_yet
    cli._quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == cli.TF_LOG_LEVEL == "3"
    assert cli.set_by_kerasbench() == {"TF_CPP_MIN_LOG_LEVEL": "3"}
    cli._quiet_tensorflow()  # again, as a child inheriting both: still ours
    assert cli.set_by_kerasbench() == {"TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.parametrize("value", ["0", "2", "3"])
def test_quiet_tensorflow_leaves_the_users_level_alone(value, no_tensorflow_yet, monkeypatch):
    cli = no_tensorflow_yet
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", value)
    cli._quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == value
    assert cli.SET_ENV not in os.environ


def test_quiet_tensorflow_keeps_other_marked_variables(no_tensorflow_yet, monkeypatch):
    cli = no_tensorflow_yet
    monkeypatch.setenv(cli.SET_ENV, "OMP_NUM_THREADS=4")
    cli._quiet_tensorflow()
    assert cli.set_by_kerasbench() == {"OMP_NUM_THREADS": "4", "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert cli.set_by_kerasbench({cli.SET_ENV: "A=1,junk,B=,=3"}) == {"A": "1", "B": ""}


NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795946979.260148   32186 port.cc:153] oneDNN custom operations are on.\n"
    "E0000 00:00:1795946982.688293   32186 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error\n"
)


def _noisy_module(tmp_path, monkeypatch, name, tail=""):
    (tmp_path / f"{name}.py").write_text(
        "import os, sys\n"
        f"os.write(2, {NOISE.encode() + b'a real warning' + chr(10).encode()!r})\n"
        "print('from python', file=sys.stderr)\n" + tail)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_startup_noise_is_dropped_and_everything_else_kept(tmp_path, monkeypatch, capfd):
    from kerasbench import _cli

    _noisy_module(tmp_path, monkeypatch, "kb_noisy_ok")
    _cli._import_quietly("kb_noisy_ok")
    assert "kb_noisy_ok" in sys.modules
    # (in order on a real stderr; pytest's sys.stderr is not file descriptor 2)
    assert sorted(capfd.readouterr().err.splitlines()) == ["a real warning", "from python"]


def test_a_failed_import_shows_everything(tmp_path, monkeypatch, capfd):
    from kerasbench import _cli

    _noisy_module(tmp_path, monkeypatch, "kb_noisy_bad", tail="raise ImportError('boom')\n")
    _cli._import_quietly("kb_noisy_bad")  # the caller's own import reports the error
    err = capfd.readouterr().err
    assert NOISE in err and "a real warning" in err
    with pytest.raises(ImportError, match="boom"):
        __import__("kb_noisy_bad")


def _cli_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASBENCH_SET_ENV")}
    env.update(extra)
    return env


def _environment_line(report_text):
    return next(line for line in report_text.splitlines() if line.strip().startswith("Environment"))


@pytest.mark.slow
def test_commands_print_no_tensorflow_startup_noise():
    kerasbench = str(__import__("pathlib").Path(sys.executable).with_name("kerasbench"))
    out = subprocess.run([kerasbench, "device"], capture_output=True, text=True, timeout=300,
                         env=_cli_env())
    assert out.returncode == 0, out.stderr
    assert _noise(out.stderr) == []             # no I0000/E0000 lines, no absl preamble
    # kerasbench set TF_CPP_MIN_LOG_LEVEL itself: not listed as the user's setting
    assert "TF_CPP_MIN_LOG_LEVEL" not in _environment_line(out.stdout)
    out = subprocess.run([kerasbench, "run", *TINY, "--quiet"], capture_output=True,
                         text=True, timeout=300, env=_cli_env())
    assert out.returncode == 0 and _noise(out.stderr) == [], out.stderr
    assert out.stdout.startswith("kerasbench: lenet train")


def _noise(stderr):
    """TensorFlow's start-up and C++ log lines in ``stderr``."""
    from kerasbench._cli import _STARTUP_NOISE

    return [line for line in stderr.splitlines()
            if _STARTUP_NOISE.fullmatch(line) or "cuInit" in line]


@pytest.mark.slow
def test_a_level_the_user_set_is_theirs():
    kerasbench = str(__import__("pathlib").Path(sys.executable).with_name("kerasbench"))
    out = subprocess.run([kerasbench, "device"], capture_output=True, text=True, timeout=300,
                         env=_cli_env(TF_CPP_MIN_LOG_LEVEL="1"))
    assert out.returncode == 0, out.stderr
    assert "TF_CPP_MIN_LOG_LEVEL=1" in _environment_line(out.stdout)
