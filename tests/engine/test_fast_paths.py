"""The speed-ups keep the fast tier equal to the reference loops, in float32 and float64.

- dx of a stride-1 convolution as a transposed convolution (im2col of dout + one product)
  and by col2im: both equal the reference sums, whichever the layer would pick;
- the forward product and col2im's dx taken a block of columns at a time (whole images
  or bands of output rows): the same sums for any block size;
- col2im taken a block of channels at a time: the same sums for any block size;
- stride 1 with the images side by side: the padded images laid side by side,
  the columns by one slice copy per tap (equal to im2col's where a window
  lies inside an image), their adjoint (equal to col2im), and the forward and
  dx built on them, in blocks, on several threads: equal to the reference;
- float32 in, float32 everywhere: no float64 creeps into activations or gradients;
- a pass that keeps nothing runs a convolution, the BatchNorm after it (folded into
  its weights) and the ReLU after those as one pass: equal to the layers one after the
  other, in a Sequential and in a ResNet block.
- depthwise convolution's fast tier (``layers/depthwise.py``: shifted multiply-adds over the
  phases of one padded array, channels first or last, in blocks of channels, on threads)
  equals its einsum tier and the loops, forward, dx, dw and db, for any stride, padding,
  dilation and depth multiplier, in float64 and (to float32's precision) in float32.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases, grouped_conv_cases

import minicnn.windows as windows
from minicnn import parallel
from minicnn.gradcheck import numerical_gradient, relative_error
from minicnn.layers import BasicBlock, BatchNorm2d, Conv2d, MaxPool2d, Pass, ReLU, Sequential, conv, depthwise
from minicnn.layers.conv import (
    conv2d_backward,
    conv2d_backward_reference,
    conv2d_forward,
    conv2d_forward_reference,
    conv2d_input_grad_side_by_side,
    conv2d_input_grad_transposed,
    use_transposed,
)
from minicnn.layers.grouped import (
    depthwise_conv2d_backward_reference,
    depthwise_conv2d_forward_reference,
    grouped_conv2d_backward_reference,
    grouped_conv2d_forward_reference,
)
from minicnn.layers.pool import maxpool2d_backward, maxpool2d_backward_reference, maxpool2d_forward
from minicnn.models import zoo
from minicnn.windows import add_shifted_columns, col2im, im2col, output_size, pad, shifted_columns, side_by_side

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


@given(case=conv_cases().map(stride_one).filter(fits))
def test_stride_one_by_im2col_equals_reference(case):
    # The layers side by side does not pay for (many output channels on small maps) keep im2col and col2im.
    hyper = (case["stride"], case["padding"], case["dilation"])
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    out_ref = conv2d_forward_reference(x, w, None, *hyper)
    dout = rng.standard_normal(out_ref.shape)
    original = conv.use_side_by_side, conv.use_transposed
    conv.use_side_by_side, conv.use_transposed = (lambda *args: False), (lambda *args: False)
    try:
        out, (dx, _, _) = conv2d_forward(x, w, None, *hyper), conv2d_backward(dout, x, w, *hyper, param_grads=False)
    finally:
        conv.use_side_by_side, conv.use_transposed = original
    assert relative_error(out, out_ref) < SAME
    assert relative_error(dx, conv2d_backward_reference(dout, x, w, *hyper)[0]) < SAME


def test_side_by_side_is_chosen_where_it_pays():
    assert conv.use_side_by_side((64, 16, 32, 32), (16, 16, 3, 3), 1, 1)          # ResNet-20's first stage
    assert conv.use_side_by_side((1, 64, 224, 224), (64, 64, 3, 3), 1, 1)        # VGG-16's first block
    assert not conv.use_side_by_side((1, 512, 14, 14), (512, 512, 3, 3), 1, 1)   # VGG-16's last block
    assert not conv.use_side_by_side((64, 16, 32, 32), (32, 16, 3, 3), 2, 1)     # stride 2


def test_transposed_is_chosen_only_where_it_is_possible_and_cheaper():
    assert use_transposed((1, 64, 224, 224), (64, 64, 3, 3), 1, 1)          # VGG's 64 -> 64 layer
    assert not use_transposed((1, 3, 224, 224), (64, 3, 3, 3), 1, 1)        # more channels out than in
    assert not use_transposed((1, 64, 32, 32), (64, 64, 3, 3), 2, 1)        # stride 2
    assert not use_transposed((1, 64, 32, 32), (64, 64, 3, 3), 1, 3)        # padding beyond the kernel
    assert not use_transposed((1, 512, 14, 14), (512, 512, 3, 3), 1, 1)     # weights larger than dout's columns


@given(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), st.integers(1, 50), st.integers(1, 40),
       st.integers(1, 30))
def test_column_blocks_cover_every_column_once_in_order(n, ho, wo, rows, block_floats, min_columns):
    original = windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS
    try:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = block_floats, min_columns
        blocks = list(windows.column_blocks(n, ho, wo, rows))
    finally:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = original
    covered, columns = [], []
    for images, out_rows, cols in blocks:
        assert out_rows == slice(0, ho) or images.stop - images.start == 1     # whole images, or rows of one
        covered += [(i, r) for i in range(images.start, images.stop) for r in range(out_rows.start, out_rows.stop)]
        columns += range(cols.start, cols.stop)
    assert covered == [(i, r) for i in range(n) for r in range(ho)]
    assert columns == list(range(n * ho * wo))                               # (n, i, j) order, each once


@given(conv_cases(), st.integers(1, 64), st.integers(1, 16))
def test_forward_and_backward_in_column_blocks_equal_reference(case, block_floats, min_columns):
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    b = rng.standard_normal(case["f"])
    hyper = (case["stride"], case["padding"], case["dilation"])
    dout = rng.standard_normal(conv2d_forward_reference(x, w, b, *hyper).shape)
    original = (windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS, conv.use_transposed, conv.use_side_by_side,
                parallel._blas_threads)
    try:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = block_floats, min_columns   # many small blocks
        conv.use_transposed = conv.use_side_by_side = lambda *args: False                 # im2col, dx by col2im
        parallel._blas_threads = lambda: 3                                                 # blocks on threads
        out = conv2d_forward(x, w, b, *hyper)
        dx, _, _ = conv2d_backward(dout, x, w, *hyper, param_grads=False)
    finally:
        (windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS, conv.use_transposed, conv.use_side_by_side,
         parallel._blas_threads) = original
    assert relative_error(out, conv2d_forward_reference(x, w, b, *hyper)) < SAME
    assert relative_error(dx, conv2d_backward_reference(dout, x, w, *hyper)[0]) < SAME


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


@pytest.mark.parametrize("relu", ["plain", "guided", "deconvnet"])
@pytest.mark.parametrize("build", [lambda: zoo.vgg_cifar(fold_bn=True), lambda: zoo.vgg_cifar(), zoo.resnet20],
                         ids=["vgg_cifar_folded", "vgg_cifar_bn", "resnet20"])
def test_float32_stays_float32_through_every_layer(rng, relu, build):
    model = build()
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model.forward(x)
    dx = model.backward(np.eye(10, dtype=np.float32)[[3, 5]], relu=relu)
    assert dx.dtype == np.float32
    for name in model.layer_names:
        assert model.activations[name].dtype == np.float32, name
        assert model.gradients[name].dtype == np.float32, name


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
    # overlapping windows add float32 gradients in another order: rounding ~1e-7 absolute, even on a small sum
    np.testing.assert_allclose(dx, maxpool2d_backward_reference(dout, x, kernel, stride), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- stride 1, images side by side

def side_by_side_case(case):
    """Stride 1, and a padding no wider than the kernel's reach (the layout shares no padding otherwise)."""
    return stride_one(case)


@given(conv_cases(), st.integers(0, 3), st.integers(0, 2))
def test_side_by_side_lays_the_padded_images_next_to_each_other(case, first, extra_rows):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"] + 2, case["c"], case["h"], case["w"]))
    ph, pw = case["padding"]
    xp = pad(x, (ph, pw))
    images = slice(min(first, case["n"]), case["n"] + 2)
    top = rng.integers(0, xp.shape[2])
    rows = slice(int(top), xp.shape[2] + extra_rows)                     # rows past the image: zeros
    got = side_by_side(x, (ph, pw), images, rows)
    want = np.zeros((x.shape[0], case["c"], rows.stop, xp.shape[3]))
    want[:, :, :xp.shape[2]] = xp
    np.testing.assert_array_equal(got, want[images, :, rows].transpose(1, 2, 0, 3))


@given(conv_cases().map(side_by_side_case).filter(fits))
def test_shifted_columns_are_im2col_where_the_windows_lie_inside_an_image(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    xp = pad(x, case["padding"])
    ho, wo = output_size(xp.shape[2], case["kernel"][0], 1, 0, case["dilation"][0]), \
        output_size(xp.shape[3], case["kernel"][1], 1, 0, case["dilation"][1])
    cols = shifted_columns(side_by_side(x, case["padding"]), case["kernel"], case["dilation"])
    taps = case["c"] * case["kernel"][0] * case["kernel"][1]
    kept = cols.reshape(taps, ho, case["n"], xp.shape[3])[..., :wo]             # taps, i, k, j
    want = im2col(xp, case["kernel"], 1, case["dilation"]).reshape(taps, case["n"], ho, wo)
    np.testing.assert_array_equal(kept, want.transpose(0, 2, 1, 3))


@given(conv_cases().map(side_by_side_case).filter(fits))
def test_add_shifted_columns_is_the_adjoint_and_equals_col2im(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    xs = side_by_side(x, case["padding"]).copy()
    hp, wp = xs.shape[1], xs.shape[3]
    (kh, kw), (dh, dw) = case["kernel"], case["dilation"]
    ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
    taps = case["c"] * kh * kw
    dcols = rng.standard_normal((taps, ho, case["n"], wp))
    dcols[..., wo:] = 0                                            # the dropped columns carry nothing
    summed = add_shifted_columns(dcols.reshape(taps, -1), np.zeros_like(xs), case["kernel"], case["dilation"])
    cols = shifted_columns(xs, case["kernel"], case["dilation"])
    assert abs(np.vdot(cols, dcols.reshape(taps, -1)) - np.vdot(xs, summed)) < 1e-9 * (1 + abs(np.vdot(xs, summed)))
    by_col2im = col2im(dcols[..., :wo].transpose(0, 2, 1, 3).reshape(taps, -1), (case["n"], case["c"], hp, wp),
                       case["kernel"], 1, case["dilation"])
    np.testing.assert_allclose(summed.transpose(2, 0, 1, 3), by_col2im, rtol=1e-12, atol=1e-12)


@pytest.fixture
def three_threads(monkeypatch):
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 3)


@given(conv_cases().map(side_by_side_case).filter(fits), st.integers(1, 64), st.integers(1, 16))
def test_side_by_side_forward_and_dx_in_blocks_on_threads_equal_reference(case, block_floats, min_columns):
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    b = rng.standard_normal(case["f"])
    hyper = (1, case["padding"], case["dilation"])
    dout = rng.standard_normal(conv2d_forward_reference(x, w, b, *hyper).shape)
    original = windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS, parallel._blas_threads
    try:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = block_floats, min_columns   # bands and groups
        parallel._blas_threads = lambda: 3
        out = conv2d_forward(x, w, b, *hyper)
        dx = conv2d_input_grad_side_by_side(dout, x.shape, w, case["padding"], case["dilation"])
    finally:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS, parallel._blas_threads = original
    assert relative_error(out, conv2d_forward_reference(x, w, b, *hyper)) < SAME
    assert relative_error(dx, conv2d_backward_reference(dout, x, w, *hyper)[0]) < SAME


@given(conv_cases().map(side_by_side_case).filter(fits))
def test_side_by_side_dx_matches_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    x, w = arrays(case, rng)
    hyper = (1, case["padding"], case["dilation"])
    dout = rng.standard_normal(conv2d_forward(x, w, None, *hyper).shape)
    dx = conv2d_input_grad_side_by_side(dout, x.shape, w, case["padding"], case["dilation"])
    numeric = numerical_gradient(lambda v: np.vdot(conv2d_forward(v, w, None, *hyper), dout), x)
    assert relative_error(dx, numeric) < 1e-7


@given(st.integers(1, 5), st.integers(1, 9), st.integers(1, 9), st.integers(1, 50), st.integers(1, 400),
       st.integers(1, 30), st.integers(1, 4))
def test_column_blocks_are_near_equal_and_one_per_thread_at_least(n, ho, wo, rows, block_floats, min_columns,
                                                                  parts):
    original = windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS
    try:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = block_floats, min_columns
        blocks = list(windows.column_blocks(n, ho, wo, rows, parts))
    finally:
        windows.COLUMN_BLOCK_FLOATS, windows.MIN_BLOCK_COLUMNS = original
    assert [i for _, _, c in blocks for i in range(c.start, c.stop)] == list(range(n * ho * wo))
    if n * ho * wo >= parts * min_columns:
        assert len(blocks) >= min(parts, n * ho)
    whole = [b for b in blocks if b[1] == slice(0, ho)]
    if len(whole) == len(blocks):                                  # groups of images: sizes differ by one image
        sizes = [im.stop - im.start for im, _, _ in blocks]
        assert max(sizes) - min(sizes) <= 1
    else:                                                          # bands: sizes differ by one row
        sizes = [r.stop - r.start for _, r, _ in blocks]
        assert max(sizes) - min(sizes) <= 1


def conv_bn_relu(case, rng, bn: bool, relu: bool, dtype=np.float64) -> Sequential:
    """Conv2d (the case's hyper-parameters, random weights), then optionally BatchNorm2d (random
    statistics) and ReLU."""
    layer = Conv2d(case["c"], case["f"], case["kernel"], case["stride"], case["padding"], case["dilation"],
                   bias=case["bias"])
    layer.params = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in layer.params.items()}
    children = [("conv", layer)]
    if bn:
        norm = BatchNorm2d(case["f"])
        norm.params = {k: rng.standard_normal(case["f"]).astype(dtype) for k in ("weight", "bias")}
        norm.buffers = {"running_mean": rng.standard_normal(case["f"]).astype(dtype),
                        "running_var": rng.uniform(0.1, 2.0, case["f"]).astype(dtype)}
        children.append(("bn", norm))
    if relu:
        children.append(("relu", ReLU()))
    return Sequential(children)


@given(conv_cases(), st.booleans(), st.booleans())
def test_conv_batchnorm_relu_in_one_pass_equals_the_layers_one_after_the_other(case, bn, relu):
    rng = np.random.default_rng(case["seed"])
    chain = conv_bn_relu(case, rng, bn, relu)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    reference = chain.run_forward(x, Pass(), "")                       # each layer's own forward
    layers = [child for _, child in chain.children()]
    fused, used = layers[0].run_forward_fused(x, layers[1:], Pass(keep=False), "conv")
    assert used == len(layers) - 1                                     # BatchNorm and ReLU folded in
    assert relative_error(fused, reference) < SAME
    assert relative_error(chain.run_forward(x, Pass(keep=False), ""), reference) < SAME
    hyper = (case["stride"], case["padding"], case["dilation"])        # and the loops, written out
    by_loops = conv2d_forward_reference(x, layers[0].params["weight"], layers[0].params.get("bias"), *hyper)
    if bn:
        norm = layers[1]
        scale = norm.params["weight"] / np.sqrt(norm.buffers["running_var"] + norm.eps)
        by_loops = ((by_loops - norm.buffers["running_mean"][:, None, None]) * scale[:, None, None]
                    + norm.params["bias"][:, None, None])
    assert relative_error(fused, np.maximum(by_loops, 0) if relu else by_loops) < SAME


def test_a_pass_that_keeps_its_outputs_runs_every_layer_on_its_own():
    rng = np.random.default_rng(3)
    case = dict(c=2, f=3, kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), bias=True)
    chain = conv_bn_relu(case, rng, True, True)
    run = Pass()
    chain.run_forward(rng.standard_normal((2, 2, 5, 5)), run, "")
    assert set(run.activations) == {"conv", "bn", "relu"}
    assert (run.activations["bn"] < 0).any()                           # BatchNorm's own output, before the ReLU


@pytest.mark.parametrize("stride, planes", [(1, 4), (2, 8)])
def test_resnet_block_in_one_pass_equals_its_layers(stride, planes):
    rng = np.random.default_rng(stride)
    block = BasicBlock(4, planes, stride)
    for name in ("conv1", "conv2", "bn1", "bn2"):
        layer = getattr(block, name)
        layer.params = {k: rng.standard_normal(v.shape) for k, v in layer.params.items()}
        if name.startswith("bn"):
            layer.buffers = {"running_mean": rng.standard_normal(planes), "running_var": rng.uniform(0.1, 2, planes)}
    x = rng.standard_normal((3, 4, 6, 6))
    reference = block.run_forward(x, Pass(), "b")
    fused = block.run_forward(x, Pass(keep=False), "b")
    assert relative_error(fused, reference) < SAME
    assert (reference == 0).any() and (reference > 0).any()           # the last ReLU has something to cut


def test_conv_bn_relu_in_float32_is_close_to_the_layers_in_float32(rng):
    # Folding changes the float32 rounding, not the result: agreement relative to the output's scale.
    case = dict(n=4, c=16, f=16, h=8, w=8, kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1),
                bias=False)
    chain = conv_bn_relu(case, rng, True, True, np.float32)
    x = rng.standard_normal((4, 16, 8, 8)).astype(np.float32)
    reference = chain.run_forward(x, Pass(), "")
    fused = chain.run_forward(x, Pass(keep=False), "")
    assert fused.dtype == np.float32
    assert np.abs(fused - reference).max() < 1e-5 * np.abs(reference).max()


def test_a_pass_that_keeps_nothing_fuses_only_batchnorm_and_relu_and_honours_replace(rng):
    # Conv2d then MaxPool2d (no ReLU to fold), and a replaced BatchNorm output: the same logits either way.
    model = zoo.vgg([4, "M", 6], batch_norm=True, hidden=(5,), pool_size=(1, 1), num_classes=3).astype(np.float64)
    for _, layer in model.layers():
        if isinstance(layer, BatchNorm2d):
            layer.buffers["running_mean"][...] = rng.standard_normal(layer.num_features)
    x = rng.standard_normal((2, 3, 6, 6))
    assert relative_error(model.forward(x, keep=False), model.forward(x)) < SAME
    A = model.activations["features.1"] * 0.5
    kept = model.forward(x, replace={"features.1": A})
    assert relative_error(model.forward(x, replace={"features.1": A}, keep=False), kept) < SAME
    assert relative_error(kept, model.forward(x)) > 1e-3                      # the replacement changed the logits
    conv_bn = conv_bn_relu(dict(c=2, f=3, kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), bias=True),
                           rng, True, False)
    chain = Sequential([*conv_bn.children(), ("pool", MaxPool2d(2)), ("relu", ReLU())])
    x = rng.standard_normal((2, 2, 6, 6))
    assert relative_error(chain.run_forward(x, Pass(keep=False), ""), chain.run_forward(x, Pass(), "")) < SAME
# ---------------------------------------------------------------- depthwise convolution

#: LAST_BELOW values that force each layout of the depthwise fast tier: channels first, channels last.
LAYOUTS = {"channels first": 0.0, "channels last": float("inf")}


def depthwise_arrays(case, rng, dtype=np.float64):
    """x (N, C, H, W), w (m*C, 1, kh, kw), b (m*C,) or None for a depthwise case (groups = C)."""
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"])).astype(dtype)
    w = rng.standard_normal((case["f"], 1, *case["kernel"])).astype(dtype)
    b = rng.standard_normal(case["f"]).astype(dtype) if case["bias"] else None
    return x, w, b


def run_depthwise(case, x, w, b, dout_of, last_below, block_floats):
    """out, (dx, dw, db) and dx alone of the fast tier, with its layout and block size forced."""
    hyper = (case["stride"], case["padding"], case["dilation"])
    saved = depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS, depthwise.SPLIT_FLOATS
    depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS, depthwise.SPLIT_FLOATS = last_below, block_floats, 0
    try:
        out = depthwise.depthwise_conv2d_forward(x, w, b, *hyper)
        dout = dout_of(out)
        grads = depthwise.depthwise_conv2d_backward(dout, x, w, *hyper)
        dx_only = depthwise.depthwise_conv2d_backward(dout, x, w, *hyper, param_grads=False)
    finally:
        depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS, depthwise.SPLIT_FLOATS = saved
    return out, dout, grads, dx_only


@pytest.mark.parametrize("layout", list(LAYOUTS))
@given(case=grouped_conv_cases().filter(lambda case: case["groups"] == case["c"]),
       block_floats=st.sampled_from([1, 5, 2 ** 16]))
def test_depthwise_fast_tier_equals_einsum_tier_and_loops(layout, case, block_floats):
    # Blocks of one channel (block_floats 1) up to the whole layer, both layouts, threads where BLAS has them.
    rng = np.random.default_rng(case["seed"])
    x, w, b = depthwise_arrays(case, rng)
    hyper = (case["stride"], case["padding"], case["dilation"])
    out, dout, (dx, dw, db), dx_only = run_depthwise(case, x, w, b, lambda out: rng.standard_normal(out.shape),
                                                      LAYOUTS[layout], block_floats)
    loops_out = grouped_conv2d_forward_reference(x, w, b, *hyper, case["c"])
    assert out.shape == loops_out.shape and out.flags.c_contiguous
    assert relative_error(out, depthwise_conv2d_forward_reference(x, w, b, *hyper)) < SAME
    assert relative_error(out, loops_out) < SAME
    einsum = depthwise_conv2d_backward_reference(dout, x, w, *hyper)
    loops = grouped_conv2d_backward_reference(dout, x, w, *hyper, case["c"])
    for name, fast, e, r in zip(("dx", "dw", "db"), (dx, dw, db), einsum, loops):
        assert fast.shape == r.shape, name
        assert relative_error(fast, e) < SAME and relative_error(fast, r) < SAME, name
    assert dx_only[1] is None and dx_only[2] is None
    assert relative_error(dx_only[0], loops[0]) < SAME


@pytest.mark.parametrize("layout", list(LAYOUTS))
@given(case=grouped_conv_cases().filter(lambda case: case["groups"] == case["c"]))
def test_depthwise_fast_tier_in_float32_stays_float32(layout, case):
    # float32 in, float32 out (dx, dw, db too), equal to the float64 loops to float32's precision.
    rng = np.random.default_rng(case["seed"])
    x, w, b = depthwise_arrays(case, rng, np.float32)
    hyper = (case["stride"], case["padding"], case["dilation"])
    out, dout, grads, _ = run_depthwise(case, x, w, b, lambda out: rng.standard_normal(out.shape).astype(np.float32),
                                        LAYOUTS[layout], 2 ** 16)
    b64 = None if b is None else b.astype(np.float64)
    ref_out = grouped_conv2d_forward_reference(x.astype(np.float64), w.astype(np.float64), b64, *hyper, case["c"])
    refs = grouped_conv2d_backward_reference(dout.astype(np.float64), x.astype(np.float64), w.astype(np.float64),
                                             *hyper, case["c"])
    # Float32 error bound: terms per sum x the largest term (a sum may cancel to near 0, so not |ref|).
    big = {name: float(np.abs(a).max()) for name, a in (("x", x), ("w", w), ("dout", dout))}
    taps, positions = int(np.prod(case["kernel"])), dout.shape[0] * dout.shape[2] * dout.shape[3]
    bounds = (taps * big["x"] * big["w"] + (0 if b is None else float(np.abs(b).max())),
              taps * big["dout"] * big["w"], positions * big["dout"] * big["x"], positions * big["dout"])
    for name, fast, ref, bound in zip(("out", "dx", "dw", "db"), (out, *grads), (ref_out, *refs), bounds):
        assert fast.dtype == np.float32, name
        assert np.abs(fast - ref).max() <= 1e-6 * bound, name


def test_depthwise_layout_follows_the_map_size():
    # Channels first on large maps with few channels, channels last on small maps with many (MobileNetV2's).
    assert not depthwise.Plan((112, 112), 3, 1, 1, 1, 32).last
    assert not depthwise.Plan((56, 56), 3, 1, 1, 1, 144).last
    assert depthwise.Plan((14, 14), 3, 1, 1, 1, 384).last
    assert depthwise.Plan((15, 15), 3, 2, 0, 1, 576).last
    plan = depthwise.Plan((8, 9), 3, 2, 1, 1, 4)                 # stride 2: four phases
    assert plan.stride == (2, 2) and sorted({phase for phase, _, _, _ in plan.taps}) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert (plan.ho, plan.wo, plan.hq, plan.wq) == (4, 5, 5, 6)
