"""Softmax cross-entropy, the loss of the lesson that trains a network.

For logits z (N, K) and integer labels y (N,):

    p = softmax(z) = exp(z - max z) / sum exp(z - max z)     (row-wise, stable)
    L = -(1/N) sum_n log p[n, y_n]
    dL/dz = (p - onehot(y)) / N
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits, shifted by the row maximum for stability."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean cross-entropy and its gradient: returns (loss, dlogits (N, K))."""
    labels = np.asarray(labels)
    n, k = logits.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be {n} integers, got shape {labels.shape} and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise InputError(f"labels must lie in 0..{k - 1}, got {labels.min()}..{labels.max()}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_p[rows, labels].mean()
    dlogits = np.exp(log_p)
    dlogits[rows, labels] -= 1
    return loss, dlogits / n
