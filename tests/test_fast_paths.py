"""The speed-ups keep the fast tier equal to the reference loops, in float32 and float64.

- dx of a stride-1 convolution as a transposed convolution (im2col of dout + one product)
  and by col2im: both equal the reference sums, whichever the layer would pick;
- col2im taken a block of channels at a time: the same sums for any block size;
- im2col written into a reused scratch buffer: nothing the model keeps points into it;
- float32 in, float32 everywhere: no float64 creeps into activations or gradients.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn.windows as windows
from minicnn import zoo
from minicnn.gradcheck import relative_error
from minicnn.layers import conv
from minicnn.layers.conv import (conv2d_backward, conv2d_backward_reference, conv2d_forward,
                                 conv2d_input_grad_transposed, use_transposed)
from minicnn.layers.pool import maxpool2d_backward, maxpool2d_backward_reference, maxpool2d_forward
from minicnn.windows import col2im, im2col, output_size, pad, reuse_buffers, scratch
from strategies import conv_cases

SAME = 1e-10


def stride_one(case):
    """The case with stride 1 and the padding cut to the kernel's reach: where dx can be a convolution."""
    (kh, kw), (ph, pw), (dh, dw) = case["kernel"], case["padding"], case["dilation"]
    return {**case, "stride": (1, 1), "padding": (min(ph, dh * (kh - 1)), min(pw, dw * (kw - 1)))}


def fits(case):
    return all(output_size(size, k, s, p, d) >= 1 for size, k, s, p, d in zip(
        (case["h"], case["w"]), case["kernel"], case["stride"], case["padding"], case["dilation"]))


def arrays(case, rng):
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["f"], case["c"], *case["kernel"]))
    return x, w


@given(conv_cases().map(stride_one).filter(fits))
def test_transposed_convolution_dx_equals_reference(case):
    # Stride 1 with p <= d(k - 1): dx is the full correlation of dout with the flipped kernel.
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    out = conv2d_forward(x, w, None, 1, case["padding"], case["dilation"])
    dout = rng.standard_normal(out.shape)
    dx = conv2d_input_grad_transposed(dout, w, case["padding"], case["dilation"])
    ref, _, _ = conv2d_backward_reference(dout, x, w, 1, case["padding"], case["dilation"])
    assert dx.shape == x.shape
    assert relative_error(dx, ref) < SAME


@pytest.mark.parametrize("transposed", [True, False])
@given(case=conv_cases().map(stride_one).filter(fits))
def test_both_dx_paths_equal_reference(transposed, case):
    hyper = (case["stride"], case["padding"], case["dilation"])
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    dout = rng.standard_normal(conv2d_forward(x, w, None, *hyper).shape)
    chooser = conv.use_transposed
    conv.use_transposed = lambda *args: transposed                  # force the path under test
    try:
        fast = conv2d_backward(dout, x, w, *hyper)
    finally:
        conv.use_transposed = chooser
    ref = conv2d_backward_reference(dout, x, w, *hyper)
    for name, a, r in zip(("dx", "dw", "db"), fast, ref):
        assert relative_error(a, r) < SAME, name


def test_transposed_is_chosen_only_where_it_is_possible_and_cheaper():
    assert use_transposed((1, 64, 224, 224), (64, 64, 3, 3), 1, 1)          # VGG's 64 -> 64 layer
    assert not use_transposed((1, 3, 224, 224), (64, 3, 3, 3), 1, 1)        # more channels out than in
    assert not use_transposed((1, 64, 32, 32), (64, 64, 3, 3), 2, 1)        # stride 2
    assert not use_transposed((1, 64, 32, 32), (64, 64, 3, 3), 1, 3)        # padding beyond the kernel
    assert not use_transposed((1, 512, 14, 14), (512, 512, 3, 3), 1, 1)     # weights larger than dout's columns


@given(conv_cases(), st.integers(1, 40))
def test_col2im_in_blocks_is_the_same_sum(case, block_floats):
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    xp = pad(x, case["padding"])
    cols = rng.standard_normal(im2col(xp, case["kernel"], case["stride"], case["dilation"]).shape)
    whole = col2im(cols, xp.shape, case["kernel"], case["stride"], case["dilation"])
    original = windows.BLOCK_FLOATS
    try:
        windows.BLOCK_FLOATS = block_floats                       # several blocks, even one channel each
        blocked = col2im(cols, xp.shape, case["kernel"], case["stride"], case["dilation"])
    finally:
        windows.BLOCK_FLOATS = original
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-12)


def test_scratch_is_reused_inside_the_block_and_fresh_outside():
    buffers = {}
    with reuse_buffers(buffers):
        a = scratch("cols", (4, 5), np.float32)
        b = scratch("cols", (2, 3), np.float32)
        with reuse_buffers():                                      # nested: the outer buffers stay
            c = scratch("cols", (3, 3), np.float32)
        d = scratch("cols", (10, 10), np.float32)                  # too small: grown
    assert np.shares_memory(a, b) and np.shares_memory(a, c)
    assert not np.shares_memory(a, d)
    assert buffers[("cols", np.dtype(np.float32))].size == 100
    assert not np.shares_memory(scratch("cols", (4, 5), np.float32), d)   # outside: fresh memory


def test_convolution_results_never_point_into_the_scratch_buffer(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    buffers = {}
    with reuse_buffers(buffers):
        out = conv2d_forward(x, w, None, 1, 1)
        dx, dw, db = conv2d_backward(np.ones_like(out), x, w, 1, 1)
        again = conv2d_forward(x, 2 * w, None, 1, 1)
    buffer = buffers[("cols", np.dtype(np.float32))]
    for a in (out, dx, dw, db, again):
        assert not np.shares_memory(a, buffer)
    np.testing.assert_allclose(again, 2 * out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("relu", ["plain", "guided", "deconvnet"])
def test_float32_stays_float32_through_every_layer(rng, relu):
    model = zoo.vgg_cifar(fold_bn=True)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    dx = model.backward(np.eye(10, dtype=np.float32)[[3, 5]], relu=relu)
    assert dx.dtype == np.float32
    for name in model.layer_names:
        assert model.activations[name].dtype == np.float32, name
        assert model.gradients[name].dtype == np.float32, name


def test_model_passes_give_the_same_answer_with_reused_buffers(rng):
    model = zoo.resnet20()
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    first = model.forward(x).copy()
    model.backward(np.eye(10, dtype=np.float32)[[1]], relu="guided")
    np.testing.assert_array_equal(model.forward(x), first)          # the buffer held the last backward's columns
    twin = model.astype(np.float32)                                 # copies leave the buffers behind
    assert twin._buffers == {}
    np.testing.assert_array_equal(twin.forward(x), first)


@given(st.integers(0, 2**32 - 1), st.sampled_from([(2, 2), (3, 2), (2, 3), (3, 3)]))
def test_maxpool_tiled_and_overlapping_windows_in_float32(seed, hyper):
    # float32 ReLU-like input full of ties (zeros): the first maximum still wins.
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.integers(-2, 3, (2, 3, 7, 8)), 0).astype(np.float32)
    kernel, stride = hyper
    out = maxpool2d_forward(x, kernel, stride)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = maxpool2d_backward(dout, x, out, kernel, stride)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, maxpool2d_backward_reference(dout, x, kernel, stride), rtol=1e-6)
