"""Work on every core: independent pieces of a pass run in threads.

Two kinds of pieces are independent. In inference mode no layer mixes the
images of a batch (BatchNorm uses its running statistics), so a batch
(N, ...) cut along N into chunks can go through the whole network chunk by
chunk, and the chunks' results joined along N are those of one pass
(``Model`` does this). And within a layer on one large image, the blocks of
a convolution (``column_blocks``), of a dense layer's outputs and of the
channels of a ReLU or a pooling layer (``by_channels``) write disjoint parts
of the result.

NumPy releases the interpreter lock inside its array operations and BLAS
calls, so such pieces run on separate cores when given to threads. While a
model pass runs (``session``), the BLAS library is held to one thread: each
piece already has a core, and BLAS threads on top of ours would compete with
them (and spin, waiting for work, long after a product ends). The number of
threads is the BLAS library's own thread count
(``OPENBLAS_NUM_THREADS`` and the like still decide), read with
``threadpoolctl``; without it everything runs in the calling thread, as
plain NumPy does.

One kind of pass goes the other way (``blas_pass``): a single large image,
whose products are large enough for BLAS's own threads to share each of
them well. There the pass runs in the calling thread and BLAS keeps its
threads (``session(blas=True)``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_LOCK = threading.Lock()
_STATE = threading.local()           # .inside: this thread is running a piece or a pass that BLAS threads
_POOL: ThreadPoolExecutor | None = None
_BLAS = None                         # threadpoolctl's controller of the BLAS libraries, once looked up
_HELD = {"count": 0, "threads": 1}   # sessions open in any thread; BLAS's thread count before the first
_CORES = os.cpu_count() or 1

#: Arrays of at least this many elements are worth splitting over the threads.
SPLIT_ELEMENTS = 2 ** 20

#: A pass of one chunk whose images have at least this many input elements (C*H*W) lets BLAS
#: use every core on each product (``blas_pass``). See ``blas_pass`` for the measurements.
BLAS_IMAGE_ELEMENTS = 2 ** 16

#: ...unless the machine is busy: more than this many runnable jobs per core (the 1-minute load
#: average over the cores). See ``blas_pass``.
BUSY_LOAD_PER_CORE = 1.0


def load_per_core() -> float:
    """The 1-minute load average over the cores (0 where the system does not tell)."""
    try:
        return os.getloadavg()[0] / _CORES
    except (AttributeError, OSError):
        return 0.0


def _blas():
    """threadpoolctl's controller of the loaded BLAS libraries, or None without threadpoolctl."""
    global _BLAS
    if _BLAS is None:
        with _LOCK:
            if _BLAS is None:
                try:
                    from threadpoolctl import ThreadpoolController  # lazy: optional, slows `import minicnn`
                    _BLAS = ThreadpoolController().select(user_api="blas")
                except Exception:        # not installed, or no BLAS it can see: run in this thread
                    _BLAS = False
    return _BLAS or None


def _blas_threads() -> int:
    blas = _blas()
    if blas is None or not blas.lib_controllers:
        return 1
    with _LOCK:
        if _HELD["count"]:
            return _HELD["threads"]
        return max(1, min(max(c.num_threads for c in blas.lib_controllers), _CORES))


def threads() -> int:
    """How many threads ``run`` uses from here: the BLAS library's thread count, 1 inside a piece."""
    return 1 if getattr(_STATE, "inside", False) else _blas_threads()


def blas_pass(chunks: int, image_elements: int) -> bool:
    """Whether a pass of ``chunks`` chunks of images of ``image_elements`` (C*H*W) each lets
    BLAS thread its products (True) rather than run its pieces on our threads (False).

    True for one chunk of large images: a single 224x224 photo (150,528
    elements). Its products are large (VGG-16's: 64-512 rows by 576-4608 by
    196-50,176 columns), and OpenBLAS shares each one over the cores with
    no Python between them, where our own threads split the columns into
    blocks, each a NumPy call that takes the interpreter lock, and bands of
    rows of one image whose gradients overlap. VGG-16 at 224x224 against
    PyTorch on a quiet 2-core machine (``minicnn bench``): our threads gave
    Grad-CAM 1.39-1.43x and guided backprop 1.55-1.59x, BLAS's threads
    0.94x and 1.22x; on a quiet 2-core AMD EPYC (2026-12-06,
    benchmarks/regression_vgg16.txt) forward 1.40x -> 1.11x, Grad-CAM
    1.34x -> 1.04x, guided backprop 1.47x -> 1.20x. (Far past one job per
    core it turns over: BLAS's threads wait for each other at every product.)
    A batch of small images (a CIFAR batch) is the other way:
    its products (16-64 rows by 144-576 by about 45,000 columns a chunk)
    gain little from BLAS's threads, and whole chunks on every core keep
    both busy through the bias, BatchNorm, ReLU and pooling too. One small
    image (a CIFAR image, 3,072 elements) is neither: too small to share,
    it runs in one thread with BLAS held to one (see ``session``).
    The threshold 2^16 lies between the two: 64x64x3 = 12,288 and
    224x224x3 = 150,528 elements.

    On a busy machine the large image is chunked too: a product shared by
    BLAS's threads waits at every synchronisation for the thread the
    scheduler has taken away, where our blocks do not wait for each other.
    VGG-16 at 224x224, BLAS's threads / ours, as ratios to PyTorch in the
    same turn: forward 1.10x / 1.46x and Grad-CAM 1.05x / 1.28x at a load
    of 2.0-2.6 on 2 cores (1-1.3 per core), but 1.81x / 0.60x and
    1.55x / 0.55x at 1.9-3.7 (the load rising), 1.45x / 0.44x and
    1.82x / 0.49x at 9-11, and 2.4x / 0.3x at 8-17. The cost is lopsided:
    BLAS's threads on a busy machine cost up to 3-6x, our threads on a
    quiet one 1.3-1.4x; so BUSY_LOAD_PER_CORE = 1: a quiet machine running
    only the bench (load 0.7-1.1 on 2 cores) lets BLAS thread, any other
    job running beside it does not.
    """
    return chunks == 1 and image_elements >= BLAS_IMAGE_ELEMENTS and load_per_core() <= BUSY_LOAD_PER_CORE


@contextmanager
def session(blas: bool = False):
    """Hold BLAS to one thread while minicnn's own threads do the work (a model pass).

    Every pass holds it, a small one too (one CIFAR image, whose products
    are too small to gain from BLAS's threads): BLAS's threads, once woken,
    spin for a while after their product ends, and a batch that follows at
    once (Score-CAM's masked copies after the forward of the image) found
    both cores taken by them: 1.3-1.9x its time (benchmarks/README.md).

    ``blas=True`` (a pass that ``blas_pass`` chose) does the opposite: BLAS
    keeps its threads and this thread's pass makes no pieces of its own
    (``threads()`` is 1 inside it).
    """
    if blas:
        before = getattr(_STATE, "inside", False)
        _STATE.inside = True
        try:
            yield
        finally:
            _STATE.inside = before
        return
    blas, natural = _blas(), _blas_threads()
    if blas is None or natural <= 1 or getattr(_STATE, "inside", False):
        yield
        return
    with _LOCK:
        if _HELD["count"] == 0:
            _HELD["threads"] = natural
        _HELD["count"] += 1
    try:
        with blas.limit(limits=1):
            yield
    finally:
        with _LOCK:
            _HELD["count"] -= 1


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minicnn")
        return _POOL


def _piece(fn: Callable[[T], R], item: T) -> R:
    _STATE.inside = True
    try:
        return fn(item)
    finally:
        _STATE.inside = False


def run(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """[fn(item) for item in items], the items spread over ``threads()`` threads.

    In order; an exception in any piece is raised here once every piece has
    ended. Runs in the calling thread when there is one item or one thread,
    and inside a piece (pieces do not nest).
    """
    items = list(items)
    workers = min(threads(), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with session():
        futures = [_pool(workers).submit(_piece, fn, item) for item in items]
        wait(futures)
    return [f.result() for f in futures]


def near_equal(size: int, parts: int) -> list[slice]:
    """range(size) cut into ``parts`` (at most ``size``) consecutive slices whose lengths differ by at most one."""
    parts = max(1, min(parts, size))
    bounds = [round(k * size / parts) for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def by_channels(fn: Callable, result, *arrays):
    """fn(*(a[:, c] for a in arrays), result[:, c]) for blocks c of the channels; returns ``result``.

    For a function that works channel by channel (elementwise, pooling) and
    writes its block of ``result`` (N, C, ...): one block per thread when
    ``result`` has at least SPLIT_ELEMENTS elements, else one call.
    """
    parts = threads() if result.size >= SPLIT_ELEMENTS else 1
    run(lambda c: fn(*(a[:, c] for a in arrays), result[:, c]), near_equal(result.shape[1], parts))
    return result
