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
# # Lesson 16 · Attribution as a game: Shapley values, Kernel SHAP, LIME and DeepLIFT
#
# An attribution hands out a number among the inputs: how much each one
# made the output what it is. Game theory asked the same question of
# players who share a payout. A *game* on $M$ players is a value $v(S)$
# for every coalition $S \subseteq \{1, \dots, M\}$; for a model $f$, an
# input $x$ and a baseline $x'$ (what "absent" means), the coalition $S$
# keeps the features in $S$ and replaces the others by the baseline:
#
# $$
# v(S) = f(x_S, x'_{\bar S}).
# $$
#
# The **Shapley value** (Shapley 1953) gives player $i$ its marginal
# contribution $v(S \cup \{i\}) - v(S)$ averaged over every order in which
# the players could arrive:
#
# $$
# \phi_i = \sum_{S \subseteq N \setminus \{i\}} \frac{|S|!\,(M - |S| - 1)!}{M!}\,
#          \big(v(S \cup \{i\}) - v(S)\big).
# $$
#
# It is the only share with four properties: **efficiency**
# ($\sum_i \phi_i = v(N) - v(\emptyset)$), **symmetry** (two players who
# add the same to every coalition get the same), **dummy** (a player who
# adds nothing gets 0) and **linearity** (the value of a sum of games is
# the sum of their values). This lesson computes it by brute force on a
# 4-feature toy, derives Kernel SHAP's weights and shows that a weighted
# least squares over all coalitions recovers it exactly, sets LIME beside
# it, and writes out DeepLIFT's summation to delta on a two-layer network.
# Everything is NumPy on toys, and every claim is asserted.

# %%
import itertools
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import fsolve

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Shapley values by brute force
#
# The toy has a linear term, a three-way interaction and a maximum:
#
# $$
# f(z) = 3 z_1 + z_2 z_3 z_4 + \max(z_1, z_4),\qquad x = (1, 3, -1, 2),\quad x' = 0 .
# $$
#
# A coalition is a 0/1 vector $s$ of length 4 (1: the feature is present).

# %%
M = 4
x = np.array([1.0, 3.0, -1.0, 2.0])
baseline = np.zeros(M)


def f(z):
    """The toy model on inputs z (..., 4)."""
    return 3 * z[..., 0] + z[..., 1] * z[..., 2] * z[..., 3] + np.maximum(z[..., 0], z[..., 3])


def game(s):
    """v(S) for coalitions s (K, 4) of 0/1: f with the absent features at the baseline."""
    return f(np.where(np.asarray(s) == 1, x, baseline))


COALITIONS = np.array(list(itertools.product([0, 1], repeat=M)))       # all 2^4 = 16, the empty one first


def shapley(v, m):
    """phi_i = sum over S without i of |S|! (m - |S| - 1)! / m! * (v(S + i) - v(S)), by brute force."""
    phi = np.zeros(m)
    for s in itertools.product([0, 1], repeat=m):
        s = np.array(s)
        for i in np.flatnonzero(s == 0):
            with_i = s.copy()
            with_i[i] = 1
            size = int(s.sum())
            share = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            phi[i] += share * (v(with_i[None])[0] - v(s[None])[0])
    return phi


phi = shapley(game, M)
empty, full = game(np.zeros((1, M), int))[0], game(np.ones((1, M), int))[0]
print(f"v(empty) = {empty}, v(N) = f(x) = {full}")
print("Shapley values:", phi)

# %% [markdown]
# Each term can be shared by hand. The linear term $3 z_1$ goes to
# feature 1 alone: 3. The interaction $z_2 z_3 z_4 = -6$ appears only when
# 2, 3 and 4 are all present, and symmetry splits it: $-2$ each. The
# maximum is a game on $\{1, 4\}$ with $v(\{1\}) = 1$, $v(\{4\}) = 2$,
# $v(\{1, 4\}) = 2$: feature 1 adds 1 when it comes first and 0 when it
# comes second, so it gets $\tfrac12$, and feature 4 gets $\tfrac12 (2 + 1)
# = 1.5$. By linearity, $\phi = (3.5, -2, -2, -0.5)$, and the four add up
# to $f(x) - f(x') = -1$.

# %%
assert np.allclose(phi, [3.5, -2.0, -2.0, -0.5], atol=1e-12)
assert abs(phi.sum() - (full - empty)) < 1e-12                          # efficiency
# dummy: a fifth feature the model never reads gets exactly 0
phi5 = shapley(lambda s: game(np.asarray(s)[:, :M]), M + 1)
assert np.allclose(phi5, [*phi, 0.0], atol=1e-12)
# linearity: the value of the sum of two games is the sum of their values
other = lambda s: (np.asarray(s) @ np.array([1.0, -1.0, 2.0, 0.5])) ** 2      # noqa: E731
assert np.allclose(shapley(lambda s: game(s) + other(s), M), phi + shapley(other, M), atol=1e-12)

# %% [markdown]
# Brute force costs $M\,2^{M-1}$ pairs of evaluations: fine for 4 features,
# hopeless for the 1,024 pixels of a CIFAR image.

# %% [markdown]
# ## 2. Kernel SHAP: the same values from a weighted least squares
#
# Lundberg and Lee (2017) fit a linear model to the game, $v(s) \approx
# \phi_0 + \sum_i s_i \phi_i$, by least squares with a weight $\pi(s)$ per
# coalition. With the weights
#
# $$
# \pi(s) = \frac{M - 1}{\binom{M}{|s|}\,|s|\,(M - |s|)},
# $$
#
# infinite for the empty and the full coalition, the fit is the Shapley
# values. The two infinite weights are two constraints, $\phi_0 =
# v(\emptyset)$ and $\sum_i \phi_i = v(N) - v(\emptyset)$ (efficiency);
# eliminating $\phi_M = v(N) - v(\emptyset) - \sum_{i<M} \phi_i$ leaves an
# ordinary weighted least squares over the $2^M - 2$ other coalitions:
#
# $$
# v(s) - v(\emptyset) - s_M \Delta = \sum_{i<M} (s_i - s_M)\, \phi_i ,\qquad \Delta = v(N) - v(\emptyset).
# $$

# %%
def kernel_shap_weight(m, size):
    """pi(s) = (m - 1) / (C(m, |s|) |s| (m - |s|)) for 0 < |s| < m."""
    return (m - 1) / (math.comb(m, size) * size * (m - size))


def constrained_wls(v, m, weight):
    """phi (m,) minimising sum_s weight(m, |s|) (v(s) - v(0) - sum_i s_i phi_i)^2 with sum phi = v(N) - v(0)."""
    S = np.array([s for s in itertools.product([0, 1], repeat=m) if 0 < sum(s) < m])
    w = np.array([weight(m, int(s.sum())) for s in S])
    v0, vN = v(np.zeros((1, m), int))[0], v(np.ones((1, m), int))[0]
    y = v(S) - v0 - S[:, -1] * (vN - v0)
    X = (S[:, :-1] - S[:, -1:]).astype(float)
    head = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))        # the normal equations
    return np.append(head, vN - v0 - head.sum())


phi_kernel = constrained_wls(game, M, kernel_shap_weight)
print("Kernel SHAP, all 14 coalitions:", phi_kernel)
assert np.allclose(phi_kernel, phi, atol=1e-12)

# %% [markdown]
# ### Where the weights come from
#
# Both the Shapley value and the constrained least squares are linear in
# the game, so they agree on every game if they agree on a basis of games.
# The *unanimity games* $u_T(S) = 1$ if $T \subseteq S$, else 0, are one
# (every game is a sum of them, Harsanyi 1963), and their Shapley values
# are plain: $1/|T|$ to each member of $T$, 0 to the others. Weights that
# depend only on the size $|s|$ have three unknowns for $M = 4$, $k_1,
# k_2, k_3$, one of them a free scale ($k_1 = 1$). Games with $|T| = 1$ or
# $|T| = 4$ are fitted exactly by any weights (the fit is exact, or
# symmetry and efficiency decide it); $u_{\{1,2\}}$ and $u_{\{1,2,3\}}$
# give two equations: their non-members must get 0. Solve them:

# %%
def unanimity(T):
    return lambda s: np.all(np.asarray(s)[:, T] == 1, axis=1).astype(float)


def misfit(log_k):
    k = {1: 1.0, 2: np.exp(log_k[0]), 3: np.exp(log_k[1])}
    by_size = lambda m, size: k[size]                                   # noqa: E731
    return [constrained_wls(unanimity([0, 1]), M, by_size)[2], constrained_wls(unanimity([0, 1, 2]), M, by_size)[3]]


k2, k3 = np.exp(fsolve(misfit, [0.0, 0.5], xtol=1e-13))
closed = [kernel_shap_weight(M, s) / kernel_shap_weight(M, 1) for s in (1, 2, 3)]
print(f"solved: k2/k1 = {k2:.6f}, k3/k1 = {k3:.6f};  the formula: {closed}")
assert np.allclose([1.0, k2, k3], closed, atol=1e-9) and np.allclose(closed, [1.0, 0.5, 1.0])

# %% [markdown]
# The solution is the formula's: $\pi \propto (\tfrac14, \tfrac18,
# \tfrac14)$ for sizes 1, 2, 3. It is symmetric in $|s| \leftrightarrow M -
# |s|$ and largest for the smallest and largest coalitions, which say the
# most about single players. Other weights fail: equal weights move every
# share (feature 1's from 3.5 to 3.125), though the sum stays right (the
# constraint holds it).

# %%
equal = constrained_wls(game, M, lambda m, size: 1.0)
print("equal weights:", equal)
assert abs(equal[0] - 3.125) < 1e-12 and abs(equal.sum() - phi.sum()) < 1e-12
rng = np.random.default_rng(0)
for m in (5, 6):                                          # the formula holds for any M, on any game
    values = dict(zip(itertools.product([0, 1], repeat=m), rng.standard_normal(2**m)))
    random_game = lambda s, values=values: np.array([values[tuple(int(a) for a in row)] for row in s])  # noqa: E731
    assert np.allclose(constrained_wls(random_game, m, kernel_shap_weight), shapley(random_game, m), atol=1e-10)

# %% [markdown]
# In practice $2^M$ is too many coalitions, so Kernel SHAP *samples* them:
# a size with probability proportional to $\binom{M}{|s|}\pi(s)$ (so
# proportional to $1/(|s|(M - |s|))$), then a coalition of that size
# uniformly, and fits with equal weights: the sampling does the weighting.
# 4,000 draws come within about a tenth of the exact values, and add up
# exactly (the constraint again).

# %%
sizes = np.arange(1, M)
p_size = 1 / (sizes * (M - sizes))
p_size /= p_size.sum()
draws = np.zeros((4000, M), int)
for row, size in zip(draws, rng.choice(sizes, size=len(draws), p=p_size)):
    row[rng.choice(M, size, replace=False)] = 1
y = game(draws) - empty - draws[:, -1] * (full - empty)
X = (draws[:, :-1] - draws[:, -1:]).astype(float)
head = np.linalg.lstsq(X, y, rcond=None)[0]
phi_sampled = np.append(head, full - empty - head.sum())
print("Kernel SHAP, 4000 sampled coalitions:", np.round(phi_sampled, 3))
assert np.abs(phi_sampled - phi).max() < 0.2 and abs(phi_sampled.sum() - (full - empty)) < 1e-12

# %% [markdown]
# ## 3. LIME: a local linear model with another kernel
#
# LIME (Ribeiro et al. 2016) fits the same kind of linear model over
# coalitions, $v(s) \approx \beta_0 + \sum_i \beta_i s_i$, but with a
# kernel that measures closeness to $x$, here $\pi(s) = \exp(-d(s)^2 /
# \sigma^2)$ with $d$ the cosine distance between $s$ and the all-ones
# coalition and $\sigma = 1$, a free intercept and no constraint. Over all
# 16 coalitions:

# %%
def lime(v, S, width=1.0):
    """(beta_0, beta) of the weighted least squares with the exponential kernel on the cosine distance."""
    ones = np.ones(S.shape[1])
    norms = np.linalg.norm(S, axis=1)
    cosine = np.divide(S @ ones, norms * np.linalg.norm(ones), out=np.zeros(len(S)), where=norms > 0)
    w = np.exp(-(1 - cosine) ** 2 / width**2)
    X = np.hstack([np.ones((len(S), 1)), S])
    beta = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * v(S)))
    return beta[0], beta[1:]


intercept, beta = lime(game, COALITIONS)
print(f"LIME: intercept {intercept:.3f} (v(empty) = {empty}), coefficients {np.round(beta, 3)}, "
      f"sum {beta.sum():.3f} (f(x) - f(x') = {full - empty})")
assert abs(beta.sum() - (full - empty)) > 0.5 and abs(intercept - empty) > 0.5   # no efficiency
assert np.abs(beta - phi).max() > 0.1 and (np.sign(beta) == np.sign(phi)).all()

# %% [markdown]
# The coefficients have the Shapley values' signs but not their sizes,
# and they do not add up to $f(x) - f(x')$: LIME answers "which linear
# model best imitates $f$ near $x$", a question whose answer depends on the
# kernel. Where the game *is* additive, $v(s) = c + \sum_i a_i s_i$, every
# kernel fits it exactly, and LIME, Kernel SHAP and Shapley all give $a$:
# they part only over the interactions ($z_2 z_3 z_4$, the maximum), which a
# linear model cannot hold and each weighting shares differently. With
# Kernel SHAP's kernel and its two constraints, LIME *is* Kernel SHAP.

# %%
a = np.array([1.0, -2.0, 0.5, 3.0])
additive = lambda s: 0.7 + np.asarray(s) @ a                            # noqa: E731
assert np.allclose(lime(additive, COALITIONS)[1], a, atol=1e-12)
assert np.allclose(shapley(additive, M), a, atol=1e-12)
assert np.allclose(constrained_wls(additive, M, kernel_shap_weight), a, atol=1e-12)

# %% [markdown]
# ## 4. DeepLIFT: summation to delta through a network
#
# DeepLIFT (Shrikumar et al. 2017) explains $\Delta y = y(x) - y(x')$ by
# passing *differences from the reference* backwards, rather than
# gradients. A two-layer network, $h = \mathrm{ReLU}(z)$, $z = W_1 x +
# b_1$, $y = w_2 \cdot h + b_2$, run on $x$ and on the reference $x'$:
#
# - linear layers keep their weights: $\Delta z = W_1 \Delta x$;
# - the **rescale rule** replaces the ReLU's derivative by the ratio of
#   differences, $m_j = \Delta h_j / \Delta z_j$ (the derivative where
#   $\Delta z_j = 0$), so that $\Delta h_j = m_j \Delta z_j$ *exactly*;
# - the contributions are $C_i = \Delta x_i \sum_j W_{1,ji}\, m_j\, w_{2,j}$.
#
# Every step is exact, so the contributions add up to the change of the
# output, **summation to delta**: $\sum_i C_i = \Delta y$.

# %%
net = np.random.default_rng(3)
W1, b1 = net.standard_normal((6, 4)), net.standard_normal(6) * 0.5
w2, b2 = net.standard_normal(6), 0.3
x_net, x_ref = np.array([1.0, -0.5, 2.0, 0.3]), np.zeros(4)


def forward(v):
    z = W1 @ v + b1
    h = np.maximum(z, 0)
    return z, h, w2 @ h + b2


(z, h, y), (z0, h0, y0) = forward(x_net), forward(x_ref)
dz, dh = z - z0, h - h0
m = np.where(dz != 0, dh / np.where(dz != 0, dz, 1), (z > 0).astype(float))   # rescale multipliers
contributions = (x_net - x_ref) * (W1.T @ (m * w2))
gradient_x_input = (x_net - x_ref) * (W1.T @ ((z > 0) * w2))
print(f"y(x) - y(x') = {y - y0:.6f};  sum of DeepLIFT contributions = {contributions.sum():.6f};  "
      f"sum of gradient x input = {gradient_x_input.sum():.6f}")
assert abs(contributions.sum() - (y - y0)) < 1e-12
assert abs(gradient_x_input.sum() - (y - y0)) > 0.1
switched = int(np.sum((z > 0) != (z0 > 0)))
print(f"{switched} of 6 hidden units switch between x' and x; where none does, m is the derivative")
assert switched > 0 and np.allclose(m[(z > 0) == (z0 > 0)], (z > 0)[(z > 0) == (z0 > 0)])

# %% [markdown]
# The gradient times the input is the same sum with the ReLU's local
# derivative at $x$, so it misses every unit that switched between $x'$
# and $x$: here its sum is off. DeepLIFT's multiplier is a secant, the
# gradient a tangent.
#
# Is DeepLIFT a Shapley value? Not in general: it is one fixed path
# through the network. DeepLIFT-SHAP averages it over many references. On
# a linear model, though, the Shapley values are $w_i (x_i - x'_i)$, which
# is what DeepLIFT gives there too (no ReLU: the multipliers are the
# weights):

# %%
linear_w = net.standard_normal(4)
linear_game = lambda s: np.where(np.asarray(s) == 1, x_net, x_ref) @ linear_w   # noqa: E731
assert np.allclose(shapley(linear_game, 4), linear_w * (x_net - x_ref), atol=1e-12)

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
names = ["Shapley (brute force)", "Kernel SHAP (all coalitions)", "Kernel SHAP (4000 samples)", "LIME", "equal weights"]
values = [phi, phi_kernel, phi_sampled, beta, equal]
width = 0.16
for k, (name, v) in enumerate(zip(names, values)):
    axes[0].bar(np.arange(M) + (k - 2) * width, v, width, label=f"{name}: sum {v.sum():.2f}")
axes[0].axhline(0, color="k", lw=0.5)
axes[0].set_xticks(range(M), [f"feature {i + 1}" for i in range(M)])
axes[0].set_ylabel("attribution")
axes[0].set_title(f"f(z) = 3 z1 + z2 z3 z4 + max(z1, z4) at x = (1, 3, -1, 2): f(x) - f(0) = {full - empty:.0f}")
axes[0].legend(fontsize=8)
for k, (name, v) in enumerate([("DeepLIFT (rescale)", contributions), ("gradient x input", gradient_x_input)]):
    axes[1].bar(np.arange(4) + (k - 0.5) * 0.35, v, 0.35, label=f"{name}: sum {v.sum():.3f}")
axes[1].axhline(0, color="k", lw=0.5)
axes[1].set_xticks(range(4), [f"x{i + 1}" for i in range(4)])
axes[1].set_ylabel("contribution to y(x) - y(x')")
axes[1].set_title(f"two-layer ReLU network: y(x) - y(x') = {y - y0:.3f}")
axes[1].legend(fontsize=8)
fig.suptitle("Attribution as a game: the Shapley values recovered, LIME beside them, DeepLIFT's summation to delta")
fig.savefig(FIGURES / "16_attribution_game.png", dpi=100)
print("wrote", FIGURES / "16_attribution_game.png")

# %% [markdown]
# ## What to take away
#
# - The Shapley value is the one share with efficiency, symmetry, dummy
#   and linearity; by brute force it costs $M\,2^{M-1}$ pairs of
#   evaluations.
# - Kernel SHAP is a weighted least squares whose weights
#   $\pi(s) = (M-1)/(\binom{M}{|s|}|s|(M-|s|))$ make its answer the Shapley
#   values exactly; the weights follow from asking it to be right on the
#   unanimity games. Sampled coalitions approximate it.
# - LIME fits the same linear model with a closeness kernel and no
#   constraints: the same answer on additive games, a different one
#   wherever features interact, and no efficiency.
# - DeepLIFT's rescale rule divides differences instead of taking
#   derivatives, so its contributions sum to $y(x) - y(x')$ exactly, where
#   gradient times input does not.
