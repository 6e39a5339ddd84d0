"""Running the registry's methods: the service that the command line, the server, the gallery and the metrics share.

- :func:`run_or_refusal`: one method on a batch, with only the options it declares; an
  optional method (CAM, which needs GAP -> Linear) that does not apply to the network gives
  back its refusal instead of raising, when the caller asked for it to be skipped.
- :func:`compute`: "all", a name or a comma-separated list -> {method name: Explanation},
  Guided Grad-CAM's two factors included.
- :func:`maps_for_saving`: image 0's raw maps under the registry's keys (what ``--save``
  and the server return).
- :func:`top_predictions`: the top classes with p = softmax(y) and y.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..layers import softmax
from . import registry


def run_or_refusal(m: registry.Method, model, x, target=None, layer: str | None = None, options: dict | None = None,
                   *, skip_optional: bool = True):
    """Method row ``m``'s Explanation for the batch x, or the InputError with which it refuses the network.

    Only the options ``m`` declares are passed (None values are left out). Only an
    ``optional`` method, and only with ``skip_optional``, gives its refusal back; any
    other error is raised.
    """
    own = {k: v for k, v in (options or {}).items() if v is not None and k in {o.param for o in m.options}}
    try:
        return m.run(model, x, target, layer, **own)
    except InputError as e:
        if not (m.optional and skip_optional):
            raise
        return e


def compute(model, x, method: str, target=None, layer: str | None = None, *, log=print, options=None) -> dict:
    """{method name: Explanation} for ``method`` ("all", a name, or a comma-separated list) on the batch x.

    Guided Grad-CAM also brings its two factors ("gradcam", "guided-backprop").
    With "all", a method that does not apply to this network (CAM) is skipped
    with a note through ``log``; asked for by name, that is a one-line InputError.
    ``options`` ({param: value}) go to the methods that declare them.
    """
    chosen = registry.names(method)
    out = {}
    for name in chosen:
        m = registry.get(name)
        r = run_or_refusal(m, model, x, target, layer if takes_layer(m, method) else None, options,
                           skip_optional=method == "all")
        if isinstance(r, InputError):
            log(f"{name}: skipped: {r}")
            continue
        for part in getattr(r, "parts", lambda: {})().items():
            out.setdefault(*part)
        out[name] = r
    order = list(registry.METHODS)
    return {m: out[m] for m in sorted(out, key=order.index)}


def takes_layer(m, method: str) -> bool:
    """Whether method row ``m``, chosen by ``method`` ("all" or names), is given the user's ``layer``.

    Methods without a layer (``uses_layer`` false) never are; an optional one
    (CAM) under "all" finds its own layer.
    """
    return m.uses_layer and not (m.optional and method == "all")


def ignoring_layer(method: str) -> list[str]:
    """The chosen methods to which ``--layer`` means nothing."""
    return [n for n in registry.names(method) if not takes_layer(registry.get(n), method)]


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


def top_predictions(model, logits: np.ndarray, top: int) -> list[tuple[int, str, float, float]]:
    """The top classes of one image, best first: (index, name, softmax probability, pre-softmax score y)."""
    p = softmax(logits[None])[0]
    order = np.argsort(-logits, kind="stable")[:top]
    return [(int(k), model.classes[k] if k < len(model.classes) else str(k), float(p[k]), float(logits[k]))
            for k in order]
