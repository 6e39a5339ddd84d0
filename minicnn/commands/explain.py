"""``minicnn explain IMAGE``: the prediction, the maps of one or several methods, a figure, the raw maps.

    minicnn explain cat.jpg --model resnet20_cifar10 --method all --out cat.png --save cat.npz
    minicnn explain cat.jpg --method gradcam,saliency

prints the top classes (probability and pre-softmax score) and the layer
used, writes a figure (every map laid over the image the network saw, with
colour bars; titles naming model, layer, class and score) and, with
``--save``, an ``.npz`` of the raw maps of the image (no pickled objects).
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
    logits             (K,)
    layer, target, target_name, model   (strings and an int)

only the keys of the methods computed are written.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..explain import registry
from ..layers import softmax


def compute(model, x, method: str, target=None, layer: str | None = None, *, log=print, options=None) -> dict:
    """{method name: Explanation} for ``method`` ("all", a name, or a comma-separated list) on the batch x.

    Guided Grad-CAM also brings its two factors ("gradcam", "guided-backprop").
    With "all", a method that does not apply to this network (CAM) is skipped
    with a note through ``log``; asked for by name, that is a one-line InputError.
    ``options`` ({param: value}) go to the methods that declare them.
    """
    chosen = registry.names(method)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    out = {}
    for name in chosen:
        m = registry.get(name)
        own = {k: v for k, v in options.items() if k in {o.param for o in m.options}}
        try:
            r = m.run(model, x, target, layer if m.uses_layer and not (m.optional and method == "all") else None,
                      **own)
        except InputError as e:
            if not (m.optional and method == "all"):
                raise
            log(f"{name}: skipped: {e}")
            continue
        for part in getattr(r, "parts", lambda: {})().items():
            out.setdefault(*part)
        out[name] = r
    order = list(registry.METHODS)
    return {m: out[m] for m in sorted(out, key=order.index)}


def maps_for_saving(results: dict, model, input_hw) -> dict[str, np.ndarray]:
    """The raw maps of image 0 under the keys of the module docstring."""
    arrays: dict[str, np.ndarray] = {}
    first = next(iter(results.values()))
    for method, r in results.items():
        key = registry.get(method).key
        arrays[key] = np.asarray(r.map[0])
        if method == "gradcam":
            arrays["gradcam_upsampled"] = r.upsampled(input_hw)[0]
    arrays["logits"] = np.asarray(first.logits[0])
    layers = [r.layer for r in results.values() if r.layer]
    arrays["layer"] = np.array(layers[0] if layers else "")
    arrays["target"] = np.array(int(first.targets[0]))
    arrays["target_name"] = np.array(first.target_names[0])
    arrays["model"] = np.array(model.name)
    return arrays


def save_maps(path, arrays: dict[str, np.ndarray]) -> str:
    """Write the arrays as an .npz, atomically (temporary file, then os.replace)."""
    from ..atomic import atomic_output
    for k, v in arrays.items():
        if v.dtype == object:
            raise InputError(f"refusing to save {k!r}: object arrays would need pickle")
    with atomic_output(path, force=True) as f:
        np.savez(f, **arrays)
    return os.fspath(path)


def prediction_text(model, logits: np.ndarray, top: int) -> str:
    """The top classes of one image: rank, name, softmax probability, pre-softmax score."""
    p = softmax(logits[None])[0]
    order = np.argsort(-logits, kind="stable")[:top]
    names = [model.classes[k] if k < len(model.classes) else str(k) for k in order]
    width = max(len(n) for n in names)
    lines = [f"  {r + 1}. {n:<{width}}  p={p[k]:.3f}  y={logits[k]:.3f}" for r, (k, n) in enumerate(zip(order, names))]
    return "\n".join(lines)


def explanation_figure(results: dict, picture: np.ndarray, model, image_name: str):
    """One panel for the network's input (as the network saw it) and one per method (at most 4 per row)."""
    from ..figures import Panel, grid_figure, method_panel
    panels = [Panel("image", picture, f"network input ({picture.shape[0]}x{picture.shape[1]})\n{image_name}")]
    panels += [method_panel(r, picture, 0, model_name=model.name) for r in results.values()]
    per_row = 4 if len(panels) > 4 else len(panels)
    rows = [panels[i:i + per_row] for i in range(0, len(panels), per_row)]
    first = next(iter(results.values()))
    title = f"{model.name}: explaining {first.target_names[0]!r} (class {int(first.targets[0])})"
    return grid_figure(rows, title=title, panel_height=1.6)


def explain_command(args) -> int:
    from .. import load
    from ..atomic import check_writable
    from ..explain.target import class_index
    from ..figures import save_png
    from ..images import deprocess, load_image, preprocess

    top = getattr(args, "top", 5)
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer; got {top!r}")
    registry.names(args.method)                      # unknown method names fail before any work
    stem = Path(args.image).stem or "image"
    out = args.out or f"{stem}.{args.method.replace(',', '_')}.png"
    check_writable(out, force=True)
    if args.save:
        check_writable(args.save, force=True)

    model = load(args.model)
    image = load_image(args.image)
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"{model.name} records no preprocessing (mean, std, resize); cannot prepare an image for it")
    x = preprocess(image, prep)
    target = None if args.target is None else class_index(model, args.target)

    options = {o.param: getattr(args, o.param, None) for m in registry.METHODS.values() for o in m.options}
    results = compute(model, x, args.method, target, args.layer, options=options)
    first = next(iter(results.values()))
    logits = first.logits[0]
    print(f"model: {model.name}  input: {x.shape[2]}x{x.shape[3]} (image {image.shape[0]}x{image.shape[1]})")
    print(f"top {min(top, logits.size)}:")
    print(prediction_text(model, logits, top))
    how = "given" if target is not None else "top-1"
    print(f"target: {int(first.targets[0])} {first.target_names[0]!r} ({how}), y={float(first.scores[0]):.3f}")
    layers = [r.layer for r in results.values() if r.layer]
    if layers:
        A = model.activations.get(layers[0])
        shape = "x".join(map(str, A.shape[1:])) if A is not None and A.ndim == 4 else "?"
        print(f"layer: {layers[0]} ({shape})" + ("  [CAM: " + results["cam"].layer + "]"
                                                   if "cam" in results and results["cam"].layer != layers[0] else ""))
    else:
        print("layer: none (this method works on the input pixels)")

    picture = deprocess(x[0], prep)
    fig = explanation_figure(results, picture, model, f"{Path(args.image).name} ({image.shape[0]}x{image.shape[1]})")
    print(f"figure: {save_png(fig, out)}")
    if args.save:
        print(f"maps: {save_maps(args.save, maps_for_saving(results, model, x.shape[2:]))}")
    return 0
