"""The Model: names, activations, gradients, guided mode, stop_at, and whole-model gradient checks."""

import numpy as np
import pytest

from minicnn.errors import GradientCheckError, InputError, UnknownNameError, WeightsError
from minicnn.gradcheck import check_function, check_model
from minicnn.layers import (
    AdaptiveAvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
)
from minicnn.model import Model, build
from minicnn.models import zoo


def tiny_vgg(seed=0) -> Model:
    """conv-relu-conv-relu-pool-conv-relu-pool, then dense 24-8-5: a VGG in miniature."""
    root = Sequential([
        ("features", Sequential([
            ("0", Conv2d(3, 4, 3, padding=1)), ("1", ReLU()), ("2", Conv2d(4, 4, 3, padding=1)), ("3", ReLU()),
            ("4", MaxPool2d(2)), ("5", Conv2d(4, 6, 3, padding=1)), ("6", ReLU()), ("7", MaxPool2d(2)),
        ])),
        ("flatten", Flatten()),
        ("classifier", Sequential([("0", Linear(24, 8)), ("1", ReLU()), ("2", Dropout()), ("3", Linear(8, 5))])),
    ])
    return randomise(Model(root, {"name": "tiny_vgg", "input_size": [3, 8, 8]}), seed)


def tiny_resnet(seed=0) -> Model:
    root = Sequential([
        ("conv1", Conv2d(3, 4, 3, padding=1, bias=False)), ("bn1", BatchNorm2d(4)), ("relu", ReLU()),
        ("layer1", Sequential([("0", BasicBlock(4, 4))])),
        ("layer2", Sequential([("0", BasicBlock(4, 8, stride=2))])),
        ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("linear", Linear(8, 3)),
    ])
    return randomise(Model(root, {"name": "tiny_resnet", "input_size": [3, 6, 6]}), seed)


def randomise(model, seed):
    rng = np.random.default_rng(seed)
    for _, layer in model.layers():
        for store in (layer.params, layer.buffers):
            for k, a in store.items():
                store[k] = (rng.uniform(0.5, 1.5, a.shape) if k == "running_var"
                            else rng.standard_normal(a.shape) * 0.5).astype(np.float32)
    return model


def test_whole_vgg_style_model_gradient_check(rng):
    model = tiny_vgg()
    x = rng.standard_normal((2, 3, 8, 8))
    errors = check_model(model, x, params=True, wrt="features.5", max_checks=60)
    assert len(errors) == 1 + 1 + 10  # x, features.5, 5 layers x (weight, bias)
    assert max(errors.values()) < 1e-7


def test_whole_resnet_style_model_gradient_check(rng):
    model = tiny_resnet()
    x = rng.standard_normal((2, 3, 6, 6))
    errors = check_model(model, x, params=True, wrt="layer1", max_checks=40)
    assert "layer2.0.conv1.weight" in errors and "layer2.0.bn2.bias" in errors
    assert max(errors.values()) < 1e-7


def test_model_check_catches_a_wrong_layer(rng):
    model = tiny_vgg()
    conv = model["features.2"]
    original = conv.backward
    conv.backward = lambda dout, cache, **kw: (-original(dout, cache, **kw)[0], {})  # sign flip
    with pytest.raises(GradientCheckError, match="dx"):
        check_model(model, rng.standard_normal((1, 3, 8, 8)), params=False)


def test_activations_and_gradients_by_pytorch_name(rng):
    model = tiny_vgg()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    logits = model.forward(x)
    assert logits.shape == (2, 5) and logits.dtype == np.float32
    assert model.layer_names[:3] == ["features", "features.0", "features.1"]
    assert model.activations["features.6"].shape == (2, 6, 4, 4)
    assert model.activations["features"] is model.activations["features.7"]
    seed = np.eye(5, dtype=np.float32)[[1, 3]]               # dy^c/dlogits for c = 1, 3
    dx = model.backward(seed)
    assert dx.shape == x.shape
    for name in model.layer_names:
        assert model.gradients[name].shape == model.activations[name].shape, name
    np.testing.assert_array_equal(model.gradients["classifier.3"], seed)
    assert model.param_grads == {}                            # not asked for


def test_gradient_at_a_layer_is_dy_dA_by_finite_differences(rng):
    # features.5 is a conv output: the ReLU and the max pooling after it are
    # differentiable there (a ReLU *output* of 0 would sit on a kink: a window
    # of zeros is a max-pooling tie).
    model = tiny_vgg().astype(np.float64)
    x = rng.standard_normal((1, 3, 8, 8))
    model.forward(x)
    A = model.activations["features.5"].copy()
    model.backward(np.eye(5)[[2]], stop_at="features.5")
    dA = model.gradients["features.5"]
    check_function(lambda a: model.forward(x, replace={"features.5": a})[0, 2], A, dA, tol=1e-7)


def test_stop_at_stops_early_and_returns_none(rng):
    model = tiny_vgg()
    model.forward(rng.standard_normal((1, 3, 8, 8)).astype(np.float32))
    assert model.backward(np.ones((1, 5), np.float32), stop_at="features.6") is None
    assert "features.6" in model.gradients and "features.5" not in model.gradients


@pytest.mark.parametrize("build_model, names", [
    (tiny_vgg, ["features", "features.3", "features.7", "flatten", "classifier.1", "classifier.3"]),
    (tiny_resnet, ["relu", "layer1", "layer1.0", "layer1.0.relu", "layer2", "avgpool", "linear"]),
])
def test_forward_from_runs_only_the_layers_after_the_name(rng, build_model, names):
    model = build_model()
    x = rng.standard_normal((2, *model.input_size))
    logits = model.forward(x)
    kept = dict(model.activations)
    order = model.layer_names
    for name in names:
        A = kept[name] * rng.uniform(0.5, 1.5, kept[name].shape)        # an edited layer output
        np.testing.assert_allclose(model.forward_from(name, kept[name]), logits, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(model.forward_from(name, A), model.forward(x, replace={name: A}),
                                   rtol=1e-13, atol=1e-13)
        model.forward_from(name, A)
        ran = set(model.activations) - {name}
        assert all(order.index(n) > order.index(name) or name.startswith(n + ".") for n in ran), (name, ran)


def test_forward_from_refuses_a_layer_inside_a_block_and_a_backward_after_it(rng):
    model = tiny_resnet()
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    model.forward(x)
    A = model.activations["layer2.0.conv1"]
    with pytest.raises(InputError, match=r"cannot resume at 'layer2.0.conv1': the block 'layer2.0' also reads"):
        model.forward_from("layer2.0.conv1", A)
    with pytest.raises(UnknownNameError, match="did you mean 'layer2'"):
        model.forward_from("layer_2", A)
    with pytest.raises(InputError, match="float32 or float64 batch"):
        model.forward_from("layer2", A.astype(np.int32))
    model.forward(x)
    model.forward_from("layer2", model.activations["layer2"])
    with pytest.raises(InputError, match=r"call model.forward\(x\) before model.backward"):
        model.backward(np.ones((1, 3), np.float32))


def test_guided_mode_is_per_call_and_masks_negative_gradients(rng):
    model = tiny_vgg()
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    model.forward(x)
    seed = np.eye(5, dtype=np.float32)[[0]]
    plain = model.backward(seed).copy()
    guided = model.backward(seed, relu="guided").copy()
    again = model.backward(seed)
    np.testing.assert_array_equal(plain, again)               # the layers were not changed
    assert not np.allclose(plain, guided)
    # Guided: the gradient entering each ReLU's input is never negative.
    model.backward(seed, relu="guided")
    assert (model.gradients["features.5"] >= 0).all()


def test_param_grads_when_asked(rng):
    model = tiny_vgg()
    model.forward(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    model.backward(np.ones((2, 5), np.float32), param_grads=True)
    assert set(model.param_grads) == set(model.parameters())


def test_float64_input_computes_in_float64(rng):
    model = tiny_vgg()
    assert model.forward(rng.standard_normal((1, 3, 8, 8))).dtype == np.float64
    assert model.backward(np.ones((1, 5))).dtype == np.float64


def test_batch_equals_one_by_one(rng):
    model = tiny_resnet()
    x = rng.standard_normal((3, 3, 6, 6)).astype(np.float32)
    together = model.forward(x)
    for i in range(3):
        np.testing.assert_allclose(model.forward(x[i:i + 1])[0], together[i], rtol=1e-5, atol=1e-6)


def test_non_contiguous_views_just_work(rng):
    model = tiny_vgg()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    view = x.transpose(0, 3, 1, 2)                             # channels-first view, not contiguous
    np.testing.assert_allclose(model.forward(view), model.forward(np.ascontiguousarray(view)), rtol=1e-6)


@pytest.mark.parametrize("x, message", [
    (np.zeros((3, 8, 8), np.float32), r"add the batch axis with x\[None\]"),
    (np.zeros((1, 1, 3, 8, 8), np.float32), "expected a batch"),
    (np.zeros((0, 3, 8, 8), np.float32), "batch is empty"),
    (np.zeros((1, 8, 8, 3), np.float32), "channels-last"),
    (np.zeros((1, 3, 8, 8), np.uint8), "floating-point"),
    (np.full((1, 3, 8, 8), np.nan, np.float32), "NaN or infinity"),
    (np.full((1, 3, 8, 8), np.inf), "NaN or infinity"),
])
def test_bad_input_gives_one_line_errors(x, message):
    with pytest.raises(InputError, match=message) as info:
        tiny_vgg().forward(x)
    assert "\n" not in str(info.value)


def test_unknown_layer_suggests_the_closest():
    model = tiny_vgg()
    with pytest.raises(UnknownNameError, match=r"did you mean 'features\.6'") as info:
        model["features.66"]
    assert isinstance(info.value, LookupError)
    model.forward(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(UnknownNameError, match="unknown layer 'nope'"):
        model.backward(np.ones((1, 5), np.float32), stop_at="nope")


def test_backward_before_forward_and_wrong_seed_shape():
    model = tiny_vgg()
    with pytest.raises(InputError, match="before"):
        model.backward(np.ones((1, 5)))
    model.forward(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InputError, match=r"logits' shape \(1, 5\)"):
        model.backward(np.ones((5,)))
    with pytest.raises(InputError, match="unknown ReLU backward rule"):
        model.backward(np.ones((1, 5)), relu="gided")


def test_state_dict_round_trip_and_shape_errors():
    a, b = tiny_vgg(seed=1), tiny_vgg(seed=2)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    bad = dict(a.state_dict())
    bad["features.2.weight"] = np.zeros((4, 4, 5, 5), np.float32)
    with pytest.raises(WeightsError, match=r"'features\.2'.*\(4, 4, 5, 5\).*\(4, 4, 3, 3\)"):
        b.load_state_dict(bad)
    with pytest.raises(WeightsError, match="missing array 'classifier.3.bias'"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "classifier.3.bias"})
    with pytest.raises(WeightsError, match="unexpected array 'extra.weight'"):
        b.load_state_dict({**a.state_dict(), "extra.weight": np.zeros(1)})


def test_spec_round_trip_builds_the_same_architecture():
    model = tiny_resnet()
    twin = Model(build(model.spec()), model.meta)
    twin.load_state_dict(model.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), twin.forward(x))
    with pytest.raises(WeightsError, match="unknown layer type 'Conv3d'"):
        build({"type": "Conv3d"})


def test_summary_lists_name_type_shape_params():
    text = zoo.vgg_cifar(fold_bn=True).summary()
    assert "features.17" in text and "Conv2d" in text and "128x8x8" in text and "147,584" in text
    assert "814,122 parameters" in text


def test_resnet20_accepts_wide_inputs_and_names_its_stages():
    model = zoo.resnet20()
    model.forward(np.zeros((1, 3, 32, 64), np.float32))
    assert model.activations["layer3"].shape == (1, 64, 8, 16)
    assert model.activations["layer3"] is model.activations["layer3.2"]
    assert "layer3.2.conv2" in model.layer_names and "layer2.0.shortcut" in model.layer_names
