"""``minicnn explain IMAGE``: the prediction, the maps of one or several methods, a figure, the raw maps.

    minicnn explain cat.jpg --model resnet20_cifar10 --method all --out cat.png --save cat.npz
    minicnn explain cat.jpg --method gradcam,saliency

prints the top classes (probability and pre-softmax score) and the layer
used, writes a figure (every map laid over the image the network saw, with
colour bars; titles naming the class by its first synonym, p, y, model, layer
and the options that change a map) and, with ``--save``, an ``.npz`` of the
raw maps of the image (no pickled objects; ``target_name`` is the whole label).
Each method's map is saved under its key in ``minicnn.explain.registry``
(the method's name with underscores), for example:

    gradcam            (h, w)     Grad-CAM at the layer's resolution
    gradcam_upsampled  (H, W)     the same, bilinear to the input size
    counterfactual     (h, w)
    guided_backprop    (C, H, W)
    guided_gradcam     (C, H, W)
    cam                (h, w)     networks ending GAP -> Linear only
    occlusion          (H, W)     mean score drop of the patches covering each pixel
    saliency           (C, H, W)  dy^c/dx
    gradcam_plus_plus, xgradcam, hirescam, layercam, scorecam, ablationcam,
    eigencam, eigengradcam   (h, w)   the CAM family, at the layer's resolution
    fullgrad           (H, W)     FullGrad's map in [0, 1]
    input_x_gradient, deconvnet, integrated_gradients, smoothgrad, smoothgrad_squared, vargrad,
    lrp_epsilon, lrp_epsilon_plus, lrp_epsilon_gamma_box
                       (C, H, W)  raw attribution or relevance of every input
    deeplift, deeplift_shap, gradient_shap
                       (C, H, W)  DeepLIFT and the SHAP estimates: attribution of every input
    excitation_backprop, contrastive_excitation_backprop   (h, w)   the MWP at the layer's resolution
    lime, kernel_shap  (H, W)     each pixel's superpixel coefficient (``--feature-mask FILE``: your superpixels)
    rise               (H, W)     the probability-weighted mean of random masks
    logits             (K,)
    layer, target, target_name, model   (strings and an int)

only the keys of the methods computed are written.

Files: the figure's extension picks its format (.png, .jpg/.jpeg, .pdf,
.svg); ``--save`` must end .npz. Like every command (``minicnn.util.atomic.Outputs``),
``explain`` replaces an existing file only with ``--force``, never writes
over its own image or weights file (links included) nor both outputs to one
file, checks all of that before loading the model, and writes the figure and
the maps together at the end: both, or neither.

``--layer`` means something to the methods that work at a layer; the others
(guided-backprop, occlusion, saliency; CAM under ``--method all``, which
uses its own layer) ignore it, with one ``minicnn: note:`` line on stderr.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, UnknownNameError
from ..explain import registry
from ..explain.estimate import HELP as EXPLAIN_TIMES
from ..explain.features import load_feature_mask
from ..explain.run import compute, ignoring_layer, maps_for_saving, top_predictions
from ..explain.target import class_index, short_name
from ..inputs.images import DEFAULT_MAX_INPUT_PIXELS, DEFAULT_MAX_PIXELS, load_image
from ..inputs.preprocess import InputSizeWarning, deprocess, how_resized, preprocess, size_text, training_size_note
from ..layers import softmax
from .options import add_force_option, positive_int

HELP = "explain a prediction: Grad-CAM, guided backprop, occlusion, ..."
EPILOG = EXPLAIN_TIMES


def add_arguments(p) -> None:
    p.add_argument("image",
                   help="the image file to explain (PNG, JPEG, ...; any size: the model's resize rule applies)")
    p.add_argument("--model", default="vgg_cifar10", help="shipped model name or weights file")
    p.add_argument("--target", default=None,
                   help="class index or name (default: the top-1 class); any synonym of an ImageNet class, in any "
                        "case, or the beginning of one, e.g. 'Boston bull' or 'tabby'; `minicnn classes --model "
                        "MODEL` lists them")
    p.add_argument("--layer", default=None,
                   help="layer name (default: the last convolutional feature map); methods that work on the input "
                        "pixels ignore it, with a note")
    add_method_options(p)
    p.add_argument("--out", default=None,
                   help="figure to write; its extension picks the format: .png, .jpg, .jpeg, .pdf or .svg "
                        "(default: IMAGE_NAME.METHOD.png in the current folder)")
    p.add_argument("--save", default=None, help="raw maps to write (a file name ending .npz)")
    p.add_argument("--top", type=int, default=5, help="how many top classes to print")
    add_force_option(p)
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse image files of more pixels than this, before decoding (default {DEFAULT_MAX_PIXELS})")
    p.add_argument("--max-input-pixels", type=positive_int, default=DEFAULT_MAX_INPUT_PIXELS,
                   help="refuse a network input (the image after the model's resize rule) of more pixels than this, "
                        f"before the forward pass (default {DEFAULT_MAX_INPUT_PIXELS} = 512x512)")


def add_method_options(p) -> None:
    """--method, and every option a registered method takes (each flag once)."""
    p.add_argument("--method", default="gradcam",
                   help="a method, a comma-separated list of them, or 'all' (default: gradcam); methods: "
                        + ", ".join(registry.METHODS))
    flags: dict[str, list] = {}                       # a flag shared by several Options: one flag, their helps joined
    for m in registry.METHODS.values():
        for o in m.options:
            if o not in flags.setdefault(o.flag, []):
                flags[o.flag].append(o)
    for flag, same in flags.items():
        o = same[0]
        users = [", ".join(n.name for n in registry.METHODS.values() if s in n.options) for s in same]
        p.add_argument(flag, dest=o.param, type=o.type, default=o.default,
                       help="; ".join(f"{s.help} ({names})" for s, names in zip(same, users, strict=True)))
    p.add_argument("--feature-mask", default=None, metavar="FILE",
                   help="LIME, Kernel SHAP: your own superpixels, a PNG (8- or 16-bit grey) or .npy of integer labels "
                        "at the network input's size (lime, kernel-shap)")


def save_maps(path, arrays: dict[str, np.ndarray], *, outputs=None) -> str:
    """Write the arrays as an .npz, atomically (temporary file, then os.replace).

    With ``outputs`` (a ``minicnn.util.atomic.Outputs`` inside ``writing()``) it
    is one of that run's all-or-nothing outputs.
    """
    from ..util.atomic import atomic_output  # lazy: keeps `minicnn --help` fast
    for k, v in arrays.items():
        if v.dtype == object:
            raise InputError(f"refusing to save {k!r}: object arrays would need pickle")
    with (outputs.open(path) if outputs is not None else atomic_output(path, force=True)) as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def prediction_text(model, logits: np.ndarray, top: int) -> str:
    """The top classes of one image: rank, name (its first synonym), softmax probability, pre-softmax score.

    ImageNet labels are synonym lists ("tabby, tabby cat"); the table shows the
    first synonym, and ``minicnn classes`` the whole label.
    """
    rows = [(k, short_name(n), p, y) for k, n, p, y in top_predictions(model, logits, top)]
    width = max(len(n) for _, n, _, _ in rows)
    return "\n".join(f"  {r + 1}. {n:<{width}}  p={p:.3f}  y={y:.3f}" for r, (_, n, p, y) in enumerate(rows))


def explanation_figure(results: dict, picture: np.ndarray, model, image_name: str, options: dict | None = None):
    """One panel for the network's input (as the network saw it) and one per method (at most 4 per row).

    Each panel's title names the method, the class (first synonym), p, y,
    the model and layer, and the ``options`` ({param: value}, None = not
    given) that change that method's map ("baseline=blur, steps=256").
    """
    from ..figures import Panel, describe, grid_figure, method_panel, probability_text  # lazy: matplotlib
    panels = [Panel("image", picture, f"network input: {size_text(picture.shape)}\n{image_name}")]
    panels += [method_panel(r, picture, 0, model_name=model.name,
                            title=describe(r, 0, model.name, settings=registry.settings_text(name, options)))
               for name, r in results.items()]
    per_row = 4 if len(panels) > 4 else len(panels)
    rows = [panels[i:i + per_row] for i in range(0, len(panels), per_row)]
    first = next(iter(results.values()))
    c = int(first.targets[0])
    p = float(softmax(np.asarray(first.logits[:1], dtype=np.float64))[0, c])
    title = (f"{model.name}: explaining {short_name(first.target_names[0])!r} (class {c}, p={probability_text(p)}, "
             f"y={float(first.scores[0]):.2f})")
    return grid_figure(rows, title=title, panel_height=1.6)


def declare_outputs(image, model, out=None, save=None, *, method: str = "gradcam", force: bool = False):
    """(Outputs, figure path, maps path or None) for one ``explain`` run, every check done.

    The inputs are the image and the weights file (a shipped model's too);
    the figure (default ``IMAGE_STEM.METHOD.png``) must end in a figure
    format, the maps in .npz; neither may be an input or the other, and an
    existing file is replaced only with ``force``. Nothing is loaded.
    """
    from ..figures import FIGURE_FORMATS  # lazy: matplotlib slows `minicnn --help`
    from ..models.weights import locate  # lazy: zipfile, json, hashlib slow `minicnn --help`
    from ..util.atomic import Outputs  # lazy: as above
    chosen = registry.names(method)
    outputs = Outputs(force=force)
    outputs.input(image, "IMAGE")
    outputs.input(locate(model)[0], "--model")
    stem = Path(os.fspath(image)).stem or "image"
    out = outputs.output(out or f"{stem}.{'all' if method == 'all' else '_'.join(chosen)}.png", "--out",
                         suffixes=tuple(FIGURE_FORMATS), kind="a figure")
    if save is not None:
        save = outputs.output(save, "--save", suffixes=(".npz",), kind="the raw maps (an .npz archive)")
    return outputs, out, save


def cli_class_index(model, target, model_arg) -> int:
    """``class_index``, with an unknown name's error pointing at ``minicnn classes`` for the list."""
    try:
        return class_index(model, target)
    except UnknownNameError as e:
        if len(model.classes or []) <= 12:                            # the message listed them all
            raise
        raise UnknownNameError(f"{e}; `minicnn classes --model {model_arg}` lists them, one a line with its index") \
            from None


def run(args) -> int:
    from ..figures import save_figure  # lazy: matplotlib slows `minicnn --help`
    from ..models.weights import load  # lazy: zipfile, json, hashlib slow `minicnn --help`

    top = getattr(args, "top", 5)
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer; got {top!r}")
    chosen = registry.names(args.method)              # unknown method names fail before any work
    # every output is checked against every input and against each other before the model is loaded
    outputs, out, save = declare_outputs(args.image, args.model, args.out, args.save or None, method=args.method,
                                         force=getattr(args, "force", False))
    if getattr(args, "feature_mask", None) is not None:
        outputs.input(args.feature_mask, "--feature-mask")          # never written over
    model = load(args.model)
    image = load_image(args.image, max_pixels=getattr(args, "max_pixels", None) or DEFAULT_MAX_PIXELS)
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"{model.name} records no preprocessing (mean, std, resize); cannot prepare an image for it")
    x = preprocess(image, prep, max_input_pixels=getattr(args, "max_input_pixels", None) or DEFAULT_MAX_INPUT_PIXELS)
    target = None if args.target is None else cli_class_index(model, args.target, args.model)

    options = {o.param: getattr(args, o.param, None) for m in registry.METHODS.values() for o in m.options}
    given = dict(options)
    if getattr(args, "feature_mask", None) is not None:   # the labels go to the methods, the file's name to the title
        given["features"] = load_feature_mask(args.feature_mask, x.shape[2:])
        options["features"] = Path(args.feature_mask).name
    results = compute(model, x, args.method, target, args.layer, options=given)
    first = next(iter(results.values()))
    logits = first.logits[0]
    print(f"model: {model.name}  image: {size_text(image.shape)} -> network input: {size_text(x.shape[2:])} "
          f"({how_resized(image.shape, prep)})")
    note = training_size_note(x.shape[2:], prep, model.name)
    if note:
        warnings.warn(note, InputSizeWarning, stacklevel=2)      # one "minicnn: note:" line on stderr
    print(f"top {min(top, logits.size)}:")
    print(prediction_text(model, logits, top))
    how = "given" if target is not None else "top-1"
    c = int(first.targets[0])
    print(f"target: {c} {short_name(first.target_names[0])!r} ({how}), p={float(softmax(logits[None])[0, c]):.3f}, "
          f"y={float(first.scores[0]):.3f}")
    layers = [r.layer for r in results.values() if r.layer]
    if layers:
        A = model.activations.get(layers[0])
        if A is None or A.ndim != 4:      # Score-CAM's masked passes keep nothing: one more pass to read the shape
            model.forward(x)
            A = model.activations.get(layers[0])
        shape = "x".join(map(str, A.shape[1:])) if A is not None and A.ndim == 4 else "?"
        print(f"layer: {layers[0]} ({shape})" + ("  [CAM: " + results["cam"].layer + "]"
                                                   if "cam" in results and results["cam"].layer != layers[0] else ""))
    else:
        print("layer: none (this method works on the input pixels)")

    picture = deprocess(x[0], prep)
    fig = explanation_figure(results, picture, model, f"{Path(args.image).name}: {size_text(image.shape)}", options)
    arrays = maps_for_saving(results, model, x.shape[2:]) if save else None
    with outputs.writing():                           # the figure and the maps appear together, or neither does
        save_figure(fig, out, outputs=outputs)
        if save:
            save_maps(save, arrays, outputs=outputs)
    print(f"figure: {out}")
    if save:
        print(f"maps: {save}")
    ignored = ignoring_layer(args.method) if args.layer is not None else []
    if ignored:  # said last, so that a run that fails prints its one error line only
        print(f"minicnn: note: --layer {args.layer} is ignored by {', '.join(ignored)}"
              f"{'' if len(ignored) < len(chosen) else ' (none of the chosen methods works at a layer)'}",
              file=sys.stderr)
    return 0
