"""Estimates of a method's time: its passes restated as numbers, checked against the passes it really makes.

``minicnn.explain.estimate.passes`` must count what ``counting_passes``
counts for every method whose passes are not weighed; the weighed ones
(LRP, FullGrad, Ablation-CAM) and Score-CAM (which skips constant maps)
are checked against their own rules. The seconds are the passes times the
pass times given, scaled by the input's pixels.
"""

import math

import numpy as np
import pytest

from minicnn import load
from minicnn.explain import registry
from minicnn.explain.estimate import (
    BATCHED,
    FULLGRAD_CHANNELS,
    LRP_FORWARDS,
    estimate_seconds,
    fullgrad_channels,
    pass_seconds,
    passes,
    share_after,
)
from minicnn.explain.occlusion import offsets
from minicnn.metrics.cost import counting_passes

#: Few steps and samples, so every method runs in a moment; the rules must follow the options.
OPTIONS = {"integrated-gradients": {"steps": 3}, "smoothgrad": {"samples": 2}, "smoothgrad-squared": {"samples": 2},
           "vargrad": {"samples": 2}, "lime": {"samples": 6}, "kernel-shap": {"samples": 6}, "rise": {"samples": 5}}
WEIGHED = {"ablationcam", "fullgrad", "scorecam", *LRP_FORWARDS}


@pytest.fixture(scope="module")
def resnet():
    return load("resnet20_cifar10")


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).standard_normal((1, 3, 32, 48)).astype(np.float32)   # 48 wide x 32 high


def counted(model, method, x, layer="layer3"):
    with counting_passes(model) as c:
        registry.get(method).run(model, x, layer=layer, **OPTIONS.get(method, {}))
    return c.forwards, c.backwards


@pytest.mark.parametrize("method", [m for m in registry.METHODS if m not in WEIGHED])
def test_the_passes_are_the_passes_the_method_makes(resnet, x, method):
    assert passes(method, resnet, x.shape[2:], "layer3", OPTIONS.get(method)) == counted(resnet, method, x)


def test_occlusion_positions_follow_the_image_size(resnet):
    # the default patch: a quarter of the shorter side (8), stride a quarter of that (2): 13 x 21 positions
    assert len(offsets(32, 8, 2)) * len(offsets(48, 8, 2)) == 13 * 21
    assert passes("occlusion", resnet, (32, 48)) == (1 + 13 * 21, 0)
    assert passes("occlusion", resnet, (224, 224)) == (1 + 13 * 13, 0)        # patch 56, stride 14


def test_the_weighed_methods_follow_their_own_rules(resnet, x):
    K = 64                                                                     # resnet20's layer3
    f, b = counted(resnet, "scorecam", x)
    assert passes("scorecam", resnet, (32, 48), "layer3") == (1 + K, 0) and 1 < f <= 1 + K and b == 0
    f, b = counted(resnet, "ablationcam", x)
    assert (f, b) == (1 + K, 0)                                                # one resumed forward per map
    share = share_after(resnet, "layer3")
    assert 0 < share < 0.1                                                     # after layer3: pooling and fc
    assert passes("ablationcam", resnet, (32, 48), "layer3") == (1 + K * share, 0)
    for name, forwards in LRP_FORWARDS.items():
        assert counted(resnet, name, x) == (1, 1)
        assert passes(name, resnet, (32, 48)) == (1 + forwards, 0)
    assert counted(resnet, "fullgrad", x) == (1, 1)
    # the bias channels of every convolution and batch norm (the fc's bias is not upsampled)
    assert fullgrad_channels(resnet) == 688
    assert passes("fullgrad", resnet, (32, 48)) == (1, 1 + 688 / FULLGRAD_CHANNELS)


def test_the_seconds_are_the_passes_times_the_pass_times_scaled_by_the_pixels(resnet):
    single, batched = (2.0, 3.0, 0.0, 0.0), (0.0, 0.0, 5.0, 7.0)
    scale = 32 * 48 / (32 * 32)
    assert estimate_seconds("gradcam", resnet, (32, 48), single) == pytest.approx(scale * (2 + 3))
    assert estimate_seconds("gradcam", resnet, (32, 48), batched) == 0
    assert "occlusion" in BATCHED and "gradcam" not in BATCHED
    assert estimate_seconds("occlusion", resnet, (32, 48), batched) == pytest.approx(scale * 5 * (1 + 13 * 21))
    assert estimate_seconds("integrated-gradients", resnet, (32, 32), batched, options={"steps": 10}) == \
        pytest.approx(5 * 12 + 7 * 10)
    assert estimate_seconds("scorecam", resnet, (32, 32), batched, "layer1", channels=16) == pytest.approx(5 * 17)


def test_pass_seconds_are_measured_positive_times(resnet):
    times = pass_seconds(resnet, repeats=1, batch=2)
    assert len(times) == 4 and all(math.isfinite(t) and 0 < t < 5 for t in times)


def test_the_help_says_what_the_passes_are_on_mobilenet_v2(capsys):
    from minicnn.commands import cli
    from minicnn.explain.estimate import HELP
    mobilenet = load("mobilenet_v2")
    K = 1280
    assert passes("scorecam", mobilenet, (224, 224), "features") == (1 + K, 0)
    assert f"1 + {K} forwards at 'features'" in HELP
    assert passes("occlusion", mobilenet, (224, 224)) == (1 + 169, 0) and "1 + 169 forwards" in HELP
    assert cli.main(["explain", "--help"]) == 0
    assert " ".join(capsys.readouterr().out.split()).endswith(" ".join(HELP.split()))


def test_smoothgrad_is_priced_at_its_base_method_and_the_defaults_are_the_methods_own(resnet, x):
    import inspect

    from minicnn.explain import estimate
    options = {"base": "integrated-gradients", "samples": 2}
    with counting_passes(resnet) as c:
        registry.get("smoothgrad").run(resnet, x, **options)
    assert passes("smoothgrad", resnet, x.shape[2:], options=options) == (c.forwards, c.backwards) == (1 + 2 * 52, 100)
    for method, param, default in (("integrated-gradients", "steps", estimate.DEFAULT_STEPS),
                                   ("smoothgrad", "samples", estimate.DEFAULT_SAMPLES),
                                   ("vargrad", "samples", estimate.DEFAULT_SAMPLES)):
        assert inspect.signature(registry.get(method).function).parameters[param].default == default
