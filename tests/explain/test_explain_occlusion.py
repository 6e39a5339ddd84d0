"""Occlusion maps: a linear model whose drops are known, fills, batching, the progress bar, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain_helpers import small_cnn

from minicnn import explain
from minicnn.errors import InputError
from minicnn.explain.occlusion import offsets
from minicnn.layers import Flatten, Linear, Sequential
from minicnn.model import Model


def linear_model(w):
    """y = sum_p w[c, p] x_p (flatten, then Linear without bias): a patch's drop is sum_P w (x - fill)."""
    k, c, h, wd = w.shape
    fc = Linear(c * h * wd, k, bias=False)
    fc.params["weight"] = w.reshape(k, -1)
    return Model(Sequential([("flatten", Flatten()), ("fc", fc)]),
                 {"name": "linear", "classes": [f"k{i}" for i in range(k)], "input_size": [c, h, wd]})


def test_offsets_cover_every_pixel():
    assert offsets(8, 3, 2).tolist() == [0, 2, 4, 5]                  # 5 = 8 - 3, flush with the border
    assert offsets(8, 4, 2).tolist() == [0, 2, 4]
    assert offsets(5, 5, 3).tolist() == [0]


def test_drops_on_a_linear_model_by_hand():
    # one channel, 1x3 image, weights [1, 2, 3] for class k0; patch 1x2, stride 1, fill 0
    # drop at offset 0 = 1*x0 + 2*x1, at offset 1 = 2*x1 + 3*x2
    w = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    x = np.array([4.0, -1.0, 2.0]).reshape(1, 1, 1, 3)
    r = explain.occlusion(linear_model(w), x, 0, size=(1, 2), stride=1, fill=0.0)
    np.testing.assert_allclose(r.grid, [[[4 - 2, -2 + 6]]])
    # each pixel: mean drop over the patches covering it: x0 only by patch 0, x1 by both, x2 by patch 1
    np.testing.assert_allclose(r.map, [[[2.0, 3.0, 4.0]]])
    assert r.rows.tolist() == [0] and r.cols.tolist() == [0, 1] and r.size == (1, 2) and r.stride == (1, 1)
    np.testing.assert_allclose(r.scores, [1 * 4 - 2 + 6])


def test_mean_fill_uses_each_images_own_channel_means(rng):
    w = rng.standard_normal((2, 2, 4, 4))
    x = rng.standard_normal((2, 2, 4, 4))
    r = explain.occlusion(linear_model(w), x, 1, size=2, stride=2, fill="mean")
    mean = x.mean(axis=(2, 3), keepdims=True)
    expected = [[(w[1, :, a:a + 2, b:b + 2] * (x[n, :, a:a + 2, b:b + 2] - mean[n])).sum() for b in (0, 2)]
                for a in (0, 2) for n in [0]]
    np.testing.assert_allclose(r.grid[0], expected)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), size=st.integers(1, 8), stride=st.integers(1, 4), dense=st.booleans())
def test_a_patch_filled_with_the_image_itself_gives_an_all_zero_map(seed, size, stride, dense):
    stride = min(stride, size)
    model = small_cnn(seed, dense=dense)
    x = np.random.default_rng(seed).standard_normal((2, 3, 8, 8))
    r = explain.occlusion(model, x, size=size, stride=stride, fill=x)
    scale = np.abs(r.scores).max() + 1
    assert np.abs(r.grid).max() <= 1e-12 * scale and np.abs(r.map).max() <= 1e-12 * scale


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 3), batch_size=st.integers(1, 40))
def test_a_batch_gives_the_occlusion_maps_of_its_images_one_by_one(seed, n, batch_size):
    model = small_cnn(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 8, 8))
    targets = rng.integers(0, 3, n).tolist()
    batch = explain.occlusion(model, x, targets, size=3, stride=2, batch_size=batch_size)
    for i in range(n):
        one = explain.occlusion(model, x[i:i + 1], targets[i], size=3, stride=2)
        np.testing.assert_allclose(batch.map[i], one.map[0], rtol=1e-10, atol=1e-12)


def test_defaults_are_a_quarter_of_the_shorter_side_moved_by_a_quarter_patch(rng):
    r = explain.occlusion(small_cnn(0), rng.standard_normal((1, 3, 8, 8)))
    assert r.size == (2, 2) and r.stride == (1, 1) and r.grid.shape == (1, 7, 7) and r.map.shape == (1, 8, 8)


def test_progress_bar_goes_to_stderr_only_when_asked_or_slow(rng, capsys):
    model, x = small_cnn(0), rng.standard_normal((1, 3, 8, 8))
    explain.occlusion(model, x, size=2, stride=2, progress=True, batch_size=4)
    out, err = capsys.readouterr()
    assert out == "" and "occlusion  [" in err and "16/16 patches" in err and err.endswith("\n")
    explain.occlusion(model, x, size=2, stride=2)                    # fast: no bar
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 9}, "patch 9 wide x 9 high is larger than the image 8 wide x 8 high"),
    ({"size": 0}, "size must be positive"),
    ({"stride": (1, 2, 3)}, "stride must be an int or"),
    ({"size": 2, "stride": 3},
     "stride 3 wide x 3 high is larger than the patch 2 wide x 2 high: some pixels would never be covered"),
    ({"fill": "grey"}, "fill must be a number, 'mean' or an array"),
    ({"fill": np.zeros(5)}, "broadcastable to"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_bad_arguments_are_refused_in_one_line(rng, kwargs, message):
    with pytest.raises(InputError, match=message):
        explain.occlusion(small_cnn(0), rng.standard_normal((1, 3, 8, 8)), **kwargs)


def test_an_image_explained_for_two_classes_is_occluded_once(monkeypatch):
    from minicnn import load
    model = load("resnet20_cifar10")
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    calls = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda batch, **kw: calls.append(len(batch)) or forward(batch, **kw))
    both = explain.occlusion(model, np.repeat(x, 2, axis=0), [3, 5], size=8, stride=4, progress=False)
    assert sum(calls) == 2 + 9                                   # the batch once, then 3x3 positions once
    for i, c in enumerate([3, 5]):
        alone = explain.occlusion(model, x, c, size=8, stride=4, progress=False)
        np.testing.assert_allclose(both.grid[i], alone.grid[0], atol=1e-5)
