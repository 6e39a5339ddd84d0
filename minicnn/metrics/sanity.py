"""Sanity checks by model-parameter randomisation (Adebayo et al., NeurIPS 2018), every method.

    result = sanity(minicnn.load("vgg_cifar10"), images=50, mode="cascading")
    result.json()     # {"model", "mode", "images", "steps": ["original", ...], "methods": {KEY: {...}}}

For ``images`` shipped CIFAR-10 test images (or, with ``data``, a dataset's
test split: :mod:`minicnn.metrics.testset`), each explained for the class
the *trained* network predicts (the same class at every step), every method
of the registry (or those named) gives its map on the trained network and
on the network randomised step by step (:mod:`minicnn.metrics.randomisation`:
cascading from the logits down, or one unit at a time). At each step each
map is compared with the trained network's map of the same image by

    spearman_abs   Spearman of absolute values     (pixel maps, channels="abs")
    spearman       Spearman of signed values       (pixel maps, channels="sum")
    ssim           SSIM of the absolute maps scaled to [0, 1]

(:mod:`minicnn.metrics.similarity`, :mod:`minicnn.metrics.maps`), averaged
over the images. The first step, "original", compares the trained maps with
themselves (1 for every measure). A method whose map barely changes while
the weights that produced the decision are destroyed does not explain the
decision: Adebayo et al. found this for Guided Backprop and Guided
Grad-CAM, and not for the gradient or Grad-CAM.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..inputs.preprocess import deprocess
from ..util.checks import check_count, check_seed
from .comparison import SIMILARITIES, compare_images, similarities  # noqa: F401  (similarities: re-exported)
from .distributed import sanity_parts
from .randomisation import MODES
from .randomisation import steps as randomisation_steps
from .runs import model_inputs, selected_methods
from .testset import TestImages


@dataclass
class Sanity:
    """Similarities to the original map, per method, step and image.

    values[key][similarity] : (steps + 1, N), row 0 the original (all 1)
    examples[key]           : (steps + 1, ...) raw maps of image 0 at every step, for the figure
    """

    model: str
    mode: str
    images: int
    steps: list[str]
    layers: list[tuple[str, ...]]
    methods: list[str]
    titles: dict[str, str]
    kinds: dict[str, str]
    displays: dict[str, str]
    values: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    picture: np.ndarray | None = None
    seconds: float = 0.0
    data: str | None = None                    # where the images come from (None: the shipped ones)

    def json(self) -> dict:
        """The JSON of ``minicnn sanity --json``: one mean over the images per step (``data``: only for a run
        on a dataset)."""
        methods = {}
        for key in self.methods:
            if key in self.skipped:
                methods[key] = {"not_applicable": self.skipped[key]}
            else:
                methods[key] = {s: [float(v) for v in self.values[key][s].mean(axis=1)] for s in SIMILARITIES}
        return {"model": self.model, "mode": self.mode, "images": self.images,
                **({"data": self.data} if self.data else {}), "steps": ["original", *self.steps], "methods": methods}

    def tables(self, width: int = 120) -> str:
        """Markdown: one table per similarity, a row per method, a column per step (means over the images).

        A table wider than ``width`` characters (MobileNetV2 has 55 steps) numbers its steps, names
        them once in a list above, and is cut into blocks of steps that fit, each with the method column.
        """
        labels = ["original", *self.steps]
        rows = {key: None if key in self.skipped else {s: self.values[key][s].mean(axis=1) for s in SIMILARITIES}
                for key in self.methods}
        first = max([len("method"), *(len(self.titles[k]) for k in self.methods)])
        wide = 2 + first + sum(3 + max(4, len(label)) for label in labels) + 2 > width
        heads = [str(i) for i in range(len(labels))] if wide else labels
        per_block = max(1, (width - first - 4) // (3 + max(4, len(heads[-1])))) if wide else len(labels)
        out = []
        if wide:                                     # "steps: 0 original · 1 linear · ...", no step cut in two
            line = "steps:"
            for i, label in enumerate(labels):
                piece = f"{i} {label}" + (" ·" if i + 1 < len(labels) else "")
                if len(line) + 1 + len(piece) > width:
                    out.append(line)
                    line = " "
                line += " " + piece
            out += [line, ""]
        for s in SIMILARITIES:
            out.append(f"**{s}** ({self.mode} randomisation of {self.model}, mean over {self.images} images)")
            out.append("")
            for a in range(0, len(labels), per_block):
                cols = range(a, min(a + per_block, len(labels)))
                out.append("| method | " + " | ".join(heads[c] for c in cols) + " |")
                out.append("|" + "---|" * (len(cols) + 1))
                for key, means in rows.items():
                    cells = ("n/a" for _ in cols) if means is None else (f"{means[s][c]:.2f}" for c in cols)
                    title = self.titles[key].replace("|", "\\|")   # a bar in a title is no cell
                    out.append(f"| {title} | " + " | ".join(cells) + " |")
                out.append("")
        out += [f"- {self.titles[k]}: not applicable: {why}" for k, why in self.skipped.items()]
        return "\n".join(out).rstrip()


def sanity(model, *, methods: str | None = None, images: int = 50, mode: str = "cascading", seed: int = 0,
           chunk: int = 1, progress: bool = True, cluster=None, source=None, data=None) -> Sanity:
    """Randomise ``model`` step by step and compare every method's maps with the trained ones (module docstring).

    ``cluster`` (a :class:`minicnn.util.cluster.Cluster`): run it in chunks of images on Dask workers,
    which load the model from ``source``; the values are those of the serial run
    (:mod:`minicnn.metrics.comparison`, :mod:`minicnn.metrics.distributed`). ``data``: None for the
    shipped test images, or a dataset (a path, or a :class:`minicnn.metrics.testset.TestImages`): the
    first ``images`` ("all": every one) of its test split, class by class in turn.
    """
    seed, chunk = check_seed(seed), check_count(chunk, "chunk")
    if mode not in MODES:
        raise InputError(f"randomisation mode must be one of {', '.join(MODES)}; got {mode!r}")
    began = time.perf_counter()
    rows = selected_methods(methods)
    if data is not None and not isinstance(data, TestImages):
        data = TestImages(data)
    x, prep = model_inputs(model, images, data, progress=progress)
    plan = randomisation_steps(model, mode)
    result = Sanity(model=model.name, mode=mode, images=len(x), steps=[label for label, _ in plan],
                    layers=[layers for _, layers in plan], methods=[m.key for m in rows],
                    titles={m.key: m.title for m in rows}, kinds={m.key: m.kind for m in rows},
                    displays={m.key: m.display for m in rows}, picture=deprocess(x[0], prep),
                    data=None if data is None else data.describe())
    keys = [m.key for m in rows]
    if cluster is None:
        parts = [compare_images(model, keys, x, np.arange(len(x)), mode=mode, seed=seed, chunk=chunk,
                                progress=progress)]
    else:
        parts = sanity_parts(model, keys, x, mode=mode, seed=seed, chunk=chunk, cluster=cluster, source=source,
                             progress=progress)
    for key in keys:
        pieces = [p[key] for p in parts]
        skipped = next((str(p["skipped"]) for p in pieces if "skipped" in p), None)
        if skipped is not None:
            result.skipped[key] = skipped
            continue
        result.values[key] = {s: np.concatenate([p[s] for p in pieces], axis=1) for s in SIMILARITIES}
        result.examples[key] = next(p["examples"] for p in pieces if "examples" in p)
    result.seconds = time.perf_counter() - began
    return result
