"""Tests of the comparison of result sets and of the bundled baselines.

Ratios are checked against hand-computed values; results are built by hand
and nothing here imports TensorFlow or Keras.
"""

import json
import textwrap

import pytest

from kerasbench._results import BenchmarkResult, compare, list_baselines, load_baseline
from kerasbench._results.compare import MATCH_FIELDS
from kerasbench._runs.config import RunConfig

CITATION_START = ("schoenemeyer, 'Running Benchmarks with Tensorflow backend on NVIDIA "
                   "GeForce GPUs' (convolution-cpu-vs-gpu, GitHub), tf_cnn_benchmarks, "
                   "TensorFlow 1.10, CUDA 9.1, GTX 1050 Ti")


def make(model, batch_size, images_per_sec=None, *, status="ok", precision="fp32",
         device="cpu", machine="laptop", mode="train", finished_at="2025-01-01T00:00:00Z"):
    config = RunConfig(model=model, mode=mode, batch_size=batch_size, precision=precision,
                       device=device, optimizer="sgd" if mode == "train" else None)
    return BenchmarkResult(
        config=config, status=status,
        stats={} if images_per_sec is None else {"images_per_sec": images_per_sec},
        machine=machine, finished_at=finished_at)


def two_sets():
    old = [
        make("resnet50", 32, 100.0, finished_at="2025-01-02T00:00:00Z"),
        make("resnet50", 32, status="oom", finished_at="2025-01-01T00:00:00Z"),  # failed
        make("resnet50", 64, status="oom"),
        make("alexnet", 32, 400.0),
        make("vgg16", 32, 20.0),
    ]
    new = [
        make("resnet50", 32, 250.0, machine="desk"),
        make("resnet50", 64, 260.0, machine="desk"),
        make("alexnet", 32, 300.0, machine="desk"),
        make("resnet101", 32, 50.0, machine="desk"),
    ]
    return [("old.jsonl", old), ("new.jsonl", new)]


# --------------------------------------------------------------------- ratios


def test_ratios_against_the_first_set():
    c = compare(two_sets())
    assert [col.label for col in c.columns] == ["old.jsonl", "new.jsonl"]
    assert c.baseline == "old.jsonl" and not c.baseline_given
    keys = [(r.key["model"], r.key["batch_size"]) for r in c.rows]
    assert keys == [("resnet50", 32), ("resnet50", 64), ("alexnet", 32)]
    row = c.rows[0]
    assert row.key == {"model": "resnet50", "mode": "train", "batch_size": 32, "precision": "fp32"}
    assert row.cell("old.jsonl").images_per_sec == 100.0  # the one successful run of two
    assert row.cell("old.jsonl").ratio is None
    assert row.cell("new.jsonl").ratio == pytest.approx(2.5)
    assert c.rows[1].cell("old.jsonl").status == "oom"
    assert c.rows[1].cell("new.jsonl").ratio is None
    assert c.rows[2].cell("new.jsonl").ratio == pytest.approx(0.75)


def test_markdown_exact():
    expected = textwrap.dedent("""\
        ## images/sec: old.jsonl vs new.jsonl

        Ratios: images/sec of each column divided by the baseline column, old.jsonl (first set); above 1.00x is faster than the baseline.
        Matched on model, mode, batch size, precision.

        | Model | Mode | Batch size | Precision | old.jsonl | new.jsonl | Ratio |
        |:---|:---|---:|:---|---:|---:|---:|
        | ResNet-50 | train | 32 | fp32 | 100 | 250 | 2.50x |
        | ResNet-50 | train | 64 | fp32 | OOM | 260 | - |
        | AlexNet | train | 32 | fp32 | 400 | 300 | 0.75x |

        Only in some columns:

        - VGG16, train, batch 32, fp32: only in old.jsonl (not in new.jsonl)
        - ResNet-101, train, batch 32, fp32: only in new.jsonl (not in old.jsonl)

        Notes:

        - old.jsonl: ResNet-50, train, batch 32, fp32 ran 2 times (1 oom); using the one successful run.
        """)
    c = compare(two_sets())
    assert c.to_markdown() == expected
    assert str(c) == expected


def test_only_in_and_notes_structured():
    c = compare(two_sets())
    assert [(o.key["model"], o.present, o.missing) for o in c.only_in] == [
        ("vgg16", ["old.jsonl"], ["new.jsonl"]),
        ("resnet101", ["new.jsonl"], ["old.jsonl"]),
    ]
    assert c.notes == ["old.jsonl: ResNet-50, train, batch 32, fp32 ran 2 times (1 oom); "
                       "using the one successful run."]


def test_chosen_baseline_goes_first_and_ratios_follow_it():
    c = compare(two_sets(), baseline="new.jsonl")
    assert [col.label for col in c.columns] == ["new.jsonl", "old.jsonl"]
    assert c.baseline_given
    assert c.rows[0].cell("old.jsonl").ratio == pytest.approx(100 / 250)
    assert "new.jsonl (chosen baseline)" in c.to_markdown()
    assert "| ResNet-50 | train | 32 | fp32 | 250 | 100 | 0.40x |" in c.to_markdown()


def test_several_devices_in_a_set_are_separate_columns():
    mixed = [make("resnet50", 32, 40.0), make("resnet50", 32, 400.0, device="gpu:0"),
             make("resnet50", 64, status="oom", device="gpu:0")]
    c = compare([("laptop", mixed)])
    assert [col.label for col in c.columns] == ["laptop cpu", "laptop gpu:0"]
    assert c.rows[0].cell("laptop gpu:0").ratio == pytest.approx(10.0)
    assert [(o.key["batch_size"], o.present) for o in c.only_in] == [(64, ["laptop gpu:0"])]
    assert "| ResNet-50 | train | 32 | fp32 | 40.0 | 400 | 10.0x |" in c.to_markdown()

    c = compare([("laptop", mixed), ("desk", [make("resnet50", 32, 80.0, machine="desk")])],
                baseline="desk")
    assert [col.label for col in c.columns] == ["desk", "laptop cpu", "laptop gpu:0"]
    row = c.rows[0]
    assert (row.cell("laptop cpu").ratio, row.cell("laptop gpu:0").ratio) == (0.5, 5.0)
    assert "| desk | laptop cpu | laptop gpu:0 | Ratio laptop cpu | Ratio laptop gpu:0 |" \
        in c.to_markdown()


def test_several_machines_in_a_set_are_separate_columns():
    folder = [make("resnet50", 32, 40.0, machine="a"), make("resnet50", 32, 60.0, machine="b")]
    c = compare([("results/", folder)])
    assert [col.label for col in c.columns] == ["results/ a cpu", "results/ b cpu"]
    assert c.rows[0].cells[1].ratio == pytest.approx(1.5)


# --------------------------------------------------------- ignore and baseline


def test_cpu_against_the_gpu_baseline_across_precisions():
    cpu = [make("resnet50", 32, 31.0), make("alexnet", 16, 426.0, precision="bf16"),
           make("lenet", 16, 9000.0)]
    c = compare([("cpu.jsonl", cpu), ("gtx1050ti-fp16", load_baseline("gtx1050ti-fp16"))],
                baseline="gtx1050ti-fp16", ignore=("precision",))
    assert c.match_fields == ("model", "batch_size", "mode") and c.ignore == ("precision",)
    assert [col.label for col in c.columns] == ["gtx1050ti-fp16", "cpu.jsonl"]
    assert c.columns[0].published and c.columns[0].citation.startswith(CITATION_START)
    rows = {(r.key["model"], r.key["batch_size"]): r for r in c.rows}
    assert set(rows) == {("resnet50", 32), ("alexnet", 16)}
    assert rows["resnet50", 32].cell("cpu.jsonl").ratio == pytest.approx(31 / 62)
    assert rows["alexnet", 16].cell("cpu.jsonl").ratio == pytest.approx(2.0)
    assert rows["alexnet", 16].cell("gtx1050ti-fp16").precision == "fp16"
    assert rows["alexnet", 16].cell("cpu.jsonl").precision == "bf16"
    text = c.to_markdown()
    assert "| Model | Mode | Batch size | gtx1050ti-fp16 (published) [1] | cpu.jsonl | Ratio |" in text
    assert "| ResNet-50 | train | 32 | 62.0 (fp16) | 31.0 (fp32) | 0.50x |" in text
    assert "| AlexNet | train | 16 | 213 (fp16) | 426 (bf16) | 2.00x |" in text
    assert "precision ignored (each cell shows its own in parentheses)" in text
    assert f"- [1] gtx1050ti-fp16: Published figures. Source: {CITATION_START}" in text
    missing = [o for o in c.only_in if o.present == ["cpu.jsonl"]]
    assert [o.key for o in missing] == [{"model": "lenet", "mode": "train", "batch_size": 16}]
    assert len(c.only_in) == 1 + 15 - 2


def test_without_ignore_fp32_does_not_match_fp16():
    c = compare([("cpu", [make("resnet50", 32, 31.0)]),
                 ("gtx1050ti-fp16", load_baseline("gtx1050ti-fp16"))])
    assert c.rows == []
    assert "No configuration is present in two columns." in c.to_markdown()
    assert len(c.only_in) == 16


def test_ignored_field_with_several_results_gives_one_row_each():
    a = [make("resnet50", 32, 30.0), make("resnet50", 32, 60.0, precision="bf16")]
    b = [make("resnet50", 32, 120.0, precision="fp16", device="gpu:0", machine="gpu")]
    c = compare([("a", a), ("b", b)], baseline="b", ignore="precision")
    assert [(r.cell("a").precision, r.cell("a").ratio) for r in c.rows] == [
        ("fp32", 0.25), ("bf16", 0.5)]


def test_to_dict_is_plain_json():
    c = compare(two_sets())
    d = json.loads(json.dumps(c.to_dict()))
    assert d["baseline"] == "old.jsonl"
    assert d["match_fields"] == list(MATCH_FIELDS) and d["ignore"] == []
    assert d["rows"][0]["cells"][1]["ratio"] == pytest.approx(2.5)
    assert d["only_in"][0]["present"] == ["old.jsonl"]
    assert d["columns"][1]["machine"] == "desk"


# ------------------------------------------------------------------ bad input


def test_bad_input():
    good = [make("resnet50", 32, 1.0)]
    with pytest.raises(ValueError, match=r"^`ignore` must be a subset of \('model', "
                                         r"'batch_size', 'precision', 'mode'\)\. "
                                         r"Received: ignore=\('foo',\)$"):
        compare(two_sets(), ignore=("foo",))
    with pytest.raises(ValueError, match="at least one"):
        compare(two_sets(), ignore=MATCH_FIELDS)
    with pytest.raises(ValueError, match="`sets` is empty"):
        compare([])
    with pytest.raises(ValueError, match="The set 'b' holds no results"):
        compare([("a", good), ("b", [])])
    with pytest.raises(ValueError, match=r"The set 'b' holds no successful result \(2 oom\)"):
        compare([("a", good), ("b", [make("vgg16", 32, status="oom")] * 2)])
    with pytest.raises(ValueError, match="only one column"):
        compare([("a", good)])
    with pytest.raises(ValueError, match="labels must be unique"):
        compare([("a", good), ("a", good)])
    with pytest.raises(ValueError, match=r"`baseline` must be the label of a set \('old.jsonl', "
                                         r"'new.jsonl'\).*Received: baseline='nope'"):
        compare(two_sets(), baseline="nope")
    mixed = [make("resnet50", 32, 1.0), make("resnet50", 32, 2.0, device="gpu:0")]
    with pytest.raises(ValueError, match="several columns: 'm cpu', 'm gpu:0'"):
        compare([("m", mixed), ("x", good)], baseline="m")
    with pytest.raises(TypeError, match=r"\(label, results\) pairs"):
        compare([good])


# ------------------------------------------------------------------ baselines


def test_bundled_baseline_holds_the_seed_table():
    assert "gtx1050ti-fp16" in list_baselines()
    results = load_baseline("gtx1050ti-fp16")
    assert len(results) == 15
    figures = {(r.model, r.batch_size): r.images_per_sec for r in results}
    assert figures == {
        ("inception3", 16): 34, ("resnet50", 16): 54, ("vgg16", 16): 29,
        ("alexnet", 16): 213, ("nasnet", 16): 38,
        ("inception3", 32): 37, ("resnet50", 32): 62, ("vgg16", 32): 33,
        ("alexnet", 32): 386, ("nasnet", 32): 41,
        ("inception3", 64): 39, ("resnet50", 64): 65, ("vgg16", 64): 30,
        ("alexnet", 64): 466, ("nasnet", 64): 44,
    }
    for r in results:
        assert (r.mode, r.precision, r.device, r.status) == ("train", "fp16", "gpu:0", "ok")
        assert r.source == "published" and r.machine == "GTX 1050 Ti (published)"
        assert r.config.optimizer == "sgd" and r.device_report["accelerators"][0]["model"] == \
            "NVIDIA GeForce GTX 1050 Ti"
        assert r.stats == {"images_per_sec": r.images_per_sec}
        assert r.citation.startswith(CITATION_START)
        assert r.citation.endswith("published figures, not measured by kerasbench")
    assert load_baseline("gtx1050ti-fp16.jsonl") == results


def test_unknown_baseline_suggests_the_closest():
    with pytest.raises(ValueError, match=r"^`name` must be one of .*'gtx1050ti-fp16'"
                                         r".* Did you mean 'gtx1050ti-fp16'\? "
                                         r"Received: name='gtx1050ti'$"):
        load_baseline("gtx1050ti")
    with pytest.raises(ValueError, match="Received: name='zzz'$") as info:
        load_baseline("zzz")
    assert "Did you mean" not in str(info.value)


# ------------------------------------------------------ intervals and repeats


def with_interval(result, low, high, df=13.5):
    """``result`` with a within-run 95 % interval in its stats."""
    result.stats.update(images_per_sec_ci_low=low, images_per_sec_ci_high=high,
                        ci_method="batch_means", ci_df=df)
    return result


def repeated(machine, figures):
    return [make("resnet50", 32, x, machine=machine) for x in figures]


def test_repeats_give_the_mean_and_fiellers_interval_of_the_ratio():
    from kerasbench._timing.intervals import mean_interval, ratio_interval

    old, new = [100.0, 102.0, 98.0], [150.0, 153.0, 147.0]
    c = compare([("old", repeated("a", old)), ("new", repeated("b", new))])
    base, cell = c.rows[0].cells
    assert (base.images_per_sec, base.runs, base.ci_method) == (100.0, 3, "across_runs")
    # mean 100, sd 2, se 2 / sqrt(3), t_{0.975, 2} = 4.302653.
    assert base.images_per_sec_ci_high - 100 == pytest.approx(4.302653 * 2 / 3 ** 0.5)
    assert cell.ratio == pytest.approx(1.5)
    expected = ratio_interval(mean_interval(new), mean_interval(old))
    assert (cell.ratio_ci_low, cell.ratio_ci_high) == (expected.low, expected.high)
    assert cell.ratio_ci_low < 1.5 < cell.ratio_ci_high and cell.significant is True
    text = c.to_markdown()
    assert "| ResNet-50 | train | 32 | fp32 | 100 +/- 5.0% (3 runs) | 150 +/- 5.0% (3 runs) " \
           f"| 1.50x [{expected.low:.2f}, {expected.high:.2f}] |" in text
    assert "for several runs (sweep --repeats), across them" in text
    assert "Fieller's interval for a ratio of means" in text
    assert "Intervals within single runs" not in text


def test_a_difference_within_the_noise_is_marked_not_significant():
    c = compare([("old", repeated("a", [100.0, 102.0, 98.0])),
                 ("new", repeated("b", [101.0, 99.0, 103.5]))])
    cell = c.rows[0].cells[1]
    assert cell.ratio_ci_low < 1.0 < cell.ratio_ci_high and cell.significant is False
    assert " n.s. |" in c.to_markdown()
    assert "n.s.: not significant at the 5 % level" in c.to_markdown()


def test_single_runs_use_their_own_intervals_and_say_so():
    a = with_interval(make("resnet50", 32, 100.0, machine="a"), 99.0, 101.0)
    b = with_interval(make("resnet50", 32, 120.0, machine="b"), 118.8, 121.2)
    c = compare([("a", [a]), ("b", [b])])
    cell = c.rows[0].cells[1]
    assert cell.ci_method == "batch_means" and cell.runs == 1
    assert cell.ratio_ci_low < 1.2 < cell.ratio_ci_high and cell.significant
    text = c.to_markdown()
    assert "| 100 +/- 1.0% | 120 +/- 1.0% | 1.20x [1.18, 1.22] |" in text
    assert "Intervals within single runs leave out run-to-run variation" in text


def test_no_ratio_interval_against_a_figure_without_one():
    published = load_baseline("gtx1050ti-fp16")
    mine = [with_interval(make("resnet50", 32, 62.0 * 2, precision="fp16", device="gpu:0"),
                          120.0, 128.0)]
    c = compare([("gtx", published), ("mine", mine)])
    [row] = [r for r in c.rows if r.key["batch_size"] == 32 and r.key["model"] == "resnet50"]
    cell = row.cells[1]
    assert cell.ratio == pytest.approx(2.0)
    assert (cell.ratio_ci_low, cell.ratio_ci_high, cell.significant) == (None, None, None)
    assert "| 2.00x |" in c.to_markdown()


def test_interval_fields_are_standard_json():
    a = with_interval(make("resnet50", 32, 100.0, machine="a"), 99.0, 101.0)
    # A run so noisy that its interval has no upper end (stored as null).
    b = with_interval(make("resnet50", 32, 120.0, machine="b"), 60.0, None)
    c = compare([("a", [a]), ("b", [b])])
    assert "| 100 +/- 1.0% | 120 +/- >100% | 1.20x |" in c.to_markdown()
    d = json.loads(c.to_json())
    base, cell = d["rows"][0]["cells"]
    assert (base["images_per_sec_ci_low"], base["images_per_sec_ci_high"]) == (99.0, 101.0)
    assert cell["images_per_sec_ci_high"] is None
    assert cell["ratio"] == pytest.approx(1.2) and cell["ratio_ci_low"] is None


# ----------------------------------------------------------------- efficiency


def test_compare_shows_mfu_and_achieved_tflops_of_each_side_where_known():
    cpu = make("resnet50", 32, 10.0)
    cpu.stats.update(achieved_tflops=0.234, mfu=0.12)
    gpu = make("resnet50", 32, 500.0, device="gpu:0", machine="desk")
    gpu.stats.update(achieved_tflops=11.7)  # no peak known: no MFU
    other = make("alexnet", 32, 400.0)
    c = compare([("cpu", [cpu, other]),
                 ("gpu", [gpu, make("alexnet", 32, 800.0, device="gpu:0", machine="desk")])])
    rows = [line for line in c.to_markdown().splitlines() if line.startswith("|")]
    assert rows[0] == ("| Model | Mode | Batch size | Precision | cpu | gpu | Ratio | MFU cpu "
                       "| MFU gpu |")
    assert rows[2] == ("| ResNet-50 | train | 32 | fp32 | 10.0 | 500 | 50.0x | "
                       "12% (0.23 TFLOP/s) | n/a (11.7 TFLOP/s) |")
    assert rows[3] == "| AlexNet | train | 32 | fp32 | 400 | 800 | 2.00x | - | - |"
    assert c.to_markdown().rstrip().endswith(
        "- MFU: model FLOPs utilisation, achieved TFLOP/s (in parentheses) over the device's "
        "peak TFLOP/s at the run's precision; n/a where the peak is unknown.")
    cell = c.rows[0].cell("gpu")
    assert (cell.mfu, cell.achieved_tflops) == (None, 11.7)
    assert c.to_dict()["rows"][0]["cells"][0]["mfu"] == 0.12


def test_compare_without_efficiency_figures_has_no_mfu_columns():
    c = compare(two_sets())
    assert "MFU" not in c.to_markdown()
