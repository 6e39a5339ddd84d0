"""Mutants of ``minicnn/explain/deeplift.py``: DeepLIFT's rules, DeepLIFT-SHAP and GradientSHAP.

One realistic mistake each: the rescale multiplier without its fallback, the baseline forgotten, the
max-pooling rule's halves mixed up, the mean over the wrong axis, the draws read in the wrong order.
``tests/explain/test_deeplift.py`` must kill every one:

    python tests/mutation/run_mutations.py -k deeplift
"""

from run_mutations import Mutant

TESTS = ("tests/explain/test_deeplift.py",)


def m(name, old, new, what):
    return Mutant(f"deeplift.{name}", "minicnn/explain/deeplift.py", old, new, what, tests=TESTS)


MUTANTS = [
    # ------------------------------------------------------------ the rescale rule
    m("no-fallback",
      "return np.where(far, dout * multiplier, layer.backward(dout, cache)[0])",
      "return dout * multiplier",
      "the rescale multiplier without the fallback: a unit that did not move passes 0, not its derivative"),
    m("gradient-not-rescale",
      "return np.where(far, dout * multiplier, layer.backward(dout, cache)[0])",
      "return layer.backward(dout, cache)[0]",
      "ReLU keeps its gradient (Input x Gradient against a baseline, not DeepLIFT)"),
    m("multiplier-upside-down",
      "multiplier = np.divide(y - y0, delta_in, out=np.zeros_like(delta_in), where=far)",
      "multiplier = np.divide(delta_in, y - y0, out=np.zeros_like(delta_in), where=far & (y != y0))",
      "the multiplier as (x - x0) / (y - y0)"),
    m("fallback-threshold-ignored",
      "far = np.abs(delta_in) >= self.eps\n        multiplier",
      "far = np.abs(delta_in) > 1.0\n        multiplier",
      "a threshold of 1 instead of eps: units that moved by less than 1 pass their gradient"),
    # ------------------------------------------------------------ max pooling
    m("maxpool-plain-gradient",
      "u = layer.backward(dout * (top - y0), cache)[0] + layer.backward(dout * (y - top), cache0)[0]",
      "u = layer.backward(dout * (y - y0), cache)[0]",
      "max pooling: everything routed to x's maximum (the gradient's routing)"),
    m("maxpool-halves-swapped",
      "u = layer.backward(dout * (top - y0), cache)[0] + layer.backward(dout * (y - top), cache0)[0]",
      "u = layer.backward(dout * (y - top), cache)[0] + layer.backward(dout * (top - y0), cache0)[0]",
      "max pooling: the baseline's part routed to x's maximum and x's part to the baseline's"),
    m("maxpool-no-rule",
      "elif isinstance(layer, MaxPool2d):\n            rules[name] = RescaleMaxPool(model.inputs[name], eps)",
      "elif isinstance(layer, MaxPool2d):\n            pass",
      "max pooling keeps its gradient"),
    # ------------------------------------------------------------ the baseline
    m("baseline-forgotten",
      "    rules = deeplift_rules(model, eps)\n    logits = model.forward(x)\n",
      "    logits = model.forward(x)\n    rules = deeplift_rules(model, eps)\n",
      "the rules read x's own pass, not the baseline's: every unit looks unmoved"),
    m("attribution-not-times-difference",
      "attribution = (x - x0) * m\n",
      "attribution = x * m\n",
      "DeepLIFT's attribution as x * m, the baseline forgotten in the difference"),
    # ------------------------------------------------------------ DeepLIFT-SHAP
    m("shap-mean-over-the-images",
      "gap = scores - baseline_scores.mean(axis=1) - attribution.reshape(n, -1).sum(axis=1)\n    return DeepLift(",
      "gap = scores - baseline_scores.mean(axis=0) - attribution.reshape(n, -1).sum(axis=1)\n    return DeepLift(",
      "DeepLIFT-SHAP's gap: the baselines' scores averaged over the images, not over the baselines"),
    m("shap-divided-by-the-images",
      "attribution = (total / b).astype(x.dtype)",
      "attribution = (total / n).astype(x.dtype)",
      "DeepLIFT-SHAP's sum divided by the number of images, not of baselines"),
    m("shap-sum-not-mean",
      "attribution = (total / b).astype(x.dtype)",
      "attribution = total.astype(x.dtype)",
      "DeepLIFT-SHAP summed over the baselines instead of averaged"),
    # ------------------------------------------------------------ GradientSHAP
    m("gshap-difference-without-noise",
      "np.add.at(total, i, (noisy - x0) * gradient)",
      "np.add.at(total, i, (x[i] - x0) * gradient)",
      "GradientSHAP multiplies by x - x0, not by the noisy x~ - x0 (captum uses x~)"),
    m("gshap-alpha-reversed",
      "logits_p = model.forward(a * noisy + (1 - a) * x0)",
      "logits_p = model.forward((1 - a) * noisy + a * x0)",
      "the point on the line measured from x, not from the baseline"),
    m("gshap-one-alpha-per-image",
      "a = alpha[i, k].astype(x.dtype)",
      "a = alpha[i, 0].astype(x.dtype)",
      "GradientSHAP uses the first point on the line for every draw of an image"),
    m("gshap-noise-not-added",
      "noisy, x0 = x[i] + e, base[index[i, k]]",
      "noisy, x0 = x[i], base[index[i, k]]",
      "GradientSHAP's noise drawn but never added to x"),
    m("gshap-baseline-by-sample",
      "noisy, x0 = x[i] + e, base[index[i, k]]",
      "noisy, x0 = x[i] + e, base[k % len(base)]",
      "GradientSHAP takes baseline k for draw k instead of the drawn one"),
]
