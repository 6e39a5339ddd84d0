"""The JSON API: what each endpoint answers, independent of HTTP.

    GET  /api/models             every served model: classes, layers (name, type, output shape), default layer,
                                 the optional methods that do not apply to it (and why)
    GET  /api/methods            every registered method (minicnn.explain.registry), with its display
    GET  /api/samples            the shipped sample images
    GET  /api/samples/NAME       one of them, as its image file
    POST /api/explain?model=M&method=M1,M2&target=T&layer=L    body: an image file
    POST /api/visualize, POST /api/attack                        (``synth.py``: class visualisation, attacks)

/api/models and /api/explain carry ``estimates``: about how many seconds
each method takes here (``minicnn.explain.estimate``: its passes times a
forward and backward measured once per model); /api/explain also carries
``layer_shapes``, the (C, h, w) of every layer with a feature-map output for the request's input.

Each function returns plain JSON-able data or raises: a ``MinicnnError``
for bad input (answered 400 with its one line) or an :class:`ApiError`
carrying its own status (404 for an unknown sample).

Every cost a request can set is checked before any work (400 naming the
cap): the options of ``CAPS`` (``steps``, ``samples``; SmoothGrad's samples
times its base method's passes; ``grid``, the superpixels or mask cells per side of LIME,
Kernel SHAP and RISE, whose ``features`` name a kind, never a file), ``batch_size`` (copies of the input per
pass, at most ``MAX_BATCH_VALUES`` values), ``seed`` in 0..2^32-1, every
float finite, the image's pixels (the server's limit) and the network
input's (``MAX_INPUT_SCALE``, ``DEFAULT_MAX_INPUT_PIXELS``). A method named
twice is computed once, so a request asks for at most every registered
method. While it works, ``check()`` (the server's: has the client gone, is
the deadline past?) is called between batches through
``minicnn.util.progress.watching``, and may stop it by raising.

The explanation reuses the command line's own steps
(``minicnn.explain.run.compute`` and ``maps_for_saving``), so the
method names, the map keys and the raw values are those of ``minicnn
explain --save``.
"""

from __future__ import annotations

import io
import math
import time
from functools import cache

import numpy as np
from PIL import Image

from ..errors import ImageError, InputError, unknown_name
from ..explain import registry
from ..explain.catdog import CAT_DOG, cat_dog_image
from ..explain.estimate import estimate_seconds
from ..explain.gradcam import weighted_sum
from ..explain.run import compute, maps_for_saving, top_predictions
from ..explain.target import class_index
from ..inputs.images import DEFAULT_MAX_PIXELS, image_from_bytes
from ..inputs.preprocess import deprocess, preprocess, size_text
from ..inputs.samples import data_path, sample_images
from ..util.progress import watching
from . import overlay
from .models import ModelStore

#: The query parameters of /api/explain besides the methods' own options.
EXPLAIN_PARAMS = ("model", "method", "target", "layer")
#: How many predictions /api/explain lists.
TOP = 5
#: How many feature maps the Grad-CAM steps show: those adding most to sum_k alpha_k A^k (largest
#: alpha_k * mean A^k), and those taking most away.
STEPS_FOR, STEPS_AGAINST = 6, 2
#: The network input may have at most this many times the pixels of the model's own input size
#: (a 32x32 model: 32x512 at most); a panorama stretched further would cost memory, not insight.
MAX_INPUT_SCALE = 16
#: The largest value of each integer option a request may set (the command line has no such caps).
CAPS = {"steps": 512, "samples": 512, "grid": 32}
#: Copies of the network input per pass (``batch_size``) times its values (C x H x W): at most this many
#: (8 MiB of float32 per pass; 682 copies of a 3x32x32 input, 13 of a 3x224x224 one).
MAX_BATCH_VALUES = 2 ** 21
#: A seed is an unsigned 32-bit integer.
MAX_SEED = 2 ** 32 - 1
#: Passes per noisy copy of each SmoothGrad base: integrated gradients runs its default 50 steps (+2 passes).
BASE_PASSES = {"integrated-gradients": 52}
BASE_PASSES.update({"deeplift-shap": 31, "gradient-shap": 61})   # 10 baselines x 3 passes, 20 draws x 3 (+ 1)
#: The model the page starts with, and /api/explain uses when a request names none: ResNet-20 is fully
#: convolutional up to its global average pooling, so it sees an image in its own shape (cat|dog: 32x64).
DEFAULT_MODEL = "resnet20_cifar10"


class ApiError(Exception):
    """A refusal with its own HTTP status (the message is one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- GET /api/models, /api/methods

def models_info(store: ModelStore) -> dict:
    """{"models": [...]} in the store's order; "default" names the model the page starts with."""
    out = []
    for name in store.names:
        m = store.shared(name)
        prep = m.meta.get("preprocessing") or {}
        out.append({
            "name": name,
            "arch": m.meta.get("arch"),
            "classes": m.classes,
            "input_size": list(m.input_size or []),
            "resize": prep.get("resize"),
            "parameters": m.num_parameters(),
            "accuracy": (m.meta.get("accuracy") or {}).get("top1"),
            "default_layer": store.default_layers[name],
            "layers": [{"name": li.name, "type": li.type, "shape": list(li.shape), "depth": li.depth,
                        "spatial": li.spatial} for li in store.layers[name]],
            "pass_seconds": store.pass_times(name)[:2],
            "unavailable": store.unavailable(name),
            "estimates": estimates(store, name, m.input_size[1:]),
        })
    return {"models": out, "default": default_model(store)}


def estimates(store: ModelStore, name: str, hw) -> dict:
    """About how many seconds each method takes on model ``name`` for a network input of size hw = (H, W).

    {method: seconds}, or {method: {layer: seconds}} for a method whose cost
    depends on the layer (Score-CAM and Ablation-CAM: one pass per map K), for
    every spatial layer. From ``minicnn.explain.estimate``: the method's passes
    times the model's measured pass (``ModelStore.pass_times``).
    """
    shared = store.shared(name)
    times = store.pass_times(name)
    spatial = [li for li in store.layers[name] if li.spatial]
    out: dict = {}
    for m in registry.METHODS.values():
        if m.name in ("scorecam", "ablationcam"):
            out[m.name] = {li.name: round(estimate_seconds(m.name, shared, hw, times, li.name, channels=li.shape[0]), 3)
                           for li in spatial}
        else:
            out[m.name] = round(estimate_seconds(m.name, shared, hw, times), 3)
    return out


def default_model(store: ModelStore) -> str:
    """The model the page starts with and /api/explain uses without ``model`` (DEFAULT_MODEL if served)."""
    return DEFAULT_MODEL if DEFAULT_MODEL in store.names else store.names[0]


def methods_info() -> dict:
    """Every registered method, in the registry's order, as the page needs it."""
    out = []
    for m in registry.METHODS.values():
        row = {"name": m.name, "key": m.key, "title": m.title, "kind": m.kind, "display": m.display,
               "value": m.value, "family": m.family, "uses_layer": m.uses_layer, "in_all": m.in_all,
               "optional": m.optional, "cost": m.cost,
               "options": [{"param": o.param, "flag": o.flag, "type": getattr(o.type, "__name__", "str"),
                            "default": o.default if isinstance(o.default, (int, float, str, bool)) else None,
                            "help": o.help} for o in m.options]}
        if m.display in overlay.COLORMAPS:
            row["colormap"] = overlay.COLORMAPS[m.display]
            row["colors"] = list(overlay.colour_stops(m.display))
        out.append(row)
    return {"methods": out, "default": "gradcam"}


# ---------------------------------------------------------------- GET /api/samples

@cache
def _samples() -> dict[str, dict]:
    """name -> {"title", "group", "class", "bytes" or "path", "type"}: the cat|dog image, two photos, CIFAR-10."""
    (cat, i), (dog, j) = CAT_DOG
    out = {"cat_dog": {"title": "cat | dog", "group": "featured", "class": None, "type": "image/png",
                       "about": f"CIFAR-10 test images {cat} #{i} and {dog} #{j} side by side ({size_text((32, 64))}), "
                                f"as in Figure 1 of the Grad-CAM paper", "make": _cat_dog_png}}
    for stem, about in (("chelsea", f"Chelsea the cat, a photograph ({size_text((300, 451))}, scikit-image, CC0)"),
                        ("coffee", f"a cup of coffee, a photograph ({size_text((400, 600))}, scikit-image, CC0)")):
        try:
            out[stem] = {"title": stem, "group": "featured", "class": None, "type": "image/png",
                         "about": about, "path": data_path("images", f"{stem}.png")}
        except ImageError:
            pass
    for path, cls in sample_images():
        out[f"{cls}_{path.stem}"] = {"title": f"{cls} {path.stem}", "group": "CIFAR-10 test", "class": cls,
                                      "type": "image/jpeg", "about": f"CIFAR-10 test image {cls}/{path.name}",
                                      "path": path}
    return out


@cache
def _cat_dog_png() -> bytes:
    """The cat|dog image as a lossless PNG: decoding it gives ``cat_dog_image()`` exactly."""
    buf = io.BytesIO()
    Image.fromarray(cat_dog_image()).save(buf, format="PNG")
    return buf.getvalue()


def samples_info() -> dict:
    """{"samples": [{"name", "title", "group", "class", "about", "url"}]}, featured first."""
    return {"samples": [{"name": name, "title": s["title"], "group": s["group"], "class": s["class"],
                         "about": s["about"], "url": f"/api/samples/{name}"} for name, s in _samples().items()]}


def sample_file(name: str) -> tuple[bytes, str]:
    """(the file's bytes, its content type) of sample ``name``; 404 for an unknown name."""
    samples = _samples()
    if name not in samples:
        raise ApiError(404, str(unknown_name("sample", name, list(samples))))
    s = samples[name]
    data = s["make"]() if "make" in s else s["path"].read_bytes()
    return data, s["type"]


# ---------------------------------------------------------------- POST /api/explain

def explain_options(query: dict[str, str]) -> dict:
    """The methods' own options from the query (e.g. occlusion's size), converted by their declared type."""
    declared = {o.param: o for m in registry.METHODS.values() for o in m.options}
    unknown = sorted(set(query) - set(EXPLAIN_PARAMS) - set(declared))
    if unknown:
        raise InputError(f"unknown query parameter {unknown[0]!r}; /api/explain takes: "
                         f"{', '.join([*EXPLAIN_PARAMS, *declared])}")
    options = {}
    for param, text in query.items():
        if param in declared:
            o = declared[param]
            try:
                options[param] = o.type(text)
            except (TypeError, ValueError):
                raise InputError(f"{param} must be a {getattr(o.type, '__name__', 'value')}; "
                                 f"got {text[:40]!r}") from None
            check_cap(param, options[param])
    if "samples" in options and options.get("base") in BASE_PASSES:
        passes = options["samples"] * BASE_PASSES[options["base"]]
        if passes > CAPS["samples"]:
            raise InputError(f"samples={options['samples']} with base {options['base']} makes {passes} passes, over "
                             f"the server's cap of {CAPS['samples']} passes of noisy copies; use samples <= "
                             f"{CAPS['samples'] // BASE_PASSES[options['base']]}")
    return options


def check_cap(param: str, value) -> None:
    """A one-line InputError for an option value the server will not spend on (see the module docstring)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{param} must be a finite number; got {value!r}")
    if param in CAPS and not 1 <= value <= CAPS[param]:
        raise InputError(f"{param}={value} is outside 1..{CAPS[param]}, the server's cap on {param}")
    if param == "seed" and not 0 <= value <= MAX_SEED:
        raise InputError(f"seed={value} is outside 0..{MAX_SEED} (2^32 - 1), the range of a seed")
    if param == "batch_size" and value < 1:
        raise InputError(f"batch_size must be a positive integer; got {value}")


def check_batch(options: dict, x: np.ndarray) -> None:
    """``batch_size`` copies of the network input x[0] per pass: at most MAX_BATCH_VALUES values."""
    size = options.get("batch_size")
    if size is not None and size * x[0].size > MAX_BATCH_VALUES:
        raise InputError(f"batch_size={size} puts {size} copies of the {'x'.join(map(str, x.shape[1:]))} input in "
                         f"one pass, over the server's cap of {MAX_BATCH_VALUES} values per pass; use batch_size <= "
                         f"{max(1, MAX_BATCH_VALUES // x[0].size)}")


def explain(store: ModelStore, query: dict[str, str], body: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
            check=None) -> dict:
    """Explain the image in ``body`` with the methods, model, target and layer of ``query``.

    ``check()``, if given, is called while waiting for a worker and between batches of work; it stops the
    work by raising. No progress bar is drawn.
    """
    started = time.perf_counter()
    options = explain_options(query)
    name = query.get("model") or default_model(store)
    shared = store.shared(name)
    method = query.get("method") or "gradcam"
    if method != "all":                                   # a method named twice is computed once
        method = ",".join(dict.fromkeys(registry.names(method)))
    layer = query.get("layer") or None
    if layer is not None:
        shared[layer]                                     # an unknown layer, with a suggestion
    target = query.get("target") or None
    if target is not None:
        target = class_index(shared, target)
    with store.turn(check), watching(check, quiet=True):
        image = image_from_bytes(body, name="the uploaded image", max_pixels=max_pixels)
        prep = shared.meta["preprocessing"]
        x = preprocess(image, prep)
        image_shape = list(image.shape[:2])
        del image                                         # the decoded upload is not needed past here
        check_input_size(shared, x)
        check_batch(options, x)
        model = store.view(name)
        notes: list[str] = []
        results = compute(model, x, method, target, layer, log=notes.append, options=options)
        if check is not None:
            check()
        arrays = maps_for_saving(results, model, x.shape[2:])
        picture = deprocess(x[0], prep)
        first = next(iter(results.values()))
        maps = {}
        for key, a in arrays.items():
            m = registry.get(key.removesuffix("_upsampled")) if a.ndim >= 2 else None  # maps, not logits
            if m is None:
                continue
            r = results[m.name]
            maps[key] = {"method": m.name, "title": m.title + (" (upsampled)" if key.endswith("_upsampled") else ""),
                         "shape": list(a.shape), "data": json_floats(a), **overlay.display(r, picture)}
        answer = {
            "model": name,
            "layer": arrays["layer"].item() or None,
            "target": {"index": int(first.targets[0]), "name": first.target_names[0],
                       "score": float(first.scores[0]), "given": target is not None},
            "predictions": [{"index": k, "name": n, "logit": y, "probability": p}
                            for k, n, p, y in top_predictions(model, first.logits[0], TOP)],
            "maps": maps,
            "input": {"shape": list(x.shape[2:]), "png": overlay.picture_png(picture)},
            "image": {"shape": image_shape},
            "notes": notes,
            "estimates": estimates(store, name, x.shape[2:]),
            "layer_shapes": store.layer_shapes(name, x.shape[2:]),
        }
        if "gradcam" in results:
            answer["gradcam_steps"] = gradcam_steps(model, x, results["gradcam"])
    answer["seconds"] = round(time.perf_counter() - started, 4)
    return answer


def check_input_size(model, x: np.ndarray) -> None:
    """Refuse a network input far larger than the model's own (a long thin panorama kept at full width)."""
    size = model.input_size
    if size and x.shape[2] * x.shape[3] > MAX_INPUT_SCALE * size[1] * size[2]:
        raise InputError(f"the image becomes a network input {size_text(x.shape[2:])}, more than {MAX_INPUT_SCALE} "
                         f"times the {size_text(size[1:])} {model.name} was trained on; crop it nearer to a square")


def gradcam_steps(model, x: np.ndarray, r) -> dict:
    """The pieces of Grad-CAM for image 0, from the engine: A^k, alpha_k, sum_k alpha_k A^k, its ReLU.

    Runs one more forward pass on the request's own model to read A at the
    result's layer (the methods computed after Grad-CAM ran passes of their own).
    """
    model.forward(x)
    A = model.activations[r.layer][:1]                         # (1, K, h, w)
    alpha = r.alpha[:1]                                        # (1, K)
    S = weighted_sum(alpha, A)[0]                              # (h, w): sum_k alpha_k A^k
    relu = np.maximum(S, 0)
    A, alpha = A[0], alpha[0]
    contribution = alpha * A.mean(axis=(1, 2))                 # alpha_k mean_ij A^k_ij: map k's share of mean(S)
    order = np.argsort(-contribution, kind="stable")
    chosen = [(k, "for") for k in order[:STEPS_FOR] if contribution[k] > 0]
    chosen += [(k, "against") for k in order[::-1][:STEPS_AGAINST] if contribution[k] < 0]
    maps = [{"k": int(k), "side": side, "alpha": float(alpha[k]), "mean": float(A[k].mean()),
             "max": float(A[k].max()), "contribution": float(contribution[k]), "shape": list(A[k].shape),
             "data": json_floats(A[k]), **overlay.heat(A[k], "feature", "A^k")} for k, side in chosen]
    return {
        "layer": r.layer, "K": int(A.shape[0]), "shape": list(A.shape[1:]),
        "alpha": json_floats(alpha), "contribution": json_floats(contribution),
        "maps": maps,
        "weighted_sum": {"shape": list(S.shape), "data": json_floats(S),
                         **overlay.heat(S, "signed", "sum_k alpha_k A^k")},
        "relu": {"shape": list(relu.shape), "data": json_floats(relu),
                 **overlay.heat(relu, "heat", registry.get("gradcam").value)},
        "equal_to_gradcam": bool(np.array_equal(relu, r.map[0])),
    }


def json_floats(a: np.ndarray) -> list:
    """An array's values in row-major order as Python floats (non-finite values as None: JSON has no NaN).

    A float32 value becomes the float64 of the same value, whose shortest
    decimal form reads back as that float32 exactly.
    """
    values = np.asarray(a).ravel().tolist()
    if not np.isfinite(a).all():
        values = [v if np.isfinite(v) else None for v in values]
    return values
