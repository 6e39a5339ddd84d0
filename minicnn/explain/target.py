"""What every explanation needs: the target class c, the layer A, the seed e_c, the result.

An explanation answers "which parts of x made the score y^c high?", where
y^c is the pre-softmax score (logit) of class c. Three choices come first:

- the **target** c for each image: by default the top-1 class
  ``argmax_k y^k``; or a class index; or a class name; or one of those per
  image (:func:`choose_targets`);
- the **layer** whose output A (N, K, h, w) is explained: by default the last
  convolutional feature map after its ReLU (:func:`default_layer`), e.g.
  "features.29" in VGG-16, "features.19" in the VGG-style CIFAR model and
  "layer3" in ResNet-20; the chosen name is always reported in the result;
- the **seed** of the backward pass, the one-hot rows e_c (:func:`onehot`):
  ``model.backward(e_c)`` computes d(sum_n y^{c_n}_n)/d(everything), and
  since image n's score depends only on image n, row n of every gradient is
  dy^{c_n}_n / d(that image's activations).

Results are :class:`Explanation` objects (dataclasses) holding the raw,
unnormalised map; normalising and colouring belong to ``minicnn.figures``.
"""

from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError, UnknownNameError, unknown_name
from ..layers import Conv2d, ReLU, ReLU6
from .resize import resize_bilinear


@dataclass(frozen=True, kw_only=True, eq=False)
class Explanation:
    """One method's raw result for a batch of N images.

    method   : the method's name in ``registry.METHODS`` ("gradcam", "occlusion", ...)
    map      : the raw map; (N, h, w) for maps over a layer or the pixels,
               (N, C, H, W) for gradients with respect to the input
    targets  : (N,) int, the class c explained in each image
    scores   : (N,) the pre-softmax score y^c of that class
    logits   : (N, K) all scores
    layer    : name of the layer whose output A was used (None when the
               method works on the input alone)
    classes  : the model's class names, in logit order
    """

    method: str
    map: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    layer: str | None = None
    classes: list = field(default_factory=list)

    @property
    def target_names(self) -> list[str]:
        """The explained class of each image, by name when the model names its classes."""
        return [self.classes[c] if c < len(self.classes) else str(c) for c in self.targets]


@dataclass(frozen=True, kw_only=True, eq=False)
class LayerMap(Explanation):
    """An explanation whose ``map`` (N, h, w) lies over a layer's positions (the CAM family)."""

    def upsampled(self, size, *, align_corners: bool = False) -> np.ndarray:
        """The map resized bilinearly to ``size`` (H, W): (N, H, W)."""
        return resize_bilinear(self.map, size, align_corners=align_corners)


# ---------------------------------------------------------------- target class

def synonyms(name: str) -> list[str]:
    """The names one class goes by: its label split at commas.

    ImageNet labels are WordNet synonym lists, e.g. "tabby, tabby cat" or
    "Boston bull, Boston terrier"; a CIFAR-10 label ("cat") is one name.
    """
    return [s.strip() for s in str(name).split(",") if s.strip()] or [str(name)]


def short_name(name: str) -> str:
    """The first synonym of a class label, for titles and tables: "tabby, tabby cat" -> "tabby"."""
    return synonyms(name)[0]


def class_index(model, target) -> int:
    """One class as an index: an int in 0..K-1, or a name of one of ``model.classes``.

    A string is tried, in this order, as (1) a whole label, exactly; (2) any
    synonym of a label (:func:`synonyms`), ignoring case ("Boston bull",
    "tabby cat"); (3) an index ("3"); (4) the beginning of a synonym, ignoring
    case, when it begins synonyms of one class only ("Boston" -> 'Boston bull,
    Boston terrier'). A name shared by several classes ("crane": the bird and
    the machine) or a prefix of several is a one-line error naming them
    (index and name); an unknown name suggests the closest synonym.
    """
    k = len(model.classes) if model.classes else None
    if isinstance(target, str):
        return _class_by_name(list(model.classes or []), target)
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise InputError(f"a target class is an index or a class name; got {target!r}")
    return _in_range(int(target), k)


def _in_range(index: int, k: int | None) -> int:
    """``index`` when it is a class of a model with k classes (any k when None); a one-line error otherwise."""
    if index < 0 or (k is not None and index >= k):
        raise InputError(f"target class {index} is out of range; this model has classes 0..{(k or 1) - 1}")
    return index


def _class_by_name(classes: list[str], target: str) -> int:
    """The index of the class ``target`` names (see :func:`class_index` for the rules)."""
    exact = [i for i, c in enumerate(classes) if c == target]
    if len(exact) == 1:
        return exact[0]
    wanted = target.strip().casefold()
    if not wanted:
        raise InputError("a target class name is empty; give a class name or an index")
    named = {i for i, c in enumerate(classes) for s in synonyms(c) if s.casefold() == wanted}
    if len(named) == 1:
        return named.pop()
    if named:
        raise InputError(f"class name {target!r} is shared by {_listing(classes, named, wanted)}; give the index")
    try:
        number = int(target)  # "3"; "-1" is then refused as out of range
    except ValueError:
        pass
    else:
        return _in_range(number, len(classes) or None)
    begun = {i for i, c in enumerate(classes) for s in synonyms(c) if s.casefold().startswith(wanted)}
    if len(begun) == 1:
        return begun.pop()
    if begun:
        raise InputError(f"{target!r} begins the names of {_listing(classes, begun, wanted)}; type more of the name, "
                         "or give the index")
    raise unknown_class(classes, target)


def _listing(classes: list[str], indices, wanted: str, show: int = 8) -> str:
    """ "2 classes: 287 'cougar' (as 'catamount'), 485 'catamaran'" for a one-line message (at most ``show``).

    Each class by its index and first synonym, and by the synonym that matched ``wanted`` where that differs.
    """
    def named(i: int) -> str:
        first, *_ = names = synonyms(classes[i])
        match = next((s for s in names if s.casefold().startswith(wanted)), first)
        return f"{i} {first!r}" + (f" (as {match!r})" if match != first else "")
    indices = sorted(indices)
    return (f"{len(indices)} classes: " + ", ".join(map(named, indices[:show]))
            + (", ..." if len(indices) > show else ""))


def unknown_class(classes: list[str], target: str):
    """The one-line error for a name that is no class: the closest synonym, then the valid names.

    Labels with synonyms (ImageNet's) are suggested by synonym ("tabyy" ->
    'tabby'), and such a list is too long and too comma-ridden to print
    inline: the message counts it instead (``minicnn classes`` prints it,
    one class a line with its index).
    """
    if not any("," in c for c in classes):
        return unknown_name("class", target, classes)
    names = {}
    for c in classes:
        for s in synonyms(c):
            names.setdefault(s.casefold(), s)
    close = difflib.get_close_matches(target.strip().casefold(), list(names), n=1, cutoff=0.5)
    hint = f"; did you mean {names[close[0]]!r}?" if close else ";"
    return UnknownNameError(f"unknown class {target!r}{hint} the model has {len(classes)} classes, each named by "
                            "any of its comma-separated synonyms or an unambiguous beginning of one")


def choose_targets(model, logits: np.ndarray, target=None) -> np.ndarray:
    """The class c_n to explain in each image n, as an (N,) int array.

    target: None (top-1: argmax_k y^k_n), an index or a class name (the same
    class for every image), or a sequence of N of those (one per image; None
    in it means that image's top-1).
    """
    n, k = logits.shape
    if target is None:
        return np.argmax(logits, axis=1)
    if isinstance(target, (list, tuple, np.ndarray)):
        targets = list(np.asarray(target).tolist()) if isinstance(target, np.ndarray) else list(target)
        if len(targets) != n:
            raise InputError(f"got {len(targets)} target classes for a batch of {n} images")
        top = np.argmax(logits, axis=1)
        out = np.array([top[i] if t is None else class_index(model, t) for i, t in enumerate(targets)], dtype=np.intp)
    else:
        out = np.full(n, class_index(model, target), dtype=np.intp)
    if out.max() >= k:
        raise InputError(f"target class {int(out.max())} is out of range; the model has {k} outputs (0..{k - 1})")
    return out


def onehot(targets: np.ndarray, k: int, dtype=np.float32) -> np.ndarray:
    """The seed e_c: (N, K) with 1 at [n, c_n] and 0 elsewhere, so backward gives dy^c/d(.)."""
    seed = np.zeros((len(targets), k), dtype=dtype)
    seed[np.arange(len(targets)), targets] = 1
    return seed


def scores_of(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """y^{c_n}_n for each image: (N,)."""
    return logits[np.arange(len(targets)), targets]


# ---------------------------------------------------------------- layer

def outermost_alias(model, name: str) -> str:
    """The first (outermost) name whose output is the very same array as ``name``'s.

    A container's output is its last child's output: in ResNet-20,
    "layer3", "layer3.2" and "layer3.2.relu" are one array, reported as "layer3".
    """
    acts = model.activations
    for other in model.layer_names:
        if acts.get(other) is acts[name]:
            return other
    return name


def default_layer(model) -> str:
    """The last convolutional feature map after its ReLU, by its outermost name.

    Read from the last forward pass: the last ReLU (or ReLU6) whose output is a
    4-D map (N, K, h, w) (VGG-16: "features.29", the VGG-style CIFAR model:
    "features.19", ResNet-20: "layer3", MobileNetV2: "features", 1280 x 7 x 7);
    without such a ReLU, the last Conv2d's output. Call ``model.forward`` first.
    """
    if not model.activations:
        raise InputError("call model.forward(x) before choosing the default layer")
    acts = model.activations
    for kinds in ((ReLU, ReLU6), (Conv2d,)):
        found = [name for name, layer in model.layers()
                 if isinstance(layer, kinds) and getattr(acts.get(name), "ndim", 0) == 4]
        if found:
            return outermost_alias(model, found[-1])
    raise InputError(f"{model.name} has no convolutional feature map (N, K, h, w); name a layer with layer=...")


def feature_map(model, layer: str | None, method: str = "Grad-CAM") -> tuple[str, np.ndarray]:
    """(name, A) for the layer to explain, A (N, K, h, w) from the last forward pass.

    One-line errors for an unknown name and for a layer without spatial extent
    (a dense layer's (N, D) output, or a 1x1 map after global pooling).
    """
    name = default_layer(model) if layer is None else layer
    model[name]  # unknown names fail here, with a suggestion
    A = model.activations.get(name)
    if A is None:
        raise InputError(f"layer {name!r} produced no output in the last forward pass")
    if A.ndim != 4 or A.shape[2] * A.shape[3] < 2:
        better = default_layer(model)
        hint = (f"try {better!r}" if better != name else
                "the input image is too small to leave a map with more than one pixel here; use a larger image")
        raise InputError(f"{method} needs a convolutional feature map (N, K, h, w) with spatial extent; layer {name!r} "
                         f"outputs shape {A.shape[1:]}; {hint}")
    return name, A
