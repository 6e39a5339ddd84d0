"""Model-parameter randomisation: units, steps, seeded PyTorch-default draws, and the sanity run."""

import sys
import zlib

import numpy as np
import pytest
from test_explain_helpers import shipped, small_cnn

from minicnn.errors import InputError
from minicnn.explain import registry
from minicnn.layers import Conv2d, Linear, ReLU
from minicnn.metrics import sanity
from minicnn.metrics.comparison import compare_images
from minicnn.metrics.maps import pixel_map
from minicnn.metrics.randomisation import randomised, reset_parameters, steps, unit_label, units
from minicnn.metrics.runs import model_inputs
from minicnn.metrics.similarity import scale01, spearman, ssim
from minicnn.models import zoo

#: CIFAR-10's normalisation, the shipped images brought to 16x16: small enough for hand-checked runs
SMALL_PREP = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "shorter", "size": [16, 16],
              "resize_shorter": 16}


def similarities_by_hand(model, twin, key, x, targets):
    """(spearman_abs, spearman, ssim) per image of a method's maps on ``model`` and ``twin``, both for ``targets``."""
    method = registry.get(key)
    size = x.shape[2:]
    a, b = (method.run(m, x, targets).map for m in (model, twin))
    abs_a, abs_b = (np.abs(pixel_map(m, method.kind, size)) for m in (a, b))
    signed_a, signed_b = (pixel_map(m, method.kind, size, channels="sum") for m in (a, b))
    return {"spearman_abs": spearman(abs_a, abs_b), "spearman": spearman(signed_a, signed_b),
            "ssim": ssim(scale01(abs_a), scale01(abs_b))}


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


def test_randomised_weights_are_each_layers_own_seeded_draws():
    # layer L gets W then b ~ Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) from default_rng([seed, crc32(L)])
    model = small_cnn(0)
    twin = randomised(model, ["fc", "features.3"], seed=7)
    for name, fan_in in (("features.3", 4 * 3 * 3), ("fc", 5)):
        rng = np.random.default_rng([7, zlib.crc32(name.encode())])
        bound = 1 / np.sqrt(fan_in)
        w, b = model[name].params["weight"], model[name].params["bias"]
        np.testing.assert_array_equal(twin[name].params["weight"], rng.uniform(-bound, bound, w.shape))
        np.testing.assert_array_equal(twin[name].params["bias"], rng.uniform(-bound, bound, b.shape))
    np.testing.assert_array_equal(twin["features.0"].params["weight"], model["features.0"].params["weight"])


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
    x, _ = model_inputs(model, 2)
    targets = model.forward(x).argmax(axis=1)
    twin = randomised(model, ("classifier.0",), 0)                   # step 2 of the independent mode
    for key in ("gradcam", "saliency"):
        assert set(data["methods"][key]) == {"spearman_abs", "spearman", "ssim"}
        by_hand = similarities_by_hand(model, twin, key, x, targets)
        for s, values in data["methods"][key].items():
            assert len(values) == 9 and values[0] == 1.0
            # the sanity check makes its maps image by image, the hand in one batch: float32 rounding apart
            assert values[2] == pytest.approx(float(by_hand[s].mean()), abs=1e-5), (key, s)
    row = next(line for line in result.tables().splitlines() if line.startswith("| Grad-CAM |"))
    assert row == "| Grad-CAM | " + " | ".join(f"{v:.2f}" for v in data["methods"]["gradcam"]["spearman_abs"]) + " |"


def test_every_sanity_step_by_hand_with_a_seed_and_the_trained_targets():
    model = small_cnn(1, classes=4)
    model.meta["preprocessing"] = SMALL_PREP
    result = sanity(model, methods="saliency,gradcam", images=3, mode="cascading", seed=2, progress=False)
    x, _ = model_inputs(model, 3)
    targets = model.forward(x).argmax(axis=1)
    plan = steps(model, "cascading")
    assert result.steps == [label for label, _ in plan] == ["fc", "features.3", "features.0"]
    moved = False
    for step, (_, layers) in enumerate(plan, start=1):
        twin = randomised(model, layers, seed=2)
        moved |= bool(np.any(twin.forward(x).argmax(axis=1) != targets))   # the twin's own top-1 is not asked
        for key in ("saliency", "gradcam"):
            by_hand = similarities_by_hand(model, twin, key, x, targets)
            for s in ("spearman_abs", "spearman", "ssim"):
                np.testing.assert_allclose(result.values[key][s][step], by_hand[s], rtol=1e-9, atol=1e-12,
                                           err_msg=f"{key} {s} step {step}")
            np.testing.assert_allclose(result.examples[key][step], registry.get(key).run(twin, x, targets).map[0],
                                       rtol=1e-9, atol=1e-12)
    assert moved
    assert all(np.all(result.values[k][s][0] == 1) for k in ("saliency", "gradcam") for s in result.values[k])
    # the saliency map is signed: its signed and absolute rankings differ
    signed, absolute = result.values["saliency"]["spearman"], result.values["saliency"]["spearman_abs"]
    assert np.abs(signed[1:] - absolute[1:]).max() > 0.05
    data = result.json()
    np.testing.assert_allclose(data["methods"]["saliency"]["ssim"], result.values["saliency"]["ssim"].mean(axis=1))
    table = result.tables().split("**spearman**")[1]
    row = next(line for line in table.splitlines() if line.startswith("| Saliency"))
    assert row.endswith(" | ".join(f"{v:.2f}" for v in result.values["saliency"]["spearman"].mean(axis=1)) + " |")


def test_sanity_in_chunks_joins_each_images_similarities_in_image_order(monkeypatch):
    """The client's side of a run on workers, its chunks computed here: images 0 and 1-2 give the serial values."""
    model = small_cnn(1, classes=4)
    model.meta["preprocessing"] = SMALL_PREP
    serial = sanity(model, methods="saliency", images=3, mode="cascading", seed=2, progress=False)

    def in_chunks(model, keys, x, *, mode, seed, chunk, cluster, source, progress):
        return [compare_images(model, keys, x[ids], ids, mode=mode, seed=seed, chunk=chunk)
                for ids in (np.array([0]), np.array([1, 2]))]

    monkeypatch.setattr(sys.modules["minicnn.metrics.sanity"], "sanity_parts", in_chunks)
    chunked = sanity(model, methods="saliency", images=3, mode="cascading", seed=2, progress=False, cluster=object())
    for s, v in serial.values["saliency"].items():
        assert chunked.values["saliency"][s].shape == v.shape == (4, 3)          # (steps + 1, images)
        np.testing.assert_allclose(chunked.values["saliency"][s], v, rtol=1e-9, atol=1e-12, err_msg=s)
    np.testing.assert_allclose(chunked.examples["saliency"], serial.examples["saliency"], rtol=1e-9, atol=1e-12)
