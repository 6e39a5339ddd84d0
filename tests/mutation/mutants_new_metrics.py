"""Mutants of the scorecard's columns from Average Drop to random-logit (``minicnn/metrics/``: ``confidence``,
``perturbation``, ``robustness``, ``complexity``, ``random_logit``, ``trust``).

Each is one small, realistic mistake (a missing abs or epsilon, the wrong end of a
difference, a wrong axis, a normalisation left out, a mean for a max, a draw that may
return the target), run against the new metrics' test files, which take seconds. Run with

    python tests/mutation/run_mutations.py -k trustcols.
"""

from run_mutations import Mutant

REF = ("tests/metrics/test_metrics_new_reference.py", "tests/metrics/test_metrics_new_by_hand.py")
CARD = ("tests/metrics/test_metrics_trust.py",)


def _m(name, path, old, new, what, tests=REF, equivalent=""):
    return Mutant(f"trustcols.{name}", f"minicnn/metrics/{path}", old, new, what, equivalent=equivalent, tests=tests)


MUTANTS = [
    # ------------------------------------------------------------ sparseness and complexity
    _m("magnitudes.signed", "complexity.py", "a = np.abs(np.asarray(maps, dtype=np.float64))",
       "a = np.asarray(maps, dtype=np.float64)", "the maps' signs kept (Quantus takes abs)"),
    _m("magnitudes.not-by-max", "complexity.py", "return np.divide(a, top, out=a.copy(), where=top > 0)",
       "return a", "the magnitudes not divided by their largest (the 1e-7 then weighs differently)"),
    _m("gini.descending", "complexity.py", "w = np.sort(magnitudes(maps) + GINI_EPS, axis=1)",
       "w = -np.sort(-(magnitudes(maps) + GINI_EPS), axis=1)", "the Gini index over values sorted high to low"),
    _m("gini.without-minus-one", "complexity.py", "((2 * k - P - 1) * w)", "((2 * k - P) * w)",
       "the Gini weights 2k - P, not 2k - P - 1"),
    _m("gini.no-epsilon", "complexity.py", "GINI_EPS, LOG_EPS = 1e-7, 1e-12", "GINI_EPS, LOG_EPS = 0.0, 1e-12",
       "no 1e-7 added before the Gini index (an all-zero map divides 0 by 0)"),
    _m("entropy.log2", "complexity.py", "return -(p * np.log(p + LOG_EPS)).sum(axis=1)",
       "return -(p * np.log2(p + LOG_EPS)).sum(axis=1)", "the entropy in bits, not nats"),
    _m("entropy.unnormalised", "complexity.py", "p = np.divide(v, total, out=np.zeros_like(v), where=total > 0)",
       "p = v", "the entropy of the magnitudes not divided by their sum"),
    # ------------------------------------------------------------ Average Drop, Increase in Confidence
    _m("mask.not-shifted", "confidence.py", "    m = m - m.min(axis=(1, 2), keepdims=True)\n", "",
       "the map divided by its max without subtracting its min"),
    _m("mask.resized-first", "confidence.py",
       "    return m if m.shape[1:] == tuple(size) else resize_bilinear(m, size)",
       "    return m if m.shape[1:] == tuple(size) else resize_bilinear(m, size, align_corners=True)",
       "the mask resized with corners aligned (torch-cam: half-pixel centres)"),
    _m("drop.not-clipped", "confidence.py", "return np.maximum(p - p_masked, 0.0) / (p + DROP_EPS)",
       "return (p - p_masked) / (p + DROP_EPS)", "Average Drop counts gains as negative drops (no max(0, .))"),
    _m("drop.over-masked", "confidence.py", "return np.maximum(p - p_masked, 0.0) / (p + DROP_EPS)",
       "return np.maximum(p - p_masked, 0.0) / (p_masked + DROP_EPS)", "the drop divided by p~, not p"),
    _m("increase.at-equal", "confidence.py", "np.asarray(p, dtype=np.float64) < np.asarray(p_masked",
       "np.asarray(p, dtype=np.float64) <= np.asarray(p_masked", "an unchanged probability counted as an increase"),
    # ------------------------------------------------------------ faithfulness correlation, infidelity
    _m("fc.baseline-zero", "perturbation.py",
       'fill = flat_x.min(axis=1) if baseline == "black" else np.full(n, float(baseline))',
       "fill = np.zeros(n)", '"black" taken as 0, not the image\'s smallest value'),
    _m("fc.drop-reversed", "perturbation.py",
       "drops = f_x[:, None] - score(copies.reshape(n * runs, *x.shape[1:]), rows).reshape(n, runs)",
       "drops = score(copies.reshape(n * runs, *x.shape[1:]), rows).reshape(n, runs) - f_x[:, None]",
       "the score's rise, not its drop"),
    _m("fc.sums-of-abs", "perturbation.py", "sums = flat_a[np.arange(n)[:, None, None], subsets].sum(axis=2)",
       "sums = np.abs(flat_a)[np.arange(n)[:, None, None], subsets].sum(axis=2)",
       "the subsets' sums of |a| (Quantus's default keeps the sign)"),
    _m("fc.one-channel", "perturbation.py", "    return np.broadcast_to(a, x.shape).reshape(len(x), -1)\n",
       "    return np.concatenate([a, np.zeros_like(x[:, 1:]) if a.shape[1] == 1 else a[:, 1:] * 0], 1)"
       ".reshape(len(x), -1)\n", "a per-pixel map put on the first channel only, not on every channel"),
    _m("pearson.mean-rounding-not-constant", "perturbation.py",
       "constant = (s == s[:, :1]).all(axis=1) | (d == d[:, :1]).all(axis=1)", "constant = np.zeros(len(s), bool)",
       "equal sums taken as varying by their rounding error (SciPy says undefined)"),
    _m("infid.plus-noise", "perturbation.py", "copies = (x[:, None] - I).astype(x.dtype)",
       "copies = (x[:, None] + I).astype(x.dtype)", "the input perturbed to x + I (captum's convention: x - I)"),
    _m("infid.beta-inverted", "perturbation.py", "beta = (s * d).sum(axis=1) / np.where(ss == 0, 1.0, ss)",
       "beta = ss / np.where((s * d).sum(axis=1) == 0, 1.0, (s * d).sum(axis=1))",
       "the normalising scale sum s^2 / sum s d, upside down"),
    _m("infid.sum-not-mean", "perturbation.py", "return ((s - d) ** 2).mean(axis=1)", "return ((s - d) ** 2).sum(axis=1)",
       "infidelity summed over the samples, not averaged"),
    # ------------------------------------------------------------ max-sensitivity
    _m("sens.absolute", "robustness.py", "worst = np.maximum(worst, np.linalg.norm(e - e_r, axis=1) / norm)",
       "worst = np.maximum(worst, np.linalg.norm(e - e_r, axis=1))", "the change not divided by the map's norm"),
    _m("sens.mean", "robustness.py", "worst = np.maximum(worst, np.linalg.norm(e - e_r, axis=1) / norm)",
       "worst = worst + np.linalg.norm(e - e_r, axis=1) / norm / noise.shape[1]",
       "the mean change over the samples (average sensitivity), not the largest"),
    _m("sens.zero-norm-inf", "robustness.py", "norm = np.where(norm == 0, 1.0, norm)", "norm = norm + 1e-30",
       "an all-zero map divides by (almost) zero, not by 1 as captum"),
    _m("sens.noise-radius-halved", "robustness.py", "return rng.uniform(-radius, radius, (n, samples, *rest))",
       "return rng.uniform(-radius / 2, radius / 2, (n, samples, *rest))", "the noise drawn from half the ball"),
    # ------------------------------------------------------------ random-logit
    _m("rl.target-drawn", "random_logit.py", "return pick + (pick >= targets)", "return pick",
       "the 'other' class may be the target itself"),
    _m("rl.window-mean-not-sample", "random_logit.py", "    norm = WINDOW / (WINDOW - 1)\n", "    norm = 1.0\n",
       "SSIM without scikit-image's sample-covariance factor 7/6"),
    _m("rl.range-of-one-map", "random_logit.py",
       "L = np.maximum(a.max(axis=1), b.max(axis=1)) - np.minimum(a.min(axis=1), b.min(axis=1))",
       "L = a.max(axis=1) - a.min(axis=1)", "SSIM's data range from the first map alone (Quantus: both)"),
    _m("rl.not-scaled", "random_logit.py", "return ssim_rows(scale_by_max(maps), scale_by_max(other_maps))",
       "return ssim_rows(np.reshape(maps, (len(maps), -1)), np.reshape(other_maps, (len(other_maps), -1)))",
       "the maps compared without dividing each by its largest magnitude"),
    # ------------------------------------------------------------ the scorecard's use of them
    _m("card.cam-mask-from-pixels", "trust.py", 'mask = explanation_mask(raw if kind == "layer" else pixels, size)',
       "mask = explanation_mask(pixels, size)", "a layer map scaled after upsampling, not at its own size", CARD),
    _m("card.fc-input-summed", "trust.py",
       'attribution = raw if kind == "input" else pixel_map(raw, kind, size, channels="sum")',
       'attribution = pixel_map(raw, kind, size, channels="sum")',
       "faithfulness correlation and infidelity of an input map summed over its channels, not per channel", CARD),
    _m("card.probability-for-fc", "trust.py", "logit = class_scores(model, targets, probability=False",
       "logit = class_scores(model, targets, probability=True", "faithfulness correlation on p^c, not the logit",
       CARD),
    _m("card.infidelity-unnormalised", "trust.py", "draws.perturbations, normalize=True, score_x=logit_x)",
       "draws.perturbations, normalize=False, score_x=logit_x)", "the scorecard's infidelity without captum's "
       "normalisation (then it measures the map's units)", CARD),
    _m("card.others-are-targets", "trust.py", "others = explain(x, np.arange(r), draws.others[:r])",
       "others = explain(x, np.arange(r))", "random-logit compares the map with itself", CARD),
    _m("card.baseline-redrawn-each-class", "trust.py", '"random_logit": random_logit(maps, maps)}',
       '"random_logit": random_logit(maps, baseline_maps(x, seed + 1)[name])}',
       "the random baseline redrawn for the other class (it does not know the class)", CARD),
    _m("card.added-passes-without-the-map", "trust.py", '"forwards": images * map_sets * sum(FORWARDS.values())',
       '"forwards": images * map_sets * (FC_RUNS + INFIDELITY_SAMPLES)',
       "the estimate forgets Average Drop's forward of the masked image", CARD),
]
