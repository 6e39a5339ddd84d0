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
# # Lesson 14 · What a class looks like to the network
#
# Grad-CAM asks where in *this* image the evidence for a class lies. Turn the question
# around: **which image would make the network most sure it sees a cat?** Simonyan,
# Vedaldi and Zisserman (2014) answered it with the same gradient at the input that
# saliency maps use, climbed instead of drawn:
#
# $$
# I^* = \arg\max_I \; y^c(I) - \lambda \lVert I - \tfrac12 \rVert^2 ,
# $$
#
# with $y^c$ the class score *before* the softmax. (Maximising the probability $p^c$
# instead can succeed by pushing the other classes down, which says little about $c$.)
# Left alone, the ascent finds an image of high-frequency noise that scores
# enormously: an adversarial pattern, not a picture. This lesson measures that, then
# adds the regularisers of Yosinski et al. (2015) (L2 decay, blur, jitter, clipping to
# the pixel range) and the Fourier parameterisation with decorrelated colour of Olah,
# Mordvintsev and Schubert (Distill 2017), and checks every backward it uses by
# central differences.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn.errors import GradientCheckError
from minicnn.gradcheck import check_function
from minicnn.inputs.samples import load_sample
from minicnn.synthesis import ClassScore, FourierImage, LayerObjective, visualise
from minicnn.synthesis.parameterise import irfft2, irfft2_backward, spectrum_scale
from minicnn.synthesis.transforms import Affine
from minicnn.synthesis.visualise import normalisation

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

model = minicnn.load("vgg_cifar10")
mean, std = normalisation(model)                 # (1, 3, 1, 1) each: x = (I - mean) / std
CAT = model.classes.index("cat")


def network_input(image_hwc):
    return ((image_hwc.transpose(2, 0, 1)[None] - mean) / std).astype(np.float32)


def score(image_hwc, c=CAT):
    return float(model.forward(network_input(image_hwc))[0, c])


# %% [markdown]
# ## 1. The gradient at the pixels
#
# The network sees $x = (I - \mu)/\sigma$ per channel, so by the chain rule
# $\partial y^c/\partial I = (\partial y^c/\partial x)/\sigma$: one backward pass from
# $e_c$. Checked by central differences in float64 on 40 random pixels of a shipped cat
# (not of a grey image: on a constant image every max-pool window is a tie, where the
# derivative does not exist and central differences split it between the tied inputs):

# %%
model64 = model.astype(np.float64)
cat_photo = load_sample("cat", 0) / 255.0         # (32, 32, 3) in [0, 1]
I0 = cat_photo.transpose(2, 0, 1)[None].copy()
J, dx = ClassScore(CAT).value_and_grad(model64, (I0 - mean) / std)
dI = dx / std
err = check_function(lambda image: model64.forward((image - mean) / std)[:, CAT], I0, dI, dout=np.ones(1),
                     max_checks=40)
print(f"y^cat(a cat) = {J[0]:.3f}; relative error of dy/dI against central differences: {err:.1e}")
assert err < 1e-7

# %% [markdown]
# ## 2. Plain gradient ascent finds noise
#
# 64 steps of size 0.05 (in pixel units, along the gradient divided by its root mean
# square), clipped to $[0, 1]$, nothing else. Two measures of what comes out: the
# share of the image's power above half the Nyquist frequency ($|f| > 1/4$ cycles per
# pixel; a natural CIFAR image has a few percent there), and how much of the score
# survives a shift of the image by two pixels.

# %%
def high_frequency_share(image_hwc):
    g = image_hwc.mean(axis=2) - image_hwc.mean()
    power = np.abs(np.fft.fft2(g)) ** 2
    f = np.hypot(np.fft.fftfreq(32)[:, None], np.fft.fftfreq(32)[None, :])
    return float(power[f > 0.25].sum() / power.sum())


def shifted_score_share(image_hwc, c=CAT):
    return score(np.roll(image_hwc, (2, 2), axis=(0, 1)), c) / score(image_hwc, c)


NONE = dict(jitter=0, scales=(1.0,), degrees=(0.0,))
runs = {
    "pixels, no regulariser": visualise(model, ClassScore(CAT), param="pixel", steps=64, decay=0, blur_every=0,
                                        **NONE),
    "pixels, L2 + blur + jitter": visualise(model, ClassScore(CAT), param="pixel", steps=64),
    "Fourier, no transforms": visualise(model, ClassScore(CAT), param="fourier", steps=64, **NONE),
    "Fourier + jitter, scale, rotation": visualise(model, ClassScore(CAT), param="fourier", steps=64),
}
print(f"a real cat: y = {score(cat_photo):.2f}, high-frequency share {high_frequency_share(cat_photo):.3f}")
for name, r in runs.items():
    print(f"{name:36s} y: {r.values[0]:5.2f} -> {r.final_value:5.2f}   high-frequency share "
          f"{high_frequency_share(r.image):.2f}   score kept after a 2-pixel shift {shifted_score_share(r.image):.0%}")
raw = runs["pixels, no regulariser"]
assert raw.final_value > 3 * score(cat_photo)                     # far more 'cat' than a cat
assert high_frequency_share(raw.image) > 0.5                      # most of its power is fine-grained noise
assert shifted_score_share(raw.image) < 0.6                       # and it is fragile

# %% [markdown]
# ## 3. The regularisers
#
# Yosinski et al. (2015) keep the ascent near natural images with three cheap steps
# after every gradient step: **L2 decay** $I \leftarrow \tfrac12 + (1-\delta)(I - \tfrac12)$
# ($\delta = 0.01$) pulls towards grey, a **Gaussian blur** ($\sigma = 0.5$ pixel, every
# 4 steps) removes what the blur cannot keep, and **jitter** (a random shift before each
# forward pass, undone in the backward pass) asks the image to work wherever it sits.
# Here the transforms also scale by up to 5% and turn by up to 5 degrees. Each transform
# $T$ is linear, $x' = Tx$, and its backward is the adjoint $T^\top$; for the bilinear
# resampling of a scale and a rotation that is a scatter-add of the same weights.
# Checked by central differences:

# %%
rng = np.random.default_rng(0)
T = Affine((9, 9), scale=1.05, degrees=5.0)
x = rng.standard_normal((1, 3, 9, 9))
G = rng.standard_normal(x.shape)
err = check_function(T.forward, x, T.backward(G), dout=G)
print(f"scale-and-rotate adjoint: relative error {err:.1e}")
assert err < 1e-7

regular = runs["pixels, L2 + blur + jitter"]
assert high_frequency_share(regular.image) < 0.3
assert shifted_score_share(regular.image) > 0.8
assert regular.final_value > score(cat_photo)                    # still more 'cat' than the photograph

# %% [markdown]
# ## 4. Why the Fourier basis helps
#
# A step on one pixel changes one pixel, and a gradient step changes every pixel by
# its own amount: white noise, whose power is the same at every frequency, and the
# network rewards the high frequencies first. Write the image through its spectrum
# instead,
#
# $$
# I = \mathrm{sigmoid}\big(C \cdot \mathrm{irfft2}(s \odot (a + ib))\big), \qquad
# s_{kl} = \frac{1}{\max(|f_{kl}|,\, 1/\max(H, W))},
# $$
#
# and a step of equal size on every coefficient $(a, b)$ moves the low frequencies most:
# the image's power falls as $1/|f|^2$, as it does in photographs. $C$ (3×3) maps three
# uncorrelated channels onto the colour correlations of ImageNet, and the sigmoid keeps
# every pixel in $(0, 1)$.
#
# The backward of irfft2 is its adjoint. With $x_{nm} = \mathrm{Re} \sum_{kl} \frac{w_l}{HW}
# Z_{kl} e^{2\pi i (kn/H + lm/W)}$, where $w_l = 2$ for the columns that stand for two
# (a coefficient and its conjugate) and 1 for $l = 0$ and $l = W/2$,
#
# $$
# \frac{\partial L}{\partial \mathrm{Re}\, Z_{kl}} + i \frac{\partial L}{\partial \mathrm{Im}\, Z_{kl}}
# = \frac{w_l}{HW}\, \mathrm{rfft2}(g)_{kl}, \qquad g = \partial L / \partial x .
# $$
#
# Forgetting $w_l$ is the classic mistake; central differences catch it:

# %%
h, w = 6, 7
ab = rng.standard_normal((2, 3, h, w // 2 + 1))
G = rng.standard_normal((3, h, w))
d = irfft2_backward(G, (h, w))
err = check_function(lambda v: irfft2(v[0] + 1j * v[1], (h, w)), ab, np.stack([d.real, d.imag]), dout=G)
wrong = np.fft.rfft2(G) * 2 / (h * w)                               # every column counted twice
try:
    check_function(lambda v: irfft2(v[0] + 1j * v[1], (h, w)), ab, np.stack([wrong.real, wrong.imag]), dout=G)
    raise AssertionError("the wrong adjoint passed")
except GradientCheckError as e:
    print(f"adjoint of irfft2: relative error {err:.1e}; without the weights w_l: {str(e).split(';')[0]}")
assert err < 1e-7

image = FourierImage((3, 8, 8), rng, sd=0.3)
theta = image.theta.copy()


def through(v):
    image.theta = v
    return image.image()


G = rng.standard_normal((1, 3, 8, 8))
through(theta.copy())
err = check_function(through, theta, image.backward(G), dout=G)
print(f"the whole Fourier image (scale, irfft2, colour, sigmoid): relative error {err:.1e}")
assert err < 1e-7

# %% [markdown]
# The scale $s$ makes random coefficients into an image with a natural power spectrum:
# averaged over rings, the power of $\mathrm{irfft2}(s \odot \theta)$ for white
# $\theta$ falls about as $|f|^{-2}$ (the fitted slope on a log-log plot):

# %%
thetas = rng.standard_normal((200, 64, 33)) + 1j * rng.standard_normal((200, 64, 33))
power = (np.abs(np.fft.rfft2(irfft2(spectrum_scale(64, 64) * thetas, (64, 64)))) ** 2).mean(axis=0)
f = np.hypot(np.fft.fftfreq(64)[:, None], np.fft.rfftfreq(64)[None, :])
keep = (f > 0.02) & (f < 0.45)
slope = np.polyfit(np.log(f[keep]), np.log(power[keep]), 1)[0]
print(f"power of the Fourier-parameterised image falls as |f|^{slope:.2f}")
assert -2.2 < slope < -1.8

fourier_raw = runs["Fourier, no transforms"]
assert high_frequency_share(fourier_raw.image) < 0.3               # smooth without any regulariser
assert high_frequency_share(fourier_raw.image) < high_frequency_share(raw.image) / 2

# %% [markdown]
# ## 5. Every class, and the channels of a layer
#
# The same ascent (Fourier, with the transforms) for each of the ten classes; every
# image is then classified as its own class. And the same machinery for one channel
# of a hidden layer, $J = \frac{1}{HW}\sum_{ij} A^l_{c,ij}$: its gradient enters the
# backward pass at layer $l$ instead of at the logits. The same seed gives the same image.

# %%
classes = [visualise(model, ClassScore(c), param="fourier", steps=48, seed=c) for c in range(10)]
top = [int(np.argmax(model.forward(network_input(r.image))[0])) for r in classes]
print("top-1 class of each class's image:", [model.classes[t] for t in top])
assert top == list(range(10))
again = visualise(model, ClassScore(CAT), param="fourier", steps=64)
assert np.array_equal(again.image, runs["Fourier + jitter, scale, rotation"].image)

layer = "features.10"                         # a convolution's output, before its ReLU: its gradient never dies
channels = [visualise(model, LayerObjective(layer, k), param="fourier", steps=32, seed=k) for k in range(8)]
for k, r in enumerate(channels):
    assert r.final_value > r.values[0] + 0.3, (k, r.values[0], r.final_value)
print("channel means of", layer, "at the start and at the end:",
      [f"{r.values[0]:.2f}->{r.final_value:.2f}" for r in channels])

# %%
fig, axes = plt.subplots(3, 10, figsize=(15, 6.2))
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
for c, r in enumerate(classes):
    axes[0, c].imshow(r.image)
    axes[0, c].set_title(f"{model.classes[c]}\ny={r.final_value:.1f}", fontsize=9)
for i, (name, r) in enumerate(runs.items()):
    axes[1, i].imshow(r.image)
    axes[1, i].set_title(name.replace(", ", ",\n").replace(" + ", "\n+ "), fontsize=7)
axes[1, 4].imshow(cat_photo)
axes[1, 4].set_title(f"a real cat\ny={score(cat_photo):.1f}", fontsize=8)
for k, r in enumerate(channels):
    axes[2, k].imshow(r.image)
    axes[2, k].set_title(f"{layer} ch {k}", fontsize=8)
for ax in [*axes[1, 5:], *axes[2, 8:]]:
    ax.axis("off")
axes[1, 0].set_ylabel("the cat, four ways")
axes[0, 0].set_ylabel("each class\n(Fourier)")
axes[2, 0].set_ylabel("channels")
fig.suptitle("vgg_cifar10: what each class looks like to the network (gradient ascent on the input)")
fig.tight_layout()
path = FIGURES / "14_class_visualisations.png"
fig.savefig(path, dpi=100)
print(path)
