"""Randomness per image: the same draws for image i whether it is scored alone, in a chunk or in the whole set.

A metric's random numbers (the random baseline, the tie-breaking order of
deletion and ROAD, ROAD's imputation noise, SmoothGrad's noise) must follow
the image, not the batch it happens to be computed in: a run cut into
chunks on many workers must give every image the values the serial run
gives it. Two ways, both depending on (seed, image id) only:

    uniform_rows(seed, ids, shape)   row i = draws [ids[i] * P, (ids[i] + 1) * P) of the stream
                                      np.random.default_rng(seed).random(...), P = prod(shape):
                                      the PCG64 generator skips ahead ``ids[i] * P`` outputs (one per
                                      float64), so the rows equal those of one call
                                      ``default_rng(seed).random((N, *shape))`` on images 0..N-1
    image_rng(seed, i)               default_rng([seed, i]): a generator of image i's own (for normal
                                      draws, whose count per value varies, so no stream can be skipped)
    image_seed(seed, i, stream=0)    an integer seed of image i's own, for a method that takes a seed
                                      (stream k > 0: the k-th independent one, e.g. one per kind of draw)
"""

from __future__ import annotations

import numpy as np

from ..util.checks import check_seed


def uniform_rows(seed: int, ids, shape) -> np.ndarray:
    """(len(ids), *shape) Uniform[0, 1): row i is image ids[i]'s place in the stream of ``default_rng(seed)``."""
    seed, shape = check_seed(seed), tuple(int(s) for s in shape)
    per_image = int(np.prod(shape))
    out = np.empty((len(ids), *shape))
    for row, i in enumerate(np.asarray(ids, dtype=np.int64).reshape(-1)):
        rng = np.random.default_rng(seed)
        rng.bit_generator.advance(int(i) * per_image)          # one 64-bit output per float64
        out[row] = rng.random(shape)
    return out


def image_rng(seed: int, image: int) -> np.random.Generator:
    """Image ``image``'s own generator: ``default_rng([seed, image])``."""
    return np.random.default_rng([check_seed(seed), int(image)])


def image_seed(seed: int, image: int, stream: int = 0) -> int:
    """An integer seed for image ``image``, from the seed sequence (seed, image) (and ``stream``, when a metric
    draws several independent things per image: (seed, image, stream)): 0 .. 2**63 - 1."""
    entropy = [check_seed(seed), int(image)] + ([int(stream)] if stream else [])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))
