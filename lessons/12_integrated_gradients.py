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
# # Lesson 12 · Integrated Gradients and its completeness, measured
#
# A gradient says how the score would change for a tiny change of the input;
# it does not say how much each input *contributed* to the score. Integrated
# Gradients (Sundararajan, Taly and Yan, ICML 2017) accumulates the gradient
# along the straight path from a baseline $x'$ (an input that means
# "nothing") to $x$:
#
# $$
# \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1 \frac{\partial y^c}{\partial x_i}\big(x' + \alpha (x - x')\big)\, d\alpha .
# $$
#
# Because the integral of a derivative along a path is the change of the
# function, the attributions add up to the change of the score,
# **completeness**:
#
# $$
# \sum_i \mathrm{IG}_i(x) = y^c(x) - y^c(x') .
# $$
#
# The integral is computed by a quadrature, and what is left of completeness,
# the *gap* $y^c(x) - y^c(x') - \sum_i \mathrm{IG}_i$, is the quadrature's
# error. This lesson measures it as the number of steps grows, and finds out
# why it falls so slowly on a ReLU network.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn import explain
from minicnn.explain.integrated_gradients import QUADRATURES, quadrature_rule
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample
from minicnn.layers import AvgPool2d, Conv2d, Flatten, Layer, Linear, ReLU, Sequential
from minicnn.model import Model

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Five quadratures
#
# Each approximates $\int_0^1 g(\alpha)\,d\alpha$ by $\sum_k w_k\, g(a_k)$,
# with the names captum uses. For 4 steps:

# %%
for name in QUADRATURES:
    a, w = quadrature_rule(name, 4)
    print(f"{name:18s} a = {np.round(a, 4)}   w = {np.round(w, 4)}")
    assert abs(w.sum() - 1) < 1e-15                      # every rule integrates a constant exactly

# %% [markdown]
# Gauss-Legendre places its points where a polynomial of degree $2n - 1$ is
# integrated exactly; the Riemann sums are exact for constants (left,
# right) or straight lines (middle, trapezoid). On a smooth integrand their
# errors fall as $1/n$, $1/n^2$ and faster than any power of $1/n$.

# %% [markdown]
# ## 2. The gap on a real network
#
# The shipped VGG-style network, a horse, the all-zero baseline (the mean
# colour, in the network's input space), 'horse' explained with 2, 8, 32
# and 128 steps of every rule:

# %%
vgg = minicnn.load("vgg_cifar10")
x = preprocess(load_sample("horse", 0), vgg.meta["preprocessing"])
STEPS = (2, 8, 32, 128)
gaps = {}
for name in QUADRATURES:
    results = [explain.integrated_gradients(vgg, x, "horse", steps=n, quadrature=name, progress=False) for n in STEPS]
    gaps[name] = np.array([abs(float(r.gap[0])) for r in results])
change = float(results[-1].scores[0] - results[-1].baseline_scores[0])
print(f"y(x) - y(x') = {change:.3f};  |gap| for steps {STEPS}:")
for name, g in gaps.items():
    print(f"  {name:18s} " + "  ".join(f"{v:9.2e}" for v in g) + f"   ({g[-1] / abs(change):.2%} left at 128)")
for name, g in gaps.items():
    assert g[-1] < 0.01 * abs(change) and g[0] > 10 * g[-1], name
assert any(np.any(np.diff(g) > 0) for g in gaps.values())          # more steps, a larger gap: it happens
assert gaps["gausslegendre"][-1] >= min(g[-1] for name, g in gaps.items() if name != "gausslegendre")

# %% [markdown]
# Every rule gets within a percent of completeness by 128 steps, but
# slowly, and not steadily: a rule can do *worse* with four times the steps.
# Gauss-Legendre, whose error on a smooth function would vanish long before
# 32 steps, is no better than the others here.

# %% [markdown]
# ## 3. Why: along the path, the gradient is a step function
#
# A network of ReLUs, max pooling and linear layers is piecewise linear in
# its input. Along the straight path $x' + \alpha (x - x')$ a ReLU unit
# switches on or off at some $\alpha$, and between switches nothing changes
# but the inputs' scale: the integrand
# $g(\alpha) = \nabla y^c(x' + \alpha(x - x')) \cdot (x - x')$ is constant
# there, and jumps at every switch. Count the switches on 128 points of the path:

# %%
POINTS = 128
alphas = (np.arange(POINTS) + 0.5) / POINTS
path = (alphas[:, None, None, None] * x).astype(np.float32)          # x' = 0
logits = vgg.forward(path)
c = vgg.classes.index("horse")
grads = vgg.backward(explain.onehot(np.full(POINTS, c), 10, logits.dtype))
g = (grads * x).reshape(POINTS, -1).sum(axis=1)                       # g(alpha) at each point
relus = [name for name, layer in vgg.layers() if isinstance(layer, ReLU)]
switching = sum(int(np.any((vgg.activations[n] > 0) != (vgg.activations[n][:1] > 0), axis=0).sum()) for n in relus)
units = sum(vgg.activations[n][0].size for n in relus)
print(f"{switching} of {units} ReLU units switch along the path; g(alpha) ranges over "
      f"[{g.min():.2f}, {g.max():.2f}]; mean {g.mean():.3f} vs y(x) - y(x') = {change:.3f}")
assert switching > 100
assert abs(g.mean() - change) < 0.01 * abs(change)           # the midpoint rule with 128 points, again

# %% [markdown]
# Thousands of small jumps: a quadrature rule's error on a jump of height
# $J$ is about $J$ times the spacing of its points, so it falls as $1/n$,
# whatever the rule, and its sign depends on where the points land. (The
# property tests of minicnn check the other side of this argument: on random
# networks whose activations are smooth, 256 Gauss-Legendre points leave a
# gap below $10^{-6}$.)
#
# The same experiment with the ReLUs replaced by a smooth function, softplus
# $\log(1 + e^z)$, makes the point. A layer for it is two lines: its
# forward, and its backward $dx = dout \cdot \sigma(x)$; minicnn needs
# nothing else to backpropagate through it.

# %%
class Softplus(Layer):
    """out = log(1 + e^x); dx = dout * sigmoid(x)."""

    def forward(self, x):
        return np.logaddexp(0, x), x

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout / (1 + np.exp(-cache)), {}


def small_network(activation, seed=0):
    rng = np.random.default_rng(seed)
    conv, fc = Conv2d(3, 8, 3, padding=1), Linear(8 * 4 * 4, 3)
    conv.params = {"weight": rng.standard_normal((8, 3, 3, 3)) / 5, "bias": rng.standard_normal(8) / 5}
    fc.params = {"weight": rng.standard_normal((3, 128)) / 10, "bias": rng.standard_normal(3) / 10}
    root = Sequential([("conv", conv), ("act", activation()), ("pool", AvgPool2d(2)), ("flatten", Flatten()),
                       ("fc", fc)])
    return Model(root, {"name": activation.__name__})


x_small = np.random.default_rng(1).standard_normal((1, 3, 8, 8))
small_gaps = {}
for activation in (ReLU, Softplus):
    net = small_network(activation)
    small_gaps[activation.__name__] = [abs(float(explain.integrated_gradients(net, x_small, 0, steps=n).gap[0]))
                                       for n in (2, 4, 8, 16, 32)]
    print(f"{activation.__name__:9s} Gauss-Legendre |gap| for 2..32 steps: "
          + "  ".join(f"{v:8.1e}" for v in small_gaps[activation.__name__]))
assert small_gaps["Softplus"][-1] < 1e-10 < small_gaps["ReLU"][-1]

# %% [markdown]
# ## 4. The baseline is a choice
#
# Completeness holds for any baseline, and so IG answers "what made the
# score differ from the baseline's?" Four common choices, in the network's
# input space: all zeros (the mean colour), the black image, a blurred copy
# of the image and uniform noise over the pixel range. 64 Gauss-Legendre
# steps each:

# %%
baselines = {}
for name in ("zeros", "black", "blur", "uniform"):
    r = explain.integrated_gradients(vgg, x, "horse", baseline=name, steps=64, progress=False)
    baselines[name] = r
    delta = float(r.scores[0] - r.baseline_scores[0])
    print(f"{name:8s} y(x') = {float(r.baseline_scores[0]):7.3f}   sum IG = {r.map.sum():7.3f}   "
          f"y(x) - y(x') = {delta:7.3f}   gap {float(r.gap[0]):+.3f}")
    assert abs(float(r.gap[0])) < 0.05 * max(abs(delta), 1.0), name

# %%
fig = plt.figure(figsize=(17, 7.6), constrained_layout=True)
grid = fig.add_gridspec(2, 5, height_ratios=[1.15, 1])
ax = fig.add_subplot(grid[0, :2])
for name, gap in gaps.items():
    ax.loglog(STEPS, gap / abs(change), "o-", label=name)
ax.loglog(STEPS, 1.0 / np.array(STEPS), "k:", label="1 / steps")
ax.set_xlabel("steps")
ax.set_ylabel("|gap| / |y(x) - y(x')|")
ax.set_title("vgg_cifar10, horse: what is left of completeness")
ax.legend(fontsize=8)
ax = fig.add_subplot(grid[0, 2:4])
ax.plot(alphas, g, lw=0.8)
ax.axhline(change, color="k", ls=":", label=f"its mean: y(x) - y(x') = {change:.2f}")
ax.set_xlabel("alpha (x' = 0 to x)")
ax.set_ylabel("g(alpha) = grad y . (x - x')")
ax.set_title(f"the integrand: {switching} ReLU units switch along the path")
ax.legend(fontsize=8)
ax = fig.add_subplot(grid[0, 4])
for name, values in small_gaps.items():
    ax.semilogy([2, 4, 8, 16, 32], np.maximum(values, 1e-17), "o-", label=f"small net, {name}")
ax.set_xlabel("Gauss-Legendre steps")
ax.set_ylabel("|gap|")
ax.set_title("smooth vs piecewise linear")
ax.legend(fontsize=8)
picture = np.clip(x[0].transpose(1, 2, 0) * np.array(vgg.meta["preprocessing"]["std"])
                  + np.array(vgg.meta["preprocessing"]["mean"]), 0, 1)
for col, (name, r) in enumerate(baselines.items()):
    ax = fig.add_subplot(grid[1, col])
    heat = r.map[0].sum(axis=0)
    a = np.percentile(np.abs(heat), 98)
    ax.imshow(picture, interpolation="bilinear")
    im = ax.imshow(heat, cmap="RdBu_r", vmin=-a, vmax=a, alpha=0.65, interpolation="bilinear")
    ax.set_title(f"baseline '{name}': sum IG = {r.map.sum():.2f}")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, orientation="horizontal", shrink=0.85, extend="both", ticks=[-a, 0, a], format="%.2g",
                 label="IG, summed over colours")
ax = fig.add_subplot(grid[1, 4])
ax.imshow(picture, interpolation="bilinear")
ax.set_title("the horse (32x32)")
ax.set_xticks([])
ax.set_yticks([])
fig.suptitle("Integrated Gradients: completeness, measured as the steps grow, and the choice of baseline", fontsize=13)
fig.savefig(FIGURES / "12_ig_completeness.png", dpi=100)
print("wrote", FIGURES / "12_ig_completeness.png")

# %% [markdown]
# ## What to take away
#
# - IG's attributions add up to $y^c(x) - y^c(x')$ up to the quadrature's
#   error, which `explain.integrated_gradients` returns as the ``gap``.
# - On a ReLU network the integrand is a step function along the path, so
#   the gap falls only as about $1/\text{steps}$ for every rule: here 32
#   steps left up to 8%, 128 steps under 1%. Check the gap before trusting
#   the sum.
# - The baseline is part of the question: each one gives a different map,
#   each complete with respect to its own $y^c(x')$.
