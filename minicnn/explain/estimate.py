"""How long a method will take, before running it: its passes times a measured pass.

    t_f, t_b, *_ = pass_seconds(model)                # one image forward; the backward after it
    f, b     = passes("scorecam", model, (32, 64), layer="layer3")
    seconds  = f * t_f + b * t_b                      # estimate_seconds(...) does both steps

``passes`` restates the registry's ``cost`` ("1 + K forward (K maps at
the layer)", "1 + steps forward, steps backward", ...) as numbers for one
image of network-input size (H, W): the images sent through forward and
backward, as ``minicnn.metrics.cost.counting_passes`` counts them (tests
check the two agree on every method whose passes are not weighed). Passes
that carry the same work at a different price are weighed:

    a forward resumed at the layer (Ablation-CAM)   the share of the layers after it
    an LRP backward (2, 3 or 5 forwards per layer)  that many forwards per backward
    FullGrad                                        one more backward per 32 channels of bias terms
                                                    (each channel's term is upsampled to H x W)

The pass times are measured at the model's own input size and scaled by
the number of input pixels (every layer's work grows with it); methods that
send images in batches (occlusion, Score-CAM, Integrated Gradients,
SmoothGrad) are priced at a batched pass's time per image. An estimate says
"about": within a factor of ~3 on a quiet machine, more when other work
shares the cores.
"""

from __future__ import annotations

import time

import numpy as np

from ..layers import Linear
from . import registry
from .fullgrad import layer_bias
from .lime import DEFAULT_SAMPLES as LIME_SAMPLES
from .occlusion import offsets
from .rise import DEFAULT_SAMPLES as RISE_SAMPLES
from .target import default_layer

#: Forwards per LRP backward (the registry's costs: 2 forward per layer, 3 and 5 per convolution).
LRP_FORWARDS = {"lrp-epsilon": 2, "lrp-epsilon-plus": 3, "lrp-epsilon-gamma-box": 5}
#: The batch pass_seconds times per image for the methods that send many images at once.
BATCH = 8
#: The methods that send their images through the network in batches.
BATCHED = ("occlusion", "scorecam", "ablationcam", "integrated-gradients", "smoothgrad", "smoothgrad-squared",
           "vargrad", "deeplift-shap", "gradient-shap", "lime", "kernel-shap", "rise")
#: FullGrad: channels of bias terms whose upsampling costs about one backward (fits ResNet-20 and MobileNetV2).
FULLGRAD_CHANNELS = 32
#: The methods' own defaults for the options that set their number of passes.
DEFAULT_STEPS, DEFAULT_SAMPLES = 50, 50
DEEPLIFT_SHAP_SAMPLES, GRADIENT_SHAP_SAMPLES = 10, 20
#: The sampling methods: (default samples, forwards besides the samples).
SAMPLING = {"lime": (LIME_SAMPLES, 2), "kernel-shap": (LIME_SAMPLES, 2), "rise": (RISE_SAMPLES, 1)}


#: What ``minicnn explain --help`` says about time (numbers from ``passes`` and ``pass_seconds`` on the shipped
#: models, on two CPU cores; ``minicnn serve`` shows estimates measured on the machine it runs on).
HELP = ("How long: a method costs passes through the network; one forward and backward of one image takes about "
        "5 ms on resnet20_cifar10 and vgg_cifar10 (32x32) and about 0.1 s on mobilenet_v2 (224x224) on two CPU "
        "cores, and time grows with the input's pixels. Most methods need one or two passes: well under a second. "
        "The slow ones, on mobilenet_v2: Score-CAM, 1 + 1280 forwards at 'features' (one per map; about a minute; "
        "an earlier layer has fewer maps); FullGrad, about 35 s (every bias term upsampled to the input); "
        "occlusion, 1 + 169 forwards (about 10 s); Integrated Gradients and SmoothGrad, about 50 passes each "
        "(--steps, --samples; about 5 s each); LIME and Kernel SHAP, 2 + 256 forwards each, and RISE, 1 + 500 "
        "(--samples; about 15 s and 30 s); --method all, about three minutes. On the 32x32 models all methods "
        "together take a few seconds. `minicnn serve` shows each method's estimate for this machine before it runs.")


def pass_seconds(model, repeats: int = 2, batch: int = BATCH) -> tuple[float, float, float, float]:
    """(t_f, t_b, t_f_batched, t_b_batched): seconds per image of the model's input size.

    t_f, t_b : one forward of one image, and the backward after it
    t_f_batched, t_b_batched : the same per image in a batch of ``batch`` (what methods that batch pay)

    The fastest of ``repeats`` runs (the first run of a model also warms caches).
    """
    best = [float("inf")] * 4
    for n, at in ((1, 0), (batch, 2)):
        x = np.zeros((n, *model.input_size), np.float32)
        for _ in range(repeats if n == 1 else 1):
            t0 = time.perf_counter()
            logits = model.forward(x)
            t1 = time.perf_counter()
            model.backward(np.ones_like(logits))
            t2 = time.perf_counter()
            best[at] = min(best[at], (t1 - t0) / n)
            best[at + 1] = min(best[at + 1], (t2 - t1) / n)
    return tuple(best)


def passes(method: str, model, hw: tuple[int, int], layer: str | None = None, options: dict | None = None,
           channels: int | None = None) -> tuple[float, float]:
    """(forwards, backwards) of one image of network-input size hw = (H, W), weighed as the docstring says.

    channels : K, the feature maps at ``layer`` (Score-CAM and Ablation-CAM); read from a forward if None
    """
    m = registry.get(method)
    options = options or {}
    name = m.name
    h, w = (int(s) for s in hw)
    if name in ("cam", "eigencam"):
        return 1, 0
    if name == "guided-gradcam":
        return 2, 2
    if name == "occlusion":
        size = max(1, min(h, w) // 4)
        stride = max(1, size // 4)
        return 1 + len(offsets(h, size, stride)) * len(offsets(w, size, stride)), 0
    if name in ("scorecam", "ablationcam"):
        K = channels if channels is not None else layer_channels(model, layer)
        if name == "scorecam":
            return 1 + K, 0
        return 1 + K * share_after(model, layer), 0
    if name == "integrated-gradients":
        steps = int(options.get("steps") or DEFAULT_STEPS)
        return 2 + steps, steps
    if name in ("smoothgrad", "smoothgrad-squared", "vargrad"):
        samples = int(options.get("samples") or DEFAULT_SAMPLES)
        f, b = passes(options.get("base") or "saliency", model, hw)          # the base method, per noisy copy
        return 1 + samples * f, samples * b
    if name == "deeplift":
        return 3, 1                                  # x, then the baseline and x again with the rules
    if name == "deeplift-shap":
        samples = int(options.get("samples") or DEEPLIFT_SHAP_SAMPLES)
        return 1 + 2 * samples, samples
    if name == "gradient-shap":
        samples = int(options.get("samples") or GRADIENT_SHAP_SAMPLES)
        return 1 + samples + (samples if not options.get("baselines") or isinstance(options["baselines"], str)
                              else len(options["baselines"])), samples
    if name in SAMPLING:                             # one forward per coalition or mask (+ x, + the baseline)
        default, extra = SAMPLING[name]
        return extra + int(options.get("samples") or default), 0
    if name in LRP_FORWARDS:
        return 1 + LRP_FORWARDS[name], 0
    if name == "fullgrad":
        return 1, 1 + fullgrad_channels(model) / FULLGRAD_CHANNELS
    return 1, 1                                      # one forward and one backward (to the layer or the input)


def fullgrad_channels(model) -> int:
    """The channels of every bias term FullGrad upsamples to the input size (convolutions and batch norms)."""
    return sum(int(b.size) for _, layer_ in model.layers()
               if not isinstance(layer_, Linear) and (b := layer_bias(layer_, np.float32)) is not None)


def layer_channels(model, layer: str | None) -> int:
    """K: the channels of ``layer`` (the default layer when None), from a forward of a zero image."""
    model.forward(np.zeros((1, *model.input_size), np.float32))
    return int(model.activations[layer or default_layer(model)].shape[1])


def share_after(model, layer: str | None) -> float:
    """The share of the model's named layers after ``layer`` and outside it (what a resumed forward runs)."""
    if layer is None:
        model.forward(np.zeros((1, *model.input_size), np.float32))
        layer = default_layer(model)
    names = model.layer_names
    after = [n for n in names[names.index(layer) + 1:] if not n.startswith(layer + ".")]
    return max(1, len(after)) / len(names)


def estimate_seconds(method: str, model, hw, pass_times: tuple[float, ...], layer: str | None = None,
                     options: dict | None = None, channels: int | None = None) -> float:
    """About how many seconds ``method`` takes for one image of network-input size hw on this machine."""
    t_f, t_b = pass_times[2:] if registry.get(method).name in BATCHED else pass_times[:2]
    scale = (int(hw[0]) * int(hw[1])) / (model.input_size[1] * model.input_size[2])
    f, b = passes(method, model, hw, layer, options, channels)
    return scale * (f * t_f + b * t_b)
