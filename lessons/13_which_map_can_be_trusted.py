# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 13 · Which map can be trusted?
#
# The earlier lessons computed many maps of the same decision: the
# gradient (saliency), Guided Backprop, Grad-CAM, Guided Grad-CAM. They
# look different. Which of them tells the truth about the network?
#
# Adebayo et al. (*Sanity Checks for Saliency Maps*, NeurIPS 2018) asked a
# simpler question first: **does the map depend on the network at all?** An
# explanation of a decision must change when what the network learned is
# destroyed. They proposed two tests:
#
# 1. **model-parameter randomisation**: replace the trained weights by random
#    ones, from the top (the logits) down, one layer more at each step
#    ("cascading"), and measure how similar each map stays to the map of the
#    trained network;
# 2. **data randomisation**: train the same network on labels shuffled at
#    random (it can only memorise them) and compare its maps with those of
#    the network trained on the true labels.
#
# A map that survives either test unchanged is a picture of the *input*
# (edges, textures), not of the *decision*. Their finding: the gradient and
# Grad-CAM pass; Guided Backprop and Guided Grad-CAM barely change. This
# lesson runs both tests with `minicnn.metrics`, on the shipped VGG-style
# network and on the small network of lesson 9, and checks the finding.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn.explain import registry
from minicnn.figures import save_png
from minicnn.figures.metrics import sanity_curves, sanity_grid
from minicnn.inputs.datasets import open_dataset
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import data_path
from minicnn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, softmax_cross_entropy
from minicnn.metrics import sanity
from minicnn.metrics.maps import pixel_map
from minicnn.metrics.randomisation import randomised, steps, units
from minicnn.metrics.runs import shipped_test_images
from minicnn.metrics.similarity import scale01, spearman, spearman_abs, ssim

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()

# %% [markdown]
# ## 1. Random weights, as PyTorch draws them
#
# "Random" must mean something definite: each layer is re-initialised the
# way PyTorch initialises a fresh layer of its type (`reset_parameters`).
# For a convolution or a dense layer with fan-in $n$ (inputs per output
# unit: $C_{in} k_h k_w$, or the input features),
#
# $$W, b \sim \mathcal{U}\!\left(-\tfrac{1}{\sqrt{n}}, \tfrac{1}{\sqrt{n}}\right),$$
#
# (`kaiming_uniform_` with $a = \sqrt5$ has the bound
# $\sqrt{6 / ((1 + a^2) n)} = 1/\sqrt{n}$); a BatchNorm layer goes back to
# weight 1, bias 0, running mean 0 and variance 1. The draws are seeded by
# the layer's name, so a layer gets the same random weights at every step.
# The tests (`tests/metrics/test_metrics_reference.py`) compare these draws with
# PyTorch's own.

# %%
model = minicnn.load("vgg_cifar10")
fc = model["classifier.3"]
fan_in = fc.params["weight"].shape[1]
print(f"classifier.3: W {fc.params['weight'].shape}, fan-in {fan_in}, "
      f"bound 1/sqrt({fan_in}) = {1 / np.sqrt(fan_in):.4f}")
print(f"  trained W: std {fc.params['weight'].std():.4f}, largest |W| {np.abs(fc.params['weight']).max():.4f}")
twin = randomised(model, ["classifier.3"], seed=0)
w = twin["classifier.3"].params["weight"]
print(f"  random  W: std {w.std():.4f} (bound/sqrt(3) = {1 / np.sqrt(3 * fan_in):.4f}), "
      f"largest |W| {np.abs(w).max():.4f}")
assert np.abs(w).max() <= 1 / np.sqrt(fan_in) and abs(w.std() - 1 / np.sqrt(3 * fan_in)) < 0.1 / np.sqrt(fan_in)
assert np.array_equal(randomised(model, ["classifier.3"], seed=0)["classifier.3"].params["weight"], w)

# %% [markdown]
# The network has eight layers with weights. Cascading randomisation
# destroys them from the logits down, one more at each step; after the
# eighth step nothing learned is left.

# %%
plan = steps(model, "cascading")
print("units, input to output:", [u[0] for u in units(model)])
for label, layers in plan:
    print(f"  step {plan.index((label, layers)) + 1}: randomise {label:<13} -> random so far: {', '.join(layers)}")
assert len(plan) == 8 and plan[-1][1] == ("classifier.3", "classifier.0", "features.17", "features.14",
                                          "features.10", "features.7", "features.3", "features.0")

# %% [markdown]
# ## 2. How alike are two maps? One step by hand
#
# Adebayo et al. compare a map $a$ (trained network) with $b$ (randomised)
# by three numbers, each 1 for identical maps:
#
# - **Spearman's rank correlation** of the absolute values: the Pearson
#   correlation of the *ranks* of $|a|$ and $|b|$, so only the order of the
#   pixels matters, not the scale;
# - the same of the **signed** values;
# - **SSIM** (Wang et al. 2004) of the absolute maps scaled to $[0, 1]$:
#   local means, variances and covariance in an $11 \times 11$ Gaussian
#   window ($\sigma = 1.5$), $\frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
#   {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}$ averaged over
#   the windows.
#
# Every map is first made one number per input pixel: maps over a layer
# (Grad-CAM) are upsampled bilinearly, gradients $(3, H, W)$ become the sum
# over channels of their absolute values (`minicnn.metrics.maps`). Here is
# the gradient of one image before and after the first step, and its
# Spearman correlation computed from the ranks by hand.

# %%
images, labels, classes = shipped_test_images(16)
x = preprocess(images, model.meta["preprocessing"])
targets = model.forward(x).argmax(axis=1)                # explain what the trained network predicts
print(f"{len(x)} shipped test images, {np.mean(targets == labels):.0%} classified correctly")

gradient = registry.get("saliency")
a = pixel_map(gradient.run(model, x[:1], targets[:1]).map, "input", (32, 32))[0]
b = pixel_map(gradient.run(twin, x[:1], targets[:1]).map, "input", (32, 32))[0]
rank_a, rank_b = a.ravel().argsort().argsort(), b.ravel().argsort().argsort()   # no ties in a gradient
by_hand = np.corrcoef(rank_a, rank_b)[0, 1]
print(f"Spearman of |gradient| before and after randomising the logits: {by_hand:.3f} "
      f"(minicnn.metrics: {spearman_abs(a, b):.3f}); SSIM {ssim(scale01(a), scale01(b)):.3f}")
assert abs(by_hand - spearman_abs(a, b)) < 1e-9 and abs(spearman(a, a) - 1) < 1e-12

# %% [markdown]
# ## 3. Cascading randomisation of four methods
#
# `minicnn.metrics.sanity` does this for every method, step and image
# (here 16 images: the full run for the README uses more), always
# explaining the class the *trained* network predicted.

# %%
METHODS = "saliency,guided-backprop,gradcam,guided-gradcam"
result = sanity(model, methods=METHODS, images=16, mode="cascading", seed=0, progress=False)
print(result.tables())
save_png(sanity_grid(result), FIGURES / "13_cascading_maps.png", dpi=100)
save_png(sanity_curves(result), FIGURES / "13_cascading_curves.png", dpi=100)
print("wrote", FIGURES / "13_cascading_maps.png", "and", FIGURES / "13_cascading_curves.png")

# %% [markdown]
# Read the tables row by row. The gradient's map changes at once: with
# only the last layer random its Spearman correlation falls to about 0.5,
# and it keeps falling. Grad-CAM's map is gone after the first step: its
# weights $\alpha_k^c$ are gradients of the (now random) class score, and
# its correlation with the trained map is about zero. Guided Backprop
# barely notices: with half the network random its map still correlates
# above 0.7 with the trained one, and even with *every* weight random it
# keeps more of its map than the gradient does. Guided Grad-CAM sits in
# between: the Grad-CAM factor changes, the guided factor does not.
#
# The claims, asserted on the means over the 16 images:

# %%
def after(key, measure, step):
    return result.values[key][measure][step].mean()


last = len(result.steps)
for measure in ("spearman_abs", "ssim"):
    gb, grad, cam = (after(k, measure, last) for k in ("guided_backprop", "saliency", "gradcam"))
    print(f"{measure:<13} with every layer random: Guided Backprop {gb:.2f}, gradient {grad:.2f}, Grad-CAM {cam:.2f}")
    assert gb > grad + 0.05 and gb > cam + 0.1               # the paper's finding
assert after("gradcam", "spearman_abs", 1) < 0.2             # Grad-CAM changes at the first step
assert after("saliency", "spearman_abs", 1) < 0.7            # so does the gradient
assert after("guided_backprop", "spearman_abs", 1) > 0.9     # Guided Backprop does not
assert after("guided_backprop", "spearman_abs", 4) > 0.6     # nor with half the network random

# %% [markdown]
# Why? Guided Backprop passes a gradient backwards only where it is
# positive *and* the forward activation was positive. The negative half of
# every gradient is thrown away at every ReLU, so what reaches the image is
# dominated by the pattern of which units were active, a function of the
# input's edges more than of the weights above. Nie et al. (ICML 2018)
# showed that it partly reconstructs the image. A sharp picture is not
# evidence of a faithful one.
#
# ## 4. Data randomisation
#
# The second test keeps the architecture and the training recipe and
# changes only the labels. We take lesson 9's network (two conv stages and
# a dense layer, He initialisation) and its training loop (SGD with
# momentum, a warm-up, flips), shortened to fit a lesson: 500 training
# images, 12 epochs. Three networks:
#
# - **A**: true labels, seed 0;
# - **B**: true labels, seed 1 (other initial weights, other batches);
# - **R**: the same labels shuffled among the images, seed 1 (B's initial
#   weights and batches: only the labels differ).
#
# R can only memorise: it should fit some of its training labels and be
# at chance (10%) on test images.

# %%
train_set = open_dataset(data_path("cifar10_train_subset.zip"), "train")
test_set = open_dataset(data_path("cifar10"), "test")
train_images, y_train = (np.concatenate(a) for a in zip(*train_set.batches(500)))
test_images, y_test = (np.concatenate(a) for a in zip(*test_set.batches(500)))
keep = np.concatenate([np.nonzero(y_train == c)[0][:50] for c in range(10)])     # 50 per class
train_images, y_train = train_images[keep], y_train[keep]
pixels = train_images.reshape(-1, 3) / 255.0
small_prep = {"mean": pixels.mean(axis=0).tolist(), "std": pixels.std(axis=0).tolist(), "resize": "none"}
X_train, X_test = preprocess(train_images, small_prep), preprocess(test_images, small_prep)
y_shuffled = np.random.default_rng(13).permutation(y_train)
print(f"{len(X_train)} training images; {np.mean(y_shuffled == y_train):.0%} of the shuffled labels happen to be right")


def lesson9_network(seed):
    rng = np.random.default_rng(seed)

    def he_init(layer, std=None):
        w = layer.params["weight"]
        layer.params["weight"] = (rng.standard_normal(w.shape)
                                  * (np.sqrt(2.0 / np.prod(w.shape[1:])) if std is None else std)).astype(np.float32)
        return layer

    return minicnn.Model(Sequential([
        ("conv1", he_init(Conv2d(3, 16, 3, padding=1))), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),
        ("conv2", he_init(Conv2d(16, 32, 3, padding=1))), ("relu2", ReLU()), ("pool2", MaxPool2d(2)),
        ("flatten", Flatten()), ("fc", he_init(Linear(32 * 8 * 8, 10), std=0.001)),
    ]), {"name": f"small_cnn_seed{seed}", "input_size": [3, 32, 32], "classes": classes}), rng


def train(labels, seed, epochs=12, batch=50, lr=0.02, momentum=0.9):
    """Lesson 9's loop: SGD with momentum, linear warm-up then decay, random horizontal flips."""
    net, rng = lesson9_network(seed)
    params = net.parameters()
    velocity = {k: np.zeros_like(p) for k, p in params.items()}
    per_epoch = -(-len(X_train) // batch)
    total = epochs * per_epoch
    for step in range(total):
        if step % per_epoch == 0:
            order = rng.permutation(len(X_train))
        idx = order[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
        flip = rng.random(len(idx)) < 0.5
        xb = np.where(flip[:, None, None, None], X_train[idx][..., ::-1], X_train[idx])
        _, dlogits = softmax_cross_entropy(net.forward(xb), labels[idx])
        net.backward(dlogits, param_grads=True)
        eta = lr * min(1.0, (step + 1) / per_epoch) * (1 - step / total)
        for k, g in net.param_grads.items():
            velocity[k] *= momentum
            velocity[k] += g
            params[k] -= eta * velocity[k]
    return net


def accuracy(net, X, y):
    return float(np.mean(net.forward(X).argmax(axis=1) == y))


began = time.perf_counter()
nets = {"A": train(y_train, seed=0), "B": train(y_train, seed=1), "R": train(y_shuffled, seed=1)}
print(f"trained three networks in {time.perf_counter() - began:.0f} s")
for name, net in nets.items():
    fit_labels = y_shuffled if name == "R" else y_train
    print(f"  {name}: training labels fitted {accuracy(net, X_train, fit_labels):.0%}, "
          f"test accuracy {accuracy(net, X_test, y_test):.0%}")
assert accuracy(nets["A"], X_test, y_test) > 0.25 and accuracy(nets["B"], X_test, y_test) > 0.25
assert accuracy(nets["R"], X_test, y_test) < 0.2            # chance: it learned nothing about the images
assert accuracy(nets["R"], X_train, y_shuffled) > 0.3       # but it memorised many of its labels

# %% [markdown]
# Now the maps of 100 test images, each explained for its true class in all
# three networks. If a method shows what a network learned from its labels,
# A's maps should agree more with B's (both learned the classes, from
# different starting points) than with R's (which learned noise). And B~R
# tells how much of a map comes from the *initial weights*: B and R start
# from the same ones and see the same batches; only the labels differ.

# %%
probe, probe_labels = X_test[::3][:100], y_test[::3][:100]
agreement = {}
for name in ("saliency", "guided-backprop", "gradcam", "guided-gradcam"):
    m = registry.get(name)
    maps = {k: pixel_map(m.run(net, probe, probe_labels).map, m.kind, (32, 32)) for k, net in nets.items()}
    agreement[name] = {pair: spearman_abs(maps[pair[0]], maps[pair[1]]) for pair in ("AB", "AR", "BR")}
    ab, ar, br = (agreement[name][p].mean() for p in ("AB", "AR", "BR"))
    print(f"{m.title:<16} Spearman of |map|: A~B {ab:.2f}   A~R {ar:.2f}   B~R {br:.2f}")


def mean(name, pair):
    return agreement[name][pair].mean()


for name in agreement:                                     # every map agrees more between true-label networks
    assert mean(name, "AB") > mean(name, "AR")
for name in ("gradcam", "guided-gradcam"):                 # Grad-CAM: the labels decide, not the start
    assert mean(name, "AB") > mean(name, "AR") + 0.05 and mean(name, "BR") < mean(name, "AB") - 0.1
for name in ("saliency", "guided-backprop"):               # gradients: the shared start shows through
    assert mean(name, "BR") > mean(name, "AR") + 0.03

# %% [markdown]
# Read the three columns together. Grad-CAM (and Guided Grad-CAM, which
# multiplies by it) passes clearly: A and B agree, R agrees with neither,
# not even with B, whose initial weights and batches it shares: what
# Grad-CAM shows was put there by the labels. The gradient and Guided
# Backprop also agree more between A and B than between A and R, but their
# B~R column is as high as A~B: a good part of these maps comes from the
# initial weights, which B and R share, whatever the labels. The agreements
# are low throughout (a small network trained for seconds on 500 images
# has not settled on one explanation), which is why the test needs its
# controls: a number means something only next to what it would be by
# chance.
#
# Together: Grad-CAM passes both tests; the gradient passes model
# randomisation and, at this small scale, only partly data randomisation;
# Guided Backprop fails model randomisation, because its picture is mostly
# the image's edges seen through the first convolutions.

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 4.6), constrained_layout=True)
names = list(agreement)
titles = [registry.get(n).title for n in names]
for i, (pair, label) in enumerate([("AB", "A vs B: both true labels"), ("AR", "A vs R: true vs shuffled labels"),
                                   ("BR", "B vs R: same start, only the labels differ")]):
    means = [agreement[n][pair].mean() for n in names]
    errors = [1.96 * agreement[n][pair].std(ddof=1) / np.sqrt(len(probe)) for n in names]
    axes[0].bar(np.arange(len(names)) + (i - 1) * 0.27, means, 0.27, yerr=errors, capsize=3, label=label)
axes[0].set_xticks(range(len(names)), titles)
axes[0].set_ylabel("Spearman of |map| (mean over 100 images)")
axes[0].set_title("Data randomisation: lesson 9's network, true or shuffled labels")
axes[0].legend(fontsize=8)
for key, style in zip(result.methods, ("o-", "s-", "^-", "v-")):
    axes[1].plot(range(last + 1), result.values[key]["spearman_abs"].mean(axis=1), style, label=result.titles[key])
axes[1].axhline(0, color="grey", lw=0.8, ls="--")
axes[1].set_xticks(range(last + 1), ["original", *result.steps], rotation=45, ha="right")
axes[1].set_xlabel("layers randomised, from the logits down")
axes[1].set_ylabel("Spearman of |map| with the trained map")
axes[1].set_title("Model randomisation: vgg_cifar10, cascading (16 images)")
axes[1].legend(fontsize=8)
fig.suptitle("Which map depends on what the network learned?", fontsize=13)
fig.savefig(FIGURES / "13_two_tests.png", dpi=100)
print("wrote", FIGURES / "13_two_tests.png")
print(f"lesson ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## What to take away
#
# - A map can look convincing and still not depend on the network: test it.
#   Randomise the weights (top down) and the labels; a faithful map must
#   change.
# - Grad-CAM passes both tests here; Guided Backprop fails model
#   randomisation (it changes little until the first layers are random), as
#   Adebayo et al. found on ImageNet networks; the gradient passes model
#   randomisation but carries much of the initial weights' imprint.
# - Passing a sanity check is necessary, not sufficient: `minicnn scorecard`
#   asks the next questions (does removing what the map ranks first change
#   the decision? does it point at the right object?) for every method.
