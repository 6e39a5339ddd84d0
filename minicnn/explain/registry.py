"""The one list of explanation methods: name, function, save key, kind of map, how to show it.

Everything that offers "every method" reads this table: ``minicnn explain
--method`` and ``--save``, the figures' titles and colour-bar labels, the
demo's gallery, the server and the scorecard. Adding a method is one
function in its family's module and one row here.

    from minicnn.explain.registry import METHODS, get
    m = get("gradcam")
    r = m.run(model, x, target="cat", layer="layer3")   # an Explanation
    m.key      # "gradcam": the name of its raw map in --save files and the API
    m.kind     # "layer": (N, h, w) at a layer; "pixels": (N, H, W); "input": (N, C, H, W)

A row's function takes ``(model, x, target=None, layer=None, **options)``
when ``uses_layer``, else ``(model, x, target=None, **options)``; ``options``
are the keyword arguments it accepts from the command line (see ``Option``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, unknown_name
from .cam import cam
from .deeplift import BASELINE_SETS, deeplift, deeplift_shap, gradient_shap
from .eigen_cams import eigencam, eigengradcam
from .excitation import contrastive_excitation_backprop, excitation_backprop
from .fullgrad import fullgrad
from .gradcam import counterfactual, gradcam
from .gradient_cams import gradcam_plus_plus, hirescam, layercam, xgradcam
from .guided import deconvnet, guided_backprop, guided_gradcam
from .integrated_gradients import BASELINES, QUADRATURES, integrated_gradients
from .lime import kernel_shap, lime
from .lrp import lrp_epsilon, lrp_epsilon_gamma_box, lrp_epsilon_plus
from .occlusion import occlusion
from .perturbation_cams import ablationcam, scorecam
from .rise import rise
from .saliency import input_x_gradient, saliency
from .smoothgrad import smoothgrad, smoothgrad_squared, vargrad

#: What a map is over: a layer's positions (N, h, w), the input's pixels (N, H, W), or the input (N, C, H, W).
KINDS = ("layer", "pixels", "input")
#: How a figure draws it: a heat map >= 0, a signed map, a signed map with outliers (relevance, coloured to the
#: 98th percentile of |m|), a magnitude, or a gradient picture (no colour bar).
DISPLAYS = ("heat", "signed", "relevance", "magnitude", "gradient")


@dataclass(frozen=True)
class Option:
    """A keyword argument a method takes from the command line: ``--flag`` sets ``param``."""

    flag: str                 # "--steps"
    param: str                # "steps"
    type: Callable = str
    default: Any = None       # None: the method's own default
    help: str = ""
    changes_map: bool = True  # False for options that change only the cost (a batch size)


@dataclass(frozen=True)
class Method:
    """One explanation method, as every front end sees it.

    name     : the name on the command line and in the API ("gradcam-plus-plus")
    function : the function in ``minicnn.explain`` that computes it
    title    : how figures name it ("Grad-CAM++")
    kind     : "layer", "pixels" or "input" (see KINDS): the shape of ``result.map``
    display  : "heat", "signed", "relevance", "magnitude" or "gradient" (see DISPLAYS)
    value    : what one raw value is, for colour-bar labels ("sum_k alpha_k A^k")
    family   : "cam", "gradient", "relevance" or "perturbation": where a gallery groups it
    uses_layer : whether ``layer`` means something to it
    in_all   : whether ``--method all`` includes it
    optional : whether ``--method all`` skips it (with a note) on a network it does not apply to
    options  : command-line options it accepts
    cost     : passes per image, in words ("1 forward + 1 backward")
    caption  : a line under figures that show it, where the colour bar alone cannot say what the colours mean
               (figures fall back on a line per display, ``minicnn.figures.DISPLAY_CAPTIONS``)
    """

    name: str
    function: Callable
    title: str
    kind: str
    display: str
    value: str
    family: str
    uses_layer: bool = True
    in_all: bool = True
    optional: bool = False
    options: tuple[Option, ...] = field(default=())
    cost: str = ""
    caption: str = ""

    @property
    def key(self) -> str:
        """The name of the raw map in ``--save`` files and the API: the name with underscores."""
        return self.name.replace("-", "_")

    def run(self, model, x, target=None, layer: str | None = None, **options):
        """The method's Explanation for the batch x; ``layer`` is passed only to methods that use one."""
        unknown = sorted(set(options) - {o.param for o in self.options})
        if unknown:
            raise InputError(f"{self.name} takes no option {unknown[0]!r}; it takes: "
                             f"{', '.join(o.param for o in self.options) or 'none'}")
        if self.uses_layer:
            return self.function(model, x, target, layer, **options)
        return self.function(model, x, target, **options)


#: Score-CAM's and Ablation-CAM's copies per forward pass.
CAM_BATCH = Option("--batch-size", "batch_size", int, None,
                   "masked or ablated copies per forward pass (default: about 2^18 input elements)",
                   changes_map=False)
SCORECAM_VARIANT = Option("--scorecam-variant", "variant", str, None,
                          "authors (their released code, the default) or pytorch-grad-cam")

# Options of the attribution methods (shared objects, so each flag is declared once).
STEPS = Option("--steps", "steps", int, None, "integrated gradients: points of the path integral (default 50)")
QUADRATURE = Option("--quadrature", "quadrature", str, None,
                    f"integrated gradients: {', '.join(QUADRATURES)} (default gausslegendre)")
BASELINE = Option("--baseline", "baseline", str, None,
                  f"integrated gradients: the baseline x', {', '.join(BASELINES)} (default zeros, in the "
                  f"network's input space)")
BASE = Option("--base", "base", str, None, "SmoothGrad: the method averaged over noisy copies (default saliency)")
SAMPLES = Option("--samples", "samples", int, None, "SmoothGrad: noisy copies per image (default 50)")
NOISE_LEVEL = Option("--noise-level", "noise_level", float, None,
                     "SmoothGrad: noise standard deviation as a fraction of max(x) - min(x) (default 0.15)")
SEED = Option("--seed", "seed", int, None, "seed of the SmoothGrad noise and the uniform baseline (default 0)")
EPSILON = Option("--epsilon", "epsilon", float, None, "LRP: epsilon of the epsilon rule (default 1e-6)")
GAMMA = Option("--gamma", "gamma", float, None, "LRP: gamma of the gamma rule (default 0.25)")
SMOOTHING = (BASE, SAMPLES, NOISE_LEVEL, SEED)
# DeepLIFT, DeepLIFT-SHAP and GradientSHAP (--baseline and --seed are Integrated Gradients' own).
SHAP_BASELINES = Option("--baselines", "baselines", str, None,
                        f"DeepLIFT-SHAP, GradientSHAP: the set of baselines drawn, {', '.join(BASELINE_SETS)} "
                        f"(default uniform)")
SHAP_SAMPLES = Option("--samples", "samples", int, None,
                      "DeepLIFT-SHAP: baselines drawn (default 10); GradientSHAP: draws per image (default 20)")
STDEVS = Option("--stdevs", "stdevs", float, None,
                "GradientSHAP: standard deviation of the noise added to x, in the network's input space (default 0)")
DEEPLIFT_BATCH = Option("--batch-size", "batch_size", int, None,
                        "DeepLIFT, DeepLIFT-SHAP, GradientSHAP: images (or image-baseline pairs) per pass "
                        "(default: about 2^20 input elements)", changes_map=False)
# Options of the sampling methods: LIME, Kernel SHAP, RISE (--samples, --seed and --batch-size shared in name).
DRAWS = Option("--samples", "samples", int, None,
               "LIME, Kernel SHAP: coalitions per image (default 256); RISE: random masks (default 500)")
DRAW_SEED = Option("--seed", "seed", int, None, "LIME, Kernel SHAP, RISE: seed of the draws (default 0)")
GRID = Option("--grid", "grid", int, None, "LIME, Kernel SHAP: features per side of the regular grid (default 8; "
              "about grid^2 superpixels with --features slic); RISE: cells per side of a mask's grid (default 7)")
FEATURES = Option("--features", "features", str, None, "LIME, Kernel SHAP: the superpixels, grid (default) or slic "
                  "(needs scikit-image); --feature-mask FILE passes your own")
KEEP = Option("--keep-probability", "p", float, None, "RISE: the probability p that a mask cell is kept (default 0.5)")
SURROGATE = (DRAWS, FEATURES, GRID, DRAW_SEED, CAM_BATCH)

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("gradcam", gradcam, "Grad-CAM", "layer", "heat", "ReLU(sum_k alpha_k A^k), raw", "cam",
           cost="1 forward + backward to the layer"),
    Method("counterfactual", counterfactual, "Counterfactual", "layer", "heat", "ReLU(-sum_k alpha_k A^k), raw",
           "cam", cost="1 forward + backward to the layer",
           caption="Counterfactual: Grad-CAM with the gradients negated: regions whose removal would raise y "
                   "(evidence against the class)"),
    Method("guided-backprop", guided_backprop, "Guided Backprop", "input", "gradient",
           "guided dy^c/dx (shown as RGB)", "gradient", uses_layer=False, cost="1 forward + 1 backward",
           caption="Guided Backprop: dy/dx through guided ReLUs, one colour channel per input channel; grey = 0, "
                   "no units (scaled by its standard deviation)"),
    Method("guided-gradcam", guided_gradcam, "Guided Grad-CAM", "input", "gradient",
           "guided dy^c/dx x Grad-CAM (shown as RGB)", "gradient", cost="2 forward + 2 backward",
           caption="Guided Grad-CAM: Guided Backprop times the upsampled Grad-CAM, drawn like Guided Backprop"),
    Method("cam", cam, "CAM", "layer", "heat", "sum_k W[c,k] A^k, raw", "cam", optional=True,
           cost="1 forward"),
    Method("occlusion", occlusion, "Occlusion", "pixels", "signed", "score drop y^c(x) - y^c(occluded)",
           "perturbation", uses_layer=False, cost="1 + positions forward",
           caption="Occlusion: a patch slid over the image; red: covering it lowers y (evidence for the class), "
                   "blue: covering it raises y"),
    Method("saliency", saliency, "Saliency |dy/dx|", "input", "magnitude", "max over channels |dy^c/dx|",
           "gradient", uses_layer=False, cost="1 forward + 1 backward"),
    # the CAM family
    Method("gradcam-plus-plus", gradcam_plus_plus, "Grad-CAM++", "layer", "heat",
           "ReLU(sum_k w_k A^k), raw", "cam", cost="1 forward + backward to the layer"),
    Method("xgradcam", xgradcam, "XGrad-CAM", "layer", "heat", "ReLU(sum_k w_k A^k), raw", "cam",
           cost="1 forward + backward to the layer"),
    Method("hirescam", hirescam, "HiResCAM", "layer", "heat", "ReLU(sum_k g^k A^k), raw", "cam",
           cost="1 forward + backward to the layer"),
    Method("layercam", layercam, "LayerCAM", "layer", "heat", "ReLU(sum_k ReLU(g^k) A^k), raw", "cam",
           cost="1 forward + backward to the layer"),
    Method("scorecam", scorecam, "Score-CAM", "layer", "heat", "ReLU(sum_k p_k A^k), raw", "cam",
           options=(CAM_BATCH, SCORECAM_VARIANT), cost="1 + K forward (K maps at the layer)"),
    Method("ablationcam", ablationcam, "Ablation-CAM", "layer", "heat", "ReLU(sum_k w_k A^k), raw",
           "cam", options=(CAM_BATCH,), cost="1 forward + K forward from the layer"),
    Method("eigencam", eigencam, "Eigen-CAM", "layer", "heat", "ReLU(1st component of A), raw", "cam",
           cost="1 forward (+ one SVD)"),
    Method("eigengradcam", eigengradcam, "Eigen-Grad-CAM", "layer", "heat", "ReLU(1st component of gA), raw",
           "cam", cost="1 forward + backward to the layer (+ one SVD)"),
    Method("fullgrad", fullgrad, "FullGrad", "pixels", "heat", "sum of scaled terms, in [0, 1]", "cam",
           uses_layer=False, cost="1 forward + 1 backward (+ every bias term upsampled to the input)"),
    Method("input-x-gradient", input_x_gradient, "Input x Gradient", "input", "relevance",
           "sum over channels x dy^c/dx", "gradient", uses_layer=False, cost="1 forward + 1 backward"),
    Method("deconvnet", deconvnet, "DeconvNet", "input", "gradient", "deconvnet signal at x (shown as RGB)",
           "gradient", uses_layer=False, cost="1 forward + 1 backward"),
    Method("integrated-gradients", integrated_gradients, "Integrated Gradients", "input", "relevance",
           "sum over channels of IG (sums to y^c(x) - y^c(x'))", "gradient", uses_layer=False,
           options=(STEPS, QUADRATURE, BASELINE, SEED), cost="1 + steps forward, steps backward"),
    Method("smoothgrad", smoothgrad, "SmoothGrad", "input", "magnitude", "max over channels |mean of noisy maps|",
           "gradient", uses_layer=False, options=SMOOTHING, cost="samples x the base method"),
    Method("smoothgrad-squared", smoothgrad_squared, "SmoothGrad-squared", "input", "magnitude",
           "max over channels of the mean squared map", "gradient", uses_layer=False, options=SMOOTHING,
           cost="samples x the base method"),
    Method("vargrad", vargrad, "VarGrad", "input", "magnitude", "max over channels of the variance of the map",
           "gradient", uses_layer=False, options=SMOOTHING, cost="samples x the base method"),
    Method("lrp-epsilon", lrp_epsilon, "LRP epsilon", "input", "relevance", "relevance, sum over channels",
           "relevance", uses_layer=False, options=(EPSILON,), cost="1 forward + 1 backward (2 forward per layer)"),
    Method("lrp-epsilon-plus", lrp_epsilon_plus, "LRP epsilon-plus", "input", "relevance",
           "relevance, sum over channels", "relevance", uses_layer=False, options=(EPSILON,),
           cost="1 forward + 1 backward (3 forward per convolution)"),
    Method("lrp-epsilon-gamma-box", lrp_epsilon_gamma_box, "LRP epsilon-gamma-box", "input", "relevance",
           "relevance, sum over channels", "relevance", uses_layer=False, options=(EPSILON, GAMMA),
           cost="1 forward + 1 backward (5 forward per convolution)"),
    # DeepLIFT and the SHAP estimates built on it and on gradients (minicnn/explain/deeplift.py)
    Method("deeplift", deeplift, "DeepLIFT (rescale)", "input", "signed",
           "sum over channels (sums to y^c(x) - y^c(x0))", "gradient", uses_layer=False,
           options=(BASELINE, SEED, DEEPLIFT_BATCH), cost="2 forward + 1 backward"),
    Method("deeplift-shap", deeplift_shap, "DeepLIFT-SHAP", "input", "signed",
           "sum over channels, mean over baselines", "gradient", uses_layer=False,
           options=(SHAP_BASELINES, SHAP_SAMPLES, SEED, DEEPLIFT_BATCH),
           cost="1 + 2 x samples forward, samples backward"),
    Method("gradient-shap", gradient_shap, "GradientSHAP", "input", "signed",
           "sum over channels, mean over draws", "gradient", uses_layer=False,
           options=(SHAP_BASELINES, SHAP_SAMPLES, STDEVS, SEED, DEEPLIFT_BATCH),
           cost="1 + samples + set forward, samples backward"),
    # Excitation Backprop (Zhang et al. 2016): the marginal winning probability at a layer
    Method("excitation-backprop", excitation_backprop, "Excitation Backprop", "layer", "relevance",
           "sum over channels of the MWP P (sums to 1)", "relevance",
           cost="1 forward + backward to the layer (2 forward per layer with weights)",
           caption="Excitation Backprop: the probability that each position wins, passed down from the class "
                   "by positive weights; negative where signed inputs (a ResNet's residual branch) pass it on"),
    Method("contrastive-excitation-backprop", contrastive_excitation_backprop, "Contrastive MWP", "layer", "heat",
           "max(sum over channels of P_c - P_dual, 0)", "relevance",
           cost="1 forward + backward to the layer (2 forward per layer with weights, 4 at the classifier)"),
    # sampling: a surrogate fitted to scores of perturbed copies (LIME, Kernel SHAP), random masks (RISE)
    Method("lime", lime, "LIME", "pixels", "signed", "phi of the pixel's feature (Lasso on coalitions)",
           "perturbation", uses_layer=False, options=SURROGATE, cost="2 + samples forward",
           caption="LIME: a weighted linear model of y over superpixels switched on and off; red: keeping the "
                   "superpixel raises y, blue: it lowers y"),
    Method("kernel-shap", kernel_shap, "Kernel SHAP", "pixels", "signed",
           "phi of the pixel's feature (sums to y^c(x) - y^c(b))", "perturbation", uses_layer=False,
           options=SURROGATE, cost="2 + samples forward",
           caption="Kernel SHAP: Shapley values of superpixels (each pixel shows its superpixel's); they add up to "
                   "y(x) - y(baseline)"),
    Method("rise", rise, "RISE", "pixels", "heat", "sum_k p_c(x * M_k) M_k / (N p)", "perturbation",
           uses_layer=False, options=(DRAWS, GRID, KEEP, DRAW_SEED, CAM_BATCH), cost="1 + samples forward",
           caption="RISE: the mean of random masks weighted by the class probability each left; about p_c of the "
                   "image with the pixel kept"),
)}


def settings_text(method: str, options: dict | None) -> str:
    """The options given to ``method`` that change its map, for a figure's title: "baseline=blur, steps=256".

    ``options`` is {param: value} as the command line collects them (None: not given); options that
    the method does not take, or that change only the cost (``--batch-size``), are left out.
    """
    row = get(method)
    given = [(o.param, (options or {}).get(o.param)) for o in row.options if o.changes_map]
    return ", ".join(f"{param}={value}" for param, value in given if value is not None)


def get(name: str) -> Method:
    """The method called ``name`` (its CLI name or its save key); a one-line error with suggestions."""
    if isinstance(name, str):
        if name in METHODS:
            return METHODS[name]
        by_key = {m.key: m for m in METHODS.values()}
        if name in by_key:
            return by_key[name]
    raise unknown_name("method", name, list(METHODS))


def names(selection: str = "all") -> list[str]:
    """Method names from "all", one name, or a comma-separated list (in the registry's order for "all")."""
    if selection == "all":
        return [m.name for m in METHODS.values() if m.in_all]
    chosen = [s.strip() for s in str(selection).split(",") if s.strip()]
    if not chosen:
        raise InputError("no method named; choose from: " + ", ".join(METHODS) + ", all")
    return [get(s).name for s in chosen]
