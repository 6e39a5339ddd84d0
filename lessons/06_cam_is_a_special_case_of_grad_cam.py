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
# # Lesson 6 · CAM is a special case of Grad-CAM
#
# Before Grad-CAM there was CAM, *Class Activation Mapping* (Zhou et al.,
# CVPR 2016). It needs no gradients at all, but it works only for networks
# of one particular shape: the last convolutional feature maps, then
# **global average pooling** (GAP), then **one** dense layer. The Grad-CAM
# paper (section 3.1) shows that on such a network Grad-CAM *is* CAM, up to
# a constant factor, and that Grad-CAM keeps working when the network has
# any other head. This lesson derives the identity, verifies it to
# rounding error on the shipped `resnet20_cifar10` (which has exactly that
# shape), and then watches CAM refuse the dense head of `vgg_cifar10` while
# Grad-CAM explains it.
#
# Figures go to the folder named in `FIGURES` below.

# %%
import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The derivation
#
# Let $A$ be the last feature maps, $K$ maps $A^k$ of $h \times w$ pixels,
# $Z = h w$. The head of a CAM network is
#
# $$
# F_k = \frac{1}{Z} \sum_{i,j} A^k_{ij} \quad \text{(global average pooling)}, \qquad
# y^c = \sum_k w^c_k F_k + b_c \quad \text{(one dense layer, } W \in \mathbb{R}^{C \times K}\text{)}.
# $$
#
# **CAM** is the dense layer's weighted sum applied at every pixel instead
# of after the pooling:
#
# $$
# M^c_{ij} = \sum_k w^c_k A^k_{ij}
# \qquad\Big(\text{so that } y^c = \tfrac{1}{Z} \textstyle\sum_{ij} M^c_{ij} + b_c\Big).
# $$
#
# **Grad-CAM** needs $\partial y^c / \partial A^k_{ij}$. By the chain rule
# through the two layers, it is the same at every pixel:
#
# $$
# \frac{\partial y^c}{\partial A^k_{ij}} = \frac{\partial y^c}{\partial F_k}\,
#     \frac{\partial F_k}{\partial A^k_{ij}} = w^c_k \cdot \frac{1}{Z}
# \quad\Longrightarrow\quad
# \alpha^c_k = \frac{1}{Z} \sum_{i,j} \frac{w^c_k}{Z} = \frac{w^c_k}{Z} .
# $$
#
# So the weighted sum of Grad-CAM, before its ReLU, is
#
# $$
# \sum_k \alpha^c_k A^k_{ij} = \frac{1}{Z} \sum_k w^c_k A^k_{ij} = \frac{M^c_{ij}}{Z},
# \qquad
# L^c_\text{Grad-CAM} = \mathrm{ReLU}\Big(\frac{M^c}{Z}\Big) = \frac{\mathrm{ReLU}(M^c)}{Z}
# \quad (Z > 0).
# $$
#
# Grad-CAM $= $ CAM $/ Z$: the same map up to a positive constant, which
# any display normalises away. (The bias $b_c$ adds the same number at every
# pixel; CAM, like the paper, leaves it out.)

# %% [markdown]
# ## 2. ResNet-20 has the CAM shape
#
# Its last stage `layer3` gives 64 maps; then `avgpool`
# (`AdaptiveAvgPool2d(1)`, i.e. GAP), `flatten` and one `Linear(64, 10)`.
# `explain.cam_head` reads that ending off the model and names the two
# layers CAM needs.

# %%
resnet = minicnn.load("resnet20_cifar10")
print("\n".join(resnet.summary().splitlines()[-7:]))
single = preprocess([load_sample(c, 0) for c in resnet.classes], resnet.meta["preprocessing"])  # (10, 3, 32, 32)
catdog = preprocess(explain.cat_dog_image(), resnet.meta["preprocessing"])                      # (1, 3, 32, 64)
resnet.forward(single)
feature_name, dense_name = explain.cam_head(resnet)
W = resnet[dense_name].params["weight"]                 # (10 classes, 64 maps)
print(f"CAM head: feature maps {feature_name!r} -> GAP -> {dense_name!r}, W {W.shape}")
assert (feature_name, dense_name) == ("layer3", "linear") and W.shape == (10, 64)

# %% [markdown]
# ## 3. The gradient is $W / Z$ at every pixel
#
# The first step of the derivation, measured: one backward pass seeded with
# $e_c$, stopped at `layer3`, for a $32 \times 32$ image ($8 \times 8$ maps,
# $Z = 64$) and for the $32 \times 64$ cat|dog image ($8 \times 16$,
# $Z = 128$: the same network, a different $Z$).

# %%
for name, x in (("32x32 airplane", single[:1]), ("32x64 cat|dog", catdog)):
    for c in (3, 5):                                     # 'cat' and 'dog'
        logits = resnet.forward(x)
        resnet.backward(explain.onehot([c], 10), stop_at=feature_name)
        dA = resnet.gradients[feature_name][0]          # (64, h, w)
        Z = dA.shape[1] * dA.shape[2]
        spread = np.ptp(dA, axis=(1, 2)).max()          # max - min over the pixels of each map
        err = np.abs(dA - W[c][:, None, None] / Z).max() / np.abs(W[c] / Z).max()
        print(f"{name}, class {resnet.classes[c]}: maps {dA.shape[1]}x{dA.shape[2]}, Z = {Z}; "
              f"max spread over pixels {spread:.1e}; max |dy/dA - W[c]/Z| / max |W[c]/Z| = {err:.1e}")
        assert spread < 1e-7 * np.abs(dA).max() and err < 1e-6

# %% [markdown]
# ## 4. Grad-CAM $=$ CAM $/ Z$
#
# Now the maps, for every class (10 explanations of each image, one batch)
# and both image sizes, in float32 and in float64 (`model.astype`).
# `explain.cam` returns the raw $M^c$ (no ReLU; its `alpha` is $w^c$);
# `explain.gradcam(..., relu=False)` returns $\sum_k \alpha_k^c A^k$.

# %%
def max_relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


classes = list(range(10))
results, kept = {}, {}
for dtype in (np.float32, np.float64):
    model = resnet.astype(dtype)
    for name, x in (("32x32 images", single[:4]), ("32x64 cat|dog", catdog)):
        X = np.repeat(x.astype(dtype), 10, axis=0)        # every image with every class
        targets = np.tile(classes, len(x))
        cam = explain.cam(model, X, targets)
        grad_cam = explain.gradcam(model, X, targets, relu=False)
        Z = cam.map.shape[1] * cam.map.shape[2]
        no_relu = max_relative_difference(grad_cam.map, cam.map / Z)
        alpha = max_relative_difference(grad_cam.alpha, cam.alpha / Z)
        with_relu = max_relative_difference(explain.gradcam(model, X, targets).map, np.maximum(cam.map, 0) / Z)
        results[np.dtype(dtype).name, name] = (no_relu, with_relu, alpha)
        if dtype == np.float32:
            kept[name] = (cam.map, grad_cam.map, Z)              # for the figure
        print(f"{np.dtype(dtype).name:>7}, {name:>13} (Z = {Z:3d}): max relative difference "
              f"without ReLU {no_relu:.1e}, with ReLU {with_relu:.1e}, alpha vs W/Z {alpha:.1e}")
for (dtype, _), errors in results.items():
    assert max(errors) < (1e-5 if dtype == "float32" else 1e-10)

# %% [markdown]
# The identity holds to the rounding error of each precision: about
# $10^{-7}$ in float32 and 0 in float64 as measured above (asserted below
# $10^{-5}$ and $10^{-10}$). (In float32 the two
# maps are computed in different orders, $\tfrac{1}{Z}\sum_{ij}$ of
# gradients against $W$ divided once by $Z$, so they round differently.)

# %% [markdown]
# ## 5. CAM cannot explain the VGG-style model; Grad-CAM can
#
# `vgg_cifar10` ends differently: `features.20` (a max pool to $4 \times 4$),
# `flatten`, then **two** dense layers with a ReLU between them. There is no
# global average pooling and no single weight $w^c_k$ per map, so $M^c$ is
# not defined. The library says so, in one line:

# %%
vgg = minicnn.load("vgg_cifar10")
x_vgg = preprocess(load_sample("cat", 18), vgg.meta["preprocessing"])
try:
    explain.cam(vgg, x_vgg)
    raise AssertionError("CAM accepted a network with a dense head")
except minicnn.MinicnnError as e:
    message = f"{type(e).__name__}: {e}"
print(message)
assert "global average pooling" in message

# %% [markdown]
# Grad-CAM needs nothing of the head but its backward pass. On this network
# its gradient is no longer constant over the pixels of a map (the max pool
# routes it, the dense layers weigh each of the 2048 positions differently,
# the ReLU switches units off), which is exactly why no fixed $w^c_k$ exists;
# $\alpha$ averages it all the same.

# %%
explained = explain.gradcam(vgg, x_vgg)
dA = vgg.gradients[explained.layer][0]                   # (128, 8, 8)
varies = np.mean([np.ptp(dA[k]) > 0 for k in range(dA.shape[0])])
print(f"Grad-CAM of vgg_cifar10: layer {explained.layer}, class '{explained.target_names[0]}', "
      f"map {explained.map.shape[1:]}; dy^c/dA varies over the pixels in {varies:.0%} of the maps")
assert explained.target_names == ["cat"] and explained.map.max() > 0 and varies > 0.9

# %% [markdown]
# ## The picture
#
# Top: CAM and Grad-CAM$\times Z$ for 'cat' and 'dog' on the cat|dog image
# (signed, before any ReLU): the same maps. Bottom left: every pixel of
# every map of section 4 (float32), Grad-CAM against CAM$/Z$, on the
# identity line. Bottom right: CAM's refusal and Grad-CAM's answer on the
# VGG-style model.

# %%
cam_all, gc_all, _ = kept["32x32 images"]              # (40, 8, 8) each
cam_cd, gc_cd, Z_cd = kept["32x64 cat|dog"]               # (10, 8, 16): one map per class
cam_cd, gc_cd = cam_cd[[3, 5]], gc_cd[[3, 5]]             # 'cat' and 'dog'

fig = plt.figure(figsize=(17, 8.6), constrained_layout=True)
top, bottom = fig.subfigures(2, 1, height_ratios=[0.75, 1.25])
axes = top.subplots(1, 5, gridspec_kw={"width_ratios": [1.1, 1, 1, 1, 1]})
axes[0].imshow(explain.cat_dog_image(), interpolation="bilinear")
axes[0].set_title("input (64 wide x 32 high)")
lim = np.abs(cam_cd).max()
for ax, m, title in [(axes[1], cam_cd[0], "CAM M^cat"), (axes[2], gc_cd[0] * Z_cd, "Grad-CAM x Z, 'cat'"),
                     (axes[3], cam_cd[1], "CAM M^dog"), (axes[4], gc_cd[1] * Z_cd, "Grad-CAM x Z, 'dog'")]:
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"{title} ({m.shape[0]}x{m.shape[1]})")
for ax in axes:
    ax.set_xlabel("column")
    ax.set_ylabel("row")
top.colorbar(im, ax=axes[1:], shrink=0.8, label="map value (before ReLU)")
top.suptitle(f"resnet20_cifar10, layer3: CAM and Grad-CAM x Z (Z = {Z_cd}) are the same map")

left, middle, right = bottom.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1]})
ends = [cam_all.min() / 64, cam_all.max() / 64]
left.scatter((cam_all / 64).ravel(), gc_all.ravel(), s=8, alpha=0.4, label="one pixel of one map")
left.plot(ends, ends, "r--", lw=1, label="identity")
left.set_xlabel("CAM / Z  (Z = 64)")
left.set_ylabel("Grad-CAM without ReLU")
left.set_title(f"{cam_all.size:,} pixels, 4 images x 10 classes:\nmax relative difference "
               f"{max_relative_difference(gc_all, cam_all / 64):.0e}", fontsize=11)
left.legend(loc="upper left")
middle.imshow(load_sample("cat", 18), interpolation="bilinear")
heat = explained.upsampled((32, 32))[0]
im = middle.imshow(heat, cmap="jet", alpha=0.5, vmin=0, interpolation="bilinear")
middle.set_title(f"vgg_cifar10: Grad-CAM for '{explained.target_names[0]}' works\n(layer {explained.layer})",
                 fontsize=11)
middle.set_xlabel("column")
middle.set_ylabel("row")
bottom.colorbar(im, ax=middle, shrink=0.8, label="Grad-CAM (raw units)")
right.axis("off")
right.set_title("vgg_cifar10: CAM does not apply", fontsize=11)
right.text(0.0, 0.9, ">>> explain.cam(vgg_cifar10, x)\n" + textwrap.fill(message, 46), fontsize=10, va="top",
           family="monospace", transform=right.transAxes)
fig.savefig(FIGURES / "06_cam_vs_gradcam.png", dpi=100)
print("wrote", FIGURES / "06_cam_vs_gradcam.png")

# %% [markdown]
# ## What to take away
#
# - On a network ending in GAP and one dense layer,
#   $\partial y^c / \partial A^k_{ij} = w^c_k / Z$ at every pixel, so
#   $\alpha^c_k = w^c_k / Z$ and Grad-CAM $= \mathrm{ReLU}(M^c) / Z$: CAM up
#   to a constant, verified here to rounding error: about $10^{-7}$ in
#   float32 and 0 in float64 measured (asserted below $10^{-5}$ and
#   $10^{-10}$).
# - CAM reads the weights of that one dense layer; with any other head
#   (several dense layers, a ReLU, no GAP) those weights do not exist, and
#   CAM does not apply. Grad-CAM only needs a backward pass, so it applies
#   to any differentiable head.
#
# Lesson 7 compares Grad-CAM with an explanation that uses no gradients at
# all: covering parts of the image and watching the score.
