"""The README's promises: its tour runs as written, and CI runs exactly its test command."""

import re
from pathlib import Path

import numpy as np

from minicnn.gradcheck import relative_error

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_tour_runs_as_written_and_its_grad_cam_is_the_derivative():
    tour = code_blocks("python")[0]
    ns = {}
    exec(compile(tour, "README.md (tour)", "exec"), ns)
    # The tour computes alpha from the engine's backward and checks gradcam.py, which uses the
    # same formula; prove the numbers instead. alpha_k = (1/Z) sum_ij dy^c/dA^k_ij is the
    # derivative of y^c along a uniform shift of map k, d/dt y^c(A + t 1_k) / Z: central
    # differences in float64, all K maps at once (copy k of A has map k shifted), through the
    # forward passes of the layers after features.19 (vgg_cifar10 is a chain of layers).
    model, A, alpha, L, c = (ns[k] for k in ("model", "A", "alpha", "L", "c"))
    K, h, w = A.shape[1:]
    model64 = model.astype(np.float64)
    names = [name for name, _ in model64.layers()]
    tail = [model64[name] for name in names[names.index("features.19") + 1:]]

    def y_c(maps):
        for layer in tail:
            maps = layer.forward(maps)[0]
        return maps[:, c]

    A64 = A.astype(np.float64)
    assert relative_error(y_c(A64), model.forward(ns["x"])[:, c]) < 1e-6     # the tail is the whole rest
    shifts = np.eye(K)[:, :, None, None] * np.ones((h, w))                  # (K, K, h, w): copy k shifts map k
    step = 1e-6
    alpha_fd = (y_c(A64 + step * shifts) - y_c(A64 - step * shifts)) / (2 * step * h * w)   # (K,)
    assert relative_error(alpha[0], alpha_fd) < 1e-5                     # the tour's float32 alpha
    assert relative_error(L[0], np.maximum(np.einsum("k,kij->ij", alpha_fd, A64[0]), 0)) < 1e-5
    assert np.any(alpha_fd < 0) and np.any(alpha_fd > 0) and L.max() > 0


def test_ci_runs_exactly_the_readme_test_command():
    test_command = next(block.strip() for block in code_blocks("sh") if "pytest" in block)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "'" not in test_command
    assert f"python3 .ci/guard.py -- '{test_command}'" in ci      # the command itself, run under the guard
