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
# # Lesson 4 · Grad-CAM step by step
#
# Lesson 3 ended with the shipped `vgg_cifar10` calling a photograph
# "horse". Grad-CAM (Selvaraju et al., *Grad-CAM: Visual Explanations from
# Deep Networks via Gradient-based Localization*, IJCV 2019) answers
# *where* in the image the evidence for "horse" is, with two equations.
# For a class $c$ with score $y^c$ and a convolutional layer whose output
# $A$ holds $K$ feature maps $A^k$ of $h \times w$ pixels ($Z = h w$):
#
# $$
# \alpha_k^c = \underbrace{\frac{1}{Z} \sum_i \sum_j}_{\text{global average pooling}}
#     \underbrace{\frac{\partial y^c}{\partial A^k_{ij}}}_{\text{gradients via backprop}}
# \qquad (1)
# $$
#
# $$
# L^c_\text{Grad-CAM} = \mathrm{ReLU}\Big(\underbrace{\sum_k \alpha_k^c A^k}_{\text{linear combination}}\Big)
# \qquad (2)
# $$
#
# This lesson computes every symbol by hand, one cell per step, prints its
# shape, checks the gradient against finite differences, and at the end
# asserts that the hand computation equals `minicnn.explain.gradcam`.
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
from minicnn.gradcheck import check_function, numerical_gradient
from minicnn.inputs.preprocess import preprocess
from minicnn.inputs.samples import load_sample
from minicnn.layers import softmax

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

model = minicnn.load("vgg_cifar10")
image = load_sample("horse", 3)                          # (32, 32, 3) uint8, lesson 3's horse
x = preprocess(image, model.meta["preprocessing"])       # (1, 3, 32, 32) float32

# %% [markdown]
# ## 1. The class score $y^c$, before the softmax
#
# $y^c$ is the **logit**, the network's raw output, not the probability
# $p^c = e^{y^c} / \sum_j e^{y^j}$. The reason is in the derivative of the
# softmax:
#
# $$
# \frac{\partial p^c}{\partial A} = p^c \Big( \frac{\partial y^c}{\partial A}
#     - \sum_j p^j \frac{\partial y^j}{\partial A} \Big),
# $$
#
# which mixes in every other class's gradient, and which shrinks to 0 as
# $p^c \to 1$: a confident prediction would have almost no gradient to
# explain. The logit's gradient is about class $c$ alone.

# %%
logits = model.forward(x)                                # (1, 10)
c = int(np.argmax(logits[0]))                            # the top-1 class
y_c = logits[0, c]
p = softmax(logits.astype(np.float64))[0]
print("logits:", ", ".join(f"{name} {float(y):.2f}" for name, y in zip(model.classes, logits[0])))
print(f"c = {c} ({model.classes[c]}), y^c = {y_c:.4f}, p^c = {p[c]:.4f}")
assert model.classes[c] == "horse"

# %% [markdown]
# ## 2. The feature maps $A$
#
# Grad-CAM can use any convolutional layer (lesson 8 compares them); the
# paper, and minicnn's default, take the last one after its ReLU: here
# `features.19`, 128 maps of $8 \times 8$, the last layer that still knows
# *where* things are (the max pool after it halves the resolution and the
# dense layers after that forget it). `model.activations` kept it.

# %%
layer = explain.default_layer(model)
A = model.activations[layer]                             # (N, K, h, w)
N, K, h, w = A.shape
Z = h * w
print(f"layer {layer!r}: A {A.shape}, K = {K} maps of {h}x{w}, Z = {Z}")
assert layer == "features.19" and A.shape == (1, 128, 8, 8)

# %% [markdown]
# ## 3. $\partial y^c / \partial A$ by backprop
#
# $y^c$ is one entry of the logits, so its gradient with respect to the
# logits is the one-hot vector $e_c$. Lesson 2's backward passes carry it
# down: `model.backward(e_c)` fills `model.gradients[name]` with
# $\partial y^c / \partial(\text{that layer's output})$, and
# `stop_at=layer` stops as soon as the layer we want is reached (nothing
# below it, and no parameter gradients, are computed). The gradient has
# the shape of $A$: one number per feature-map pixel.

# %%
e_c = np.zeros_like(logits)
e_c[0, c] = 1.0
model.backward(e_c, stop_at=layer)
dA = model.gradients[layer]                              # dy^c/dA, (N, K, h, w)
print("dy^c/dA:", dA.shape, dA.dtype)
assert dA.shape == A.shape

# %% [markdown]
# The probability's gradient would be the same pass with a different seed,
# $\partial p^c / \partial y = p^c (e_c - p)$, the softmax's derivative
# (checked here by finite differences). Its entries are small where the
# model is sure, and it mixes in the other classes, as section 1 said.

# %%
dp_dy = p[c] * (np.eye(len(p))[c] - p)                  # dp^c/dy, (K,)
assert check_function(lambda z: softmax(z[None])[0, c], logits[0].astype(np.float64), dp_dy) < 1e-7
model.backward(dp_dy[None].astype(np.float32), stop_at=layer)
dp_dA = model.gradients[layer]
print(f"dp^c/dy = {np.round(dp_dy, 3)}")
print(f"|dp^c/dA| / |dy^c/dA| = {np.linalg.norm(dp_dA) / np.linalg.norm(dA):.3f}")
model.forward(x)                                         # back to the state of section 3
A = model.activations[layer]
model.backward(e_c, stop_at=layer)
dA = model.gradients[layer]

# %% [markdown]
# Between $A$ and the logits sit a $2 \times 2$ max pool and the dense
# head. Lesson 2 showed that a max pool **routes** each window's gradient
# to one entry, its (first) maximum, so of every $2 \times 2$ window of
# $\partial y^c / \partial A$ at most one entry is nonzero, and the four
# entries of a window always add up to the gradient at the pooled output:

# %%
pooled = model.gradients["features.20"]                 # dy^c/d(max pool output), (1, 128, 4, 4)
windows = dA.reshape(N, K, h // 2, 2, w // 2, 2)
nonzero_per_window = (windows != 0).sum(axis=(3, 5))
print(f"nonzero entries per 2x2 window: at most {nonzero_per_window.max()}; "
      f"{np.count_nonzero(dA)} of {dA.size} entries are nonzero")
assert nonzero_per_window.max() == 1
np.testing.assert_allclose(windows.sum(axis=(3, 5)), pooled, rtol=1e-6, atol=1e-7)

# %% [markdown]
# ## 4. The same gradient by finite differences
#
# Is that backward pass right? Treat $y^c$ as a function of $A$ alone,
# $y^c(A)$: run the network from `features.19` onwards with $A$ replaced
# (`model.forward(x, replace={layer: A})`), nudge one entry by $\pm h$ and
# take the central difference
# $\big(y^c(A + h e_{kij}) - y^c(A - h e_{kij})\big) / 2h$. That needs
# float64 (in float32 the rounding error of each forward pass, about
# $10^{-7} |y^c|$, divided by $2h$, would swamp the result), so the check
# uses a float64 copy of the model (`model.astype(np.float64)`).
#
# **Where** to check matters. $y^c(A)$ is piecewise linear (ReLUs and max
# pools), so its derivative exists except on the kinks, and this layer is
# full of one kind of kink: after the ReLU, most $2 \times 2$ windows are
# all zeros, a four-way tie for the maximum (counted below). We
# check entries with $A^k_{ij} > 0$, where there is no tie: the six with
# the largest gradients (window maxima) and two that are not the maximum of
# their window (gradient exactly 0).

# %%
model64 = model.astype(np.float64)
x64 = x.astype(np.float64)
logits64 = model64.forward(x64)
A64 = model64.activations[layer].copy()
model64.backward(e_c.astype(np.float64), stop_at=layer)
dA64 = model64.gradients[layer].copy()
pooled64 = model64.gradients["features.20"].copy()
print(f"float32 and float64 logits differ by at most {np.abs(logits64 - logits).max():.1e}")

flat_A, flat_dA = A64.ravel(), dA64.ravel()
positive = np.flatnonzero(flat_A > 0)
largest = positive[np.argsort(-np.abs(flat_dA[positive]))[:6]]
not_max = positive[flat_dA[positive] == 0][:2]
entries = np.concatenate([largest, not_max])


def y_c_of(values, where=entries):
    """y^c with A's entries ``where`` (flat indices) set to ``values``, the rest unchanged."""
    A_new = A64.copy()
    A_new.ravel()[where] = values
    return model64.forward(x64, replace={layer: A_new})[0, c]


err = check_function(y_c_of, flat_A[entries], flat_dA[entries], name="dy^c/dA at features.19")
numeric = numerical_gradient(y_c_of, flat_A[entries].copy())
print(f"{'(k, i, j)':>14} {'A':>8} {'backprop':>11} {'finite diff.':>13}")
for e, num in zip(entries, numeric):
    kij = tuple(int(i) for i in np.unravel_index(e, A64.shape[1:]))
    print(f"{str(kij):>14} {flat_A[e]:8.4f} {flat_dA[e]:11.6f} {num:13.6f}")
print(f"relative error {err:.1e}")
assert err < 1e-7
assert np.all(flat_dA[not_max] == 0) and np.all(np.abs(numeric[-2:]) < 1e-9)

# %% [markdown]
# ### The kink at a max-pool tie
#
# Now one of the all-zero windows. The backward pass, like PyTorch's, hands
# the whole pooled gradient $g$ to the first entry (row-major) and 0 to
# the other three. Finite differences see something else: pushing any one
# of the four entries *up* by $h$ makes it the unique maximum (slope $g$),
# pushing it *down* changes nothing (the other zeros stay the maximum,
# slope 0), and the central difference averages the two slopes: $g/2$ for
# each entry. Neither is wrong; $y^c(A)$ simply has no derivative there,
# and any split of $g$ over the tied entries is a valid subgradient. For
# Grad-CAM the choice does not even matter: $\alpha$ *sums* the gradient
# over all pixels, and every split of $g$ sums to $g$.

# %%
A_windows = A.reshape(N, K, h // 2, 2, w // 2, 2)
all_zero = (A_windows[0] == 0).all(axis=(2, 4))            # (K, 4, 4): windows that are four-way ties
tied = np.argwhere(all_zero & (pooled[0] != 0))
k0, a0, b0 = tied[0]
window_entries = np.array([np.ravel_multi_index((0, k0, 2 * a0 + u, 2 * b0 + v), A64.shape)
                           for u in (0, 1) for v in (0, 1)])
print(f"{all_zero.sum()} of {all_zero.size} windows of A are all zeros; {len(tied)} of them pass a nonzero gradient")
g = float(pooled64[0, k0, a0, b0])
fd_tie = numerical_gradient(lambda v: y_c_of(v, window_entries), flat_A[window_entries].copy())
print(f"window (k={k0}, rows {2 * a0}-{2 * a0 + 1}, cols {2 * b0}-{2 * b0 + 1}), pooled gradient g = {g:.6f}")
print("  backprop:          ", np.round(flat_dA[window_entries], 6))
print("  finite differences:", np.round(fd_tie, 6))
np.testing.assert_allclose(flat_dA[window_entries], [g, 0, 0, 0], rtol=1e-12)
np.testing.assert_allclose(fd_tie, g / 2, rtol=1e-6)

# %% [markdown]
# ## 5. The neuron importance weights $\alpha_k^c$
#
# Equation (1) is a global average pool of the gradient: one number per
# feature map, $\alpha^c \in \mathbb{R}^K$. A large positive $\alpha_k^c$
# says "more of map $k$, anywhere, raises $y^c$"; a negative one says it
# lowers it.

# %%
alpha = dA.sum(axis=(2, 3)) / Z                          # (N, K): (1/Z) sum_ij dy^c/dA^k_ij
print("alpha:", alpha.shape)
order = np.argsort(-np.abs(alpha[0]))
print("largest |alpha_k|:", {int(k): round(float(alpha[0, k]), 4) for k in order[:8]})
print(f"{np.sum(alpha[0] > 0)} positive, {np.sum(alpha[0] < 0)} negative, {np.sum(alpha[0] == 0)} zero")
# By section 3, alpha is also a quarter of the spatial mean of the pooled gradient.
np.testing.assert_allclose(alpha, pooled.mean(axis=(2, 3)) / 4, rtol=1e-5, atol=1e-8)

# %% [markdown]
# A weight is only half of the story: map $k$ adds
# $\alpha_k^c \sum_{ij} A^k_{ij}$ to the total of the weighted sum, and a
# heavily weighted map that is silent on this image adds nothing. Several
# of the maps with the largest $|\alpha_k|$ are silent here, the largest of
# all among them (its negative weight says: what this map detects speaks
# against 'horse', and none of it is in the image); the maps that build the
# Grad-CAM map are others.

# %%
contribution = alpha[0] * A[0].sum(axis=(1, 2))          # (K,): alpha_k sum_ij A^k_ij
by_contribution = np.argsort(-np.abs(contribution))
print("largest contributions:", {int(k): round(float(contribution[k]), 4) for k in by_contribution[:6]})
print(f"the {len(order[:24])} largest weights contribute {contribution[order[:24]].sum():.3f} "
      f"of the total {contribution.sum():.3f}")
assert order[0] != by_contribution[0] and A[0, order[0]].max() == 0

fig, axes = plt.subplots(2, 1, figsize=(12, 7.5), constrained_layout=True)
for ax, values, ranked, label, what in [
        (axes[0], alpha[0], order[:24], r"$\alpha_k^c$ = mean of $\partial y^c / \partial A^k$",
         "the 24 largest |alpha_k|: neuron importance weights"),
        (axes[1], contribution, by_contribution[:24], r"$\alpha_k^c \sum_{ij} A^k_{ij}$",
         "the 24 largest contributions to the map (weight x activation)")]:
    ax.bar(range(len(ranked)), values[ranked], color=np.where(values[ranked] > 0, "tab:red", "tab:blue"))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(ranked)), [str(k) for k in ranked], rotation=90)
    ax.set_xlabel("feature map k")
    ax.set_ylabel(label)
    ax.set_title(what)
fig.suptitle(f"vgg_cifar10, {layer}, class '{model.classes[c]}' (red: raises the score, blue: lowers it)",
             fontsize=13)
fig.savefig(FIGURES / "04_alpha.png", dpi=100)
print("wrote", FIGURES / "04_alpha.png")

# %% [markdown]
# ## 6. The weighted sum, and what the ReLU removes
#
# The weighted sum $S = \sum_k \alpha_k^c A^k$ is an $h \times w$ map. It
# is positive where the maps that raise $y^c$ are active, negative where
# the maps that lower it are. The ReLU of equation (2) keeps the positive
# part: the paper wants the pixels whose intensity should be *increased* to
# increase $y^c$; the negative part is evidence for other classes, and it
# is what the **counterfactual** map of lesson 7 shows, since
# $\mathrm{ReLU}(-S)$ is Grad-CAM with $-\partial y^c / \partial A$.

# %%
S = np.einsum("nk,nkij->nij", alpha, A)                  # (N, h, w): sum_k alpha_k A^k
L = np.maximum(S, 0)                                     # (N, h, w): the Grad-CAM map
negative = -S[S < 0].sum() / np.abs(S).sum()
print(f"S: {S.shape}, from {S.min():.3f} to {S.max():.3f}")
print(f"the ReLU zeroes {np.mean(S < 0):.0%} of the pixels, holding {negative:.0%} of the map's total |mass|")
assert 0 < negative < 0.5

np.testing.assert_allclose(S.sum(), contribution.sum(), rtol=1e-4)
# For the figure: the two largest positive contributions alpha_k A^k and the largest negative one.
shown = [by_contribution[contribution[by_contribution] > 0][i] for i in (0, 1)]
shown.append(by_contribution[contribution[by_contribution] < 0][0])
contrib = alpha[0, shown, None, None] * A[0, shown]
np.testing.assert_allclose(np.maximum(-S, 0), explain.counterfactual(model, x, c).map, rtol=1e-5, atol=1e-6)

# %% [markdown]
# ## 7. Upsampling to the image
#
# $L^c$ has the layer's resolution, $8 \times 8$; to lay it over the
# $32 \times 32$ image it is resized bilinearly, with **half-pixel
# centres**, as PyTorch's `F.interpolate(mode="bilinear",
# align_corners=False)` and OpenCV's `INTER_LINEAR` do. Treat each pixel as
# a unit square with its centre at a half-integer; output pixel $d$ (of
# $n_\text{out}$) has its centre at $d + \tfrac12$, which is
# $(d + \tfrac12)\, n_\text{in}/n_\text{out}$ in input units, so it reads the
# input at
#
# $$
# s = \Big(d + \tfrac12\Big) \frac{n_\text{in}}{n_\text{out}} - \tfrac12
# \quad(\text{clamped at } 0), \qquad
# \mathrm{out}[d] = (1 - t)\,\mathrm{in}[\lfloor s \rfloor] + t\,\mathrm{in}[\lfloor s \rfloor + 1],
# \quad t = s - \lfloor s \rfloor ,
# $$
#
# with the index clamped at the last pixel. Here $s = d/4 - 3/8$. That is
# a matrix $M$ ($32 \times 8$) with two nonzero entries per row, and the
# 2-D resize is rows then columns: $L_\text{up} = M_h\, L\, M_w^\top$.

# %%
def interpolation_matrix_by_hand(n_in, n_out):
    M = np.zeros((n_out, n_in))
    for d in range(n_out):
        s = max((d + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(s)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        t = s - i0
        M[d, i0] += 1 - t
        M[d, i1] += t
    return M


M_h, M_w = interpolation_matrix_by_hand(h, 32), interpolation_matrix_by_hand(w, 32)
L_up = M_h @ L[0] @ M_w.T                                # (32, 32)
print("M:", M_h.shape, " first rows:\n", M_h[:6, :3])
assert np.allclose(M_h.sum(axis=1), 1)                   # every output is a weighted average
np.testing.assert_allclose(L_up, explain.resize_bilinear(L[0], (32, 32)), rtol=1e-6, atol=1e-6)

# %% [markdown]
# ## 8. The library's answer
#
# `minicnn.explain.gradcam` is these steps (read it below); its result
# keeps the raw map (no normalisation), $\alpha$, the layer and the class.
# The hand computation of this lesson must equal it.

# %%
print(inspect.getsource(explain.gradcam))
result = explain.gradcam(model, x)                       # default target (top-1) and default layer
print(f"layer {result.layer}, target {result.target_names[0]}, score {result.scores[0]:.4f}, map {result.map.shape}")
assert result.layer == layer and result.targets[0] == c
np.testing.assert_allclose(result.alpha, alpha, rtol=0, atol=1e-7)
np.testing.assert_allclose(result.map, L, rtol=0, atol=1e-6)
np.testing.assert_allclose(result.upsampled((32, 32))[0], L_up, rtol=0, atol=1e-6)
print("hand computation == minicnn.explain.gradcam (alpha, map and upsampled map)")

# %% [markdown]
# ## 9. The overlay, and every step in one picture
#
# Top row: the input, then three of the terms $\alpha_k^c A^k$: the two
# largest positive contributions and the largest negative one. Bottom row: their sum over
# all 128 maps $S$ (red: for "horse", blue: against), the Grad-CAM map after
# the ReLU, upsampled, and laid over the image. Colour bars are in raw
# units (the score's units per unit of $A$), not normalised.

# %%
fig, axes = plt.subplots(2, 4, figsize=(17, 8.2), constrained_layout=True)
axes[0, 0].imshow(image, interpolation="bilinear")
axes[0, 0].set_title(f"input: {model.classes[c]}, y^c = {y_c:.2f}, p = {p[c]:.2f}", fontsize=11)
lim = np.abs(contrib).max()
for ax, k, m in zip(axes[0, 1:], shown, contrib):
    im = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"map {k}: alpha A (alpha = {alpha[0, k]:+.4f})", fontsize=11)
    fig.colorbar(im, ax=ax, shrink=0.8, label="contribution to S")
lim = np.abs(S).max()
im = axes[1, 0].imshow(S[0], cmap="RdBu_r", vmin=-lim, vmax=lim)
axes[1, 0].set_title(f"S: sum of alpha A over all {K} maps", fontsize=11)
fig.colorbar(im, ax=axes[1, 0], shrink=0.8, label="S")
im = axes[1, 1].imshow(L[0], cmap="jet", vmin=0)
axes[1, 1].set_title(f"L = ReLU(S), {h}x{w}: {negative:.0%} of |S| removed", fontsize=11)
fig.colorbar(im, ax=axes[1, 1], shrink=0.8, label="Grad-CAM")
im = axes[1, 2].imshow(L_up, cmap="jet", vmin=0)
axes[1, 2].set_title("L upsampled to 32x32 (bilinear)", fontsize=11)
fig.colorbar(im, ax=axes[1, 2], shrink=0.8, label="Grad-CAM")
axes[1, 3].imshow(image, interpolation="bilinear")
im = axes[1, 3].imshow(L_up, cmap="jet", alpha=0.5, vmin=0, interpolation="bilinear")
axes[1, 3].set_title("overlay on the input", fontsize=11)
fig.colorbar(im, ax=axes[1, 3], shrink=0.8, label="Grad-CAM")
for ax in axes.flat:
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.suptitle(f"Grad-CAM step by step: vgg_cifar10, layer {layer}, class '{model.classes[c]}'", fontsize=14)
fig.savefig(FIGURES / "04_grad_cam_steps.png", dpi=100)
print("wrote", FIGURES / "04_grad_cam_steps.png")

# %% [markdown]
# ## What to take away
#
# - $y^c$ is the logit; $\partial y^c / \partial A$ is one backward pass
#   seeded with $e_c$ and stopped at the layer.
# - The gradient is right (finite differences agree: relative error below
#   $10^{-7}$, about $10^{-9}$ measured) except at kinks, and max-pool ties
#   are kinks: check where $A > 0$.
# - $\alpha^c$ is the spatial mean of that gradient; the map is
#   $\mathrm{ReLU}(\sum_k \alpha_k^c A^k)$, at the layer's resolution,
#   upsampled bilinearly only for display.
#
# Lesson 5 adds the fine detail Grad-CAM lacks (Guided Backprop), and
# lesson 6 shows where $\alpha$ comes from when the network ends in global
# average pooling.
