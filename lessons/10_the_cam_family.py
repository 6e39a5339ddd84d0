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
# # Lesson 10 · The CAM family
#
# Grad-CAM (lesson 4) weighs each feature map $A^k$ of a layer by the mean of
# its gradient and adds them up. Its relatives change only that weighting.
# With $A$ the layer's output ($K$ maps of $h \times w$), $g = \partial y^c /
# \partial A$ from one backward pass, and $S_k = \sum_{ab} A^k_{ab}$:
#
# | method | weight of map $k$ (or of each position) | passes per image |
# |---|---|---|
# | Grad-CAM | $w_k = \frac{1}{Z}\sum_{ij} g^k_{ij}$ | 1 forward + backward to the layer |
# | Grad-CAM++ | $w_k = \sum_{ij} a^k_{ij}\,\mathrm{ReLU}(g^k_{ij})$, $a^k_{ij}=\frac{g^2}{2g^2+S_k g^3}$ | the same |
# | XGrad-CAM | $w_k = \sum_{ij} \frac{A^k_{ij}}{S_k}\, g^k_{ij}$ | the same |
# | HiResCAM | $g^k_{ij}$ itself, position by position | the same |
# | LayerCAM | $\mathrm{ReLU}(g^k_{ij})$, position by position | the same |
# | Score-CAM | $w_k=\mathrm{softmax}(f(x\odot H^k))_c$, $H^k$ = $A^k$ upsampled, scaled to $[0,1]$ | $1 + K$ forwards |
# | Ablation-CAM | $w_k = (y^c - y^c_{A^k = 0}) / y^c$ | 1 forward + $K$ forwards from the layer |
# | Eigen-CAM | first principal component of $A$ (no class at all) | 1 forward |
# | Eigen-Grad-CAM | first principal component of $g \odot A$ | 1 forward + backward |
#
# and the map is $\mathrm{ReLU}(\sum_k w_k A^k)$ (or $\mathrm{ReLU}(\sum_k
# w^k \odot A^k)$ for the position-wise ones). FullGrad, last, adds up
# gradients times biases over the whole network. This lesson derives the
# strangest formula of the table, Grad-CAM++'s, checks the assumption it rests
# on, shows where the methods must agree and where they part, and times them.
#
# Figures go to the folder named in `FIGURES` below.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

import minicnn
from minicnn import explain
from minicnn.explain import registry
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

resnet = minicnn.load("resnet20_cifar10")
vgg = minicnn.load("vgg_cifar10")
LAYER_METHODS = ["gradcam", "gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam",
                 "eigencam", "eigengradcam"]
METHODS = LAYER_METHODS + ["fullgrad"]
TITLES = {m: registry.get(m).title for m in METHODS}

# %% [markdown]
# ## 1. Grad-CAM++'s weights from the exponential score
#
# Grad-CAM++ (Chattopadhay et al., WACV 2018) asks for weights that make a
# class score $Y^c$ *exactly* a weighted sum of the maps' pixels,
#
# $$
# Y^c = \sum_k w_k \sum_{ij} A^k_{ij}, \qquad
# w_k = \sum_{ij} a^k_{ij}\, \mathrm{ReLU}\Big(\frac{\partial Y^c}{\partial A^k_{ij}}\Big).
# $$
#
# Substituting the second equation into the first and differentiating twice
# with respect to one pixel $A^k_{ij}$ (where the gradient is positive, and
# treating the $a$ as constants) gives
# $\partial^2 Y = 2 a^k_{ij}\, \partial^2 Y + a^k_{ij} \sum_{ab} A^k_{ab}\, \partial^3 Y$,
# so
#
# $$
# a^k_{ij} = \frac{\partial^2 Y^c / (\partial A^k_{ij})^2}
#   {2\, \partial^2 Y^c / (\partial A^k_{ij})^2 + \sum_{ab} A^k_{ab}\, \partial^3 Y^c / (\partial A^k_{ij})^3}
# \qquad \text{(eq. 10)}.
# $$
#
# Higher derivatives are not what a backward pass gives. The paper's trick is
# to choose $Y^c = \exp(y^c)$, with $y^c$ the logit. Then
# $\partial Y / \partial A = e^{y} g$ and
#
# $$
# \frac{\partial^2 Y}{\partial A\, \partial A^\top} = e^{y}\big(g g^\top + \nabla^2 y\big).
# $$
#
# Above the layer there are only convolutions, ReLUs, max pooling, BatchNorm
# and dense layers: $y$ is **piecewise linear** in $A$, so away from the
# kinks $\nabla^2 y = 0$, the Hessian is $e^y g g^\top$, the third derivative
# along a pixel is $e^y g^3$, and $e^y$ cancels from eq. 10:
#
# $$
# a^k_{ij} = \frac{g^2}{2 g^2 + \sum_{ab} A^k_{ab}\, g^3} \qquad \text{(eq. 19, } g = g^k_{ij}\text{)}.
# $$
#
# The assumption can be measured. Central differences of the gradient of
# $e^{y}$ along a direction $v$ give the Hessian times $v$; it should equal
# $e^y g\,(g^\top v)$. Here at `features.12` of the VGG-style model, for a cat:
# three random directions and the three pixels with the largest $|g|$, each
# moving only positive entries of $A$ (why, in a moment).

# %%
def exp_score_gradient(model, x, layer, c, A):
    """(y^c, d exp(y^c)/dA = exp(y^c) g) with A fed in at the layer."""
    y = model.forward(x, replace={layer: A})[0, c]
    model.backward(explain.onehot([c], 10, np.float64), stop_at=layer)
    return y, np.exp(y) * model.gradients[layer]


vgg64 = vgg.astype(np.float64)
x_cat = preprocess(load_sample("cat", 18), vgg.meta["preprocessing"]).astype(np.float64)
c_cat = int(vgg64.forward(x_cat).argmax())
A12 = vgg64.activations["features.12"].copy()                       # (1, 64, 16, 16)
y0, grad0 = exp_score_gradient(vgg64, x_cat, "features.12", c_cat, A12)
g12 = grad0 / np.exp(y0)
rng = np.random.default_rng(0)
moving = A12 > 0
directions = [v / np.linalg.norm(v) for v in rng.standard_normal((3, *A12.shape)) * moving]
directions += [np.eye(1, A12.size, i).reshape(A12.shape) for i in np.argsort(-np.abs(g12 * moving).ravel())[:3]]
h = 1e-4
hessian_pairs, hessian_errors = [], []
for v in directions:
    y_plus, grad_plus = exp_score_gradient(vgg64, x_cat, "features.12", c_cat, A12 + h * v)
    y_minus, grad_minus = exp_score_gradient(vgg64, x_cat, "features.12", c_cat, A12 - h * v)
    measured = (grad_plus - grad_minus) / (2 * h)                   # H v
    predicted = np.exp(y0) * g12 * np.sum(g12 * v)                  # e^y g g^T v
    hessian_pairs.append((predicted.ravel(), measured.ravel()))
    hessian_errors.append(np.abs(measured - predicted).max() / np.abs(predicted).max())
    assert abs(y_plus - 2 * y0 + y_minus) < 1e-10 * abs(y0)         # y is linear along v here
print(f"y^{vgg.classes[c_cat]} = {y0:.3f}; Hessian of exp(y) along 6 directions vs e^y g g^T v: "
      f"relative errors {', '.join(f'{e:.0e}' for e in hessian_errors)}")
assert max(hessian_errors) < 1e-6

# %% [markdown]
# **At a kink the identity breaks.** `features.12` is a ReLU output, so many
# entries are exactly 0, and the max pool after it sees windows of four
# zeros: a tie. Raise one of those zeros by $h$ and the window's maximum
# follows it; lower it and the maximum stays 0. So $y$ is not linear through
# that point: its second difference grows like $h$, not $h^2$, and its
# "Hessian" there is a jump, not $g g^\top$. The backward pass picks one side
# (PyTorch's first-maximum rule, lesson 4) and so does every gradient-weighted
# CAM. Eq. 19 is the exponential form's exact answer only *inside* a linear
# piece; it says nothing about the jumps between pieces, and with a smooth
# activation (softplus, GELU) above the layer $\nabla^2 y \neq 0$ and eq. 19
# would no longer follow from eq. 10 at all.

# %%
pooled = A12[0].reshape(64, 8, 2, 8, 2).max(axis=(2, 4))            # features.13, by hand
k, i, j = np.argwhere(pooled == 0)[0]                                 # an all-zero 2x2 window
kink = np.zeros_like(A12)
kink[0, k, 2 * i, 2 * j] = 1.0                                        # its first entry (where the gradient goes)
for step in (1e-3, 1e-4):
    y_plus, _ = exp_score_gradient(vgg64, x_cat, "features.12", c_cat, A12 + step * kink)
    y_minus, _ = exp_score_gradient(vgg64, x_cat, "features.12", c_cat, A12 - step * kink)
    second = y_plus - 2 * y0 + y_minus
    print(f"h = {step:.0e}: y(+h) - 2y + y(-h) = {second:+.2e} = {second / step:+.4f} h; "
          f"g at that entry = {g12[0, k, 2 * i, 2 * j]:+.4f}")
    assert abs(second / step - g12[0, k, 2 * i, 2 * j]) < 1e-6 and abs(second) > 1e-6 * step

# %% [markdown]
# The second difference is $g\,h$: the slope is $g$ on one side of the kink
# and $0$ on the other.
#
# Eq. 19 in code is three lines, and equals `explain.gradcam_plus_plus`. At
# ResNet-20's `layer3` the gradient is small ($|g| \sim 10^{-3}$: it is
# $W_{ck}/Z$ there, section 2), so $g^2$ is about the size of the $10^{-6}$
# pytorch-grad-cam adds to the denominator. That stabiliser moves the
# coefficients a lot; `eps=1e-6` reproduces the library, the default
# `eps=0` is the paper.

# %%
resnet64 = resnet.astype(np.float64)
image = explain.cat_dog_image()
x_cd = np.repeat(preprocess(image, resnet.meta["preprocessing"]).astype(np.float64), 2, axis=0)  # (2, 3, 32, 64)
literal = explain.gradcam_plus_plus(resnet64, x_cd, ["cat", "dog"])
A3 = resnet64.activations["layer3"]
resnet64.backward(explain.onehot(literal.targets, 10, np.float64), stop_at="layer3")
g3 = resnet64.gradients["layer3"]
S = A3.sum(axis=(2, 3), keepdims=True)
a = np.where(g3 != 0, g3**2 / (2 * g3**2 + S * g3**3), 0)             # eq. 19
w = (a * np.maximum(g3, 0)).sum(axis=(2, 3))
assert np.allclose(a, literal.a, rtol=1e-12, atol=0) and np.allclose(w, literal.alpha, rtol=1e-12, atol=0)
library = explain.gradcam_plus_plus(resnet64, x_cd, ["cat", "dog"], eps=1e-6)
change = np.abs(library.a - literal.a).max() / np.abs(literal.a).max()
print(f"layer3: median |g| = {np.median(np.abs(g3)):.1e}; eps = 1e-6 changes a by up to {change:.0%} of its "
      f"largest value and the map by {np.abs(library.map - literal.map).max() / literal.map.max():.1%}")
assert 0.3 < change < 0.4                                          # 35% measured

# %% [markdown]
# ## 2. Where the methods must agree: a GAP head
#
# ResNet-20 ends with global average pooling and one dense layer $W$:
# $y^c = \sum_k W_{ck} F_k + b_c$ with $F_k = S_k / Z$. So
# $g^k_{ij} = W_{ck}/Z$ **at every position** of map $k$ (lesson 6), and the
# algebra collapses:
#
# - HiResCAM: $\sum_k g^k \odot A^k = \sum_k \frac{W_{ck}}{Z} A^k$ = Grad-CAM.
# - XGrad-CAM: $w_k = \frac{W_{ck}}{Z}\sum_{ij} A^k_{ij}/S_k = W_{ck}/Z$ = Grad-CAM.
# - LayerCAM: $\sum_k \mathrm{ReLU}(W_{ck}/Z)\, A^k$: Grad-CAM with its negative weights dropped.
# - Grad-CAM++: $a^k_{ij} = 1/(2 + S_k W_{ck}/Z)$ at every position, so
#   $w_k = \mathrm{ReLU}(W_{ck}) / (2 + W_{ck} F_k)$.
# - Ablation-CAM: zeroing $A^k$ removes $W_{ck} F_k$ from $y^c$, so
#   $w_k = W_{ck} F_k / y^c$.
#
# All five, in float64 on the cat|dog image, for 'cat' and 'dog':

# %%
def max_relative(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


gc = explain.gradcam(resnet64, x_cd, ["cat", "dog"], relu=False)
W = resnet64["linear"].params["weight"][gc.targets]                 # (2, 64)
F = A3.mean(axis=(2, 3))
y = gc.scores
agree = {
    "HiResCAM = Grad-CAM": max_relative(explain.hirescam(resnet64, x_cd, ["cat", "dog"], relu=False).map, gc.map),
    "XGrad-CAM = Grad-CAM": max_relative(explain.xgradcam(resnet64, x_cd, ["cat", "dog"], relu=False).map, gc.map),
    "LayerCAM = ReLU(w) Grad-CAM": max_relative(explain.layercam(resnet64, x_cd, ["cat", "dog"], relu=False).map,
                                                np.einsum("nk,nkij->nij", np.maximum(gc.alpha, 0), A3)),
    "Grad-CAM++ w = ReLU(W)/(2 + W F)": max_relative(literal.alpha, np.maximum(W, 0) / (2 + W * F)),
    "Ablation-CAM w = W F / y": max_relative(explain.ablationcam(resnet64, x_cd, ["cat", "dog"]).alpha,
                                             W * F / y[:, None]),
}
for claim, err in agree.items():
    print(f"{claim:34s} max relative difference {err:.0e}")
assert max(agree.values()) < 1e-10

# %% [markdown]
# ## 3. Where they part: a dense head
#
# The VGG-style model ends in a max pool and two dense layers: $g$ varies
# over positions, and each method reads that variation its own way. One
# shipped test image per class, each explained for its (correct) top-1
# class at `features.19`; how alike are the maps? Spearman's rank correlation
# between every pair of methods (maps upsampled to 32x32), averaged over the
# ten images:

# %%
x10 = preprocess([load_sample(c, 0) for c in vgg.classes], vgg.meta["preprocessing"])
vgg_results = {m: registry.get(m).run(vgg, x10, None, "features.19") for m in METHODS}
assert all((r.targets == np.arange(10)).all() for r in vgg_results.values())
up = {m: (r.map if m == "fullgrad" else r.upsampled((32, 32))) for m, r in vgg_results.items()}
rank = np.array([[np.mean([spearmanr(up[p][n].ravel(), up[q][n].ravel())[0] for n in range(10)])
                  for q in METHODS] for p in METHODS])
print(" " * 15 + " ".join(f"{TITLES[m][:6]:>6}" for m in METHODS))
for m, row in zip(METHODS, rank):
    print(f"{TITLES[m]:>15}" + " ".join(f"{v:6.2f}" for v in row))
pair = {(p, q): rank[METHODS.index(p), METHODS.index(q)] for p in METHODS for q in METHODS}
assert pair["gradcam", "hirescam"] < 0.9 and pair["gradcam", "xgradcam"] < 0.9     # equal on ResNet-20, not here
assert max(pair["eigencam", m] for m in LAYER_METHODS if m != "eigencam") < 0.8
off_diagonal = rank[~np.eye(len(METHODS), dtype=bool)]
assert abs(off_diagonal.min() - 0.2) < 0.05 and abs(off_diagonal.max() - 0.8) < 0.05     # 0.21 and 0.81 measured

# %% [markdown]
# No two methods agree closely here (the largest off-diagonal correlation is
# about 0.8), though all explain the same class of the same images.
#
# **Class discrimination.** On the cat|dog image, ResNet-20 at `layer3`, the
# share of each map's mass on the half that holds the class:

# %%
x_cd32 = x_cd.astype(np.float32)
cd_results = {m: registry.get(m).run(resnet, x_cd32, ["cat", "dog"], "layer3") for m in METHODS}
share = {}
for m, r in cd_results.items():
    half = r.map.shape[2] // 2
    share[m] = (r.map[0, :, :half].sum() / r.map[0].sum(), r.map[1, :, half:].sum() / r.map[1].sum())
    print(f"{TITLES[m]:>15}: 'cat' map {share[m][0]:4.0%} on the cat, 'dog' map {share[m][1]:4.0%} on the dog")
assert all(min(share[m]) > 0.5 for m in METHODS if m != "eigencam")
eigen = cd_results["eigencam"].map                        # one map for both classes (the two rows of the batch
assert np.allclose(eigen[0], eigen[1], rtol=1e-5, atol=1e-5 * eigen.max())   # agree to float32 rounding)
assert min(share["eigencam"]) < 0.1
assert min(share["fullgrad"]) < min(min(share[m]) for m in METHODS if m not in ("eigencam", "fullgrad"))

# %% [markdown]
# Eigen-CAM draws the first principal component of $A$, which knows nothing
# of the class: the same map for 'cat' and 'dog' (here on the dog). Every
# other method puts most of each class's map on its own animal. FullGrad,
# summing every layer's bias gradients, is the least concentrated.
#
# ## 4. What each costs
#
# Gradient methods need one forward and one backward pass stopped at the
# layer. Score-CAM runs the whole network once per map ($K = 64$ at
# `layer3`), Ablation-CAM once per map *from the layer* (`model.forward_from`:
# at `layer3` only the pooling and the dense layer remain). One cat|dog image,
# best of three runs (one for Score-CAM):

# %%
x1 = x_cd32[:1]
timings, passes = {}, {}
for m in METHODS:
    best = np.inf
    for _ in range(1 if m == "scorecam" else 3):                       # Score-CAM is long enough to time once
        start = time.perf_counter()
        r = registry.get(m).run(resnet, x1, "cat", "layer3")
        best = min(best, time.perf_counter() - start)
    timings[m] = best
    if m in ("scorecam", "ablationcam"):
        passes[m] = f"1 + {r.forwards} forwards" + (" from layer3" if m == "ablationcam" else "")
    else:
        passes[m] = {"eigencam": "1 forward", "fullgrad": "1 forward + 1 backward"}.get(m, "1 forward + backward")
    print(f"{TITLES[m]:>15}: {1000 * best:7.1f} ms   {passes[m]}")
assert cd_results["scorecam"].forwards == 2 * 64 and cd_results["ablationcam"].forwards == 2 * 64

# %% [markdown]
# Score-CAM costs tens of Grad-CAMs; Ablation-CAM's $K$ extra passes are
# cheap here because they start at `layer3` (at `layer2` they would run the
# whole third stage $K = 32$ times).
#
# ## The picture

# %%
fig = plt.figure(figsize=(20, 10.5), constrained_layout=True)
top, bottom = fig.subfigures(2, 1, height_ratios=[0.8, 1.2])
n = 7                                                                # the horse
axes = top.subplots(1, len(METHODS) + 1)
picture = load_sample(vgg.classes[n], 0)
axes[0].imshow(picture, interpolation="bilinear")
axes[0].set_title(f"input: {vgg.classes[n]}")
for ax, m in zip(axes[1:], METHODS):
    heat = up[m][n]
    ax.imshow(picture, interpolation="bilinear")
    im = ax.imshow(heat, cmap="jet", alpha=0.5, interpolation="bilinear", vmin=0)
    ax.set_title(TITLES[m], fontsize=10)
    bar = top.colorbar(im, ax=ax, orientation="horizontal", shrink=0.9, pad=0.02)
    bar.set_label(registry.get(m).value, fontsize=7)             # what the raw numbers are
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
top.suptitle(f"vgg_cifar10, features.19 (FullGrad: the input): raw maps for '{vgg.classes[n]}', each in its own units")

left, middle, right, far = bottom.subplots(1, 4, gridspec_kw={"width_ratios": [1.3, 1, 1, 1.2]})
im = left.imshow(rank, cmap="viridis", vmin=0, vmax=1)
left.set_xticks(range(len(METHODS)), [TITLES[m] for m in METHODS], rotation=60, ha="right", fontsize=8)
left.set_yticks(range(len(METHODS)), [TITLES[m] for m in METHODS], fontsize=8)
left.set_title("vgg_cifar10: mean rank correlation\nbetween methods (10 images)", fontsize=11)
bottom.colorbar(im, ax=left, shrink=0.8, label="Spearman rank correlation")
for predicted, measured in hessian_pairs:
    middle.scatter(predicted, measured, s=4, alpha=0.5)
ends = [min(p.min() for p, _ in hessian_pairs), max(p.max() for p, _ in hessian_pairs)]
middle.plot(ends, ends, "k--", lw=1, label="identity")
middle.set_xlabel("e^y g (g . v)")
middle.set_ylabel("Hessian of e^y times v, central differences")
middle.set_title(f"features.12: Hessian = e^y g g^T\n(6 directions; max error {max(hessian_errors):.0e})", fontsize=11)
middle.legend(loc="upper left")
right.scatter(literal.a.ravel(), library.a.ravel(), s=4, alpha=0.4)
right.plot([0, literal.a.max()], [0, literal.a.max()], "k--", lw=1, label="identity")
right.set_xlabel("a_ij, eq. 19 (eps = 0)")
right.set_ylabel("a_ij with eps = 1e-6 (pytorch-grad-cam)")
right.set_title("resnet20 layer3: the stabiliser moves a_ij", fontsize=11)
right.legend(loc="upper left")
order = sorted(METHODS, key=timings.get)
far.barh(range(len(order)), [1000 * timings[m] for m in order])
far.set_yticks(range(len(order)), [f"{TITLES[m]}\n{passes[m]}" for m in order], fontsize=8)
far.set_xscale("log")
far.set_xlabel("ms per cat|dog image (64 wide x 32 high)")
far.set_title("resnet20_cifar10, layer3: time per method", fontsize=11)
fig.savefig(FIGURES / "10_cam_family.png", dpi=100)
print("wrote", FIGURES / "10_cam_family.png")

# %% [markdown]
# ## What to take away
#
# - Every CAM is $\mathrm{ReLU}(\sum_k w_k A^k)$ with a different $w$ (or a
#   weight per position); the equations are short and each function in
#   `minicnn/explain/` is its equation.
# - Grad-CAM++'s eq. 19 is eq. 10 for the score $e^{y^c}$, valid because the
#   network above the layer is piecewise linear: its Hessian is $e^y g g^\top$
#   inside each linear piece (measured here to about $10^{-10}$) and jumps
#   at the kinks.
# - On a GAP + dense head, HiResCAM and XGrad-CAM *are* Grad-CAM, LayerCAM is
#   Grad-CAM without negative weights, and Grad-CAM++ and Ablation-CAM have
#   closed forms; with a dense head the methods differ (rank correlations of
#   0.2 to 0.8 on VGG).
# - Eigen-CAM ignores the class. Score-CAM and Ablation-CAM cost $K$ extra
#   forward passes; Ablation-CAM's are cheap when they resume at the layer.
