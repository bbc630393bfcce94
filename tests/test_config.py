"""RunConfig: one frozen, validated configuration; the CLI's flags come from it."""

import dataclasses
import json

import numpy as np
import pytest

from kerasbench import RunConfig, model_info
from kerasbench._cli import build_parser
from kerasbench._runs import config as config_module


def test_defaults_are_tf_cnn_benchmarks_like():
    c = RunConfig()
    assert (c.model, c.mode, c.batch_size, c.precision, c.steps) == \
        ("alexnet", "train", 32, "fp32", 100)
    assert c.device is None and c.warmup_steps is None and c.dtype_policy == "float32"


def test_frozen_and_replace_revalidates():
    c = RunConfig(model="lenet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.batch_size = 4
    assert c.replace(batch_size=np.int64(8)).batch_size == 8
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        c.replace(batch_size=0)
    with pytest.raises(TypeError, match="Did you mean 'batch_size'"):
        c.replace(batchsize=8)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batch_size": True}, "`batch_size` must be a positive integer. Received: batch_size=True"),
        ({"steps": 0}, "Received: steps=0"),
        ({"warmup_steps": -1}, "Received: warmup_steps=-1"),
        ({"steps": 5, "warmup_steps": 6}, "must not exceed `steps`"),
        ({"image_size": -5}, "Received: image_size=-5"),
        ({"num_classes": 0}, "Received: num_classes=0"),
        ({"seed": "x"}, "Received: seed='x'"),
        ({"steps_per_execution": 0}, "Received: steps_per_execution=0"),
        ({"jit_compile": "yes"}, "`jit_compile` must be True or False or None"),
        ({"precision": "fp8"}, "`precision` must be one of 'fp32', 'fp16', 'bf16'"),
        ({"mode": "trian"}, "Did you mean 'train'?"),
        ({"device": "tpu"}, "`device` must be 'cpu', 'gpu', 'gpu:N' or None"),
        ({"data_format": "nhwc"}, "`data_format` must be one of"),
        ({"model": ""}, "`model` must be a non-empty string"),
        ({"model": "a\nb"}, "without line breaks"),
    ],
)
def test_every_field_is_checked(kwargs, message):
    with pytest.raises(ValueError) as e:
        RunConfig(**kwargs)
    assert message in str(e.value)


def test_device_spelling_is_normalised():
    assert RunConfig(device=" GPU ").device == "gpu:0"
    assert RunConfig(device="gpu:1").device == "gpu:1"


def test_resolve_fills_every_default():
    info = model_info("lenet")
    c = RunConfig(model="lenet", steps=4).resolve(info, "jax", "cpu")
    assert (c.image_size, c.warmup_steps, c.jit_compile, c.device, c.optimizer) == \
        (info.image_size, 4, True, "cpu", "sgd")
    c = RunConfig(model="lenet", mode="inference", jit_compile=False).resolve(
        info, "jax", "gpu:0")
    assert c.jit_compile is False and c.optimizer is None and c.warmup_steps == 10


@pytest.mark.parametrize(
    "kwargs,device,message",
    [
        ({"model": "inception3", "image_size": 32}, "cpu", "must be at least 75 for inception3"),
        ({"model": "lenet", "precision": "fp16"}, "cpu", "precision='fp16'"),
        ({"model": "lenet", "data_format": "channels_first"}, "cpu", "channels_first"),
    ],
)
def test_resolve_refuses_what_cannot_run(kwargs, device, message):
    c = RunConfig(**kwargs)
    with pytest.raises(ValueError, match=message):
        c.resolve(model_info(c.model), "tensorflow", device)


def test_dict_round_trip_and_unknown_keys():
    c = RunConfig(model="resnet50", batch_size=16, device="cpu", jit_compile=True)
    assert RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(TypeError, match="unexpected keyword argument 'synthetic_data'"):
        RunConfig.from_dict({**c.to_dict(), "synthetic_data": True})
    assert RunConfig.from_dict({**c.to_dict(), "synthetic_data": True}, strict=False) == c
    with pytest.raises(ValueError, match="must be a JSON object"):
        RunConfig.from_dict([])


def test_key_and_label():
    a, b = RunConfig(model="lenet"), RunConfig(model="lenet", steps=50)
    assert a.key() != b.key() and a.key() == RunConfig(model="lenet").key()
    assert a.label() == "lenet train bs32 fp32 auto"


def _flags(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def test_run_and_sweep_flags_come_from_the_fields():
    """Adding a field adds its flag to both commands: one table of options."""
    run, sweep = _flags("run"), _flags("sweep")
    for field, meta in config_module.options():
        flag = meta["flag"] or "--" + field.name.replace("_", "-")
        if field.name != "model":
            assert flag in run, flag
        assert flag in sweep, flag
        if meta["sweep"]:
            assert "--" + meta["sweep"].replace("_", "-") in sweep


# ------------------------------------------------------ adaptive runs


@pytest.mark.parametrize("given, share", [(0.01, 0.01), ("1%", 0.01), (" 2.5% ", 0.025),
                                          (np.float64(0.2), 0.2), (None, None)])
def test_target_precision_is_a_share_or_a_percentage(given, share):
    c = RunConfig(target_precision=given)
    assert c.target_precision == (pytest.approx(share) if share is not None else None)


@pytest.mark.parametrize("given", [0, -0.01, 1, "100%", "1", "one%", True, float("nan")])
def test_target_precision_refuses_anything_else(given):
    with pytest.raises(ValueError, match=r"^`target_precision` must be a share of the figure "
                                         r"between 0 and 1 \(0.01\) or a percentage below 100 "
                                         r"\('1%'\), or None\. Received: target_precision="):
        RunConfig(target_precision=given)


def test_adaptive_bounds():
    c = RunConfig(target_precision="1%")
    assert (c.min_steps, c.max_steps, c.max_time_s) == (20, 10_000, 600.0)
    assert c.label() == "alexnet train bs32 fp32 auto to +/-1%"
    assert RunConfig(max_time_s=None).max_time_s is None
    with pytest.raises(ValueError, match="`max_steps` must be at least `min_steps`"):
        RunConfig(min_steps=50, max_steps=40)
    with pytest.raises(ValueError, match="Received: min_steps=0"):
        RunConfig(min_steps=0)
    with pytest.raises(ValueError, match="Received: max_time_s=0"):
        RunConfig(max_time_s=0)


def test_target_precision_flag_takes_a_percentage():
    args = build_parser().parse_args(["run", "resnet50", "--target-precision", "1%",
                                      "--max-time-s", "60", "--min-steps", "30"])
    from kerasbench._cli import _config_options

    c = RunConfig(**_config_options(args))
    assert (c.target_precision, c.max_time_s, c.min_steps) == (0.01, 60.0, 30)
