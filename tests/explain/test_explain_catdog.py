"""Class-discriminativeness on real photographs: the shipped cat beside the shipped dog (32x64).

The "mass" of a map on a half is the sum of its positive part over that half
divided by the sum over the whole image (occlusion drops can be negative:
those regions spoke against the class).
"""

import numpy as np
import pytest
from test_explain_helpers import shipped

from minicnn import explain
from minicnn.inputs.preprocess import preprocess


def mass_on(m, half):
    m = np.maximum(m, 0)
    w = m.shape[-1] // 2
    part = m[..., :w] if half == "left" else m[..., w:]
    return float(part.sum() / m.sum())


@pytest.fixture(scope="module")
def resnet():
    return shipped("resnet20_cifar10")


@pytest.fixture(scope="module")
def cat_dog_batch(resnet):
    """The cat|dog image twice, to be explained for 'cat' and for 'dog' in one batch."""
    image = explain.cat_dog_image()
    assert image.shape == (32, 64, 3) and image.dtype == np.uint8
    return np.repeat(preprocess(image, resnet.meta["preprocessing"]), 2, axis=0)


@pytest.mark.parametrize("model_name", ["resnet20_cifar10", "vgg_cifar10"])
def test_the_cat_and_the_dog_are_each_classified_correctly_on_their_own(model_name):
    model = shipped(model_name)
    image = explain.cat_dog_image()
    x = preprocess([image[:, :32], image[:, 32:]], model.meta["preprocessing"])
    assert [model.classes[k] for k in model.forward(x).argmax(axis=1)] == ["cat", "dog"]


def test_gradcam_for_cat_lights_the_cat_half_and_for_dog_the_dog_half(resnet, cat_dog_batch):
    r = explain.gradcam(resnet, cat_dog_batch, ["cat", "dog"])
    assert r.layer == "layer3" and r.map.shape == (2, 8, 16)
    assert mass_on(r.map[0], "left") > 0.7          # measured 0.80
    assert mass_on(r.map[1], "right") > 0.7         # measured 0.86
    # both classes are among the two best scores of the composite image, as in the paper's figure
    assert {resnet.classes[k] for k in np.argsort(-r.logits[0])[:2]} == {"cat", "dog"}


def test_the_counterfactual_for_cat_points_at_the_dog_and_vice_versa(resnet, cat_dog_batch):
    r = explain.counterfactual(resnet, cat_dog_batch, ["cat", "dog"])
    assert mass_on(r.map[0], "right") > 0.7         # measured 0.98
    assert mass_on(r.map[1], "left") > 0.7          # measured 0.86


def test_occlusion_for_cat_drops_most_on_the_cat_half_and_for_dog_on_the_dog_half(resnet, cat_dog_batch):
    # 8x8 patches side by side keep the test short (stride 2, as in the demo, gives 0.85 and 0.83)
    r = explain.occlusion(resnet, cat_dog_batch, ["cat", "dog"], size=8, stride=8)
    assert r.map.shape == (2, 32, 64) and r.grid.shape == (2, 4, 8)
    assert mass_on(r.map[0], "left") > 0.7          # measured 0.84
    assert mass_on(r.map[1], "right") > 0.7         # measured 0.81
