"""Sanity checks by model-parameter randomisation (Adebayo et al., NeurIPS 2018), every method.

    result = sanity(minicnn.load("vgg_cifar10"), images=50, mode="cascading")
    result.json()     # {"model", "mode", "images", "steps": ["original", ...], "methods": {KEY: {...}}}

For ``images`` shipped CIFAR-10 test images, each explained for the class
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
from ..util.progress import Progress
from .randomisation import MODES, randomised
from .randomisation import steps as randomisation_steps
from .runs import forward_in_batches, model_inputs, run_method, selected_methods
from .similarity import scale01, spearman, ssim

SIMILARITIES = ("spearman_abs", "spearman", "ssim")


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

    def json(self) -> dict:
        """The JSON of ``minicnn sanity --json``: one mean over the images per step."""
        methods = {}
        for key in self.methods:
            if key in self.skipped:
                methods[key] = {"not_applicable": self.skipped[key]}
            else:
                methods[key] = {s: [float(v) for v in self.values[key][s].mean(axis=1)] for s in SIMILARITIES}
        return {"model": self.model, "mode": self.mode, "images": self.images, "steps": ["original", *self.steps],
                "methods": methods}

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


def similarities(original, randomised_run) -> dict[str, np.ndarray]:
    """(N,) spearman_abs, spearman and ssim of a randomised method run against the original run."""
    a, b = np.abs(original.pixels), np.abs(randomised_run.pixels)
    return {"spearman_abs": spearman(a, b), "spearman": spearman(original.signed, randomised_run.signed),
            "ssim": ssim(scale01(a), scale01(b))}


def sanity(model, *, methods: str | None = None, images: int = 50, mode: str = "cascading", seed: int = 0,
           chunk: int = 50, progress: bool = True) -> Sanity:
    """Randomise ``model`` step by step and compare every method's maps with the trained ones (module docstring)."""
    seed, chunk = check_seed(seed), check_count(chunk, "chunk")
    if mode not in MODES:
        raise InputError(f"randomisation mode must be one of {', '.join(MODES)}; got {mode!r}")
    began = time.perf_counter()
    rows = selected_methods(methods)
    x, prep = model_inputs(model, images)
    targets = forward_in_batches(model, x).argmax(axis=1)
    plan = randomisation_steps(model, mode)
    result = Sanity(model=model.name, mode=mode, images=len(x), steps=[label for label, _ in plan],
                    layers=[layers for _, layers in plan], methods=[m.key for m in rows],
                    titles={m.key: m.title for m in rows}, kinds={m.key: m.kind for m in rows},
                    displays={m.key: m.display for m in rows}, picture=deprocess(x[0], prep))
    bar = Progress(len(x) * len(rows) * (len(plan) + 1), f"sanity ({mode})", unit="maps", enabled=progress)
    originals = {}
    for m in rows:
        run = run_method(model, m, x, targets, chunk=chunk, bar=bar)
        if run.skipped:
            result.skipped[m.key] = run.skipped
            bar.update(len(x) * (len(plan) + 1))
            continue
        originals[m.key] = run
        result.values[m.key] = {s: np.ones((len(plan) + 1, len(x))) for s in SIMILARITIES}
        result.examples[m.key] = [run.raw[0]]
    for step, (_, layers) in enumerate(plan, start=1):
        twin = randomised(model, layers, seed)
        for m in rows:
            if m.key not in originals:
                continue
            run = run_method(twin, m, x, targets, chunk=chunk, bar=bar)
            for s, v in similarities(originals[m.key], run).items():
                result.values[m.key][s][step] = v
            result.examples[m.key].append(run.raw[0])
    bar.close()
    result.examples = {k: np.stack(v) for k, v in result.examples.items()}
    result.seconds = time.perf_counter() - began
    return result
