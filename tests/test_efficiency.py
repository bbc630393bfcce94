"""FLOPs per sample from each backend's own counter, and the MFU formulas.

Hand-computed counts (a multiply-add is 2 FLOPs): Dense(100 -> 10) forward is
2 x 100 x 10 = 2,000 multiply-add FLOPs plus 10 bias additions; a 3x3 'valid'
Conv2D of 3 -> 4 channels on an 8x8 image without bias has 6x6 outputs, 6 x 6
x 4 x 3 x 3 x 3 = 3,888 multiply-adds = 7,776 FLOPs. ('same' padding differs
by backend: XLA leaves out the multiply-adds with the zero padding, the
TensorFlow profiler and PyTorch count them.) These tests run under every
backend in CI (marker ``backends``).
"""

import keras
import numpy as np
import pytest

from kerasbench._efficiency.figures import achieved_tflops, mfu
from kerasbench._efficiency.flops import count_flops

BACKEND = keras.backend.backend()
#: PyTorch's counter counts matrix products and convolutions only (no bias adds).
BIAS = 0 if BACKEND == "torch" else 1


@pytest.mark.backends
def test_dense_forward_matches_the_hand_count():
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(10)])
    count = count_flops(model, np.zeros((4, 100), "float32"), training_pass="forward")
    assert count.flops_per_sample == 2 * 100 * 10 + BIAS * 10


@pytest.mark.backends
def test_conv2d_forward_matches_the_hand_count():
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(4, 3, padding="valid", use_bias=False)])
    count = count_flops(model, np.zeros((2, 8, 8, 3), "float32"), training_pass="forward")
    assert count.flops_per_sample == 2 * 6 * 6 * 4 * 3 * 3 * 3  # 'valid': 6x6 outputs


@pytest.mark.backends
def test_training_is_about_three_forward_passes():
    """Forward, then gradients for inputs and for weights: 2x more (plus the update)."""
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, use_bias=False),
                              keras.layers.Dense(256, use_bias=False),
                              keras.layers.Dense(10, use_bias=False)])
    x = np.zeros((8, 64), "float32")
    forward = count_flops(model, x, training_pass="forward").flops_per_sample
    train = count_flops(model, x, training_pass="train").flops_per_sample
    assert 2.5 <= train / forward <= 3.5, (forward, train)


@pytest.mark.slow
def test_resnet50_forward_is_the_published_count():
    """About 4.1 G multiply-adds at 224x224 (He et al. 2016, table 1: 3.8 G;
    the Keras model with its 1000-way head: 3.9 G) = 7.7-8.2 G FLOPs."""
    import kerasbench

    model = kerasbench.create_model("resnet50")
    x = np.zeros((1, 224, 224, 3), "float32")
    forward = count_flops(model, x, training_pass="forward").flops_per_sample
    assert 7.4e9 <= forward <= 8.4e9, forward
    train = count_flops(model, x, training_pass="train").flops_per_sample
    assert 2.8 <= train / forward <= 3.3, train / forward


def test_a_model_that_cannot_be_counted_says_why():
    class Opaque(keras.Model):
        def call(self, x):
            raise RuntimeError("cannot trace me")

    count = count_flops(Opaque(), np.zeros((1, 3), "float32"), training_pass="forward")
    assert count.flops_per_sample is None and "cannot trace me" in count.note


def test_formulas_against_hand_computed_values():
    assert achieved_tflops(8e9, 50.0) == pytest.approx(0.4)
    assert mfu(0.4, 1.6) == pytest.approx(0.25)
    assert mfu(0.4, None) is None
    with pytest.raises(ValueError, match="Received: images_per_sec=nan"):
        achieved_tflops(1.0, float("nan"))
    with pytest.raises(ValueError, match="Received: peak=0"):
        mfu(0.4, 0)
    with pytest.raises(ValueError, match="Did you mean 'train'"):
        count_flops(None, np.zeros((1, 1)), training_pass="trian")
