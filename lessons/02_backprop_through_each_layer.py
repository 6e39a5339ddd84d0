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
# # Lesson 2 · Backprop through each layer
#
# A network's backward pass is the chain rule applied one layer at a time.
# Each layer receives $G = \partial L / \partial\,\mathrm{out}$ (the
# *upstream gradient*, same shape as its output) and must return
# $\partial L / \partial x$, plus $\partial L / \partial W$ and
# $\partial L / \partial b$ if it has parameters. This lesson derives those
# for the four layers of a classic CNN (dense, convolution, ReLU, max
# pooling), prints the engine's backward next to each derivation, and
# **proves** each one with finite differences; then it breaks a derivative on
# purpose and watches the proof fail.
#
# The recipe for a proof. Pick a random $G$ and define the scalar
# $L(x) = \sum \mathrm{out}(x) \odot G$; then $\partial L/\partial\,\mathrm{out} = G$,
# so the backward pass fed with $G$ must return $\nabla_x L$. Estimate that
# gradient one coordinate at a time by central differences,
#
# $$
# \frac{\partial L}{\partial x_i} \approx \frac{L(x + h e_i) - L(x - h e_i)}{2h},
# \qquad \text{error } O(h^2),
# $$
#
# in float64 with $h = 10^{-6}$, and compare with a relative error
# $\max_i |a_i - b_i| \,/\, \max_i (|a_i| + |b_i|)$. A correct backward
# lands near $10^{-10}$; a wrong one near 1. The threshold in between is
# $10^{-7}$. `minicnn.gradcheck.check_layer` does all of this for one layer.

# %%
import inspect
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minicnn
from minicnn.errors import GradientCheckError
from minicnn.gradcheck import check_function, check_layer, numerical_gradient
from minicnn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential
from minicnn.layers.activation import relu_backward_plain
from minicnn.layers.conv import conv2d_backward, conv2d_backward_reference, conv2d_forward
from minicnn.layers.linear import linear_backward
from minicnn.layers.pool import avgpool2d_backward, maxpool2d_backward, maxpool2d_backward_reference
from minicnn.windows import pad, unpad

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
TOL = 1e-7
rng = np.random.default_rng(2)
results = {}          # check name -> relative error, for the summary figure


def randomise(layer):
    """Random float64 parameters (a new layer holds zeros, which would hide mistakes)."""
    for name, p in layer.params.items():
        layer.params[name] = rng.standard_normal(p.shape)
    return layer


def away_from_zero(shape, low=0.05):
    """Values in [-1, -low] U [low, 1]: no ReLU kink within a finite-difference step."""
    return rng.uniform(low, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


# %% [markdown]
# ## 1. Dense layer
#
# PyTorch stores $W$ as (out_features, in_features), so for $x$ $(N, D)$,
# $W$ $(M, D)$, $b$ $(M,)$:
#
# $$
# \mathrm{out}[n, m] = \sum_d x[n, d]\, W[m, d] + b[m].
# $$
#
# Differentiate $L = \sum_{n,m} G[n,m]\,\mathrm{out}[n,m]$ entry by entry.
# $x[n,d]$ appears in row $n$ of the output, once per $m$, with
# coefficient $W[m,d]$; $W[m,d]$ appears in column $m$, once per $n$, with
# coefficient $x[n,d]$; $b[m]$ appears once per $n$:
#
# $$
# \frac{\partial L}{\partial x[n,d]} = \sum_m G[n,m]\, W[m,d], \qquad
# \frac{\partial L}{\partial W[m,d]} = \sum_n G[n,m]\, x[n,d], \qquad
# \frac{\partial L}{\partial b[m]} = \sum_n G[n,m],
# $$
#
# that is, in matrix form,
#
# $$
# dx = G\,W \;(N, D), \qquad dW = G^\top x \;(M, D), \qquad db = \textstyle\sum_n G[n, :] \;(M,).
# $$
#
# A quick sanity rule: each gradient has the shape of the thing it is the
# gradient of, and there is only one way to multiply the available matrices
# to get that shape. The engine's code is the matrix form, line for line:

# %%
print(inspect.getsource(linear_backward))

# %%
dense = randomise(Linear(5, 3))
x_dense = rng.standard_normal((4, 5))
errors = check_layer(dense, x_dense)
print("Linear(5, 3), relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
assert set(errors) == {"x", "weight", "bias"} and max(errors.values()) < TOL
results.update({f"dense d{k}": v for k, v in errors.items()})

# %% [markdown]
# Now break it: flip the sign of $dW$ (a classic slip that turns gradient
# descent into gradient ascent). The check raises `GradientCheckError` and
# its message names the array, the worst index and both values. For a sign
# flip the relative error is exactly $|a - (-a)| / (|a| + |-a|) = 1$.

# %%
class DenseSignFlip(Linear):
    def backward(self, dout, cache, param_grads=False, relu="plain"):
        dx, grads = super().backward(dout, cache, param_grads, relu)
        return dx, {**grads, "weight": -grads["weight"]}


wrong = DenseSignFlip(5, 3)
wrong.params = dict(dense.params)
try:
    check_layer(wrong, x_dense)
    raise AssertionError("the gradient check accepted a sign-flipped dW")
except GradientCheckError as e:
    print("GradientCheckError:", e)
err = check_layer(wrong, x_dense, tol=np.inf)["weight"]      # tol=inf: report, never raise
assert abs(err - 1.0) < 1e-6
results["dense dW, sign flipped (wrong)"] = err

# %% [markdown]
# ## 2. Convolution
#
# From lesson 1, with $x^p$ the zero-padded input, stride $s$:
#
# $$
# \mathrm{out}[n,f,i,j] = b_f + \sum_{c,u,v} w[f,c,u,v]\; x^p[n,c,\,is+u,\,js+v].
# $$
#
# The same reasoning as for the dense layer, one coefficient at a time:
#
# $$
# \frac{\partial L}{\partial b_f} = \sum_{n,i,j} G[n,f,i,j], \qquad
# \frac{\partial L}{\partial w[f,c,u,v]} = \sum_{n,i,j} G[n,f,i,j]\; x^p[n,c,\,is+u,\,js+v].
# $$
#
# $dw$ is itself a correlation: the input windows weighted by the upstream
# gradient. For the input, $x^p[n,c,r,q]$ is read by every output $(i,j)$
# whose window covers it, at tap $u = r - is$, $v = q - js$:
#
# $$
# \frac{\partial L}{\partial x^p[n,c,r,q]} =
# \sum_{f}\;\sum_{\substack{i,j,u,v\\ is+u=r,\; js+v=q}} G[n,f,i,j]\; w[f,c,u,v],
# $$
#
# and $dx$ is $dx^p$ with the padding cut off (gradient that lands on padding
# has nowhere to go). Read as code: *every output gradient flows back,
# through the weight that produced it, to each input its window read*. For
# stride 1, substitute $u = r - i$:
# $dx^p[n,c,r,q] = \sum_f \sum_{i,j} G[n,f,i,j]\, w[f,c,r-i,q-j]$, a **true
# convolution** of $G$ with the kernel, i.e. a correlation of $G$ (padded by
# $k-1$) with the kernel **rotated by 180°**, with input and output channels
# swapped. The engine's reference tier is the scatter, loop for loop:

# %%
print(inspect.getsource(conv2d_backward_reference))

# %% [markdown]
# Its fast tier is the same three sums as matrix products on the im2col
# columns of lesson 1: $dW = G_\text{mat} X_\text{col}^\top$ and
# $dX_\text{col} = W_\text{row}^\top G_\text{mat}$, folded back onto the
# input by `col2im` (the adjoint of im2col: it *adds* each column entry to
# the pixel it was read from, which is exactly the scatter above).

# %%
print(inspect.getsource(conv2d_backward))

# %% [markdown]
# Check the rotated-kernel reading of $dx$ (stride 1) against the engine:

# %%
def conv_dx_by_rotated_kernel(G, w, padding):
    """Stride 1: dx = correlate(pad(G, k-1), rot180(w) with channels swapped), padding cut off."""
    k = w.shape[2]
    w_rot = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)        # (C, F, k, k)
    return unpad(conv2d_forward(pad(G, k - 1), w_rot), padding)


x_conv = rng.standard_normal((2, 3, 6, 6))
w_conv = rng.standard_normal((4, 3, 3, 3))
G_conv = rng.standard_normal((2, 4, 6, 6))                   # padding 1 keeps 6x6
dx_engine, _, _ = conv2d_backward(G_conv, x_conv, w_conv, 1, 1)
np.testing.assert_allclose(conv_dx_by_rotated_kernel(G_conv, w_conv, 1), dx_engine, rtol=1e-12, atol=1e-12)
print("stride 1: dx = G correlated with the rotated kernel, equal to the engine's dx")

# %% [markdown]
# And the proof by finite differences, for a layer with stride 2 and
# padding 1 (so windows skip pixels and some read padding):

# %%
conv = randomise(Conv2d(3, 4, 3, stride=2, padding=1))
x_c = rng.standard_normal((2, 3, 7, 7))
errors = check_layer(conv, x_c)
print("Conv2d(3, 4, 3, stride=2, padding=1), relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
assert set(errors) == {"x", "weight", "bias"} and max(errors.values()) < TOL
results.update({f"conv d{k}": v for k, v in errors.items()})

# %% [markdown]
# The classic mistake: forget to rotate the kernel in $dx$. The check
# catches it with a random kernel. But notice the second half of the cell:
# with a kernel that happens to be symmetric under 180° rotation, the wrong
# formula gives the right numbers and *passes*. That is why a gradient
# check must use random weights and a random $G$, never "nice" ones.

# %%
def conv_dx_unrotated(G, w, padding):
    """The mistake: the same correlation with the kernel as it is (not rotated)."""
    k = w.shape[2]
    return unpad(conv2d_forward(pad(G, k - 1), w.transpose(1, 0, 2, 3)), padding)


def conv_out(x, w):
    return conv2d_forward(x, w, None, 1, 1)


try:
    check_function(lambda v: conv_out(v, w_conv), x_conv, conv_dx_unrotated(G_conv, w_conv, 1),
                   dout=G_conv, name="conv dx, kernel not rotated")
    raise AssertionError("the gradient check accepted an unrotated kernel")
except GradientCheckError as e:
    print("GradientCheckError:", e)
results["conv dx, kernel not rotated (wrong)"] = check_function(
    lambda v: conv_out(v, w_conv), x_conv, conv_dx_unrotated(G_conv, w_conv, 1), dout=G_conv, tol=np.inf)
assert results["conv dx, kernel not rotated (wrong)"] > 0.1

w_sym = (w_conv + w_conv[:, :, ::-1, ::-1]) / 2              # equal to its own rotation
err_sym = check_function(lambda v: conv_out(v, w_sym), x_conv, conv_dx_unrotated(G_conv, w_sym, 1),
                         dout=G_conv)
print(f"the same mistake with a 180-degree-symmetric kernel: relative error {err_sym:.1e} (passes!)")
assert err_sym < TOL

# %% [markdown]
# What $dx$ looks like for one channel and one asymmetric kernel (a
# "right minus left" edge detector): each upstream gradient is stamped onto
# the input through the rotated kernel. The backward pass and finite
# differences agree; the unrotated kernel stamps the mirror image.

# %%
x_one = rng.standard_normal((1, 1, 8, 8))
w_edge = np.array([[[[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]]])
G_one = np.zeros((1, 1, 8, 8))
G_one[0, 0, 2, 2], G_one[0, 0, 5, 5] = 1.0, -0.5             # two point gradients: see the stamps
dx_backward, _, _ = conv2d_backward(G_one, x_one, w_edge, 1, 1)
dx_fd = numerical_gradient(lambda v: conv_out(v, w_edge), x_one.copy(), G_one)
dx_wrong = conv_dx_unrotated(G_one, w_edge, 1)
np.testing.assert_allclose(dx_backward, dx_fd, atol=1e-8)
assert np.allclose(dx_wrong, -dx_backward)                   # this kernel's rotation is its negative

fig, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
panels = [(G_one, "upstream gradient G (two points)"), (dx_backward, "dx by the backward pass"),
          (dx_fd, "dx by finite differences"), (dx_wrong, "kernel not rotated (wrong)")]
for ax, (data, title) in zip(axes, panels):
    im = ax.imshow(data[0, 0], cmap="RdBu_r", vmin=-2, vmax=2)
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, shrink=0.85, label="gradient")
fig.suptitle("Convolution backward: each upstream gradient is stamped through the kernel rotated by 180°",
             fontsize=13)
fig.savefig(FIGURES / "02_conv_dx.png", dpi=100)
print("wrote", FIGURES / "02_conv_dx.png")

# %% [markdown]
# ## 3. ReLU
#
# $\mathrm{out} = \max(x, 0)$ elementwise, so each output depends on one
# input, with slope 1 where $x > 0$ and 0 where $x < 0$:
#
# $$
# dx = G \odot \mathbb{1}[x > 0].
# $$
#
# At $x = 0$ there is no derivative (the left slope is 0, the right slope
# 1); PyTorch, and minicnn, use 0 there. The engine reads the mask off the
# output ($\mathrm{out} > 0 \iff x > 0$), so it keeps nothing extra:

# %%
print(inspect.getsource(relu_backward_plain))

# %% [markdown]
# Finite differences *straddling* the kink see neither slope: at $x = 0$
# they return $(h - 0)/2h = 1/2$. So a ReLU check keeps its inputs away from
# zero (here $|x| \ge 0.05 \gg h$); the kink is a convention, not an error.

# %%
relu = ReLU()
at_kink = numerical_gradient(lambda v: relu.forward(v)[0], np.zeros((1, 1, 1, 1)), np.ones((1, 1, 1, 1)))
dx_at_kink, _ = relu.backward(np.ones((1, 1, 1, 1)), relu.forward(np.zeros((1, 1, 1, 1)))[1])
print(f"at x = 0: finite differences {at_kink.item():.3f}, the backward (PyTorch's convention) {dx_at_kink.item()}")
assert abs(at_kink.item() - 0.5) < 1e-9 and dx_at_kink.item() == 0.0

x_relu = away_from_zero((2, 3, 5, 5))
errors = check_layer(relu, x_relu)
print("ReLU, relative error:", {k: f"{v:.1e}" for k, v in errors.items()})
assert set(errors) == {"x"} and errors["x"] < TOL
results["ReLU dx"] = errors["x"]


# %%
class ReLUNoMask(ReLU):
    """The mistake: pass the gradient through everywhere, as if ReLU were the identity."""

    def backward(self, dout, cache, param_grads=False, relu="plain"):
        return dout, {}


try:
    check_layer(ReLUNoMask(), x_relu)
    raise AssertionError("the gradient check accepted a ReLU without its mask")
except GradientCheckError as e:
    print("GradientCheckError:", e)
results["ReLU dx, mask forgotten (wrong)"] = check_layer(ReLUNoMask(), x_relu, tol=np.inf)["x"]

# %% [markdown]
# ## 4. Max pooling
#
# $\mathrm{out}[n,c,i,j] = \max_{u,v} x^p[n,c,\,is+u,\,js+v]$. Near a point
# where the maximum of a window is unique, the max *is* that one entry, so
# its derivative is 1 for that entry and 0 for the others:
#
# $$
# dx^p[n,c,\,is+u^*,\,js+v^*] \mathrel{+}= G[n,c,i,j], \qquad
# (u^*, v^*) = \operatorname*{arg\,max}_{u,v}\; x^p[n,c,\,is+u,\,js+v].
# $$
#
# The gradient is *routed*, not spread: one entry per window receives it
# all. The $\mathrel{+}=$ matters when windows overlap (stride < kernel):
# one pixel can be the maximum of several windows and collects all their
# gradients. The reference tier, and the vectorised tier that loops over the
# $k_h k_w$ taps instead of over the windows:

# %%
print(inspect.getsource(maxpool2d_backward_reference))
print(inspect.getsource(maxpool2d_backward))

# %% [markdown]
# Ties break finite differences the same way the ReLU kink does, so the
# check uses distinct values (a shuffled grid, $0.01$ apart). Two layers:
# the usual $2 \times 2$ / stride 2, and an overlapping $3 \times 3$ /
# stride 2 with padding 1 (padding for max pooling is $-\infty$, never the
# maximum).

# %%
def distinct(shape, gap=0.01):
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).reshape(shape)


x_pool = distinct((2, 3, 6, 6))
for layer in (MaxPool2d(2), MaxPool2d(3, stride=2, padding=1)):
    errors = check_layer(layer, x_pool)
    k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
    print(f"MaxPool2d({k}, stride={s}, padding={p}), relative error: {errors['x']:.1e}")
    assert errors["x"] < TOL
    results[f"max pool {k}x{k}/{s} dx"] = errors["x"]


# %% [markdown]
# A wrong derivative: spreading $G$ evenly over the window (average
# pooling's backward) instead of routing it to the maximum.

# %%
class MaxPoolSpread(MaxPool2d):
    def backward(self, dout, cache, param_grads=False, relu="plain"):
        x, _out = cache
        return avgpool2d_backward(dout, x.shape, self.kernel_size, self.stride, self.padding), {}


try:
    check_layer(MaxPoolSpread(2), x_pool)
    raise AssertionError("the gradient check accepted an averaged max-pool gradient")
except GradientCheckError as e:
    print("GradientCheckError:", e)
results["max pool dx, spread evenly (wrong)"] = check_layer(MaxPoolSpread(2), x_pool, tol=np.inf)["x"]

# %% [markdown]
# ### The tie rule
#
# Ties are not rare: after a ReLU, a window of four zeros has four maxima.
# The derivative does not exist there (finite differences give $1/2$ to each
# tied entry, so their "gradients" sum to 2, not 1). Any one of the tied
# entries is a valid choice (a subgradient); the engine, like PyTorch, sends
# the whole gradient to the **first** maximum in row-major order. Below, the
# top-left window is all zeros, the top-right has a tie between its
# top-right and bottom-left entries, and the bottom windows have unique
# maxima.

# %%
x_tie = np.array([[[[0.0, 0.0, 1.0, 3.0],
                    [0.0, 0.0, 3.0, 2.0],
                    [5.0, 1.0, 0.0, 2.0],
                    [2.0, 4.0, 7.0, 1.0]]]])
G_tie = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
pool = MaxPool2d(2)
out_tie, cache_tie = pool.forward(x_tie)
dx_tie, _ = pool.backward(G_tie, cache_tie)
print("input:\n", x_tie[0, 0], "\nG:\n", G_tie[0, 0], "\ndx (first maximum, row-major):\n", dx_tie[0, 0])
expected = np.array([[1.0, 0.0, 0.0, 2.0],
                     [0.0, 0.0, 0.0, 0.0],
                     [3.0, 0.0, 0.0, 0.0],
                     [0.0, 0.0, 4.0, 0.0]])
assert np.array_equal(dx_tie[0, 0], expected)
fd_tie = numerical_gradient(lambda v: pool.forward(v)[0], x_tie.copy(), np.ones_like(G_tie))
print("finite differences in the all-zero window:", fd_tie[0, 0, :2, :2].ravel())
assert np.allclose(fd_tie[0, 0, :2, :2], 0.5)

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.3), constrained_layout=True)
for ax, data, title, cmap, dark_when_low in [
        (axes[0], x_tie[0, 0], "input x (2x2 windows outlined)", "viridis", True),
        (axes[1], G_tie[0, 0], "upstream gradient G", "Oranges", False),
        (axes[2], dx_tie[0, 0], "dx: G routed to the first maximum", "Oranges", False)]:
    im = ax.imshow(data, cmap=cmap, vmin=0)
    for (r, c), value in np.ndenumerate(data):
        low = value < data.max() / 2
        ax.text(c, r, f"{value:g}", ha="center", va="center", fontsize=13,
                color="white" if low == dark_when_low else "black")
    if data.shape == (4, 4):
        ax.axhline(1.5, color="k", lw=2)
        ax.axvline(1.5, color="k", lw=2)
    ax.set_xticks(range(data.shape[1]))
    ax.set_yticks(range(data.shape[0]))
    ax.set_title(title)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    fig.colorbar(im, ax=ax, shrink=0.85, label="value" if ax is axes[0] else "gradient")
fig.suptitle("Max pooling backward: one entry per window gets the gradient; ties go to the first maximum",
             fontsize=13)
fig.savefig(FIGURES / "02_maxpool_routing.png", dpi=100)
print("wrote", FIGURES / "02_maxpool_routing.png")

# %% [markdown]
# ## 5. The chain rule does the rest
#
# Proven layers compose: a model's backward is each layer's backward in
# reverse order, each one handing its $dx$ to the layer before as that
# layer's $G$. `minicnn.gradcheck` on a whole (tiny) model checks $dx$ and
# every parameter gradient at once.

# %%
tiny = minicnn.Model(Sequential([
    ("conv", randomise(Conv2d(2, 3, 3, padding=1))), ("relu", ReLU()), ("pool", MaxPool2d(2)),
    ("flatten", Flatten()), ("fc", randomise(Linear(3 * 3 * 3, 4))),
]), {"name": "tiny"})
errors = minicnn.gradcheck(tiny, rng.standard_normal((2, 2, 6, 6)))
print("whole model, relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
assert max(errors.values()) < TOL
results["whole model (max)"] = max(errors.values())

# %%
names = list(results)
values = np.array([results[n] for n in names])
is_wrong = np.array(["(wrong)" in n for n in names])
fig, ax = plt.subplots(figsize=(9, 6.5), constrained_layout=True)
ax.barh(names, np.maximum(values, 1e-16), color=np.where(is_wrong, "tab:red", "tab:green"))
ax.axvline(TOL, color="k", ls="--", label=f"pass threshold {TOL:g}")
ax.set_xscale("log")
ax.set_xlim(1e-14, 3)
ax.invert_yaxis()
ax.set_xlabel("relative error against central differences (log scale)")
ax.set_title("Every backward proven; every deliberate mistake caught")
ax.legend(loc="lower right")
fig.savefig(FIGURES / "02_gradient_checks.png", dpi=100)
print("wrote", FIGURES / "02_gradient_checks.png")
assert np.all(values[~is_wrong] < TOL) and np.all(values[is_wrong] > 1e-2)

# %% [markdown]
# ## What to take away
#
# | layer | $dx$ | $dW$ | $db$ |
# |---|---|---|---|
# | dense | $G\,W$ | $G^\top x$ | $\sum_n G$ |
# | convolution | $G$ correlated with the rotated kernel (stride 1) | $G$-weighted windows | $\sum_{n,i,j} G$ |
# | ReLU | $G \odot \mathbb{1}[x > 0]$ | – | – |
# | max pooling | $G$ routed to each window's first maximum | – | – |
#
# - A correct backward agrees with finite differences to about $10^{-10}$
#   in float64; a wrong one misses by order 1. Nothing lies in between.
# - Check with random weights and a random upstream gradient, away from
#   kinks and ties: symmetric kernels, constant $G$ and ties hide mistakes.
#
# Lesson 9 uses exactly these backward passes, and nothing else, to train a
# small CNN from scratch.
