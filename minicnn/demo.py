"""``minicnn demo``: the Grad-CAM paper's Figure 1, at CIFAR-10 scale, offline, in seconds.

Figure 1 of Selvaraju et al. explains one image holding a cat and a dog,
once for "cat" and once for "dog", with the columns

    (a) original  (b) Guided Backprop  (c) Grad-CAM  (d) Guided Grad-CAM  (e) occlusion map  (f) ResNet Grad-CAM

Here the image is two shipped CIFAR-10 test images side by side
(``minicnn.explain.cat_dog_image``, 32x64), columns (b)-(e) come from the
VGG-style model (``vgg_cifar10``; ``resnet20_cifar10`` when that is not
installed) and column (f) from ``resnet20_cifar10`` at ``layer3``, the last
feature map before its global average pooling. A second figure shows the
same columns for a few single test images, each explained for the class the
VGG-style model predicts. A third, the CAM gallery, explains the cat|dog
image for 'cat' and 'dog' with Grad-CAM and every method of the CAM family
(``CAM_METHODS``), all at ``layer3`` of ``resnet20_cifar10`` (FullGrad works
on the input).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from .errors import MinicnnError, OutputError
from .layers import softmax

RESNET, VGG = "resnet20_cifar10", "vgg_cifar10"
#: Single images of the second figure: (class, index among the shipped test images of that class).
SAMPLES = (("airplane", 0), ("bird", 0), ("horse", 0), ("truck", 0))
#: Occlusion in the demo: an 8x8 patch of the training mean colour, moved 2 pixels at a time.
OCCLUSION = {"size": 8, "stride": 2, "fill": 0.0}
#: The CAM gallery's columns, one per method (minicnn.explain.registry names).
CAM_METHODS = ("gradcam", "gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam",
               "eigencam", "eigengradcam", "fullgrad")
#: The PNGs written, in order.
FILES = ("figure1_cat_dog.png", "single_images.png", "gallery_cam.png")
COLUMNS = ("(a) original", "(b) Guided Backprop", "(c) Grad-CAM", "(d) Guided Grad-CAM", "(e) Occlusion",
           "(f) ResNet Grad-CAM")


def load_models():
    """(vgg-style model, resnet20) from the shipped weights; the first is resnet20 if vgg_cifar10 is absent."""
    from . import load
    resnet = load(RESNET)
    try:
        vgg = load(VGG)
    except MinicnnError:
        vgg = resnet
    return vgg, resnet


def explain_rows(vgg, resnet, image: np.ndarray, targets: list) -> list[dict]:
    """All six columns for one image, once per target class (one batch per method).

    Returns one dict per target: the results of each method for that row.
    """
    from . import explain
    from .images import preprocess
    x = np.repeat(preprocess(image, vgg.meta["preprocessing"]), len(targets), axis=0)
    xr = np.repeat(preprocess(image, resnet.meta["preprocessing"]), len(targets), axis=0)
    ggc = explain.guided_gradcam(vgg, x, targets)             # also holds guided backprop and Grad-CAM
    occ = explain.occlusion(vgg, x, ggc.targets, **OCCLUSION)
    rgc = explain.gradcam(resnet, xr, ggc.targets, "layer3")
    return [{"guided": ggc.guided, "gradcam": ggc.gradcam, "guided_gradcam": ggc, "occlusion": occ,
             "resnet": rgc, "index": i} for i in range(len(targets))]


def row_panels(row: dict, image: np.ndarray) -> list:
    """The six panels of one row (titles: column letter, method, class, score, model and layer)."""
    from .figures import Panel, method_panel
    i, gc = row["index"], row["gradcam"]
    name = repr(gc.target_names[i])
    p = softmax(gc.logits[i:i + 1])[0, gc.targets[i]]

    def title(col, result, layer=None):
        return f"{COLUMNS[col]} {name}\n{layer + ' · ' if layer else ''}y={float(result.scores[i]):.2f}"

    return [
        Panel("image", image, f"{COLUMNS[0]}\np({name})={p:.2f}"),
        method_panel(row["guided"], image, i, title=title(1, row["guided"])),
        method_panel(gc, image, i, title=title(2, gc, gc.layer)),
        method_panel(row["guided_gradcam"], image, i, title=title(3, gc, gc.layer)),
        method_panel(row["occlusion"], image, i, title=title(4, row["occlusion"])),
        method_panel(row["resnet"], image, i, title=title(5, row["resnet"], row["resnet"].layer)),
    ]


def figure1(vgg, resnet):
    """The cat|dog figure: a row for 'cat' and a row for 'dog'. Returns (Figure, rows)."""
    from .explain import CAT_DOG, cat_dog_image
    from .figures import grid_figure
    from .images import preprocess
    image = cat_dog_image()
    rows = explain_rows(vgg, resnet, image, ["cat", "dog"])
    (cat, i), (dog, j) = CAT_DOG
    seen = {m.name: "x".join(map(str, preprocess(image, m.meta["preprocessing"]).shape[2:])) for m in (vgg, resnet)}
    fig = grid_figure([row_panels(r, image) for r in rows],
                      row_labels=["'cat'", "'dog'"],
                      title=f"Figure 1 of Grad-CAM at CIFAR-10 scale: shipped test images {cat} {i} | {dog} {j} (32x64)\n"
                            f"(a)-(e): {vgg.name} (input {seen[vgg.name]}), (f): {resnet.name} "
                            f"(input {seen[resnet.name]}); y = pre-softmax score, p = softmax")
    return fig, rows


def first_correct(model, class_name: str, start: int = 0) -> int:
    """Index of the first shipped test image of ``class_name`` (from ``start``) the model gets right."""
    from .images import load_image, preprocess, sample_images
    paths = [p for p, _ in sample_images(class_name)]
    x = preprocess([load_image(p) for p in paths], model.meta["preprocessing"])
    hits = np.flatnonzero(model.forward(x).argmax(axis=1) == model.classes.index(class_name))
    later = hits[hits >= start]
    return int(later[0]) if later.size else start


def samples_figure(vgg, resnet, samples=SAMPLES):
    """The same columns for single test images, explained for the class the VGG-style model predicts."""
    from .figures import grid_figure
    from .images import load_sample
    panels, labels = [], []
    for class_name, start in samples:
        index = first_correct(vgg, class_name, start)
        image = load_sample(class_name, index)
        row = explain_rows(vgg, resnet, image, [None])[0]
        panels.append(row_panels(row, image))
        labels.append(f"{class_name} {index}")
    return grid_figure(panels, row_labels=labels,
                       title=f"Single test images, each explained for {vgg.name}'s top-1 class. "
                             f"(a)-(e): {vgg.name}, (f): {resnet.name}")


def cam_gallery(resnet):
    """The CAM family on the cat|dog image: rows 'cat' and 'dog', one column per method, at layer3."""
    from .explain import cat_dog_image
    from .gallery import gallery_figure
    return gallery_figure(resnet, cat_dog_image(), ["cat", "dog"], list(CAM_METHODS), layer="layer3", columns=5,
                          title=f"The CAM family on the cat|dog image (32x64): {resnet.name}, layer3 "
                                f"(FullGrad: the input); raw maps, colour bars in each method's own units")


def run_demo(out_dir="minicnn-demo", *, log=print) -> list[str]:
    """Write the demo's PNGs into ``out_dir`` (created if missing); returns their paths."""
    from .atomic import check_writable
    from .figures import save_png
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder; choose another --out-dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder {out}: {e.strerror or e}") from None
    for name in FILES:
        check_writable(out / name, force=True)  # refuse before the work, not after it
    vgg, resnet = load_models()
    if vgg is resnet:
        log(f"note: {VGG} is not installed; columns (b)-(e) use {RESNET}")
    log("[1/4] Figure 1: the cat|dog image explained for 'cat' and for 'dog'")
    fig, rows = figure1(vgg, resnet)
    log(f"[2/4] single test images: {', '.join(c for c, _ in SAMPLES)}")
    figs = [fig, samples_figure(vgg, resnet)]
    log(f"[3/4] the CAM family on the cat|dog image: {len(CAM_METHODS)} methods, {RESNET} at layer3")
    figs.append(cam_gallery(resnet))          # all computed before any is written
    log(f"[4/4] writing {len(figs)} PNGs into {out}")
    return [save_png(f, out / name) for f, name in zip(figs, FILES)]


def demo_command(args) -> int:
    start = time.perf_counter()
    paths = run_demo(args.out_dir, log=lambda text: print(text, file=sys.stderr))
    for p in paths:
        print(p)
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0
