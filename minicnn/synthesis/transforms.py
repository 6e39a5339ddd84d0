"""Transformation robustness: the image is jittered, scaled and turned a little before every step.

An image that excites a unit only at one exact pixel alignment is mostly high-frequency noise;
asking that the objective stay high under small random transformations T removes much of it
(Olah et al. 2017, "Feature Visualization", Distill). Each T here is linear in the image,
x' = T x, so its backward is the adjoint: dx = T^T dx'. Every one is checked against central
differences in tests/test_synthesis.py.

Shapes: x and x' are (N, C, H, W); T acts on each (n, c) plane alike.
"""

from __future__ import annotations

import math

import numpy as np


def jitter(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """x'[.., i, j] = x[.., (i - dy) mod H, (j - dx) mod W]: a circular shift (a permutation of pixels)."""
    return np.roll(x, (int(dy), int(dx)), axis=(-2, -1))


def jitter_backward(dout: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The adjoint of a permutation is its inverse: dx = roll(dout, (-dy, -dx))."""
    return np.roll(dout, (-int(dy), -int(dx)), axis=(-2, -1))


class Affine:
    """x'[.., i, j] = bilinear sample of x at the point p(i, j) = c + R(-theta) (q - c) / s, q = (i, j).

    A scale by ``s`` and a rotation by ``theta`` degrees about the image centre c, the
    sample read with bilinear weights from the four pixels around p; points outside the
    image read the nearest edge pixel (clamped), so the weights of every output pixel sum
    to 1 and the map commutes with a per-channel affine normalisation ((x - mean) / std).

    As a matrix, x' = M x with M (HW, HW) holding at most four weights per row:

        x'[q] = sum_k w_k(q) x[p_k(q)]        forward: a gather
        dx[p] = sum_{q, k: p_k(q) = p} w_k(q) dx'[q]      backward (M^T): a scatter-add
    """

    def __init__(self, shape_hw: tuple[int, int], scale: float = 1.0, degrees: float = 0.0) -> None:
        h, w = (int(v) for v in shape_hw)
        self.shape_hw, self.scale, self.degrees = (h, w), float(scale), float(degrees)
        t = math.radians(self.degrees)
        cy, cx = (h - 1) / 2, (w - 1) / 2
        i, j = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
        qy, qx = (i - cy) / self.scale, (j - cx) / self.scale
        py = cy + math.cos(t) * qy - math.sin(t) * qx        # R(-theta) applied to the output offset
        px = cx + math.sin(t) * qy + math.cos(t) * qx
        py, px = np.clip(py, 0, h - 1), np.clip(px, 0, w - 1)
        y0, x0 = np.minimum(np.floor(py).astype(np.int64), h - 1), np.minimum(np.floor(px).astype(np.int64), w - 1)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        fy, fx = py - y0, px - x0
        #: (4, H*W): the flat source index and the weight of each of the four neighbours of every output pixel
        self.index = np.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1]).reshape(4, -1)
        self.weight = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]).reshape(4, -1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, H, W) -> x' (N, C, H, W): x'[q] = sum_k w_k(q) x[p_k(q)]."""
        flat = x.reshape(*x.shape[:-2], -1)
        out = sum(flat[..., self.index[k]] * self.weight[k].astype(x.dtype) for k in range(4))
        return out.reshape(x.shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout (N, C, H, W) -> dx (N, C, H, W) = M^T dout, a scatter-add of each output's weights."""
        n_planes = int(np.prod(dout.shape[:-2]))
        size = self.shape_hw[0] * self.shape_hw[1]
        d = dout.reshape(n_planes, size)
        dx = np.zeros((n_planes, size), dtype=np.result_type(dout.dtype, np.float32))
        planes = np.arange(n_planes)[:, None] * size
        for k in range(4):                                # bincount sums the weights landing on each pixel
            dx += np.bincount((planes + self.index[k]).ravel(), weights=(d * self.weight[k]).ravel(),
                              minlength=n_planes * size).reshape(n_planes, size)
        return dx.reshape(dout.shape).astype(dout.dtype, copy=False)


class RandomTransform:
    """One draw of T = jitter(dy, dx) . Affine(scale, degrees): x' = jitter(Affine(x)).

    ``jitter`` pixels at most each way, a scale from ``scales``, an angle from ``degrees``,
    all drawn from ``rng``. ``backward`` is the adjoint in reverse order.
    """

    def __init__(self, rng: np.random.Generator, shape_hw, *, jitter: int = 0, scales=(1.0,), degrees=(0.0,)) -> None:
        self.dy, self.dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        s, d = float(rng.choice(scales)), float(rng.choice(degrees))
        self.affine = Affine(shape_hw, s, d) if (s != 1.0 or d != 0.0) else None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.affine is not None:
            x = self.affine.forward(x)
        return jitter(x, self.dy, self.dx)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        d = jitter_backward(dout, self.dy, self.dx)
        return self.affine.backward(d) if self.affine is not None else d
