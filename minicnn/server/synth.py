"""What the network wants to see, and how to fool it, in the explorer: two more JSON endpoints.

    POST /api/visualize?model=M&class=C&steps=N&param=fourier|pixel&seed=S          no body
    POST /api/attack?model=M&attack=fgsm|pgd&epsilon=8/255&steps=N&target=T&seed=S
                    &method=M1,M2&layer=L&explain.OPTION=V                          body: an image file

/api/visualize answers the class visualisation of ``minicnn.synthesis.visualise`` (gradient
ascent on the input for the class score y^c, J = y^c; the same call as ``minicnn visualize
--class C``, so the same seed gives the same image): the image as a lossless PNG at the
network's input size, J at every step, the network's top predictions on the image, and a
sentence saying what it shows. Answers are kept per (model, class, param, steps, seed), at
most ``VISUALISATIONS_KEPT`` of them (the oldest forgotten first): a second view is instant.

/api/attack runs FGSM or PGD (``minicnn.synthesis.fgsm`` / ``pgd``, the steps of ``minicnn
attack``) on the uploaded image at the network's input size, away from its top-1 class (or
towards ``target``), then explains the adversarial image, as the 8-bit PNG it answers,
through ``api.explain`` itself (the same caps, the same maps as ``/api/explain`` on those
bytes) for the true class (the top-1 before) and for the adversarial class (the top-1 after).
The explanation methods' options are sent prefixed with ``explain.`` (``explain.steps=4``):
unprefixed, ``steps``, ``seed`` and ``epsilon`` are the attack's.

Every cost is checked before the work (400 naming the field and the cap): ``steps`` in
1..``MAX_VISUALISE_STEPS`` (visualisation) or 1..``MAX_ATTACK_STEPS`` (PGD), ``param`` one of
pixel and fourier, ``seed`` in 0..2^32-1, ``epsilon`` in [0, 1] (a number or a fraction such
as 8/255), one image per request (the batch is 1), its pixels and its network input within the
server's limits, and the methods' own caps as on /api/explain. The work runs in one of the
store's worker places (``ModelStore.turn``) and inside ``watching(check)``: every step counts
itself on a ``Progress``, so the server's check (client gone, deadline past: 503) runs between
steps and stops it.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict

import numpy as np
from PIL import Image

from ..errors import InputError
from ..explain import registry
from ..explain.run import top_predictions
from ..explain.target import class_index
from ..inputs.images import DEFAULT_MAX_PIXELS, image_from_bytes
from ..inputs.preprocess import preprocess
from ..synthesis import adversarial
from ..synthesis.objectives import ClassScore
from ..synthesis.parameterise import PARAMETERISATIONS
from ..synthesis.visualise import normalisation, visualise
from ..util.progress import Progress, watching
from . import api, overlay
from .models import ModelStore

#: The query parameters of /api/visualize.
VISUALISE_PARAMS = ("model", "class", "steps", "param", "seed")
#: The most gradient steps one visualisation request may take (mobilenet_v2: ~0.07 s a step on a quiet core).
MAX_VISUALISE_STEPS = 512
#: Steps, parameterisation and seed when a request names none: the defaults of ``minicnn visualize``.
VISUALISE_DEFAULTS = {"steps": 128, "param": "fourier", "seed": 0}
#: How many visualisations the server keeps (a 224x224 picture as a PNG data address and y^c per step: 140 to
#: 170 KB measured; 64 of them about 11 MB).
VISUALISATIONS_KEPT = 64
#: The attack's own query parameters; the maps' are api.EXPLAIN_PARAMS' "method" and "layer" and "explain."+option.
ATTACK_PARAMS = ("model", "attack", "epsilon", "steps", "target", "seed", "method", "layer")
#: The prefix of an explanation method's option on /api/attack.
OPTION_PREFIX = "explain."
#: The most PGD steps one attack request may take (the command line allows adversarial.MAX_STEPS); FGSM
#: takes one step whatever ``steps`` says (checked all the same).
MAX_ATTACK_STEPS = 100
#: The attack when a request names none: FGSM with epsilon 8/255, as ``minicnn attack``; PGD's 10 steps.
ATTACK_DEFAULTS = {"attack": "fgsm", "epsilon": "8/255", "steps": 10, "seed": 0}
#: How many predictions before and after the attack are listed.
TOP = api.TOP
#: The parameterisations as a sentence says them.
PARAM_WORDS = {"fourier": "Fourier parameterisation with decorrelated colour", "pixel": "pixel parameterisation"}


def unknown_params(query: dict[str, str], known, endpoint: str) -> None:
    unknown = sorted(k for k in query if k not in known and not (endpoint == "/api/attack"
                                                                   and k.startswith(OPTION_PREFIX)))
    if unknown:
        extra = f", and {OPTION_PREFIX}OPTION for the methods' options" if endpoint == "/api/attack" else ""
        raise InputError(f"unknown query parameter {unknown[0]!r}; {endpoint} takes: {', '.join(known)}{extra}")


def integer(query: dict[str, str], name: str, default: int, low: int, high: int, cap: str) -> int:
    """Query parameter ``name`` as an integer in low..high (``cap`` says whose limit high is); 400 otherwise."""
    text = query.get(name) or str(default)
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise InputError(f"{name} must be a whole number in {low}..{high}; got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise InputError(f"{name}={value} is outside {low}..{high}, {cap}")
    return value


def class_name(model, k: int) -> str:
    return model.classes[k] if model.classes and k < len(model.classes) else str(k)


def predictions(model, logits: np.ndarray) -> list[dict]:
    return [{"index": k, "name": n, "logit": y, "probability": p} for k, n, p, y in top_predictions(model, logits, TOP)]


def png_bytes(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 picture as the bytes of a PNG file (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def quantise(pixels: np.ndarray) -> np.ndarray:
    """round(255 p) as uint8: what an 8-bit PNG holds of pixels p in [0, 1]."""
    return np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def logits_of(model, pixels_nchw: np.ndarray) -> np.ndarray:
    """The network's logits (N, K) for pixels (N, 3, H, W) in [0, 1]: f((p - mean) / std)."""
    mean, std = normalisation(model)
    return model.forward(((pixels_nchw - mean) / std).astype(np.float32))


def counted(total: int):
    """A silent ``Progress`` of ``total`` steps: inside ``watching(check)``, check() runs at each step."""
    return Progress(total, "working", unit="steps", enabled=False)


# ---------------------------------------------------------------- POST /api/visualize

class Visualisations:
    """The answers of /api/visualize, kept per (model, class, param, steps, seed): at most ``kept``, oldest out."""

    def __init__(self, kept: int = VISUALISATIONS_KEPT) -> None:
        self.kept = kept
        self._answers: OrderedDict[tuple, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None:
                self._answers.move_to_end(key)
            return answer

    def put(self, key: tuple, answer: dict) -> None:
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.kept:
                self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)


def visualise_settings(store: ModelStore, query: dict[str, str]) -> tuple[str, int, str, int, int]:
    """(model, class index, param, steps, seed) of a /api/visualize query, every one checked (400 otherwise)."""
    unknown_params(query, VISUALISE_PARAMS, "/api/visualize")
    name = query.get("model") or api.default_model(store)
    shared = store.shared(name)
    if not query.get("class"):
        raise InputError(f"name the class to visualise: class=NAME or class=INDEX (one of {name}'s "
                         f"{len(shared.classes)} classes)")
    k = class_index(shared, query["class"])
    param = query.get("param") or VISUALISE_DEFAULTS["param"]
    if param not in PARAMETERISATIONS:
        raise InputError(f"param must be one of {', '.join(PARAMETERISATIONS)}; got {param[:40]!r}")
    steps = integer(query, "steps", VISUALISE_DEFAULTS["steps"], 1, MAX_VISUALISE_STEPS,
                    "the server's cap on visualisation steps")
    seed = integer(query, "seed", VISUALISE_DEFAULTS["seed"], 0, api.MAX_SEED, "the range of a seed (2^32 - 1)")
    return name, k, param, steps, seed


def about_visualisation(name: str, steps: int, param: str) -> str:
    """The sentence the page shows above the image."""
    return (f"what the network would draw for '{name.split(',')[0]}': gradient ascent on the input for its "
            f"score y^c, {steps} step{'s' if steps != 1 else ''}, {PARAM_WORDS[param]}")


def visualize(store: ModelStore, query: dict[str, str], cache: Visualisations | None = None, *, check=None) -> dict:
    """The class visualisation the query asks for (module docstring), from ``cache`` when it holds it."""
    started = time.perf_counter()
    name, k, param, steps, seed = visualise_settings(store, query)
    key = (name, k, param, steps, seed)
    kept = cache.get(key) if cache is not None else None
    if kept is not None:
        return {**kept, "cached": True, "seconds": round(time.perf_counter() - started, 4)}
    shared = store.shared(name)
    with store.turn(check), watching(check, quiet=True):
        model = store.view(name)
        with counted(steps) as progress:
            result = visualise(model, ClassScore(k), param=param, steps=steps, seed=seed, progress=progress)
        image = quantise(result.image)                                    # (H, W, 3): what the PNG holds
        logits = logits_of(model, (image.astype(np.float32) / 255).transpose(2, 0, 1)[None])
    label = class_name(shared, k)
    answer = {
        "model": name,
        "class": {"index": k, "name": label},
        "param": param, "steps": steps, "seed": seed,
        "about": about_visualisation(label, steps, param),
        "image": {"shape": list(image.shape[:2]), "png": overlay.png_data_url(image)},
        "values": api.json_floats(result.values),                         # J = y^c at each step (under its T)
        "first_value": float(result.values[0]),
        "final_value": result.final_value,                                # J on the final image, untransformed
        "predictions": predictions(shared, logits[0]),                    # on the image as the PNG holds it
        "computed_seconds": round(time.perf_counter() - started, 4),
    }
    if cache is not None:
        cache.put(key, answer)
    return {**answer, "cached": False, "seconds": answer["computed_seconds"]}


# ---------------------------------------------------------------- POST /api/attack

def attack_settings(store: ModelStore, query: dict[str, str]) -> dict:
    """The attack's settings and the maps' query for api.explain, every one checked (400 otherwise)."""
    unknown_params(query, ATTACK_PARAMS, "/api/attack")
    name = query.get("model") or api.default_model(store)
    shared = store.shared(name)
    method = query.get("attack") or ATTACK_DEFAULTS["attack"]
    if method not in adversarial.METHODS:
        raise InputError(f"attack must be one of {', '.join(adversarial.METHODS)}; got {method[:40]!r}")
    epsilon = adversarial.parse_epsilon(query.get("epsilon") or ATTACK_DEFAULTS["epsilon"])
    steps = integer(query, "steps", ATTACK_DEFAULTS["steps"], 1, MAX_ATTACK_STEPS, "the server's cap on PGD steps")
    seed = integer(query, "seed", ATTACK_DEFAULTS["seed"], 0, api.MAX_SEED, "the range of a seed (2^32 - 1)")
    target = class_index(shared, query["target"]) if query.get("target") else None
    maps_query = {"model": name, "method": query.get("method") or "gradcam"}
    if query.get("layer"):
        maps_query["layer"] = query["layer"]
    options = {k[len(OPTION_PREFIX):]: v for k, v in query.items() if k.startswith(OPTION_PREFIX)}
    for k in options:
        if k in api.EXPLAIN_PARAMS:
            why = "the maps are for the true and the adversarial class" if k == "target" else f"send {k}= unprefixed"
            raise InputError(f"{OPTION_PREFIX}{k} is not an option of a method; {why}")
    try:
        api.explain_options(options)                         # converted and capped now, before the work
    except InputError as e:
        raise InputError(f"in the methods' options ({OPTION_PREFIX}NAME): {e}") from None
    maps_query.update(options)
    if maps_query["method"] != "all":
        registry.names(maps_query["method"])                 # an unknown method, with a suggestion, before the work
    if "layer" in maps_query:
        shared[maps_query["layer"]]                          # an unknown layer, with a suggestion, before the work
    return {"model": name, "attack": method, "epsilon": epsilon, "steps": steps if method == "pgd" else 1,
            "seed": seed, "target": target, "maps_query": maps_query}


def attack(store: ModelStore, query: dict[str, str], body: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
           check=None) -> dict:
    """Attack the image in ``body`` and explain the result (module docstring); ``check()`` as for api.explain."""
    started = time.perf_counter()
    s = attack_settings(store, query)
    name = s["model"]
    shared = store.shared(name)
    with store.turn(check), watching(check, quiet=True):
        image = image_from_bytes(body, name="the uploaded image", max_pixels=max_pixels)
        prep = shared.meta["preprocessing"]
        pixels = preprocess(image, {**prep, "mean": [0, 0, 0], "std": [1, 1, 1]})   # (1, 3, H, W) in [0, 1]
        del image
        api.check_input_size(shared, pixels)
        model = store.view(name)
        if s["attack"] == "fgsm":
            with counted(1) as progress:
                result = adversarial.fgsm(model, pixels, s["epsilon"], target=s["target"])
                progress.update(1)
        else:
            with counted(s["steps"]) as progress:
                result = adversarial.pgd(model, pixels, s["epsilon"], steps=s["steps"], seed=s["seed"],
                                         target=s["target"], progress=progress)
        adversarial_image = quantise(result.adversarial[0].transpose(1, 2, 0))        # (H, W, 3) uint8: the PNG
        original = quantise(pixels[0].transpose(1, 2, 0))
        png = png_bytes(adversarial_image)
    true_class = int(result.labels[0])
    answers = {"true": api.explain(store, {**s["maps_query"], "target": str(true_class)}, png,
                                   max_pixels=max_pixels, check=check)}
    adversarial_class = answers["true"]["predictions"][0]["index"]     # the top-1 on the PNG: what is explained
    answers["adversarial"] = answers["true"] if adversarial_class == true_class else \
        api.explain(store, {**s["maps_query"], "target": str(adversarial_class)}, png, max_pixels=max_pixels,
                    check=check)                                   # not fooled: the same question, asked once
    maps = {role: {"class": {"index": a["target"]["index"], "name": a["target"]["name"], "score": a["target"]["score"]},
                   "layer": a["layer"], "maps": a["maps"], "notes": a["notes"]} for role, a in answers.items()}
    after = answers["true"]["predictions"]
    target = s["target"]
    fooled = adversarial_class == target if target is not None else adversarial_class != true_class
    change = np.abs(adversarial_image.astype(np.int16) - original.astype(np.int16)).max()
    eps = s["epsilon"]
    return {
        "model": name,
        "attack": {"method": s["attack"], "epsilon": eps, "epsilon_255": round(eps * 255, 4), "steps": s["steps"],
                   "step_size": float(result.step_size), "seed": s["seed"],
                   "target": None if target is None else {"index": target, "name": class_name(shared, target)}},
        "about": about_attack(s["attack"], eps, s["steps"], class_name(shared, true_class),
                              None if target is None else class_name(shared, target)),
        "input": {"shape": list(original.shape[:2]), "png": overlay.png_data_url(original)},
        "adversarial": {"shape": list(adversarial_image.shape[:2]), "png": overlay.png_data_url(adversarial_image),
                        "largest_change_255": int(change)},
        "true": {"index": true_class, "name": class_name(shared, true_class)},
        "adversarial_class": {"index": adversarial_class, "name": class_name(shared, adversarial_class)},
        "fooled": bool(fooled),
        "before": predictions(shared, result.logits_before[0]),
        "after": after,
        "maps": maps,
        "seconds": round(time.perf_counter() - started, 4),
    }


def about_attack(method: str, epsilon: float, steps: int, true_name: str, target_name: str | None) -> str:
    what = "FGSM, one signed gradient step" if method == "fgsm" else f"PGD, {steps} projected steps from a random start"
    goal = f"towards '{target_name.split(',')[0]}'" if target_name else f"away from '{true_name.split(',')[0]}'"
    return (f"{what} {goal}: every pixel moved by at most epsilon = {epsilon:.4g} ({epsilon * 255:.3g}/255); "
            f"the maps explain the adversarial image for the true and the adversarial class")
