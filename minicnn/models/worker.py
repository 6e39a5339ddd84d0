"""The model of a worker process: loaded once, checked to be the client's.

    digest = weights_digest("resnet20_cifar10")      # on the client: SHA-256 of the weights file
    model = worker_model("resnet20_cifar10", digest)  # on a worker: loaded at its first task, then reused

A task on a Dask worker (:mod:`minicnn.util.cluster`) names its model by
``source`` (a shipped name or a weights file, which must exist on the
worker) and the digest of the client's file; a worker whose file differs
refuses with one line rather than computing with other weights. ``LOCK``
keeps one task at a time on a process's model (a worker started with
several threads would otherwise run two tasks through one model, whose
pass counting wraps its methods).
"""

from __future__ import annotations

import hashlib
import threading

from ..errors import WeightsError
from .shipped import locate
from .weights import load

_MODELS: dict[tuple[str, str], object] = {}          # this process's model, by (source, sha256)
LOCK = threading.Lock()


def weights_digest(source) -> str:
    """SHA-256 of the weights file that ``source`` (a shipped name or a path) names."""
    path = locate(source)[0]
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise WeightsError(f"cannot read the weights file {path}: {e.strerror or e}") from None
    return h.hexdigest()


def worker_model(source, digest: str):
    """The model of ``source``, loaded once per process; refused if its file is not the client's (``digest``)."""
    key = (str(source), digest)
    if key not in _MODELS:
        found = weights_digest(source)
        if found != digest:
            raise WeightsError(f"the worker's weights file for {source!r} differs from the client's "
                               f"(sha256 {found[:12]}... against {digest[:12]}...)")
        _MODELS.clear()
        _MODELS[key] = load(source)
    return _MODELS[key]
