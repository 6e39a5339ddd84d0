"""The cat|dog image: the Grad-CAM paper's Figure 1 input at CIFAR-10 scale, and at ImageNet scale.

Two shipped CIFAR-10 test images side by side, a cat on the left and a dog
on the right, (32, 64, 3) uint8. Both are classified correctly by the
shipped models on their own. The choice is fixed here, in one place, for
the demo, the lessons and the tests.

The ImageNet pair, (224, 448, 3) uint8, for ``mobilenet_v2``: the shipped
photo of Chelsea the cat (its central square) beside the Boston terrier of
``pets.jpg`` (the square ``BOSTON_TERRIER_BOX``), each resized to 224x224.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..inputs.images import load_image
from ..inputs.preprocess import side_by_side
from ..inputs.samples import data_path, load_sample

#: (class, index into the shipped test images of that class) for the left and right halves.
CAT_DOG = (("cat", 18), ("dog", 1))


def cat_dog_image() -> np.ndarray:
    """(32, 64, 3) uint8: shipped cat CAT_DOG[0] on the left, dog CAT_DOG[1] on the right."""
    (cat, i), (dog, j) = CAT_DOG
    return side_by_side(load_sample(cat, i), load_sample(dog, j))


#: The Boston terrier in the shipped pets.jpg (512x430): (left, top, right, bottom), a 222x222 square.
BOSTON_TERRIER_BOX = (290, 150, 512, 372)


def imagenet_cat_dog_image(size: int = 224) -> np.ndarray:
    """(size, 2*size, 3) uint8: Chelsea's central square | the Boston terrier of pets.jpg, bicubic to size x size."""

    cat = load_image(data_path("images", "chelsea.png"))
    h, w = cat.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    cat = cat[top:top + side, left:left + side]
    left, top, right, bottom = BOSTON_TERRIER_BOX
    dog = load_image(data_path("images", "pets.jpg"))[top:bottom, left:right]
    square = [np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC)) for a in (cat, dog)]
    return side_by_side(*square)
