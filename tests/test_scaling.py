"""Scaling on tf.distribute: MirroredStrategy over logical CPU devices, for real."""

import re

import pytest

import kerasbench
from kerasbench._cli import main
from kerasbench._efficiency.figures import scaling as scaling_figures
from kerasbench._runs.scaling import scaling, scaling_table

TINY = {"batch_size": 4, "steps": 4, "warmup_steps": 1, "image_size": 32, "num_classes": 5,
        "device": "cpu", "count_flops": False}


def test_speedup_and_efficiency_formula():
    assert scaling_figures(150.0, 2, 100.0) == (1.5, 0.75)
    assert scaling_figures(400.0, 4, 100.0) == (4.0, 1.0)
    with pytest.raises(ValueError, match="Received: single_replica_images_per_sec=0"):
        scaling_figures(1.0, 2, 0)


@pytest.mark.slow
def test_mirrored_replicas_count_every_sample_and_scale(tmp_path):
    results = scaling("lenet", devices=[2], out=str(tmp_path / "s.jsonl"), machine="box",
                      **TINY)
    one, two = results
    assert [r.config.num_devices for r in results] == [1, 2]
    assert all(r.ok and r.config.strategy == "mirrored" for r in results)
    # The global sample count is the sum over replicas: 4 steps x 4 per replica x 2.
    assert (one.stats["samples"], two.stats["samples"]) == (16, 32)
    assert two.stats["global_batch_size"] == 8 and two.stats["replicas"] == 2
    assert two.stats["images_per_sec_per_replica"] == pytest.approx(two.images_per_sec / 2)
    speedup = two.images_per_sec / one.images_per_sec
    assert two.stats["speedup"] == pytest.approx(speedup)
    assert two.stats["scaling_efficiency"] == pytest.approx(speedup / 2)
    assert one.stats["speedup"] == 1.0
    written = kerasbench.read_results(tmp_path / "s.jsonl")
    assert [r.stats["scaling_efficiency"] for r in written] == \
        [r.stats["scaling_efficiency"] for r in results]
    table = scaling_table(results)
    assert re.search(r"^\| 2 \| 8 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| \d+ % \|$", table, re.M)


def test_strategy_settings_are_checked():
    with pytest.raises(ValueError, match="`num_devices` above 1 needs strategy='mirrored'"):
        kerasbench.RunConfig(num_devices=2)
    with pytest.raises(ValueError, match="`strategy` must be one of 'none', 'mirrored'"):
        kerasbench.RunConfig(strategy="multi")
    info = kerasbench.model_info("lenet")
    with pytest.raises(ValueError, match="not supported on the torch backend.*DataParallel "
                       r"\(JAX\).*Received: strategy='mirrored', backend='torch'"):
        kerasbench.RunConfig(model="lenet", strategy="mirrored").resolve(info, "torch", "cpu")
    with pytest.raises(ValueError, match="at most the 1 GPU"):
        kerasbench.RunConfig(model="lenet", strategy="mirrored", num_devices=2).resolve(
            info, "tensorflow", "gpu:0", ["cpu", "gpu:0"])
    with pytest.raises(TypeError, match="scaling\\(\\) sets `strategy` itself"):
        scaling("lenet", strategy="mirrored")


@pytest.mark.slow
def test_cli_scaling(capsys):
    assert main(["scaling", "lenet", "--devices", "2", "--batch-size", "4", "--steps", "3",
                 "--warmup-steps", "1", "--image-size", "32", "--num-classes", "5",
                 "--device", "cpu", "--no-count-flops"]) == 0
    out = capsys.readouterr().out
    assert "| Replicas | Global batch | images/sec | per replica | Speedup | Efficiency |" in out
    assert re.search(r"^\| 1 \| 4 \| [0-9.]+ \| [0-9.]+ \| 1.00x \| 100 % \|$", out, re.M)
