"""Record scikit-image's SSIM, Quantus 0.6.0's metrics and PyTorch's default initialisation as a test fixture.

Writes tests/fixtures/metrics_reference.npz. The maps are drawn here from a
fixed seed and stored beside the answers, so tests/metrics/test_metrics_reference.py
compares minicnn.metrics with the same inputs, without importing any of
these libraries:

- ``ssim_a``, ``ssim_b`` (4, 24, 24) maps in [0, 1];
  ``ssim_skimage`` (4,): ``skimage.metrics.structural_similarity(a, b, data_range=1,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` (Wang et al. 2004);
  ``ssim_quantus`` (4,): ``quantus.functions.similarity_func.ssim(a, b)`` (scikit-image's
  default 7x7 uniform window with sample covariance, data range of the pair);
- ``spearman_abs_quantus``, ``spearman_quantus`` (4,): ``correlation_spearman`` of the
  flattened signed maps ``ssim_a - 0.5`` and ``ssim_b - 0.5``, with and without ``abs`` (the
  similarities of Quantus's MPRT);
- ``point_maps`` (8, 16, 16) maps without ties, ``point_masks`` (8, 16, 16) bool:
  ``pointing_game_quantus`` (8,) from ``quantus.PointingGame().evaluate_batch`` and, on the
  non-negative maps ``point_maps_positive``, ``mass_quantus`` (8,) from
  ``quantus.RelevanceMassAccuracy().evaluate_batch``;
- ``impute_x`` (2, 3, 9, 8), ``impute_removed`` (2, 9, 8) bool, ``impute_quantus`` (2, 3, 9, 8):
  ``quantus.functions.perturb_func.noisy_linear_imputation(x_i, removed flat indices, noise=0)``
  per image (ROAD's imputation, without its noise);
- ``init_{conv,linear}_std``, ``init_{conv,linear}_max`` and ``init_{conv,linear}_fan_in``:
  the standard deviation and largest magnitude of the weights PyTorch's own default
  initialisation draws for ``Conv2d(64, 128, 3)`` and ``Linear(2048, 256)``
  (``torch.manual_seed(0)``), and the fan-in; ``init_bn`` (4,): a fresh ``BatchNorm2d``'s
  weight, bias, running mean and running variance (first channel);
- ``versions``: the library versions.

Quantus 0.6.0 imports without torchvision; the script needs numpy, scikit-image,
quantus and torch (the reference environment of the project, e.g. torch 2.13.0 CPU).

Usage: python weights/recipes/make_metrics_fixture.py [output.npz]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import quantus
import skimage
import torch
from quantus.functions.perturb_func import noisy_linear_imputation
from quantus.functions.similarity_func import correlation_spearman
from quantus.functions.similarity_func import ssim as quantus_ssim
from skimage.metrics import structural_similarity


def main(out: Path) -> None:
    rng = np.random.default_rng(2018)
    data = {}

    # SSIM and Spearman: smooth random maps, pairs from unrelated to nearly equal
    base = rng.random((4, 24, 24))
    a = np.stack([skimage.filters.gaussian(m, sigma=2) for m in base])
    noise = rng.random((4, 24, 24))
    b = np.stack([(1 - t) * m + t * skimage.filters.gaussian(n, sigma=1)
                  for m, n, t in zip(a, noise, np.linspace(0.05, 1.0, 4))])
    a, b = [(m - m.min((1, 2), keepdims=True)) / np.ptp(m, (1, 2), keepdims=True) for m in (a, b)]
    signed_b = b - 0.5
    data["ssim_a"], data["ssim_b"] = a, b
    data["ssim_skimage"] = np.array([structural_similarity(p, q, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                                           use_sample_covariance=False) for p, q in zip(a, b)])
    data["ssim_quantus"] = np.array([quantus_ssim(p, q) for p, q in zip(a, b)])
    data["spearman_abs_quantus"] = np.array([correlation_spearman(np.abs(p).ravel(), np.abs(q).ravel())
                                             for p, q in zip(a - 0.5, signed_b)])
    data["spearman_quantus"] = np.array([correlation_spearman(p.ravel(), q.ravel()) for p, q in zip(a - 0.5, signed_b)])

    # pointing game and relevance mass: maps without ties, one quarter as the mask
    maps = rng.standard_normal((8, 16, 16))
    masks = np.zeros((8, 16, 16), dtype=bool)
    for i in range(8):
        r, c = divmod(i % 4, 2)
        masks[i, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = True
    maps[::2] += 2.5 * masks[::2]                      # half the maps point into their tile
    positive = np.abs(maps)
    data["point_maps"], data["point_masks"], data["point_maps_positive"] = maps, masks, positive
    game = quantus.PointingGame(disable_warnings=True)
    data["pointing_game_quantus"] = np.asarray(game.evaluate_batch(a_batch=maps[:, None], s_batch=masks[:, None]),
                                               dtype=np.float64)
    mass = quantus.RelevanceMassAccuracy(disable_warnings=True)
    data["mass_quantus"] = np.asarray(mass.evaluate_batch(a_batch=positive[:, None], s_batch=masks[:, None]),
                                      dtype=np.float64)

    # ROAD's linear imputation without noise
    x = rng.standard_normal((2, 3, 9, 8))
    removed = rng.random((2, 9, 8)) < np.array([0.3, 0.7])[:, None, None]
    data["impute_x"], data["impute_removed"] = x, removed
    data["impute_quantus"] = np.stack([noisy_linear_imputation(x[i], np.flatnonzero(removed[i]), noise=0.0)
                                       for i in range(2)])

    # PyTorch's default initialisation
    torch.manual_seed(0)
    for name, layer in (("conv", torch.nn.Conv2d(64, 128, 3)), ("linear", torch.nn.Linear(2048, 256))):
        w = layer.weight.detach().double().numpy()
        data[f"init_{name}_std"] = np.array(w.std())
        data[f"init_{name}_max"] = np.array(np.abs(w).max())
        data[f"init_{name}_fan_in"] = np.array(np.prod(w.shape[1:]))
    bn = torch.nn.BatchNorm2d(8)
    bn.requires_grad_(False)
    data["init_bn"] = np.array([float(bn.weight[0]), float(bn.bias[0]), float(bn.running_mean[0]),
                                float(bn.running_var[0])])
    data["versions"] = np.array(f"quantus {quantus.__version__}, scikit-image {skimage.__version__}, "
                                f"torch {torch.__version__}, numpy {np.__version__}")
    np.savez(out, **data)
    print(f"wrote {out}: {', '.join(sorted(data))}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/metrics_reference.npz"))
