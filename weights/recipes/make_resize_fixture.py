"""Record PyTorch's bilinear resizing as a test fixture.

Writes tests/fixtures/resize_torch.npz: random float64 maps of several shapes
and ``torch.nn.functional.interpolate(x, size, mode="bilinear",
align_corners=...)`` of each, for align_corners False and True. The tests in
tests/explain/test_resize.py compare minicnn.explain.resize.resize_bilinear to these
values to 1e-6 without importing torch.

Keys: ``case{k}_input`` (N, C, h, w), ``case{k}_size`` [H, W],
``case{k}_align_false`` and ``case{k}_align_true`` (N, C, H, W),
``torch_version``, ``cases`` (number of cases).

Usage: python weights/recipes/make_resize_fixture.py [output.npz]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# (input shape (N, C, h, w), output size (H, W)): the Grad-CAM upsamplings
# (VGG 7 -> 224, ResNet-20 8 -> 32, the 32x64 cat|dog image 8x16 -> 32x64),
# non-integer ratios, a downsample, and single-pixel edge cases.
CASES = [
    ((1, 1, 7, 7), (224, 224)),
    ((2, 3, 8, 8), (32, 32)),
    ((1, 2, 8, 16), (32, 64)),
    ((1, 2, 5, 7), (13, 11)),
    ((2, 1, 3, 5), (7, 9)),
    ((1, 3, 17, 23), (6, 9)),
    ((1, 1, 9, 4), (4, 10)),
    ((1, 1, 1, 1), (5, 3)),
    ((1, 2, 4, 6), (1, 1)),
]


def main(out: Path) -> None:
    rng = np.random.default_rng(20240601)
    arrays: dict[str, np.ndarray] = {"torch_version": np.array(torch.__version__), "cases": np.array(len(CASES))}
    for k, (shape, size) in enumerate(CASES):
        x = rng.standard_normal(shape)
        t = torch.from_numpy(x)
        arrays[f"case{k}_input"] = x
        arrays[f"case{k}_size"] = np.array(size)
        for align in (False, True):
            y = F.interpolate(t, size=size, mode="bilinear", align_corners=align).numpy()
            arrays[f"case{k}_align_{str(align).lower()}"] = y
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(CASES)} cases, torch {torch.__version__})")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else root / "tests" / "fixtures" / "resize_torch.npz")
