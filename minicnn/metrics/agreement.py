"""Agreement with occlusion (Selvaraju et al., *Grad-CAM*, IJCV 2019, section 5.2: faithfulness).

Occlusion measures what each region does to the class score by removing
it; a map that agrees with it ranks pixels in the same order. The Grad-CAM
paper reports the rank correlation of Grad-CAM and occlusion maps, averaged
over images:

    occlusion_spearman(m, o) = spearman(m, o)       per image, pixel maps (N, H, W)

with m the method's pixel map (:mod:`minicnn.metrics.maps`: upsampled
layer maps, channel magnitudes of input maps) and o the occlusion map
``minicnn.explain.occlusion`` returns (mean score drop of the patches
covering each pixel, signed). The occlusion method itself scores 1.
"""

from __future__ import annotations

import numpy as np

from .similarity import spearman


def occlusion_spearman(m: np.ndarray, occlusion_map: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pixel map with its image's occlusion map: (N,)."""
    return spearman(m, occlusion_map)
