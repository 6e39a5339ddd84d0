"""CAM (Zhou et al.): hand-worked answer, Grad-CAM = CAM / Z, and the error for other networks."""

import numpy as np
import pytest
from test_explain_helpers import GAP_X, gap_model, shipped, small_cnn

from minicnn import explain
from minicnn.errors import InputError
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample
from minicnn.models import zoo


def test_cam_on_a_gap_network_by_hand():
    # M_b = W[b, 1] A^1 + W[b, 2] A^2 = 0.5 [[1, 0], [3, 0]] + 3 [[0, 2], [0, 0]]
    r = explain.cam(gap_model(), GAP_X)
    assert r.method == "cam" and r.layer == "relu" and r.target_names == ["b"]
    np.testing.assert_allclose(r.map, [[[0.5, 6.0], [1.5, 0.0]]])
    np.testing.assert_allclose(r.alpha, [[0.5, 3.0]])
    # M_a = 2 A^1 - A^2 keeps its negative values: CAM is returned raw, without a ReLU
    np.testing.assert_allclose(explain.cam(gap_model(), GAP_X, "a").map, [[[2.0, -2.0], [6.0, 0.0]]])


def test_gradcam_without_relu_is_cam_over_z_on_a_small_network(rng):
    model = small_cnn(5)
    x = rng.standard_normal((3, 3, 8, 8))
    cam = explain.cam(model, x, [0, 1, 2])
    grad = explain.gradcam(model, x, [0, 1, 2], relu=False)
    assert cam.layer == grad.layer == "features"                     # the feature map entering the pooling
    np.testing.assert_allclose(grad.map, cam.map / 16, rtol=1e-12, atol=1e-15)


def test_gradcam_is_cam_over_z_on_resnet20_cifar10():
    model = shipped("resnet20_cifar10")
    images = [explain.cat_dog_image()[:, :32], explain.cat_dog_image()[:, 32:], load_sample("ship", 0)]
    x = preprocess(images, model.meta["preprocessing"]).astype(np.float64)
    for target in (None, "cat", "dog"):
        cam = explain.cam(model, x, target)
        grad = explain.gradcam(model, x, target, relu=False)
        assert cam.layer == grad.layer == "layer3"
        z = model.activations["layer3"].shape[2] * model.activations["layer3"].shape[3]
        assert z == 64
        np.testing.assert_allclose(grad.alpha, cam.alpha / z, rtol=1e-9)
        err = np.abs(grad.map - cam.map / z).max() / np.abs(cam.map / z).max()
        assert err < 1e-12
        # with its ReLU, Grad-CAM is ReLU(CAM) / Z
        np.testing.assert_allclose(explain.gradcam(model, x, target).map, np.maximum(cam.map, 0) / z,
                                   rtol=1e-9, atol=1e-12)


def test_cam_refuses_a_network_with_a_dense_head_in_one_line(rng):
    x = rng.standard_normal((1, 3, 8, 8))
    with pytest.raises(InputError, match=r"^CAM needs a network that ends in global average pooling -> flatten -> "
                                         r"one Linear layer; small ends .*classifier.0 \(Linear\) -> classifier.1 "
                                         r"\(ReLU\) -> classifier.2 \(Linear\); use Grad-CAM"):
        explain.cam(small_cnn(0, dense=True), x)
    vgg = zoo.vgg_cifar(fold_bn=True)
    with pytest.raises(InputError, match="vgg_cifar ends") as e:
        explain.cam(vgg, np.zeros((1, 3, 32, 32), np.float32))
    assert "\n" not in str(e.value)


def test_cam_is_only_defined_at_the_pooled_feature_map(rng):
    model = small_cnn(0)
    x = rng.standard_normal((1, 3, 8, 8))
    assert explain.cam(model, x, layer="features.4").layer == "features"     # the same array, another name
    with pytest.raises(InputError, match="entering the global average pooling, 'features'"):
        explain.cam(model, x, layer="features.1")
