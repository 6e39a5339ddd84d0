"""Mutants of ``minicnn/explain/excitation.py``: Excitation Backprop and contrastive MWP.

One realistic mistake each in the excitation rule, the rule table, the
contrastive classifier rule and the map; each must be killed by
tests/explain/test_excitation.py (the network worked by hand, the rules of
each layer, conservation on random networks, TorchRay's maps).
"""

from run_mutations import Mutant

TESTS = ("tests/explain/test_excitation.py",)


def m(name, old, new, what):
    return Mutant(f"excitation.{name}", "minicnn/explain/excitation.py", old, new, what, tests=TESTS)


MUTANTS = [
    m("all-weights", "return modified(layer, positive)", "return modified(layer, lambda w: w)",
      "the rule shares by W a instead of W+ a (LRP-0 without bias)"),
    m("keeps-bias", "return modified(layer, positive)", "return modified(layer, positive, lambda b: b)",
      "the bias kept in the denominator W+ a + b"),
    m("negative-weights", "return modified(layer, positive)", "return modified(layer, np.abs)",
      "|W| instead of W+: negative weights excite too"),
    m("stabiliser", "return Epsilon(0.0)(self.positive_part(layer), a, P)",
      "return Epsilon(1e-2)(self.positive_part(layer), a, P)",
      "a stabiliser 1e-2 in the denominator (P lost at every layer)"),
    m("pool-by-gradient", "((AvgPool2d, AdaptiveAvgPool2d, Add), Norm(0.0)),", "((Add,), Norm(0.0)),",
      "average pooling keeps its gradient (equal shares 1/k instead of shares by the inputs)"),
    m("add-by-gradient", "((AvgPool2d, AdaptiveAvgPool2d, Add), Norm(0.0)),",
      "((AvgPool2d, AdaptiveAvgPool2d), Norm(0.0)),",
      "the residual addition sends P unchanged to both summands (P doubled)"),
    m("batchnorm-by-gradient", "((BatchNorm2d, ReLU6), Pass()))", "((ReLU6,), Pass()))",
      "BatchNorm keeps its gradient (P scaled by gamma / sigma)"),
    m("relu6-by-gradient", "((BatchNorm2d, ReLU6), Pass()))", "((BatchNorm2d,), Pass()))",
      "ReLU6 keeps its gradient (the P of saturated units dropped)"),
    m("dual-not-negated", "dual = modified(layer, np.negative)", "dual = modified(layer, lambda w: w)",
      "the dual is the class itself: the contrastive map is zero"),
    m("contrastive-sum", "return Excitation()(layer, a, P) - Excitation()(dual, a, P)",
      "return Excitation()(layer, a, P) + Excitation()(dual, a, P)",
      "the dual's MWP added instead of subtracted"),
    m("classifier-first", "if isinstance(layer, (Conv2d, Linear))][-1]", "if isinstance(layer, (Conv2d, Linear))][0]",
      "the first convolution taken for the classifier"),
    m("contrastive-no-relu", "map=np.maximum(summed, 0) if contrastive else summed",
      "map=summed", "the contrastive map without its positive part"),
    m("map-channel-max", "summed = P.sum(axis=1)", "summed = P.max(axis=1)",
      "the map is the largest channel's P instead of the sum over channels"),
]
