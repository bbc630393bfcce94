"""reference(): every registry model through model.fit/predict, and its errors."""

import json
import re

import keras
import pytest

import kerasbench
from kerasbench import BenchmarkResult, list_models, model_info, reference

HEAVY = {"nasnetlarge", "nasnet", "resnet101", "resnet152", "densenet121", "inception3"}


@pytest.fixture(scope="module")
def report():
    return kerasbench.DeviceReport.collect()


def tiny_size(name):
    return max(model_info(name).min_image_size, 32)


def run(name, report, **kwargs):
    kwargs.setdefault("batch_size", 2)
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("warmup_steps", 1)
    kwargs.setdefault("image_size", tiny_size(name))
    kwargs.setdefault("num_classes", 5)
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("count_flops", False)
    return reference(name, device_report=report, **kwargs)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]
)
def test_every_model_trains_through_reference(name, report):
    r = run(name, report)
    assert r.ok and r.model == name and r.device == "cpu" and r.mode == "train"
    assert r.stats["steps"] == 2 and r.stats["samples"] == 4
    assert r.stats["warmup_steps"] == 1
    assert r.images_per_sec > 0
    size = tiny_size(name)
    built = kerasbench.create_model(name, image_size=size, num_classes=5)
    assert r.params == built.count_params()  # the synthetic images are not counted


@pytest.mark.parametrize("name", ["alexnet", "lenet", "mobilenet_v2"])
def test_inference_mode(name, report):
    r = run(name, report, mode="inference", steps=3)
    assert r.mode == "inference" and r.config.optimizer is None
    assert r.stats["phase"] == "predict"
    assert r.stats["steps"] == 3 and r.stats["samples"] == 6


def test_result_holds_everything_and_round_trips(report):
    r = run("lenet", report, steps=3, seed=7)
    d = json.loads(r.to_json())
    assert d["config"]["steps"] == 3 and d["config"]["seed"] == 7
    assert d["backend"] == "tensorflow" and d["config"]["jit_compile"] is False
    assert d["config"]["image_size"] == 32 and d["config"]["device"] == "cpu"
    assert d["requested"]["device"] is None and d["requested"]["model"] == "lenet"
    assert d["versions"]["keras"] == keras.__version__
    assert d["device_report"]["host"] == report.to_dict()["host"]
    assert d["started_at"] <= d["finished_at"]
    assert BenchmarkResult.from_dict(d) == r
    assert r.throughput.images_per_sec == r.images_per_sec
    assert r.key == ("lenet", "train", 2, "fp32")


def test_flops_achieved_tflops_and_mfu(report):
    from kerasbench._efficiency.flops import count_flops

    r = run("lenet", report, count_flops=True, steps=3)
    s = r.stats
    net = kerasbench.create_model("lenet", image_size=32, num_classes=5)
    import numpy as np
    expected = count_flops(net, np.zeros((2, 32, 32, 3), "float32")).flops_per_sample
    assert s["flops_per_sample"] == expected and s["flops_method"] == "tensorflow-profiler"
    assert s["achieved_tflops"] == pytest.approx(expected * r.images_per_sec / 1e12)
    peak = report.to_dict()["host"]["peak"]["fp32"]
    assert s["peak_tflops"] == peak and s["peak_is_estimate"] is True
    assert s["mfu"] == pytest.approx(s["achieved_tflops"] / peak)
    assert BenchmarkResult.from_dict(json.loads(r.to_json())).stats["mfu"] == s["mfu"]


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_optimizers(optimizer, report):
    assert run("lenet", report, optimizer=optimizer).ok


def test_bf16_runs_and_policy_is_restored(report):
    before = keras.config.dtype_policy().name
    r = run("lenet", report, precision="bf16")
    assert r.ok and r.precision == "bf16"
    assert keras.config.dtype_policy().name == before


def test_policy_is_restored_after_a_failure(report, scratch_registry):
    name = "broken_builder_for_tests"

    @kerasbench.register_model(name, image_size=32, min_image_size=1, params=1,
                               description="Raises when built.", source="tests")
    def broken(input_shape, num_classes, data_format):
        raise RuntimeError("boom")

    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError, match="boom"):
        run(name, report, precision="bf16")
    assert keras.config.dtype_policy().name == before


def test_config_object_and_keywords_are_one_interface(report):
    config = kerasbench.RunConfig(model="lenet", batch_size=2, steps=2, warmup_steps=1,
                                  image_size=32, num_classes=5)
    r = reference(config=config, device_report=report, verbose=0, steps=3)
    assert r.requested == config.replace(steps=3) and r.stats["steps"] == 3
    with pytest.raises(TypeError, match="Did you mean 'batch_size'"):
        reference("lenet", batchsize=2)
    with pytest.raises(TypeError, match="needs a model"):
        reference()
    import inspect
    params = inspect.signature(reference).parameters
    assert {"batch_size", "precision", "steps_per_execution", "log_dir"} <= set(params)


def test_steps_per_execution_and_default_warmup(report):
    r = run("lenet", report, steps=4, warmup_steps=None, steps_per_execution=2)
    assert r.stats["warmup_steps"] == 4  # default min(10, steps)
    assert r.stats["steps"] == 4 and r.stats["samples"] == 8


def test_tensorboard_scalars_and_device_report(report, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run("lenet", report, steps=3, log_dir=str(tmp_path))
    train = EventAccumulator(str(tmp_path / "train"), size_guidance={"tensors": 0})
    train.Reload()
    assert "kerasbench/images_per_sec" in train.Tags()["tensors"]
    root = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    root.Reload()
    assert "kerasbench/device_report" in root.Tags()["tensors"]


def test_progress_output(report, capsys):
    run("lenet", report, steps=10, warmup_steps=2, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("kerasbench: lenet train, batch 2, fp32, cpu, 32x32")
    assert re.search(r"^train step 10, duration = ", out, re.M)
    assert out.rstrip().splitlines()[-1].startswith("total images/sec: ")


def test_every_result_carries_its_confidence_interval(report):
    r = run("lenet", report, steps=12)
    low, high = r.stats["images_per_sec_ci_low"], r.stats["images_per_sec_ci_high"]
    assert low < r.images_per_sec and (high is None or high > r.images_per_sec)
    assert r.stats["ci_method"] == "batch_means" and r.stats["ci_df"] > 1
    assert r.stats["target_precision"] is None and r.stats["stop_reason"] is None


def test_target_precision_runs_until_the_interval_is_narrow_enough(report, capsys):
    # +/-90 % is met at the first check, after min_steps measured steps.
    r = run("lenet", report, target_precision="90%", min_steps=6, max_steps=400, verbose=2)
    assert r.config.target_precision == 0.9 and r.requested.target_precision == 0.9
    assert r.stats["stop_reason"] == "target" and r.stats["target_reached"] is True
    assert 6 <= r.stats["steps"] < 400
    out = capsys.readouterr().out
    assert "target +/- 90%: reached after" in out
    assert "95% confidence interval: " in out


def test_an_unreachable_target_stops_at_the_bounds(report, capsys):
    r = run("lenet", report, target_precision=1e-6, min_steps=4, max_steps=9, verbose=1)
    assert r.stats["stop_reason"] == "max_steps" and r.stats["target_reached"] is False
    assert r.stats["steps"] == 9
    out = capsys.readouterr().out
    assert "1 warmup + 4 to 9 steps until +/-0.0001% (at most 600 s)" in out
    assert re.search(r"target \+/- 0\.00%: not reached \(\+/- [\d.]+%\); stopped at "
                     r"max_steps; about \d+ measured steps would reach it", out)
    timed = run("lenet", report, target_precision=1e-6, min_steps=4, max_time_s=0.05,
                mode="inference")
    assert timed.stats["stop_reason"] == "max_time" and timed.stats["phase"] == "predict"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"model": "resnt50"}, "Did you mean 'resnet50'?"),
        ({"precision": "fp8"}, "`precision` must be one of 'fp32', 'fp16', 'bf16'. "
                               "Received: precision='fp8'"),
        ({"batch_size": 0}, "`batch_size` must be a positive integer. Received: batch_size=0"),
        ({"steps": -1}, "`steps` must be a positive integer. Received: steps=-1"),
        ({"warmup_steps": 5, "steps": 2}, "`warmup_steps` must not exceed `steps`"),
        ({"image_size": 16, "model": "inception3"},
         "`image_size` must be at least 75 for inception3. Received: image_size=16"),
        ({"mode": "eval"}, "`mode` must be one of 'train', 'inference'."),
        ({"optimizer": "adamw"}, "Did you mean 'adam'?"),
        ({"device": "gpu"}, "`device` must be one of the devices on this machine: cpu."),
        ({"device": "tpu"}, "Received: device='tpu'"),
        ({"log_dir": ""}, "`log_dir` must be a non-empty path"),
        ({"verbose": 1.0}, "`verbose` must be an integer from 0 to 2. Received: verbose=1.0"),
        ({"seed": "x"}, "Received: seed='x'"),
        ({"precision": "fp16", "device": "cpu"}, "use precision='bf16' on CPUs"),
        ({"data_format": "channels_first", "device": "cpu"}, "not supported on CPUs"),
        ({"num_classes": 0}, "`num_classes` must be a positive integer"),
        ({"steps_per_execution": 0}, "`steps_per_execution` must be a positive integer"),
    ],
)
def test_bad_input(kwargs, message, report):
    model = kwargs.pop("model", "lenet")
    args = {"batch_size": 2, "steps": 2, "warmup_steps": 1, "verbose": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        reference(model, device_report=report, **args)


def test_no_gpu_error_says_why(report):
    with pytest.raises(ValueError) as e:
        reference("lenet", device="gpu:0", device_report=report, verbose=0)
    assert report.gpu_unavailable_reason in str(e.value)
