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
# # Lesson 1 · A convolution by hand
#
# A convolutional layer slides a small stack of weights over its input and,
# at every position, takes one dot product. This lesson writes that sentence
# as seven nested loops, works out how big the output is (stride, padding,
# dilation), and then rewrites the same computation as **one matrix
# product** (im2col), the way minicnn's fast tier does it. Every claim is
# checked with an `assert`, so if the engine ever changes behaviour, this
# lesson fails instead of going stale.
#
# Run it as a script (`python lessons/01_convolution_by_hand.py`) or open it
# as a notebook (Jupyter with jupytext, or VS Code). Figures go to the folder
# named in `FIGURES` below.

# %%
import inspect
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minicnn.inputs.images import load_image
from minicnn.inputs.samples import data_path
from minicnn.layers import Conv2d
from minicnn.layers.conv import conv2d_forward
from minicnn.windows import im2col, output_size, pad

FIGURES = Path(os.environ.get("MINICNN_LESSON_FIGURES", "lesson-figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(1)

# %% [markdown]
# ## 1. The sum a convolution computes
#
# Shapes follow PyTorch: an input batch $x$ is $(N, C, H, W)$ (images,
# channels, rows, columns), the weights $w$ are $(F, C, k_h, k_w)$ ($F$
# filters, each as deep as the input), the bias $b$ is $(F,)$. With stride
# $s$ and zero padding $p$ (write $x^p$ for the padded input), output
# element $(n, f, i, j)$ is
#
# $$
# \mathrm{out}[n, f, i, j] \;=\; b_f \;+\; \sum_{c=0}^{C-1} \sum_{u=0}^{k_h-1} \sum_{v=0}^{k_w-1}
#     w[f, c, u, v]\; x^p[n, c,\; i s + u,\; j s + v].
# $$
#
# Window $(i, j)$ starts at row $i s$, column $j s$ of the padded input, and
# the kernel is **not** flipped: strictly this is a cross-correlation, which
# is what PyTorch's `Conv2d` (and every deep-learning library) computes and
# calls a convolution. The formula becomes code one index at a time:

# %%
def conv2d_loops(x, w, b, stride=1, padding=0):
    """The sum above as seven loops: x (N, C, H, W), w (F, C, kh, kw), b (F,) -> (N, F, Ho, Wo)."""
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    Ho = (H + 2 * padding - kh) // stride + 1          # derived in section 2
    Wo = (W + 2 * padding - kw) // stride + 1
    xp = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=x.dtype)
    xp[:, :, padding:padding + H, padding:padding + W] = x
    out = np.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    total = b[f]
                    for c in range(C):
                        for u in range(kh):
                            for v in range(kw):
                                total += w[f, c, u, v] * xp[n, c, i * stride + u, j * stride + v]
                    out[n, f, i, j] = total
    return out


# %% [markdown]
# A case small enough to check on paper: a $4 \times 4$ input holding
# $0, 1, \dots, 15$ and one $2 \times 2$ kernel that computes "top-left
# minus bottom-right", plus a bias of $0.5$. The first window is
# $\begin{bmatrix} 0 & 1 \\ 4 & 5 \end{bmatrix}$, so
# $\mathrm{out}[0, 0] = 0 - 5 + 0.5 = -4.5$. Every window of this input has
# the same difference ($x_{i,j} - x_{i+1,j+1} = -5$), so every output is
# $-4.5$, and there are $3 \times 3$ of them.

# %%
x_small = np.arange(16.0).reshape(1, 1, 4, 4)
w_small = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
b_small = np.array([0.5])
out_small = conv2d_loops(x_small, w_small, b_small)
print("input:\n", x_small[0, 0])
print("output:\n", out_small[0, 0])
assert out_small.shape == (1, 1, 3, 3)
assert np.all(out_small == -4.5)

# %% [markdown]
# The engine's layer computes the same numbers. `Conv2d` takes PyTorch's
# hyper-parameter names; its weights live in `layer.params` under PyTorch's
# names. A new layer holds zeros (builders in `minicnn.models.zoo` initialise
# them), so we set them ourselves.

# %%
def engine_conv(x, w, b, **hyper):
    layer = Conv2d(w.shape[1], w.shape[0], w.shape[2:], **hyper)
    layer.params["weight"], layer.params["bias"] = w, b
    out, _cache = layer.forward(x)       # computes in x's dtype (float64 here)
    return out


assert np.array_equal(engine_conv(x_small, w_small, b_small), out_small)

x = rng.standard_normal((2, 3, 9, 9))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
for stride, padding in [(1, 0), (1, 1), (2, 1), (3, 2)]:
    ours = conv2d_loops(x, w, b, stride, padding)
    theirs = engine_conv(x, w, b, stride=stride, padding=padding)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    print(f"stride {stride}, padding {padding}: output {ours.shape}, loops == engine")

# %% [markdown]
# ## 2. How big is the output?
#
# Along one axis the padded input has $H + 2p$ entries. A window of $k$
# taps starting at row $r$ reads rows $r, \dots, r + k - 1$, so it fits
# while $r \le H + 2p - k$. Windows start at $r = 0, s, 2s, \dots$, that is
# at $r = i s$ for $i = 0, 1, \dots$, and the count of those that fit is
#
# $$
# H_\text{out} = \left\lfloor \frac{H + 2p - k}{s} \right\rfloor + 1 .
# $$
#
# With dilation $d$ the taps are $d$ apart ($r, r + d, \dots, r + d(k-1)$),
# so the kernel spans $d(k-1) + 1$ rows, and the formula PyTorch documents
# follows by replacing $k$ with that span:
#
# $$
# H_\text{out} = \left\lfloor \frac{H + 2p - d(k-1) - 1}{s} \right\rfloor + 1 .
# $$
#
# Two consequences worth remembering: with stride 1 and $p = (k-1)/2$ (odd
# $k$) the size is kept ("same" padding, $3 \times 3$ with $p = 1$ in VGG
# and ResNet); with stride 2 the size is halved, rounding up.
# The engine's version of the formula:

# %%
print(inspect.getsource(output_size))


# %%
def out_size_by_hand(H, k, s, p, d=1):
    span = d * (k - 1) + 1                  # rows one window covers
    return (H + 2 * p - span) // s + 1      # window starts 0, s, 2s, ... that fit


settings = [  # (H, k, s, p, d)
    (32, 3, 1, 1, 1), (32, 3, 2, 1, 1), (7, 3, 2, 1, 1), (28, 5, 1, 0, 1), (32, 1, 1, 0, 1),
    (10, 4, 3, 2, 1), (9, 3, 1, 0, 2), (16, 3, 2, 2, 2), (5, 5, 1, 0, 1), (224, 7, 2, 3, 1),
]
print(f"{'H':>4} {'k':>2} {'s':>2} {'p':>2} {'d':>2}  ->  {'by hand':>7} {'engine':>6}")
for H, k, s, p, d in settings:
    mine = out_size_by_hand(H, k, s, p, d)
    layer = Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    engine_shape = layer.forward(np.zeros((1, 1, H, H)))[0].shape
    assert mine == output_size(H, k, s, p, d) == engine_shape[2] == engine_shape[3]
    print(f"{H:>4} {k:>2} {s:>2} {p:>2} {d:>2}  ->  {mine:>7} {engine_shape[2]:>6}")

for H in range(4, 40):
    assert out_size_by_hand(H, 3, 1, 1) == H                 # "same" padding keeps the size
    assert out_size_by_hand(H, 3, 2, 1) == (H + 1) // 2      # stride 2 halves it, rounding up

# %% [markdown]
# ## 3. What the sliding dot product does to an image
#
# The same operation on a photograph, in grey levels, with three
# hand-made $3 \times 3$ kernels: a vertical-edge detector (right minus left
# column), a horizontal-edge detector, and a box blur. Edge kernels sum to
# zero, so flat regions give 0 and only changes light up; with stride 2
# each map has half the rows and columns. The image is 300 rows tall, too
# big for Python loops, so this uses the engine's layer (section 4 explains
# why it is fast).

# %%
photo = load_image(data_path("images", "chelsea.png")).astype(np.float64) / 255.0
grey = photo @ np.array([0.299, 0.587, 0.114])          # (H, W) luminance
kernels = {
    "vertical edges": np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]),
    "horizontal edges": np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]),
    "3x3 blur": np.full((3, 3), 1.0 / 9.0),
}
w_photo = np.stack(list(kernels.values()))[:, None]     # (3 filters, 1 channel, 3, 3)
x_photo = grey[None, None]                              # (1, 1, H, W)
maps_s1 = engine_conv(x_photo, w_photo, np.zeros(3), stride=1, padding=1)
maps_s2 = engine_conv(x_photo, w_photo, np.zeros(3), stride=2, padding=1)
print("input", x_photo.shape, "-> stride 1:", maps_s1.shape, " stride 2:", maps_s2.shape)
assert maps_s1.shape[2:] == grey.shape
assert maps_s2.shape[2:] == tuple((n + 1) // 2 for n in grey.shape)
# A zero-sum kernel gives exactly 0 on a constant patch; the blur keeps the constant.
flat = engine_conv(np.full((1, 1, 5, 5), 0.7), w_photo, np.zeros(3))
assert np.allclose(flat[0, :2], 0.0) and np.allclose(flat[0, 2], 0.7)

# %% [markdown]
# One thing the formula hides: zero padding puts a black frame around the
# image, and the edge kernels duly report that frame as an edge. On the
# outermost rows and columns the edge maps are several times stronger than
# inside the image; that is what "padding 1" costs.

# %%
vertical = np.abs(maps_s1[0, 0])
border = np.concatenate([vertical[:, 0], vertical[:, -1]]).mean()
inside = vertical[:, 1:-1].mean()
print(f"vertical-edge map: mean |value| {border:.3f} on the left/right border, {inside:.3f} inside")
assert border > 3 * inside

# %%
fig, axes = plt.subplots(2, 4, figsize=(17, 6.6), constrained_layout=True)
im = axes[0, 0].imshow(grey, cmap="gray", vmin=0, vmax=1)
axes[0, 0].set_title(f"input, grey levels: {grey.shape[1]} wide x {grey.shape[0]} high")
fig.colorbar(im, ax=axes[0, 0], shrink=0.8, label="intensity")
axes[1, 0].axis("off")
axes[1, 0].text(0.0, 0.5, "top row: stride 1, padding 1\n(output size = input size)\n\n"
                "bottom row: stride 2, padding 1\n(half the rows and columns)\n\n"
                "edge maps: colour scale clipped\nat the 99.5th percentile of |value|",
                fontsize=12, va="center")
for col, (name, _maps) in enumerate(kernels.items(), start=1):
    for row, out in enumerate((maps_s1, maps_s2)):
        m = out[0, col - 1]
        if name == "3x3 blur":
            im = axes[row, col].imshow(m, cmap="gray", vmin=0, vmax=1)
        else:
            lim = np.percentile(np.abs(m), 99.5)
            im = axes[row, col].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[row, col].set_title(f"{name}, stride {row + 1}: {m.shape[1]} wide x {m.shape[0]} high")
        fig.colorbar(im, ax=axes[row, col], shrink=0.8, label="output value")
for ax in axes.flat:
    if ax.axison:
        ax.set_xlabel("column j")
        ax.set_ylabel("row i")
fig.suptitle("One 3x3 convolution, three kernels: each output pixel is one dot product", fontsize=14)
fig.savefig(FIGURES / "01_feature_maps.png", dpi=100)
print("wrote", FIGURES / "01_feature_maps.png")

# %% [markdown]
# ## 4. im2col: the same sum as one matrix product
#
# Look at the sum again: for a fixed window $(n, i, j)$ it is a dot product
# between the filter $w[f, :, :, :]$ and the window
# $x^p[n, :, is : is + k_h, js : js + k_w]$, both flattened to vectors of
# length $C k_h k_w$. So lay every window out as one **column** of a matrix
#
# $$
# X_\text{col}\big[(c, u, v),\, (n, i, j)\big] = x^p[n, c,\; i s + u,\; j s + v],
# \qquad X_\text{col} \in \mathbb{R}^{C k_h k_w \,\times\, N H_\text{out} W_\text{out}},
# $$
#
# lay every filter out as one **row** of $W_\text{row} = w$ reshaped to
# $F \times C k_h k_w$, and every output element is one entry of
#
# $$
# \mathrm{out} = W_\text{row}\, X_\text{col} + b \quad (F \times N H_\text{out} W_\text{out}),
# $$
#
# which is reshaped back to $(N, F, H_\text{out}, W_\text{out})$. The seven
# loops have become a gather (`im2col`) and one matrix product, which NumPy
# hands to an optimised BLAS routine. The engine's im2col does the gather
# without a Python loop: `windows` returns all windows as a strided *view*
# of the padded input, and one reshape copies them into columns.

# %%
print(inspect.getsource(im2col))
print(inspect.getsource(conv2d_forward))

# %% [markdown]
# On the $4 \times 4$ example: 9 windows of $2 \times 2$ give a
# $4 \times 9$ matrix, and column $(i, j)$ is window $(i, j)$ read row by row.

# %%
cols_small = im2col(x_small, (2, 2), 1)
print("im2col of the 4x4 input (rows: taps (c, u, v), columns: windows (n, i, j)):\n", cols_small)
assert cols_small.shape == (1 * 2 * 2, 1 * 3 * 3)
for i in range(3):
    for j in range(3):
        assert np.array_equal(cols_small[:, i * 3 + j], x_small[0, 0, i:i + 2, j:j + 2].ravel())
product = (w_small.reshape(1, -1) @ cols_small + b_small[:, None]).reshape(1, 1, 3, 3)
assert np.array_equal(product, out_small)

# %% [markdown]
# The same on the random batch, with stride and padding, against the loops.
# (Stride and padding only change *which* entries the columns gather.)

# %%
for stride, padding in [(1, 0), (1, 1), (2, 1), (3, 2)]:
    xp = pad(x, padding)
    cols = im2col(xp, (3, 3), stride)
    Ho = out_size_by_hand(x.shape[2], 3, stride, padding)
    by_matrix = (w.reshape(4, -1) @ cols + b[:, None]).reshape(4, x.shape[0], Ho, Ho).transpose(1, 0, 2, 3)
    by_loops = conv2d_loops(x, w, b, stride, padding)
    np.testing.assert_allclose(by_matrix, by_loops, rtol=1e-12, atol=1e-12)
    print(f"stride {stride}, padding {padding}: cols {cols.shape}, W_row (4, 27) @ cols == loops")

# %% [markdown]
# A picture of the gather: a $5 \times 5$ input holding $1 \dots 25$,
# padded by one (the zeros), read by $3 \times 3$ windows with stride 2.
# Follow a number: pixel 7 lies where four windows overlap, so it is copied
# into four columns, at four different taps; the centre pixel 13 lies inside
# one window only and appears once.

# %%
x_fig = pad(np.arange(1.0, 26.0).reshape(1, 1, 5, 5), 1)
cols_fig = im2col(x_fig, (3, 3), 2)
assert cols_fig.shape == (9, 9) and np.sum(cols_fig == 7) == 4 and np.sum(cols_fig == 13) == 1
fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True,
                         gridspec_kw={"width_ratios": [1, 1.25]})
for ax, data in zip(axes, (x_fig[0, 0], cols_fig)):
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=25)
    for (r, c), value in np.ndenumerate(data):
        ax.text(c, r, f"{value:.0f}", ha="center", va="center", color="white" if value < 13 else "black")
    fig.colorbar(im, ax=ax, shrink=0.9, label="pixel value (0 = padding)")
axes[0].set_title("padded input: 5x5, padding 1")
axes[0].set_xlabel("column")
axes[0].set_ylabel("row")
axes[1].set_title("im2col, 3x3 windows, stride 2: one column per output pixel")
axes[1].set_xlabel("window (i, j) = output pixel, row-major")
axes[1].set_ylabel("kernel tap (u, v)")
axes[1].set_yticks(range(9), [f"({u},{v})" for u in range(3) for v in range(3)])
axes[1].set_xticks(range(9), [f"({i},{j})" for i in range(3) for j in range(3)])
fig.savefig(FIGURES / "01_im2col.png", dpi=100)
print("wrote", FIGURES / "01_im2col.png")

# %% [markdown]
# ## 5. Timed side by side
#
# The two computations agree; they do not cost the same. Each output element
# of the loop version runs $C k_h k_w$ Python-level multiply-adds, while
# im2col does the arithmetic inside BLAS. The price of im2col is memory:
# every input pixel is copied into up to $k_h k_w$ columns.
#
# How far apart they are is a property of the machine, not of the math, so
# the lesson prints the ratio and asserts only the numbers. The loops pay the
# Python interpreter for every multiply-add; the matrix product's time
# depends on the BLAS library, the processor kernel it picked and its
# threads. Environment variables such as `OPENBLAS_CORETYPE` (which pins an
# older kernel) or a busy second core move it a lot: on the same 2-core
# machine we have measured from about 30x to over 2,000x.

# %%
x_t = rng.standard_normal((4, 3, 32, 32))
w_t = rng.standard_normal((8, 3, 3, 3))
b_t = rng.standard_normal(8)

start = time.perf_counter()
by_loops = conv2d_loops(x_t, w_t, b_t, 1, 1)
t_loops = time.perf_counter() - start

repeats = 20
start = time.perf_counter()
for _ in range(repeats):
    by_im2col = conv2d_forward(x_t, w_t, b_t, 1, 1)
t_im2col = (time.perf_counter() - start) / repeats

np.testing.assert_allclose(by_im2col, by_loops, rtol=1e-11, atol=1e-11)
multiply_adds = by_loops.size * 3 * 3 * 3
cols_bytes = im2col(pad(x_t, 1), 3, 1).nbytes
print(f"{multiply_adds:,} multiply-adds for a (4, 3, 32, 32) batch and 8 filters of 3x3")
print(f"seven loops: {t_loops * 1e3:9.1f} ms")
print(f"im2col + matmul: {t_im2col * 1e3:5.2f} ms   ({t_loops / t_im2col:,.0f}x faster, same numbers)")
print(f"price: the columns take {cols_bytes / 1e3:.0f} kB against {x_t.nbytes / 1e3:.0f} kB of input")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
bars = ax.bar(["seven Python loops", "im2col + one matmul"], [t_loops * 1e3, t_im2col * 1e3],
              color=["tab:red", "tab:green"])
ax.bar_label(bars, fmt="%.2f ms")
ax.set_yscale("log")
ax.set_ylabel("time per forward pass (ms, log scale)")
ax.set_title(f"Same convolution, same result: {t_loops / t_im2col:,.0f}x apart")
fig.savefig(FIGURES / "01_timing.png", dpi=100)
print("wrote", FIGURES / "01_timing.png")

# %% [markdown]
# ## What to take away
#
# - A convolution output is a dot product between one filter and one window;
#   nothing more.
# - $H_\text{out} = \lfloor (H + 2p - d(k-1) - 1)/s \rfloor + 1$; padding
#   $(k-1)/2$ keeps the size, stride 2 halves it.
# - im2col rearranges the windows into columns so that all those dot products
#   are one matrix product; the numbers are identical, the time is not.
#
# Lesson 2 runs this in reverse: how the gradient flows back through the
# same sum (and through ReLU, pooling and dense layers), and how to prove a
# backward pass right with finite differences.
