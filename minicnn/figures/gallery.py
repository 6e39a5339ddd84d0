"""Gallery figures: one image explained for several classes by many methods, side by side.

    from minicnn.figures.gallery import gallery_figure
    fig = gallery_figure(model, cat_dog_image(), ["cat", "dog"], ["gradcam", "hirescam", "scorecam"])

Rows are the target classes, columns the original image and then one method
each, in the order given (any names of ``minicnn.explain.registry``). Every
map is computed raw, for all rows in one batch per method, and drawn over
the image the network saw, with the colour bar in raw units as the
registry labels it. A method that does not apply to the model (CAM on a
network without global average pooling) gets a text panel saying why.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..explain import registry
from ..explain.run import run_or_refusal
from ..explain.target import short_name
from ..inputs.preprocess import deprocess, preprocess
from ..layers import softmax
from . import Panel, grid_figure, method_panel


def explain_all(model, image: np.ndarray, targets: list, methods: list[str], *, layer: str | None = None,
                options: dict | None = None) -> dict:
    """{method name: Explanation or the InputError that refused it} for the image repeated once per target."""
    x = np.repeat(preprocess(image, model.meta["preprocessing"]), len(targets), axis=0)
    results = {}
    for name in methods:
        m = registry.get(name)
        results[m.name] = run_or_refusal(m, model, x, list(targets), layer, options)
    return results


def gallery_figure(model, image: np.ndarray, targets: list, methods: list[str], *, layer: str | None = None,
                   title: str | None = None, options: dict | None = None, results: dict | None = None,
                   columns: int | None = None):
    """A Figure: a row per target class, the image then one column per method. Returns the Figure.

    ``results`` (from :func:`explain_all`) may be passed to draw maps already computed.
    ``columns`` wraps after that many methods: the rest get another block of
    rows, one per class again (long galleries of wide images stay readable).
    """
    results = results if results is not None else explain_all(model, image, targets, methods, layer=layer,
                                                               options=options)
    picture = deprocess(preprocess(image, model.meta["preprocessing"])[0], model.meta["preprocessing"])
    first = next((r for r in results.values() if not isinstance(r, Exception)), None)
    if first is None:
        raise InputError("no method in the gallery applies to this model")
    rows, labels = [], []
    step = columns or len(methods)
    for block in (methods[k:k + step] for k in range(0, len(methods), step)):
        for i in range(len(targets)):
            name = short_name(first.target_names[i])         # "tabby" for "tabby, tabby cat"
            p = softmax(first.logits[i:i + 1])[0, first.targets[i]]
            row = [Panel("image", picture, f"input\np({name!r})={p:.2f}, y={float(first.scores[i]):.2f}")]
            for method in block:
                m = registry.get(method)
                r = results[m.name]
                if isinstance(r, Exception):
                    row.append(Panel("text", title=f"{m.title}\nnot defined here"))
                    continue
                where = f"\n{r.layer}" if r.layer else "\n(input)"
                row.append(method_panel(r, picture, i, title=f"{m.title}{where}"))
            rows.append(row)
            labels.append(repr(name))
    layers = sorted({r.layer for r in results.values() if not isinstance(r, Exception) and r.layer})
    title = title or (f"{model.name}: {len(methods)} methods, raw maps (colour bars in each method's own units)"
                      + (f"; layer {', '.join(layers)}" if layers else ""))
    return grid_figure(rows, row_labels=labels, title=title, panel_height=1.3, fontsize=9)
