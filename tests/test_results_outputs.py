"""What `kerasbench report` writes, under faults: links planted where a file
should go, spreadsheet formulas in labels, Markdown-breaking labels, and
runs that never resolved a device.

Nothing here imports TensorFlow or Keras.
"""

import csv
import os
import re

import pytest

from kerasbench._results import (
    BenchmarkResult,
    compare,
    markdown_tables,
    plot_results,
    write_csv,
    write_report,
)
from kerasbench._results.export import CSV_COLUMNS
from kerasbench._results.files import replace_atomically
from kerasbench._runs.config import RunConfig


def make(model="resnet50", batch_size=32, images_per_sec=100.0, *, machine="box",
         device="cpu", status="ok", error=None, backend="tensorflow", report=None):
    return BenchmarkResult(
        config=RunConfig(model=model, batch_size=batch_size, device=device),
        status=status, error=error, backend=backend, machine=machine, device_report=report,
        stats={} if images_per_sec is None else {"images_per_sec": images_per_sec})


def plant_links(folder, names):
    """A symbolic link at each name, to a precious file elsewhere."""
    victims = {}
    for name in names:
        victim = folder.parent / f"victim-{name}"
        victim.write_text("precious")
        (folder / name).symlink_to(victim)
        victims[name] = victim
    return victims


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


# --------------------------------------------------------------------- links


def test_report_replaces_planted_links_and_never_writes_through_them(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victims = plant_links(out, ["report.md", "report.png", "results.csv"])
    results = [make(), make("vgg16", images_per_sec=20.0)]
    paths = write_report(results, out)
    write_csv(results, out / "results.csv")
    for name, victim in victims.items():
        assert victim.read_text() == "precious", name
        assert not os.path.islink(out / name) and os.path.isfile(out / name)
    assert open(paths["markdown"]).read().startswith("# kerasbench report")
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert leftovers(out) == []


def test_plot_replaces_a_link(tmp_path):
    victims = plant_links(tmp_path, ["chart.png"])
    plot_results([make()], tmp_path / "chart.png")
    assert victims["chart.png"].read_text() == "precious"
    assert open(tmp_path / "chart.png", "rb").read(4) == b"\x89PNG"


def test_written_files_have_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        write_csv([make()], tmp_path / "results.csv")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "results.csv").st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "report.md").write_text("old report")
    with pytest.raises(ValueError, match="Received: baseline='nowhere'"):
        write_report([make()], tmp_path, baseline="nowhere")
    assert (tmp_path / "report.md").read_text() == "old report"
    with pytest.raises(RuntimeError, match="stopped half way"):
        with replace_atomically(tmp_path / "report.md") as f:
            f.write("half a new rep")
            raise RuntimeError("stopped half way")
    assert (tmp_path / "report.md").read_text() == "old report"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------- CSV


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path):
    results = [make("=cmd|' /C calc'!A0", machine="=HYPERLINK(\"http://x\")",
                    backend="+jax"),
               make("@SUM(1+1)", machine="-2+3", status="error", images_per_sec=None,
                    error="\tTabbed=1+1")]
    write_csv(results, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as f:
        first, second = csv.DictReader(f)
    assert first["model"] == "'=cmd|' /C calc'!A0"
    assert first["machine"] == "'=HYPERLINK(\"http://x\")"
    assert first["backend"] == "'+jax"
    assert (second["model"], second["machine"], second["error"]) == \
        ("'@SUM(1+1)", "'-2+3", "'\tTabbed=1+1")
    assert first["images_per_sec"] == "100.0" and first["batch_size"] == "32"


def test_csv_without_a_device(tmp_path):
    failed = make(device=None, status="error", images_per_sec=None, error="no GPU")
    write_csv([failed], tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        (row,) = reader
    assert (row["device"], row["status"], row["images_per_sec"]) == ("auto", "error", "")


def test_csv_carries_the_interval_beside_the_classic_sem(tmp_path):
    r = make()
    r.stats.update(images_per_sec_ci_low=98.5, images_per_sec_ci_high=101.6,
                   ci_method="batch_means", ci_df=13.5, images_per_sec_sem=0.2,
                   target_reached=True, stop_reason="target")
    write_csv([r], tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert (row["images_per_sec"], row["images_per_sec_ci_low"],
            row["images_per_sec_ci_high"], row["ci_method"], row["ci_df"]) == \
        ("100.0", "98.5", "101.6", "batch_means", "13.5")
    assert row["images_per_sec_sem"] == "0.2"
    assert (row["target_reached"], row["stop_reason"]) == ("True", "target")
    names = list(CSV_COLUMNS)
    assert names.index("images_per_sec") + 1 == names.index("images_per_sec_ci_low")


# ------------------------------------------------------------------ Markdown


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("|")]


def cells(line):
    """The cells of a Markdown table row (``\\|`` is not a separator)."""
    return re.split(r"(?<!\\)\|", line)[1:-1]


def test_pipes_and_line_breaks_in_labels_do_not_break_the_tables():
    report = {"host": {"cpu_model": "Fast|CPU\nv2"}}
    results = [make(machine="lab|1\nrack 2", report=report),
               make("vgg16", machine="lab|1\nrack 2", report=report, status="error",
                    images_per_sec=None, error="Bad | thing\r\nsecond line"),
               make("my|model", machine="lab|1\nrack 2", report=report)]
    text = markdown_tables(results)
    assert "### lab\\|1 rack 2 / cpu: Fast\\|CPU v2 (images/sec)\n" in text
    assert "- VGG16, batch 32: error: Bad \\| thing\n" in text
    rows = table_rows(text)
    assert rows[0] == "| Batch size | ResNet-50 | VGG16 | my\\|model |"
    assert all(len(cells(row)) == 4 for row in rows)
    assert "\nrack" not in text and "\r" not in text


def test_pipes_and_line_breaks_in_set_labels_do_not_break_the_comparison():
    a = [make(machine="a")]
    b = [make(images_per_sec=200.0, machine="b|c\nd")]
    text = compare([("set|1\nx", a), ("set 2", b)]).to_markdown()
    rows = table_rows(text)
    assert rows[0] == "| Model | Mode | Batch size | Precision | set\\|1 x | set 2 | Ratio |"
    assert all(len(cells(row)) == 7 for row in rows)
    assert text.startswith("## images/sec: set\\|1 x vs set 2\n")


def test_runs_without_a_device_show_auto():
    failed = make(device=None, status="error", images_per_sec=None, error="no GPU found")
    text = markdown_tables([make(), failed])
    assert "### box / auto (images/sec)" in text
    c = compare([("box", [make(), failed])])
    assert [col.label for col in c.columns] == ["box cpu", "box auto"]
    assert c.columns[1].device == "auto"
    assert c.rows[0].cell("box auto").status == "error"


def test_csv_efficiency_columns_only_when_a_result_has_them(tmp_path):
    plain = make()
    write_csv([plain], tmp_path / "plain.csv")
    with open(tmp_path / "plain.csv", newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == CSV_COLUMNS

    measured = make("vgg16")
    measured.stats.update(mfu=0.31, achieved_tflops=0.52, peak_memory_bytes=851_443_712,
                          memory_kind="host", energy_note="/sys/class/powercap is absent")
    write_csv([plain, measured], tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        reader = csv.DictReader(f)
        names = reader.fieldnames
        first, second = reader
    added = [n for n in names if n not in CSV_COLUMNS]
    assert added == ["achieved_tflops", "mfu", "peak_memory_bytes", "memory_kind",
                     "energy_note"]
    assert names.index("achieved_tflops") == names.index("stop_reason") + 1
    assert [n for n in names if n in CSV_COLUMNS] == list(CSV_COLUMNS)
    assert (second["mfu"], second["peak_memory_bytes"], second["memory_kind"]) == \
        ("0.31", "851443712", "host")
    assert (first["mfu"], first["energy_note"]) == ("", "")


def test_every_efficiency_figure_of_a_result_reaches_the_csv_and_the_report(tmp_path):
    """A result's stats as the callback writes them (`ThroughputResult.to_dict`)."""
    from kerasbench._timing.throughput import ThroughputResult

    figures = {"flops_per_sample": 8149.5, "achieved_tflops": 0.00037, "mfu": 0.00226,
               "peak_memory_bytes": 786_432_000, "memory_kind": "host", "energy_j": 110.0,
               "joules_per_image": 0.625, "images_per_sec_per_watt": 1.6}
    import dataclasses

    fields = {f.name: None for f in dataclasses.fields(ThroughputResult)}
    stats = ThroughputResult.from_dict({**fields, "phase": "train", "step_times_s": [],
                                        "notes": [], "images_per_sec": 800.0,
                                        "energy_source": "rapl", **figures}).to_dict()
    r = make()
    r.stats.update(stats)
    write_csv([r], tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert {key: row[key] for key in figures} == {key: str(v) for key, v in figures.items()}
    assert row["energy_source"] == "rapl" and "energy_note" not in row  # no value: no column
    text = markdown_tables([r])
    assert "| achieved TFLOP/s | MFU | peak memory | J/image |" in text
    assert "| ResNet-50 | 32 | 0.00037 | 0.2% | 750 MiB (host) | 0.62 |" in text
