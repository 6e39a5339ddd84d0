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
on the input). A fourth, the attribution gallery, explains it with ResNet-20
by the methods that change the backward pass (DeconvNet, Input x Gradient,
Integrated Gradients, SmoothGrad, three LRP composites) beside saliency and
Guided Backprop.
The CAM gallery also shows Excitation Backprop and its contrastive MWP,
maps at the layer like the CAMs.

Figure 1 on a real photograph comes next, with the shipped ImageNet model
``mobilenet_v2``: ``pets.jpg`` (an Italian greyhound and a Boston terrier)
explained for each dog with columns (a)-(e), and the 224x448 cat|dog pair
(``minicnn.explain.imagenet_cat_dog_image``) for 'tiger cat' and 'Boston bull'
with columns (a)-(d). Occlusion at 224x224 costs one forward pass per patch
position: a 56x56 grey patch (a quarter of the side) moved 28 pixels at a
time, 7 x 7 = 49 passes, shared by both dogs (the same photo); the pair, twice
as wide, is not occluded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import explain
from ..errors import MinicnnError, OutputError
from ..explain import CAT_DOG, cat_dog_image, imagenet_cat_dog_image
from ..explain.target import short_name
from ..inputs.images import load_image
from ..inputs.preprocess import deprocess, preprocess, size_text
from ..inputs.samples import data_path, load_sample, sample_images
from ..layers import softmax
from ..models.weights import load
from ..util.atomic import Outputs
from . import Panel, grid_figure, method_panel
from .gallery import gallery_figure

RESNET, VGG = "resnet20_cifar10", "vgg_cifar10"
#: Single images of the second figure: (class, index among the shipped test images of that class).
SAMPLES = (("airplane", 0), ("bird", 0), ("horse", 0), ("truck", 0))
#: Occlusion in the demo: an 8x8 patch of the training mean colour, moved 2 pixels at a time.
OCCLUSION = {"size": 8, "stride": 2, "fill": 0.0}
#: The CAM gallery's columns, one per method (minicnn.explain.registry names).
CAM_METHODS = ("gradcam", "gradcam-plus-plus", "xgradcam", "hirescam", "layercam", "scorecam", "ablationcam",
               "eigencam", "eigengradcam", "fullgrad", "excitation-backprop", "contrastive-excitation-backprop")
#: The attribution gallery's methods, and their options (none: the methods' own defaults).
ATTRIBUTION = ("saliency", "guided-backprop", "deconvnet", "input-x-gradient", "integrated-gradients", "smoothgrad",
               "lrp-epsilon", "lrp-epsilon-plus", "lrp-epsilon-gamma-box")
ATTRIBUTION += ("deeplift", "deeplift-shap", "gradient-shap")      # DeepLIFT and the SHAP estimates
ATTRIBUTION_OPTIONS: dict = {}
#: Registry methods in neither gallery, and where the demo shows them instead (a test checks that every
#: registered method is in a gallery or here).
ELSEWHERE = {"counterfactual": "the tour and the explorer (Grad-CAM's negation)",
             "guided-gradcam": "Figure 1, column (d)",
             "occlusion": "Figure 1, column (e)", "cam": "equal to Grad-CAM on ResNet-20 (lesson 6)",
             "smoothgrad-squared": "a variant of SmoothGrad", "vargrad": "a variant of SmoothGrad",
             # sampling methods: hundreds of forward passes each, shown by `minicnn explain` and the explorer
             "lime": "minicnn explain --method lime", "kernel-shap": "minicnn explain --method kernel-shap",
             "rise": "minicnn explain --method rise"}
#: The shipped ImageNet model, and what the ImageNet figures explain.
IMAGENET = "mobilenet_v2"
PETS, PETS_TARGETS = "pets.jpg", ("Italian greyhound", "Boston bull, Boston terrier")
PAIR_TARGETS = ("tiger cat", "Boston bull, Boston terrier")
#: Occlusion at 224x224: a 56x56 patch of grey (pixel 128, input 0) every 28 pixels, 7 x 7 positions.
OCCLUSION_IMAGENET = {"size": 56, "stride": 28, "fill": 0.0}
#: The PNGs written, in order (the last two only when mobilenet_v2 is installed).
FILES = ("figure1_cat_dog.png", "single_images.png", "gallery_cam.png", "gallery_attribution.png",
         "figure1_imagenet.png", "figure1_imagenet_cat_dog.png")
COLUMNS = ("(a) original", "(b) Guided Backprop", "(c) Grad-CAM", "(d) Guided Grad-CAM", "(e) Occlusion",
           "(f) ResNet Grad-CAM")


def load_models():
    """(vgg-style model, resnet20) from the shipped weights; the first is resnet20 if vgg_cifar10 is absent."""
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
    x = np.repeat(preprocess(image, vgg.meta["preprocessing"]), len(targets), axis=0)
    xr = np.repeat(preprocess(image, resnet.meta["preprocessing"]), len(targets), axis=0)
    ggc = explain.guided_gradcam(vgg, x, targets)             # also holds guided backprop and Grad-CAM
    occ = explain.occlusion(vgg, x, ggc.targets, **OCCLUSION)
    rgc = explain.gradcam(resnet, xr, ggc.targets, "layer3")
    return [{"guided": ggc.guided, "gradcam": ggc.gradcam, "guided_gradcam": ggc, "occlusion": occ,
             "resnet": rgc, "index": i} for i in range(len(targets))]


def row_panels(row: dict, image: np.ndarray) -> list:
    """The panels of one row, (a)-(f), or (a)-(e) / (a)-(d) for rows without a ResNet or an occlusion map.

    Titles: column letter, method, class (its first name, for ImageNet's "Boston bull, Boston terrier"),
    score, model and layer.
    """
    i, gc = row["index"], row["gradcam"]
    name = repr(short_name(gc.target_names[i]))
    p = softmax(gc.logits[i:i + 1])[0, gc.targets[i]]

    def title(col, result, layer=None):
        return f"{COLUMNS[col]} {name}\n{layer + ' · ' if layer else ''}y={float(result.scores[i]):.2f}"

    panels = [
        Panel("image", image, f"{COLUMNS[0]}\np({name})={p:.2f}"),
        method_panel(row["guided"], image, i, title=title(1, row["guided"])),
        method_panel(gc, image, i, title=title(2, gc, gc.layer)),
        method_panel(row["guided_gradcam"], image, i, title=title(3, gc, gc.layer)),
    ]
    if row.get("occlusion") is not None:
        panels.append(method_panel(row["occlusion"], image, i, title=title(4, row["occlusion"])))
    if row.get("resnet") is not None:
        panels.append(method_panel(row["resnet"], image, i, title=title(5, row["resnet"], row["resnet"].layer)))
    return panels


def figure1(vgg, resnet):
    """The cat|dog figure: a row for 'cat' and a row for 'dog'. Returns (Figure, rows)."""
    image = cat_dog_image()
    rows = explain_rows(vgg, resnet, image, ["cat", "dog"])
    (cat, i), (dog, j) = CAT_DOG
    seen = {m.name: size_text(preprocess(image, m.meta["preprocessing"]).shape[2:]) for m in (vgg, resnet)}
    files = [f"{c}/{sample_images(c)[k][0].name}" for c, k in CAT_DOG]
    fig = grid_figure([row_panels(r, image) for r in rows],
                      row_labels=["'cat'", "'dog'"],
                      title=f"Figure 1 of Grad-CAM at CIFAR-10 scale: two shipped test images side by side, "
                            f"a cat ({files[0]}) and a dog ({files[1]}), {size_text(image.shape)}\n"
                            f"(a)-(e): {vgg.name}, which sees {seen[vgg.name]}; (f): {resnet.name}, which sees "
                            f"{seen[resnet.name]}; each row explains the class on its left")
    return fig, rows


def first_correct(model, class_name: str, start: int = 0) -> int:
    """Index of the first shipped test image of ``class_name`` (from ``start``) the model gets right."""
    paths = [p for p, _ in sample_images(class_name)]
    x = preprocess([load_image(p) for p in paths], model.meta["preprocessing"])
    hits = np.flatnonzero(model.forward(x).argmax(axis=1) == model.classes.index(class_name))
    later = hits[hits >= start]
    return int(later[0]) if later.size else start


def samples_figure(vgg, resnet, samples=SAMPLES):
    """The same columns for single test images, explained for the class the VGG-style model predicts."""
    panels, labels = [], []
    for class_name, start in samples:
        index = first_correct(vgg, class_name, start)
        image = load_sample(class_name, index)
        row = explain_rows(vgg, resnet, image, [None])[0]
        panels.append(row_panels(row, image))
        labels.append(f"{class_name}/{sample_images(class_name)[index][0].name}")
    return grid_figure(panels, row_labels=labels,
                       title=f"Single test images, each explained for {vgg.name}'s top-1 class. "
                             f"(a)-(e): {vgg.name}, (f): {resnet.name}")


def imagenet_rows(model, image: np.ndarray, targets, *, occlusion: bool = True, resize: bool = True) -> list[dict]:
    """Columns (a)-(e) (or (a)-(d) without occlusion) for one photo and each target, one batch per method."""
    prep = model.meta["preprocessing"] if resize else {**model.meta["preprocessing"], "resize": "none"}
    x = np.repeat(preprocess(image, prep), len(targets), axis=0)
    ggc = explain.guided_gradcam(model, x, list(targets))
    occ = explain.occlusion(model, x, ggc.targets, **OCCLUSION_IMAGENET) if occlusion else None
    return [{"guided": ggc.guided, "gradcam": ggc.gradcam, "guided_gradcam": ggc, "occlusion": occ, "index": i}
            for i in range(len(targets))]


def imagenet_figures(model):
    """(Figure 1 on pets.jpg, its rows), (the cat|dog pair figure, its rows), explained by the ImageNet model."""
    photo = load_image(data_path("images", PETS))
    picture = deprocess(preprocess(photo, model.meta["preprocessing"])[0], model.meta["preprocessing"])
    rows = imagenet_rows(model, photo, PETS_TARGETS)
    short = [repr(t.split(",")[0]) for t in PETS_TARGETS]
    pets = grid_figure([row_panels(r, picture) for r in rows], row_labels=short, panel_height=1.6,
                       title=f"Figure 1 of Grad-CAM on a real photograph: {PETS} ({size_text(photo.shape)}, "
                             f"Open Images, CC BY 2.0) seen by {model.name} at {size_text((224, 224))} "
                             f"(ImageNet, 1001 classes)\n"
                             f"explained for {short[0]} and {short[1]}, the network's top two; (e) occlusion: "
                             f"56x56 grey patch every 28 px; y = pre-softmax score, p = softmax")
    pair = imagenet_cat_dog_image()
    pair_rows = imagenet_rows(model, pair, PAIR_TARGETS, occlusion=False, resize=False)
    names = [repr(t.split(",")[0]) for t in PAIR_TARGETS]
    cat_dog = grid_figure([row_panels(r, pair) for r in pair_rows], row_labels=names, panel_height=1.6,
                          title=f"The cat|dog pair at ImageNet scale (224x448): Chelsea (CC0) | the Boston terrier of "
                                f"{PETS}, {model.name} (fully convolutional: a 7x14 feature map)")
    return (pets, rows), (cat_dog, pair_rows)


def cam_gallery(resnet):
    """The CAM family on the cat|dog image: rows 'cat' and 'dog', one column per method, at layer3."""
    return gallery_figure(resnet, cat_dog_image(), ["cat", "dog"], list(CAM_METHODS), layer="layer3", columns=5,
                          title=f"The CAM family on the cat|dog image (64 wide x 32 high): {resnet.name}, layer3 "
                                f"(FullGrad: the input); raw maps, colour bars in each method's own units")


def attribution_gallery(resnet):
    """The cat|dog image explained for 'cat' and 'dog' by ResNet-20 with the methods of ATTRIBUTION."""
    return gallery_figure(resnet, cat_dog_image(), ["cat", "dog"], list(ATTRIBUTION), options=ATTRIBUTION_OPTIONS,
                          columns=5, title=f"{resnet.name} on cat|dog: attribution by modified backward passes, "
                                           f"raw maps (colour bars in each method's own units)")


def run_demo(out_dir="minicnn-demo", *, force: bool = False, log=print) -> list[str]:
    """Write the demo's PNGs into ``out_dir`` (created if missing); returns their paths.

    Follows every command's overwrite rule (``minicnn.util.atomic.Outputs``): PNGs
    left by an earlier run are replaced only with ``force``; both are written
    at the end, together, or none is.
    """
    from . import save_png  # lazy: read at call time, so a patched figures.save_png is used
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder; choose another --out-dir")
    outputs = Outputs(force=force)
    paths = [outputs.output(out / name, "--out-dir", create_folder=True) for name in FILES]  # before the work
    vgg, resnet = load_models()
    if vgg is resnet:
        log(f"note: {VGG} is not installed; columns (b)-(e) use {RESNET}")
    try:
        imagenet = load(IMAGENET)
    except MinicnnError:
        imagenet = None
        log(f"note: {IMAGENET} is not installed; no ImageNet figures")
    steps = 7 if imagenet is not None else 5
    log(f"[1/{steps}] Figure 1: the cat|dog image explained for 'cat' and for 'dog'")
    fig, rows = figure1(vgg, resnet)
    log(f"[2/{steps}] single test images: {', '.join(c for c, _ in SAMPLES)}")
    figs = [fig, samples_figure(vgg, resnet)]
    log(f"[3/{steps}] the CAM family on the cat|dog image: {len(CAM_METHODS)} methods, {RESNET} at layer3")
    figs.append(cam_gallery(resnet))
    log(f"[4/{steps}] attribution by modified backward passes on the cat|dog image: {len(ATTRIBUTION)} methods")
    figs.append(attribution_gallery(resnet))
    if imagenet is not None:
        log(f"[5/{steps}] Figure 1 on a real photograph: {PETS} explained by {IMAGENET} for both dogs "
            f"(occlusion: 49 forward passes)")
        (pets, _), (cat_dog, _) = imagenet_figures(imagenet)
        log(f"[6/{steps}] the cat|dog pair at 224x448")
        figs += [pets, cat_dog]                 # all computed before any is written
    log(f"[{steps}/{steps}] writing {len(figs)} PNGs into {out}")
    with outputs.writing():
        return [save_png(f, path, outputs=outputs) for f, path in zip(figs, paths)]
