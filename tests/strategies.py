"""Hypothesis strategies for layer shapes and for inputs kept away from kinks and ties.

Arrays are drawn from a seeded NumPy generator (the seed is what hypothesis
shrinks), which keeps the examples fast and reproducible.
"""

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from minicnn.windows import output_size


def away_from_zero(rng, shape, low=0.05):
    """Values in [-1, -low] U [low, 1]: no ReLU kink within reach of a finite-difference step."""
    return rng.uniform(low, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng, shape, gap=0.01):
    """Distinct values spaced by >= gap in random order: no max-pooling ties."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap - n * gap / 2).reshape(shape)


@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    assume(output_size(h, kh, stride[0], padding[0], dilation[0]) >= 1)
    assume(output_size(w, kw, stride[1], padding[1], dilation[1]) >= 1)
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, c=c, f=f, h=h, w=w, kernel=(kh, kw), stride=stride, padding=padding,
                dilation=dilation, bias=bias, seed=seed)


@st.composite
def pool_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))  # PyTorch's limit
    assume(output_size(h, kh, stride[0], padding[0]) >= 1)
    assume(output_size(w, kw, stride[1], padding[1]) >= 1)
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, c=c, h=h, w=w, kernel=(kh, kw), stride=stride, padding=padding, seed=seed)


def stride_one(case):
    """The case with stride 1 and the padding cut to the kernel's reach: where dx can be a transposed convolution."""
    (kh, kw), (ph, pw), (dh, dw) = case["kernel"], case["padding"], case["dilation"]
    return {**case, "stride": (1, 1), "padding": (min(ph, dh * (kh - 1)), min(pw, dw * (kw - 1)))}


def conv_fits(case):
    """Whether the case's input is large enough for at least one output pixel."""
    return all(output_size(size, k, s, p, d) >= 1 for size, k, s, p, d in zip(
        (case["h"], case["w"]), case["kernel"], case["stride"], case["padding"], case["dilation"]))


def conv_cases_for_dx_path(path: str):
    """Convolution cases for which dx may be computed by ``path``: "col2im" (any), "transposed" (stride 1)."""
    return conv_cases() if path == "col2im" else conv_cases().map(stride_one).filter(conv_fits)


@st.composite
def grouped_conv_cases(draw):
    """Conv2d with groups > 1: depthwise (groups = C, depth multiplier m) or a general grouping."""
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    c = groups if depthwise else groups * draw(st.integers(1, 2))
    f = c * draw(st.integers(1, 2)) if depthwise else groups * draw(st.integers(1, 2))
    case = draw(conv_cases())
    assume(output_size(case["h"], case["kernel"][0], case["stride"][0], case["padding"][0], case["dilation"][0]) >= 1)
    return dict(case, c=c, f=f, groups=c if depthwise else groups)


def away_from_kinks(rng, shape, kinks=(0.0, 6.0), low=0.05, high=7.0):
    """Values in [-1, high] at least ``low`` from every kink (ReLU6: 0 and 6)."""
    x = rng.uniform(-1.0, high, shape)
    for k in kinks:
        near = np.abs(x - k) < low
        x[near] = k + np.where(x[near] >= k, low, -low) * 2
    return x
@st.composite
def network_cases(draw):
    """A small random CNN's description: 1-2 conv stages (each optionally pooled), then a dense head.

    stages: (out_channels, kernel, pool) with pool "max" (2x2), "avg" (2x2), "gap" (global) or "none".
    Build it with ``tests/explain/test_attribution_axioms.py``'s ``network``.
    """
    stages = draw(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 3]),
                                     st.sampled_from(["max", "avg", "gap", "none"])), min_size=1, max_size=2))
    return dict(n=draw(st.integers(1, 2)), channels=draw(st.integers(1, 3)), size=draw(st.integers(3, 7)),
                stages=stages, hidden=draw(st.integers(2, 6)), classes=draw(st.integers(2, 4)),
                seed=draw(st.integers(0, 2**32 - 1)))
