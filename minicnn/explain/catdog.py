"""The cat|dog image: the Grad-CAM paper's Figure 1 input at CIFAR-10 scale.

Two shipped CIFAR-10 test images side by side, a cat on the left and a dog
on the right, (32, 64, 3) uint8. Both are classified correctly by the
shipped models on their own. The choice is fixed here, in one place, for
the demo, the lessons and the tests.
"""

from __future__ import annotations

import numpy as np

#: (class, index into the shipped test images of that class) for the left and right halves.
CAT_DOG = (("cat", 18), ("dog", 1))


def cat_dog_image() -> np.ndarray:
    """(32, 64, 3) uint8: shipped cat CAT_DOG[0] on the left, dog CAT_DOG[1] on the right."""
    from ..images import load_sample, side_by_side
    (cat, i), (dog, j) = CAT_DOG
    return side_by_side(load_sample(cat, i), load_sample(dog, j))
