"""The tables and comparisons published in docs/sweeps.md and
docs/performance.md, regenerated from docs/data/*.jsonl (schema-1 files
with the device report inline on every line) and the bundled baseline
(the current format): the text must not change.
"""

import os

from kerasbench._results import compare, load_baseline, markdown_tables, read_results

DATA = os.path.join(os.path.dirname(__file__), "..", "docs", "data")
SEED = ["inception3", "resnet50", "vgg16", "alexnet", "nasnet"]

SEED_TABLES = (
    '### dev VM (2-core EPYC) / cpu: AMD EPYC (images/sec)\n'
    '\n'
    'Precision: fp32 / Mode: train / Data: synthetic\n'
    '\n'
    'Settings: backend=tensorflow, jit_compile=False, steps_per_execution=1, steps=10, warmup_steps=3\n'
    '\n'
    '| Batch size | InceptionV3 | ResNet-50 | VGG16 | AlexNet | NASNet-A Mobile |\n'
    '|:---|---:|---:|---:|---:|---:|\n'
    '| 16 | 5.0 | 5.9 | 2.1 | 33.7 | 16.0 |\n'
    '| 32 | 4.9 | 5.8 | 2.2 | 39.0 | 15.8 |\n'
    '| Precision | fp32 | fp32 | fp32 | fp32 | fp32 |\n'
    '| Optimizer | sgd | sgd | sgd | sgd | sgd |\n'
    '\n'
    '### dev VM (2-core EPYC) / cpu: AMD EPYC (images/sec)\n'
    '\n'
    'Precision: bf16 / Mode: train / Data: synthetic\n'
    '\n'
    'Settings: backend=tensorflow, jit_compile=False, steps_per_execution=1, steps=10, warmup_steps=3\n'
    '\n'
    '| Batch size | InceptionV3 | ResNet-50 | VGG16 | AlexNet | NASNet-A Mobile |\n'
    '|:---|---:|---:|---:|---:|---:|\n'
    '| 16 | 7.1 | 8.5 | 4.2 | 63.2 | 12.4 |\n'
    '| 32 | 7.4 | 8.4 | 4.3 | 71.0 | 13.2 |\n'
    '| Precision | bf16 | bf16 | bf16 | bf16 | bf16 |\n'
    '| Optimizer | sgd | sgd | sgd | sgd | sgd |\n'
)

AGAINST_THE_GTX_1050_TI = (
    '## images/sec: gtx1050ti-fp16 (published) [1] vs dev-vm-cpu.jsonl\n'
    '\n'
    'Ratios: images/sec of each column divided by the baseline column, gtx1050ti-fp16 (published) [1] (chosen baseline); above 1.00x is faster than the baseline.\n'
    'Matched on model, mode, batch size; precision ignored (each cell shows its own in parentheses).\n'
    '\n'
    '| Model | Mode | Batch size | gtx1050ti-fp16 (published) [1] | dev-vm-cpu.jsonl | Ratio |\n'
    '|:---|:---|---:|---:|---:|---:|\n'
    '| InceptionV3 | train | 16 | 34.0 (fp16) | 5.0 (fp32) | 0.15x |\n'
    '| InceptionV3 | train | 16 | 34.0 (fp16) | 7.1 (bf16) | 0.21x |\n'
    '| InceptionV3 | train | 32 | 37.0 (fp16) | 4.9 (fp32) | 0.13x |\n'
    '| InceptionV3 | train | 32 | 37.0 (fp16) | 7.4 (bf16) | 0.20x |\n'
    '| ResNet-50 | train | 16 | 54.0 (fp16) | 5.9 (fp32) | 0.11x |\n'
    '| ResNet-50 | train | 16 | 54.0 (fp16) | 8.5 (bf16) | 0.16x |\n'
    '| ResNet-50 | train | 32 | 62.0 (fp16) | 5.8 (fp32) | 0.093x |\n'
    '| ResNet-50 | train | 32 | 62.0 (fp16) | 8.4 (bf16) | 0.14x |\n'
    '| VGG16 | train | 16 | 29.0 (fp16) | 2.1 (fp32) | 0.074x |\n'
    '| VGG16 | train | 16 | 29.0 (fp16) | 4.2 (bf16) | 0.15x |\n'
    '| VGG16 | train | 32 | 33.0 (fp16) | 2.2 (fp32) | 0.068x |\n'
    '| VGG16 | train | 32 | 33.0 (fp16) | 4.3 (bf16) | 0.13x |\n'
    '| AlexNet | train | 16 | 213 (fp16) | 33.7 (fp32) | 0.16x |\n'
    '| AlexNet | train | 16 | 213 (fp16) | 63.2 (bf16) | 0.30x |\n'
    '| AlexNet | train | 32 | 386 (fp16) | 39.0 (fp32) | 0.10x |\n'
    '| AlexNet | train | 32 | 386 (fp16) | 71.0 (bf16) | 0.18x |\n'
    '| NASNet-A Mobile | train | 16 | 38.0 (fp16) | 16.0 (fp32) | 0.42x |\n'
    '| NASNet-A Mobile | train | 16 | 38.0 (fp16) | 12.4 (bf16) | 0.33x |\n'
    '| NASNet-A Mobile | train | 32 | 41.0 (fp16) | 15.8 (fp32) | 0.39x |\n'
    '| NASNet-A Mobile | train | 32 | 41.0 (fp16) | 13.2 (bf16) | 0.32x |\n'
    '\n'
    'Only in some columns:\n'
    '\n'
    '- InceptionV3, train, batch 64: only in gtx1050ti-fp16 (not in dev-vm-cpu.jsonl)\n'
    '- ResNet-50, train, batch 64: only in gtx1050ti-fp16 (not in dev-vm-cpu.jsonl)\n'
    '- VGG16, train, batch 64: only in gtx1050ti-fp16 (not in dev-vm-cpu.jsonl)\n'
    '- AlexNet, train, batch 64: only in gtx1050ti-fp16 (not in dev-vm-cpu.jsonl)\n'
    '- NASNet-A Mobile, train, batch 64: only in gtx1050ti-fp16 (not in dev-vm-cpu.jsonl)\n'
    '\n'
    'Notes:\n'
    '\n'
    "- [1] gtx1050ti-fp16: Published figures. Source: schoenemeyer, 'Running Benchmarks with Tensorflow backend on NVIDIA GeForce GPUs' (convolution-cpu-vs-gpu, GitHub), tf_cnn_benchmarks, TensorFlow 1.10, CUDA 9.1, GTX 1050 Ti; published figures, not measured by kerasbench.\n"
)

H200_AGAINST_THE_GTX_1050_TI = (
    '## images/sec: gtx1050ti-fp16 (published) [1] vs h200-jax.jsonl\n'
    '\n'
    'Ratios: images/sec of each column divided by the baseline column, gtx1050ti-fp16 (published) [1] (chosen baseline); above 1.00x is faster than the baseline.\n'
    'Matched on model, mode, batch size, precision.\n'
    '\n'
    '| Model | Mode | Batch size | Precision | gtx1050ti-fp16 (published) [1] | h200-jax.jsonl | Ratio |\n'
    '|:---|:---|---:|:---|---:|---:|---:|\n'
    '| ResNet-50 | train | 16 | fp16 | 54.0 | 1542 | 28.6x |\n'
    '| ResNet-50 | train | 32 | fp16 | 62.0 | 3000 | 48.4x |\n'
    '| ResNet-50 | train | 64 | fp16 | 65.0 | 4133 | 63.6x |\n'
    '| VGG16 | train | 16 | fp16 | 29.0 | 2460 | 84.8x |\n'
    '| VGG16 | train | 32 | fp16 | 33.0 | 3213 | 97.4x |\n'
    '| VGG16 | train | 64 | fp16 | 30.0 | 3663 | 122x |\n'
    '| AlexNet | train | 16 | fp16 | 213 | 7543 | 35.4x |\n'
    '| AlexNet | train | 32 | fp16 | 386 | 13564 | 35.1x |\n'
    '| AlexNet | train | 64 | fp16 | 466 | 21603 | 46.4x |\n'
    '\n'
    'Only in some columns:\n'
    '\n'
    '- InceptionV3, train, batch 16, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '- InceptionV3, train, batch 32, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '- InceptionV3, train, batch 64, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '- NASNet-A Mobile, train, batch 16, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '- NASNet-A Mobile, train, batch 32, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '- NASNet-A Mobile, train, batch 64, fp16: only in gtx1050ti-fp16 (not in h200-jax.jsonl)\n'
    '\n'
    'Notes:\n'
    '\n'
    "- [1] gtx1050ti-fp16: Published figures. Source: schoenemeyer, 'Running Benchmarks with Tensorflow backend on NVIDIA GeForce GPUs' (convolution-cpu-vs-gpu, GitHub), tf_cnn_benchmarks, TensorFlow 1.10, CUDA 9.1, GTX 1050 Ti; published figures, not measured by kerasbench.\n"
)


def test_the_seed_tables_of_the_dev_vm():
    results = read_results(os.path.join(DATA, "dev-vm-cpu.jsonl"))
    assert markdown_tables(results, models=SEED) == SEED_TABLES


def test_the_dev_vm_against_the_published_gtx_1050_ti():
    cpu = [r for r in read_results(os.path.join(DATA, "dev-vm-cpu.jsonl")) if r.model in SEED]
    c = compare([("gtx1050ti-fp16", load_baseline("gtx1050ti-fp16")), ("dev-vm-cpu.jsonl", cpu)],
                baseline="gtx1050ti-fp16", ignore=("precision",))
    assert c.to_markdown() == AGAINST_THE_GTX_1050_TI


def test_the_h200_against_the_published_gtx_1050_ti():
    c = compare([("gtx1050ti-fp16", load_baseline("gtx1050ti-fp16")),
                 ("h200-jax.jsonl", read_results(os.path.join(DATA, "h200-jax.jsonl")))],
                baseline="gtx1050ti-fp16")
    assert c.to_markdown() == H200_AGAINST_THE_GTX_1050_TI
