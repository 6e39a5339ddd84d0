"""Mutants of the sampling methods: LIME, Kernel SHAP, RISE and their feature masks.

One realistic mistake each: a kernel weight, the Shapley size distribution, the weight of the
empty and full coalitions, the coalition mapping inverted, the intercept penalised, the Lasso's
threshold, RISE's division by p, its shift, its mirrored edges, its probabilities, the grid's
cell edges, the labels of a mask passed in. Each must be killed by the tests of
tests/explain/test_explain_sampling.py (hand-computed cases and the recorded references).

    python tests/mutation/run_mutations.py -k sampling.
"""

from run_mutations import Mutant

SAMPLING = "tests/explain/test_explain_sampling.py"


def m(name, path, old, new, what, *tests, equivalent=""):
    return Mutant(f"sampling.{name}", f"minicnn/explain/{path}", old, new, what, equivalent=equivalent,
                  tests=tests or (SAMPLING,))


MUTANTS = [
    # ------------------------------------------------------------ lime.py
    m("lime-kernel-without-square", "lime.py",
      "return np.exp(-((1.0 - cos) ** 2) / (2.0 * kernel_width ** 2))",
      "return np.exp(-(1.0 - cos) / (2.0 * kernel_width ** 2))",
      "LIME's weight exp(-d / 2 sigma^2): the distance not squared"),
    m("lime-kernel-similarity-for-distance", "lime.py",
      "return np.exp(-((1.0 - cos) ** 2) / (2.0 * kernel_width ** 2))",
      "return np.exp(-(cos ** 2) / (2.0 * kernel_width ** 2))",
      "LIME's kernel on the cosine similarity instead of the distance"),
    m("lime-coalition-mapping-inverted", "lime.py",
      "return on * x + (1 - on) * baseline", "return (1 - on) * x + on * baseline",
      "a feature switched on takes the baseline, off keeps x"),
    m("lime-default-alpha-zero", "lime.py",
      "alpha = check_real(0.0 if shap else 0.01 if alpha is None else alpha, \"alpha\")",
      "alpha = check_real(0.0 if shap else 0.0 if alpha is None else alpha, \"alpha\")",
      "LIME fitted without captum's default L1 penalty 0.01"),
    m("lasso-threshold-doubled", "lime.py",
      "new = np.sign(rho) * max(abs(rho) - alpha, 0.0) / curvature[j]",
      "new = np.sign(rho) * max(abs(rho) - 2 * alpha, 0.0) / curvature[j]",
      "the soft threshold at 2 alpha (the objective's 1/2 forgotten)"),
    m("fit-unweighted-means", "lime.py",
      "z_bar, y_bar = v @ z, v @ y", "z_bar, y_bar = z.mean(axis=0), y.mean()",
      "the intercept's centring by plain means, not weighted ones"),
    m("fit-weights-ignored", "lime.py",
      "root = np.sqrt(v)[:, None]", "root = np.ones_like(v)[:, None]",
      "the least squares unweighted (Kernel SHAP's ends weigh 1, not 10^6)"),
    m("shap-ends-weigh-one", "lime.py",
      "return np.where((size == 0) | (size == z.shape[1]), INFINITE_WEIGHT, 1.0)",
      "return np.where((size == 0) | (size == z.shape[1]), 1.0, 1.0)",
      "the empty and the full coalition weigh 1: efficiency no longer holds"),
    m("shap-size-distribution-uniform", "lime.py",
      "p = (m - 1) / (k * (m - k))", "p = (m - 1) / (k * 0 + 1.0)",
      "coalition sizes drawn uniformly, not by the Shapley kernel"),
    m("shap-kernel-without-binomial", "lime.py",
      "return (m - 1) / (math.comb(m, size) * size * (m - size))", "return (m - 1) / (size * (m - size))",
      "the Shapley kernel without C(M, |z|)"),
    m("shap-first-coalition-not-full", "lime.py",
      "    z[0] = 1\n", "    z[0] = 0\n",
      "the full coalition never drawn"),
    m("map-from-wrong-image-mask", "lime.py",
      "maps = np.stack([phi[labels[i]] for i, phi in enumerate(coefficients)])",
      "maps = np.stack([phi[labels[0]] for i, phi in enumerate(coefficients)])",
      "every image's map painted through image 0's superpixels"),
    # ------------------------------------------------------------ features.py
    m("grid-cells-off", "features.py",
      "rows = np.arange(h) * min(cells, h) // h", "rows = (np.arange(h) + 1) * min(cells, h) // (h + 1)",
      "grid rows cut at floor((i + 1) cells / (H + 1))"),
    m("mask-labels-not-relabelled", "features.py",
      "labels[i], counts[i] = inverse.reshape(h, w), len(values)",
      "labels[i], counts[i] = masks[i], len(values)",
      "a mask's labels used as given: gaps make features that never appear"),
    # ------------------------------------------------------------ rise.py
    m("rise-p-not-divided", "rise.py",
      "saliency /= total * p", "saliency /= total",
      "RISE's sum divided by N only, not N p"),
    m("rise-mask-not-shifted", "rise.py",
      "rows = a_h[shifts[:, 0, None] + np.arange(h)]", "rows = a_h[np.arange(h)[None].repeat(len(shifts), 0)]",
      "the masks' rows never shifted"),
    m("rise-edges-clamped", "rise.py",
      "mirrored = np.abs(index)                                    # G[-1] = G[1]",
      "mirrored = np.maximum(index, 0)                             # G[-1] = G[1]",
      "the grid clamped at its edge (G[-1] = G[0]), not mirrored as skimage's mode reflect"),
    m("rise-centres-aligned", "rise.py",
      "t = (np.arange(n) + 0.5) * s / n - 0.5", "t = np.arange(n) * (s - 1) / max(n - 1, 1)",
      "the upsampling with aligned corners, not half-pixel centres"),
    m("rise-logits-not-probabilities", "rise.py",
      "f = softmax(model.forward(copies, keep=False).astype(np.float64))[:, targets[i]]",
      "f = model.forward(copies, keep=False).astype(np.float64)[:, targets[i]]",
      "the masks weighted by the logit, not the class probability"),
    m("rise-up-size-s", "rise.py",
      "a_h = interpolation_weights(s, (s + 1) * cell_h)", "a_h = interpolation_weights(s, s * cell_h + 1)",
      "the grid upsampled to s cells (+1 pixel), not s + 1"),
]
