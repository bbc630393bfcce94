"""Tests of the report: the Markdown tables (exact text), the PNG chart (a
real PNG of a plausible size) and the report folder.

Results are built by hand; nothing here imports TensorFlow or Keras.
"""

import os
import struct
import subprocess
import sys
import textwrap

import pytest

from kerasbench._results import (
    BenchmarkResult,
    load_baseline,
    markdown_tables,
    plot_results,
    write_report,
)
from kerasbench._results.chart import use_log_scale
from kerasbench._results.formatting import format_images_per_sec, format_ratio, model_label
from kerasbench._runs.config import RunConfig

CPU_REPORT = {"host": {"cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz"}, "accelerators": []}
GPU_REPORT = {"host": {"cpu_model": "AMD EPYC 7742"},
              "accelerators": [{"name": "gpu:0", "model": "NVIDIA A100-SXM4-40GB"},
                               {"name": "gpu:1", "model": "NVIDIA H100 80GB HBM3"}]}


def make(model, batch_size, images_per_sec=None, *, status="ok", precision="fp32",
         device="cpu", machine="laptop", mode="train", finished_at="2025-01-01T00:00:00Z",
         optimizer="sgd", device_report=CPU_REPORT, error=None):
    config = RunConfig(model=model, mode=mode, batch_size=batch_size, precision=precision,
                       device=device, optimizer=optimizer if mode == "train" else None,
                       jit_compile=False, steps=50, warmup_steps=10)
    return BenchmarkResult(
        config=config, status=status, error=error, backend="tensorflow",
        stats={} if images_per_sec is None else {"images_per_sec": images_per_sec},
        device_report=device_report, machine=machine, finished_at=finished_at)


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


# ----------------------------------------------------------------- formatting


def test_format_images_per_sec():
    assert format_images_per_sec(465.7) == "466"
    assert format_images_per_sec(100) == "100"
    assert format_images_per_sec(99.94) == "99.9"
    assert format_images_per_sec(54) == "54.0"
    assert format_images_per_sec(3.75) == "3.8"
    assert format_images_per_sec(0.42) == "0.42"
    assert format_images_per_sec(0.0473) == "0.047"
    assert format_images_per_sec(0) == "0.0"
    assert format_images_per_sec(None) == "n/a"
    assert format_images_per_sec(float("nan")) == "n/a"


def test_format_ratio():
    assert format_ratio(250 / 100) == "2.50x"
    assert format_ratio(0.41) == "0.41x"
    assert format_ratio(12.34) == "12.3x"
    assert format_ratio(215.2) == "215x"
    assert format_ratio(0.00263) == "0.0026x"
    assert format_ratio(None) == "n/a"


def test_model_labels():
    assert model_label("resnet50") == "ResNet-50"
    assert model_label("nasnet") == "NASNet-A Mobile"
    assert model_label("my_model") == "my_model"


# ---------------------------------------------------------------------- tables


def test_table_exact():
    results = [
        make("resnet50", 32, status="oom", finished_at="2025-01-01T00:00:00Z"),
        make("alexnet", 32, 466.3),
        make("resnet50", 64, status="oom", error="ResourceExhaustedError: OOM"),
        make("alexnet", 64, 12.34),
        make("vgg16", 16, 0.0473),
        make("vgg16", 32, status="error", error="InvalidArgumentError: bad\nsecond line"),
        make("resnet50", 32, 100.0, finished_at="2025-01-02T00:00:00Z"),  # the one success
        make("resnet50", 16, 80.0, finished_at="2024-12-31T00:00:00Z"),
    ]
    expected = textwrap.dedent("""\
        ### laptop / cpu: Intel(R) Xeon(R) CPU @ 2.20GHz (images/sec)

        Precision: fp32 / Mode: train / Data: synthetic

        Settings: backend=tensorflow, jit_compile=False, steps_per_execution=1, steps=50, \
warmup_steps=10

        | Batch size | ResNet-50 | AlexNet | VGG16 |
        |:---|---:|---:|---:|
        | 16 | 80.0 | n/a | 0.047 |
        | 32 | 100 | 466 | error |
        | 64 | OOM | 12.3 | n/a |
        | Precision | fp32 | fp32 | fp32 |
        | Optimizer | sgd | sgd | sgd |

        - VGG16, batch 32: error: InvalidArgumentError: bad
        - ResNet-50, batch 32: 2 runs, 1 oom; the cell is the one successful run.
        """)
    assert markdown_tables(results) == expected


def with_interval(result, low, high, df=13.5):
    result.stats.update(images_per_sec_ci_low=low, images_per_sec_ci_high=high,
                        ci_method="batch_means", ci_df=df)
    return result


def test_table_cells_carry_the_interval_and_average_repeats():
    results = [
        with_interval(make("alexnet", 32, 466.3), 462.6, 470.0),
        make("resnet50", 32, 95.0), make("resnet50", 32, 100.0), make("resnet50", 32, 105.0),
        make("resnet50", 32, status="oom"),
        make("vgg16", 32, 20.0),  # no interval stored: the figure alone
    ]
    text = markdown_tables(results)
    # (470.0 - 462.6) / 2 / 466.3 = 0.79 %. Repeats: mean 100, sd 5,
    # t_{0.975, 2} * 5 / sqrt(3) = 12.42: 12 %.
    assert "| 32 | 466 +/- 0.8% | 100 +/- 12% (3 runs) | 20.0 |" in text
    assert ("- +/-: half-width of the 95 % confidence interval of images/sec, as a share of "
            "the figure: for one run, within the run (overlapping batch means of its step "
            "times; it leaves out run-to-run variation); for several runs (sweep --repeats), "
            "across them (the mean of the runs, Student's t).") in text
    assert "- ResNet-50, batch 32: 4 runs, 1 oom; the cell is the mean of the 3 successful " \
           "runs." in text


def test_a_missed_target_is_noted_under_the_table():
    r = with_interval(make("resnet50", 32, 5.8), 5.6, 6.0)
    r.stats.update(target_precision=0.01, target_reached=False, stop_reason="max_time")
    text = markdown_tables([r])
    assert "| 32 | 5.8 +/- 3.4% |" in text
    assert "- ResNet-50, batch 32: 1 of 1 runs stopped at max_time_s before their interval " \
           "reached +/- 1%." in text


def test_chart_draws_error_bars_where_intervals_are_known(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from kerasbench._results.chart import _Chart, _select, _series_labels

    results = [with_interval(make("alexnet", 32, 466.3), 450.0, 480.0),
               make("resnet50", 32, 95.0), make("resnet50", 32, 105.0),
               make("vgg16", 32, 20.0)]
    ok, order = _select(results, None, None)
    fig = _Chart(ok, order, _series_labels(ok), None).draw(100)
    [ax] = fig.axes
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # AlexNet's run and ResNet-50's two runs; none for VGG16
    (low, high), = bars[0].lines[2][0].get_segments()  # the vertical line of AlexNet's
    assert (low[1], high[1]) == (450.0, 480.0)
    assert "error bars: 95 % confidence intervals" in fig.legends[0].get_title().get_text()
    assert plot_results(results, tmp_path / "c.png") == tmp_path / "c.png"


def test_tables_per_machine_device_precision_mode():
    results = [
        make("resnet50", 32, 100.0),
        make("resnet50", 32, 2000.0, device="gpu:1", machine="server", device_report=GPU_REPORT),
        make("resnet50", 32, 150.0, precision="bf16"),
        make("resnet50", 32, 300.0, mode="inference"),
        make("vgg16", 64, 40.0, mode="inference"),
        make("resnet50", 32, 1000.0, device="gpu:0", machine="server", device_report=GPU_REPORT),
    ]
    text = markdown_tables(results)
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == [
        "### laptop / cpu: Intel(R) Xeon(R) CPU @ 2.20GHz (images/sec)",
        "### server / gpu:1: NVIDIA H100 80GB HBM3 (images/sec)",
        "### laptop / cpu: Intel(R) Xeon(R) CPU @ 2.20GHz (images/sec)",
        "### laptop / cpu: Intel(R) Xeon(R) CPU @ 2.20GHz (images/sec)",
        "### server / gpu:0: NVIDIA A100-SXM4-40GB (images/sec)",
    ]
    modes = [line for line in text.splitlines() if line.startswith("Precision: ")]
    assert modes == [
        "Precision: fp32 / Mode: train / Data: synthetic",
        "Precision: fp32 / Mode: train / Data: synthetic",
        "Precision: bf16 / Mode: train / Data: synthetic",
        "Precision: fp32 / Mode: inference / Data: synthetic",
        "Precision: fp32 / Mode: train / Data: synthetic",
    ]
    inference = text.split("\n\n### ")[3]
    assert "| Batch size | ResNet-50 | VGG16 |" in inference
    assert "| 32 | 300 | n/a |" in inference
    assert "| 64 | n/a | 40.0 |" in inference
    assert "| Precision | fp32 | fp32 |" in inference
    assert "| Optimizer | - | - |" in inference
    assert "| Precision | bf16 |" in text


def test_models_argument_sets_columns_and_order():
    results = [make("resnet50", 32, 100.0), make("alexnet", 32, 500.0), make("vgg16", 32, 20.0)]
    text = markdown_tables(results, models=["vgg16", "inception3", "resnet50"])
    assert "| Batch size | VGG16 | InceptionV3 | ResNet-50 |" in text
    assert "| 32 | 20.0 | n/a | 100 |" in text
    assert "| Optimizer | sgd | n/a | sgd |" in text
    assert "AlexNet" not in text
    with pytest.raises(ValueError, match="selects none"):
        markdown_tables(results, models=["nasnet"])


def test_without_device_report_the_heading_names_the_device_only():
    text = markdown_tables([make("resnet50", 32, 100.0, device_report=None, machine=None)])
    assert text.startswith("### unnamed machine / cpu (images/sec)\n")


def test_baseline_table_has_the_seed_figures_and_says_published():
    expected = textwrap.dedent("""\
        ### GTX 1050 Ti (published) / gpu:0: NVIDIA GeForce GTX 1050 Ti (images/sec)

        Precision: fp16 / Mode: train / Data: synthetic

        | Batch size | InceptionV3 | ResNet-50 | VGG16 | AlexNet | NASNet-A Mobile |
        |:---|---:|---:|---:|---:|---:|
        | 16 | 34.0 | 54.0 | 29.0 | 213 | 38.0 |
        | 32 | 37.0 | 62.0 | 33.0 | 386 | 41.0 |
        | 64 | 39.0 | 65.0 | 30.0 | 466 | 44.0 |
        | Precision | fp16 | fp16 | fp16 | fp16 | fp16 |
        | Optimizer | sgd | sgd | sgd | sgd | sgd |

        - Published figures. Source: schoenemeyer, 'Running Benchmarks with Tensorflow \
backend on NVIDIA GeForce GPUs' (convolution-cpu-vs-gpu, GitHub), tf_cnn_benchmarks, \
TensorFlow 1.10, CUDA 9.1, GTX 1050 Ti; published figures, not measured by kerasbench.
        """)
    assert markdown_tables(load_baseline("gtx1050ti-fp16")) == expected


def test_published_results_are_marked_even_without_a_telling_machine_label():
    r = make("resnet50", 32, 62.0, machine="old card")
    r.source, r.citation = "published", "Someone, 'A blog post', 2018"
    text = markdown_tables([r])
    assert text.startswith("### old card / cpu: Intel(R) Xeon(R) CPU @ 2.20GHz (published) "
                           "(images/sec)")
    assert ("- Published figures, not measured by kerasbench. Source: Someone, "
            "'A blog post', 2018.") in text


def test_bad_input():
    with pytest.raises(ValueError, match="`results` is empty"):
        markdown_tables([])
    with pytest.raises(TypeError, match=r"results\[1\] of type dict"):
        markdown_tables([make("resnet50", 32, 1.0), {"model": "x"}])
    with pytest.raises(TypeError, match="must be a list of BenchmarkResult"):
        markdown_tables("results/")


# ----------------------------------------------------------------------- chart


def test_log_scale_rule():
    assert not use_log_scale([10, 150])
    assert use_log_scale([10, 250])
    assert not use_log_scale([0, 5, 50])  # zeros do not count
    assert not use_log_scale([])


def _chart_results():
    return [
        make("resnet50", 32, 12.0), make("alexnet", 32, 180.0), make("vgg16", 32, 4.5),
        make("resnet50", 64, 13.0), make("alexnet", 64, status="oom"),
        make("resnet50", 32, 400.0, device="gpu:0", machine="server", device_report=GPU_REPORT),
        make("alexnet", 32, 5000.0, device="gpu:0", machine="server", device_report=GPU_REPORT),
        make("resnet50", 64, 420.0, device="gpu:0", machine="server", device_report=GPU_REPORT),
    ]


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "chart.png"
    assert plot_results(_chart_results(), path) == path
    width, height = png_size(path)
    assert width > 300 and height > 300
    assert os.path.getsize(path) > 10_000

    one = tmp_path / "b32.png"
    plot_results(_chart_results(), one, batch_size=32, baseline="server")
    one_width, one_height = png_size(one)
    assert one_height < height  # one subplot instead of two
    assert one_width > 300 and one_height > 300


def test_plot_bad_input(tmp_path):
    path = tmp_path / "x.png"
    failed = [make("resnet50", 32, status="oom"), make("vgg16", 32, status="error")]
    with pytest.raises(ValueError, match=r"no successful run, .*\(1 oom, 1 error\)"):
        plot_results(failed, path)
    with pytest.raises(ValueError, match=r"batch size of a successful run: 32, 64\. "
                                         r"Received: batch_size=16"):
        plot_results(_chart_results(), path, batch_size=16)
    with pytest.raises(ValueError, match="Received: baseline='nowhere'"):
        plot_results(_chart_results(), path, baseline="nowhere")
    with pytest.raises(ValueError, match="`results` is empty"):
        plot_results([], path)
    assert not path.exists()


# ---------------------------------------------------------------------- folder


def test_write_report(tmp_path):
    out = tmp_path / "new" / "report"
    paths = write_report(_chart_results() + load_baseline("gtx1050ti-fp16"), out)
    assert paths == {"markdown": os.path.join(out, "report.md"),
                     "png": os.path.join(out, "report.png")}
    text = open(paths["markdown"], encoding="utf-8").read()
    assert text.startswith("# kerasbench report\n\n23 results from laptop, server, "
                           "GTX 1050 Ti (published); 22 ok, 1 oom.")
    assert "![images/sec per model](report.png)\n\n### laptop / cpu" in text
    assert "| 64 | 13.0 | OOM |" in text
    assert "### GTX 1050 Ti (published) / gpu:0" in text
    assert os.path.getsize(paths["png"]) > 10_000
    assert sorted(os.listdir(out)) == ["report.md", "report.png"]


def test_write_report_without_a_successful_run_has_no_chart(tmp_path):
    paths = write_report([make("resnet50", 32, status="oom")], tmp_path)
    assert paths["png"] is None
    text = open(paths["markdown"], encoding="utf-8").read()
    assert "No chart: no run succeeded." in text
    assert "| 32 | OOM |" in text


def test_write_report_to_an_unwritable_folder_names_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "report"
    with pytest.raises(OSError, match=f"Cannot write the report into the folder '{out}'"):
        write_report([make("resnet50", 32, 1.0)], out)


def test_import_is_cheap():
    code = ("import sys, kerasbench._results; "
            "print(sorted(m for m in ('matplotlib', 'tensorflow', 'keras', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------- efficiency

NO_RAPL = "/sys/class/powercap is absent (a virtual machine usually hides it)"


def with_stats(result, **stats):
    result.stats.update(stats)
    return result


def efficiency_section(text):
    return text[text.index("Efficiency:"):] if "Efficiency:" in text else None


def test_efficiency_table_mean_of_runs_largest_peak_and_why_energy_is_unknown():
    results = [
        with_stats(make("resnet50", 32, 100.0, finished_at="2025-01-01T00:00:00Z"),
                   achieved_tflops=0.50, mfu=0.30, peak_is_estimate=True,
                   peak_memory_bytes=100 << 20, memory_kind="host", energy_note=NO_RAPL),
        with_stats(make("resnet50", 32, 104.0, finished_at="2025-01-02T00:00:00Z"),
                   achieved_tflops=0.54, mfu=0.32, peak_is_estimate=True,
                   peak_memory_bytes=300 << 20, memory_kind="host", energy_note=NO_RAPL),
        make("alexnet", 32, 400.0),                       # no figures: no row
        with_stats(make("alexnet", 64, status="oom"), mfu=0.9),  # failed: no row
    ]
    assert efficiency_section(markdown_tables(results)) == (
        "Efficiency:\n"
        "\n"
        "| Model | Batch size | achieved TFLOP/s | MFU | peak memory |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| ResNet-50 | 32 | 0.52 | 31% | 300 MiB (host) |\n"
        "\n"
        "- MFU: model FLOPs utilisation, achieved TFLOP/s over the device's peak TFLOP/s at "
        "the run's precision (the CPU's peak is an estimate: cores x clock x FLOPs per "
        "cycle).\n"
        "- peak memory: device = the GPU memory the framework held at its peak; host = the "
        "process's peak resident memory.\n"
        "- Energy unknown: /sys/class/powercap is absent (a virtual machine usually hides "
        "it).\n"
        "- Several runs: the mean of each figure over them; peak memory: the largest.\n")


def test_efficiency_columns_only_where_a_result_has_the_figure():
    gpu = dict(device="gpu:0", device_report=GPU_REPORT)
    results = [with_stats(make("resnet50", 32, 900.0, **gpu), peak_memory_bytes=5 * (1 << 30),
                          memory_kind="device", energy_j=250.0, joules_per_image=0.25,
                          images_per_sec_per_watt=4.0, energy_source="nvml"),
               with_stats(make("resnet50", 64, 950.0, **gpu), peak_memory_bytes=1536 << 20,
                          memory_kind="device")]
    assert efficiency_section(markdown_tables(results)) == (
        "Efficiency:\n"
        "\n"
        "| Model | Batch size | peak memory | J/image |\n"
        "|:---|---:|---:|---:|\n"
        "| ResNet-50 | 32 | 5.00 GiB (device) | 0.25 |\n"
        "| ResNet-50 | 64 | 1.50 GiB (device) | n/a |\n"
        "\n"
        "- peak memory: device = the GPU memory the framework held at its peak; host = the "
        "process's peak resident memory.\n"
        "- J/image: energy of the measured steps per image (NVML for a GPU, RAPL for a "
        "CPU).\n")
    plain = [make("resnet50", 32, 900.0)]
    assert efficiency_section(markdown_tables(plain)) is None
    assert markdown_tables(plain).endswith("| Optimizer | sgd |\n")


def test_format_mfu_and_bytes():
    from kerasbench._results.formatting import format_bytes, format_mfu

    assert [format_mfu(x) for x in (0.314, 0.0123, 0.0005, None)] == \
        ["31%", "1.2%", "0.05%", "n/a"]
    assert [format_bytes(x) for x in (512, 1024, 851_443_712, 5 << 30, 1536 << 20, None)] == \
        ["512 B", "1.00 KiB", "812 MiB", "5.00 GiB", "1.50 GiB", "n/a"]
