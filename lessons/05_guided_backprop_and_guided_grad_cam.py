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
# # Lesson 5 · Guided Backprop and Guided Grad-CAM
#
# Grad-CAM (lesson 4) says *where* the evidence for a class is, but only at
# the resolution of its layer: $8 \times 8$ blobs on a $32 \times 32$
# image. Pixel-level pictures come from backpropagating all the way to the
# input. This lesson compares three ways of doing that, which differ only
# in how the gradient crosses a ReLU, and shows the paper's point: the
# sharpest of them, **Guided Backpropagation** (Springenberg et al. 2015),
# hardly depends on the class at all, and multiplying it by Grad-CAM gives
# a map that is both sharp and class-discriminative, **Guided Grad-CAM**.
#
# The test image is the Grad-CAM paper's Figure 1 at CIFAR scale: a cat
# beside a dog, $32 \times 64$ pixels, explained by the fully convolutional
# `resnet20_cifar10` (which accepts any image size).
#
# Figures go to the folder named in `FIGURES` below.

# %%
import inspect
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.gradcheck import check_function
from minicnn.inputs.preprocess import preprocess
from minicnn.layers import ReLU
from minicnn.layers.activation import RELU_RULES

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Three backward rules for one ReLU
#
# Forward, $\mathrm{out} = \max(x, 0)$. Backward, given the upstream
# gradient $G = \partial L / \partial\,\mathrm{out}$:
#
# | rule | $dx$ | passes a signal where |
# |---|---|---|
# | gradient (the true derivative) | $G \odot \mathbb{1}[x > 0]$ | the *input* was positive |
# | deconvnet (Zeiler & Fergus) | $G \odot \mathbb{1}[G > 0]$ | the *gradient* is positive |
# | guided backprop | $G \odot \mathbb{1}[x > 0] \odot \mathbb{1}[G > 0]$ | both |
#
# Only the first is a derivative. The deconvnet ignores the forward pass
# (it "un-does" the ReLU by applying a ReLU to the signal going back); the
# guided rule applies both masks, so nothing negative ever travels back
# through a ReLU. In minicnn the rule is an argument of every backward pass
# (`relu="plain" | "deconvnet" | "guided"`), never a change to the layers:

# %%
for name, rule in RELU_RULES.items():
    print(f"{name:>9}: {inspect.getsource(rule).splitlines()[-1].strip()}")

# %% [markdown]
# Springenberg et al.'s Figure 1 example, a $3 \times 3$ input and an
# upstream gradient, through all three:

# %%
x_tiny = np.array([[1.0, -1.0, 5.0], [2.0, -5.0, -7.0], [-3.0, 2.0, 4.0]])[None, None]
G_tiny = np.array([[-2.0, 3.0, -1.0], [6.0, -3.0, 1.0], [2.0, -1.0, 3.0]])[None, None]
relu = ReLU()
out_tiny, cache = relu.forward(x_tiny)
dx = {rule: relu.backward(G_tiny, cache, relu=rule)[0][0, 0] for rule in ("plain", "deconvnet", "guided")}
print("x:\n", x_tiny[0, 0], "\nReLU(x):\n", out_tiny[0, 0], "\nG:\n", G_tiny[0, 0])
for rule, d in dx.items():
    print(f"dx ({rule}):\n", d + 0.0)            # + 0.0 prints -0 as 0
assert np.array_equal(dx["plain"], [[-2, 0, -1], [6, 0, 0], [0, -1, 3]])
assert np.array_equal(dx["deconvnet"], [[0, 3, 0], [6, 0, 1], [2, 0, 3]])
assert np.array_equal(dx["guided"], [[0, 0, 0], [6, 0, 0], [0, 0, 3]])
assert np.array_equal(dx["guided"], np.minimum(dx["plain"], dx["deconvnet"]).clip(0))

# %%
fig, axes = plt.subplots(1, 5, figsize=(17, 3.6), constrained_layout=True)
panels = [(x_tiny[0, 0], "forward input x"), (G_tiny[0, 0], "upstream gradient G"),
          (dx["plain"], "gradient: G where x > 0"), (dx["deconvnet"], "deconvnet: G where G > 0"),
          (dx["guided"], "guided: G where x > 0 and G > 0")]
for ax, (data, title) in zip(axes, panels):
    im = ax.imshow(data, cmap="RdBu_r", vmin=-7, vmax=7)
    for (r, col), v in np.ndenumerate(data):
        ax.text(col, r, f"{v + 0.0:g}", ha="center", va="center", fontsize=14)
    ax.set_title(title, fontsize=11)
    ax.set_xticks(range(3))
    ax.set_yticks(range(3))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.colorbar(im, ax=axes, shrink=0.85, label="value")
fig.suptitle("One ReLU, three backward rules (the example of Springenberg et al., Figure 1)", fontsize=13)
fig.savefig(FIGURES / "05_relu_rules.png", dpi=100)
print("wrote", FIGURES / "05_relu_rules.png")

# %% [markdown]
# ## 2. The three rules through a whole network
#
# The cat|dog image and `resnet20_cifar10`'s scores for it: both animals
# are in the top three.

# %%
model = minicnn.load("resnet20_cifar10")
image = explain.cat_dog_image()                          # (32, 64, 3) uint8
x = preprocess(image, model.meta["preprocessing"])       # (1, 3, 32, 64)
logits = model.forward(x)
ranking = [model.classes[k] for k in np.argsort(-logits[0])]
print("image", image.shape, "-> x", x.shape, "; classes by score:", ranking[:4])
assert set(ranking[:3]) >= {"cat", "dog"}
CAT, DOG = model.classes.index("cat"), model.classes.index("dog")

# %% [markdown]
# A backward pass from $e_c$ to the input gives $\partial y^c / \partial x$
# with the plain rule (the *saliency* map of Simonyan et al.), and the
# deconvnet and guided pictures with the other two rules. All 10 classes at
# once: a batch of 10 copies of the image, with target $c$ for copy $c$
# (image $n$'s score depends only on image $n$, so row $n$ of the
# backward pass is that class's picture).

# %%
classes = list(range(len(model.classes)))
X10 = np.repeat(x, len(classes), axis=0)                 # (10, 3, 32, 64)
seed = explain.onehot(np.array(classes), len(classes))
by_rule = {}
for rule in ("plain", "deconvnet", "guided"):
    model.forward(X10)
    by_rule[rule] = model.backward(seed, relu=rule)      # (10, 3, 32, 64): d y^c / dx, per rule

# %% [markdown]
# Checked, not trusted. The plain rule gives a true derivative, so central
# differences must agree with it: $\big(y^c(x + h e_i) - y^c(x - h e_i)\big) / 2h$
# for a few input values $i$ (pixel and colour channel), in float64
# (`minicnn.gradcheck.check_function`). The guided picture is no
# derivative; instead, check that the library's `guided_backprop` applied
# the guided rule at *every* ReLU of the network, the ones inside the
# residual blocks included: the gradient that leaves a ReLU downwards
# (recorded at the layer that feeds it) must be
# $G \odot \mathbb{1}[A > 0] \odot \mathbb{1}[G > 0]$, from the gradient
# $G$ that reached the ReLU and its output $A$.

# %%
model64, x64 = model.astype(np.float64), x.astype(np.float64)
model64.forward(x64)
e_cat = explain.onehot(np.array([CAT]), len(classes), np.float64)
grad_cat = model64.backward(e_cat)                                      # dy^cat/dx, float64
error = check_function(model64.forward, x64, grad_cat, dout=e_cat, max_checks=12, name="dy^cat/dx")
print(f"dy^cat/dx against central differences at 12 input values: relative error {error:.1e}")
assert error < 1e-7
assert np.abs(by_rule["plain"][CAT] - grad_cat[0]).max() < 1e-4 * np.abs(grad_cat).max()   # float32 agrees

guided = explain.guided_backprop(model, X10, classes)
leaves = model.layers()
relus = [(leaves[i - 1][0], name) for i, (name, layer) in enumerate(leaves) if isinstance(layer, ReLU)]
for below, name in relus:
    G, A = model.gradients[name], model.activations[name]
    assert np.array_equal(model.gradients[below], G * (A > 0) * (G > 0)), name
inner = next(pair for pair in relus if pair[1].endswith("relu1"))
print(f"the guided rule held at all {len(relus)} ReLUs, e.g. {inner[1]} (fed by {inner[0]})")

# %% [markdown]
# ## 3. Sharp, but not class-discriminative
#
# A class-discriminative explanation should change when the class
# changes: 'cat' should light up the cat, 'dog' the dog. Measure it with
# the Pearson correlation between two classes' maps (1: the same picture
# up to scale). Grad-CAM's maps are computed for the same 10 classes.

# %%
cams = explain.gradcam(model, X10, classes)             # maps (10, 8, 16) at layer3
print("Grad-CAM layer:", cams.layer, cams.map.shape)


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def mean_pairwise(maps):
    """Mean correlation over all pairs of different classes."""
    return float(np.mean([correlation(maps[i], maps[j]) for i in classes for j in classes if i < j]))


maps = {"gradient (plain rule)": by_rule["plain"], "deconvnet": by_rule["deconvnet"],
        "guided backprop": by_rule["guided"], "Grad-CAM": cams.map}
similarity = {name: (correlation(m[CAT], m[DOG]), mean_pairwise(m)) for name, m in maps.items()}
print(f"{'method':>22}  {'cat vs dog':>10}  {'all 45 pairs of classes':>24}")
for name, (cat_dog, pairs) in similarity.items():
    print(f"{name:>22}  {cat_dog:10.2f}  {pairs:24.2f}")
assert similarity["guided backprop"][0] > 0.7 and similarity["guided backprop"][1] > 0.8
assert similarity["deconvnet"][0] > 0.7 and similarity["deconvnet"][1] > 0.6
assert similarity["Grad-CAM"][0] < 0 and similarity["Grad-CAM"][1] < 0.2

# %% [markdown]
# Guided Backprop's 'cat' and 'dog' pictures correlate at about 0.8 (the
# table's first column; asserted above 0.7), and a pair of classes does so
# on average (its second column; asserted above 0.8): the picture is mostly
# the same whichever class is asked for. The deconvnet's nearly as much (its picture is
# dominated by a checkerboard: without the forward mask, the stride-2
# convolutions' backward stamps their kernels on a regular grid). Grad-CAM's 'cat' and 'dog' maps
# are *anti*-correlated: each lights up its own animal.
#
# Why? The class enters only through the seed $e_c$ at the top. At every
# ReLU on the way down, the guided rule discards the negative part of the
# signal, so whatever the class-specific signal was, what reaches the
# lower layers is a positive combination of positive paths, and the lower
# layers turn any such signal into roughly the same thing: the edges and
# textures of the image those layers respond to. (Nie, Zhang and Patel,
# ICML 2018, show that Guided Backprop and the deconvnet essentially
# perform a partial *reconstruction of the image*.) The plain gradient
# keeps the negative signals; it is class-dependent, but noisy.

# %% [markdown]
# ## 4. Guided Grad-CAM: the product
#
# The paper's fix multiplies the two, pixel by pixel: the Grad-CAM map,
# upsampled to the input size (bilinear, half-pixel centres), times the
# Guided Backprop picture, for every colour channel:
#
# $$
# \text{Guided Grad-CAM}^c = \text{GuidedBackprop}^c \odot \mathrm{upsample}(L^c_\text{Grad-CAM})
# \qquad (3 \times H \times W).
# $$
#
# Grad-CAM supplies the *where* (which animal), Guided Backprop the *what*
# (the fine detail). By hand, and against `minicnn.explain.guided_gradcam`:

# %%
heat = cams.upsampled(x.shape[2:])                        # (10, 32, 64)
guided_gradcam = by_rule["guided"] * heat[:, None]        # (10, 3, 32, 64)
library = explain.guided_gradcam(model, X10, classes)
np.testing.assert_allclose(library.map, guided_gradcam, rtol=0, atol=1e-6)
similarity["Guided Grad-CAM"] = (correlation(guided_gradcam[CAT], guided_gradcam[DOG]),
                                 mean_pairwise(guided_gradcam))
print(f"Guided Grad-CAM: cat vs dog {similarity['Guided Grad-CAM'][0]:.2f}, "
      f"all pairs {similarity['Guided Grad-CAM'][1]:.2f}")
assert similarity["Guided Grad-CAM"][0] < 0.2

# %% [markdown]
# Where each picture puts its mass: the share of $\sum |\cdot|$ that falls on
# the left (cat) half of the image. Guided Backprop spreads over both
# animals for either class; Grad-CAM and the product separate them.

# %%
def left_share(m):
    """Share of sum |m| on the left half (the cat) of a (..., H, W) map."""
    m = np.abs(m)
    half = m.shape[-1] // 2
    return float(m[..., :half].sum() / m.sum())


share = {name: (left_share(m[CAT]), left_share(m[DOG])) for name, m in
         [("guided backprop", by_rule["guided"]), ("Grad-CAM (upsampled)", heat),
          ("Guided Grad-CAM", guided_gradcam)]}
print(f"{'method':>22}  {'cat: on cat half':>16}  {'dog: on cat half':>16}")
for name, (c, d) in share.items():
    print(f"{name:>22}  {c:16.0%}  {d:16.0%}")
assert share["Guided Grad-CAM"][0] > 0.8 and share["Guided Grad-CAM"][1] < 0.2
assert (share["Guided Grad-CAM"][0] - share["Guided Grad-CAM"][1]
        > share["guided backprop"][0] - share["guided backprop"][1])


# %% [markdown]
# The picture. A gradient image has three signed channels; to show it as
# colours, centre it on 0, scale it by its own spread and clip (zero
# gradient is mid grey). Each picture is scaled on its own, so this shows
# the *pattern*, not the size.

# %%
def gradient_picture(g):
    """(3, H, W) signed gradient -> (H, W, 3) in [0, 1]: mean 0.5, 0.1 per standard deviation."""
    g = (g - g.mean()) / (g.std() + 1e-12)
    return np.clip(0.5 + 0.1 * g, 0, 1).transpose(1, 2, 0)


columns = [("gradient", lambda c: gradient_picture(by_rule["plain"][c])),
           ("deconvnet", lambda c: gradient_picture(by_rule["deconvnet"][c])),
           ("Guided Backprop", lambda c: gradient_picture(by_rule["guided"][c])),
           ("Grad-CAM", None),
           ("Guided Grad-CAM", lambda c: gradient_picture(guided_gradcam[c]))]
fig, axes = plt.subplots(2, 1 + len(columns), figsize=(19, 5.2), constrained_layout=True)
for row, c in enumerate((CAT, DOG)):
    axes[row, 0].imshow(image, interpolation="bilinear")
    axes[row, 0].set_title(f"input; explaining '{model.classes[c]}'", fontsize=10)
    for col, (name, picture) in enumerate(columns, start=1):
        ax = axes[row, col]
        if picture is None:
            ax.imshow(image, interpolation="bilinear")
            im = ax.imshow(heat[c], cmap="jet", alpha=0.5, vmin=0, vmax=heat[[CAT, DOG]].max())
            title = f"Grad-CAM '{model.classes[c]}' ({cams.layer})"
        else:
            ax.imshow(picture(c), interpolation="bilinear")
            title = f"{name} '{model.classes[c]}'"
        ax.set_title(title, fontsize=10)
for ax in axes.flat:
    ax.set_xticks([0, 31, 63])
    ax.set_yticks([0, 31])
cax = axes[1, 4].inset_axes([0.05, -0.42, 0.9, 0.07])    # below the panel, without resizing it
fig.colorbar(im, cax=cax, orientation="horizontal", label="Grad-CAM (raw units)")
fig.suptitle("resnet20_cifar10 on cat|dog. Cat-vs-dog correlation: "
             + ", ".join(f"{n} {similarity[k][0]:+.2f}" for n, k in
                         [("gradient", "gradient (plain rule)"), ("deconvnet", "deconvnet"),
                          ("Guided Backprop", "guided backprop"), ("Grad-CAM", "Grad-CAM"),
                          ("Guided Grad-CAM", "Guided Grad-CAM")]), fontsize=12)
fig.savefig(FIGURES / "05_guided_gradcam.png", dpi=100)
print("wrote", FIGURES / "05_guided_gradcam.png")

# %% [markdown]
# And the whole table of similarities: the correlation between every pair
# of classes' pictures, for Guided Backprop and for Guided Grad-CAM.

# %%
fig, axes = plt.subplots(1, 3, figsize=(17, 6.4), constrained_layout=True)
for ax, (name, m) in zip(axes, [("Guided Backprop", by_rule["guided"]), ("Grad-CAM", cams.map),
                                ("Guided Grad-CAM", guided_gradcam)]):
    C = np.corrcoef(m.reshape(len(classes), -1))
    im = ax.imshow(C, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(classes, model.classes, rotation=90)
    ax.set_yticks(classes, model.classes)
    ax.set_xlabel("class explained")
    ax.set_ylabel("class explained")
    off = C[np.triu_indices(len(classes), 1)]
    ax.set_title(f"{name}: mean off-diagonal {off.mean():+.2f}")
fig.colorbar(im, ax=axes, shrink=0.8, label="correlation between the two classes' maps")
fig.suptitle("Does the picture change with the class? (resnet20_cifar10, cat|dog image)", fontsize=13)
fig.savefig(FIGURES / "05_class_similarity.png", dpi=100)
print("wrote", FIGURES / "05_class_similarity.png")

# %% [markdown]
# ## What to take away
#
# - Gradient, deconvnet and Guided Backprop are one backward pass with three
#   ReLU rules; only the first is a derivative.
# - Guided Backprop is sharp but nearly the same for every class (here a
#   correlation of about 0.8 between 'cat' and 'dog', and on average over
#   all pairs of classes, as printed above).
# - Grad-CAM is coarse but class-discriminative; the product, Guided
#   Grad-CAM, is both: its 'cat' picture sits on the cat, its 'dog' picture
#   on the dog.
#
# Lesson 6 looks at Grad-CAM's ancestor, CAM, and proves they agree where
# both apply.
