"""Running every registered method on a batch: in chunks, counted, timed, refusals kept.

    images, labels = shipped_test_images(200)            # (200, 32, 32, 3) uint8, 20 per class
    run = run_method(model, registry.get("gradcam"), x, targets)
    run.pixels        # (N, H, W) pixel map for ranking (minicnn.metrics.maps)
    run.passes        # forward + backward passes per image, counted
    run.seconds       # wall-clock seconds per image
    run.skipped       # None, or why the method does not apply to this model

Methods run ``chunk`` images at a time (as many images per call as the
method batches internally), on the targets given (the class the trained
network predicts), at their default layer and options. A method the
registry marks ``optional`` (CAM) that refuses the model with an
InputError is recorded as not applicable, with the refusal's message;
other errors propagate.

A method that draws random numbers at its default options (its registry row
has ``seed`` and ``samples``: SmoothGrad's noise) runs image by image, image ``ids[i]``
with its own seed (:func:`minicnn.metrics.seeds.image_seed` of the run's seed
and the image's number), so its map does not depend on the images beside it
in a chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..explain import registry
from ..explain.run import run_or_refusal
from ..inputs.images import load_image
from ..inputs.preprocess import preprocess
from ..inputs.samples import sample_images
from .cost import counting_passes
from .maps import pixel_map
from .seeds import image_seed


@dataclass
class MethodRun:
    """One method's maps of a batch and what they cost."""

    name: str
    key: str
    title: str
    kind: str
    raw: np.ndarray | None = None                # the raw maps, (N, ...) as the method returns them
    pixels: np.ndarray | None = None             # (N, H, W) pixel map, channels="abs"
    signed: np.ndarray | None = None             # (N, H, W) pixel map, channels="sum"
    passes: float = float("nan")
    seconds: float = float("nan")
    skipped: str | None = None
    layer: str | None = None
    extra: dict = field(default_factory=dict)


def shipped_test_images(count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``count`` of the 300 shipped CIFAR-10 test images, class by class in turn (image 0 of each class,
    then image 1 of each, ...): (images (count, 32, 32, 3) uint8, labels (count,), class names)."""
    samples = sample_images()
    classes = sorted({c for _, c in samples})
    if not 1 <= count <= len(samples):
        raise InputError(f"the number of images must be between 1 and {len(samples)} (the shipped test images); "
                         f"got {count}")
    by_class = {c: [p for p, k in samples if k == c] for c in classes}
    order = [(by_class[c][i], c) for i in range(max(map(len, by_class.values())))
             for c in classes if i < len(by_class[c])]
    chosen = order[:count]
    images = np.stack([load_image(p) for p, _ in chosen])
    return images, np.array([classes.index(c) for _, c in chosen]), classes


def test_images(count, data=None, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(pictures (n, H, W, 3) uint8, labels (n,), class names): the first ``count`` ("all": every one) of the
    shipped test images (``data`` None: :func:`shipped_test_images`) or of ``data``, a
    :class:`minicnn.metrics.testset.TestImages` (a dataset's test split), both class by class in turn."""
    if data is None:
        return shipped_test_images(len(sample_images()) if count == "all" else count)
    pictures, labels = data.first(count, progress=progress)
    return pictures, labels, data.classes


test_images.__test__ = False                     # not a pytest test despite its name


def model_inputs(model, count, data=None, *, progress: bool = False) -> tuple[np.ndarray, dict]:
    """The first ``count`` test images (:func:`test_images`: the shipped ones, or ``data``'s; "all": every one)
    as the model's input (count, C, H, W) float32, and its preprocessing; a one-line error for a model that
    records none."""
    prep = model.meta.get("preprocessing")
    if not prep:
        raise InputError(f"{model.name} records no preprocessing; cannot prepare the test images for it")
    pictures, _, _ = test_images(count, data, progress=progress)
    return preprocess(pictures, prep), prep


def selected_methods(selection: str | None) -> list[registry.Method]:
    """Registry rows: every method of the registry (None or "all"), or a comma-separated list of names."""
    if selection in (None, "all"):
        return list(registry.METHODS.values())
    return [registry.get(n) for n in registry.names(selection)]


def seeded(method: registry.Method) -> bool:
    """Whether the method draws random numbers at its default options: a ``seed`` and ``samples`` (the
    SmoothGrad family's noisy copies). Integrated Gradients' seed draws only a uniform baseline, which
    the metrics never ask for: at its default (zeros) it is deterministic and runs batched."""
    params = {o.param for o in method.options}
    return {"seed", "samples"} <= params


def run_method(model, method: registry.Method, x: np.ndarray, targets: np.ndarray, *, chunk: int = 50,
               bar=None, ids=None, seed: int = 0) -> MethodRun:
    """The method's maps of the batch x (N, C, H, W) for ``targets`` (N,), with their cost (module docstring).

    ``ids`` (N,): the images' numbers (default 0..N-1), which with ``seed`` seed a method that draws noise.
    """
    run = MethodRun(method.name, method.key, method.title, method.kind)
    ids = np.arange(len(x)) if ids is None else np.asarray(ids)
    per_image = seeded(method)
    if per_image:
        chunk = 1
    raws, forwards, backwards, seconds = [], 0, 0, 0.0
    for start in range(0, len(x), chunk):
        part = slice(start, start + chunk)
        options = {"seed": image_seed(seed, ids[start])} if per_image else None
        with counting_passes(model) as count:
            began = time.perf_counter()
            result = run_or_refusal(method, model, x[part], targets[part], options=options)
            seconds += time.perf_counter() - began
        if isinstance(result, InputError):
            run.skipped = str(result)
            return run
        forwards, backwards = forwards + count.forwards, backwards + count.backwards
        raws.append(np.asarray(result.map))
        run.layer = result.layer
        if bar is not None:
            bar.update(len(x[part]))
    run.raw = np.concatenate(raws)
    size = x.shape[2:]
    run.pixels = pixel_map(run.raw, method.kind, size, channels="abs")
    run.signed = pixel_map(run.raw, method.kind, size, channels="sum")
    run.passes = (forwards + backwards) / len(x)
    run.seconds = seconds / len(x)
    run.extra = {"forwards": forwards / len(x), "backwards": backwards / len(x)}
    return run


def forward_in_batches(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Logits (N, K) of x, ``batch`` images per forward pass."""
    return np.concatenate([model.forward(x[i:i + batch]) for i in range(0, len(x), batch)])
