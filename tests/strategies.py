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


@st.composite
def network_cases(draw):
    """A small random CNN's description: 1-2 conv stages (each optionally pooled), then a dense head.

    stages: (out_channels, kernel, pool) with pool "max" (2x2), "avg" (2x2), "gap" (global) or "none".
    Build it with ``tests/test_attribution_axioms.py``'s ``network``.
    """
    stages = draw(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([1, 2, 3]),
                                     st.sampled_from(["max", "avg", "gap", "none"])), min_size=1, max_size=2))
    return dict(n=draw(st.integers(1, 2)), channels=draw(st.integers(1, 3)), size=draw(st.integers(3, 7)),
                stages=stages, hidden=draw(st.integers(2, 6)), classes=draw(st.integers(2, 4)),
                seed=draw(st.integers(0, 2**32 - 1)))
