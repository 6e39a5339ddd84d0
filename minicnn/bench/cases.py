"""What is timed: a model with its input, target and layer (a ``Case``), and each operation as a minicnn call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import explain
from ..explain import default_layer
from ..inputs.datasets import open_dataset
from ..models.evaluate import evaluate as run
from ..models.weights import load
from ..models.zoo import ARCHITECTURES, build_architecture

#: The shipped CIFAR-10 models the bench looks for.
CIFAR_MODELS = ("resnet20_cifar10", "vgg_cifar10")


#: Operations, in table order (a model has the ones it is timed on).
OPERATIONS = ("forward", "gradcam", "guided_backprop", "guided_gradcam", "occlusion", "batch64", "batch256",
              "backward64", "scorecam", "evaluate")


#: Operations on batches (CIFAR models only); ``evaluate`` needs ``--data``.
BATCHED = ("occlusion", "batch64", "batch256", "backward64", "scorecam", "evaluate")


#: Images per pass of ``evaluate`` (its default batch size).
EVALUATE_BATCH = 200


#: Input elements per forward pass of Score-CAM's masked copies (explain's default).
MASKED_BATCH_ELEMENTS = 2 ** 18


@dataclass
class Case:
    """One model with its inputs: x (1, C, H, W); for CIFAR models a batch (256, C, H, W)
    (its first 64 images for the batch-64 operations) and the dataset."""

    name: str
    model: object
    x: np.ndarray
    target: int = 0
    layer: str = ""
    batch: np.ndarray | None = None
    data: str | None = None
    operations: tuple = ("forward", "gradcam", "guided_backprop", "guided_gradcam")


def make_case(name: str, data: str | None = None) -> Case:
    """A zoo architecture with random weights ("vgg16", "resnet20", ...) or a shipped model by name.

    Models for inputs up to 64x64 (the CIFAR ones) are timed on every
    operation (``evaluate`` only with ``data``, the path of the CIFAR-10
    test set); larger ones on the first four.
    MinicnnError if the name is neither.
    """
    if name in ARCHITECTURES:
        model = build_architecture(name)
    else:
        model = load(name)
    rng = np.random.default_rng(0)
    c, h, w = model.input_size or (3, 32, 32)
    case = Case(name, model, rng.standard_normal((1, c, h, w), np.float32))
    logits = model.forward(case.x)
    case.target = int(np.argmax(logits[0]))
    case.layer = default_layer(model)
    if max(h, w) <= 64:
        case.batch = rng.standard_normal((256, c, h, w), np.float32)
        case.data = data
        case.operations = tuple(op for op in OPERATIONS if op != "evaluate" or data)
    return case


def minicnn_operations(case: Case) -> dict[str, Callable[[], np.ndarray]]:
    """Each operation as a call returning its result, through minicnn.explain and minicnn.models.evaluate."""
    model, x, c, layer = case.model, case.x, case.target, case.layer
    ops = {
        "forward": lambda: model.forward(x),
        "gradcam": lambda: explain.gradcam(model, x, c, layer).map,
        "guided_backprop": lambda: explain.guided_backprop(model, x, c).map,
        "guided_gradcam": lambda: explain.guided_gradcam(model, x, c, layer).map,
        "occlusion": lambda: explain.occlusion(model, x, c, progress=False).map,
    }
    if case.batch is not None:
        b64, b256 = case.batch[:64], case.batch
        onehot = np.zeros((len(b64), len(model.forward(x)[0])), np.float32)
        onehot[:, c] = 1

        def backward64():
            model.forward(b64)
            return model.backward(onehot)

        def evaluate():
            return np.array([run(model, open_dataset(case.data), EVALUATE_BATCH).correct])

        ops.update({"batch64": lambda: model.forward(b64, keep=False),
                    "batch256": lambda: model.forward(b256, keep=False),
                    "backward64": backward64, "evaluate": evaluate,
                    "scorecam": lambda: explain.scorecam(model, x, c, layer, progress=False).map})
    return {k: v for k, v in ops.items() if k in case.operations}
