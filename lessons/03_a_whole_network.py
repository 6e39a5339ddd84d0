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
# # Lesson 3 · A whole network
#
# Lessons 1 and 2 took the layers one at a time. This lesson loads a
# trained network made of nothing else, the shipped `vgg_cifar10`
# (convolutions, ReLUs, max pooling and two dense layers, 87.84% top-1 on
# the CIFAR-10 test set), and looks at it three ways: as a table of layers
# and shapes, as the pictures each layer makes of a real image (its
# *feature maps*), and as a classifier of the 300 CIFAR-10 test images that
# ship with minicnn. Each claim is checked with an `assert`.
#
# Figures go to the folder named in `FIGURES` below.

# %%
import os
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn.inputs.images import load_image
from minicnn.inputs.preprocess import deprocess, preprocess
from minicnn.inputs.samples import load_sample, sample_images
from minicnn.layers import Conv2d, Linear, MaxPool2d, softmax

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The layer table
#
# `minicnn.load` reads a shipped weights file (checksum verified, nothing
# executed) and returns a `Model`: a tree of named layers, named as
# PyTorch names its modules (`features.0` is the first module of the
# `features` block). `model.summary()` runs one zero image through it and
# lists every layer with the shape of its output (channels x height x
# width, batch axis left out) and its number of parameters.

# %%
model = minicnn.load("vgg_cifar10")
print(model)
print(model.meta["description"])
print(f"recorded accuracy: {model.meta['accuracy']['top1']}% on the CIFAR-10 test set")
assert model.meta["accuracy"]["top1"] == 87.84                # as measured when the file was made
print()
print(model.summary())

# %% [markdown]
# Every row can be recomputed by hand. A $3 \times 3$ convolution from $C$
# to $F$ channels holds $F \cdot C \cdot 3 \cdot 3$ weights and $F$ biases; a
# dense layer from $D$ to $M$ holds $M D + M$. With padding 1 and stride 1
# a convolution keeps the height and width (lesson 1's formula,
# $\lfloor (H + 2 - 3)/1 \rfloor + 1 = H$); each $2 \times 2$ max pool
# halves them. So three blocks take $32 \to 16 \to 8 \to 4$, and the last
# block's $128$ maps of $4 \times 4$ flatten to the $2048$ inputs of the
# first dense layer.
#
# (The original network had BatchNorm after each convolution. At inference
# BatchNorm is a fixed per-channel affine map, so it was *folded* into the
# convolution's weights and bias when the file was made: same outputs,
# fewer layers. That is why the layer numbers skip: `features.1` was a
# BatchNorm. `classifier.2`, Dropout, only acts during training; here it
# passes its input through unchanged.)

# %%
def params_by_hand(layer):
    if isinstance(layer, Conv2d):
        F, C, kh, kw = layer.params["weight"].shape
        return F * C * kh * kw + F
    if isinstance(layer, Linear):
        M, D = layer.params["weight"].shape
        return M * D + M
    return 0


total = 0
for name, layer in model.layers():
    n = params_by_hand(layer)
    assert n == sum(a.size for a in layer.params.values()), name
    total += n
assert total == model.num_parameters() == 814_122
print(f"parameters counted by hand: {total:,}")

# Shapes: 3 channels in, then (32, 32, 32) -> pool -> (64, 16, 16) -> pool -> (128, 8, 8) -> pool -> (128, 4, 4)
model.forward(np.zeros((1, 3, 32, 32), np.float32))
side = 32
for name, layer in model.layers():
    if isinstance(layer, MaxPool2d):
        side //= 2
    A = model.activations[name]
    if A.ndim == 4:
        assert A.shape[2:] == (side, side), (name, A.shape)
assert model.activations["features"].shape == (1, 128, 4, 4)
assert model.activations["flatten"].shape == (1, 128 * 4 * 4)
share = {kind.__name__: sum(params_by_hand(l) for _, l in model.layers() if isinstance(l, kind))
         for kind in (Conv2d, Linear)}
print({k: f"{v:,} ({100 * v / total:.1f}%)" for k, v in share.items()})
first_dense = params_by_hand(model["classifier.0"])
print(f"classifier.0 alone: {first_dense:,} ({first_dense / total:.1%})")
assert first_dense / total > 0.6                      # about two thirds, in one layer

# %% [markdown]
# Two thirds of the parameters sit in one layer, the first dense one
# ($2048 \times 256$): convolutions share their small kernels over every
# position, dense layers do not. That dense head is also why this model
# accepts only $32 \times 32$ images (it needs exactly 2048 inputs), and,
# as lesson 6 shows, why CAM cannot explain it while Grad-CAM can.

# %% [markdown]
# ## 2. Real images through the network
#
# The model was trained on images preprocessed in one fixed way, recorded
# in its metadata: RGB scaled to $[0, 1]$, then each channel normalised,
# $x_c = (p_c / 255 - \mu_c) / \sigma_c$. `preprocess` applies exactly that
# and returns the batch layout $(N, 3, 32, 32)$ float32;
# `deprocess` undoes it for display.

# %%
prep = model.meta["preprocessing"]
print("preprocessing:", {k: prep[k] for k in ("mean", "std", "resize", "size")})
image = load_sample("horse", 3)                       # (32, 32, 3) uint8
x = preprocess(image, prep)                           # (1, 3, 32, 32) float32
print("image", image.shape, image.dtype, "-> x", x.shape, x.dtype)
by_hand = ((image / 255.0 - np.array(prep["mean"])) / np.array(prep["std"])).transpose(2, 0, 1)[None]
np.testing.assert_allclose(x, by_hand, rtol=1e-5, atol=1e-5)
np.testing.assert_allclose(deprocess(x[0], prep), image / 255.0, atol=1e-6)

# %% [markdown]
# One forward pass keeps every layer's output in `model.activations`,
# under the names of the table. After each ReLU every value is
# $\ge 0$, and many are exactly 0: a ReLU passes only the evidence for
# the pattern its filter looks for. The deeper the block, the more zeros:
# late filters look for specific parts, and most positions have none.

# %%
logits = model.forward(x)
probs = softmax(logits.astype(np.float64))[0]
print(f"prediction: {model.classes[int(np.argmax(logits))]} (p = {probs.max():.3f})")
assert model.classes[int(np.argmax(logits))] == "horse"
zeros = {}
for name in ("features.2", "features.5", "features.12", "features.19"):
    A = model.activations[name]
    assert A.min() == 0.0
    zeros[name] = np.mean(A == 0)
    print(f"{name:12s} {str(A.shape):18s} zeros: {100 * zeros[name]:5.1f}%   max {A.max():6.2f}")
# Deeper ReLUs pass less: the end of each block is sparser than the one before
# (59%, 72%, 89% of zeros on this image).
assert zeros["features.5"] < zeros["features.12"] < zeros["features.19"]
assert np.allclose([zeros[n] for n in ("features.5", "features.12", "features.19")], [0.59, 0.72, 0.89], atol=0.01)


# %% [markdown]
# The pictures: for three ReLU outputs, one at the end of each block, the
# twelve channels with the largest mean activation on this image, each on
# its own colour scale. The first block works at full resolution and looks
# like the image filtered for edges and colours; by the last block, at
# $8 \times 8$, each unit sees most of the image (a receptive field of
# $32 \times 32$ pixels: each $3 \times 3$ convolution adds 2 pixels
# times the product of the strides before it, each pool 1 times that product)
# and the maps are coarse blobs that respond to parts of the horse.

# %%
def receptive_field(model, upto):
    """Side of the input window one unit of layer ``upto`` sees (stride-1 convs, 2x2 pools)."""
    rf, jump = 1, 1
    for name, layer in model.layers():
        if isinstance(layer, Conv2d):
            rf += (layer.params["weight"].shape[2] - 1) * jump
        elif isinstance(layer, MaxPool2d):
            rf += (layer.kernel_size[0] - 1) * jump
            jump *= layer.stride[0]
        if name == upto:
            return rf


stages = ["features.5", "features.12", "features.19"]
fields = {name: receptive_field(model, name) for name in stages}
print("receptive field (pixels):", fields)
assert fields == {"features.5": 5, "features.12": 14, "features.19": 32}

fig = plt.figure(figsize=(17, 6.6), constrained_layout=True)
grid = fig.add_gridspec(3, 8, width_ratios=[3.2] + [1] * 6 + [0.1])
ax = fig.add_subplot(grid[:, 0])
ax.imshow(image, interpolation="bilinear")
ax.set_title(f"input, 32x32: predicted horse (p = {probs.max():.2f})")
ax.set_xlabel("column")
ax.set_ylabel("row")
for row, name in enumerate(stages):
    A = model.activations[name][0]                    # (K, h, w)
    top = np.argsort(A.mean(axis=(1, 2)))[::-1][:6]
    vmax = A[top].max()
    for col, k in enumerate(top):
        ax = fig.add_subplot(grid[row, col + 1])
        im = ax.imshow(A[k], cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(f"channel {k}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(f"{name}\n{A.shape[0]} maps, {A.shape[1]}x{A.shape[2]}\nRF {fields[name]} px",
                          fontsize=10)
    fig.colorbar(im, cax=fig.add_subplot(grid[row, 7]), label="activation")
fig.suptitle("vgg_cifar10 feature maps of one image: the six most active channels after the last ReLU of each block "
             "(shared colour scale per row)", fontsize=12)
fig.savefig(FIGURES / "03_feature_maps.png", dpi=100)
print("wrote", FIGURES / "03_feature_maps.png")

# %% [markdown]
# ## 3. Classifying the shipped test images
#
# minicnn ships 300 CIFAR-10 test images, 30 per class
# (`minicnn/data/cifar10/test/<class>/*.jpg`). The model's metadata records
# its accuracy on them (and on the full 10,000-image test set). The
# prediction is the class with the largest logit; the softmax turns the
# logits into probabilities but does not change their order.

# %%
samples = sample_images()                              # [(path, class name), ...]
images = np.stack([load_image(path) for path, _ in samples])
labels = np.array([model.classes.index(c) for _, c in samples])
X = preprocess(images, prep)
logits = np.concatenate([model.forward(X[i:i + 100]) for i in range(0, len(X), 100)])
pred = logits.argmax(axis=1)
accuracy = 100 * np.mean(pred == labels)
recorded = model.meta["accuracy"]["samples_top1"]
print(f"{len(X)} images, top-1 accuracy {accuracy:.2f}% (recorded in the weights file: {recorded}%, "
      f"full test set: {model.meta['accuracy']['top1']}%)")
assert len(X) == 300 and np.all(np.bincount(labels) == 30)
assert abs(accuracy - recorded) < 0.01 and abs(accuracy - 86.67) < 0.01     # 260 of 300

# %% [markdown]
# Per class, with the most frequent mistake. The animals are harder than
# the vehicles, and the usual confusion is the one a person would make:
# cats taken for dogs and dogs for cats.

# %%
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (labels, pred), 1)
print(f"{'class':>11} {'correct':>8} {'accuracy':>9}   most frequent mistake")
for c, name in enumerate(model.classes):
    wrong = Counter(model.classes[p] for p in pred[labels == c] if p != c)
    mistake = ", ".join(f"{k} x{v}" for k, v in wrong.most_common(1)) or "-"
    print(f"{name:>11} {confusion[c, c]:>5}/30 {100 * confusion[c, c] / 30:>8.1f}%   {mistake}")
assert confusion.sum() == 300 and np.trace(confusion) == round(accuracy * 3)
cat, dog = model.classes.index("cat"), model.classes.index("dog")
off_diagonal = confusion - np.diag(np.diag(confusion))
assert off_diagonal[cat].argmax() == dog and off_diagonal[dog].argmax() == cat
vehicles = [model.classes.index(c) for c in ("airplane", "automobile", "ship", "truck")]
animals = [c for c in range(10) if c not in vehicles]
per_class = np.diag(confusion) / 30
print(f"mean accuracy: vehicles {100 * per_class[vehicles].mean():.1f}%, "
      f"animals {100 * per_class[animals].mean():.1f}%")
assert per_class[animals].mean() < per_class[vehicles].mean()

# %%
wrong = np.flatnonzero(pred != labels)
assert len(wrong) == 300 - np.trace(confusion) == 40
fig = plt.figure(figsize=(17, 7.2), constrained_layout=True)
left, right = fig.subfigures(1, 2, width_ratios=[1, 1.05])
ax = left.subplots()
im = ax.imshow(confusion, cmap="Blues", vmin=0, vmax=30)
for (r, c), v in np.ndenumerate(confusion):
    if v:
        ax.text(c, r, str(v), ha="center", va="center", color="white" if v > 15 else "black", fontsize=9)
ax.set_xticks(range(10), model.classes, rotation=45, ha="right")
ax.set_yticks(range(10), model.classes)
ax.set_xlabel("predicted class")
ax.set_ylabel("true class")
ax.set_title(f"confusion matrix, 300 shipped test images: {accuracy:.2f}% correct")
left.colorbar(im, ax=ax, shrink=0.8, label="images")
cells = right.subplots(5, 8)
for ax, i in zip(cells.flat, wrong):
    ax.imshow(images[i], interpolation="bilinear")
    ax.set_title(f"{model.classes[labels[i]]}\n-> {model.classes[pred[i]]}", fontsize=9, color="tab:red")
for ax in cells.flat:
    ax.set_xticks([])
    ax.set_yticks([])
right.suptitle(f"all {len(wrong)} mistakes: true class -> predicted class")
fig.savefig(FIGURES / "03_classification.png", dpi=100)
print("wrote", FIGURES / "03_classification.png")

# %% [markdown]
# ## What to take away
#
# - A CNN is the layers of lessons 1 and 2 in sequence; every shape and
#   parameter count in its table follows from lesson 1's formula.
# - Each layer's output is kept by name (`model.activations[name]`): early
#   maps are filtered images, late maps are coarse and each unit sees most of
#   the image.
# - The shipped model classifies 86.67% of the shipped test images
#   correctly, exactly as its weights file records.
#
# Lesson 4 asks the network *why*: which parts of the image made the
# score of "horse" high, using the last feature map and its gradient.
