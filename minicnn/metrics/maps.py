"""One number per input pixel: every method's map brought to the same (N, H, W) form.

The registry's methods return maps of three kinds (``Method.kind``); the
metrics compare, rank and sum pixels, so each map is first turned into an
(N, H, W) array over the input's pixels by one documented rule:

| kind     | raw map      | pixel map                                                         |
|----------|--------------|-------------------------------------------------------------------|
| "layer"  | (N, h, w)    | bilinear upsampling to (H, W), half-pixel centres (as PyTorch's    |
|          |              | ``F.interpolate(..., align_corners=False)``); values as they are   |
| "pixels" | (N, H, W)    | as it is                                                          |
| "input"  | (N, C, H, W) | ``channels="abs"``: sum_c |m_c|, the magnitude (the default)        |
|          |              | ``channels="sum"``: sum_c m_c, the signed total                   |

Which rule each metric uses:

- ranking pixels (deletion, insertion, ROAD, the pointing games, the rank
  correlation with occlusion): ``channels="abs"``. A gradient's sign says in
  which direction a pixel's value should move, not whether the pixel
  matters, so pixels are ranked by magnitude, summed over the colour
  channels (Simonyan et al. take the maximum over channels instead; the sum
  keeps the contributions of all three). Maps over layers and pixels keep
  their sign: the most positive pixel (the strongest evidence for the class)
  ranks first, the most negative last.
- the sanity checks: Spearman of absolute values and SSIM use the
  ``channels="abs"`` map (its absolute value, for signed maps over layers or
  pixels), signed Spearman uses ``channels="sum"``, as Adebayo et al. compare
  maps with and without their sign.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..explain.resize import resize_bilinear

CHANNEL_RULES = ("abs", "sum")


def pixel_map(m, kind: str, size, *, channels: str = "abs") -> np.ndarray:
    """The (N, H, W) float64 map over the input's pixels of a raw map of ``kind`` (see the module docstring)."""
    m = np.asarray(m, dtype=np.float64)
    size = tuple(int(s) for s in size)
    if channels not in CHANNEL_RULES:
        raise InputError(f"channels must be one of {', '.join(CHANNEL_RULES)}; got {channels!r}")
    if kind == "layer" and m.ndim == 3:
        return resize_bilinear(m, size) if m.shape[1:] != size else m
    if kind == "pixels" and m.ndim == 3 and m.shape[1:] == size:
        return m
    if kind == "input" and m.ndim == 4 and m.shape[2:] == size:
        return np.abs(m).sum(axis=1) if channels == "abs" else m.sum(axis=1)
    raise InputError(f"a map of kind {kind!r} for {size[0]}x{size[1]} inputs cannot have shape {m.shape}")
