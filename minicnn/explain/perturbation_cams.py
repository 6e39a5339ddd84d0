"""CAMs weighted by forward passes instead of gradients: Score-CAM and Ablation-CAM.

Both keep the CAM form L = ReLU(sum_k w_k A^k) over the K maps A^k (h x w)
of a layer and measure each weight w_k by running the network again, once
per map (K extra forward passes per image, no backward):

    Score-CAM     w_k = softmax(f(x * H^k))_c      x shown only where map k is active
    Ablation-CAM  w_k = (y^c - y^c_k) / y^c        y^c_k: the score with map k set to 0

Score-CAM runs the whole network on K masked copies of the input;
Ablation-CAM edits the layer's output and resumes the forward pass from the
layer (``model.forward_from``), so the layers below are not recomputed. The
copies go through the network ``batch_size`` at a time, with a progress bar
on stderr once the work has taken 2 s. Afterwards the model's last pass is
that of the last batch of copies, which keeps nothing but the logits
(call ``model.forward`` again before using its activations).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..layers import softmax
from ..model import check_input
from ..util.progress import Progress
from .gradcam import GradCAM, weighted_sum
from .gradient_cams import divide
from .occlusion import BATCH_ELEMENTS
from .resize import resize_bilinear
from .target import choose_targets, feature_map, scores_of

#: Score-CAM's channel weights: the authors' released code, or pytorch-grad-cam's variant.
SCORECAM_VARIANTS = ("authors", "pytorch-grad-cam")


@dataclass(frozen=True, kw_only=True, eq=False)
class ScoreCAM(GradCAM):
    """A Score-CAM result: ``alpha`` (N, K) the weights; ``forwards`` masked inputs run; the variant used."""

    variant: str = "authors"
    forwards: int = 0


@dataclass(frozen=True, kw_only=True, eq=False)
class AblationCAM(GradCAM):
    """An Ablation-CAM result: ``alpha`` (N, K) the weights, ``ablated`` (N, K) the scores y^c_k."""

    ablated: np.ndarray
    forwards: int = 0


def check_batch_size(batch_size, default: int, method: str) -> int:
    """``batch_size`` as a positive int (``default`` when None), else a one-line InputError."""
    if batch_size is None:
        return max(1, default)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise InputError(f"{method} batch_size must be a positive integer; got {batch_size!r}")
    return int(batch_size)


def batched(run, make_batch, count: int, batch_size: int, bar: Progress) -> np.ndarray:
    """run(make_batch(start, stop)) for start = 0, batch_size, ... < count, concatenated: (count, ...)."""
    out = []
    for start in range(0, count, batch_size):
        stop = min(count, start + batch_size)
        out.append(run(make_batch(start, stop)))
        bar.update(stop - start)
    return np.concatenate(out)


# ---------------------------------------------------------------- Score-CAM

def score_masks(A: np.ndarray, size, *, align_corners: bool = False, eps: float = 0.0):
    """The masks H^k of one image: (K, H, W) in [0, 1], and (K,) whether map k is constant.

    H^k = (U^k - min U^k) / (max U^k - min U^k + eps), U^k = A^k (h, w) upsampled
    bilinearly to ``size``; all zero for a constant map.
    """
    U = resize_bilinear(A, size, align_corners=align_corners)              # (K, H, W)
    lo, hi = U.min(axis=(1, 2), keepdims=True), U.max(axis=(1, 2), keepdims=True)
    return divide(U - lo, hi - lo + eps), (hi == lo).ravel()


def scorecam(model, x, target=None, layer: str | None = None, *, relu: bool = True, variant: str = "authors",
             eps: float = 0.0, batch_size: int | None = None, progress: bool | None = None) -> ScoreCAM:
    """Score-CAM (Wang et al., CVPR-W 2020), as the authors' released code computes it.

        U^k     = A^k upsampled bilinearly to the input size (half-pixel centres)     (H, W)
        H^k     = (U^k - min U^k) / (max U^k - min U^k)     in [0, 1]
        alpha_k = softmax(f(x * H^k))_c     the probability of c for the input times H^k
                                            (0, and no forward pass, for a constant map)
        L       = ReLU(sum_k alpha_k A^k)                   (N, h, w)

    x is the network's input after preprocessing, so x * H^k fades the
    unmasked pixels towards the preprocessing mean (x = 0). The released code
    sums the upsampled maps, ReLU(sum_k alpha_k U^k); upsampling is linear, so
    that is ReLU of this map's ``relu=False`` version upsampled.

    ``variant="pytorch-grad-cam"`` weights the maps as that library does:
    masks upsampled with aligned corners (``torch.nn.UpsamplingBilinear2d``),
    every map scored (constant ones with an all-zero mask), and
    alpha = softmax over the K maps of the masked inputs' scores y^c(x * H^k);
    with ``eps=1e-8`` (its constant in the min-max scaling) it reproduces the
    library's weights.

    batch_size : masked inputs per forward pass (default: about 2^18 input elements per pass)
    progress   : True / False; None shows a bar on stderr once it has taken 2 s
    """
    if variant not in SCORECAM_VARIANTS:
        raise InputError(f"Score-CAM variant must be one of {', '.join(SCORECAM_VARIANTS)}; got {variant!r}")
    x = check_input(x)
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    layer, A = feature_map(model, layer, "Score-CAM")
    A = A.copy()                                                         # the forwards below replace the pass
    batch_size = check_batch_size(batch_size, BATCH_ELEMENTS // x[0].size, "Score-CAM")
    authors = variant == "authors"
    masks = [score_masks(A[i], x.shape[2:], align_corners=not authors, eps=eps) for i in range(len(x))]
    keep = [np.flatnonzero(~constant) if authors else np.arange(A.shape[1]) for _, constant in masks]
    bar = Progress(sum(map(len, keep)), "Score-CAM", unit="masked inputs", enabled=progress is not False,
                   after=0.0 if progress else 2.0)
    alpha = np.zeros(A.shape[:2], dtype=logits.dtype)
    try:
        for i, ((H, _), k) in enumerate(zip(masks, keep)):
            if not len(k):
                continue                                                 # every map constant: every weight 0
            scored = batched(lambda masked: model.forward(masked, keep=False), lambda a, b: x[i] * H[k[a:b], None],
                             len(k), batch_size, bar)
            if authors:
                alpha[i, k] = softmax(scored)[:, targets[i]]
            else:
                alpha[i] = softmax(scored[:, targets[i]][None])[0]
    finally:
        bar.close()
    cam = weighted_sum(alpha, A)
    return ScoreCAM(method="scorecam", map=np.maximum(cam, 0) if relu else cam, alpha=alpha, relu=relu,
                    variant=variant, forwards=int(sum(map(len, keep))), targets=targets,
                    scores=scores_of(logits, targets), logits=logits, layer=layer, classes=model.classes)


# ---------------------------------------------------------------- Ablation-CAM

def ablationcam(model, x, target=None, layer: str | None = None, *, relu: bool = True,
                batch_size: int | None = None, progress: bool | None = None) -> AblationCAM:
    """Ablation-CAM (Desai and Ramaswamy, WACV 2020): the score's fall when one map is zeroed.

        y^c_k = y^c computed from A with A^k set to 0        (N, K)
        w_k   = (y^c - y^c_k) / y^c                          (N, K)
        L     = ReLU(sum_k w_k A^k)                          (N, h, w)

    Each y^c_k resumes the forward pass at the layer (``model.forward_from``):
    K copies of A per image, one map zeroed in each, run ``batch_size`` at a
    time. Dividing by y^c follows the paper; for an image whose y^c < 0 it
    flips every weight's sign.

    On a network ending GAP -> one dense layer W, y^c_k = y^c - W[c, k] F_k
    with F_k the mean of A^k, so w_k = W[c, k] F_k / y^c (asserted in tests).

    pytorch-grad-cam ablates with 0 when the smallest activation of the
    layer's output is 0 (any layer after a ReLU), which is the paper; on other
    layers it writes (min - 1e7) instead, which is not.
    """
    logits = model.forward(x)
    targets = choose_targets(model, logits, target)
    layer, A = feature_map(model, layer, "Ablation-CAM")
    A = A.copy()
    y = scores_of(logits, targets)
    if np.any(y == 0):
        raise InputError(f"Ablation-CAM divides by the score y^c, which is exactly 0 for image "
                         f"{int(np.flatnonzero(y == 0)[0])}; choose another target class")
    n, k = A.shape[:2]
    batch_size = check_batch_size(batch_size, BATCH_ELEMENTS // A[0].size, "Ablation-CAM")

    def ablated_copies(i, a, b):
        copies = np.repeat(A[i:i + 1], b - a, axis=0)                       # (b - a, K, h, w)
        copies[np.arange(b - a), np.arange(a, b)] = 0                        # copy j has map a + j zeroed
        return copies

    ablated = np.empty((n, k), dtype=logits.dtype)
    bar = Progress(n * k, "Ablation-CAM", unit="ablated maps", enabled=progress is not False,
                   after=0.0 if progress else 2.0)
    try:
        for i in range(n):
            run = lambda copies: model.forward_from(layer, copies, keep=False)[:, targets[i]]   # noqa: E731
            ablated[i] = batched(run, lambda a, b: ablated_copies(i, a, b), k, batch_size, bar)
    finally:
        bar.close()
    w = (y[:, None] - ablated) / y[:, None]
    cam = weighted_sum(w, A)
    return AblationCAM(method="ablationcam", map=np.maximum(cam, 0) if relu else cam, alpha=w, ablated=ablated,
                       relu=relu, forwards=n * k, targets=targets, scores=y, logits=logits, layer=layer,
                       classes=model.classes)
