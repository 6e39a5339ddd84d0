"""How the optimised image is written: pixels, or a Fourier spectrum with decorrelated colour.

Gradient ascent does not act on the image itself but on parameters theta that make it,
image = f(theta), and the choice of f changes which images the steps reach first (Olah et
al. 2017, "Feature Visualization", Distill; Mordvintsev et al. 2018, "Differentiable Image
Parameterizations"). Each f here is explicit NumPy with its own backward, the adjoint of its
Jacobian, dtheta = J^T dimage; tests/test_synthesis.py checks every one against
central differences in float64.

    pixel:    image = theta                                   theta (1, 3, H, W), kept in [0, 1]
    fourier:  image = sigmoid(C . irfft2(s * (a + i b)) * sqrt(HW) / 4)
              theta = (a, b) (2, 3, H, W//2 + 1), s[k, l] = 1 / max(|f_kl|, 1 / max(H, W))

Why the Fourier basis helps: a step on a pixel moves one pixel, so the first steps are
white noise that the network's high-frequency sensitivity rewards. With theta in the
spectrum scaled by 1/|f|, equal steps on every coefficient give an image whose power falls
like 1/|f|^2, as in natural images: the low frequencies move first. C decorrelates colour:
it maps three uncorrelated channels onto ImageNet's RGB correlations (the square root of
their covariance, from Lucid), so a step changes brightness and hue as natural images do.
"""

from __future__ import annotations

import numpy as np

#: The square root of ImageNet's RGB colour covariance (rows R, G, B), as used by Lucid and Lucent.
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]])
#: C: that matrix scaled so that its largest column has norm 1.
COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


def decorrelate(t: np.ndarray) -> np.ndarray:
    """rgb[n, c, i, j] = sum_d C[c, d] t[n, d, i, j]; t and rgb (N, 3, H, W)."""
    return np.einsum("cd,ndij->ncij", COLOR.astype(t.dtype), t)


def decorrelate_backward(drgb: np.ndarray) -> np.ndarray:
    """dt[n, d, i, j] = sum_c C[c, d] drgb[n, c, i, j] (C^T applied per pixel)."""
    return np.einsum("cd,ncij->ndij", COLOR.astype(drgb.dtype), drgb)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written to stay finite for large |z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dout: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dz = dout * s (1 - s), with s = sigmoid(z) from the forward."""
    return dout * s * (1 - s)


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """s (H, W//2 + 1) = 1 / max(|f|, 1 / max(H, W))^decay, |f| the frequency of each rfft2 coefficient."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return 1.0 / np.maximum(np.sqrt(fy ** 2 + fx ** 2), 1.0 / max(h, w)) ** decay_power


def hermitian_weights(w: int) -> np.ndarray:
    """w_l (W//2 + 1,): how often coefficient l counts in a real signal of length W.

    irfft reads the half spectrum c_0..c_{W//2} as the full one with c_{W-l} = conj(c_l):
    each l counts twice, except l = 0 and (W even) l = W/2, which count once and whose
    imaginary part is ignored.
    """
    weights = np.full(w // 2 + 1, 2.0)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


def irfft2(z: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """x[.., n, m] = Re sum_{k, l} (w_l / HW) Z[.., k, l] exp(2 pi i (kn/H + lm/W)); Z (.., H, W//2 + 1) complex."""
    return np.fft.irfft2(z, s=shape_hw)


def irfft2_backward(dx: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
    """The adjoint of irfft2 as a real-linear map of (Re Z, Im Z), as one complex array dRe + i dIm.

    From x = Re sum (w_l / HW) Z e^{+i phase}, for L = sum_nm g_nm x_nm:
        dL/dRe Z_kl = (w_l / HW) Re sum_nm g_nm e^{+i phase},   dL/dIm Z_kl = -(w_l / HW) Im sum_nm g_nm e^{+i phase}
    so dRe + i dIm = (w_l / HW) conj(sum g e^{+i phase}) = (w_l / HW) rfft2(g)[k, l] for real g.
    """
    h, w = shape_hw
    return np.fft.rfft2(dx) * (hermitian_weights(w) / (h * w))


class PixelImage:
    """image = theta, (1, 3, H, W) in [0, 1]; the steps are clipped back into [0, 1] (``project``)."""

    kind = "pixel"

    def __init__(self, shape_chw, rng: np.random.Generator, *, sd: float = 0.05) -> None:
        self.theta = np.clip(0.5 + sd * rng.standard_normal((1, *shape_chw)), 0, 1)

    def image(self) -> np.ndarray:
        return self.theta.copy()

    def backward(self, dimage: np.ndarray) -> np.ndarray:
        """dtheta = dimage (the identity)."""
        return dimage

    def project(self) -> None:
        np.clip(self.theta, 0, 1, out=self.theta)


class FourierImage:
    """image = sigmoid(C . irfft2(s * (a + i b), (H, W)) * sqrt(HW) / 4); theta = (a, b) (2, 3, H, W//2 + 1).

    The sigmoid keeps every pixel in (0, 1), so no step can leave the input domain.
    """

    kind = "fourier"

    def __init__(self, shape_chw, rng: np.random.Generator, *, sd: float = 0.01, decay_power: float = 1.0) -> None:
        c, h, w = shape_chw
        self.shape_hw = (h, w)
        self.scale = spectrum_scale(h, w, decay_power) * np.sqrt(h * w) / 4
        self.theta = sd * rng.standard_normal((2, c, h, w // 2 + 1))
        self._cache = None

    def image(self) -> np.ndarray:
        """(1, 3, H, W) in (0, 1); keeps what ``backward`` needs."""
        z = self.scale * (self.theta[0] + 1j * self.theta[1])        # (3, H, W//2 + 1) complex
        t = irfft2(z, self.shape_hw)[None]                           # (1, 3, H, W)
        s = sigmoid(decorrelate(t))
        self._cache = s
        return s

    def backward(self, dimage: np.ndarray) -> np.ndarray:
        """dtheta (2, 3, H, W//2 + 1): back through the sigmoid, C, irfft2 and the scale s."""
        dt = decorrelate_backward(sigmoid_backward(dimage, self._cache))[0]
        dz = irfft2_backward(dt, self.shape_hw) * self.scale         # Z = s (a + i b): dRe, dIm scaled by s
        return np.stack([dz.real, dz.imag])

    def project(self) -> None:
        pass


PARAMETERISATIONS = {"pixel": PixelImage, "fourier": FourierImage}
