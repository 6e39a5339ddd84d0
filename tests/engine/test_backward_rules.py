"""A backward pass is a chain of local rules: ``Model.backward(seed, rules={name: rule})``."""

import numpy as np
import pytest
from test_explain_helpers import small_cnn

from minicnn import explain
from minicnn.errors import InputError, UnknownNameError
from minicnn.layers import AdaptiveAvgPool2d, Conv2d, Flatten, Layer, Linear, ReLU, Sequential
from minicnn.layers.activation import relu_backward_guided, relu_forward
from minicnn.model import Model


def seeded(model, x, c=1):
    logits = model.forward(x)
    return explain.onehot(np.full(len(x), c), logits.shape[1], logits.dtype)


def test_no_rules_is_the_gradient_and_relu_guided_is_one_rule_on_every_relu():
    model = small_cnn(2)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    gradient = model.backward(seeded(model, x))
    assert np.array_equal(model.backward(seeded(model, x), rules={}), gradient)

    def guided(layer, x_in, dout):                 # dx = dout * (x > 0) * (dout > 0), from the layer's input
        return relu_backward_guided(dout, relu_forward(x_in))

    relus = {name: guided for name, layer in model.layers() if isinstance(layer, ReLU)}
    by_rules = model.backward(seeded(model, x), rules=relus)
    assert np.array_equal(by_rules, model.backward(seeded(model, x), relu="guided"))
    assert not np.array_equal(by_rules, gradient)


def test_a_rule_changes_only_its_layer_and_the_pass_records_what_flows():
    model = small_cnn(3)
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8))
    model.backward(seeded(model, x))
    plain = dict(model.gradients)
    calls = []

    def doubled(layer, x_in, dout):
        calls.append((type(layer).__name__, x_in.shape, dout.shape))
        dx, _ = layer.backward(dout, layer.forward(x_in)[1])
        return 2 * dx

    model.backward(seeded(model, x), rules={"features.3": doubled})
    assert calls == [("Conv2d", (1, 4, 4, 4), (1, 5, 4, 4))]
    assert np.array_equal(model.gradients["features.3"], plain["features.3"])        # above the rule: unchanged
    np.testing.assert_allclose(model.gradients["features.2"], 2 * plain["features.2"])  # below it: doubled


def test_a_layer_no_rule_names_keeps_its_own_backward_even_a_new_kind():
    class Square(Layer):
        """out = x^2; dx = 2 x dout (a layer no LRP composite knows)."""

        def forward(self, x):
            return x * x, x

        def backward(self, dout, cache, param_grads=False, relu="plain"):
            return 2 * cache * dout, {}

    rng = np.random.default_rng(2)
    conv, fc = Conv2d(3, 4, 3), Linear(4, 2)
    conv.params = {"weight": rng.standard_normal((4, 3, 3, 3)), "bias": rng.standard_normal(4)}
    fc.params = {"weight": rng.standard_normal((2, 4)), "bias": rng.standard_normal(2)}
    model = Model(Sequential([("conv", conv), ("relu", ReLU()), ("square", Square()), ("gap", AdaptiveAvgPool2d(1)),
                              ("flatten", Flatten()), ("fc", fc)]), {"name": "square"})
    r = explain.lrp(model, rng.standard_normal((1, 3, 5, 5)), 0, "epsilon")
    assert "square" not in r.rules and r.rules["relu"] == "Pass()" and np.isfinite(r.map).all()
    np.testing.assert_allclose(model.gradients["relu"], 2 * model.inputs["square"] * model.gradients["square"])


@pytest.mark.parametrize("rules, kwargs, message", [
    ({"features.9": lambda l, x, d: d}, {}, "did you mean"),
    ({"features": lambda l, x, d: d}, {}, "rules map leaf layer names to functions"),
    ({"features.0": "epsilon"}, {}, "rules map leaf layer names to functions"),
    ({"features.0": lambda l, x, d: d}, {"param_grads": True}, "do not combine it with rules"),
])
def test_bad_rules_are_one_line_errors(rules, kwargs, message):
    model = small_cnn(0)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8))
    with pytest.raises((InputError, UnknownNameError), match=message):
        model.backward(seeded(model, x), rules=rules, **kwargs)
