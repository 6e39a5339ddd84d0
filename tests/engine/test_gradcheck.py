"""Test the tester: the checker must pass correct backwards and fail wrong ones, loudly."""

import numpy as np
import pytest

from minicnn.errors import GradientCheckError
from minicnn.gradcheck import check_function, check_layer, check_model, numerical_gradient, relative_error
from minicnn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minicnn.layers.conv import conv2d_forward
from minicnn.model import Model
from minicnn.windows import unpad


def random_conv(rng, c=2, f=3, k=3, **kw):
    layer = Conv2d(c, f, k, **kw)
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    layer.params["bias"] = rng.standard_normal(f)
    return layer


class SignFlippedLinear(Linear):
    def backward(self, dout, cache, param_grads=False, relu="plain"):
        dx, grads = super().backward(dout, cache, param_grads, relu)
        return -dx, grads


class UnflippedKernelConv(Conv2d):
    """dX computed as a *convolution* of dY with W instead of a full correlation with flipped W."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        w = self.params["weight"]
        kh, kw = w.shape[2:]
        # The wrong formula: correlate the padded dout with the transposed but unflipped kernel.
        wt = w.transpose(1, 0, 2, 3)
        dx = conv2d_forward(dout, wt, None, 1, (kh - 1, kw - 1))
        return unpad(dx, self.padding), {}


class UpstreamFlippedConv(Conv2d):
    """dx computed from dout mirrored in (i, j): right for a constant upstream gradient, wrong for any other."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return super().backward(dout[:, :, ::-1, ::-1], cache, param_grads, relu)


class ReluWithoutMask(ReLU):
    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout, {}


class MaxPoolToEveryTap(MaxPool2d):
    """Routes each window's gradient to all four taps of its 2x2 window, as if every one were the maximum."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        x, out = cache
        return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3), {}


def test_correct_backward_passes_with_tiny_error(rng):
    errors = check_layer(random_conv(rng, padding=1), rng.standard_normal((2, 2, 5, 5)))
    assert max(errors.values()) < 1e-8


@pytest.mark.parametrize("layer_factory, x_shape", [
    (lambda rng: _with_weights(SignFlippedLinear(4, 3), rng), (2, 4)),
    (lambda rng: random_conv_cls(UnflippedKernelConv, rng), (1, 2, 5, 5)),
    (lambda rng: ReluWithoutMask(), (2, 3, 4)),
    (lambda rng: random_conv_cls(UpstreamFlippedConv, rng), (1, 2, 5, 5)),
    (lambda rng: MaxPoolToEveryTap(2), (1, 1, 4, 4)),
])
def test_checker_fails_on_a_wrong_backward(layer_factory, x_shape, rng):
    layer = layer_factory(rng)
    with pytest.raises(GradientCheckError) as info:
        check_layer(layer, rng.standard_normal(x_shape), params=False)
    message = str(info.value)
    assert type(layer).__name__ in message and "worst at index" in message
    assert "analytic" in message and "finite differences" in message


def test_only_a_random_upstream_gradient_exposes_a_backward_that_mirrors_dout(rng):
    # With dout = 1 everywhere, mirroring dout changes nothing: a checker that used a constant
    # upstream gradient would pass this layer. The checker's random dout must catch it.
    layer = random_conv_cls(UpstreamFlippedConv, rng)
    x = rng.standard_normal((1, 2, 5, 5))
    out, cache = layer.forward(x)
    ones = np.ones(out.shape)
    assert check_function(lambda v: layer.forward(v)[0], x, layer.backward(ones, cache)[0], dout=ones) < 1e-8
    with pytest.raises(GradientCheckError, match="UpstreamFlippedConv dx"):
        check_layer(layer, x, params=False)


def test_check_model_also_uses_a_random_upstream_gradient(rng):
    # The same wrong layer inside a model: a constant gradient on the logits would reach it constant.
    def conv_then_flatten(cls):
        conv = random_conv_cls(cls, np.random.default_rng(7))
        return Model(Sequential([("conv", conv), ("flatten", Flatten())]),
                     {"name": cls.__name__, "input_size": [2, 4, 4]})

    x = rng.standard_normal((1, 2, 4, 4))
    assert check_model(conv_then_flatten(Conv2d), x, params=False)["x"] < 1e-8
    with pytest.raises(GradientCheckError, match="UpstreamFlippedConv dx"):
        check_model(conv_then_flatten(UpstreamFlippedConv), x, params=False)


def _with_weights(layer, rng):
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    layer.params["bias"] = rng.standard_normal(layer.params["bias"].shape)
    return layer


def random_conv_cls(cls, rng):
    layer = cls(2, 3, 3, padding=1, bias=False)
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    return layer


def test_checker_fails_on_a_wrong_parameter_gradient(rng):
    class HalfWeightGradient(Linear):
        def backward(self, dout, cache, param_grads=False, relu="plain"):
            dx, grads = super().backward(dout, cache, param_grads, relu)
            grads["weight"] = grads["weight"] * 0.5
            return dx, grads

    with pytest.raises(GradientCheckError, match="HalfWeightGradient dweight"):
        check_layer(_with_weights(HalfWeightGradient(3, 2), rng), rng.standard_normal((2, 3)))


def test_checker_fails_on_a_backward_wrong_by_one_part_in_ten_thousand(rng):
    # The tolerance is the proof: an error far below what a plot would show (1e-4) must still fail.
    class SlightlyScaledLinear(Linear):
        def backward(self, dout, cache, param_grads=False, relu="plain"):
            dx, grads = super().backward(dout, cache, param_grads, relu)
            return dx * (1 + 1e-4), grads

    layer = _with_weights(SlightlyScaledLinear(4, 3), rng)
    with pytest.raises(GradientCheckError, match="SlightlyScaledLinear dx: relative error"):
        check_layer(layer, rng.standard_normal((2, 4)), params=False)


def test_check_model_fails_on_a_wrong_parameter_gradient(rng):
    class HalfWeightGradient(Linear):
        def backward(self, dout, cache, param_grads=False, relu="plain"):
            dx, grads = super().backward(dout, cache, param_grads, relu)
            if param_grads:
                grads["weight"] = grads["weight"] * 0.5
            return dx, grads

    model = Model(Sequential([("flatten", Flatten()), ("fc", _with_weights(HalfWeightGradient(8, 3), rng))]),
                  {"name": "half", "input_size": [2, 2, 2]})
    x = rng.standard_normal((2, 2, 2, 2))
    assert check_model(model, x, params=False)["x"] < 1e-8            # dx is right
    with pytest.raises(GradientCheckError, match="fc.weight"):
        check_model(model, x, params=True)


def test_relative_error_has_a_floor():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)  # floor 1e-8
    assert relative_error(np.array([1.0]), np.array([-1.0])) == 1.0


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 3.0])
    g = numerical_gradient(lambda v: np.sum(v ** 3), x.copy())
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-8)
    assert check_function(lambda v: v ** 2, x, 2 * x * np.array([1.0, 2.0, 3.0]), dout=np.array([1.0, 2.0, 3.0])) < 1e-9


def test_finite_differences_refuse_float32():
    with pytest.raises(GradientCheckError, match="float64"):
        numerical_gradient(lambda v: v.sum(), np.ones(3, np.float32))


def test_check_function_on_chosen_coordinates():
    # |x| has a kink at 0: check only the coordinates away from it.
    x = np.array([-2.0, 0.0, 3.0])
    grad = np.sign(x)
    with pytest.raises(GradientCheckError):
        check_function(lambda v: np.abs(v).sum(), x, np.array([-1.0, 1.0, 1.0]))  # no slope 1 at the kink
    assert check_function(lambda v: np.abs(v).sum(), x, grad, indices=np.flatnonzero(x != 0)) < 1e-9


def test_the_package_level_gradcheck_also_carries_the_module_helpers():
    import minicnn
    assert minicnn.gradcheck.check_function is check_function
    assert minicnn.gradcheck.check_layer is check_layer


# ---------------------------------------------------------------- MobileNetV2's layers: wrong backwards fail too

from minicnn.layers import ReLU6, ZeroPad2d  # noqa: E402


class Relu6WithReluMask(ReLU6):
    """Forgets the cap: passes the gradient for x > 6 too (ReLU's mask)."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout * (cache > 0), {}


class DepthwiseWithUnflippedKernel(Conv2d):
    """dx of a depthwise convolution as a correlation with the kernel unflipped."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        from minicnn.layers.depthwise import depthwise_conv2d_forward
        kh, kw = self.kernel_size
        dx = depthwise_conv2d_forward(dout, self.params["weight"], None, 1, (kh - 1, kw - 1))
        return unpad(dx, self.padding), {}


class PadBackwardFromTheWrongCorner(ZeroPad2d):
    """Crops dout from the top-left corner instead of skipping the (top, left) border."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        left, right, top, bottom = self.padding
        return dout[:, :, :dout.shape[2] - top - bottom, :dout.shape[3] - left - right], {}


@pytest.mark.parametrize("make, x_of", [
    (lambda rng: Relu6WithReluMask(), lambda rng: rng.uniform(0.5, 9.0, (2, 3, 4))),
    (lambda rng: _depthwise(rng), lambda rng: rng.standard_normal((1, 3, 5, 5))),
    (lambda rng: PadBackwardFromTheWrongCorner((2, 1, 1, 0)), lambda rng: rng.standard_normal((1, 2, 4, 4))),
])
def test_checker_fails_on_a_wrong_backward_of_the_mobilenet_layers(make, x_of, rng):
    layer = make(rng)
    with pytest.raises(GradientCheckError) as info:
        check_layer(layer, x_of(rng), params=False)
    assert type(layer).__name__ in str(info.value) and "worst at index" in str(info.value)


def _depthwise(rng):
    layer = DepthwiseWithUnflippedKernel(3, 3, 3, padding=1, bias=False, groups=3)
    layer.params["weight"] = rng.standard_normal(layer.params["weight"].shape)
    return layer
