"""The kerasbench command, called through main([...])."""

import json
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
