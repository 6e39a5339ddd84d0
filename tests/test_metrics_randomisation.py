"""Model-parameter randomisation: units, steps, seeded PyTorch-default draws, and the sanity run."""

import numpy as np
import pytest

from minicnn.models import zoo
from minicnn.errors import InputError
from minicnn.layers import Conv2d, Linear, ReLU
from minicnn.metrics import sanity
from minicnn.metrics.randomisation import randomised, reset_parameters, steps, unit_label, units

from test_explain_helpers import shipped


def test_units_join_each_batchnorm_to_the_layer_it_normalises():
    resnet = units(zoo.resnet20())
    assert len(resnet) == 20 and resnet[0] == ("conv1", "bn1") and resnet[-1] == ("linear",)
    assert ("layer2.0.conv1", "layer2.0.bn1") in resnet
    vgg = units(zoo.vgg_cifar(fold_bn=True))
    assert [u[0] for u in vgg] == ["features.0", "features.3", "features.7", "features.10", "features.14",
                                   "features.17", "classifier.0", "classifier.3"]
    assert unit_label(("layer3.2.conv2", "layer3.2.bn2")) == "layer3.2.conv2+bn2"


def test_cascading_steps_add_one_unit_from_the_top_and_independent_steps_take_one_each():
    model = zoo.vgg_cifar(fold_bn=True)
    cascading, independent = steps(model, "cascading"), steps(model, "independent")
    assert [label for label, _ in cascading] == [label for label, _ in independent]
    assert cascading[0] == ("classifier.3", ("classifier.3",))
    assert cascading[2][1] == ("classifier.3", "classifier.0", "features.17")
    assert cascading[-1][1] == tuple(u[0] for u in units(model))[::-1]
    assert independent[2] == ("features.17", ("features.17",))
    with pytest.raises(InputError, match="cascading, independent"):
        steps(model, "bottom-up")


def test_randomised_copies_reinitialise_only_the_named_layers_the_same_way_every_time():
    model = zoo.vgg_cifar(fold_bn=True, seed=3)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    a = randomised(model, ["features.17", "classifier.3"], seed=5)
    b = randomised(model, ["classifier.3"], seed=5)
    for k, v in model.state_dict().items():
        assert np.array_equal(v, before[k])                                # the model itself is untouched
    sa, sb = a.state_dict(), b.state_dict()
    assert np.array_equal(sa["classifier.3.weight"], sb["classifier.3.weight"])      # seeded by the layer's name
    assert not np.array_equal(sa["classifier.3.weight"], before["classifier.3.weight"])
    assert not np.array_equal(sa["features.17.weight"], before["features.17.weight"])
    assert np.array_equal(sb["features.17.weight"], before["features.17.weight"])
    assert not np.array_equal(randomised(model, ["classifier.3"], seed=6).state_dict()["classifier.3.weight"],
                              sb["classifier.3.weight"])


def test_reset_parameters_uses_one_over_sqrt_fan_in_and_refuses_layers_without_a_default():
    conv = Conv2d(4, 6, 3)
    reset_parameters(conv, np.random.default_rng(0))
    bound = 1 / np.sqrt(4 * 9)
    assert 0.9 * bound < np.abs(conv.params["weight"]).max() <= bound and np.abs(conv.params["bias"]).max() <= bound
    fc = Linear(10, 3, bias=False)
    reset_parameters(fc, np.random.default_rng(0))
    assert np.abs(fc.params["weight"]).max() <= 1 / np.sqrt(10) and "bias" not in fc.params
    with pytest.raises(InputError, match="ReLU"):
        reset_parameters(ReLU(), np.random.default_rng(0))


def test_sanity_on_a_shipped_model_gives_one_list_per_similarity_starting_at_one():
    model = shipped("vgg_cifar10")
    result = sanity(model, methods="gradcam,cam,saliency", images=2, mode="independent", progress=False)
    data = result.json()
    assert set(data) == {"model", "mode", "images", "steps", "methods"}
    assert data["mode"] == "independent" and data["images"] == 2
    assert data["steps"] == ["original", "classifier.3", "classifier.0", "features.17", "features.14",
                             "features.10", "features.7", "features.3", "features.0"]
    assert set(data["methods"]) == {"gradcam", "cam", "saliency"}
    assert "global average pooling" in data["methods"]["cam"]["not_applicable"]
    for key in ("gradcam", "saliency"):
        assert set(data["methods"][key]) == {"spearman_abs", "spearman", "ssim"}
        for values in data["methods"][key].values():
            assert len(values) == 9 and values[0] == pytest.approx(1.0) and max(values[1:]) < 0.999
    assert "| Grad-CAM | 1.00 |" in result.tables()
