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
# # Lesson 7 · Occlusion and counterfactuals
#
# Grad-CAM reads the network's gradient, a *local* statement: how $y^c$
# would change for an infinitesimal change of $A$. Does it agree with what
# actually happens when part of the image is taken away? The oldest way to
# ask is **occlusion** (Zeiler and Fergus, ECCV 2014): cover a patch, run
# the network again, see how far the score falls. No gradients, just many
# forward passes. The Grad-CAM paper uses the agreement between the two, a
# **rank correlation**, as its measure of how *faithful* an explanation is
# to the model. This lesson computes it on the shipped images.
#
# The second half turns Grad-CAM around: the **counterfactual** map shows
# the regions whose removal would make the network *more* sure of a class,
# and on the cat|dog image we check by removing them.
#
# Figures go to the folder named in `FIGURES` below.

# %%
import inspect
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import spearmanr

import minicnn
from minicnn import explain
from minicnn.inputs.preprocess import deprocess, preprocess
from minicnn.inputs.samples import load_sample

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The occlusion map
#
# For a patch of $p \times p$ pixels with its top-left corner at $(r, s)$,
#
# $$
# \text{drop}^c(r, s) = y^c(x) - y^c\big(x \text{ with } x[:, r{:}r{+}p,\; s{:}s{+}p] \text{ replaced by the fill}\big),
# $$
#
# with $y^c$ the pre-softmax score, as in Grad-CAM. A large positive drop:
# the patch held evidence for $c$; a negative drop: it held evidence
# against. The fill here is 0 in the model's input units, that is the
# colour the preprocessing subtracts, $\mu = (0.485, 0.456, 0.406)$ (a
# neutral grey-brown; these models use the ImageNet mean and standard
# deviation).
# Patches slide with a stride; a pixel's value in the map is the mean drop
# of all the patches that cover it. We use $8 \times 8$ patches with stride
# 4 on $32 \times 32$ images: 49 positions, so 49 forward passes per image,
# batched.

# %%
vgg = minicnn.load("vgg_cifar10")
names = vgg.classes
images = [load_sample(c, 0) for c in names]             # the first shipped image of each class
x = preprocess(images, vgg.meta["preprocessing"])        # (10, 3, 32, 32)
occ = explain.occlusion(vgg, x, size=8, stride=4, progress=False)
print(f"patch {occ.size}, stride {occ.stride}, positions {occ.grid.shape[1:]} (rows {occ.rows.tolist()}), "
      f"map {occ.map.shape}")
print("explained classes:", occ.target_names)
print("fill 0 is the colour", deprocess(np.zeros((3, 1, 1), np.float32), vgg.meta["preprocessing"])[0, 0])
assert np.allclose(deprocess(np.zeros((3, 1, 1)), vgg.meta["preprocessing"])[0, 0], [0.485, 0.456, 0.406])
assert occ.target_names == names                         # each image's top-1 class is its true class

# %% [markdown]
# By hand, for one image and one patch position, and for one pixel of
# the map:

# %%
i, a, b = 5, 3, 2                                        # the dog; patch at rows[3], cols[2]
r, s = occ.rows[a], occ.cols[b]
covered = x[i:i + 1].copy()
covered[:, :, r:r + 8, s:s + 8] = 0.0
c = occ.targets[i]
drop = vgg.forward(x[i:i + 1])[0, c] - vgg.forward(covered)[0, c]
print(f"{names[i]} image, patch at ({r}, {s}): y^c {vgg.forward(x[i:i + 1])[0, c]:.3f} -> "
      f"{vgg.forward(covered)[0, c]:.3f}, drop {drop:.4f}; library grid {occ.grid[i, a, b]:.4f}")
assert abs(drop - occ.grid[i, a, b]) < 1e-4

py, px = 14, 9                                           # a pixel, and the patches that cover it
over = [(aa, bb) for aa, rr in enumerate(occ.rows) for bb, ss in enumerate(occ.cols)
        if rr <= py < rr + 8 and ss <= px < ss + 8]
print(f"pixel ({py}, {px}) is covered by {len(over)} patches; mean drop "
      f"{np.mean([occ.grid[i, aa, bb] for aa, bb in over]):.4f}, library map {occ.map[i, py, px]:.4f}")
assert abs(np.mean([occ.grid[i, aa, bb] for aa, bb in over]) - occ.map[i, py, px]) < 1e-5

# %% [markdown]
# ## 2. Occlusion beside Grad-CAM: the rank correlation
#
# The two maps are in different units (score drop against gradient-weighted
# activation) and Grad-CAM is zero wherever its ReLU cut, so the paper
# compares their **rankings** of the pixels: Spearman's rank correlation
# $\rho$, the Pearson correlation of the two maps' pixel ranks (1: the same
# order, 0: unrelated, $-1$: reversed). Grad-CAM is upsampled to
# $32 \times 32$ first.

# %%
cams = explain.gradcam(vgg, x)                           # top-1 class, features.19
heat = cams.upsampled((32, 32))                          # (10, 32, 32)
rho = np.array([spearmanr(occ.map[k].ravel(), heat[k].ravel()).statistic for k in range(len(names))])
for name, value in zip(names, rho):
    print(f"{name:>11}: Spearman rho(occlusion, Grad-CAM) = {value:+.2f}")
print(f"mean {rho.mean():+.2f}; positive for {np.sum(rho > 0)} of {len(rho)} images")
assert np.all(rho > 0) and abs(rho.mean() - 0.42) < 0.05                  # positive for all ten; mean about 0.42

# %% [markdown]
# Positive everywhere, around 0.4 on average: where covering the image
# hurts the score, Grad-CAM tends to be high. Two controls keep us honest.
#
# *A map that knows nothing.* CIFAR-10 objects sit in the middle of the
# frame, and covering the middle hurts most. A fixed map that only says
# "the centre matters" (minus the distance from the centre) gets about the
# same correlation with occlusion. So this statistic, on these images,
# mostly measures whether a map finds the object.
#
# *The wrong class.* What the centre map cannot do is depend on the class.
# Grad-CAM of each image's **runner-up** class ranks the pixels quite
# differently from the occlusion map of the top-1 class: the agreement
# above is specific to the class being explained.

# %%
rows, cols = np.mgrid[:32, :32]
centre = -np.hypot(rows - 15.5, cols - 15.5)             # high in the middle
rho_centre = np.array([spearmanr(occ.map[k].ravel(), centre.ravel()).statistic for k in range(len(names))])
runner_up = np.argsort(-cams.logits, axis=1)[:, 1]
heat_runner_up = explain.gradcam(vgg, x, list(runner_up)).upsampled((32, 32))
rho_runner_up = np.array([spearmanr(occ.map[k].ravel(), heat_runner_up[k].ravel()).statistic
                          for k in range(len(names))])
print(f"mean rho with occlusion: Grad-CAM (top-1) {rho.mean():+.2f}, centre prior {rho_centre.mean():+.2f}, "
      f"Grad-CAM of the runner-up class {rho_runner_up.mean():+.2f}")
assert rho.mean() > rho_runner_up.mean() + 0.15
assert abs(rho.mean() - rho_centre.mean()) < 0.15
assert abs(rho_centre.mean() - 0.45) < 0.05 and abs(rho_runner_up.mean() - 0.12) < 0.05     # as measured

# %%
fig, axes = plt.subplots(3, len(names), figsize=(19, 6.6), constrained_layout=True)
for k, name in enumerate(names):
    axes[0, k].imshow(images[k], interpolation="bilinear")
    axes[0, k].set_title(name, fontsize=11)
    lim = np.abs(occ.map[k]).max()
    im_occ = axes[1, k].imshow(occ.map[k] / lim, cmap="RdBu_r", vmin=-1, vmax=1)
    axes[1, k].set_title(f"max drop {lim:.1f}", fontsize=9)
    axes[2, k].imshow(images[k], interpolation="bilinear")
    im_cam = axes[2, k].imshow(heat[k] / heat[k].max(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    axes[2, k].set_title(f"rho = {rho[k]:+.2f}", fontsize=10)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("input", fontsize=11)
axes[1, 0].set_ylabel("occlusion\n(8x8, stride 4)", fontsize=11)
axes[2, 0].set_ylabel(f"Grad-CAM\n({cams.layer})", fontsize=11)
fig.colorbar(im_occ, ax=axes[1, :], shrink=0.9, pad=0.01, label="drop / max |drop|", ticks=[-1, 0, 1])
fig.colorbar(im_cam, ax=axes[2, :], shrink=0.9, pad=0.01, label="Grad-CAM / its max")
fig.suptitle(f"vgg_cifar10: occlusion (red: covering lowers y^c, blue: raises it) beside Grad-CAM; "
             f"Spearman rho, mean {rho.mean():+.2f} (centre prior {rho_centre.mean():+.2f}, "
             f"runner-up class {rho_runner_up.mean():+.2f})", fontsize=12)
fig.savefig(FIGURES / "07_occlusion_vs_gradcam.png", dpi=100)
print("wrote", FIGURES / "07_occlusion_vs_gradcam.png")

# %% [markdown]
# ## 3. Counterfactual explanations
#
# Grad-CAM keeps the feature maps whose increase would raise $y^c$. The
# paper's counterfactual map keeps the opposite: negate the gradient,
#
# $$
# \alpha^c_k = \frac{1}{Z} \sum_{i,j} -\frac{\partial y^c}{\partial A^k_{ij}}, \qquad
# L^c_\text{counterfactual} = \mathrm{ReLU}\Big(\sum_k \alpha^c_k A^k\Big),
# $$
#
# the regions that speak *against* $c$: remove them and the network should
# become more sure of $c$. It is the part of Grad-CAM's weighted sum that
# Grad-CAM's ReLU throws away (lesson 4), as the library's code shows:

# %%
print(inspect.getsource(explain.counterfactual))
resnet = minicnn.load("resnet20_cifar10")
cat_dog = explain.cat_dog_image()
xc = preprocess(cat_dog, resnet.meta["preprocessing"])  # (1, 3, 32, 64)
pair = np.repeat(xc, 2, axis=0)                          # the image twice: explain 'cat' and 'dog'
targets = ["cat", "dog"]
grad_cam = explain.gradcam(resnet, pair, targets)
counter = explain.counterfactual(resnet, pair, targets)
signed = explain.gradcam(resnet, pair, targets, relu=False).map
np.testing.assert_allclose(grad_cam.map - counter.map, signed, rtol=0, atol=1e-6)  # ReLU(S) - ReLU(-S) = S

# %% [markdown]
# Where does each map put its mass? Left half: the cat; right half: the dog.

# %%
def left_share(m):
    return float(m[..., : m.shape[-1] // 2].sum() / m.sum())


for k, target in enumerate(targets):
    print(f"'{target}': Grad-CAM {left_share(grad_cam.map[k]):.0%} on the cat half, "
          f"counterfactual {left_share(counter.map[k]):.0%} on the cat half")
assert left_share(grad_cam.map[0]) > 0.7 and left_share(counter.map[0]) < 0.05   # 'cat' (2% measured)
assert left_share(grad_cam.map[1]) < 0.3 and left_share(counter.map[1]) > 0.8    # 'dog' (86% measured)

# %% [markdown]
# The counterfactual for 'cat' lies on the dog, the counterfactual for
# 'dog' on the cat. Now the test the definition promises: cover (fill 0)
# the pixels where each upsampled map is above half its maximum, and watch
# the score. Covering the Grad-CAM region should lower $y^c$; covering the
# counterfactual region should *raise* it.

# %%
def score_after_covering(x, heat, c):
    """y^c with the pixels where ``heat`` (H, W) exceeds half its maximum set to 0 (the colour mu)."""
    covered = x.copy()
    covered[0][:, heat > 0.5 * heat.max()] = 0.0
    return float(resnet.forward(covered)[0, c]), int(np.sum(heat > 0.5 * heat.max()))


base = resnet.forward(xc)[0]
covering = {}
for k, target in enumerate(targets):
    c = resnet.classes.index(target)
    covering[target] = {"original": (float(base[c]), 0),
                        "Grad-CAM region covered": score_after_covering(xc, grad_cam.upsampled((32, 64))[k], c),
                        "counterfactual region covered": score_after_covering(xc, counter.upsampled((32, 64))[k], c)}
    for what, (score, pixels) in covering[target].items():
        print(f"y^{target:3s} {what:>30}: {score:6.2f}" + (f"  ({pixels} pixels covered)" if pixels else ""))
# original, Grad-CAM covered, counterfactual covered
measured = {"cat": (7.41, 3.67, 8.48), "dog": (6.92, -0.14, 7.55)}
for target in targets:
    y = {what: score for what, (score, _) in covering[target].items()}
    assert y["Grad-CAM region covered"] < y["original"] - 2 < y["original"] < y["counterfactual region covered"]
    assert np.allclose(list(y.values()), measured[target], atol=0.05), (target, y)

# %% [markdown]
# Both directions hold: take away what Grad-CAM points at and the score
# falls by several units; take away what the counterfactual points at (the
# other animal) and the score rises. Occlusion sees the same thing from the
# outside: its map for 'cat' is positive on the cat and negative on the dog.

# %%
occ_cd = explain.occlusion(resnet, pair, targets, size=8, stride=4, progress=False)
rho_cd = [spearmanr(occ_cd.map[k].ravel(), grad_cam.upsampled((32, 64))[k].ravel()).statistic for k in range(2)]
for k, target in enumerate(targets):
    m = occ_cd.map[k]
    print(f"'{target}' occlusion: mean drop {m[:, :32].mean():+.2f} on the cat half, {m[:, 32:].mean():+.2f} "
          f"on the dog half; rho with Grad-CAM {rho_cd[k]:+.2f}")
assert occ_cd.map[0][:, :32].mean() > 0 > occ_cd.map[0][:, 32:].mean()          # 'cat'
assert occ_cd.map[1][:, 32:].mean() > occ_cd.map[1][:, :32].mean()              # 'dog'

# %%
fig, axes = plt.subplots(2, 4, figsize=(17, 4.6), constrained_layout=True)
for k, target in enumerate(targets):
    y = {what: score for what, (score, _) in covering[target].items()}
    axes[k, 0].imshow(cat_dog, interpolation="bilinear")
    axes[k, 0].set_title(f"input; explaining '{target}' (y = {y['original']:.2f})", fontsize=10)
    for col, (result, name, key) in enumerate([(grad_cam, "Grad-CAM", "Grad-CAM region covered"),
                                               (counter, "counterfactual", "counterfactual region covered")],
                                              start=1):
        up = result.upsampled((32, 64))[k]
        axes[k, col].imshow(cat_dog, interpolation="bilinear")
        im = axes[k, col].imshow(up, cmap="jet", alpha=0.5, vmin=0, vmax=grad_cam.upsampled((32, 64)).max())
        axes[k, col].contour(up > 0.5 * up.max(), levels=[0.5], colors="white", linewidths=1.5)
        axes[k, col].set_title(f"{name} '{target}': cover inside the line -> y = {y[key]:.2f}", fontsize=10)
    lim = np.abs(occ_cd.map).max()
    im_occ = axes[k, 3].imshow(occ_cd.map[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[k, 3].set_title(f"occlusion '{target}' (rho with Grad-CAM {rho_cd[k]:+.2f})", fontsize=10)
for ax in axes.flat:
    ax.set_xticks([0, 31, 63])
    ax.set_yticks([0, 31])
fig.colorbar(im, ax=axes[:, 1:3], shrink=0.8, label="map value (raw units)")
fig.colorbar(im_occ, ax=axes[:, 3], shrink=0.8, label="score drop")
fig.suptitle("resnet20_cifar10 on cat|dog: Grad-CAM, its counterfactual, and occlusion", fontsize=13)
fig.savefig(FIGURES / "07_counterfactual.png", dpi=100)
print("wrote", FIGURES / "07_counterfactual.png")

# %% [markdown]
# ## What to take away
#
# - Occlusion needs only forward passes: cover, re-score, subtract. Its map
#   and Grad-CAM's rank the pixels alike (Spearman $\rho \approx 0.4$ on the
#   shipped images), and the agreement is class-specific, but on centred
#   CIFAR objects a plain "the middle matters" map agrees about as well.
# - The counterfactual map is Grad-CAM with the gradient negated: the
#   regions against $c$. On cat|dog each animal is the other's
#   counterfactual, and covering it raises the score, as the definition
#   promises.
#
# Lesson 8 asks which layer to explain: Grad-CAM at every stage of the
# network.
