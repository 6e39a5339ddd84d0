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
# # Lesson 15 · Fooling the network
#
# Lesson 14 climbed the gradient at the input to make the network *more* sure of a
# class. Walk the other way from a real image, and a change no person can see makes
# the network certain of something else: an **adversarial example** (Szegedy et al.
# 2014). This lesson derives the fast gradient sign method (FGSM, Goodfellow, Shlens
# and Szegedy 2015) from the linear view of the network, builds projected gradient
# descent (PGD, Madry et al. 2018) on it, measures how often each fools the two
# shipped CIFAR-10 models as the budget $\varepsilon$ grows, and asks what Grad-CAM
# says about a fooled image.
#
# Budgets are in the image's pixel units: $\varepsilon = 8/255$ lets every channel of
# every pixel move by at most 8 of its 256 levels, $\lVert \delta \rVert_\infty \le \varepsilon$.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.inputs.images import load_image
from minicnn.inputs.samples import load_sample, sample_images
from minicnn.synthesis import ClassScore, fgsm, loss_gradient, pgd
from minicnn.synthesis.visualise import normalisation

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

resnet = minicnn.load("resnet20_cifar10")
mean, std = normalisation(resnet)                       # x = (p - mean) / std, p in [0, 1]
cat = (load_sample("cat", 0).transpose(2, 0, 1)[None] / 255).astype(np.float32)   # (1, 3, 32, 32)
CAT = resnet.classes.index("cat")


def net_input(p):
    return ((p - mean) / std).astype(p.dtype)


# %% [markdown]
# ## 1. The linear view
#
# Near an image $p$, the score is nearly linear: $y(p + \delta) \approx y(p) + g \cdot \delta$
# with $g = \partial y / \partial p$. Over the box $\lVert\delta\rVert_\infty \le \varepsilon$
# the linear term is most negative at $\delta = -\varepsilon\, \mathrm{sign}(g)$, where
# it is $-\varepsilon \lVert g \rVert_1$. A sum of $n = 3 \cdot 32 \cdot 32 = 3072$ small
# terms, all pushed the same way: it grows with $n$, while a random $\pm\varepsilon$
# change moves $y$ by about $\varepsilon \lVert g \rVert_2$, up to $\sqrt{n} \approx 55$
# times less. A ReLU network is piecewise linear, so for small $\varepsilon$ the
# prediction is nearly exact. On ResNet-20's cat, in float64:

# %%
model64 = resnet.astype(np.float64)
p64 = cat.astype(np.float64)
J, dx = ClassScore(CAT).value_and_grad(model64, net_input(p64))
g = dx / std
y0 = float(J[0])
random_sign = np.sign(np.random.default_rng(0).standard_normal(p64.shape))
print(f"y^cat = {y0:.2f};  |g|_1 / |g|_2 = {np.abs(g).sum() / np.linalg.norm(g):.1f} (at most sqrt(n) = 55.4)")
print(" eps      predicted -eps|g|_1   actual change   random signs")
changes = {}
for eps in (0.01 / 255, 0.1 / 255, 1 / 255, 4 / 255):
    actual = float(model64.forward(net_input(p64 - eps * np.sign(g)))[0, CAT]) - y0
    rnd = float(model64.forward(net_input(p64 + eps * random_sign))[0, CAT]) - y0
    changes[eps] = (-eps * np.abs(g).sum(), actual, rnd)
    print(f" {eps * 255:4.2f}/255  {-eps * np.abs(g).sum():18.3f}  {actual:14.3f}  {rnd:13.3f}")
predicted, actual, rnd = changes[0.1 / 255]
assert abs(actual - predicted) < 0.05 * abs(predicted)          # linear to within 5% at 0.1/255
assert abs(rnd) < 0.2 * abs(predicted)                          # a random direction barely moves it
assert changes[1 / 255][1] < -5                                 # 1/255 already takes 5 off y^cat
assert changes[4 / 255][1] > changes[4 / 255][0] / 2            # far out, the network bends: less than linear

# %% [markdown]
# ## 2. FGSM
#
# For a classifier the quantity to raise is the cross-entropy of the true label $y$,
# $L = -\log \mathrm{softmax}(f(x))_y$, whose gradient at the logits is
# $\mathrm{softmax} - e_y$, and one linear step of the box gives
#
# $$ p' = \mathrm{clip}_{[0,1]}\big(p + \varepsilon\, \mathrm{sign}(\nabla_p L(p, y))\big) . $$
#
# A targeted attack lowers the loss of a chosen class $t$ instead: $p - \varepsilon\,
# \mathrm{sign}(\nabla_p L(p, t))$. By hand, then with `minicnn.synthesis.fgsm`
# (tests/test_synthesis_adversarial.py checks it against PyTorch's):

# %%
eps = 2 / 255
logits, grad = loss_gradient(resnet, cat, np.array([CAT]))
by_hand = np.clip(cat + eps * np.sign(grad), 0, 1)
attack = fgsm(resnet, cat, "2/255")
assert np.array_equal(attack.adversarial, by_hand.astype(np.float32))


def top(logits):
    k = int(np.argmax(logits))
    z = np.exp(logits - logits.max())
    return f"{resnet.classes[k]} (p = {z[k] / z.sum():.3f})"


print("before:", top(attack.logits_before[0]), "  after FGSM at 2/255:", top(attack.logits_after[0]))
assert attack.success[0]

# %% [markdown]
# ## 3. PGD
#
# FGSM trusts the linear view for the whole step. PGD takes several smaller steps
# $\alpha\, \mathrm{sign}(g)$ (here $\alpha = 2.5\varepsilon/\text{steps}$), each followed by
# the projection back into the box around $p$ and into $[0, 1]$,
# $p_{k+1} = \mathrm{clip}(p_k + \alpha\,\mathrm{sign}(g_k),\ \max(p - \varepsilon, 0),\ \min(p + \varepsilon, 1))$,
# from a random start in the box. It never leaves the box:

# %%
strong = pgd(resnet, cat, 1 / 255, steps=5, seed=0)
weak = fgsm(resnet, cat, 1 / 255)
change = np.abs(strong.adversarial.astype(np.float64) - cat)


def loss(logits, c=CAT):
    """The cross-entropy -log softmax(logits)_c, the quantity both attacks raise."""
    z = logits.astype(np.float64)
    return float(np.log(np.exp(z - z.max()).sum()) + z.max() - z[c])


print(f"PGD at 1/255: largest change {change.max() * 255:.3f}/255; cross-entropy of 'cat' "
      f"{loss(strong.logits_before[0]):.4f} -> {loss(strong.logits_after[0]):.2f} (FGSM: "
      f"{loss(weak.logits_after[0]):.2f});  now {top(strong.logits_after[0])}")
assert change.max() <= 1 / 255 + 1e-6 and strong.adversarial.min() >= 0 and strong.adversarial.max() <= 1
assert loss(strong.logits_after[0]) > loss(weak.logits_after[0])
targeted = pgd(resnet, cat, 2 / 255, steps=5, target=resnet.classes.index("truck"))
print("targeted at 'truck', 2/255:", top(targeted.logits_after[0]))
assert targeted.success[0]

# %% [markdown]
# ## 4. Success rate against $\varepsilon$
#
# On the first ten shipped test images of each class (100 images), the share of the
# correctly classified ones whose answer the attack changes, for both shipped models
# (PGD with 3 steps). Measured: at 8/255 PGD changes 99% (VGG) and 100% (ResNet-20) of
# the answers, FGSM 77% and 93%; ResNet-20 is the more fragile (PGD at 1/255: 90% against
# 34%). FGSM's rate need not grow with $\varepsilon$ (ResNet-20: 95%, 95%, 93% at 2, 4 and
# 8/255): one long step along the sign can overshoot past a region where the answer was
# wrong, which PGD's short projected steps do not.

# %%
paths = [p for c in sorted({c for _, c in sample_images()}) for p, _ in sample_images(c)[:10]]
pixels = np.stack([load_image(p) for p in paths]).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
truth_names = [Path(p).parent.name for p in paths]
EPSILONS = [0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 8 / 255]
rates = {}
for name in ("vgg_cifar10", "resnet20_cifar10"):
    model = minicnn.load(name)
    truth = np.array([model.classes.index(c) for c in truth_names])
    for method in ("fgsm", "pgd"):
        row = []
        for e in EPSILONS:
            if method == "fgsm":
                a = fgsm(model, pixels, e, labels=truth)
            else:
                a = pgd(model, pixels, e, steps=3, labels=truth)
            right = a.logits_before.argmax(1) == truth
            row.append(float((a.logits_after.argmax(1)[right] != truth[right]).mean()))
        rates[name, method] = row
    print(f"{name}: clean accuracy {right.mean():.0%}")
print("success rate      " + "".join(f"{e * 255:>8.1f}/255" for e in EPSILONS))
for (name, method), row in rates.items():
    print(f"{name:17s} {method:4s}" + "".join(f"{r:>13.0%}" for r in row))
for name in ("vgg_cifar10", "resnet20_cifar10"):
    f, p = rates[name, "fgsm"], rates[name, "pgd"]
    assert p[-1] >= 0.95 and f[-1] > 0.7                         # 8/255: PGD fools (nearly) all, FGSM most
    assert all(pi >= fi - 0.03 for fi, pi in zip(f, p, strict=True))          # PGD at least as strong, up to noise
    assert p == sorted(p)                                        # a larger box never helps the network (PGD)
assert rates["resnet20_cifar10", "pgd"][1] > rates["vgg_cifar10", "pgd"][1]   # ResNet-20 is the more fragile

fig, ax = plt.subplots(figsize=(6, 4))
for (name, method), row in rates.items():
    ax.plot([e * 255 for e in EPSILONS], row, "o-" if method == "pgd" else "s--", label=f"{name}, {method}")
ax.set_xscale("log", base=2)
ax.set_xlabel("epsilon (in 1/255 of the pixel range)")
ax.set_ylabel("share of correct answers changed")
ax.set_title("Attack success rate against epsilon (100 shipped test images)")
ax.legend()
fig.tight_layout()
path = FIGURES / "15_success_rate.png"
fig.savefig(path, dpi=100)
print(path)

# %% [markdown]
# ## 5. What Grad-CAM says about a fooled image
#
# PGD at 2/255 turns ResNet-20's cat into another class. Grad-CAM (at `layer3`) and
# Guided Backprop for the true class and for the new one, before and after: the map
# of the new class on the fooled image lies where the cat's map lay on the clean one.
# Grad-CAM does not reveal the attack; it points at the cat and calls it something else.

# %%
fooled = pgd(resnet, cat, 2 / 255, steps=5)
new = int(fooled.logits_after[0].argmax())
x_before, x_after = net_input(cat), net_input(fooled.adversarial)


def correlation(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


maps = {(when, c): explain.gradcam(resnet, x, c).map[0] for when, x in (("before", x_before), ("after", x_after))
        for c in (CAT, new)}
guided = {(when, c): explain.guided_backprop(resnet, x, c).map[0] for when, x in (("before", x_before),
                                                                                   ("after", x_after))
          for c in (CAT, new)}
same_place = correlation(maps["before", CAT], maps["after", new])
print(f"cat -> {resnet.classes[new]}: correlation of Grad-CAM('cat', clean) with Grad-CAM('{resnet.classes[new]}', "
      f"fooled) = {same_place:.2f}; of Grad-CAM('cat') before and after = "
      f"{correlation(maps['before', CAT], maps['after', CAT]):.2f}")
assert fooled.success[0] and same_place > 0.3

fig, axes = plt.subplots(2, 6, figsize=(15, 5.4))
for row, (when, p, x) in enumerate((("clean", cat, x_before), ("fooled", fooled.adversarial, x_after))):
    key = "before" if row == 0 else "after"
    logits = resnet.forward(x)[0]
    axes[row, 0].imshow(p[0].transpose(1, 2, 0))
    axes[row, 0].set_title(f"{when}: {top(logits)}", fontsize=9)
    d = (fooled.adversarial - cat)[0].transpose(1, 2, 0) * 255 if row else np.zeros((32, 32, 3))
    im = axes[row, 1].imshow(d.mean(axis=2), cmap="RdBu_r", vmin=-2, vmax=2)
    axes[row, 1].set_title("change (mean over RGB, /255)", fontsize=9)
    fig.colorbar(im, ax=axes[row, 1], fraction=0.046)
    for col, c in ((2, CAT), (3, new)):
        im = axes[row, col].imshow(maps[key, c], cmap="jet")
        axes[row, col].set_title(f"Grad-CAM '{resnet.classes[c]}'\ny = {logits[c]:.1f}", fontsize=9)
        fig.colorbar(im, ax=axes[row, col], fraction=0.046)
    for col, c in ((4, CAT), (5, new)):
        gb = guided[key, c].transpose(1, 2, 0)
        axes[row, col].imshow(np.clip(0.5 + gb / (2 * np.abs(gb).max()), 0, 1))
        axes[row, col].set_title(f"Guided Backprop '{resnet.classes[c]}'", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle(f"resnet20_cifar10: a cat fooled by PGD at 2/255 into '{resnet.classes[new]}', explained before "
             "and after")
fig.tight_layout()
path = FIGURES / "15_fooled_explained.png"
fig.savefig(path, dpi=100)
print(path)
