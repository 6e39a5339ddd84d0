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
# # Lesson 8 · Which layer?
#
# Grad-CAM's equations work at any convolutional layer: take its output
# $A$, backpropagate $y^c$ to it, average the gradient into $\alpha^c$,
# weight and sum. The paper, and minicnn's default, use the **last**
# convolutional feature map. This lesson computes Grad-CAM at the end of
# every stage of the same two networks and measures what changes:
#
# - **resolution**: early maps are large ($32 \times 32$), late maps small
#   ($8 \times 8$), so early maps can be sharper;
# - **semantics**: late units see most of the image and respond to object
#   parts, early units to edges and colours; so late maps should depend
#   more on the class and point more reliably at what the score depends on.
#
# Figures go to the folder named in `FIGURES` below.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample
from minicnn.layers import Conv2d, MaxPool2d

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

vgg = minicnn.load("vgg_cifar10")
resnet = minicnn.load("resnet20_cifar10")
STAGES = {"vgg_cifar10": ["features.5", "features.12", "features.19"],
          "resnet20_cifar10": ["layer1", "layer2", "layer3"]}

# %% [markdown]
# ## 1. The stages: size of the map, size of what one unit sees
#
# The last ReLU of each VGG block, and the output of each ResNet stage.
# The *receptive field* of a unit is the side of the input window it
# depends on. Walking through the convolutions and pools in order, with
# $j$ the product of the strides so far, a $k \times k$ layer adds
# $(k - 1)\, j$ pixels and then multiplies $j$ by its stride. (In the
# ResNet the residual shortcuts are shorter paths through the same stages;
# the longest path, through every convolution, sets the field.)

# %%
def receptive_field(model, upto):
    rf, jump = 1, 1
    for name, layer in model.layers():
        if isinstance(layer, Conv2d):
            k, stride = layer.params["weight"].shape[2], layer.stride[0]
        elif isinstance(layer, MaxPool2d):
            k, stride = layer.kernel_size[0], layer.stride[0]
        else:
            k, stride = 1, 1
        rf += (k - 1) * jump
        jump *= stride
        if name == upto:
            return rf
    raise KeyError(upto)


def last_leaf(model, stage):
    """The last leaf layer inside ``stage`` (the stage itself when it is a leaf)."""
    inside = [n for n, _ in model.layers() if n == stage or n.startswith(stage + ".")]
    return inside[-1]


x32 = np.zeros((1, 3, 32, 32), np.float32)
fields = {}
for model in (vgg, resnet):
    model.forward(x32)
    for stage in STAGES[model.name]:
        A = model.activations[stage]
        fields[stage] = receptive_field(model, last_leaf(model, stage))
        print(f"{model.name:>17} {stage:>12}: A {A.shape[1]:3d} x {A.shape[2]:2d} x {A.shape[3]:2d}, "
              f"receptive field {fields[stage]:3d} x {fields[stage]} pixels")
assert [fields[s] for s in STAGES["vgg_cifar10"]] == [5, 14, 32]
assert [fields[s] for s in STAGES["resnet20_cifar10"]] == [15, 37, 81]

# %% [markdown]
# At the first stage a unit sees a small patch, a corner of an eye; at the
# last, every unit sees the whole $32 \times 32$ image and more (ResNet's
# field, 81 pixels, is larger than the image: the padding fills the rest).
#
# ## 2. Grad-CAM at every stage, for the same images
#
# Four shipped images, their top-1 class, three stages of `vgg_cifar10`.
# (`explain.gradcam(model, x, layer=name)`; the map comes back at that
# layer's resolution and is upsampled only for display.)

# %%
picks = [("horse", 3), ("cat", 18), ("ship", 0), ("bird", 0)]
images = [load_sample(c, i) for c, i in picks]
x = preprocess(images, vgg.meta["preprocessing"])
maps = {stage: explain.gradcam(vgg, x, layer=stage) for stage in STAGES["vgg_cifar10"]}
for stage, r in maps.items():
    print(f"{stage:>12}: map {r.map.shape[1:]}, classes {r.target_names}")
assert all(r.target_names == [c for c, _ in picks] for r in maps.values())

fig, axes = plt.subplots(len(picks), 4, figsize=(11, 11), constrained_layout=True)
for row, image in enumerate(images):
    axes[row, 0].imshow(image, interpolation="bilinear")
    axes[row, 0].set_ylabel(f"'{picks[row][0]}'", fontsize=12)
    for col, (stage, r) in enumerate(maps.items(), start=1):
        up = r.upsampled((32, 32))[row]
        axes[row, col].imshow(image, interpolation="bilinear")
        im = axes[row, col].imshow(up / up.max(), cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
        if row == 0:
            h, w = r.map.shape[1:]
            axes[row, col].set_title(f"{stage}: {h}x{w}, RF {fields[stage]} px", fontsize=11)
axes[0, 0].set_title("input", fontsize=11)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[:, 1:], shrink=0.6, label="Grad-CAM / its max (per map)")
fig.suptitle("vgg_cifar10: Grad-CAM at the end of each block, top-1 class", fontsize=13)
fig.savefig(FIGURES / "08_vgg_stages.png", dpi=100)
print("wrote", FIGURES / "08_vgg_stages.png")

# %% [markdown]
# The early maps follow edges and textures all over the image, object and
# background alike; the last one is a coarse blob on the object. Two
# measurements make "semantics" precise.
#
# ## 3. Does the map depend on the class? (cat|dog, ResNet-20)
#
# On the cat|dog image, a class-discriminative map for 'cat' should differ
# from the map for 'dog'. At each stage of `resnet20_cifar10`: the
# correlation between the two maps (before the ReLU, so that both are
# whole maps), and the share of each (after the ReLU) on the cat half.

# %%
cat_dog = explain.cat_dog_image()
pair = np.repeat(preprocess(cat_dog, resnet.meta["preprocessing"]), 2, axis=0)   # (2, 3, 32, 64)
targets = ["cat", "dog"]
per_stage = {}
for stage in STAGES["resnet20_cifar10"]:
    signed = explain.gradcam(resnet, pair, targets, stage, relu=False).map
    shown = explain.gradcam(resnet, pair, targets, stage)
    half = signed.shape[2] // 2
    share = [float(m[:, :half].sum() / m.sum()) for m in shown.map]
    per_stage[stage] = {"corr": float(np.corrcoef(signed[0].ravel(), signed[1].ravel())[0, 1]),
                        "cat share": share, "map": shown}
    print(f"{stage}: map {signed.shape[1:]}, corr('cat', 'dog') {per_stage[stage]['corr']:+.2f}; on the cat half: "
          f"'cat' {share[0]:.0%}, 'dog' {share[1]:.0%}")
corr = [per_stage[s]["corr"] for s in STAGES["resnet20_cifar10"]]
separation = [per_stage[s]["cat share"][0] - per_stage[s]["cat share"][1] for s in STAGES["resnet20_cifar10"]]
assert corr[0] > corr[1] > corr[2] and corr[2] < 0          # less alike with every stage, opposite at the last
assert np.allclose(corr, [0.79, 0.56, -0.62], atol=0.03)      # as measured
assert separation[2] > 0.5 and max(abs(separation[0]), abs(separation[1])) < 0.1

# %% [markdown]
# At `layer1` and `layer2` the 'cat' and 'dog' maps are much alike
# (correlation about 0.8 and 0.6) and neither prefers its own animal; at
# `layer3` they are anti-correlated and each sits on its own half. The
# class-specific evidence only exists late in the network.

# %%
fig, axes = plt.subplots(2, 4, figsize=(17, 4.6), constrained_layout=True)
for row, target in enumerate(targets):
    axes[row, 0].imshow(cat_dog, interpolation="bilinear")
    axes[row, 0].set_title(f"input; explaining '{target}'", fontsize=11)
    for col, stage in enumerate(STAGES["resnet20_cifar10"], start=1):
        r = per_stage[stage]["map"]
        up = r.upsampled((32, 64))[row]
        axes[row, col].imshow(cat_dog, interpolation="bilinear")
        im = axes[row, col].imshow(up / max(up.max(), 1e-12), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        h, w = r.map.shape[1:]
        axes[row, col].set_title(f"{stage} ({h}x{w}): {per_stage[stage]['cat share'][row]:.0%} on the cat half",
                                 fontsize=11)
for ax in axes.flat:
    ax.set_xticks([0, 31, 63])
    ax.set_yticks([0, 31])
fig.colorbar(im, ax=axes[:, 1:], shrink=0.8, label="Grad-CAM / its max")
fig.suptitle("resnet20_cifar10 on cat|dog: correlation of the 'cat' and 'dog' maps by stage: "
             + ", ".join(f"{s} {c:+.2f}" for s, c in zip(STAGES["resnet20_cifar10"], corr)), fontsize=13)
fig.savefig(FIGURES / "08_resnet_stages_cat_dog.png", dpi=100)
print("wrote", FIGURES / "08_resnet_stages_cat_dog.png")

# %% [markdown]
# ## 4. Does the map point at what the score needs? A deletion test
#
# If a map is faithful, covering the pixels it ranks highest should hurt
# the score. For 30 shipped images (three per class) and each stage: cover
# (fill 0, the colour the preprocessing subtracts, as in lesson 7) the 256
# pixels (a quarter of the image) with the highest upsampled Grad-CAM, and
# measure the mean drop of $y^c$ for the top-1 class. For scale, two maps that know nothing about the image: the
# central $16 \times 16$ square (also 256 pixels; CIFAR objects sit in the
# middle) and a $16 \times 16$ square at a random place.

# %%
images30 = [load_sample(c, i) for c in vgg.classes for i in range(3)]
rng = np.random.default_rng(0)
corners = rng.integers(0, 17, size=(len(images30), 2))     # random 16x16 squares, one per image
deletion = {}
for model in (vgg, resnet):
    X = preprocess(images30, model.meta["preprocessing"])
    n = len(X)
    logits = model.forward(X)
    top = logits.argmax(axis=1)
    y = logits[np.arange(n), top]

    def drop_when_covered(masks):
        covered = X.copy()
        for k, mask in enumerate(masks):
            covered[k][:, mask] = 0.0
        return float(np.mean(y - model.forward(covered)[np.arange(n), top]))

    centre = np.zeros((32, 32), bool)
    centre[8:24, 8:24] = True
    random_squares = [np.zeros((32, 32), bool) for _ in range(n)]
    for mask, (r, s) in zip(random_squares, corners):
        mask[r:r + 16, s:s + 16] = True
    result = {"central square": drop_when_covered([centre] * n),
              "random square": drop_when_covered(random_squares)}
    for stage in STAGES[model.name]:
        up = explain.gradcam(model, X, list(top), stage).upsampled((32, 32))          # (n, 32, 32)
        ranked = np.argsort(-up.reshape(n, -1), axis=1, kind="stable")[:, :256]
        masks = np.zeros((n, 32 * 32), bool)
        np.put_along_axis(masks, ranked, True, axis=1)
        result[stage] = drop_when_covered(masks.reshape(n, 32, 32))
    deletion[model.name] = result
    print(model.name, {k: round(v, 2) for k, v in result.items()})

for name, stages in STAGES.items():
    d = deletion[name]
    assert d[stages[0]] < d[stages[1]] < d[stages[2]]      # the deeper the stage, the more the score falls
    assert d[stages[2]] > d["central square"] > d["random square"]
vgg_deletion = deletion["vgg_cifar10"]
assert max(vgg_deletion["features.5"], vgg_deletion["features.12"]) < vgg_deletion["central square"]

# %% [markdown]
# In both networks the drop grows with every stage, and the last stage's
# map beats the central square, a strong baseline on CIFAR-10 (in the VGG
# model the two earlier maps do worse than it). The first stage's map is
# *sharper*, but what it ranks highest (edges and textures everywhere) is
# not what the class score depends on most.

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), constrained_layout=True)
for ax, (name, stages) in zip(axes, STAGES.items()):
    d = deletion[name]
    ax.plot(range(3), [d[s] for s in stages], "o-", lw=2, label="top quarter of Grad-CAM covered")
    ax.axhline(d["central square"], color="tab:green", ls="--", label="central 16x16 square covered")
    ax.axhline(d["random square"], color="tab:gray", ls=":", label="random 16x16 square covered")
    ax.set_xticks(range(3), [f"{s}\n(map {32 >> i}x{32 >> i}, RF {fields[s]})" for i, s in enumerate(stages)])
    ax.set_xlabel("Grad-CAM layer")
    ax.set_ylabel("mean drop of y^c (30 images)")
    ax.set_title(name)
    ax.set_ylim(0, None)
    ax.set_xlim(-0.35, 2.35)
    ax.legend(loc="lower right", fontsize=9)
fig.suptitle("Deletion test: covering what deeper layers' Grad-CAM ranks highest hurts the score more", fontsize=13)
fig.savefig(FIGURES / "08_deletion_by_layer.png", dpi=100)
print("wrote", FIGURES / "08_deletion_by_layer.png")

# %% [markdown]
# ## What to take away
#
# - Earlier layers give larger, sharper maps; later layers give maps that
#   depend on the class (cat|dog: correlation of the 'cat' and 'dog' maps
#   about $0.8 \to 0.6 \to -0.6$ over ResNet-20's stages) and that point at
#   what the score needs (the deletion test: the drop grows with depth).
# - The last convolutional layer is the paper's choice and the default:
#   the best trade-off between resolution and semantics. Sharpness is
#   better added afterwards, as Guided Grad-CAM does (lesson 5), than
#   bought with an earlier layer.
