"""Bad arrays given to the API (the command line never hands arrays over: its input is an image file):
batch shapes, channels, dtypes, NaN, the API used out of order, ``replace`` and the backward seed, the images
given to ``preprocess``; and views that are not contiguous, which simply work.
"""

from __future__ import annotations

import numpy as np
import pytest
from refusals import resnet, vgg  # noqa: F401  (fixtures)

import minicnn
from minicnn import explain
from minicnn.errors import InputError
from minicnn.inputs.preprocess import preprocess

# ================================================================ arrays given to the API
# (The command line never hands arrays over: its input is an image file, above.)

def _x(shape=(2, 3, 32, 32), dtype=np.float32):
    return np.random.default_rng(3).standard_normal(shape).astype(dtype)


def _with(value):
    x = _x()
    x[1, 2, 5, 7] = value
    return x


ARRAY_REFUSALS = [
    ("one image, no batch axis", _x((3, 32, 32)), "add the batch axis with x[None]"),
    ("rank 2", _x((32, 32)), "expected a batch (N, C, H, W), got an array of shape (32, 32)"),
    ("rank 5", _x((1, 2, 3, 32, 32)), "expected a batch (N, C, H, W)"),
    ("one channel", _x((2, 1, 32, 32)), "expected 3 channels (N, 3, H, W), got shape (2, 1, 32, 32)"),
    ("channels last", _x((2, 32, 32, 3)), "is the image channels-last (N, H, W, C)?"),
    ("NaN", _with(np.nan), "input contains NaN or infinity (first at index (1, 2, 5, 7))"),
    ("infinity", _with(-np.inf), "input contains NaN or infinity (first at index (1, 2, 5, 7))"),
    ("int64", _x(dtype=np.int64), "expected floating-point input, got dtype int64; preprocess images"),
    ("uint8", _x(dtype=np.uint8), "expected floating-point input, got dtype uint8"),
    ("bool", _x() > 0, "expected floating-point input, got dtype bool"),
    ("empty batch", _x((0, 3, 32, 32)), "the batch is empty (shape (0, 3, 32, 32))"),
]

CALLERS = {
    "forward": lambda m, x: m.forward(x),
    "gradcam": lambda m, x: explain.gradcam(m, x),
    "guided_backprop": lambda m, x: explain.guided_backprop(m, x),
    "saliency": lambda m, x: explain.saliency(m, x),
}


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("what, x, words", ARRAY_REFUSALS, ids=[a[0] for a in ARRAY_REFUSALS])
def test_arrays_refused(what, x, words, caller, resnet):
    with pytest.raises(InputError) as e:
        CALLERS[caller](resnet, x)
    assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
    assert words in str(e.value)


@pytest.mark.parametrize("caller", ["forward", "gradcam"])
def test_a_dense_head_refuses_another_image_size(caller, vgg):
    with pytest.raises(InputError) as e:
        CALLERS[caller](vgg, _x((1, 3, 64, 64)))
    assert "a Linear layer with in_features=2048 got an input of shape (1, 8192)" in str(e.value)
    assert "model.input_size" in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- the API used out of order or with odd values

def test_backward_after_a_forward_that_raised_asks_for_a_forward(vgg):
    fresh = minicnn.load("vgg_cifar10")
    with pytest.raises(InputError) as never:
        fresh.backward(np.eye(10)[:1])
    vgg.forward(_x((1, 3, 32, 32)))
    with pytest.raises(InputError):
        vgg.forward(_x((1, 3, 64, 64)))                # the dense head refuses 64x64, half way through the pass
    with pytest.raises(InputError) as after:
        vgg.backward(np.eye(10)[:1])
    assert str(after.value) == str(never.value) == "call model.forward(x) before model.backward(dlogits)"


@pytest.mark.parametrize("value, words", [
    ("x", "replace['layer3'] must be a floating-point array (the output that layer 'layer3' should have); got a str"),
    (None, "got a NoneType"),
    (np.zeros((1, 64, 8, 8), np.int64), "got a dtype int64 array"),
    (np.full((1, 64, 8, 8), np.nan, np.float32), "replace['layer3'] contains NaN or infinity"),
])
def test_forward_replace_must_be_a_float_array(value, words, resnet):
    with pytest.raises(InputError) as e:
        resnet.forward(_x((1, 3, 32, 32)), replace={"layer3": value})
    assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="replace must be a dict"):
        resnet.forward(_x((1, 3, 32, 32)), replace=[("layer3", value)])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_backward_refuses_a_seed_that_is_not_finite(value, resnet):
    resnet.forward(_x((2, 3, 32, 32)))
    seed = np.zeros((2, 10))
    seed[1, 4] = value
    with pytest.raises(InputError) as e:
        resnet.backward(seed)
    assert str(e.value) == ("dlogits contains NaN or infinity (first at index (1, 4)); the seed must be finite, "
                            "e.g. the one-hot e_c")
    with pytest.raises(InputError, match="dlogits must be real numbers"):
        resnet.backward(np.full((2, 10), "1"))
    assert resnet.backward(np.eye(10)[[3, 5]]).shape == (2, 3, 32, 32)  # the pass is still there


IMAGE_ARRAY_REFUSALS = [
    ("float image", np.zeros((4, 4, 3), np.float32), "image 0 must be uint8 (0..255); got float32"),
    ("gray array", np.zeros((4, 4), np.uint8), "image 0 must be shaped (H, W, 3); got (4, 4)"),
    ("empty list", [], "preprocess got an empty list of images"),
    ("a path", "cat.png", "expected an (H, W, 3) uint8 array or a list of them; got str"),
]


@pytest.mark.parametrize("what, images, words", IMAGE_ARRAY_REFUSALS, ids=[a[0] for a in IMAGE_ARRAY_REFUSALS])
def test_image_arrays_refused_by_preprocess(what, images, words, resnet):
    with pytest.raises(InputError) as e:
        preprocess(images, resnet.meta["preprocessing"])
    assert words in str(e.value) and "\n" not in str(e.value)


VIEWS = {
    "reversed width": lambda x: x[..., ::-1],
    "every other column": lambda x: x[..., ::2],
    "Fortran order": np.asfortranarray,
    "H and W swapped": lambda x: x.transpose(0, 1, 3, 2),
    "channels sliced from 5": lambda x: np.concatenate([x, x[:, :2]], axis=1)[:, :3],
    "batch from the back": lambda x: x[::-1],
}


@pytest.mark.parametrize("view", list(VIEWS))
def test_non_contiguous_views_simply_work(view, resnet):
    x = VIEWS[view](_x((2, 3, 16, 24)))
    assert not x.flags["C_CONTIGUOUS"]
    copy = np.ascontiguousarray(x)
    assert np.allclose(resnet.forward(x), resnet.forward(copy), atol=1e-5)
    a, b = explain.gradcam(resnet, x), explain.gradcam(resnet, copy)
    assert np.allclose(a.map, b.map, atol=1e-5) and a.layer == b.layer == "layer3"
