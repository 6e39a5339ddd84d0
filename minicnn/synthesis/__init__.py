"""What the network wants to see, and how to fool it: images made by gradients at the input.

- ``transforms``: jitter, scale and rotation, each with its adjoint (transformation robustness);
- ``parameterise``: the image as pixels, or as a Fourier spectrum with decorrelated colour;
- ``objectives``: a class score, a channel's mean or one unit at any layer, and dJ/dx;
- ``visualise``: class model and feature visualisation by gradient ascent (seeded);
- ``adversarial``: FGSM and PGD in the L-infinity ball, untargeted and targeted.

Every backward here is the adjoint of its forward and is checked by central differences
(tests/test_synthesis.py). This layer sits beside ``minicnn.explain`` and imports only the engine,
util, inputs and models.
"""

from .adversarial import Attack, fgsm, loss_gradient, parse_epsilon, pgd
from .objectives import ClassScore, LayerObjective, class_of
from .parameterise import FourierImage, PixelImage
from .transforms import Affine, RandomTransform, jitter, jitter_backward
from .visualise import MAX_PIXELS, MAX_STEPS, Visualisation, visualise

__all__ = ["Affine", "Attack", "ClassScore", "FourierImage", "LayerObjective", "MAX_PIXELS", "MAX_STEPS",
           "PixelImage", "RandomTransform", "Visualisation", "class_of", "fgsm", "jitter", "jitter_backward",
           "loss_gradient", "parse_epsilon", "pgd", "visualise"]
