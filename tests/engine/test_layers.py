"""Every layer: backward proven by central differences, fast path equal to the reference loops."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import away_from_zero, conv_cases, conv_cases_for_dx_path, distinct, grouped_conv_cases, pool_cases

from minicnn.gradcheck import check_layer, numerical_gradient, relative_error
from minicnn.layers import (
    AdaptiveAvgPool2d,
    Add,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    OptionAShortcut,
    ReLU,
    conv,
    depthwise,
    softmax_cross_entropy,
)
from minicnn.layers.conv import conv2d_backward, conv2d_backward_reference, conv2d_forward, conv2d_forward_reference
from minicnn.layers.pool import (
    adaptive_avgpool2d_backward,
    adaptive_avgpool2d_backward_reference,
    adaptive_avgpool2d_forward,
    adaptive_avgpool2d_forward_reference,
    avgpool2d_backward,
    avgpool2d_backward_reference,
    avgpool2d_forward,
    avgpool2d_forward_reference,
    maxpool2d_backward,
    maxpool2d_backward_reference,
    maxpool2d_forward,
    maxpool2d_forward_reference,
)

TOL = 1e-7       # finite differences, float64
SAME = 1e-10     # fast path against reference, float64


def conv_layer(case, rng):
    layer = Conv2d(case["c"], case["f"], case["kernel"], case["stride"], case["padding"], case["dilation"],
                   bias=case["bias"])
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    if case["bias"]:
        layer.params["bias"] = rng.standard_normal(case["f"])
    return layer


# ---------------------------------------------------------------- convolution

@given(conv_cases())
def test_conv_backward_matches_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    layer = conv_layer(case, rng)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    errors = check_layer(layer, x, params=True, tol=TOL, seed=case["seed"])
    assert set(errors) == {"x", "weight"} | ({"bias"} if case["bias"] else set())


@pytest.mark.parametrize("path", ["transposed", "col2im"])
@given(data=st.data())
def test_conv_backward_matches_finite_differences_on_each_dx_path(path, data):
    # The layer picks the dx path by cost (conv.use_transposed); force each in turn, so that
    # both are proven by finite differences on every kernel size, padding and dilation.
    case = data.draw(conv_cases_for_dx_path(path), label="case")
    rng = np.random.default_rng(case["seed"])
    layer = conv_layer(case, rng)
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    chooser, used = conv.use_transposed, []
    conv.use_transposed = lambda *args: used.append(path) or path == "transposed"
    try:
        check_layer(layer, x, params=False, tol=TOL, seed=case["seed"])
    finally:
        conv.use_transposed = chooser
    assert used == [path]


@given(conv_cases())
def test_conv_fast_path_equals_reference(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    w = rng.standard_normal((case["f"], case["c"], *case["kernel"]))
    b = rng.standard_normal(case["f"]) if case["bias"] else None
    hyper = (case["stride"], case["padding"], case["dilation"])
    out = conv2d_forward(x, w, b, *hyper)
    assert relative_error(out, conv2d_forward_reference(x, w, b, *hyper)) < SAME
    dout = rng.standard_normal(out.shape)
    fast, ref = conv2d_backward(dout, x, w, *hyper), conv2d_backward_reference(dout, x, w, *hyper)
    for name, a, r in zip(("dx", "dw", "db"), fast, ref):
        assert a.shape == r.shape, name
        assert relative_error(a, r) < SAME, name


@pytest.mark.parametrize("last_below", [0.0, float("inf")], ids=["channels first", "channels last"])
@given(grouped_conv_cases().filter(lambda case: case["groups"] == case["c"]))
def test_depthwise_conv_backward_matches_finite_differences(last_below, case):
    # The depthwise fast tier (groups = C) in each of its layouts, in blocks of one channel, against
    # central differences: dx, dw and db, any stride, padding, dilation and depth multiplier.
    rng = np.random.default_rng(case["seed"])
    layer = Conv2d(case["c"], case["f"], case["kernel"], case["stride"], case["padding"], case["dilation"],
                   bias=case["bias"], groups=case["c"])
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    if case["bias"]:
        layer.params["bias"] = rng.standard_normal(case["f"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    saved = depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS
    depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS = last_below, 1
    try:
        errors = check_layer(layer, x, params=True, tol=TOL, seed=case["seed"])
    finally:
        depthwise.LAST_BELOW, depthwise.BLOCK_FLOATS = saved
    assert set(errors) == {"x", "weight"} | ({"bias"} if case["bias"] else set())


def test_conv_known_answer():
    # 1x1x3x3 input, one 2x2 kernel, stride 1, no padding: each output is a dot product by hand.
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)            # [[1,2,3],[4,5,6],[7,8,9]]
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])              # x[i,j] - x[i+1,j+1]
    out = conv2d_forward(x, w, np.array([0.5]))
    np.testing.assert_allclose(out, [[[[1 - 5 + 0.5, 2 - 6 + 0.5], [4 - 8 + 0.5, 5 - 9 + 0.5]]]])
    # dx: each output's gradient lands on the two inputs its window weighted by +1 and -1.
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dx, dw, db = conv2d_backward(dout, x, w)
    np.testing.assert_allclose(dx[0, 0], [[1, 2, 0], [3, 4 - 1, -2], [0, -3, -4]])
    np.testing.assert_allclose(dw[0, 0], [[1 + 4 + 12 + 20, 2 + 6 + 15 + 24], [4 + 10 + 21 + 32, 5 + 12 + 24 + 36]])
    np.testing.assert_allclose(db, [10.0])


def test_conv_stride_padding_output_size():
    # Ho = floor((H + 2p - d(k-1) - 1)/s) + 1 = floor((7 + 2 - 2 - 1)/2) + 1 = 4
    layer = Conv2d(2, 3, 3, stride=2, padding=1)
    out, _ = layer.forward(np.zeros((1, 2, 7, 7), np.float32))
    assert out.shape == (1, 3, 4, 4)
    layer = Conv2d(2, 3, 3, dilation=2)                      # effective kernel 5
    assert layer.forward(np.zeros((1, 2, 7, 7)))[0].shape == (1, 3, 3, 3)


def test_conv_computes_in_input_dtype():
    layer = Conv2d(2, 3, 3, padding=1)
    layer.params["weight"] = np.random.default_rng(0).standard_normal((3, 2, 3, 3)).astype(np.float32)
    x64 = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
    assert layer.forward(x64)[0].dtype == np.float64
    assert layer.forward(x64.astype(np.float32))[0].dtype == np.float32
    assert layer.params["weight"].dtype == np.float32       # the stored weights are untouched


# ---------------------------------------------------------------- pooling

@given(pool_cases())
def test_maxpool_backward_matches_finite_differences(case):
    rng = np.random.default_rng(case["seed"])
    x = distinct(rng, (case["n"], case["c"], case["h"], case["w"]))
    check_layer(MaxPool2d(case["kernel"], case["stride"], case["padding"]), x, tol=TOL)


@given(pool_cases(), st.booleans())
def test_maxpool_fast_path_equals_reference(case, with_ties):
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["c"], case["h"], case["w"])
    # With ties (small integers), routing to the *first* maximum must still agree.
    x = rng.integers(0, 3, shape).astype(np.float64) if with_ties else rng.standard_normal(shape)
    hyper = (case["kernel"], case["stride"], case["padding"])
    out = maxpool2d_forward(x, *hyper)
    np.testing.assert_array_equal(out, maxpool2d_forward_reference(x, *hyper))
    dout = rng.standard_normal(out.shape)
    assert relative_error(maxpool2d_backward(dout, x, out, *hyper),
                          maxpool2d_backward_reference(dout, x, *hyper)) < SAME


def test_maxpool_ties_go_to_the_first_maximum_like_pytorch():
    # A window full of zeros (common after a ReLU): PyTorch gives the whole gradient
    # to the first element in row-major order, and so must we.
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = 5.0                                       # second window has a unique maximum
    out, cache = MaxPool2d(2).forward(x)
    dx, _ = MaxPool2d(2).backward(np.array([[[[1.0, 2.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 0, 0, 0], [0, 0, 0, 2]])
    # Ties between two equal maxima: the earlier one (row-major) wins.
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    out, cache = MaxPool2d(2).forward(x)
    dx, _ = MaxPool2d(2).backward(np.array([[[[7.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0, 7], [0, 0]])


def test_maxpool_overlapping_windows_accumulate():
    # kernel 3, stride 1 on a 1x4 row... as 2-D: the centre maximum is in two windows.
    x = np.array([[[[0.0, 1.0, 9.0, 1.0, 0.0]]]])
    out, cache = MaxPool2d((1, 3), stride=1).forward(x)
    np.testing.assert_array_equal(out, [[[[9.0, 9.0, 9.0]]]])
    dx, _ = MaxPool2d((1, 3), stride=1).backward(np.array([[[[1.0, 2.0, 4.0]]]]), cache)
    np.testing.assert_array_equal(dx, [[[[0, 0, 7, 0, 0]]]])


@given(pool_cases())
def test_avgpool_backward_and_reference(case):
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["c"], case["h"], case["w"])
    x = rng.standard_normal(shape)
    hyper = (case["kernel"], case["stride"], case["padding"])
    check_layer(AvgPool2d(*hyper), x, tol=TOL)
    out = avgpool2d_forward(x, *hyper)
    assert relative_error(out, avgpool2d_forward_reference(x, *hyper)) < SAME
    dout = rng.standard_normal(out.shape)
    assert relative_error(avgpool2d_backward(dout, shape, *hyper), avgpool2d_backward_reference(dout, x, *hyper)) < SAME


def test_avgpool_counts_padding_like_pytorch():
    # count_include_pad=True: the corner window of a padded 2x2 input holds 1 real value of 4.
    out, _ = AvgPool2d(2, stride=2, padding=1).forward(np.ones((1, 1, 2, 2)))
    np.testing.assert_allclose(out, np.full((1, 1, 2, 2), 0.25))


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_adaptive_avgpool(h, w, ho, wo, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, h, w))
    check_layer(AdaptiveAvgPool2d((ho, wo)), x, tol=TOL)
    out = adaptive_avgpool2d_forward(x, (ho, wo))
    assert relative_error(out, adaptive_avgpool2d_forward_reference(x, (ho, wo))) < SAME
    dout = rng.standard_normal(out.shape)
    assert relative_error(adaptive_avgpool2d_backward(dout, x.shape, (ho, wo)),
                          adaptive_avgpool2d_backward_reference(dout, x.shape, (ho, wo))) < SAME


def test_adaptive_avgpool_bins_like_pytorch():
    # PyTorch: 5 -> 3 cells cover [0,2), [1,4), [3,5) (overlapping bins).
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    out, _ = AdaptiveAvgPool2d((1, 3)).forward(x)
    np.testing.assert_allclose(out[0, 0, 0], [0.5, 2.0, 3.5])
    # Global average pooling is the mean.
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(AdaptiveAvgPool2d(1).forward(x)[0][..., 0, 0], x.mean(axis=(2, 3)))


# ---------------------------------------------------------------- ReLU and its rules

@given(st.integers(0, 2**32 - 1))
def test_relu_backward(seed):
    rng = np.random.default_rng(seed)
    check_layer(ReLU(), away_from_zero(rng, (2, 3, 4, 5)), tol=TOL)


def test_relu_rules_known_answer():
    x = np.array([[-1.0, 2.0, 3.0, -4.0]])
    dout = np.array([[5.0, -6.0, 7.0, 8.0]])
    out, cache = ReLU().forward(x)
    assert ReLU().backward(dout, cache, relu="plain")[0].tolist() == [[0, -6, 7, 0]]
    assert ReLU().backward(dout, cache, relu="deconvnet")[0].tolist() == [[5, 0, 7, 8]]
    assert ReLU().backward(dout, cache, relu="guided")[0].tolist() == [[0, 0, 7, 0]]


# ---------------------------------------------------------------- dense, flatten, dropout, BN, residual

@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), st.booleans(), st.integers(0, 2**32 - 1))
def test_linear_backward(n, d, m, bias, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(d, m, bias=bias)
    layer.params["weight"] = rng.standard_normal((m, d))
    if bias:
        layer.params["bias"] = rng.standard_normal(m)
    check_layer(layer, rng.standard_normal((n, d)), tol=TOL)


def test_linear_known_answer():
    layer = Linear(2, 2)
    layer.params["weight"] = np.array([[1.0, 2.0], [3.0, 4.0]])
    layer.params["bias"] = np.array([0.5, -0.5])
    out, cache = layer.forward(np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(out, [[3.5, 6.5]])
    dx, grads = layer.backward(np.array([[1.0, -1.0]]), cache, param_grads=True)
    np.testing.assert_allclose(dx, [[-2.0, -2.0]])                        # dout @ W
    np.testing.assert_allclose(grads["weight"], [[1.0, 1.0], [-1.0, -1.0]])  # dout^T x
    np.testing.assert_allclose(grads["bias"], [1.0, -1.0])


@given(st.integers(0, 2**32 - 1))
def test_flatten_dropout_identity(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 2, 2))
    for layer in (Flatten(), Dropout(0.5), Identity()):
        check_layer(layer, x, tol=TOL)
    assert Flatten().forward(x)[0].shape == (2, 12)
    np.testing.assert_array_equal(Flatten().forward(x)[0][1], x[1].reshape(-1))  # C order, as torch.flatten


@given(st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_batchnorm_backward(c, seed):
    rng = np.random.default_rng(seed)
    layer = BatchNorm2d(c)
    layer.params["weight"], layer.params["bias"] = rng.standard_normal(c), rng.standard_normal(c)
    layer.buffers["running_mean"], layer.buffers["running_var"] = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    errors = check_layer(layer, rng.standard_normal((2, c, 3, 3)), tol=TOL)
    assert set(errors) == {"x", "weight", "bias"}            # running statistics are constants


def test_batchnorm_known_answer():
    layer = BatchNorm2d(1, eps=0.0)
    layer.params["weight"][:] = 2.0
    layer.params["bias"][:] = 1.0
    layer.buffers["running_mean"][:] = 3.0
    layer.buffers["running_var"][:] = 4.0
    out, _ = layer.forward(np.array([[[[5.0]]]]))
    assert out.item() == pytest.approx((5 - 3) / 2 * 2 + 1)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_option_a_shortcut(c, p, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w))
    check_layer(OptionAShortcut(p), x, tol=TOL)
    out = OptionAShortcut(p).forward(x)[0]
    assert out.shape == (2, c + 2 * p, (h + 1) // 2, (w + 1) // 2)
    np.testing.assert_array_equal(out[:, p:p + c], x[:, :, ::2, ::2])
    assert not out[:, :p].any() and not out[:, p + c:].any()


def test_add_fans_the_gradient_out():
    dout = np.random.default_rng(0).standard_normal((1, 2, 3, 3))
    (da, db), _ = Add().backward(dout, None)
    assert da is dout and db is dout


# ---------------------------------------------------------------- loss

@given(st.integers(1, 5), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy(n, k, seed):
    rng = np.random.default_rng(seed)
    logits, labels = rng.standard_normal((n, k)) * 3, rng.integers(0, k, n)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    numeric = numerical_gradient(lambda z: softmax_cross_entropy(z, labels)[0], logits.copy())
    # A confident softmax has gradients near 1e-5, where central differences (rounding ~ eps / h,
    # about 1e-10) cannot give 1e-7 relative: the error is taken relative to at least 1e-3.
    assert relative_error(dlogits, numeric, floor=1e-3) < TOL
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(n), labels]).mean())


def test_softmax_cross_entropy_known_answer():
    loss, d = softmax_cross_entropy(np.zeros((1, 4)), np.array([2]))
    assert loss == pytest.approx(np.log(4))
    np.testing.assert_allclose(d, [[0.25, 0.25, -0.75, 0.25]])
