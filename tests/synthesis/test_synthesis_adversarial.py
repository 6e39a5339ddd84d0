"""FGSM and PGD: PyTorch's FGSM recorded on the shipped CIFAR-10 models, the loss gradient by central
differences, and PGD's promise (never outside the epsilon ball, never outside [0, 1]) as a property."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_explain_helpers import shipped, small_cnn

from minicnn.errors import InputError
from minicnn.gradcheck import check_function
from minicnn.synthesis import fgsm, loss_gradient, parse_epsilon, pgd

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fgsm_cifar10.npz"
PREP = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3], "resize": "exact", "size": [8, 8]}


def tiny(seed=0, dtype=np.float64):
    model = small_cnn(seed, dtype=dtype)
    model.meta["preprocessing"] = PREP
    return model


@pytest.fixture(scope="module")
def recorded():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def sign_is_clear(grad64):
    """Pixels whose float64 gradient is far from 0 at float32's precision: there the sign is not in doubt."""
    return np.abs(grad64) > 1e-4 * np.abs(grad64).max(axis=(1, 2, 3), keepdims=True)


@pytest.mark.parametrize("name", ["vgg_cifar10", "resnet20_cifar10"])
@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_pytorchs(recorded, name, targeted):
    """minicnn's float32 FGSM equals PyTorch's float32 FGSM wherever float32 rounding does not decide a sign.

    The exact answer is p +- eps sign(g) with g the float64 gradient. Where |g| is tiny its sign is
    decided by rounding: minicnn's float32 gradient agrees with the float64 sign at every pixel
    above 1e-4 of the largest |g|; PyTorch 2.13's float32 CPU gradient of ResNet-20 flips about
    18 of 6,144 signs there (its float32 gradient is off by up to ~5e-3 of the largest |g|),
    so those pixels are compared with the float64 answer only.
    """
    model = shipped(name)
    pixels = recorded["pixels"]
    labels, targets = recorded[f"{name}.labels"], recorded[f"{name}.targets"]
    attack = fgsm(model, pixels, "8/255", target=targets if targeted else None)
    np.testing.assert_array_equal(attack.labels, labels)             # the same top-1 classes
    grad64 = recorded[f"{name}.grad64_targeted" if targeted else f"{name}.grad64"]
    exact = np.clip(pixels + np.float32(8 / 255) * (-1 if targeted else 1) * np.sign(grad64), 0, 1)
    torch32 = recorded[f"{name}.adv_targeted" if targeted else f"{name}.adv"]
    clear = sign_is_clear(grad64)
    torch_agrees = np.abs(torch32 - exact) <= 1e-6
    assert clear.mean() > 0.97 and torch_agrees.mean() > 0.99
    np.testing.assert_allclose(attack.adversarial[clear], exact[clear], rtol=0, atol=1e-6)
    both = clear & torch_agrees
    np.testing.assert_allclose(attack.adversarial[both], torch32[both], rtol=0, atol=1e-6)
    assert attack.adversarial.dtype == np.float32
    assert np.abs(attack.adversarial - pixels).max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("name", ["vgg_cifar10", "resnet20_cifar10"])
def test_the_pixel_gradient_equals_pytorchs_in_float64(recorded, name):
    model = shipped(name).astype(np.float64)
    pixels = recorded["pixels"].astype(np.float64)
    _, g = loss_gradient(model, pixels, recorded[f"{name}.labels"])
    expected = recorded[f"{name}.grad64"]
    assert np.abs(g - expected).max() <= 1e-5 * np.abs(expected).max()


def test_loss_gradient_matches_finite_differences(rng):
    model = tiny(1)
    pixels = rng.uniform(0.1, 0.9, (2, 3, 8, 8))
    classes = np.array([2, 0])

    def loss(p):
        from minicnn.layers.loss import softmax
        logits = model.forward((p - np.reshape(PREP["mean"], (1, 3, 1, 1))) / np.reshape(PREP["std"], (1, 3, 1, 1)))
        return -np.log(softmax(logits)[np.arange(2), classes]).sum()

    _, g = loss_gradient(model, pixels, classes)
    check_function(loss, pixels, g, max_checks=80)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2 ** 16), st.floats(0, 0.3), st.integers(1, 4), st.booleans(), st.floats(0.5, 4.0))
def test_pgd_never_leaves_the_ball_or_the_domain(seed, epsilon, steps, targeted, alpha_factor):
    r = np.random.default_rng(seed)
    model = tiny(seed % 3, np.float32)
    pixels = r.choice([0.0, 1.0, 0.5], size=(2, 3, 8, 8)).astype(np.float32)   # edges of the domain too
    pixels[0] = r.uniform(0, 1, (3, 8, 8))
    attack = pgd(model, pixels, epsilon, steps=steps, step_size=alpha_factor * epsilon, seed=seed,
                 target=1 if targeted else None)
    d = attack.adversarial.astype(np.float64) - pixels
    assert np.abs(d).max() <= epsilon + 1e-6                          # float32 rounding of p +- eps
    assert attack.adversarial.min() >= 0 and attack.adversarial.max() <= 1


def test_pgd_with_zero_epsilon_changes_nothing_and_a_seed_repeats(rng):
    model = tiny(0, np.float32)
    pixels = rng.uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(pgd(model, pixels, 0, steps=3).adversarial, pixels)
    a, b = pgd(model, pixels, 0.1, steps=3, seed=5), pgd(model, pixels, 0.1, steps=3, seed=5)
    np.testing.assert_array_equal(a.adversarial, b.adversarial)


def test_pgd_fools_a_shipped_model_more_than_fgsm(recorded):
    model = shipped("resnet20_cifar10")
    pixels = recorded["pixels"]
    weak = fgsm(model, pixels, 1 / 255)
    strong = pgd(model, pixels, 2 / 255, steps=5)
    assert strong.success.all()
    assert (strong.logits_after[np.arange(2), strong.labels] < weak.logits_after[np.arange(2), weak.labels]).all()
    targeted = pgd(model, pixels, 8 / 255, steps=5, target=recorded["resnet20_cifar10.targets"])
    assert targeted.success.all()


@pytest.mark.parametrize("text, value", [("8/255", 8 / 255), ("0.03", 0.03), (" 1/10 ", 0.1), ("0", 0.0), (1, 1.0)])
def test_epsilon_accepts_fractions(text, value):
    assert parse_epsilon(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["1/0", "abc", "2", "-0.1", "nan", "inf", "", True])
def test_epsilon_refusals_are_one_line(text):
    with pytest.raises(InputError, match="epsilon") as e:
        parse_epsilon(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, words", [({"steps": 0}, "steps"), ({"steps": 10 ** 5}, "steps"),
                                           ({"target": 7}, "target"), ({"labels": -1}, "labels")])
def test_attacks_refuse_before_any_work(kwargs, words, rng):
    pixels = rng.uniform(0, 1, (1, 3, 8, 8)).astype(np.float32)
    with pytest.raises(InputError, match=words):
        pgd(tiny(0, np.float32), pixels, 0.1, **kwargs)
    with pytest.raises(InputError, match="pixels"):
        fgsm(tiny(0, np.float32), pixels * 3, 0.1)
