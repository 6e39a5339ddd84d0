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
# # Lesson 11 · Layer-wise Relevance Propagation from the backward pass
#
# Lesson 5 changed one rule of the backward pass, the ReLU's, and got Guided
# Backprop. A backward pass is a chain of such local rules: each layer maps
# the signal at its output to a signal at its input, and the gradient is the
# choice "every layer uses its derivative". **Layer-wise Relevance
# Propagation** (Bach et al. 2015; Montavon et al. 2019) makes another choice
# for every layer. Its signal is *relevance* $R$: it starts as the class
# score $y^c$ at the target logit, and each layer shares the relevance of its
# outputs among its inputs in proportion to what each input contributed,
#
# $$
# R_i = \sum_j \frac{x_i w_{ij}}{z_j} R_j, \qquad z_j = \sum_i x_i w_{ij} + b_j ,
# $$
#
# so that, biases aside, nothing is created or lost on the way down.
#
# This lesson builds one layer's rule by hand, checks that relevance is
# conserved layer by layer through a whole network, and runs zennit's
# composites on the cat|dog image, next to Guided Backprop.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.explain.lrp import composite_epsilon_plus
from minicnn.explain.lrp_rules import Epsilon, ZPlus
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample
from minicnn.layers import Conv2d, Linear
from minicnn.layers.conv import conv2d_forward

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. One dense layer by hand
#
# Three inputs, two outputs, with a bias, and some relevance $R$ arriving
# at the two outputs from above.

# %%
layer = Linear(3, 2)
layer.params = {"weight": np.array([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]]), "bias": np.array([0.5, -0.25])}
x = np.array([[1.0, 2.0, -1.0]])
R_out = np.array([[2.0, 1.0]])
z = x @ layer.params["weight"].T + layer.params["bias"]
print("z =", z[0], "  R at the outputs =", R_out[0])

# %% [markdown]
# The rule as written, one contribution at a time:

# %%
W, b = layer.params["weight"], layer.params["bias"]
R_loops = np.zeros(3)
for i in range(3):
    for j in range(2):
        R_loops[i] += x[0, i] * W[j, i] / z[0, j] * R_out[0, j]
print("R_i by the loops:", R_loops)

# %% [markdown]
# The sum over $j$ is exactly what the layer's *backward pass* computes:
# $\sum_j w_{ij} s_j$ is $W^\top s$, the gradient of $s \cdot z$ with
# respect to $x$. So LRP's rule is three lines over the layer's own forward
# and backward: divide the relevance by $z$, run the backward, multiply by
# the input,
#
# $$
# s = R / z, \qquad R_\text{in} = x \odot W^\top s .
# $$
#
# That is the whole of `Epsilon` in `minicnn/explain/lrp_rules.py` (which
# adds $\epsilon\,\mathrm{sign}(z)$ to $z$ for stability; $\epsilon = 0$ is
# LRP-0), and it works unchanged for a convolution, whose backward is a
# transposed convolution:

# %%
z_again, cache = layer.forward(x)
R_backward = x * layer.backward(R_out / z_again, cache)[0]
R_rule = Epsilon(0.0)(layer, x, R_out)
print("x * backward(R / z):", R_backward[0], "\nEpsilon(0):         ", R_rule[0])
assert np.allclose(R_loops, R_backward[0], rtol=1e-14) and np.allclose(R_loops, R_rule[0], rtol=1e-14)

# %% [markdown]
# **Conservation.** Summing $R_i$ over $i$ gives $\sum_j R_j (z_j - b_j)/z_j$:
# all of the relevance except the bias's share $s_j b_j$ reaches the inputs.

# %%
bias_share = (R_out / z * b).sum()
print(f"sum R_in = {R_rule.sum():.6f}  =  sum R_out {R_out.sum():.1f}  -  bias share {bias_share:.6f}")
assert abs(R_rule.sum() - (R_out.sum() - bias_share)) < 1e-14

# %% [markdown]
# The **z+ rule** shares only the positive contributions $x_i w_{ij} > 0$
# (written with $x^+ W^+$ and $x^- W^-$: a negative input through a negative
# weight is a positive contribution too), over $z^+_j = \sum_i (x_i w_{ij})^+ +
# b_j^+$. Its relevance never changes sign:

# %%
contributions = np.maximum(x[0][None, :] * W, 0)                  # (2 outputs, 3 inputs)
z_plus = contributions.sum(axis=1) + np.maximum(b, 0)
R_zplus_loops = (contributions / z_plus[:, None] * R_out[0][:, None]).sum(axis=0)
R_zplus = ZPlus(0.0)(layer, x, R_out)
print("z+ by the loops:", R_zplus_loops, "  ZPlus:", R_zplus[0])
assert np.allclose(R_zplus_loops, R_zplus[0], rtol=1e-14) and R_zplus.min() >= 0

# %% [markdown]
# ## 2. A whole network, rule by rule
#
# A *composite* chooses a rule for each kind of layer. zennit's
# "epsilon-plus" uses z+ on convolutions, epsilon on dense layers, passes
# relevance through ReLUs unchanged (the ReLU is part of the unit that
# shares it), sends it to the winner of each max-pooling window (the
# gradient's own rule) and reshapes it through Flatten. For the shipped
# VGG-style network and a horse, in float64:

# %%
vgg = minicnn.load("vgg_cifar10").astype(np.float64)
horse = preprocess(load_sample("horse", 0), vgg.meta["preprocessing"]).astype(np.float64)
r = explain.lrp(vgg, horse, "horse", "epsilon-plus")
print(f"y^horse = {r.scores[0]:.4f};  rules:")
for name, _ in vgg.layers():
    print(f"  {name:13s} {r.rules.get(name, 'gradient (no rule)')}")

# %% [markdown]
# `explain.lrp` is one forward pass and one backward pass: the seed is
# $y^c e_c$ instead of $e_c$, and `rules` replaces the backward of the
# layers it names (`minicnn/layers/base.py`). By hand:

# %%
logits = vgg.forward(horse)
seed = explain.onehot(r.targets, 10, logits.dtype) * logits            # R = y^c at the target logit
by_hand = vgg.backward(seed, rules=composite_epsilon_plus().rules(vgg))
assert np.array_equal(by_hand, r.map)

# %% [markdown]
# After the pass, `vgg.gradients[name]` holds the relevance at the output of
# every layer. Walking down, each layer keeps a share: a z+ layer the share
# of $b^+$ and of its stabiliser, an epsilon layer that of $b$ and $\epsilon$.
# The bookkeeping balances at every layer, to rounding:

# %%
def kept_by(rule, layer, x_in, R):
    """The relevance a layer keeps: sum_j s_j (bias_j + stabiliser), s = R / stabilised denominator."""
    if rule is None or not hasattr(layer, "params") or "weight" not in layer.params:
        return 0.0
    w, b = layer.params["weight"], layer.params["bias"]
    shape = (1, -1, 1, 1) if isinstance(layer, Conv2d) else (1, -1)
    if isinstance(rule, ZPlus):
        apply = (lambda w_, x_: conv2d_forward(x_, w_, None, layer.stride, layer.padding)) \
            if isinstance(layer, Conv2d) else (lambda w_, x_: x_ @ w_.T)
        bias = np.maximum(b, 0).reshape(shape)
        z = apply(np.maximum(w, 0), np.maximum(x_in, 0)) + apply(np.minimum(w, 0), np.minimum(x_in, 0)) + bias
        eps = rule.stabilizer
    else:
        bias, eps = b.reshape(shape), rule.epsilon
        z = layer.forward(x_in)[0]
    sign_eps = np.where(z >= 0, eps, -eps)
    return float((R / (z + sign_eps) * (bias + sign_eps)).sum())


rules = composite_epsilon_plus().rules(vgg)
names = [name for name, _ in vgg.layers()]
rows = []
for k, (name, layer_k) in enumerate(vgg.layers()):
    R_at_output = vgg.gradients[name].sum()
    R_at_input = (r.map if k == 0 else vgg.gradients[names[k - 1]]).sum()
    kept = kept_by(rules.get(name), layer_k, vgg.inputs[name], vgg.gradients[name])
    rows.append((name, R_at_output, kept, R_at_input))
    assert abs(R_at_input - (R_at_output - kept)) < 1e-9 * max(1.0, abs(R_at_output)), name
print(f"{'layer':13s} {'R at output':>12s} {'kept':>10s} {'R at input':>11s}")
for name, out, kept, inp in rows:
    print(f"{name:13s} {out:12.4f} {kept:10.4f} {inp:11.4f}")
print(f"y^c = {r.scores[0]:.4f} -> relevance reaching the pixels {r.map.sum():.4f}")

# %% [markdown]
# ## 3. LRP-epsilon is almost Input x Gradient
#
# With the epsilon rule everywhere and a tiny epsilon, LRP on a ReLU network
# is $x \odot \partial y^c / \partial x$ up to the biases' shares: if the
# relevance at a layer's output is $z \odot g$ ($g$ the gradient there), the
# rule gives $x \odot W^\top g$, which is $x$ times the gradient at the input;
# ReLUs and max pooling keep that form. (On a network without biases the two
# are equal: a property test proves it on random networks.)

# %%
lrp_eps = explain.lrp(vgg, horse, "horse", "epsilon").map
ixg = explain.input_x_gradient(vgg, horse, "horse").map
corr = np.corrcoef(lrp_eps.ravel(), ixg.ravel())[0, 1]
corr_plus = np.corrcoef(r.map.ravel(), ixg.ravel())[0, 1]
print(f"correlation with Input x Gradient: LRP-epsilon {corr:.7f}, LRP epsilon-plus {corr_plus:+.3f}")
assert corr > 0.999 and abs(corr_plus) < 0.5

# %% [markdown]
# ## 4. The composites on a real image, and what Guided Backprop does not do
#
# The cat|dog image with `resnet20_cifar10`, explained for 'cat' and for
# 'dog'. ResNet-20 has BatchNorm after every convolution: for the pass it is
# merged into the convolution (the rule sees $w' = w \cdot \gamma/\sigma$,
# $b' = (b - \mu)\gamma/\sigma + \beta$) and the residual addition shares
# its relevance between the two summands in proportion to their values:

# %%
resnet = minicnn.load("resnet20_cifar10")
image = explain.cat_dog_image()
X = np.repeat(preprocess(image, resnet.meta["preprocessing"]), 2, axis=0)
targets = ["cat", "dog"]
maps = {"Guided Backprop": explain.guided_backprop(resnet, X, targets).map}
for composite in ("epsilon", "epsilon-plus", "epsilon-gamma-box"):
    result = explain.lrp(resnet, X, targets, composite)
    maps[f"LRP {composite}"] = result.map
for name in ("conv1", "bn1", "layer2.0.conv1", "layer2.0.add"):
    print(f"  {name:15s} {result.rules[name]}")


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def cat_half_share(m):
    """Share of the positive relevance (summed over colours) on the left, cat, half."""
    pos = np.clip(m.sum(axis=0), 0, None)
    return float(pos[:, :32].sum() / pos.sum())


print(f"{'method':22s} {'cat vs dog':>10s} {'cat: on cat half':>17s} {'dog: on cat half':>17s}")
stats = {}
for name, m in maps.items():
    stats[name] = (correlation(m[0], m[1]), cat_half_share(m[0]), cat_half_share(m[1]))
    print(f"{name:22s} {stats[name][0]:10.2f} {stats[name][1]:17.0%} {stats[name][2]:17.0%}")
assert stats["Guided Backprop"][0] > 0.7
assert stats["LRP epsilon-plus"][0] < 0 and stats["LRP epsilon-gamma-box"][0] < 0
assert stats["LRP epsilon-plus"][1] > 0.7 > 0.2 > stats["LRP epsilon-plus"][2]

# %% [markdown]
# Guided Backprop's 'cat' and 'dog' pictures correlate at about 0.8 (lesson
# 5): at every ReLU it throws away the negative part of the *signal*, so what
# reaches the pixels hardly depends on where it started. LRP's z+ and gamma
# rules pass the ReLU unchanged and share relevance by *contributions*
# $x_i w_{ij}$ of the forward pass, keeping the books at every layer: the
# 'cat' and 'dog' maps are anti-correlated and each sits on its own animal.
# The epsilon rule alone is Input x Gradient again: sharp, signed, noisy.

# %%
fig, axes = plt.subplots(2, 1 + len(maps), figsize=(16, 5.8), constrained_layout=True)
for row, target in enumerate(targets):
    axes[row, 0].imshow(image, interpolation="bilinear")
    axes[row, 0].set_title(f"input; explaining '{target}'")
    for col, (name, m) in enumerate(maps.items(), start=1):
        ax = axes[row, col]
        if name == "Guided Backprop":
            g = m[row]
            g = np.clip(0.5 + 0.1 * (g - g.mean()) / (g.std() + 1e-12), 0, 1).transpose(1, 2, 0)
            ax.imshow(g, interpolation="bilinear")
        else:
            heat = m[row].sum(axis=0)
            a = np.percentile(np.abs(heat), 98)
            ax.imshow(image, interpolation="bilinear")
            im = ax.imshow(heat, cmap="RdBu_r", vmin=-a, vmax=a, alpha=0.6, interpolation="bilinear")
            fig.colorbar(im, ax=ax, orientation="horizontal", shrink=0.9, pad=0.02, aspect=30, extend="both",
                         ticks=[-a, 0, a], format="%.2g", label="relevance (sum over colours)")
        ax.set_title(f"{name} '{target}'\ncat vs dog correlation {stats[name][0]:+.2f}", fontsize=10)
for ax in axes.flat:
    ax.set_xticks([0, 31, 63])
    ax.set_yticks([0, 31])
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.suptitle("resnet20_cifar10 on cat|dog: Guided Backprop and three LRP composites "
             "(red: positive relevance, blue: negative; colours to the 98th percentile)", fontsize=12)
fig.savefig(FIGURES / "11_lrp_vs_guided.png", dpi=100)
print("wrote", FIGURES / "11_lrp_vs_guided.png")

# %% [markdown]
# ## What to take away
#
# - LRP is a backward pass with other local rules; each rule is "divide by
#   $z$, run the layer's backward, multiply by the input", with a different
#   choice of weights, inputs and denominator.
# - Relevance is conserved layer by layer, except for the share each bias
#   and stabiliser keeps: the books balance to rounding.
# - With the epsilon rule alone LRP is (nearly) Input x Gradient; the z+ and
#   gamma rules on convolutions make it class-discriminative, where Guided
#   Backprop is not.
#
# Lesson 12 looks at another way to turn gradients into attributions that
# add up: Integrated Gradients.
