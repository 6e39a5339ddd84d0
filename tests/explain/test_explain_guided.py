"""Guided Backprop, Guided Grad-CAM and gradient saliency: hand-worked answers and properties."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain_helpers import DENSE_X, GAP_X, dense_model, gap_model, small_cnn

from minicnn import explain
from minicnn.explain.resize import resize_bilinear
from minicnn.gradcheck import gradcheck
from minicnn.layers import AdaptiveAvgPool2d, BasicBlock, Conv2d, Flatten, Linear, ReLU, Sequential
from minicnn.model import Model


def test_guided_backprop_and_saliency_on_a_dense_head_by_hand():
    # A = ReLU(x) = [[1, 0], [3, 0.5]]; dy^q/dA = [[2, 1], [1, -1]], dy^p/dA = [[1, 2], [-1, 0.5]]
    # guided: keep dA where A > 0 and dA > 0; plain: keep dA where A > 0; the 1x1 conv has weight 1
    model = dense_model()
    g = explain.guided_backprop(model, DENSE_X)
    assert g.method == "guided-backprop" and g.layer is None and g.target_names == ["q"]
    np.testing.assert_allclose(g.map, [[[[2.0, 0.0], [1.0, 0.0]]]])
    np.testing.assert_allclose(explain.guided_backprop(model, DENSE_X, "p").map, [[[[1.0, 0.0], [0.0, 0.5]]]])
    s = explain.saliency(model, DENSE_X)
    np.testing.assert_allclose(s.map, [[[[2.0, 0.0], [1.0, -1.0]]]])
    np.testing.assert_allclose(explain.channel_max_abs(s.map), [[[2.0, 0.0], [1.0, 1.0]]])


def test_guided_backprop_on_a_gap_network_by_hand():
    # pre-activations x and -x (conv 1x1 weights +1, -1); dy^b/dA = [0.125, 0.75] everywhere (> 0):
    # channel 1 passes where x > 0, channel 2 where x < 0; dx = +1 * d(ch1) - 1 * d(ch2)
    model = gap_model()
    np.testing.assert_allclose(explain.guided_backprop(model, GAP_X).map, [[[[0.125, -0.75], [0.125, 0.0]]]])
    # class a: dy/dA = [0.5, -0.25]; guided drops the negative channel, plain keeps it where x < 0
    np.testing.assert_allclose(explain.guided_backprop(model, GAP_X, "a").map, [[[[0.5, 0.0], [0.5, 0.0]]]])
    np.testing.assert_allclose(explain.saliency(model, GAP_X, "a").map, [[[[0.5, 0.25], [0.5, 0.0]]]])


def test_guided_gradcam_is_guided_backprop_times_the_upsampled_raw_map_by_hand():
    # Grad-CAM 'b' = [[0.125, 1.5], [0.375, 0]] at the input's own 2x2 size: the product is elementwise
    r = explain.guided_gradcam(gap_model(), GAP_X)
    np.testing.assert_allclose(r.map, [[[[0.125 * 0.125, -0.75 * 1.5], [0.125 * 0.375, 0.0]]]])
    assert r.layer == "relu" and r.method == "guided-gradcam"


def one_block_model():
    """x (1, 1, 2, 2) -> one residual BasicBlock (1 -> 1 plane) -> GAP -> Linear W = [[4], [-4]].

    Every 3x3 kernel has one nonzero tap, its centre, so each conv multiplies pixel by pixel:
    conv1 by 2, conv2 by -1. BatchNorm with eps = 0, mean 0, var 1 adds its beta: -1 after conv1,
    +0.5 after conv2. The shortcut is the identity. Classes "a", "b".
    """
    block = BasicBlock(1, 1)
    for conv, centre in ((block.conv1, 2.0), (block.conv2, -1.0)):
        conv.params["weight"] = np.zeros((1, 1, 3, 3))
        conv.params["weight"][0, 0, 1, 1] = centre
    for bn, beta in ((block.bn1, -1.0), (block.bn2, 0.5)):
        bn.eps = 0.0
        bn.params["weight"], bn.params["bias"] = np.ones(1), np.array([beta])
        bn.buffers["running_mean"], bn.buffers["running_var"] = np.zeros(1), np.ones(1)
    fc = Linear(1, 2, bias=False)
    fc.params["weight"] = np.array([[4.0], [-4.0]])
    return Model(Sequential([("block", block), ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()),
                             ("fc", fc)]), {"name": "one-block", "classes": ["a", "b"], "input_size": [1, 2, 2]})


BLOCK_X = np.array([[1.0, -2.0], [3.0, 0.25]]).reshape(1, 1, 2, 2)


def test_guided_backprop_through_a_residual_block_by_hand():
    # Forward:  relu1 input 2x - 1           = [[1, -5], [5, -0.5]]  -> h = [[1, 0], [5, 0]]
    #           main branch -h + 0.5         = [[-0.5, 0.5], [-4.5, 0.5]]
    #           + shortcut x                 = [[0.5, -1.5], [-1.5, 0.75]] -> out = [[0.5, 0], [0, 0.75]]
    #           y = W mean(out) = [4, -4] * 0.3125 = [1.25, -1.25]
    model = one_block_model()
    np.testing.assert_allclose(model.forward(BLOCK_X), [[1.25, -1.25]])
    np.testing.assert_allclose(model.activations["block"][0, 0], [[0.5, 0.0], [0.0, 0.75]])
    # Class a, backward: dy/d(out) = 4/4 = 1 everywhere; the block's ReLU passes it where out > 0:
    #   g = [[1, 0], [0, 1]] goes to both branches. Shortcut: dx_s = g.
    #   Main: through bn2 (x1) and conv2 (x -1) it reaches relu1 as [[-1, 0], [0, -1]]: negative.
    #   plain rule: keep where relu1's input > 0 -> [[-1, 0], [0, 0]], x2 through conv1 -> [[-2, 0], [0, 0]]
    #   guided rule: also drop negative gradients -> 0; the main branch contributes nothing.
    np.testing.assert_allclose(explain.saliency(model, BLOCK_X, "a").map[0, 0], [[-1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(explain.guided_backprop(model, BLOCK_X, "a").map[0, 0], [[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(model.gradients["block.relu1"][0, 0], [[-1.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(model.gradients["block.bn1"][0, 0], np.zeros((2, 2)))
    # Class b: dy/d(out) = -1 everywhere. The guided rule stops it at the block's own ReLU: 0.
    # The plain rule: g = [[-1, 0], [0, -1]]; main branch [[1, 0], [0, 1]] at relu1 -> [[1, 0], [0, 0]]
    # -> x2 = [[2, 0], [0, 0]]; plus the shortcut g: [[1, 0], [0, -1]].
    np.testing.assert_allclose(explain.saliency(model, BLOCK_X, "b").map[0, 0], [[1.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(explain.guided_backprop(model, BLOCK_X, "b").map, np.zeros((1, 1, 2, 2)))
    # Guided Grad-CAM at the block's output: dy^a/dA = 1 everywhere, alpha = 1, L = ReLU(A) = A (2x2,
    # the input's size, so no resampling); the product with guided [[1, 0], [0, 1]] is [[0.5, 0], [0, 0.75]].
    r = explain.guided_gradcam(model, BLOCK_X, "a", layer="block")
    np.testing.assert_allclose(r.gradcam.map[0], [[0.5, 0.0], [0.0, 0.75]])
    np.testing.assert_allclose(r.map[0, 0], [[0.5, 0.0], [0.0, 0.75]])


def test_the_one_block_saliency_by_hand_is_the_true_gradient():
    # The hand-worked saliency above is dy/dx: prove it by central differences (no kink within reach).
    model = one_block_model()
    assert gradcheck(model, BLOCK_X, params=True, max_checks=None)["x"] < 1e-7


def test_guided_gradcam_upsamples_the_raw_map_bilinearly(rng):
    model = small_cnn(4)
    x = rng.standard_normal((2, 3, 8, 8))
    r = explain.guided_gradcam(model, x, [0, 1])
    cam = explain.gradcam(model, x, [0, 1])
    guided = explain.guided_backprop(model, x, [0, 1])
    np.testing.assert_allclose(r.map, guided.map * resize_bilinear(cam.map, (8, 8))[:, None], rtol=1e-12)
    np.testing.assert_array_equal(r.gradcam.map, cam.map)
    assert r.map.shape == (2, 3, 8, 8)


def pixelwise_then_conv(seed):
    """conv 1x1 (3 -> 4) -> ReLU "relu1" -> conv 3x3 -> ReLU -> GAP -> Linear.

    Input pixel (i, j) reaches the rest of the network only through the four
    first-layer ReLUs at (i, j).
    """
    rng = np.random.default_rng(seed)
    layers = [("conv1", Conv2d(3, 4, 1)), ("relu1", ReLU()), ("conv2", Conv2d(4, 5, 3, padding=1)),
              ("relu2", ReLU()), ("avgpool", AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("fc", Linear(5, 3))]
    model = Model(Sequential(layers), {"name": "pixelwise", "classes": ["a", "b", "c"], "input_size": [3, 6, 6]})
    for _, layer in model.layers():
        for k, p in layer.params.items():
            layer.params[k] = rng.standard_normal(p.shape)
    return model


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), target=st.integers(0, 2))
def test_guided_gradient_vanishes_where_every_path_passes_a_switched_off_relu(seed, target):
    model = pixelwise_then_conv(seed)
    x = np.random.default_rng(seed + 1).standard_normal((2, 3, 6, 6))
    g = explain.guided_backprop(model, x, target).map
    off = (model.activations["relu1"] == 0).all(axis=1)            # (N, H, W): all four ReLUs at the pixel off
    assert np.all(g.transpose(0, 2, 3, 1)[off] == 0)
    s = explain.saliency(model, x, target).map                       # the true gradient vanishes there too
    assert np.all(s.transpose(0, 2, 3, 1)[off] == 0)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 3))
def test_a_batch_gives_the_guided_and_saliency_maps_of_its_images_one_by_one(seed, n):
    model = small_cnn(seed, dense=seed % 2 == 0)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 8, 8))
    targets = rng.integers(0, 3, n).tolist()
    for method in (explain.guided_backprop, explain.saliency, explain.guided_gradcam):
        batch = method(model, x, targets).map
        for i in range(n):
            np.testing.assert_allclose(batch[i], method(model, x[i:i + 1], targets[i]).map[0], rtol=1e-10, atol=1e-12)
